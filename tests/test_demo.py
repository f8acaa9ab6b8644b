"""The end-to-end smoke test: `synthreid demo` at its smallest (plan, render with workers,
export, train, evaluate)."""

import json

import pytest
from typer.testing import CliRunner

from synthreid.cli import app

pytestmark = pytest.mark.render


def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--characters", "8", "--images", "3", "--epochs", "2",
            "--engine", "workbench", "--workers", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| Market protocol |" in result.output and "thesis protocol (2 ids)" in result.output
    assert len(list((out / "dataset" / "bounding_box_train").glob("*.jpg"))) == 12
    report = json.loads((out / "report" / "cmc.json").read_text())
    assert set(report) == {"Market protocol", "thesis protocol (2 ids)"}
    assert (out / "report" / "cmc.png").exists() and (out / "reid" / "best.pt").exists()
    # Running it again resumes: nothing is rendered, exported or trained twice.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
