"""`synthreid experiment` end to end on tiny data: a generated preset and a Market-layout "real"
set written here. Killed in the middle of a stage and resumed, it recomputes nothing finished
and ends with the numbers of an uninterrupted run; the real test images are opened by the
evaluation stages only; the HTML report shows every table and image in a real browser."""

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.datasets.toy import write_toy_market
from synthreid.errors import ConfigError
from synthreid.experiment.config import load_experiment_config

REPO = Path(__file__).resolve().parents[1]
TEST_FOLDERS = ("query", "bounding_box_test")


def write_real(root: Path) -> Path:
    """30 people as coloured blocks (20 training ids, 10 test ids), two cameras."""
    return write_toy_market(root, people=30)


TINY = {
    "presets": ["IV"],
    "generation": {"characters": 20, "images": 2, "crop_height": 64, "engine": "workbench",
                   "workers": 2},
    "refiners": {"methods": {"IV": ["cyclegan", "ptgan"]},
                 "settings": {"iterations": 4, "height": 32, "width": 32, "ngf": 8, "ndf": 8,
                              "sample_every": 2, "checkpoint_every": 2, "log_every": 1,
                              # 4 iterations from random weights keep no identity (20 against
                              # 80 rank-1): the margin lets the plumbing run; the choice itself
                              # is tested in test_refine_identity.py
                              "identity_margin": 100}},
    "reid": {"settings": {"epochs": 8, "batch_size": 8, "workers": 0,
                          "model": {"embedding": 32}, "augment": {"height": 32, "width": 16,
                                                                  "pad": 2},
                          "warmup_epochs": 0, "milestones": [6], "validation_repeats": 2}},
    "finetune": ["refined-IV-ptgan"],
    "mixed": ["generated-IV"],
    "evaluation": {"repeats": 3},
}


def write_config(folder: Path, real: Path, **changes) -> Path:
    """The tiny config beside a real set (written when missing: configs open it as they load)."""
    if not real.exists():
        write_real(real)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"real": f"market1501:{real}", **TINY, **changes}))
    return path


def with_second(folder: Path, real: Path) -> Path:
    """The tiny config plus a second real set (Figure A.2), of other people."""
    second = write_toy_market(folder / "second", people=15, seed=7)
    return write_config(folder, real, second_real=f"market1501:{second}")


def records(out: Path) -> dict[str, dict]:
    """Each finished stage's record, by stage name."""
    found = {}
    for marker in (out / "stages").glob("*/stage.json"):
        record = json.loads(marker.read_text())
        found[record["name"]] = record
    return found


def mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def experiment(config: str | Path, out: str | Path, cwd: Path | None = None) -> tuple[int, str]:
    """`synthreid experiment` in a process of its own, as a user runs it: nothing this test
    process did before (other tests' imports and state) reaches its numbers."""
    done = subprocess.run([sys.executable, "-m", "synthreid.cli", "experiment", str(config),
                           "--out", str(out)], cwd=cwd, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def training_curve(stage: Path) -> list[list[str]]:
    """What a refiner or re-id stage computed, epoch by epoch (its losses and validation),
    without the wall-clock columns."""
    log = next(stage.glob("refiner/losses.csv"), None) or stage / "run" / "log.csv"
    rows = [line.split(",") for line in log.read_text().splitlines()]
    keep = [i for i, column in enumerate(rows[0]) if column != "images_per_s"]
    return [[row[i] for i in keep] for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    config = with_second(root, write_real(root / "real"))
    code, output = experiment(config.name, "out", cwd=root)  # relative, as a user types them
    assert code == 0, output
    return root / "out"


@pytest.mark.slow
def test_a_killed_experiment_resumes_to_the_same_numbers_touching_test_images_last(
        uninterrupted, tmp_path):
    real = write_real(tmp_path / "real")
    config = with_second(tmp_path, real)
    out = tmp_path / "out"
    originals = {p: p.read_bytes() for f in TEST_FOLDERS for p in (real / f).iterdir()}
    for path in originals:
        path.write_bytes(b"not an image")  # nothing before the evaluation may open these

    # Kill -9 while the real-data model is between its first and last epoch.
    process = subprocess.Popen([sys.executable, "-m", "synthreid.cli", "experiment",
                                str(config), "--out", str(out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        logs = list((out / "stages").glob("model-real-*/run/log.csv"))
        if logs and len(logs[0].read_text().splitlines()) >= 2:  # header + epoch 0
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert logs, f"the experiment ended (exit {process.returncode}) before model-real trained"
    stage = logs[0].parent.parent
    assert not (stage / "stage.json").exists(), "the stage finished before it was killed"
    finished = records(out)
    assert {"generate-IV", "refine-IV-cyclegan", "refine-IV-ptgan"} <= set(finished)
    before = {name: mtimes(out / "stages" / f"{name}-{r['key']}") for name, r in finished.items()}
    # The reference run starts from the same finished stages and runs the rest without a
    # break: what is compared is resuming, not training the finished stages a second time.
    reference_out = tmp_path / "reference"
    shutil.copytree(out, reference_out, ignore=shutil.ignore_patterns(stage.name))

    # Resumed: every training stage finishes; the first evaluation stops at a test image.
    code, output = experiment(config, out)
    assert code == 2 and "not an image" not in output, output
    assert re.search(r"(query|bounding_box_test)/\d{4}_c\d", output), output
    assert all(name.startswith("evaluate-") for name in set(records(out)) ^ set(
        records(uninterrupted)))
    for name, files in before.items():
        assert mtimes(out / "stages" / f"{name}-{finished[name]['key']}") == files, name

    for path, data in originals.items():
        path.write_bytes(data)
    code, output = experiment(config, out)
    assert code == 0, output
    code, output = experiment(config, reference_out)
    assert code == 0, output
    ours, reference = records(out), records(reference_out)
    assert set(ours) == set(reference) == set(records(uninterrupted))
    trained = [name for name, r in reference.items()
               if r["kind"] == "model" and name not in finished]
    assert "model-real" in trained
    diverged = [name for name in sorted(trained) if training_curve(
        out / "stages" / f"{name}-{ours[name]['key']}") != training_curve(
        reference_out / "stages" / f"{name}-{reference[name]['key']}")]
    assert not diverged, f"trained otherwise than in the uninterrupted run: {diverged}"
    for name, record in reference.items():
        if record["kind"] == "evaluate":
            assert ours[name]["result"]["scores"] == record["result"]["scores"], name


@pytest.mark.slow
def test_the_html_report_shows_every_table_and_image_in_a_browser(uninterrupted):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (.ci/run installs Debian's chromium)")
    report = uninterrupted / "report.html"
    probe = uninterrupted / "probe.html"
    # The page reports what it rendered: images decoded (naturalWidth) and tables laid out.
    probe.write_text(report.read_text().replace("</body>", """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth}));
  const tables = [...document.querySelectorAll('table')].map(
    t => ({title: t.dataset.title, rows: t.rows.length, height: t.offsetHeight}));
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});</script></body>"""))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)[1]))
    titles = [t["title"] for t in found["tables"]]
    for expected in ("Table 3.2", "Table 3.3", "Table 3.4", "Figure A.1", "Figure A.2",
                     "Standard protocols", "Refiners: identity kept", "Stages",
                     "Generation as it ran", "Generated sets: attribute statistics"):
        assert any(expected in title for title in titles), (expected, titles)
    assert all(t["rows"] >= 2 and t["height"] > 0 for t in found["tables"])
    captions = [i["alt"] for i in found["images"]]
    # Ranked retrieval strips: one per model scored on the real test ids, the baseline too.
    strips = [c for c in captions if "green: the same person" in c]
    assert len(strips) >= 3 and any(c.startswith("hsv:") for c in strips), captions
    # 5 CMC plots, 4 contact sheets, 2 refiners' identity and realism, validation curves
    assert len(captions) - len(strips) == 12, captions
    assert sum("identity and realism per checkpoint" in c for c in captions) == 2, captions
    assert all(i["width"] > 0 for i in found["images"]), found["images"]
    shots = REPO / "test-artifacts"
    shots.mkdir(exist_ok=True)
    subprocess.run([browser, *flags, "--window-size=1200,5000",
                    f"--screenshot={shots / 'experiment-report.png'}", report.as_uri()],
                   capture_output=True, timeout=120)
    assert (shots / "experiment-report.png").stat().st_size > 10_000


def test_a_changed_setting_reruns_only_what_depends_on_it(tmp_path):
    """Stage keys: a re-id setting changes the models and evaluations, never generation or
    refinement; a refiner setting changes that refiner and what follows it."""
    from synthreid.experiment.matrix import plan_experiment

    config = load_experiment_config(write_config(tmp_path, tmp_path / "real"))
    base = {s.name: s.key for s in plan_experiment(config, tmp_path).stages}
    reid = json.loads(json.dumps(TINY["reid"]))
    reid["settings"]["epochs"] = 9
    changed = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid))
    keys = {s.name: s.key for s in plan_experiment(changed, tmp_path).stages}
    assert {n for n in base if keys[n] != base[n]} == {  # the colour baseline has no model
        n for n in base if n.startswith(("model-", "evaluate-")) and n != "evaluate-hsv-on-real"}
    refiners = json.loads(json.dumps(TINY["refiners"]))
    refiners["methods"]["IV"] = ["cyclegan", "ptgan"]
    refiners["settings"]["iterations"] = 5
    changed = load_experiment_config(write_config(tmp_path, tmp_path / "real", refiners=refiners))
    keys = {s.name: s.key for s in plan_experiment(changed, tmp_path).stages}
    moved = {n for n in base if keys[n] != base[n]}
    assert "generate-IV" not in moved and "model-real" not in moved
    assert "evaluate-generated-IV-on-own" not in moved
    assert {"refiner-IV-cyclegan", "refine-IV-cyclegan", "model-refined-IV-ptgan",
            "evaluate-finetuned-refined-IV-ptgan-on-real"} <= moved


def test_a_dataset_yamls_comments_leave_stage_keys_and_its_values_do_not(tmp_path):
    """A real dataset given as a YAML names the stages that read it by its values: an edited
    comment or a re-wrapped line reruns nothing; another root reruns what reads it."""
    from synthreid.experiment.matrix import plan_experiment

    real = write_real(tmp_path / "real")
    described = tmp_path / "real.yaml"

    def keys(text: str) -> dict[str, str]:
        described.write_text(text)
        config = load_experiment_config(write_config(tmp_path, real), real=str(described))
        return {s.name: s.key for s in plan_experiment(config, tmp_path).stages}

    base = keys(f"layout: market1501\nroot: {real}\n")
    assert keys(f"# our copy of the toy set\nlayout:   market1501\n\nroot: {real}  # here\n") \
        == base
    copy = shutil.copytree(real, tmp_path / "copy")
    moved = keys(f"layout: market1501\nroot: {copy}\n")
    assert {"model-real", "evaluate-generated-IV-on-real"} <= \
        {n for n in base if moved[n] != base[n]}
    assert moved["generate-IV"] == base["generate-IV"]


def test_real_seeds_off_trains_the_real_model_once(tmp_path):
    """`reid.real_seeds: false`: the extra seeds repeat every model but the real-only one."""
    from synthreid.experiment.matrix import plan_experiment

    reid = {**TINY["reid"], "seeds": [3]}
    every = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid))
    once = load_experiment_config(write_config(tmp_path, tmp_path / "real",
                                               reid={**reid, "real_seeds": False}))
    every_names = {s.name for s in plan_experiment(every, tmp_path).stages}
    once_names = {s.name for s in plan_experiment(once, tmp_path).stages}
    assert every_names - once_names == {"model-real-seed3", "evaluate-real-seed3-on-real"}
    assert {"model-real", "model-generated-IV-seed3", "model-mixed-generated-IV-seed3"} \
        <= once_names


