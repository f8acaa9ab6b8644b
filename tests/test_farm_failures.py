"""A farm that fails loudly: storage that cannot work, workers that keep dying, failed jobs and a
database deleted under a run end `render` with a non-zero exit code and one line saying which;
a killed supervisor leaves no workers and no log folders behind."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update
from test_farm_workers import tiny, wait_for

from synthreid.errors import JobError
from synthreid.farm import supervisor
from synthreid.farm.db import assets, connect
from synthreid.farm.plan import plan_run
from synthreid.farm.supervisor import render_run, run_status

pytestmark = pytest.mark.render


def render_cli(db_url, storage, *extra, env=None, **popen):
    command = [sys.executable, "-m", "synthreid.cli", "render", "--db", db_url, "--storage",
               str(storage), "--lease", "5", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, **popen)


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_a_storage_path_that_is_a_file_is_one_line_before_any_worker(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db_url), "r", tiny(), 2, 1, seed=0)
    (tmp_path / "storage").write_text("a file, not a folder")
    process = render_cli(db_url, tmp_path / "storage")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "storage" in output and "cannot be made a folder" in output
    assert output.count("\n") == 1 and (tmp_path / "storage").read_text() == "a file, not a folder"


def test_workers_that_keep_dying_stop_render_with_their_last_error(tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db_url), "r", tiny(), 2, 1, seed=0)
    started = []

    def dying_worker(*args):  # dies at start for a reason that is no project error
        started.append(args)
        log = args[-1]
        with open(log, "a") as out:
            return subprocess.Popen([sys.executable, "-c", "import sys; print('error: "
                                     "OSError: [Errno 28] No space left on device'); "
                                     "sys.exit(1)"], stdout=out, stderr=subprocess.STDOUT)

    monkeypatch.setattr(supervisor, "_spawn", dying_worker)
    with pytest.raises(JobError, match=r"workers keep dying \(6 in a row with no image "
                                       r"finished\); the last said: OSError: \[Errno 28\]"):
        render_run(db_url, str(tmp_path / "storage"), workers=2)
    assert len(started) == 2 + 6 - 1  # two at start, restarted until the sixth death


def test_render_exits_1_when_jobs_failed(tmp_path, monkeypatch):
    faces = tmp_path / "cubemap"
    faces.mkdir()
    for face in ("px", "nx", "py", "ny", "pz", "nz"):
        Image.new("RGB", (8, 8), (90, 90, 90)).save(faces / f"{face}.png")
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = connect(db_url)
    plan_run(engine, "doomed", tiny("IV", cubemaps=[str(faces)]), 2, 1, seed=4)
    with engine.begin() as c:  # every job fails: its background no longer matches its checksum
        c.execute(update(assets).values(data=b"damaged"))
    process = render_cli(db_url, tmp_path / "storage", "--workers", "1",
                         env={"SYNTHREID_CACHE": str(tmp_path / "cache")})
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    assert "0 of 2 images done" in output
    assert last_line(output).startswith("error: 2 jobs failed") and "synthreid status" in output


def sqlite_workers(parent: int) -> list[int]:
    """Pids of worker processes started by the supervisor `parent` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"synthreid.farm.worker" in command and str(parent).encode() in command:
            found.append(int(entry.name))
    return found


def test_a_database_deleted_under_render_ends_it_non_zero(tmp_path, body_model):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = connect(db_url)
    plan_run(engine, "gone", tiny(), 6, 2, seed=2)
    process = render_cli(db_url, tmp_path / "storage", "--workers", "2")
    assert wait_for(lambda: run_status(engine).images_done >= 2, 240)
    (tmp_path / "jobs.db").unlink()
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 2, output
    assert "was removed or replaced while the run was going on" in last_line(output)
    assert not sqlite_workers(process.pid)


def test_a_killed_supervisor_leaves_no_workers_and_no_logs(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db_url), "orphans", tiny(), 1, 40, seed=6)  # one long character
    process = render_cli(db_url, tmp_path / "storage", "--workers", "2")
    assert wait_for(lambda: len(sqlite_workers(process.pid)) == 2, 60)
    workers = sqlite_workers(process.pid)
    logs = list(Path(tempfile.gettempdir()).glob(f"synthreid-workers-{process.pid}-*"))
    assert len(logs) == 1
    process.send_signal(signal.SIGKILL)
    process.wait()

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (ended, not yet reaped by init) counts as gone.
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"

    assert wait_for(lambda: all(gone(pid) for pid in workers), 60)
    # The next render sweeps the log folder of the killed supervisor away.
    supervisor._sweep_stale_logs()
    assert not logs[0].exists()


def cli(*args):
    return subprocess.Popen([sys.executable, "-m", "synthreid.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_plans_of_one_run_at_once_keep_it_whole_and_say_one_line(db_url):
    if db_url.startswith("sqlite"):
        connect(db_url)  # the file exists; the schema race is tried on PostgreSQL
    plans = [cli("plan", "II", "--run", "same", "-c", "300", "-m", "2", "--db", db_url)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in plans]
    for process, output in zip(plans, outputs):
        assert process.returncode in (0, 2), output
        if process.returncode == 2:
            assert output.startswith("error: ") and output.count("\n") == 1, output
            assert "at the same time" in output
    again = cli("plan", "II", "--run", "same", "-c", "300", "-m", "2", "--db", db_url)
    assert again.wait(timeout=300) == 0  # finishes whatever the loser left
    status = run_status(connect(db_url))
    assert status.characters_stored == 300 and status.images_total == 600
    assert status.jobs == {"pending": 300}


def test_two_exports_into_one_folder_keep_one_and_say_one_line(tmp_path, body_model):
    from synthreid.datasets import read_dataset
    from synthreid.farm.worker import Worker

    db_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan_run(connect(db_url), "small", tiny(), 4, 2, seed=3)
    Worker(db_url, str(tmp_path / "storage")).run()
    exports = [cli("export", "small", "--out", tmp_path / "ds", "--db", db_url, "--storage",
                   tmp_path / "storage") for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in exports]
    codes = sorted(p.returncode for p in exports)
    assert codes == [0, 2], outputs
    loser = outputs[[p.returncode for p in exports].index(2)]
    assert loser.startswith("error: ") and loser.count("\n") == 1, loser
    assert len(read_dataset("synthetic", tmp_path / "ds").train) > 0
    assert not list(tmp_path.glob(".ds-*"))  # no staging folder left behind
    (tmp_path / "file.txt").write_text("mine")
    blocked = cli("export", "small", "--out", tmp_path / "file.txt" / "ds", "--db", db_url,
                  "--storage", tmp_path / "storage")
    output = blocked.communicate(timeout=120)[0]
    assert blocked.returncode == 2 and output.count("\n") == 1, output
    assert "cannot write beside it" in output and (tmp_path / "file.txt").read_text() == "mine"
