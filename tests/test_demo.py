"""The end-to-end smoke test: `synthreid demo` at its smallest (plan, render with workers,
export, train, evaluate, report), and what `--real` adds."""

import re

import pytest
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.experiment.demo import demo_config
from synthreid.experiment.matrix import plan_experiment

pytestmark = pytest.mark.render


@pytest.mark.slow
def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--characters", "8", "--images", "3", "--epochs", "2",
            "--engine", "workbench", "--workers", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Figure A.1" in result.output and "| generated-IV |" in result.output
    assert "| generated-IV | own export | market |" in result.output
    assert "mAP (market) | queries (market) |" in result.output
    # The printed tables are results: how the run went (stages, versions, settings) is in the
    # report, not in what the demo prints.
    assert "Each synthetic model on its own export's test ids (thesis Figure A.1)" in \
        result.output
    assert "Versions" not in result.output and "Generation as it ran" not in result.output
    report = (out / "report.md").read_text()
    assert "| IV | workbench | " in report
    # The generated set's attribute statistics: 8 people, 24 images, polar angles within IV's.
    row = next(line for line in report.splitlines() if line.startswith("| IV | 24 | 8 |"))
    polar = float(row.split("|")[11].split("±")[0])
    assert 60 <= polar <= 90
    # Figure A.1's row carries the export's mAP and query count from the market protocol.
    assert re.search(r"\| generated-IV \| [\d.]+ ± [\d.]+ \|.*\| [\d.]+ \| [1-9]\d* \|\n",
                     result.output), result.output
    dataset = next((out / "stages").glob("generate-IV-*/dataset"))
    assert len(list((dataset / "bounding_box_train").glob("*.jpg"))) == 12
    assert (out / "report.html").stat().st_size > 10_000 and (out / "report.md").exists()
    assert next((out / "stages").glob("model-generated-IV-*/run/best.pt")).exists()
    # Running it again resumes: nothing is rendered, exported, trained or scored twice.
    markers = {p: p.stat().st_mtime_ns for p in (out / "stages").rglob("*") if p.is_file()}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "stages").rglob("*") if p.is_file()} == markers


def test_demo_with_a_real_set_adds_a_refiner_and_real_rows(tmp_path):
    stages = [s.name for s in plan_experiment(demo_config(real="market1501:/data/market"),
                                              tmp_path).stages]
    assert stages == [
        "generate-IV", "refiner-IV-cyclegan", "refine-IV-cyclegan", "model-generated-IV",
        "model-refined-IV-cyclegan",
        "model-real", "model-finetuned-refined-IV-cyclegan", "evaluate-hsv-on-real",
        "evaluate-generated-IV-on-real", "evaluate-generated-IV-on-own",
        "evaluate-refined-IV-cyclegan-on-real", "evaluate-refined-IV-cyclegan-on-own",
        "evaluate-real-on-real", "evaluate-finetuned-refined-IV-cyclegan-on-real"]
    assert [s.name for s in plan_experiment(demo_config(), tmp_path).stages] == [
        "generate-IV", "model-generated-IV", "evaluate-generated-IV-on-own"]
