"""Bad input of every kind ends in one line from a SynthReidError, never another exception:
the cases users met, then property-based tests (Hypothesis) over random input."""

import string

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.datasets import read_dataset, read_dataset_file
from synthreid.errors import SynthReidError
from synthreid.evaluate.features import evaluate, load_features
from synthreid.evaluate.protocols import CMCResult
from synthreid.scene.config import load_config

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result.output


def test_the_reported_cases_are_one_line_errors(tmp_path):
    runner = CliRunner()
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "a.npy").rename(tmp_path / "renamed.npz")
    assert "a single .npy array" in one_line(runner.invoke(
        app, ["eval", "-f", str(tmp_path / "renamed.npz")]))
    (tmp_path / "zero.npz").write_bytes(b"")
    assert "not a .npz archive" in one_line(runner.invoke(
        app, ["eval", "-f", str(tmp_path / "zero.npz")]))
    ids, cams = np.repeat(np.arange(120), 2), np.tile([1, 2], 120)
    np.savez(tmp_path / "strings.npz", features=np.eye(120)[ids], ids=ids.astype(str), cams=cams)
    assert "features: ids must be whole numbers, got <U21" in one_line(runner.invoke(
        app, ["eval", "-f", str(tmp_path / "strings.npz"), "--protocol", "thesis"]))
    features = np.eye(120)[ids]
    np.savez(tmp_path / "cams.npz", query_features=features, query_ids=ids,
             query_cams=np.stack([cams, cams], 1), gallery_features=features, gallery_ids=ids,
             gallery_cams=cams)
    assert "cameras (240, 2)" in one_line(runner.invoke(
        app, ["eval", "-f", str(tmp_path / "cams.npz")]))
    for pid in (1, 2):
        (tmp_path / "people" / str(pid)).mkdir(parents=True)
        Image.new("RGB", (8, 16)).save(tmp_path / "people" / str(pid) / "a.jpg")
    assert "give exactly one of test id ranges" in one_line(runner.invoke(
        app, ["dataset", "folders", str(tmp_path / "people")]))
    noise = np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "people" / "2" / "b.jpg")
    data = (tmp_path / "people" / "2" / "b.jpg").read_bytes()
    (tmp_path / "people" / "2" / "b.jpg").write_bytes(data[:int(len(data) * 0.9)])  # header ok
    assert "b.jpg: unreadable image (image file is truncated" in one_line(runner.invoke(
        app, ["dataset", "folders", str(tmp_path / "people"), "--test-count", "1"]))
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    assert "not a text file" in one_line(runner.invoke(
        app, ["preview", str(tmp_path / "binary.yaml"), "--out", str(tmp_path / "p")]))
    (tmp_path / "folder.yaml").mkdir()
    assert "a folder, not a YAML file" in one_line(runner.invoke(
        app, ["preview", str(tmp_path / "folder.yaml"), "--out", str(tmp_path / "p")]))
    db = f"sqlite:///{tmp_path / 'typo.db'}"
    assert "does not exist" in one_line(runner.invoke(app, ["status", "--db", db]))
    assert "does not exist" in one_line(runner.invoke(
        app, ["export", "r", "--out", str(tmp_path / "x"), "--db", db]))
    assert not (tmp_path / "typo.db").exists()
    good = f"sqlite:///{tmp_path / 'jobs.db'}"
    assert "run name: expected 1 to 200" in one_line(runner.invoke(
        app, ["plan", "I", "--run", "", "--db", good, "-c", "1"]))
    assert "--lease: expected seconds > 0" in one_line(runner.invoke(
        app, ["render", "--db", good, "--lease", "0"]))


def test_user_text_in_messages_prints_as_it_is(tmp_path):
    """Paths are text: rich markup ([/x], [bold]) and emoji codes (:x:) in them are printed,
    not interpreted (a closing tag once turned the one-line error into a traceback)."""
    for name in ("[/x]", "[bold]b[/bold]", ":x:", "[red]"):
        path = tmp_path / name / "f.npz"
        output = one_line(CliRunner().invoke(app, ["eval", "-f", str(path)]))
        assert output == f"error: {path}: no such file\n"


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=True), st.text(max_size=12))
yaml_values = st.recursive(yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=10), children, max_size=4)),
    max_leaves=12)
CONFIG_KEYS = ["name", "characters", "body", "clothes", "hair", "room", "camera", "crop",
               "render", "gait", "extends", "accessories", "images_per_character"]