def test_training_seeds_repeat_every_model_on_the_same_data(tmp_path):
    """`reid.seeds`: each model (and each score of it) again per extra seed, on the renders and
    refiners of the experiment's seed; the experiment's seed keeps its stages' names and keys."""
    from synthreid.experiment.matrix import plan_experiment

    config = load_experiment_config(write_config(tmp_path, tmp_path / "real"))
    base = {s.name: s for s in plan_experiment(config, tmp_path).stages}
    reid = {**TINY["reid"], "seeds": [3]}
    seeded = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid))
    stages = {s.name: s for s in plan_experiment(seeded, tmp_path).stages}
    assert {n: s.key for n, s in stages.items() if n in base} == \
        {n: s.key for n, s in base.items()}
    extra = {n: s for n, s in stages.items() if n not in base}
    assert set(extra) == {f"model-{n.removeprefix('model-')}-seed3" for n in base
                          if n.startswith("model-")} | {
        n.replace("-on-", "-seed3-on-") for n in base
        if n.startswith("evaluate-") and n != "evaluate-hsv-on-real"}
    assert all(s.settings["seed"] == 3 for n, s in extra.items() if n.startswith("model-"))
    finetuned = extra["model-finetuned-refined-IV-ptgan-seed3"]
    assert [s.name for s in finetuned.inputs] == ["model-refined-IV-ptgan-seed3"]
    assert [s.name for s in extra["evaluate-generated-IV-seed3-on-own"].inputs] == \
        ["model-generated-IV-seed3", "generate-IV"]
    assert [s.name for s in extra["model-refined-IV-cyclegan-seed3"].inputs] == \
        ["refine-IV-cyclegan"]
    for bad, expected in [([0], "reid.seeds: 0 is the experiment's seed"),
                          ([2, 2], "seeds: expected distinct")]:
        path = write_config(tmp_path, tmp_path / "real", reid={**TINY["reid"], "seeds": bad})
        with pytest.raises(ConfigError, match=expected):
            load_experiment_config(path)


