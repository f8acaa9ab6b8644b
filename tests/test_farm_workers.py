"""Workers rendering for real (Workbench, tiny crops) while they are killed, paused and failed."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import select, update
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.farm.db import assets, connect, images, jobs
from synthreid.farm.db import characters as characters_table
from synthreid.farm.plan import plan_run
from synthreid.farm.storage import Storage, sha256_of
from synthreid.farm.supervisor import run_status
from synthreid.farm.worker import Worker, WorkerOptions
from synthreid.scene.config import config_from_dict, load_config

pytestmark = pytest.mark.render


def tiny(preset="I", **room):
    data = load_config(preset).model_dump()
    data["render"].update(engine="workbench", samples=1, threads=1)
    data["crop"]["height_px"] = 64
    data["room"].update(room)
    return config_from_dict(data)


def spawn(db_url, storage, lease=3.0, heartbeat=0.5, log=None):
    command = [sys.executable, "-m", "synthreid.farm.worker", "--db", db_url, "--storage",
               str(storage), "--lease", str(lease), "--heartbeat", str(heartbeat),
               "--threads", "1"]
    return subprocess.Popen(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env=dict(os.environ))


def wait_for(predicate, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def assert_run_complete(engine, storage_root, image_count):
    with engine.connect() as c:
        rows = c.execute(select(images)).mappings().all()
        job_rows = c.execute(select(jobs)).mappings().all()
    assert all(j["status"] == "done" for j in job_rows)
    assert len(rows) == image_count and all(r["status"] == "done" for r in rows)
    storage = Storage(str(storage_root))
    keys = storage.list("runs")
    assert not [k for k in keys if ".tmp" in k]
    # Exactly one attempt per character survives, holding image, mask and record per image.
    attempts = {k.rsplit("/", 2)[0]: set() for k in keys}
    for k in keys:
        attempts[k.rsplit("/", 2)[0]].add(k.rsplit("/", 2)[1])
    assert all(len(a) == 1 for a in attempts.values())
    assert len(keys) == 3 * image_count
    for row in rows:
        assert sha256_of(storage.read(row["storage_key"])) == row["sha256"]
        assert row["storage_key"] in keys


def test_workers_killed_at_random_lose_and_duplicate_nothing(db_url, tmp_path, body_model):
    engine = connect(db_url)
    plan_run(engine, "kill", tiny(), 12, 2, seed=1)
    storage = tmp_path / "storage"
    rng = random.Random(7)
    workers = [spawn(db_url, storage) for _ in range(4)]
    kills = 0
    try:
        deadline = time.time() + 300
        while run_status(engine).outstanding and time.time() < deadline:
            time.sleep(rng.uniform(0.5, 2.5))
            alive = [w for w in workers if w.poll() is None]
            if kills < 5 and alive:
                rng.choice(alive).send_signal(signal.SIGKILL)
                kills += 1
            workers = [w if w.poll() is None else spawn(db_url, storage) for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait()
    assert kills == 5
    assert run_status(engine).outstanding == 0
    assert_run_complete(engine, storage, 24)


def test_a_paused_worker_loses_its_job_and_its_late_completion_is_rejected(db_url, tmp_path):
    engine = connect(db_url)
    plan_run(engine, "pause", tiny(), 1, 6, seed=2)
    storage = tmp_path / "storage"
    log_a = open(tmp_path / "a.log", "w")
    a = spawn(db_url, storage, lease=2.0, heartbeat=0.3, log=log_a)

    def running():
        with engine.connect() as c:
            return c.execute(select(jobs.c.status)).scalar() == "running"

    assert wait_for(running, 120)
    a.send_signal(signal.SIGSTOP)  # paused before it can finish the character
    time.sleep(3.0)  # past its lease
    b = spawn(db_url, storage, lease=30.0)
    assert wait_for(lambda: run_status(engine).outstanding == 0, 120)
    a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    log_a.close()
    assert "1 lost" in (tmp_path / "a.log").read_text()
    with engine.connect() as c:
        job = c.execute(select(jobs)).mappings().one()
    assert job["status"] == "done" and job["attempts"] == 2
    assert_run_complete(engine, storage, 6)


class FlakyStorage(LocalFileSystem):
    """A local folder whose first mask upload dies half way (the connection drops)."""

    protocol = ("flaky",)
    failures_left = 1

    def pipe_file(self, path, value, **kwargs):
        if FlakyStorage.failures_left and ".mask.png" in path:
            FlakyStorage.failures_left -= 1
            with open(path, "wb") as half:
                half.write(value[: len(value) // 2])
            raise OSError("connection reset during upload")
        return super().pipe_file(path, value, **kwargs)


def test_a_storage_failure_mid_upload_leaves_the_job_undone_until_a_retry(db_url, tmp_path,
                                                                         body_model):
    fsspec.register_implementation("flaky", FlakyStorage, clobber=True)
    FlakyStorage.failures_left = 1
    engine = connect(db_url)
    plan_run(engine, "flaky", tiny(), 2, 2, seed=3)
    worker = Worker(db_url, f"flaky://{tmp_path / 'storage'}", WorkerOptions(lease_s=60))
    report = worker.run()
    assert report.failed == 1 and report.done == 2
    assert "connection reset" in report.errors[0]
    with engine.connect() as c:
        attempts = sorted(c.execute(select(jobs.c.attempts)).scalars())
    assert attempts == [1, 2]
    assert_run_complete(engine, tmp_path / "storage", 4)


def test_a_job_that_always_fails_is_quarantined_with_its_error(db_url, tmp_path, monkeypatch,
                                                              body_model):
    faces = tmp_path / "cubemap"
    faces.mkdir()
    from PIL import Image

    for face in ("px", "nx", "py", "ny", "pz", "nz"):
        Image.new("RGB", (8, 8), (90, 90, 90)).save(faces / f"{face}.png")
    config = tiny("IV", cubemaps=[str(faces)])
    engine = connect(db_url)
    plan_run(engine, "doomed", config, 1, 1, seed=4)
    with engine.begin() as c:  # the stored background is damaged after planning
        c.execute(update(assets).values(data=b"damaged"))
    monkeypatch.setenv("SYNTHREID_CACHE", str(tmp_path / "cache"))  # nothing cached yet
    report = Worker(db_url, str(tmp_path / "storage"), WorkerOptions(max_attempts=3)).run()
    assert report.failed == 3 and report.done == 0
    with engine.connect() as c:
        job = c.execute(select(jobs)).mappings().one()
    assert job["status"] == "failed" and job["attempts"] == 3
    result = CliRunner().invoke(app, ["status", "--db", db_url])
    assert result.exit_code == 0
    assert "failed character 0 after 3 attempts" in result.output
    assert "does not match its checksum" in result.output
    retried = CliRunner().invoke(app, ["retry", "doomed", "--db", db_url])
    assert "1 failed jobs of 'doomed' requeued" in retried.output
    unknown = CliRunner().invoke(app, ["retry", "nope", "--db", db_url])
    assert unknown.exit_code == 2 and "unknown run 'nope'" in unknown.output


def test_a_hostile_asset_name_in_a_job_row_writes_nothing_outside_the_cache(
        db_url, tmp_path, monkeypatch):
    """Whoever can write a shared farm database could name an asset `<sha>.bvh/../../../X`, so
    that a worker writes X anywhere (a .pth in site-packages runs code). The job is
    quarantined with one line at once, and nothing is written outside the cache."""
    import hashlib

    engine = connect(db_url)
    plan_run(engine, "hostile", tiny(), 1, 1, seed=4)
    payload = b"import os  # would run at every interpreter start"
    digest = hashlib.sha256(payload).hexdigest()
    with engine.begin() as c:
        c.execute(assets.insert().values(sha256=digest, suffix=".bvh", data=payload))
        spec = c.execute(select(characters_table.c.spec)).scalar()
        spec["gait"]["motion"] = f"asset:{digest}.bvh/../../../planted.pth"
        c.execute(update(characters_table).values(spec=spec))
    monkeypatch.setenv("SYNTHREID_CACHE", str(tmp_path / "cache"))
    report = Worker(db_url, str(tmp_path / "storage"), WorkerOptions(max_attempts=3)).run()
    assert (report.done, report.failed) == (0, 1)
    assert "not a content key" in report.errors[0] and "\n" not in report.errors[0]
    with engine.connect() as c:
        job = c.execute(select(jobs)).mappings().one()
    assert (job["status"], job["attempts"]) == ("failed", 1)  # never retried
    assert not list(tmp_path.rglob("planted.pth"))
    assert not (tmp_path / "cache" / "assets").exists() or not list(
        (tmp_path / "cache" / "assets").iterdir())


def test_export_writes_a_market_dataset_the_reader_accepts(tmp_path, body_model):
    from synthreid.datasets import read_dataset

    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = connect(db_url)
    plan_run(engine, "export", tiny("IV"), 8, 3, seed=9)
    Worker(db_url, str(tmp_path / "storage")).run()
    runner = CliRunner()
    result = runner.invoke(app, ["export", "export", "--out", str(tmp_path / "ds"), "--db", db_url,
                                 "--storage", str(tmp_path / "storage")])
    assert result.exit_code == 0, result.output
    data = read_dataset("synthetic", tmp_path / "ds")
    ids = [{r.pid for r in part} for part in (data.train, data.validation, data.query)]
    assert [len(i) for i in ids] == [4, 2, 2]  # a quarter of 8 ids held out for test and val
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert {r.pid for r in data.gallery} <= ids[2]
    assert {r.camid for r in data.train + data.query + data.gallery} <= {1, 2}
    assert all(r.mask is not None and r.mask.exists() for r in data.train)
    coco = json.loads((tmp_path / "ds" / "keypoints.json").read_text())
    assert len(coco["annotations"]) == 24
    assert (tmp_path / "ds" / "metadata.csv").read_text().count("\n") == 25
    again = runner.invoke(app, ["export", "export", "--out", str(tmp_path / "ds"), "--db", db_url,
                                "--storage", str(tmp_path / "storage")])
    assert again.exit_code == 2 and "not empty" in again.output
    # What torchreid's and fast-reid's Market-1501 readers do: glob *.jpg, parse with this
    # regex, and assert ids in 0..1501 and cameras 1..6.
    pattern = re.compile(r"([-\d]+)_c(\d)")
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        found = sorted((tmp_path / "ds" / folder).glob("*.jpg"))
        assert found and len(found) == len(list((tmp_path / "ds" / folder).iterdir()))
        for path in found:
            pid, camid = map(int, pattern.search(path.name).groups())
            assert 0 <= pid <= 1501 and 1 <= camid <= 6
            assert (tmp_path / "ds" / "masks" / f"{path.stem}.png").exists()
    boxes = [a["bbox"] for a in coco["annotations"]]
    assert all(w > 0 and h > 0 for _, _, w, h in boxes) and coco["annotations"][0]["area"] > 0
    trained = runner.invoke(app, ["reid", "train", "--data", f"synthetic:{tmp_path / 'ds'}",
                                  "--out", str(tmp_path / "reid"), "--epochs", "1",
                                  "--milestone", "0", "--height", "64", "--width", "32",
                                  "--workers", "0", "--embedding", "16"])
    assert trained.exit_code == 0, trained.output


def test_export_refuses_damaged_files_and_bad_arguments_in_one_line(tmp_path, body_model):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db_url), "small", tiny(), 4, 1, seed=3)
    Worker(db_url, str(tmp_path / "storage")).run()
    runner = CliRunner()

    def export(out, storage=tmp_path / "storage", *extra):
        return runner.invoke(app, ["export", "small", "--out", str(out), "--db", db_url,
                                   "--storage", str(storage), *extra])

    missing = tmp_path / "no-such-storage"
    result = export(tmp_path / "a", missing)
    assert result.exit_code == 2 and "no such folder or bucket" in result.output
    assert not missing.exists()  # a wrong --storage creates nothing
    (tmp_path / "file.txt").write_text("mine")
    result = export(tmp_path / "file.txt")
    assert result.exit_code == 2 and "exists and is not a folder" in result.output
    assert (tmp_path / "file.txt").read_text() == "mine"
    result = export(tmp_path / "b", tmp_path / "storage", "--format", "gif")
    assert result.exit_code == 2 and "'gif' is not one of 'jpg', 'png'" in result.output
    png = export(tmp_path / "png", tmp_path / "storage", "--format", "png")
    assert png.exit_code == 0 and list((tmp_path / "png" / "query").glob("*.png"))
    storage = Storage(str(tmp_path / "storage"))
    mask = next(k for k in storage.list("runs") if k.endswith(".mask.png"))
    storage.fs.pipe_file(storage.path(mask), b"\x89PNG damaged")
    result = export(tmp_path / "c")
    assert result.exit_code == 2 and "does not match its checksum" in result.output
    assert mask in result.output and not (tmp_path / "c").exists()


def test_sigterm_gives_the_current_job_back_untouched(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = connect(db_url)
    plan_run(engine, "term", tiny(), 1, 40, seed=6)  # one long character
    storage = tmp_path / "storage"
    worker = spawn(db_url, storage, lease=60.0)

    def rendering():
        return bool(Storage(str(storage)).list("runs")) if storage.exists() else False

    assert wait_for(lambda: run_status(engine).jobs.get("running") == 1, 120)
    time.sleep(2.0)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    with engine.connect() as c:
        job = c.execute(select(jobs)).mappings().one()
    assert (job["status"], job["attempts"], job["worker"]) == ("pending", 0, None)
    assert not rendering()  # its partial upload was removed


def test_a_job_needs_none_of_the_planning_machines_files(tmp_path, monkeypatch, body_model):
    """Plan with a user cubemap folder and a BVH folder, then take both away (as on another
    machine, with an empty cache): the worker renders from what the job database holds."""
    import shutil

    from test_bvh import cmu_like_bvh

    from synthreid.scene.backgrounds import builtin_cubemap

    cubemap = tmp_path / "planner" / "mall"
    shutil.copytree(builtin_cubemap("office"), cubemap)
    motions = tmp_path / "planner" / "bvh"
    motions.mkdir()
    (motions / "walk.bvh").write_text(cmu_like_bvh([{}, {"LeftUpLeg": (0, 0, -30)}]))
    config = tiny("IV", kind="cubemap", cubemaps=[str(cubemap)])
    config = config.model_copy(update={"gait": config.gait.model_copy(
        update={"bvh_folder": str(motions)})})
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = connect(db_url)
    plan_run(engine, "frozen", config, 2, 1, seed=4)
    with engine.connect() as c:
        specs = json.dumps(c.execute(select(characters_table.c.spec)).scalars().all())
    assert str(tmp_path / "planner") not in specs and "asset:" in specs
    shutil.rmtree(tmp_path / "planner")
    monkeypatch.setenv("SYNTHREID_CACHE", str(tmp_path / "other-machine-cache"))
    report = Worker(db_url, str(tmp_path / "storage")).run()
    assert (report.done, report.failed, report.errors) == (2, 0, [])
    cached = list((tmp_path / "other-machine-cache" / "assets").rglob("*"))
    assert any(p.suffix == ".bvh" for p in cached) and any(p.name.startswith("px") for p in cached)
