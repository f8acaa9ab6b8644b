"""Local render farm: N worker processes on this machine, restarted if they die, watched through
the job database, reporting images done, rate and failed jobs as progress events."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from synthreid.errors import JobError
from synthreid.farm.db import (
    RunFilter,
    characters,
    check_present,
    connect,
    images,
    in_runs,
    job_counts,
    jobs,
    run_id,
    runs,
    unreachable_reason,
)
from synthreid.farm.storage import Storage
from synthreid.progress import Reporter, report
from synthreid.threads import core_share


@dataclass
class RunStatus:
    images_done: int
    images_total: int
    jobs: dict[str, int]
    characters_planned: int = 0  # what `plan` was asked for
    characters_stored: int = 0  # what it stored: fewer when planning was interrupted

    @property
    def outstanding(self) -> int:
        return self.jobs.get("pending", 0) + self.jobs.get("running", 0)

    @property
    def planned_whole(self) -> bool:
        return self.characters_stored >= self.characters_planned


def run_status(engine: Engine, run_ids: RunFilter = None) -> RunStatus:
    image_query = (select(images.c.status, func.count())
                   .join(characters, characters.c.id == images.c.character_id)
                   .group_by(images.c.status))
    planned_query = select(func.coalesce(func.sum(runs.c.characters), 0))
    stored_query = select(func.count()).select_from(characters)
    if run_ids is not None:
        image_query = image_query.where(in_runs(characters.c.run_id, run_ids))
        planned_query = planned_query.where(in_runs(runs.c.id, run_ids))
        stored_query = stored_query.where(in_runs(characters.c.run_id, run_ids))
    with engine.connect() as connection:
        image_counts = dict(connection.execute(image_query).all())
        planned = int(connection.execute(planned_query).scalar())
        stored = int(connection.execute(stored_query).scalar())
    return RunStatus(image_counts.get("done", 0), sum(image_counts.values()),
                     job_counts(engine, run_ids), planned, stored)


@dataclass
class FailedJob:
    run: int
    character: int  # the character's index in its run
    attempts: int
    error: str


def failed_jobs(engine: Engine) -> list[FailedJob]:
    """Every quarantined job, with its character and last error."""
    query = (select(jobs.c.run_id, characters.c.index, jobs.c.attempts, jobs.c.last_error)
             .join(characters, characters.c.id == jobs.c.character_id)
             .where(jobs.c.status == "failed").order_by(jobs.c.run_id, characters.c.index))
    with engine.connect() as connection:
        return [FailedJob(*row) for row in connection.execute(query).all()]


def run_names(engine: Engine) -> list[tuple[int, str, str]]:
    """(id, name, preset) of every run, in the order they were planned."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(runs.c.id, runs.c.name, runs.c.preset).order_by(runs.c.id)).all()]


def gpu_slots() -> list[str]:
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def _spawn(db_url: str, storage_url: str, runs: list[str], lease_s: float, threads: int,
           gpu: str | None, log: Path) -> subprocess.Popen:
    """A worker process; its output goes to `log` (a pipe could fill up and stall it). It stops
    by itself when this process is gone (a killed supervisor leaves no workers behind)."""
    command = [sys.executable, "-m", "synthreid.farm.worker", "--db", db_url,
               "--storage", storage_url, "--lease", str(lease_s), "--threads", str(threads),
               "--parent", str(os.getpid())]
    for name in runs:  # none: every run's jobs
        command += ["--run", name]
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    with open(log, "a") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


# A worker that dies (not a clean exit) is restarted; this many deaths per worker in a row, with
# no image finished in between, and `render` stops with the last worker's error.
CRASHES_PER_WORKER = 3
LOG_PREFIX = "synthreid-workers-"


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    errors = [line for line in lines if line.startswith("error: ")]
    return (errors or lines or ["(no output)"])[-1].removeprefix("error: ")


def _sweep_stale_logs() -> None:
    """Log folders of supervisors that were killed (their pid is in the name and gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{LOG_PREFIX}*-*"):
        pid = folder.name.removeprefix(LOG_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_plan(workers: int | None, slots: list) -> tuple[int, int, list]:
    """How many local workers, render threads each (0: Blender's default) and the GPU each is
    pinned to (None: CPU). Default: one worker per GPU when CUDA is present, else one per core
    of this process' share (`SYNTHREID_TORCH_THREADS`, set for each stage of `experiment
    --parallel`: two renders started together would otherwise each take every core)."""
    cores = core_share()
    count = workers or len(slots) or cores
    gpus = [slots[i % len(slots)] if slots else None for i in range(count)]
    threads = 0 if slots else max(1, cores // count)
    return count, threads, gpus


def render_run(db_url: str, storage_url: str, workers: int | None = None,
               run: str | Sequence[str] | None = None, lease_s: float = 120.0,
               progress: Reporter | None = None) -> RunStatus:
    """Render every outstanding job of `run` (a run's name, or several names), or of all runs
    when None, with local workers. Returns the final status (its `jobs` may hold failed ones);
    raises JobError, after stopping the workers, when the database goes away or the workers
    keep dying."""
    from synthreid.farm.worker import WorkerOptions

    WorkerOptions(lease_s=lease_s)  # a bad lease is one line here, not N dying workers
    engine = connect(db_url, create=False)
    names = [run] if isinstance(run, str) else list(run or [])
    run_filter = [run_id(engine, name) for name in names] if names else None
    status = run_status(engine, run_filter)
    if status.outstanding == 0:
        return status  # nothing to render: no workers to start
    Storage(storage_url).check_writable()  # one line now, not workers dying at start
    count, threads, gpus = worker_plan(workers, gpu_slots())
    _sweep_stale_logs()
    logs = Path(tempfile.mkdtemp(prefix=f"{LOG_PREFIX}{os.getpid()}-"))
    spawn = lambda i: _spawn(db_url, storage_url, names, lease_s, threads, gpus[i],  # noqa: E731
                             logs / f"worker-{i}.log")
    processes = [spawn(i) for i in range(count)]
    started, done_at_start = time.time(), status.images_done
    crashes, done_at_crash = 0, status.images_done
    finished = False
    try:
        while True:
            time.sleep(1.0)
            check_present(engine)
            try:
                status = run_status(engine, run_filter)
            except (OperationalError, InterfaceError) as error:
                raise JobError(f"the job database stopped answering: "
                               f"{unreachable_reason(error)}") from None
            rate = (status.images_done - done_at_start) / max(time.time() - started, 1e-6)
            report(progress, "rendering", status.images_done, status.images_total, rate=rate,
                   failed=status.jobs.get("failed", 0))
            alive = [p.poll() is None for p in processes]
            if status.outstanding == 0 and not any(alive):
                break
            if status.images_done > done_at_crash:
                crashes, done_at_crash = 0, status.images_done
            for i, is_alive in enumerate(alive):
                if is_alive or status.outstanding == 0:
                    continue
                code = processes[i].returncode
                if code == 2:  # the worker could not start at all, or lost the database
                    raise JobError(_last_error(logs / f"worker-{i}.log"))
                if code != 0:
                    crashes += 1
                    if crashes >= CRASHES_PER_WORKER * count:
                        raise JobError(f"workers keep dying ({crashes} in a row with no image "
                                       f"finished); the last said: "
                                       f"{_last_error(logs / f'worker-{i}.log')} (logs in "
                                       f"{logs})")
                processes[i] = spawn(i)
        finished = True
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if finished:  # the logs matter only when something went wrong
            shutil.rmtree(logs, ignore_errors=True)
    return status