@PROPERTY
@given(st.dictionaries(st.sampled_from(CONFIG_KEYS), yaml_values, max_size=5))
def test_any_config_file_loads_or_fails_in_one_line(tmp_path_factory, fields):
    path = tmp_path_factory.mktemp("cfg") / "mine.yaml"
    path.write_text(yaml.safe_dump({"extends": "II", **fields}))
    try:
        load_config(path)
    except SynthReidError as error:
        assert "\n" not in str(error) and str(path) in str(error)


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes_as_a_config_file_fail_in_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "bytes.yaml"
    path.write_bytes(data)
    try:
        load_config(path)
    except SynthReidError as error:
        assert "\n" not in str(error)


# File names: "." and ".." are the folder itself and its parent, which the test cannot write to.
name_parts = st.text(string.ascii_letters + string.digits + "_-.", min_size=1,
                     max_size=16).filter(lambda name: name not in (".", ".."))


@PROPERTY
@given(names=st.lists(name_parts, min_size=1, max_size=6),
       contents=st.lists(st.binary(max_size=64) | st.just(b"png"), min_size=6, max_size=6))
def test_any_market_folder_reads_or_fails_in_one_line(tmp_path_factory, names, contents):
    root = tmp_path_factory.mktemp("market")
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (root / folder).mkdir()
    for i, (name, data) in enumerate(zip(names, contents)):
        target = root / ["bounding_box_train", "bounding_box_test", "query"][i % 3] / name
        if data == b"png":
            Image.new("RGB", (4, 8)).save(target, format="PNG")
        else:
            target.write_bytes(data)
    try:
        read_dataset("market1501", root)
    except SynthReidError as error:
        assert "\n" not in str(error)