def test_refiners_per_seed_retrain_each_refiner_with_each_extra_seed(tmp_path):
    """`refiners.per_seed`: seed 3's refined models learn from refiners trained with seed 3
    (their own stages, on the same renders); the experiment's seed's stages keep their keys."""
    from synthreid.experiment.matrix import plan_experiment

    reid = {**TINY["reid"], "seeds": [3]}
    shared = {s.name: s for s in plan_experiment(load_experiment_config(
        write_config(tmp_path, tmp_path / "real", reid=reid)), tmp_path).stages}
    refiners = {**TINY["refiners"], "per_seed": True}
    config = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid,
                                                 refiners=refiners))
    stages = {s.name: s for s in plan_experiment(config, tmp_path).stages}
    assert set(stages) - set(shared) == {f"{kind}-IV-{method}-seed3" for kind in
                                         ("refiner", "refine") for method in ("cyclegan", "ptgan")}
    assert {n: s.key for n, s in stages.items() if n in shared and "seed3" not in n} == \
        {n: s.key for n, s in shared.items() if "seed3" not in n}
    for method in ("cyclegan", "ptgan"):
        refiner = stages[f"refiner-IV-{method}-seed3"]
        assert refiner.settings["seed"] == 3 and \
            stages[f"refiner-IV-{method}"].settings["seed"] == 0
        assert [s.name for s in refiner.inputs] == [s.name for s in
                                                    stages[f"refiner-IV-{method}"].inputs]
        refined = stages[f"refine-IV-{method}-seed3"]
        assert [s.name for s in refined.inputs] == [refiner.name, "generate-IV"]
        assert [s.name for s in stages[f"model-refined-IV-{method}-seed3"].inputs] == \
            [refined.name]
        assert [s.name for s in stages[f"evaluate-refined-IV-{method}-seed3-on-own"].inputs] == \
            [f"model-refined-IV-{method}-seed3", refined.name]
        assert [s.name for s in stages[f"model-refined-IV-{method}"].inputs] == \
            [f"refine-IV-{method}"]
    assert [s.name for s in stages["model-generated-IV-seed3"].inputs] == ["generate-IV"]
    path = write_config(tmp_path, tmp_path / "real", refiners=refiners)
    with pytest.raises(ConfigError, match="refiners.per_seed: .*reid.seeds is empty"):
        load_experiment_config(path)


def test_the_report_gives_each_models_spread_over_training_seeds(tmp_path):
    """The seed table: per model, each seed's R1 and CMC area and their mean ± sample standard
    deviation; the thesis tables keep the experiment's seed only."""
    import numpy as np

    from synthreid.evaluate.protocols import CMCResult
    from synthreid.experiment.matrix import plan_experiment
    from synthreid.experiment.report import Table, build_blocks

    reid = {**TINY["reid"], "seeds": [1, 2]}
    config = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid))
    stages = plan_experiment(config, tmp_path).stages
    results = {}
    for stage in stages:  # R1 = seed / 10 + 0.1 for every model: 10, 20, 30 percent
        if stage.kind == "evaluate" and stage.settings["on"] == "real":
            seed = stage.inputs[0].settings["seed"] if stage.inputs else 0
            cmc = np.full(10, 1.0)
            cmc[0] = seed / 10 + 0.1
            results[stage.name] = {"scores": {"thesis": CMCResult(
                cmc, np.zeros(10), extra={"identities": 10, "repeats": 3}).to_record()},
                "dataset_name": "market1501"}
    blocks = build_blocks(stages, results, tmp_path / "report", "config")
    tables = {b.title: b for b in blocks if isinstance(b, Table)}
    seeds = tables["Training seeds: how far one seed moves a row"]
    row = next(r for r in seeds.rows if r[0] == "generated-IV")
    assert row[1:5] == ["real", "0, 1, 2", "10.0 / 20.0 / 30.0", "20.0 ± 10.0"]
    assert {r[0] for r in seeds.rows} == {"generated-IV", "refined-IV-cyclegan",
                                          "refined-IV-ptgan", "real",
                                          "finetuned-refined-IV-ptgan", "mixed-generated-IV"}
    generated = next(t for t in tables.values() if "Table 3.2" in t.title)
    assert [r[0] for r in generated.rows] == ["chance", "hsv", "generated-IV"]


