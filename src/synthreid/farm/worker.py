"""One worker: claim a character, render its images, upload and verify them, then mark it done.

The worker builds the body model and imports bpy once, not per job. A heartbeat thread renews
the lease; when a renewal changes nothing, the job was lost and rendering stops. SIGINT/SIGTERM
release the current job untouched and end the worker.

    python -m synthreid.farm.worker --db sqlite:///farm.db --storage out/storage
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from synthreid.errors import JobError, SynthReidError
from synthreid.farm import queue
from synthreid.farm.assets import HostileAsset, materialize
from synthreid.farm.db import (
    DatabaseGone,
    characters,
    check_present,
    connect,
    images,
    job_counts,
    run_id,
    runs,
    unreachable_reason,
)
from synthreid.farm.storage import Storage, attempt_prefix
from synthreid.scene.backgrounds import asset_cache
from synthreid.scene.config import config_from_dict
from synthreid.scene.spec import CharacterSpec, ImageSpec
from synthreid.threads import apply_thread_cap


class JobLost(Exception):
    """The lease was taken over by another worker; this attempt must not complete."""


class StopRequested(Exception):
    """SIGINT/SIGTERM: give the job back and end."""


class JobTimedOut(Exception):
    """The character took longer than the per-job time limit."""


def with_retries(call, *args, budget_s: float = 300.0, **kwargs):
    """A queue operation, retried with exponential backoff while the database is unreachable
    (a restart, a network blip); after `budget_s` the error is one JobError line."""
    delay, waited = 0.5, 0.0
    while True:
        try:
            return call(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            if waited >= budget_s:
                raise JobError(f"database unreachable for {waited:.0f} s: "
                               f"{unreachable_reason(error)}") from None
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)


@dataclass
class WorkerOptions:
    lease_s: float = 120.0
    heartbeat_s: float | None = None  # default: a third of the lease
    max_attempts: int = queue.DEFAULT_MAX_ATTEMPTS
    poll_s: float = 2.0
    threads: int = 0  # render threads (0: all cores)
    runs: tuple[str, ...] = ()  # only these runs' jobs (none: every run's)
    max_jobs: int | None = None
    job_timeout_s: float = 3600.0  # a character taking longer is given up (a hung render)
    db_retry_s: float = 300.0  # keep retrying a database that fails for this long

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise JobError(f"--lease: expected seconds > 0, got {self.lease_s}")
        if self.heartbeat_s is not None and not 0 < self.heartbeat_s < self.lease_s:
            raise JobError(f"--heartbeat: expected seconds in (0, lease {self.lease_s}), got "
                           f"{self.heartbeat_s}")
        if self.max_attempts < 1:
            raise JobError(f"--max-attempts: expected at least 1, got {self.max_attempts}")
        if not self.job_timeout_s > 0:
            raise JobError(f"--job-timeout: expected seconds > 0, got {self.job_timeout_s}")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise JobError(f"--max-jobs: expected at least 1, got {self.max_jobs}")


@dataclass
class WorkerReport:
    name: str
    done: int = 0
    failed: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Heartbeat(threading.Thread):
    """Renews the lease until the job ends, is lost, or passes its time limit: then the renewals
    stop, so even a render hung inside Blender lets its lease expire for another worker."""

    def __init__(self, engine: Engine, claim: queue.Claim, options: WorkerOptions) -> None:
        super().__init__(daemon=True)
        self.engine, self.claim, self.options = engine, claim, options
        self.lost = threading.Event()
        self.timed_out = threading.Event()
        self.finished = threading.Event()
        self.deadline = time.monotonic() + options.job_timeout_s

    def run(self) -> None:
        interval = self.options.heartbeat_s or self.options.lease_s / 3
        while not self.finished.wait(min(interval, max(self.deadline - time.monotonic(), 0))):
            if time.monotonic() >= self.deadline:
                self.timed_out.set()
                return
            try:
                if not queue.heartbeat(self.engine, self.claim, self.options.lease_s):
                    self.lost.set()
                    return
            except Exception:  # a blip in the database: the next beat may succeed
                continue


class Worker:
    def __init__(self, db_url: str, storage_url: str, options: WorkerOptions | None = None,
                 name: str | None = None) -> None:
        self.engine = connect(db_url, create=False)
        self.storage = Storage(storage_url)
        self.storage.check_writable()
        self.options = options or WorkerOptions()
        self.report = WorkerReport(name or worker_name())
        self.stop = threading.Event()
        self._renderer = None
        self._renderer_run: int | None = None
        self._model = None

    def _db(self, call, *args):
        return with_retries(call, *args, budget_s=self.options.db_retry_s)

    def _run_filter(self) -> list[int] | None:
        if not self.options.runs:
            return None
        return [run_id(self.engine, name) for name in self.options.runs]

    def _renderer_for(self, run: int):
        if self._renderer_run != run:
            from synthreid.body.model import BodyModel
            from synthreid.render.renderer import Renderer

            with self.engine.connect() as connection:
                frozen = connection.execute(select(runs.c.config).where(runs.c.id == run)).scalar()
            frozen["render"]["threads"] = self.options.threads
            self._model = self._model or BodyModel()
            self._renderer = Renderer(config_from_dict(frozen, f"run {run}"), self._model)
            self._renderer_run = run
        return self._renderer

    def _outstanding(self, run_ids: list[int] | None) -> int:
        counts = job_counts(self.engine, run_ids)
        return counts.get("pending", 0) + counts.get("running", 0)

    def run(self) -> WorkerReport:
        run_ids = self._run_filter()
        while not self.stop.is_set():
            check_present(self.engine)
            if self.options.max_jobs is not None and self.report.done >= self.options.max_jobs:
                break
            claim = self._db(queue.claim, self.engine, self.report.name,
                             self.options.lease_s, run_ids, self.options.max_attempts)
            if claim is None:
                if self._db(self._outstanding, run_ids) == 0:
                    break  # nothing pending, nothing running anywhere: the run is finished
                self.stop.wait(self.options.poll_s)  # others hold leases that may yet expire
                continue
            self._work(claim)
        return self.report

    def _work(self, claim: queue.Claim) -> None:
        heartbeat = Heartbeat(self.engine, claim, self.options)
        heartbeat.start()

        def checkpoint() -> None:
            if self.stop.is_set():
                raise StopRequested()
            if heartbeat.lost.is_set():
                raise JobLost()
            if heartbeat.timed_out.is_set():
                raise JobTimedOut(f"character not finished within the job time limit of "
                                  f"{self.options.job_timeout_s:.0f} s")

        prefix = None
        try:
            character_index, spec, views = self._load(claim)
            prefix = attempt_prefix(claim.run_id, character_index, claim.attempt, claim.token)
            renderer = self._renderer_for(claim.run_id)
            with tempfile.TemporaryDirectory(prefix="synthreid-") as tmp:
                rendered = renderer.render_character(spec, [v for _, v in views], Path(tmp),
                                                     before_image=checkpoint)
                results = []
                for (row, _), image in zip(views, rendered):
                    checkpoint()
                    results.append(self._upload(prefix, row, image))
            checkpoint()
            heartbeat.finished.set()
            check_present(self.engine)
            if self._db(queue.complete, self.engine, claim, results):
                self.report.done += 1
                self._clean_other_attempts(prefix)
            else:
                raise JobLost()
        except StopRequested:  # this claim's files go before the job is given back
            self._remove(prefix)
            self._db(queue.release, self.engine, claim)
        except JobLost:  # only this claim's own folder: another claim's is never touched
            self.report.lost += 1
            self._remove(prefix)
        except DatabaseGone:  # nothing may be recorded: this worker stops with one line
            self._remove(prefix)
            raise
        except Exception as error:  # any failure of this character: record it, keep working
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            if not isinstance(error, SynthReidError):
                message += " | " + traceback.format_exc().strip().splitlines()[-2].strip()
            self.report.failed += 1
            self.report.errors.append(message)
            self._remove(prefix)
            # A job naming a hostile asset can never run: quarantined now, not retried.
            attempts = 1 if isinstance(error, HostileAsset) else self.options.max_attempts
            self._db(queue.fail, self.engine, claim, message, attempts)
        finally:
            heartbeat.finished.set()

    def _load(self, claim: queue.Claim) -> tuple[int, CharacterSpec, list[tuple[int, ImageSpec]]]:
        with self.engine.connect() as connection:
            row = connection.execute(select(characters).where(
                characters.c.id == claim.character_row)).mappings().one()
            views = connection.execute(select(images.c.id, images.c.spec).where(
                images.c.character_id == claim.character_row).order_by(images.c.index)).all()
        spec = materialize(self.engine, CharacterSpec.model_validate(row["spec"]),
                           asset_cache())
        return row["index"], spec, [(v.id, ImageSpec.model_validate(v.spec)) for v in views]

    def _upload(self, prefix: str, image_row: int, image) -> dict:
        rgb_sha, rgb_size = self.storage.put_verified(image.rgb.read_bytes(),
                                                      f"{prefix}/{image.stem}.png")
        mask_sha, _ = self.storage.put_verified(image.mask.read_bytes(),
                                                f"{prefix}/{image.stem}.mask.png")
        record_sha, _ = self.storage.put_verified(json.dumps(image.record).encode(),
                                                  f"{prefix}/{image.stem}.json")
        record = {k: image.record[k] for k in ("crop", "keypoints", "camera", "versions")}
        record["sha256"] = {"mask": mask_sha, "record": record_sha}  # export verifies them
        return {"image_row": image_row, "key": f"{prefix}/{image.stem}.png", "sha256": rgb_sha,
                "size": rgb_size, "record": record}

    def _clean_other_attempts(self, keep: str) -> None:
        """Leftovers of lost attempts of this character, now that this claim completed."""
        parent = keep.rsplit("/", 1)[0]
        for key in {k.rsplit("/", 1)[0] for k in self.storage.list(parent)}:
            if key != keep:
                self.storage.remove_prefix(key)

    def _remove(self, prefix: str | None) -> None:
        if prefix is not None:
            try:
                self.storage.remove_prefix(prefix)
            except Exception:
                pass  # best effort; a completing attempt cleans these up too


def watch_parent(parent: int, stop: threading.Event, every_s: float = 1.0) -> None:
    """Set `stop` once the process `parent` (the supervisor) is gone: a killed supervisor's
    workers give their jobs back and end instead of rendering on unwatched."""
    def watch() -> None:
        while not stop.wait(every_s):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    apply_thread_cap()  # the body model's torch math shares the cores with the renderer
    parser = argparse.ArgumentParser(description="Run one synthreid render worker.")
    parser.add_argument("--db", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--run", action="append", default=[],
                        help="only this run's jobs (repeat for several; default: every run)")
    parser.add_argument("--lease", type=float, default=120.0)
    parser.add_argument("--heartbeat", type=float, default=None)
    parser.add_argument("--max-attempts", type=int, default=queue.DEFAULT_MAX_ATTEMPTS)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--max-jobs", type=int, default=None)
    parser.add_argument("--job-timeout", type=float, default=3600.0)
    parser.add_argument("--parent", type=int, default=None,
                        help="stop (giving the job back) when this process is gone")
    args = parser.parse_args(argv)
    try:
        options = WorkerOptions(lease_s=args.lease, heartbeat_s=args.heartbeat,
                                max_attempts=args.max_attempts, threads=args.threads,
                                runs=tuple(args.run), max_jobs=args.max_jobs,
                                job_timeout_s=args.job_timeout)
        worker = Worker(args.db, args.storage, options)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: worker.stop.set())
        if args.parent:
            watch_parent(args.parent, worker.stop)
        started = time.time()
        report = worker.run()
    except SynthReidError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except Exception as error:  # one line for the supervisor to show, then its traceback
        print(f"error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
              file=sys.stderr, flush=True)
        traceback.print_exc()
        return 1
    print(f"worker {report.name}: {report.done} done, {report.failed} failed, {report.lost} lost "
          f"in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
