"""`synthreid fit` on a known answer: a target rendered from IV with hidden camera settings far
from IV's (low pitch, low resolution, defocus, heavy JPEG), fitted back at a tiny size
(Workbench). The recovery check fails with a constant objective."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.errors import ConfigError
from synthreid.evaluate.realism import Objective
from synthreid.farm.db import run_id
from synthreid.farm.plan import plan_run
from synthreid.farm.supervisor import render_run, run_status
from synthreid.fit.config import FitConfig
from synthreid.fit.renders import CandidateRenders
from synthreid.fit.search import Fit
from synthreid.scene.config import config_from_dict, load_config
from synthreid.typed import deep_merge

pytestmark = pytest.mark.render

RENDER = {"render": {"engine": "workbench", "samples": 1}, "crop": {"height_px": 96}}
HIDDEN = {"camera": {"theta_deg": [52.0, 58.0]},
          "camera_effects": {"height_px": [58, 62], "defocus_sigma_px": [1.4, 1.6],
                             "jpeg_quality": [38, 42]}}
TRUTH = {"polar_deg": 55.0, "resolution_scale": 0.625, "defocus_px": 1.5, "jpeg_quality": 40}
# What the fit must land on: the pitch and the JPEG quality on the true grid value, the two
# blurs (which trade off against each other) within one grid step.
TOLERANCE = {"polar_deg": 0.0, "jpeg_quality": 0.0, "resolution_scale": 0.2, "defocus_px": 1.0}
SEARCH = FitConfig(
    rounds=2, characters=8, images_per_character=4, target_images=100, engine="workbench",
    samples=1, crop_height_px=96, budget_minutes=30,
    attributes=[{"name": "resolution_scale", "candidates": [0.4, 0.625, 1.0]},
                {"name": "defocus_px", "candidates": [0.0, 1.5, 3.0]},
                {"name": "jpeg_quality", "candidates": [100, 70, 40]},
                {"name": "polar_deg", "candidates": [55.0, 70.0, 85.0]}])


def missed(values: dict) -> list[str]:
    """The hidden settings the fit did not recover (an attribute left as the preset has it
    counts as missed)."""
    return [name for name, truth in TRUTH.items()
            if name not in values or abs(values[name] - truth) > TOLERANCE[name]]


def config(extra: dict):
    return config_from_dict(deep_merge(deep_merge(load_config("IV").model_dump(mode="json"),
                                                  RENDER), extra))


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A job database and storage shared by the module's fits (so renders are made once), and a
    target in Market-1501 layout: the hidden settings' crops of other people (seed 99) as
    training images, and unreadable query and test images (a fit never opens them)."""
    root = tmp_path_factory.mktemp("fit")
    db, storage = f"sqlite:///{root / 'farm.db'}", str(root / "storage")
    hidden = config(HIDDEN)
    renders = CandidateRenders(db, storage, 12, 4, seed=99, workers=2)
    # The farm renders the hidden settings with their effects (as a worker applies them); the
    # fit renders its clean run of the same people and leaves the farm's run alone (a shared
    # database's other runs belong to their own workers and storage).
    plan_run(renders.engine, "hidden-with-effects", hidden, 12, 4, 99)
    renders.ensure([hidden])
    farm_run = run_status(renders.engine, run_id(renders.engine, "hidden-with-effects"))
    assert farm_run.images_done == 0 and farm_run.outstanding == 12
    render_run(db, storage, workers=2, run="hidden-with-effects")
    target = root / "target"
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (target / folder).mkdir(parents=True)
    farm_made = _run_crops(renders, "hidden-with-effects")
    for i, crop in enumerate(farm_made):
        Image.fromarray(crop).save(target / "bounding_box_train"
                                   / f"{i // 4 + 1:04d}_c1s1_{i:06d}_00.png")
    for folder in ("bounding_box_test", "query"):
        (target / folder / "0001_c2s1_000001_00.jpg").write_bytes(b"not an image")
    return {"root": root, "db": db, "storage": storage, "target": f"market1501:{target}",
            "renders": renders, "hidden": hidden, "farm_made": farm_made}


def _run_crops(renders, name):
    import io

    from sqlalchemy import select

    from synthreid.farm.db import characters, images, runs
    from synthreid.farm.storage import Storage

    storage = Storage(renders.storage_url, create=False)
    with renders.engine.connect() as connection:
        rows = connection.execute(
            select(images.c.storage_key, images.c.sha256)
            .join(characters, characters.c.id == images.c.character_id)
            .join(runs, runs.c.id == characters.c.run_id).where(runs.c.name == name)
            .order_by(characters.c.index, images.c.index)).all()
    return [np.asarray(Image.open(io.BytesIO(storage.read_verified(k, s))).convert("RGB"))
            for k, s in rows]


