"""The job database and its queue, against SQLite and a real PostgreSQL server."""

import threading
import time

import pytest
from sqlalchemy import select, text, update

from synthreid.errors import JobError
from synthreid.farm import queue
from synthreid.farm.db import (
    assets,
    characters,
    connect,
    images,
    jobs,
    run_id,
    schema_version,
)
from synthreid.farm.plan import plan_run
from synthreid.scene.config import load_config


def planned(db_url, count=6, images_per=2, name="r1"):
    engine = connect(db_url)
    plan_run(engine, name, load_config("I"), count, images_per, seed=5)
    return engine


def test_plan_stores_everything_once_and_is_idempotent(db_url):
    engine = planned(db_url)
    plan_run(engine, "r1", load_config("I"), 6, 2, seed=5)  # same arguments: a no-op
    with engine.connect() as c:
        assert len(c.execute(select(characters)).all()) == 6
        assert len(c.execute(select(images)).all()) == 12
        assert len(c.execute(select(jobs)).all()) == 6
        spec = c.execute(select(characters.c.spec).where(characters.c.index == 3)).scalar()
    from synthreid.scene.sampling import sample_character

    assert spec == sample_character(load_config("I"), 3, 5).model_dump(mode="json")
    with pytest.raises(JobError, match="planned with other seed"):
        plan_run(engine, "r1", load_config("I"), 6, 2, seed=6)
    with pytest.raises(JobError, match="unknown run 'nope'"):
        run_id(engine, "nope")


def test_claims_and_counts_keep_to_the_runs_asked_for(db_url):
    """A worker asked for some runs (`fit`'s candidates in a database shared with a farm)
    never takes another run's job, and the counts it waits on are those runs' alone."""
    from synthreid.farm.db import job_counts
    from synthreid.farm.supervisor import run_status

    engine = planned(db_url, count=3, images_per=1, name="a")
    for name in ("b", "theirs"):
        plan_run(engine, name, load_config("I"), 3, 1, seed=5)
    ours = [run_id(engine, "a"), run_id(engine, "b")]
    taken = []
    while (c := queue.claim(engine, "w", lease_s=60, run_ids=ours)) is not None:
        taken.append(c.run_id)
        queue.complete(engine, c, [])
    assert sorted(taken) == sorted(ours * 3)
    assert job_counts(engine, ours) == {"done": 6}
    assert job_counts(engine, run_id(engine, "theirs")) == {"pending": 3}
    assert run_status(engine, ours).outstanding == 0
    assert run_status(engine).outstanding == 3