@PROPERTY
@given(yaml_values)
def test_any_dataset_yaml_reads_or_fails_in_one_line(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("ds") / "data.yaml"
    if isinstance(spec, dict):
        spec = {"layout": "pattern", "root": ".", **spec}
    path.write_text(yaml.safe_dump(spec))
    try:
        read_dataset_file(path)
    except SynthReidError as error:
        assert "\n" not in str(error)


arrays = st.one_of(
    st.builds(lambda n, d, seed: np.random.default_rng(seed).normal(size=(n, d)),
              st.integers(0, 6), st.integers(1, 4), st.integers(0, 9)),
    st.builds(lambda n, seed: np.random.default_rng(seed).integers(-2, 5, n),
              st.integers(0, 8), st.integers(0, 9)),
    st.builds(lambda n, m: np.zeros((n, m), np.int64), st.integers(0, 4), st.integers(1, 3)),
    st.just(np.array(["a", "b"])), st.just(np.array([np.nan, 1.0])), st.just(np.zeros(0)))
KEYS = ["features", "ids", "cams", "query_features", "query_ids", "query_cams",
        "gallery_features", "gallery_ids", "gallery_cams", "ignore_ids", "pseudo_cameras"]


@PROPERTY
@given(st.dictionaries(st.sampled_from(KEYS), arrays, min_size=1, max_size=10),
       st.sampled_from(["thesis", "thesis-mixed", "market", "cuhk03-new", "cuhk03-classic",
                        "cuhk03-openreid"]))
def test_any_feature_file_evaluates_or_fails_in_one_line(tmp_path_factory, contents, protocol):
    path = tmp_path_factory.mktemp("f") / "features.npz"
    np.savez(path, **contents)
    try:
        result = evaluate(load_features(path), protocol, repeats=2)
    except SynthReidError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(result, CMCResult) and np.isfinite(result.cmc).all()


SHA = "ab" * 32
path_text = st.lists(st.sampled_from(["..", ".", "/", "x", "assets", ".bvh", ".png", SHA, "\\",
                                      "%2e", "~", "\x00"]), max_size=8).map("".join)


@PROPERTY
@given(st.one_of(path_text, path_text.map(lambda t: f"asset:{SHA}.bvh{t}"),
                 path_text.map(lambda t: f"{t}{SHA}.png")))
def test_any_asset_name_from_a_job_row_stays_in_the_cache_or_fails_in_one_line(
        tmp_path_factory, name):
    """A job row in a shared farm database is input too: an asset name is a content key or
    the job is refused, before any path is joined."""
    from synthreid.errors import JobError
    from synthreid.farm.assets import checked_name

    cache = tmp_path_factory.mktemp("cache") / "assets"
    try:
        checked = checked_name(name)
    except JobError as error:
        assert "\n" not in str(error) and "not a content key" in str(error)
    else:
        assert (cache / checked).resolve().parent == cache.resolve()
        assert "/" not in checked and ".." not in checked


@PROPERTY
@given(st.lists(st.one_of(path_text, st.just("0001/0001_000_01_0303morning_0015_0.jpg"),
                          path_text.map(lambda t: f"{t}0001_000_01_x.jpg")), min_size=1,
                max_size=4))
def test_any_msmt17_list_entry_reads_inside_the_root_or_fails_in_one_line(tmp_path_factory,
                                                                          entries):
    root = tmp_path_factory.mktemp("msmt")
    for folder in ("train", "test"):
        (root / folder / "0001").mkdir(parents=True)
        Image.new("RGB", (4, 8)).save(root / folder / "0001" / "0001_000_01_0303morning_0015_0.jpg")
    (root.parent / "0001_000_01_x.jpg").write_bytes(b"outside the root")
    lines = "\n".join(f"{entry} 1" for entry in entries)
    for name in ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"):
        (root / name).write_text(lines)
    try:
        dataset = read_dataset("msmt17", root, check_images=False)
    except SynthReidError as error:
        assert "\n" not in str(error)
    else:
        for record in dataset.train + dataset.query + dataset.gallery:
            assert root.resolve() in record.path.resolve().parents


def test_an_msmt17_list_entry_that_leaves_the_root_is_refused(tmp_path):
    import pytest

    root = tmp_path / "msmt"
    for folder in ("train", "test"):
        (root / folder).mkdir(parents=True)
    (tmp_path / "0001_000_01_secret.jpg").write_bytes(b"not part of the dataset")
    for name in ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"):
        (root / name).write_text("../../0001_000_01_secret.jpg 1\n")
    with pytest.raises(SynthReidError, match="list_train.txt:1: image path '../../0001_000_01_"
                                             "secret.jpg' leaves the image folder"):
        read_dataset("msmt17", root, check_images=False)


def test_sizes_no_run_reaches_are_one_line_before_anything_is_written(tmp_path):
    runner = CliRunner()
    db = tmp_path / "jobs.db"
    assert "characters: expected 1 to 1,000,000, got 1,000,000,000,000" in one_line(
        runner.invoke(app, ["plan", "I", "--run", "r", "--db", f"sqlite:///{db}", "-c",
                            str(10**12)]))
    assert "images per character: expected 1 to 1,000, got 1,000,000,000,000" in one_line(
        runner.invoke(app, ["plan", "I", "--run", "r", "--db", f"sqlite:///{db}", "-c", "1",
                            "-m", str(10**12)]))
    assert "characters: expected 1 to 1,000,000" in one_line(runner.invoke(
        app, ["preview", "I", "-c", str(10**7), "--out", str(tmp_path / "p")]))
    assert not (tmp_path / "p").exists()
    from synthreid.errors import ConfigError
    from synthreid.reid.config import load_train_config

    try:
        load_train_config(overrides={"augment": {"height": 100000, "width": 100000}})
    except ConfigError as error:
        assert "augment.height: Input should be less than or equal to 4096" in str(error)
    else:
        raise AssertionError("a 100000-pixel input was accepted")


def test_a_dataset_yaml_split_that_is_no_mapping_is_one_line(tmp_path):
    import pytest

    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"layout": "folders", "root": ".", "split": 5}))
    with pytest.raises(SynthReidError, match=r"data.yaml: split: expected a mapping"):
        read_dataset_file(path)


