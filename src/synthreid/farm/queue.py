"""Leased claims on jobs (one job = one character), all in single atomic statements.

- claim: one `UPDATE ... RETURNING` takes the oldest job that is pending, or running with an
  expired lease (PostgreSQL adds `FOR UPDATE SKIP LOCKED`), and sets it running for this worker
  with attempts + 1, a new random token and a new lease. The token names the claim's storage
  folder: no two claims share files, so a lost claim's clean-up never touches another's.
- heartbeat: renews the lease while worker and token still match; no row changed means the
  job was lost to another worker.
- complete: only `WHERE worker = ? AND token = ? AND status = 'running'`, so a late worker
  that lost its job cannot mark it; the job and its images become done in one transaction. It is
  idempotent: repeated by the same claim (a retry after a lost reply), it reports success.
- fail: back to pending, or quarantined as failed after `max_attempts`, with the error kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.engine import Engine

from synthreid.farm.db import RunFilter, db_now, images, in_runs, jobs

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    job_id: int
    run_id: int
    character_row: int
    attempt: int
    worker: str
    token: str


def quarantine_expired(engine: Engine, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> int:
    """Jobs whose lease ran out on their last allowed attempt are failed, not retried; so are
    pending jobs that already used `max_attempts` (left by a worker with a higher limit, they
    would otherwise wait for a claim no worker of this limit makes)."""
    expired = and_(jobs.c.status == "running", jobs.c.lease_until < db_now())
    with engine.begin() as connection:
        result = connection.execute(
            update(jobs)
            .where(or_(expired, jobs.c.status == "pending"), jobs.c.attempts >= max_attempts)
            .values(status="failed", worker=None, finished_at=db_now(),
                    last_error=case((jobs.c.last_error.is_(None),
                                     "worker lost (lease expired) on every attempt"),
                                    else_=jobs.c.last_error)))
        return result.rowcount


def claim(engine: Engine, worker: str, lease_s: float, run_ids: RunFilter = None,
          max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Claim | None:
    quarantine_expired(engine, max_attempts)
    claimable = or_(jobs.c.status == "pending",
                    and_(jobs.c.status == "running", jobs.c.lease_until < db_now()))
    candidate = select(jobs.c.id).where(claimable, jobs.c.attempts < max_attempts)
    if run_ids is not None:
        candidate = candidate.where(in_runs(jobs.c.run_id, run_ids))
    candidate = candidate.order_by(jobs.c.id).limit(1)
    if engine.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    statement = (
        update(jobs)
        .where(jobs.c.id == candidate.scalar_subquery())
        .values(status="running", worker=worker, attempts=jobs.c.attempts + 1, token=token,
                lease_until=db_now() + lease_s)
        .returning(jobs.c.id, jobs.c.run_id, jobs.c.character_id, jobs.c.attempts)
    )
    with engine.begin() as connection:
        row = connection.execute(statement).first()
    if row is None:
        return None
    return Claim(job_id=row.id, run_id=row.run_id, character_row=row.character_id,
                 attempt=row.attempts, worker=worker, token=token)


def _mine(claim_: Claim):
    return and_(jobs.c.id == claim_.job_id, jobs.c.worker == claim_.worker,
                jobs.c.token == claim_.token, jobs.c.status == "running")


def heartbeat(engine: Engine, claim_: Claim, lease_s: float) -> bool:
    """Renew the lease; False when the job is no longer this worker's."""
    with engine.begin() as connection:
        result = connection.execute(
            update(jobs).where(_mine(claim_)).values(lease_until=db_now() + lease_s))
    return result.rowcount == 1


def complete(engine: Engine, claim_: Claim, results: list[dict]) -> bool:
    """Mark the job and its images done, if the job is still this worker's.

    `results`: per image row id, its storage key, sha256, size and record. Call only after the
    files are uploaded and verified."""
    with engine.begin() as connection:
        done = connection.execute(
            update(jobs).where(_mine(claim_))
            .values(status="done", lease_until=None, finished_at=db_now(), last_error=None))
        if done.rowcount != 1:
            # Done by this very claim already: a retry after a commit whose reply was lost. Any
            # other state means the job was lost to another claim.
            return connection.execute(select(jobs.c.id).where(
                jobs.c.id == claim_.job_id, jobs.c.token == claim_.token,
                jobs.c.status == "done")).first() is not None
        for result in results:
            connection.execute(
                update(images).where(images.c.id == result["image_row"])
                .values(status="done", storage_key=result["key"], sha256=result["sha256"],
                        size=result["size"], record=result["record"]))
    return True


def fail(engine: Engine, claim_: Claim, error: str,
         max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
    """Back to pending for another try, or failed (quarantined) after `max_attempts`."""
    with engine.begin() as connection:
        connection.execute(
            update(jobs).where(_mine(claim_))
            .values(status=case((jobs.c.attempts >= max_attempts, "failed"), else_="pending"),
                    worker=None, lease_until=None, last_error=error[:2000]))


def release(engine: Engine, claim_: Claim) -> None:
    """Give the job back untouched (a worker asked to stop): the attempt does not count."""
    with engine.begin() as connection:
        connection.execute(
            update(jobs).where(_mine(claim_))
            .values(status="pending", worker=None, lease_until=None,
                    attempts=jobs.c.attempts - 1))


def retry_failed(engine: Engine, run_id: int) -> int:
    with engine.begin() as connection:
        result = connection.execute(
            update(jobs).where(jobs.c.run_id == run_id, jobs.c.status == "failed")
            .values(status="pending", attempts=0, worker=None, lease_until=None))
    return result.rowcount