def test_the_report_gives_each_refiners_choice_per_seed(tmp_path):
    """`refiners.per_seed`: a table of the checkpoint each seed's refiner used, its identity and
    realism per seed and their mean ± sample standard deviation over the seeds that kept
    identity; a seed whose refiner kept none is counted and shown as such."""
    from synthreid.experiment.matrix import plan_experiment
    from synthreid.experiment.report import Table, build_blocks

    reid = {**TINY["reid"], "seeds": [1, 2]}
    refiners = {**TINY["refiners"], "per_seed": True}
    config = load_experiment_config(write_config(tmp_path, tmp_path / "real", reid=reid,
                                                 refiners=refiners))
    stages = plan_experiment(config, tmp_path).stages
    results = {}
    for stage in (s for s in stages if s.kind == "refine"):
        seed = stage.settings["seed"]
        log = tmp_path / f"{stage.name}.csv"
        log.write_text("iteration,identity_refined,identity_cross,realism,kept_identity,"
                       "unrefined\n0,50.0,50.0,1.0,True,True\n"
                       f"50,{40 + 10 * seed},45.0,{0.9 - 0.1 * seed},True,False\n")
        kept = not (stage.settings["method"] == "ptgan" and seed == 2)
        chosen = {"iteration": 50, "identity_refined": 40.0 + 10 * seed,
                  "identity_cross": 45.0, "realism": 0.9 - 0.1 * seed} if kept else None
        results[stage.name] = {"checkpoints": str(log), "choice": {"chosen": chosen}}
    (tmp_path / "report").mkdir()
    blocks = build_blocks(stages, results, tmp_path / "report", "config")
    table = next(b for b in blocks if isinstance(b, Table) and b.title.startswith("Refiner seeds"))
    rows = {r[0]: r[1:] for r in table.rows}
    assert rows["IV-cyclegan"] == ["0, 1, 2", "3 of 3", "40.0 / 50.0 / 60.0", "50.0 ± 10.0",
                                   "0.900 / 0.800 / 0.700", "0.800 ± 0.100"]
    assert rows["IV-ptgan"][:4] == ["0, 1, 2", "2 of 3", "40.0 / 50.0 / –", "45.0 ± 7.1"]
    assert set(rows) == {"IV-cyclegan", "IV-ptgan"}


def test_a_code_version_bump_reruns_the_stages_it_computes(tmp_path, monkeypatch):
    """A fix that changes what a kind of stage computes (a corrected protocol, a refiner's loss)
    bumps its code version: those stages and what follows them get new keys (new folders, so
    they run again); the rest keep theirs."""
    from synthreid.experiment import stages
    from synthreid.experiment.matrix import plan_experiment

    config = load_experiment_config(write_config(tmp_path, tmp_path / "real"))
    base = {s.name: s.key for s in plan_experiment(config, tmp_path).stages}
    monkeypatch.setitem(stages.CODE_VERSIONS, "evaluate", stages.CODE_VERSIONS["evaluate"] + 1)
    keys = {s.name: s.key for s in plan_experiment(config, tmp_path).stages}
    assert {n for n in base if keys[n] != base[n]} == {n for n in base if n.startswith("evaluate-")}
    monkeypatch.setitem(stages.CODE_VERSIONS, "refiner-ptgan",
                        stages.CODE_VERSIONS["refiner-ptgan"] + 1)
    moved = {n for n, key in ((s.name, s.key) for s in plan_experiment(config, tmp_path).stages)
             if key != keys[n]}
    assert "refine-IV-cyclegan" not in moved and "generate-IV" not in moved
    assert {"refiner-IV-ptgan", "refine-IV-ptgan", "model-refined-IV-ptgan",
            "model-finetuned-refined-IV-ptgan", "evaluate-refined-IV-ptgan-on-real"} <= moved
    # A change to how images are translated reruns the cheap apply stages, never the trainings.
    keys = {s.name: s.key for s in plan_experiment(config, tmp_path).stages}
    monkeypatch.setitem(stages.CODE_VERSIONS, "refine", stages.CODE_VERSIONS["refine"] + 1)
    moved = {n for n, key in ((s.name, s.key) for s in plan_experiment(config, tmp_path).stages)
             if key != keys[n]}
    assert not any(n.startswith("refiner-") for n in moved)
    assert {"refine-IV-cyclegan", "refine-IV-ptgan", "model-refined-IV-cyclegan"} <= moved


