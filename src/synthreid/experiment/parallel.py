"""Independent stages of one experiment at once on one machine: up to N `synthreid experiment
--stage NAME` processes, each capped to its share of the cores for PyTorch's math (two trainings
that each take every core run slower together than one after the other: see threads.py), a new
one started as soon as a stage's inputs are finished. The caller writes the report after.

Each stage's output goes to OUT/logs/NAME.log. A stage that fails is not run again in this run
and nothing that needs it starts, while every stage that does not need it still runs (hours of
independent work are not thrown away for one failure); then the error names each failed stage,
its exit code and its log's last line. Of the stages ready at once, those at the head of the
longest chains of work start first. Interrupted (Ctrl-C, or SIGTERM from a scheduler or
`kill`), it stops the stages it started (each resumes on the next run) rather than leaving them
running unwatched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from synthreid.errors import JobError
from synthreid.progress import report
from synthreid.threads import THREADS_VARIABLE

POLL_S = 1.0


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] \
        if log.exists() else []
    return lines[-1].strip() if lines else "(no output)"


# Rough minutes a stage of each kind takes at the shipped sizes on a small CPU (README: stage
# wall times); only their order and ratios matter, to find the longest chains.
TYPICAL_MINUTES = {"refiner": 30.0, "model": 10.0, "generate": 5.0, "refine": 1.0,
                   "masks": 0.5, "evaluate": 0.5}


def _critical_path(table: list[dict]) -> dict[str, float]:
    """Per stage, the typical minutes of the longest chain from it to the end of the plan (it
    included). Ready stages start longest first (the plan's order among equals), so a
    refiner that a model, its finetuning and a mixed training wait for starts before a render
    that one short model needs, and the run ends sooner."""
    needed_by: dict[str, list[str]] = {row["name"]: [] for row in table}
    kinds = {row["name"]: row["kind"] for row in table}
    for row in table:
        for need in row["needs"]:
            needed_by.setdefault(need, []).append(row["name"])
    longest: dict[str, float] = {}

    def chain(name: str) -> float:
        if name not in longest:
            longest[name] = TYPICAL_MINUTES.get(kinds.get(name, ""), 1.0) + max(
                (chain(child) for child in needed_by[name]), default=0.0)
        return longest[name]

    return {name: chain(name) for name in needed_by}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_in_processes(experiment, stage_command: Callable[[str], list[str]],
                     processes: int) -> None:
    """Run every stage of `experiment` that is not finished or left out, up to `processes` at
    once, each as `stage_command(name)`. PyTorch's threads per process: the machine's cores /
    `processes`, unless the environment already caps them."""
    env = dict(os.environ)
    env.setdefault(THREADS_VARIABLE, str(max(1, (os.cpu_count() or 1) // processes)))
    logs = experiment.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running: dict[str, subprocess.Popen] = {}
    failed: dict[str, str] = {}
    ended = True  # what is ready changes only when a stage ends: read the records then
    # SIGTERM's default ends Python at once, skipping the `finally` that stops the stages.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            if ended:
                table = experiment.stage_table()
                longest = _critical_path(table)
                done = {row["name"] for row in table if row["done"]}
                report(experiment.progress, "stages", len(done), len(table))
                ready = sorted((row["name"] for row in table if not row["done"]
                                and not row["left_out"] and row["name"] not in running
                                and row["name"] not in failed and set(row["needs"]) <= done),
                               key=lambda name: -longest[name])
                for name in ready[:processes - len(running)]:
                    with open(logs / f"{name}.log", "a") as log:
                        running[name] = subprocess.Popen(stage_command(name), env=env,
                                                         stdout=log, stderr=subprocess.STDOUT)
                    experiment.say(f"started {name}")
                ended = False
            if not running:
                break
            time.sleep(POLL_S)
            for name, process in list(running.items()):
                if process.poll() is None:
                    continue
                del running[name]
                ended = True
                if process.returncode == 0:
                    experiment.say(f"finished {name}")
                else:
                    failed[name] = (f"stage {name} failed (exit {process.returncode}): "
                                    f"{_last_line(logs / f'{name}.log')} (log: "
                                    f"{logs / f'{name}.log'})")
                    experiment.say(failed[name])
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in running.values():  # interrupted: each stage resumes on the next run
            process.terminate()
        for process in running.values():
            process.wait()
    if failed:
        raise JobError(f"{len(failed)} stage(s) failed, the stages needing them not run; "
                       f"first: {next(iter(failed.values()))}")
