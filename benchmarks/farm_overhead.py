"""Queue overhead per job and farm throughput against a bare render loop.

    python benchmarks/farm_overhead.py [--postgres URL] [--jobs 400] [--characters 8]

1. Overhead: claim + heartbeat + completion per job with a no-op render, on SQLite and (with
   --postgres or SYNTHREID_TEST_POSTGRES) PostgreSQL, with 1, 4 and 16 worker processes.
   Target: under 20 ms a job.
2. Throughput: `synthreid render` (real Cycles renders, one worker per core) against a bare loop
   over the same characters in one process. Target: the farm reaches 90% of the bare loop.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from synthreid.farm import queue
from synthreid.farm.db import connect, jobs
from synthreid.farm.plan import plan_run
from synthreid.scene.config import load_config


def _noop_worker(db_url: str, name: str, timings) -> None:
    engine = connect(db_url, create=False)
    while True:
        start = time.perf_counter()
        claim = queue.claim(engine, name, lease_s=60)
        if claim is None:
            return
        queue.heartbeat(engine, claim, lease_s=60)
        queue.complete(engine, claim, [])
        timings.append(time.perf_counter() - start)


def overhead(db_url: str, jobs: int, workers: int) -> tuple[float, float]:
    engine = connect(db_url)
    plan_run(engine, f"noop-{workers}", load_config("I"), jobs, 1, seed=workers)
    with mp.Manager() as manager:
        timings = manager.list()
        processes = [mp.get_context("spawn").Process(target=_noop_worker,
                                                     args=(db_url, f"w{i}", timings))
                     for i in range(workers)]
        start = time.perf_counter()
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        wall = time.perf_counter() - start
        per_job = sorted(timings)
    return 1000 * per_job[len(per_job) // 2], jobs / wall


def fresh_postgres(url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def throughput(characters: int, images: int) -> None:
    from synthreid.farm.supervisor import render_run
    from synthreid.render.renderer import Renderer
    from synthreid.scene.sampling import sample_character, sample_images

    config = load_config("I")
    with tempfile.TemporaryDirectory() as tmp:
        renderer = Renderer(config)
        warm = sample_character(config, 999, 1)
        renderer.render_character(warm, sample_images(config, warm, 1), Path(tmp) / "warm")
        start = time.perf_counter()
        for cid in range(characters):
            c = sample_character(config, cid, 0)
            renderer.render_character(c, sample_images(config, c, images), Path(tmp) / "bare")
        bare = characters * images / (time.perf_counter() - start)
        db_url = f"sqlite:///{tmp}/farm.db"
        engine = connect(db_url)
        plan_run(engine, "farm", config, characters, images, seed=0)
        start = time.perf_counter()
        render_run(db_url, f"{tmp}/storage")
        farm = characters * images / (time.perf_counter() - start)
        with engine.connect() as c:
            finished = sorted(c.execute(select(jobs.c.finished_at)).scalars())
        # Steady state: the characters finished after the first one, over the time they took.
        steady = (len(finished) - 1) * images / (finished[-1] - finished[0])
    print(f"throughput: bare loop {bare:.2f} images/s; farm ({os.cpu_count()} workers) "
          f"{farm:.2f} images/s with worker start-up, {100 * farm / bare:.0f}% of the bare "
          f"loop; {steady:.2f} images/s in steady state, {100 * steady / bare:.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("SYNTHREID_TEST_POSTGRES"))
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--characters", type=int, default=8)
    parser.add_argument("--images", type=int, default=10)
    args = parser.parse_args()
    for workers in (1, 4, 16):
        with tempfile.TemporaryDirectory() as tmp:
            backends = {"sqlite": f"sqlite:///{tmp}/jobs.db"}
            if args.postgres:
                backends["postgresql"] = fresh_postgres(args.postgres, f"bench_{workers}")
            for name, url in backends.items():
                median_ms, rate = overhead(url, args.jobs, workers)
                print(f"overhead {name:10} {workers:2} workers: {median_ms:6.1f} ms a job "
                      f"(median), {rate:7.1f} jobs/s")
    throughput(args.characters, args.images)


if __name__ == "__main__":
    main()