def test_bad_experiment_configs_are_one_line(tmp_path):
    for changes, expected in [({"presets": ["V"]}, "presets"),
                              ({"finetune": ["generated-II"]}, "finetune"),
                              ({"db": "sqlite:///x.db"}, "db and storage"),
                              ({"evaluation": {"standard": "best"}}, "standard")]:
        path = write_config(tmp_path, tmp_path / "real", **changes)
        with pytest.raises(ConfigError, match=expected):
            load_experiment_config(path)


@pytest.mark.slow
def test_generation_goes_through_a_postgresql_job_database(tmp_path, request):
    """`db:` and `storage:` put the generation stages on a farm's database and storage (here a
    real PostgreSQL server, as .ci/run starts; workers elsewhere could serve the same jobs)."""
    from conftest import POSTGRES_ENV, _postgres_database
    from sqlalchemy import create_engine, func, select

    from synthreid.farm.db import images

    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"no PostgreSQL server given: set {POSTGRES_ENV} (.ci/run starts one)")
    db = _postgres_database("synthreid_experiment_farm")
    config = tmp_path / "farm.yaml"
    config.write_text(yaml.safe_dump({
        "presets": ["IV"], "refiners": {"methods": {}}, "finetune": [], "mixed": [],
        "generation": TINY["generation"], "reid": TINY["reid"], "evaluation": {"repeats": 2},
        "db": db, "storage": str(tmp_path / "farm-storage")}))
    result = CliRunner().invoke(app, ["experiment", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert {"generate-IV", "model-generated-IV", "evaluate-generated-IV-on-own"} == set(
        records(tmp_path / "out"))
    engine = create_engine(db)
    with engine.connect() as connection:
        done = connection.execute(select(func.count()).select_from(images)
                                  .where(images.c.status == "done")).scalar()
    engine.dispose()
    expected = TINY["generation"]["characters"] * TINY["generation"]["images"]
    assert done == expected and any((tmp_path / "farm-storage").rglob("*.png"))
    assert not (tmp_path / "out" / "jobs.db").exists()


def test_preset_files_are_experiment_rows_named_by_their_stem(tmp_path):
    """A realism-lever ablation is an experiment whose presets are files: each is its own
    generate stage and Table 3.2 row, and preset IV's stages keep their keys beside them."""
    from synthreid.experiment.matrix import plan_experiment

    (tmp_path / "IV-blur.yaml").write_text(
        "extends: IV\nname: IV-blur\ncamera_effects: {defocus_sigma_px: [1, 2]}\n")
    config = load_experiment_config(write_config(
        tmp_path, tmp_path / "real", presets=["IV", "IV-blur.yaml"],
        refiners={"methods": {}}, finetune=[], mixed=[]))
    stages = {s.name: s for s in plan_experiment(config, tmp_path).stages}
    assert {"generate-IV-blur", "model-generated-IV-blur",
            "evaluate-generated-IV-blur-on-real"} <= set(stages)
    assert stages["generate-IV-blur"].settings["preset"]["camera_effects"] is not None
    alone = load_experiment_config(write_config(
        tmp_path / "alone", tmp_path / "real", refiners={"methods": {}}, finetune=[], mixed=[]))
    assert plan_experiment(alone, tmp_path).stages[0].key == stages["generate-IV"].key


def _decays(config) -> bool:
    return config.schedule == "cosine" or all(m < config.epochs for m in config.milestones)


# Every experiment config shipped (dataset and fit YAMLs beside them have no `presets`).
SHIPPED_EXPERIMENTS = sorted(p.name for p in (REPO / "experiments").glob("*.yaml")
                             if "\npresets:" in p.read_text())


def test_the_shipped_experiments_are_found():
    assert {"small.yaml", "small-160.yaml", "small-iv.yaml", "levers.yaml", "refiners.yaml",
            "thesis.yaml", "denoise.yaml", "refiners-keep.yaml", "scale-80.yaml",
            "scale-160.yaml"} <= set(SHIPPED_EXPERIMENTS)


@pytest.mark.parametrize("name", SHIPPED_EXPERIMENTS)
def test_every_shipped_experiment_schedules_decays_that_happen(name, monkeypatch):
    from synthreid.experiment import config as experiment_config
    from synthreid.reid.config import load_train_config

    # The shipped configs name real datasets that are not here; their schedules are what counts.
    monkeypatch.setattr(experiment_config, "check_datasets", lambda *_: None)
    config = load_experiment_config(REPO / "experiments" / name)
    kinds = config.model_settings()
    assert "reid.settings" in kinds and (not config.finetune or "reid.finetune" in kinds)
    for where, overrides in kinds.items():
        train = load_train_config(recipe=config.reid.recipe, overrides=overrides)
        assert _decays(train), f"{name}: {where}: milestones {train.milestones}, epochs {train.epochs}"


@pytest.mark.parametrize("recipe", ["modern", "openreid"])
def test_every_recipe_schedules_decays_that_happen(recipe):
    from synthreid.reid.config import load_train_config

    assert _decays(load_train_config(recipe=recipe))


def test_a_milestone_past_the_last_epoch_is_refused(tmp_path):
    from synthreid.reid.config import load_train_config

    path = write_config(tmp_path, tmp_path / "real", finetune=["generated-IV"], mixed=[],
                        reid={**TINY["reid"], "finetune": {"epochs": 5}})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: reid\.finetune: milestones: \[6\] at "
                                          r"or past the last epoch \(epochs: 5"):
        load_experiment_config(path)
    with pytest.raises(ConfigError, match=r"milestones: \[40\] at or past the last epoch"):
        load_train_config(overrides={"epochs": 30})
    assert load_train_config(overrides={"epochs": 30, "schedule": "cosine"}).epochs == 30


def test_the_real_dataset_and_sizes_are_checked_when_the_experiment_loads(tmp_path):
    missing = write_config(tmp_path / "a", tmp_path / "real")
    with pytest.raises(ConfigError, match=r"tiny\.yaml: real: .*nowhere.*not found"):
        load_experiment_config(missing, real=f"market1501:{tmp_path / 'nowhere'}")
    few = write_config(tmp_path / "b", tmp_path / "real",
                       generation={**TINY["generation"], "characters": 7})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: generation\.characters: .*8"):
        load_experiment_config(few)


def test_listing_stages_leaves_another_experiments_folder_as_it_was(tmp_path):
    real = write_real(tmp_path / "real")
    out = tmp_path / "out"
    first = CliRunner().invoke(app, ["experiment", str(write_config(tmp_path / "a", real)),
                                     "--out", str(out), "--list-stages"])
    assert first.exit_code == 0 and "generate-IV" in first.output and not out.exists()
    out.mkdir()
    (out / "config.yaml").write_text("presets: [I]\n")
    other = write_config(tmp_path / "b", real, presets=["IV"])
    listed = CliRunner().invoke(app, ["experiment", str(other), "--out", str(out),
                                      "--list-stages", "--overwrite"])
    assert listed.exit_code == 0 and (out / "config.yaml").read_text() == "presets: [I]\n"


@pytest.mark.slow
def test_a_refiner_that_kept_no_identity_ends_its_branch_not_the_experiment(tmp_path):
    """Its refiner stage keeps no checkpoint and its refine stage finishes judged (no
    dataset); every model of its images, and what follows them, is left out and says why, in
    the listing, the report and `--stage`; the other rows run."""
    real = tmp_path / "real"
    refiners = json.loads(json.dumps(TINY["refiners"]))
    refiners["methods"] = {"IV": ["cyclegan"]}
    refiners["settings"]["identity_margin"] = 0  # 4 iterations from noise keep none
    reid = json.loads(json.dumps(TINY["reid"]))
    reid["settings"].update(epochs=2, milestones=[1])
    config = write_config(tmp_path, real, refiners=refiners, reid=reid, mixed=[],
                          finetune=["refined-IV-cyclegan"])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["experiment", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    done = records(out)
    assert done["refiner-IV-cyclegan"]["result"]["checkpoint"] is None
    assert done["refine-IV-cyclegan"]["result"]["dataset"] is None
    assert done["refine-IV-cyclegan"]["result"]["choice"]["chosen"] is None
    assert {"model-generated-IV", "model-real", "evaluate-generated-IV-on-real"} <= set(done)
    left = {"model-refined-IV-cyclegan", "evaluate-refined-IV-cyclegan-on-real",
            "evaluate-refined-IV-cyclegan-on-own", "model-finetuned-refined-IV-cyclegan",
            "evaluate-finetuned-refined-IV-cyclegan-on-real"}
    assert not left & set(done)
    assert "left out: model-finetuned-refined-IV-cyclegan (refine-IV-cyclegan kept no " \
           "identity)" in " ".join(result.output.split())
    report = (out / "report.md").read_text()
    assert "Left out: model-refined-IV-cyclegan (refine-IV-cyclegan kept no identity)" in report
    assert "none kept identity" in report
    listed = CliRunner().invoke(app, ["experiment", str(config), "--out", str(out),
                                      "--list-stages", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert {n for n, r in rows.items() if r["left_out"]} == left
    refused = CliRunner().invoke(app, ["experiment", str(config), "--out", str(out),
                                       "--stage", "model-refined-IV-cyclegan"])
    assert refused.exit_code == 2 and "left out, refine-IV-cyclegan kept no identity" in \
        refused.output
    further = CliRunner().invoke(app, ["experiment", str(config), "--out", str(out), "--stage",
                                       "evaluate-finetuned-refined-IV-cyclegan-on-real"])
    assert further.exit_code == 2 and "left out, refine-IV-cyclegan kept no identity" in \
        further.output


def test_stage_settings_are_checked_when_the_experiment_loads(tmp_path):
    real = tmp_path / "real"
    typo = write_config(tmp_path / "a", real, reid={"settings": {"epochz": 3}})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: reid\.settings\.epochz: "):
        load_experiment_config(typo)
    refiner = write_config(tmp_path / "b", real, refiners={**TINY["refiners"],
                                                           "settings": {"iterations": 0}})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: refiners\.settings\.iterations: "):
        load_experiment_config(refiner)


@pytest.mark.slow
def test_independent_stages_run_at_once_in_two_processes_then_the_rest(uninterrupted, tmp_path):
    real = write_real(tmp_path / "real")
    config = with_second(tmp_path, real)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "synthreid.cli", "experiment", str(config), "--out", str(out)]
    listed = subprocess.run([*base, "--list-stages", "--json"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert not out.exists()  # listing claims no folder
    stages = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(stages) == set(records(uninterrupted)) and not any(
        row["done"] for row in stages.values())
    assert sorted(name for name, row in stages.items() if not row["needs"]) == [
        "evaluate-hsv-on-real", "generate-IV", "masks-real", "model-real"]
    free = ["generate-IV", "masks-real"]
    refused = subprocess.run([*base, "--stage", "refiner-IV-ptgan"], capture_output=True,
                             text=True)
    assert refused.returncode == 2
    assert "needs generate-IV, masks-real finished first" in refused.stderr
    unknown = subprocess.run([*base, "--stage", "model-nothing"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "no such stage" in unknown.stderr

    both = [subprocess.Popen([*base, "--stage", name], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for name in free]
    for process in both:
        assert process.wait() == 0, process.stdout.read()
    finished = records(out)
    assert set(finished) == set(free)
    assert {name: r["key"] for name, r in finished.items()} == {
        name: stages[name]["key"] for name in free}
    before = {name: mtimes(out / "stages" / f"{name}-{r['key']}") for name, r in finished.items()}
    code, output = experiment(config, out)
    assert code == 0, output
    assert set(records(out)) == set(records(uninterrupted))
    for name, files in before.items():  # the stages run apart were reused, not run again
        assert mtimes(out / "stages" / f"{name}-{finished[name]['key']}") == files, name
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_parallel_stages_run_at_once_and_a_failed_stage_stops_the_run_by_name(
        uninterrupted, tmp_path):
    """`--parallel 2`: independent stages start together, each in its own process with its log;
    a stage that fails (here every real-test evaluation: the test images are garbage) stops
    new starts, and the run exits 2 naming it; run again once mended, it finishes from there."""
    real = write_real(tmp_path / "real")
    config = with_second(tmp_path, real)
    out = tmp_path / "out"
    originals = {p: p.read_bytes() for f in TEST_FOLDERS for p in (real / f).iterdir()}
    for path in originals:
        path.write_bytes(b"not an image")
    command = [sys.executable, "-m", "synthreid.cli", "experiment", str(config), "--out",
               str(out), "--parallel", "2"]
    failed = subprocess.run(command, capture_output=True, text=True)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 2, output
    assert re.search(r"stage evaluate-\S+-on-real failed \(exit 2\): .*"
                     r"(query|bounding_box_test)/\d{4}_c\d", output), output
    said = " ".join(output.split())
    assert said.index("started masks-real") < said.index("finished")  # two at once
    assert (out / "logs" / "generate-IV.log").is_file()
    finished = records(out)
    assert {n for n in records(uninterrupted) if not n.startswith("evaluate-")} <= set(finished)
    before = {name: mtimes(out / "stages" / f"{name}-{r['key']}") for name, r in finished.items()}

    for path, data in originals.items():
        path.write_bytes(data)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(records(out)) == set(records(uninterrupted))
    for name, files in before.items():  # finished stages were reused, not run again
        assert mtimes(out / "stages" / f"{name}-{finished[name]['key']}") == files, name
    assert (out / "report.html").is_file()