def test_claims_are_exclusive_under_concurrency(db_url):
    engine = planned(db_url, count=40, images_per=1)
    claimed, lock = [], threading.Lock()

    def grab(name):
        while (c := queue.claim(engine, name, lease_s=60)) is not None:
            with lock:
                claimed.append(c.job_id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_a_late_worker_cannot_complete_a_job_it_lost(db_url):
    engine = planned(db_url, count=1)
    first = queue.claim(engine, "slow", lease_s=0.5)
    assert queue.heartbeat(engine, first, lease_s=0.5)
    time.sleep(0.8)  # the lease runs out on the database clock
    second = queue.claim(engine, "fast", lease_s=60)
    assert second.job_id == first.job_id and second.attempt == 2
    assert not queue.heartbeat(engine, first, lease_s=60)
    assert not queue.complete(engine, first, [])
    assert queue.complete(engine, second, [])
    with engine.connect() as c:
        row = c.execute(select(jobs)).mappings().one()
    assert (row["status"], row["worker"], row["attempts"]) == ("done", "fast", 2)
    # A retried completion (its first reply lost) is a success for the claim that completed,
    # so the worker keeps its files; the lost claim still cannot complete.
    assert queue.complete(engine, second, [])
    assert not queue.complete(engine, first, [])


def test_failures_are_retried_then_quarantined_and_requeued(db_url):
    engine = planned(db_url, count=1)
    for attempt in range(1, 4):
        c = queue.claim(engine, "w", lease_s=60, max_attempts=3)
        assert c.attempt == attempt
        queue.fail(engine, c, f"boom {attempt}", max_attempts=3)
    assert queue.claim(engine, "w", lease_s=60, max_attempts=3) is None
    with engine.connect() as conn:
        row = conn.execute(select(jobs)).mappings().one()
    assert row["status"] == "failed" and row["last_error"] == "boom 3"
    assert queue.retry_failed(engine, row["run_id"]) == 1
    assert queue.claim(engine, "w", lease_s=60).attempt == 1


def test_expired_last_attempt_is_quarantined(db_url):
    engine = planned(db_url, count=1)
    for _ in range(2):
        queue.claim(engine, "dies", lease_s=0.2, max_attempts=2)
        time.sleep(0.4)
    assert queue.claim(engine, "w", lease_s=60, max_attempts=2) is None
    with engine.connect() as conn:
        row = conn.execute(select(jobs)).mappings().one()
    assert row["status"] == "failed" and "lease expired" in row["last_error"]


def test_release_does_not_count_as_an_attempt(db_url):
    engine = planned(db_url, count=1)
    c = queue.claim(engine, "w", lease_s=60)
    queue.release(engine, c)
    assert queue.claim(engine, "w2", lease_s=60).attempt == 1


def test_newer_schema_is_refused_in_one_line(db_url):
    engine = planned(db_url, count=1)
    with engine.begin() as conn:
        conn.execute(update(schema_version).values(version=99))
    with pytest.raises(JobError, match="schema version 99, newer than") as error:
        connect(db_url)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("url, message", [
    ("nosuchdialect://x", "not valid"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot reach database"),
    ("mysql://u@localhost/x", "not valid"),
])
def test_bad_database_urls_give_one_line(url, message):
    with pytest.raises(JobError, match=message) as error:
        connect(url)
    assert "\n" not in str(error.value)


def test_a_database_that_is_not_ours(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("create table customers (id int)")
    with pytest.raises(JobError, match="not a synthreid job database"):
        connect(f"sqlite:///{path}")
    with pytest.raises(JobError, match="empty.db does not exist; run 'synthreid plan' first"):
        connect(f"sqlite:///{tmp_path / 'empty.db'}", create=False)
    assert not (tmp_path / "empty.db").exists()  # a mistyped path creates no file
    sqlite3.connect(tmp_path / "blank.db").close()
    with pytest.raises(JobError, match="no synthreid tables"):
        connect(f"sqlite:///{tmp_path / 'blank.db'}", create=False)


def test_a_stalled_worker_cannot_delete_the_files_of_the_claim_that_completed(db_url, tmp_path):
    """The interleaving that lost data: A claims attempt 1 and stalls past its lease; the job
    is quarantined and retried, so B's claim is attempt 1 again; B uploads and completes; A
    wakes, finds its job lost and removes its own attempt's files."""
    from synthreid.farm.storage import Storage, attempt_prefix
    from synthreid.farm.worker import Worker

    engine = planned(db_url, count=1)
    storage_url = str(tmp_path / "storage")
    stalled = Worker(db_url, storage_url, name="A")
    a = queue.claim(engine, "A", lease_s=0.2, max_attempts=1)
    prefix_a = attempt_prefix(a.run_id, 0, a.attempt, a.token)
    stalled.storage.put_verified(b"half of A's upload", f"{prefix_a}/000000_000.png")
    time.sleep(0.5)
    assert queue.claim(engine, "B", lease_s=60, max_attempts=1) is None  # quarantined
    assert queue.retry_failed(engine, a.run_id) == 1
    b = queue.claim(engine, "B", lease_s=60, max_attempts=1)
    assert b.attempt == a.attempt  # the attempt number came back...
    prefix_b = attempt_prefix(b.run_id, 0, b.attempt, b.token)
    assert prefix_b != prefix_a  # ...but the claim's folder did not
    storage = Storage(storage_url)
    sha, size = storage.put_verified(b"B's image", f"{prefix_b}/000000_000.png")
    with engine.connect() as c:
        rows = c.execute(select(images.c.id)).scalars().all()
    results = [{"image_row": row, "key": f"{prefix_b}/000000_000.png", "sha256": sha,
                "size": size, "record": {}} for row in rows]
    assert queue.complete(engine, b, results)
    assert not queue.heartbeat(engine, a, lease_s=60)  # A wakes: its job is lost
    assert not queue.complete(engine, a, results)
    stalled._remove(prefix_a)  # what the worker does with a lost claim
    assert storage.read(f"{prefix_b}/000000_000.png") == b"B's image"
    assert storage.list(prefix_a) == []


def test_a_version_1_database_is_migrated_to_the_current_schema(db_url):
    engine = planned(db_url, count=1)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE jobs DROP COLUMN token"))
        conn.execute(text("DROP TABLE assets"))
        conn.execute(update(schema_version).values(version=1))
    engine.dispose()
    engine = connect(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(schema_version.c.version)).scalar() == 3
        assert conn.execute(select(assets)).all() == []
    assert queue.claim(engine, "w", lease_s=60).token


def test_an_interrupted_plan_is_not_whole_until_planned_again(db_url, tmp_path, monkeypatch):
    from synthreid.farm import plan as planning
    from synthreid.farm.export import export_run
    from synthreid.farm.supervisor import run_status

    monkeypatch.setattr(planning, "BATCH", 2)
    engine = connect(db_url)

    def interrupt(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plan_run(engine, "big", load_config("I"), 7, 1, seed=1, progress=interrupt)
    status = run_status(engine, run_id(engine, "big"))
    assert (status.characters_stored, status.characters_planned) == (2, 7)
    assert not status.planned_whole
    with engine.begin() as c:  # even with every stored job rendered...
        c.execute(update(jobs).values(status="done"))
    with pytest.raises(JobError, match="not whole: planning stopped at 2 of 7 characters"):
        export_run(db_url, str(tmp_path), "big", tmp_path / "out")
    plan_run(engine, "big", load_config("I"), 7, 1, seed=1)  # the same plan again finishes it
    assert run_status(engine, run_id(engine, "big")).planned_whole


def test_a_failing_plan_leaves_nothing_behind(db_url, monkeypatch):
    from synthreid.farm import plan as planning

    engine = connect(db_url)
    real = planning.sample_character

    def broken(config, index, seed):
        if index == 3:
            raise ValueError("cannot sample character 3")
        return real(config, index, seed)

    monkeypatch.setattr(planning, "sample_character", broken)
    with pytest.raises(ValueError, match="character 3"):
        plan_run(engine, "doomed", load_config("I"), 6, 2, seed=1)
    with engine.connect() as c:
        assert [len(c.execute(select(t)).all()) for t in (characters, images, jobs)] == [0, 0, 0]
    with pytest.raises(JobError, match="unknown run 'doomed'"):
        run_id(engine, "doomed")
    monkeypatch.setattr(planning, "sample_character", real)
    plan_run(engine, "doomed", load_config("I"), 6, 2, seed=1)  # the name is free again
    for name in ("", "   ", "x" * 201):
        with pytest.raises(JobError, match="run name: expected 1 to 200 characters"):
            plan_run(engine, name, load_config("I"), 1, 1, seed=1)


def test_a_hung_job_stops_renewing_its_lease_at_its_time_limit(db_url):
    from synthreid.farm.worker import Heartbeat, WorkerOptions

    engine = planned(db_url, count=1)
    hung = queue.claim(engine, "hung", lease_s=0.6)
    options = WorkerOptions(lease_s=0.6, heartbeat_s=0.1, job_timeout_s=0.4)
    beat = Heartbeat(engine, hung, options)
    beat.start()
    time.sleep(0.3)
    assert queue.claim(engine, "other", lease_s=60) is None  # renewed while in time
    assert beat.timed_out.wait(2.0) and not beat.is_alive()
    time.sleep(0.8)  # no renewal since the limit: the lease runs out
    taken = queue.claim(engine, "other", lease_s=60)
    assert taken is not None and taken.job_id == hung.job_id


def test_mixed_attempt_limits_cannot_strand_a_job(db_url):
    engine = planned(db_url, count=1)
    for _ in range(2):  # two failures under a worker that allows five attempts
        queue.fail(engine, queue.claim(engine, "lenient", 60, max_attempts=5), "boom", 5)
    assert queue.claim(engine, "strict", 60, max_attempts=2) is None
    with engine.connect() as c:
        assert c.execute(select(jobs.c.status)).scalar() == "failed"  # quarantined, not stuck


def test_worker_options_and_database_retries(tmp_path):
    from sqlalchemy.exc import OperationalError

    from synthreid.farm.worker import WorkerOptions, main, with_retries

    for bad, message in ((dict(lease_s=0), "--lease: expected seconds > 0"),
                         (dict(lease_s=-5), "--lease"),
                         (dict(heartbeat_s=200), "--heartbeat"),
                         (dict(max_attempts=0), "--max-attempts: expected at least 1"),
                         (dict(job_timeout_s=0), "--job-timeout")):
        with pytest.raises(JobError, match=message):
            WorkerOptions(**bad)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return "claimed"

    assert with_retries(flaky, budget_s=10) == "claimed" and len(calls) == 3

    def down():
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with pytest.raises(JobError, match=r"database unreachable for \d+ s: server closed"):
        with_retries(down, budget_s=1)
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db), "r", load_config("I"), 1, 1, seed=1)
    assert main(["--db", db, "--storage", str(tmp_path / "s"), "--run", "nope"]) == 2
    assert main(["--db", db, "--storage", str(tmp_path / "s"), "--lease", "0"]) == 2
