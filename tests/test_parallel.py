"""`experiment --parallel`'s process runner: a SIGTERM to it (a scheduler's or `kill`'s) stops the
stages it started instead of leaving them running unwatched beside the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# An experiment of two independent stages whose command records its pid and then waits.
RUNNER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from synthreid.experiment.parallel import run_in_processes

    out = Path(sys.argv[1])

    class TwoStages:
        progress = None
        def __init__(self):
            self.out = out
        def stage_table(self):
            return [{"name": n, "kind": "model", "done": False, "left_out": None, "needs": []}
                    for n in "ab"]
        def say(self, text):
            print(text, flush=True)

    def stage_command(name):
        script = (f"import os, time, pathlib; pathlib.Path({str(out)!r}, {name!r} + '.pid')"
                  f".write_text(str(os.getpid())); time.sleep(120)")
        return [sys.executable, "-c", script]

    run_in_processes(TwoStages(), stage_command, 2)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (ended, not yet reaped by its parent) counts as ended.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_sigterm_stops_the_stages_it_started(tmp_path):
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_files = [tmp_path / "a.pid", tmp_path / "b.pid"]
    deadline = time.monotonic() + 60
    while not all(f.exists() and f.read_text() for f in pid_files):
        assert runner.poll() is None and time.monotonic() < deadline, runner.stdout.read()
        time.sleep(0.1)
    stages = [int(f.read_text()) for f in pid_files]
    assert all(_alive(pid) for pid in stages)

    runner.send_signal(signal.SIGTERM)
    output = runner.communicate(timeout=60)[0]
    assert runner.returncode != 0, output  # interrupted is not done
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in stages) and time.monotonic() < deadline:
        time.sleep(0.1)
    still = [pid for pid in stages if _alive(pid)]
    for pid in still:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not still, f"stages still running after SIGTERM: {still}\n{output}"


def test_render_workers_divide_the_share_of_cores_they_are_given(monkeypatch):
    """Two generate stages of `--parallel 2` each get SYNTHREID_TORCH_THREADS = cores / 2: each
    starts workers for its share only, not one per core of the machine (4 renders on 2 cores)."""
    from synthreid.farm.supervisor import worker_plan
    from synthreid.threads import THREADS_VARIABLE

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert worker_plan(None, []) == (8, 1, [None] * 8)  # alone: one worker per core
    assert worker_plan(2, []) == (2, 4, [None, None])
    monkeypatch.setenv(THREADS_VARIABLE, "4")
    assert worker_plan(None, []) == (4, 1, [None] * 4)
    assert worker_plan(2, []) == (2, 2, [None, None])
    assert worker_plan(None, [0, 1]) == (2, 0, [0, 1])  # GPUs: one worker each, as before


def _start_order(tmp_path, plan: list[tuple[str, str, list[str]]], slots: int) -> list[str]:
    """The order in which `run_in_processes` starts the stages of `plan` (name, kind, needs)
    when every stage ends at once."""
    from synthreid.experiment.parallel import run_in_processes

    started: list[str] = []

    class Plan:
        out, progress = tmp_path, None

        def stage_table(self):
            return [{"name": name, "kind": kind, "done": name in started, "left_out": None,
                     "needs": needs} for name, kind, needs in plan]

        def say(self, text):
            if text.startswith("started "):
                started.append(text.removeprefix("started "))

    run_in_processes(Plan(), lambda name: [sys.executable, "-c", "pass"], slots)
    assert sorted(started) == sorted(name for name, _, _ in plan)
    return started


def test_the_head_of_the_longest_chain_starts_first(tmp_path):
    """With one slot: of two ready refiners, the one a model, a finetuning and its score wait
    for starts first, whatever the plan's order; and a refiner (long) before a render (short)
    when each feeds one model."""
    started = _start_order(tmp_path, [
        ("refiner-I", "refiner", []), ("refiner-IV", "refiner", []),
        ("model-I", "model", ["refiner-I"]), ("model-IV", "model", ["refiner-IV"]),
        ("finetuned-IV", "model", ["model-IV"]),
        ("evaluate-finetuned-IV", "evaluate", ["finetuned-IV"])], 1)
    assert started[0] == "refiner-IV", started
    assert started.index("refiner-I") < started.index("model-I")
    started = _start_order(tmp_path, [
        ("generate-A", "generate", []), ("refiner-B", "refiner", []),
        ("model-A", "model", ["generate-A"]), ("model-B", "model", ["refiner-B"])], 1)
    assert started[0] == "refiner-B", started
