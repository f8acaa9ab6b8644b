"""Planning a run: every character is sampled up front and stored with its images and its job.

Planning the same run again with the same arguments is a no-op (and finishes a plan that was
interrupted); with different arguments it is an error. The run records how many characters were
asked for, so `status` and `export` know an interrupted plan is not whole. A plan that fails
(rather than being interrupted) on a run it created leaves nothing behind.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from synthreid import package_versions
from synthreid.errors import JobError
from synthreid.farm.assets import freeze
from synthreid.farm.db import characters, images, jobs, runs
from synthreid.limits import check_run_size
from synthreid.progress import Reporter, report
from synthreid.scene.config import GenerationConfig
from synthreid.scene.sampling import sample_character, sample_images

BATCH = 200  # characters per transaction; each character and its job share one
MAX_NAME = 200  # runs.name is a String(200)


def plan_run(engine: Engine, name: str, config: GenerationConfig, characters_count: int,
             images_count: int, seed: int, progress=None) -> int:
    """Store the run and all its characters, images and jobs; returns the run id."""
    frozen = config.model_dump(mode="json")
    wanted = {"preset": config.name, "config": frozen, "seed": seed,
              "characters": characters_count, "images_per_character": images_count}
    check_run_size(characters_count, images_count, f"run {name!r}")
    if not name.strip() or len(name) > MAX_NAME:
        raise JobError(f"run name: expected 1 to {MAX_NAME} characters, got {len(name)}"
                       + (" (blank)" if name and not name.strip() else ""))
    try:
        with engine.begin() as connection:
            existing = connection.execute(select(runs).where(runs.c.name == name)).mappings().first()
            if existing is None:
                run = connection.execute(insert(runs).values(
                    name=name, versions=package_versions(), created_at=time.time(),
                    **wanted)).inserted_primary_key[0]
    except IntegrityError:  # another plan of this name inserted it between our read and write
        raise _planned_concurrently(name) from None
    with engine.begin() as connection:
        if existing is not None:
            different = [k for k, v in wanted.items() if existing[k] != v]
            if different:
                raise JobError(f"run {name!r} was planned with other {', '.join(different)}; "
                               f"choose a new --run name")
            run = existing["id"]
        done = connection.execute(select(func.count()).select_from(characters)
                                  .where(characters.c.run_id == run)).scalar()
    try:
        _store(engine, run, config, done, characters_count, images_count, seed, progress)
    except IntegrityError:  # another plan stored these characters first: the run is intact
        raise _planned_concurrently(name) from None
    except Exception:
        if existing is None:
            _forget(engine, run)
        raise
    return int(run)


def _planned_concurrently(name: str) -> JobError:
    return JobError(f"run {name!r} is being planned by another 'synthreid plan' at the same "
                    f"time; when it ends, run this command again to check the run is whole")


def _forget(engine: Engine, run: int) -> None:
    """Remove every row of a run this call created and could not plan."""
    with engine.begin() as connection:
        rows = select(characters.c.id).where(characters.c.run_id == run)
        connection.execute(delete(images).where(images.c.character_id.in_(rows)))
        connection.execute(delete(jobs).where(jobs.c.run_id == run))
        connection.execute(delete(characters).where(characters.c.run_id == run))
        connection.execute(delete(runs).where(runs.c.id == run))


def _store(engine: Engine, run: int, config: GenerationConfig, done: int, characters_count: int,
           images_count: int, seed: int, progress: Reporter | None) -> None:
    memo: dict[str, str] = {}  # user file -> its asset key, stored once per plan
    for start in range(done, characters_count, BATCH):
        stop = min(start + BATCH, characters_count)
        with engine.begin() as connection:
            for index in range(start, stop):
                character = freeze(connection, sample_character(config, index, seed), memo)
                row = connection.execute(insert(characters).values(
                    run_id=run, index=index,
                    spec=character.model_dump(mode="json"))).inserted_primary_key[0]
                connection.execute(insert(images), [
                    {"character_id": row, "index": view.image_index,
                     "spec": view.model_dump(mode="json"), "status": "pending"}
                    for view in sample_images(config, character, images_count)])
                connection.execute(insert(jobs).values(run_id=run, character_id=row,
                                                       status="pending", attempts=0))
        report(progress, "planning", stop, characters_count)
