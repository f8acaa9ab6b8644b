"""One progress protocol: long work reports `Progress` events (task, done so far, total,
values); only the command line draws them, so library modules never import rich or Typer."""

import subprocess
import sys

from synthreid.progress import Progress, report

LIBRARY = ["synthreid.farm.supervisor", "synthreid.farm.plan", "synthreid.preview",
           "synthreid.reid.train", "synthreid.refine.train", "synthreid.refine.apply",
           "synthreid.refine.masks", "synthreid.scene.photo_textures",
           "synthreid.experiment.matrix"]


def test_library_modules_never_import_the_display():
    code = (f"import sys, {', '.join(LIBRARY)}; "
            f"print(sorted(m for m in ('rich', 'typer') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_report_sends_counts_so_far_only_when_someone_listens():
    heard = []
    report(None, "nobody", 1, 2)
    report(heard.append, "rendering", 3, 10, rate=0.5)
    assert heard == [Progress("rendering", 3, 10, {"rate": 0.5})]


def test_a_plan_reports_characters_stored_so_far(tmp_path, monkeypatch):
    from synthreid.farm import plan as planning
    from synthreid.farm.db import connect
    from synthreid.scene.config import load_config

    monkeypatch.setattr(planning, "BATCH", 3)
    heard = []
    planning.plan_run(connect(f"sqlite:///{tmp_path / 'jobs.db'}"), "r", load_config("I"), 7,
                      1, seed=0, progress=heard.append)
    assert [(e.task, e.done, e.total) for e in heard] == [("planning", 3, 7), ("planning", 6, 7),
                                                          ("planning", 7, 7)]