def test_effects_on_clean_renders_equal_the_farms(farm):
    ours = farm["renders"].crops(farm["hidden"])
    assert len(ours) == len(farm["farm_made"]) == 48
    for a, b in zip(ours, farm["farm_made"]):
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.fixture(scope="module")
def fitted(farm):
    fit = Fit("IV", farm["target"], farm["root"] / "fit", SEARCH, farm["db"], farm["storage"],
              workers=2)
    return fit, fit.run()


def test_fit_recovers_hidden_settings(fitted):
    fit, result = fitted
    assert missed(result.values) == [], (result.values, [(s.attribute, s.distances)
                                                         for s in result.steps])
    assert result.distance < result.start_distance
    # fit.yaml is a generation YAML that extends the preset with the fitted values.
    written = yaml.safe_load((fit.out / "fit.yaml").read_text())
    assert written["extends"] == "IV"
    loaded = load_config(fit.out / "fit.yaml")
    assert sum(loaded.camera.theta_deg) / 2 == pytest.approx(55.0)
    assert loaded.camera_effects.jpeg_quality == (35, 45)
    assert loaded.crop.height_px == 96
    report = (fit.out / "report.html").read_text()
    assert "polar_deg" in report and (fit.out / "curves.png").exists()
    steps = json.loads((fit.out / "fit.json").read_text())["steps"]
    assert len(steps) == 8 and all(len(s["sheets"]) == len(s["candidates"]) for s in steps)


def test_objective_ranks_the_true_setting_first(fitted):
    fit, _ = fitted
    truth = {k: v for k, v in TRUTH.items()}
    for name, grid in (("polar_deg", [55.0, 70.0, 85.0]), ("jpeg_quality", [100, 70, 40]),
                       ("resolution_scale", [0.4, 0.625, 1.0])):
        distances = [e["distance"] for e in fit.evaluate(
            [fit.config_for({**truth, name: v}) for v in grid])]
        assert grid[int(np.argmin(distances))] == truth[name], (name, distances)


def test_a_constant_objective_recovers_nothing(farm, monkeypatch):
    monkeypatch.setattr(Objective, "distance", lambda self, crops: 1.0)
    result = Fit("IV", farm["target"], farm["root"] / "constant", SEARCH, farm["db"],
                 farm["storage"], workers=2).run()
    assert missed(result.values) != []


def test_a_fit_run_again_renders_nothing_and_gives_the_same_yaml(fitted, farm, monkeypatch):
    fit, result = fitted
    before = (fit.out / "fit.yaml").read_text()

    def no_render(*args, **kwargs):
        raise AssertionError("a resumed fit rendered again")

    monkeypatch.setattr("synthreid.fit.renders.render_run", no_render)
    again = Fit("IV", farm["target"], fit.out, SEARCH, farm["db"], farm["storage"]).run()
    assert again.values == result.values
    assert (fit.out / "fit.yaml").read_text() == before


def test_a_folder_of_other_settings_is_refused(fitted, farm, tmp_path):
    fit, _ = fitted
    other = SEARCH.model_copy(update={"rounds": 1})
    with pytest.raises(ConfigError, match="holds a fit of other settings"):
        Fit("IV", farm["target"], fit.out, other, farm["db"], farm["storage"])
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(ConfigError, match="not a fit's"):
        Fit("IV", farm["target"], tmp_path, SEARCH, farm["db"], farm["storage"])
    assert (tmp_path / "mine.txt").read_text() == "a user's file"


def test_fit_command_end_to_end(farm, tmp_path):
    settings = tmp_path / "search.yaml"
    settings.write_text(yaml.safe_dump(
        {**SEARCH.model_dump(mode="json"), "rounds": 1,
         "attributes": [{"name": "jpeg_quality", "candidates": [100, 40]}]}))
    result = CliRunner().invoke(app, [
        "fit", "IV", "--target", farm["target"], "--out", str(tmp_path / "out"), "--config",
        str(settings), "--db", farm["db"], "--storage", farm["storage"], "--images", "32"])
    assert result.exit_code == 0, result.output
    assert "fit.yaml" in result.output
    assert load_config(tmp_path / "out" / "fit.yaml").camera_effects.jpeg_quality == (35, 45)
    bad = CliRunner().invoke(app, ["fit", "IV", "--target", farm["target"], "--out",
                                   str(tmp_path / "o2"), "--objective", "nonsense"])
    assert bad.exit_code != 0 and "objective" in bad.output


def test_the_time_budget_stops_the_search_and_still_writes_a_fit(farm):
    tight = SEARCH.model_copy(update={"budget_minutes": 1e-4})
    result = Fit("IV", farm["target"], farm["root"] / "budget", tight, farm["db"],
                 farm["storage"]).run()
    assert result.budget_reached and result.steps == [] and result.values == {}
    written = yaml.safe_load((farm["root"] / "budget" / "fit.yaml").read_text())
    assert written["extends"] == "IV" and "camera_effects" not in written