def test_outputs_of_other_work_are_never_kept_or_overwritten_silently(tmp_path):
    runner = CliRunner()
    ids, cams = np.repeat(np.arange(120), 2), np.tile([1, 2], 120)
    for name, scale in (("a.npz", 1.0), ("b.npz", 0.5)):
        features = np.eye(120)[ids] * scale + np.random.default_rng(0).normal(0, 0.1, (240, 120))
        np.savez(tmp_path / name, features=features, ids=ids, cams=cams)
    out = tmp_path / "eval"
    first = runner.invoke(app, ["eval", "-f", str(tmp_path / "a.npz"), "--protocol", "thesis",
                                "--out", str(out)])
    assert first.exit_code == 0, first.output
    report = (out / "cmc.md").read_text()
    again = runner.invoke(app, ["eval", "-f", str(tmp_path / "a.npz"), "--protocol", "thesis",
                                "--out", str(out)])
    assert again.exit_code == 0  # the same evaluation may write its report again
    other = runner.invoke(app, ["eval", "-f", str(tmp_path / "b.npz"), "--protocol", "thesis",
                                "--out", str(out)])
    assert "holds the output of another eval" in one_line(other)
    assert (out / "cmc.md").read_text() == report
    (tmp_path / "file").write_text("mine")
    assert "exists and is not a folder" in one_line(runner.invoke(
        app, ["eval", "-f", str(tmp_path / "a.npz"), "--protocol", "thesis", "--out",
              str(tmp_path / "file")]))
    assert (tmp_path / "file").read_text() == "mine"
    # Training runs: a file, or a folder of someone else's files, is no run folder.
    from synthreid.datasets.toy import write_toy_market

    people = write_toy_market(tmp_path / "people", people=30)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    for target, message in ((tmp_path / "file", "exists and is not a folder"),
                            (tmp_path / "theirs", "holds files that are not a run")):
        result = runner.invoke(app, ["reid", "train", "--data", f"market1501:{people}", "--out",
                                     str(target), "--epochs", "1", "--milestone", "0",
                                     "--workers", "0"])
        assert message in one_line(result)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "file").read_text() == "mine"
    for target in (tmp_path / "file", tmp_path / "theirs" / "notes.txt"):
        assert "exists and is not a folder" in one_line(runner.invoke(
            app, ["demo", "--out", str(target)]))


def test_an_experiment_folder_of_another_experiment_is_refused(tmp_path):
    runner = CliRunner()
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"presets": ["I"], "refiners": {"methods": {}},
                                      "finetune": [], "mixed": []}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("presets: [IV]\n")
    result = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert "holds another experiment (its config.yaml differs in presets" in one_line(result)
    assert (out / "config.yaml").read_text() == "presets: [IV]\n"
    (tmp_path / "file").write_text("mine")
    assert "exists and is not a folder" in one_line(runner.invoke(
        app, ["experiment", str(config), "--out", str(tmp_path / "file")]))


def test_every_worker_option_works_from_the_synthreid_command(tmp_path):
    # Each option reaches the worker: a bad value of each is refused naming it.
    base = ["worker", "--db", f"sqlite:///{tmp_path / 'jobs.db'}", "--storage", str(tmp_path)]
    for option, value in (("--job-timeout", "0"), ("--heartbeat", "500"),
                          ("--max-attempts", "0"), ("--max-jobs", "0")):
        result = CliRunner().invoke(app, [*base, option, value])
        assert result.exit_code == 2, (option, result.output)
        assert f"error: {option}: expected" in result.output, (option, result.output)


def test_masks_without_the_masks_extra_say_which_extra(tmp_path, monkeypatch):
    import sys

    from synthreid.datasets.toy import write_toy_market

    data = write_toy_market(tmp_path / "toy", people=3)
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "mediapipe.python", None)
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    result = CliRunner().invoke(app, ["masks", "--data", f"market1501:{data}",
                                      "--out", str(tmp_path / "masks")])
    assert 'pip install "synthreid[masks]"' in one_line(result)


def test_the_dataset_command_takes_what_data_takes(tmp_path):
    from synthreid.datasets.toy import write_toy_market

    root = write_toy_market(tmp_path / "toy", people=6)
    (tmp_path / "toy.yaml").write_text(f"layout: market1501\nroot: {root}\n")
    outputs = [CliRunner().invoke(app, ["dataset", *args])
               for args in (["market1501", str(root)], [f"market1501:{root}"],
                            [str(tmp_path / "toy.yaml")])]
    assert all(result.exit_code == 0 for result in outputs), [r.output for r in outputs]
    assert outputs[0].output == outputs[1].output == outputs[2].output
    assert "train" in outputs[0].output
    missing = CliRunner().invoke(app, ["dataset", str(tmp_path / "nowhere.yaml")])
    assert "nowhere.yaml" in one_line(missing)


def test_any_training_field_is_reachable_and_the_resolved_config_printable():
    import yaml

    result = CliRunner().invoke(app, ["reid", "train", "--epochs", "7", "--set",
                                      "model.last_stride=2", "--set", "weight_decay=0.001",
                                      "--set", "milestones=[3, 5]", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["model"]["last_stride"] == 2 and printed["weight_decay"] == 0.001
    assert printed["milestones"] == [3, 5] and printed["epochs"] == 7
    assert printed["loss"]["margin"] == 0.3  # the rest as resolved, defaults included
    for bad, expected in ((["--set", "model.nope=1"], "model.nope"),
                          (["--set", "oops"], "--set 'oops': expected KEY=VALUE")):
        assert expected in one_line(CliRunner().invoke(app, ["reid", "train", *bad,
                                                             "--print-config"]))
