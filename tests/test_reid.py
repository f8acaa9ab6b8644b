"""Re-id training on a tiny fixture of distinguishable identities (coloured figures)."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.datasets import IdSplit, read_dataset
from synthreid.errors import ConfigError, ReidError
from synthreid.evaluate import protocols
from synthreid.reid.backbones import ResNet50
from synthreid.reid.checkpoint import load_checkpoint, model_from_checkpoint
from synthreid.reid.config import TrainConfig, load_train_config, read_saved_config
from synthreid.reid.data import (
    MEAN,
    STD,
    Augment,
    ColourJitter,
    IdentitySampler,
    augment,
    to_tensor,
)
from synthreid.reid.features import extract_features
from synthreid.reid.losses import LossConfig
from synthreid.reid.model import ModelArgs, ReidModel
from synthreid.reid.train import Trainer

SIZE = Augment(height=32, width=16, pad=2)


def figure(pid: int, rng: np.random.Generator) -> Image.Image:
    """A 'person' 48x24: a small upper and lower colour patch fixed per identity, on a large,
    loud background drawn per image (so an untrained network, which mostly sees the
    background, scores near chance), shifted and relit per image."""
    palette = np.random.default_rng(pid * 7919)
    top, bottom = palette.integers(0, 256, 3), palette.integers(0, 256, 3)
    pixels = rng.integers(0, 256, (1, 1, 3)) + rng.normal(0, 40, (48, 24, 3))
    dx, dy = rng.integers(-3, 4, 2)
    pixels[14 + dy:24 + dy, 8 + dx:16 + dx] = top
    pixels[24 + dy:34 + dy, 9 + dx:15 + dx] = bottom
    pixels = pixels * rng.uniform(0.8, 1.2) + rng.normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_fixture(root, train_ids=range(1, 41), val_ids=range(41, 53), per_id=6, seed=0):
    rng = np.random.default_rng(seed)
    folders = {"bounding_box_train": train_ids, "bounding_box_val": val_ids}
    for folder, ids in folders.items():
        (root / folder).mkdir(parents=True)
        for pid in ids:
            for i in range(per_id):
                figure(pid, rng).save(root / folder / f"{pid:04d}_c{i % 2 + 1}_{i:06d}.png")
    for folder in ("query", "bounding_box_test"):
        (root / folder).mkdir()
    for pid in range(53, 63):
        figure(pid, rng).save(root / "query" / f"{pid:04d}_c1_000000.png")
        for i in range(2):
            figure(pid, rng).save(root / "bounding_box_test" / f"{pid:04d}_c2_00000{i}.png")
    return root


def folders_fixture(root, ids=range(200, 230), per_id=4, seed=3):
    """A folder per identity, camera in the names: a layout with no validation ids."""
    rng = np.random.default_rng(seed)
    for pid in ids:
        (root / str(pid)).mkdir(parents=True)
        for i in range(per_id):
            figure(pid, rng).save(root / str(pid) / f"{pid}_c{i % 2 + 1}_{i}.png")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return read_dataset("synthetic", write_fixture(tmp_path_factory.mktemp("shapes")))


def small_config(out, **overrides):
    fields = dict(out=str(out), model=ModelArgs(embedding=64), augment=SIZE, epochs=6, lr=0.05,
                  warmup_epochs=1, milestones=[5], batch_size=32, workers=0,
                  validation_repeats=5, seed=1)
    if "epochs" in overrides and "milestones" not in overrides:
        fields["milestones"] = []  # a constant rate after the warm-up: no decay to place
    return TrainConfig(**{**fields, **overrides})


@pytest.mark.slow
def test_training_raises_the_validation_score_far_above_chance(shapes, tmp_path):
    config = small_config(tmp_path / "run", epochs=20, batch_size=16, milestones=[16])
    trainer = Trainer(config, [shapes])  # 15 batches an epoch: 300 iterations
    untrained = trainer.validate()[0].area
    heard = []
    summary = trainer.fit(heard.append)
    # Progress: every step of every epoch, images so far of the epoch's total, with its loss.
    assert len(heard) == 20 * 15 and [e.task for e in heard[::15]] == [
        f"epoch {i}" for i in range(20)]
    assert all(e.done == e.total == 15 * 16 for e in heard[14::15])
    assert heard[-1].values["loss"] < heard[0].values["loss"]
    # 12 unseen validation ids: chance is a CMC area of 6.5 (of at most 12); the untrained net
    # scores about 8.2 (the identity colours show through); with this seed training reaches
    # 9.9. We ask for 9.0: 2.5 above chance and 1 above the untrained net.
    assert summary["best_validation_area"] >= 9.0
    assert summary["best_validation_area"] >= untrained + 1.0
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 21 and log[0].startswith("loss,accuracy,images_per_s")
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best_score"] == pytest.approx(summary["best_validation_area"])
    saved = read_saved_config(tmp_path / "run" / "config.yaml")
    assert saved == config and best["train_config"]["lr"] == config.lr


class Killed(Exception):
    pass


def kill_after_first_epoch(stats):
    raise Killed


AUGMENTED = SIZE.model_copy(update=dict(
    colour_jitter=ColourJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
    grayscale=0.2, blur=0.3, erasing=0.5))


def test_a_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    # Every augmentation on: each is drawn from the per-sample seed, so resume stays exact.
    full = Trainer(small_config(tmp_path / "full", epochs=3, augment=AUGMENTED), [shapes])
    full.fit()
    config = small_config(tmp_path / "part", epochs=3, augment=AUGMENTED)
    with pytest.raises(Killed):
        Trainer(config, [shapes]).fit(log=kill_after_first_epoch)  # only epoch 0's checkpoint
    resumed = Trainer(config, [shapes])
    assert resumed.open(resume=True) and resumed.start_epoch == 1
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["augmentations"] == [
        "pad-crop", "flip", "brightness-jitter", "contrast-jitter", "saturation-jitter",
        "hue-jitter", "grayscale", "blur", "erasing"]


def test_a_run_folder_is_never_overwritten_silently(shapes, tmp_path):
    config = small_config(tmp_path / "run", epochs=1)
    Trainer(config, [shapes]).fit()
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(ReidError, match="holds a run .*pass --resume to continue it or "
                                        "--overwrite"):
        Trainer(config, [shapes]).fit()
    assert (tmp_path / "run" / "best.pt").read_bytes() == before
    other = small_config(tmp_path / "run", epochs=1, lr=0.01, workers=1,
                         loss=LossConfig(label_smoothing=0.2))
    with pytest.raises(ReidError, match=r"settings other than the saved run's \(config.yaml\): "
                                        r"loss.label_smoothing, lr$"):
        Trainer(other, [shapes]).open(resume=True)  # workers may differ: it changes no result
    replaced = Trainer(other, [shapes])
    assert replaced.open(overwrite=True) is False
    assert not (tmp_path / "run" / "best.pt").exists()
    assert read_saved_config(tmp_path / "run" / "config.yaml").lr == 0.01


def test_a_diverging_loss_stops_training_with_epoch_and_step(shapes, tmp_path):
    trainer = Trainer(small_config(tmp_path / "nan", epochs=2), [shapes])
    real, calls = trainer.net, []

    def diverging(images, head):
        calls.append(1)
        features, logits = real(images, head)
        return features, logits * (float("nan") if len(calls) == 3 else 1.0)

    trainer.net = diverging
    with pytest.raises(ReidError, match=r"epoch 0, step 2: the loss is nan; training diverged"):
        trainer.fit()
    assert not (tmp_path / "nan" / "best.pt").exists()


def test_finetuning_keeps_f_and_resets_g(shapes, tmp_path):
    base = Trainer(small_config(tmp_path / "base", epochs=1), [shapes])
    base.fit()
    smaller = read_dataset("synthetic", write_fixture(tmp_path / "other", range(1, 21),
                                                      range(21, 31), seed=5))
    tuned = Trainer(small_config(tmp_path / "tuned", epochs=1, init=str(tmp_path / "base" / "last.pt")),
                    [smaller])
    assert tuned.model.g["d0"].out_features == 20 != base.model.g["d0"].out_features
    for key, value in base.model.f.state_dict().items():
        torch.testing.assert_close(tuned.model.f.state_dict()[key], value)
    rates = [group["lr"] for group in tuned.optimizer.param_groups]
    assert rates[0] == pytest.approx(0.1 * rates[1])  # f learns 10x slower than g


def test_mixed_training_alternates_and_validates_on_both_sets(shapes, tmp_path):
    # The second set has no validation folder: ids are held out of its training set.
    other = read_dataset("folders", folders_fixture(tmp_path / "other"),
                         split=IdSplit(count=5, seed=0))
    separate = Trainer(small_config(tmp_path / "mix", epochs=1, mix_ratio=2, select_on=1,
                                    validation_ids=6), [shapes, other])
    heads = [head for head, _, _ in separate._batches(0)]
    assert heads[:6] == ["d0", "d0", "d1", "d0", "d0", "d1"]
    # One epoch is one pass over the first set, however small the second: all of its batches.
    first, second = (separate.sources[i].loader.sampler.batches() for i in (0, 1))
    assert heads.count("d0") == first and heads.count("d1") == first // 2 > second
    assert set(separate.model.g) == {"d0", "d1"}
    held, trained = separate.sources[1].validation, separate.sources[1].records
    assert len({r.pid for r in held}) == 5 and len({r.path for r in held + trained}) == 25 * 4
    assert not {r.path for r in held} & {r.path for r in trained}
    separate.fit()
    stats = separate.history[0]
    assert stats["validation_area"] == stats["validation_area_d1"] != stats["validation_area_d0"]
    joint = Trainer(small_config(tmp_path / "joint", epochs=1, joint_head=True), [shapes, other])
    assert set(joint.model.g) == {"joint"} and joint.model.g["joint"].out_features == 40 + 20


def test_pk_sampler_gives_p_ids_with_k_images_each():
    labels = [i // 5 for i in range(60)] + [99, 99]  # 12 ids of 5 images, one id of 2
    sampler = IdentitySampler(labels, p=4, k=3, seed=0)
    order = [index for index, _ in sampler]
    assert len(order) % 12 == 0 and order
    for start in range(0, len(order), 12):
        batch = [labels[i] for i in order[start:start + 12]]
        counts = {label: batch.count(label) for label in set(batch)}
        assert len(counts) == 4 and set(counts.values()) == {3}
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != order
    with pytest.raises(ReidError, match="only 13"):
        IdentitySampler(labels, p=20, k=2, seed=0)


def training_ids_area(trainer, source):
    """The thesis-protocol CMC area (of at most 40) on the 40 training ids' own images."""
    features = extract_features(trainer.model, source.train, SIZE.height, SIZE.width,
                                trainer.arithmetic)
    ids = np.array([r.pid for r in source.train])
    cams = np.array([r.camid for r in source.train])
    return protocols.thesis(features, ids, cams, identities=40, repeats=4, seed=0).area


def test_triplet_training_learns_from_pk_batches(shapes, tmp_path):
    # The triplet loss alone, on the backbone's pooled features: if the P x K batches did not
    # hold K images of P ids, or the loss did not reach the network, the embedding would tell
    # the training ids apart no better than the untrained net (area 23.2 of 40; chance 20.5).
    # Measured on the ids it trained on: the 12 validation ids moved from 8.15 to anywhere in
    # 7.6-9.8 by CPU, layout and arithmetic. At lr 0.05 batch-hard triplet shrank the features
    # (loss down 20x, area unchanged); at 0.01 it learns: 29.4 in bf16, 31.4 in fp32.
    config = small_config(tmp_path / "tri", epochs=16, lr=0.01, p=8, k=3, milestones=[15],
                          model=ModelArgs(embedding=0, features_after_bn=False),
                          loss=LossConfig(softmax_weight=0.0, triplet_weight=1.0))
    trainer = Trainer(config, [shapes])
    for _, images, labels in itertools.islice(trainer._batches(0), 3):
        assert len(labels) == 24 and sorted(torch.bincount(labels).tolist())[-8:] == [3] * 8
    untrained = training_ids_area(trainer, shapes)
    trainer.fit()
    assert trainer.history[-1]["loss"] < 0.2 * trainer.history[0]["loss"]
    assert training_ids_area(trainer, shapes) > untrained + 3


def test_bad_arguments_and_checkpoints_give_one_line_errors(shapes, tmp_path):
    with pytest.raises(ConfigError, match=r"recipe openreid: optimizer: Input should be 'sgd' or "
                                          r"'adam'"):
        load_train_config(recipe="openreid", overrides={"optimizer": "rmsprop"})
    with pytest.raises(ConfigError, match="model.backbone: Input should be 'inception' or "
                                          "'resnet50'"):
        load_train_config(overrides={"model": {"backbone": "vgg"}})
    with pytest.raises(ConfigError, match="recipe: expected one of modern, openreid"):
        load_train_config(recipe="fancy")
    with pytest.raises(ConfigError, match="positive weight"):
        load_train_config(overrides={"loss": {"softmax_weight": 0, "triplet_weight": 0}})
    (tmp_path / "run.yaml").mkdir()
    with pytest.raises(ConfigError, match="run.yaml: a folder, not a YAML file"):
        load_train_config(tmp_path / "run.yaml")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ReidError, match="damaged"):
        load_checkpoint(tmp_path / "junk.pt")
    base = Trainer(small_config(tmp_path / "b", epochs=1), [shapes])
    base.fit()
    with pytest.raises(ReidError, match="inception checkpoint, but the backbone asked for is resnet50"):
        load_checkpoint(tmp_path / "b" / "last.pt", expect_backbone="resnet50")
    state = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    state["model_args"]["wings"] = 2
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(ReidError, match="future.pt: model argument 'wings' is not one this "
                                        "version knows"):
        model_from_checkpoint(tmp_path / "future.pt")
    with pytest.raises(ReidError, match="weights file not found"):
        ResNet50().load_imagenet(tmp_path / "missing.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ReidError, match="does not match ResNet-50"):
        ResNet50().load_imagenet(tmp_path / "wrong.pth")


def test_recipes_and_input_size_per_backbone():
    modern = load_train_config()
    assert modern.recipe == "modern" and modern.loss.label_smoothing == 0.1
    assert (modern.augment.height, modern.augment.width) == (144, 56)  # inception's size
    resnet = load_train_config(overrides={"model": {"backbone": "resnet50"}})
    assert (resnet.augment.height, resnet.augment.width) == (256, 128)
    openreid = load_train_config(recipe="openreid")
    assert openreid.model.embedding == 128 and openreid.model.dropout == 0.5
    assert openreid.loss.label_smoothing == 0 and not openreid.model.bnneck
    assert (openreid.lr, openreid.batch_size, openreid.epochs, openreid.milestones) == (
        0.1, 256, 50, [40])
    assert openreid.augment.crop == "rect" and openreid.warmup_epochs == 0
    torch.manual_seed(0)
    model = ReidModel(openreid.model, {"d0": 500})
    linear = model.g["d0"].weight
    assert linear.std().item() == pytest.approx(0.001, rel=0.05)  # N(0, 0.001)
    conv = model.f.backbone.features[0][0].weight  # 32 x 3 x 3 x 3: fan-out 32 * 9
    assert conv.std().item() == pytest.approx((2 / (32 * 9)) ** 0.5, rel=0.1)
    logits = ReidModel(openreid.model.model_copy(update={"test_output": "logits"}), {"d0": 7})
    assert logits.eval().embed(torch.zeros(2, 3, 144, 56)).shape == (2, 7)


def test_augmentations_are_seeded_and_do_what_they_say():
    image = figure(3, np.random.default_rng(0))
    options = Augment(height=48, width=24, colour_jitter=ColourJitter(brightness=0.4, hue=0.1),
                      blur=0.5, erasing=0.5)
    a = augment(image, np.random.default_rng(5), options)
    torch.testing.assert_close(a, augment(image, np.random.default_rng(5), options))
    assert not torch.equal(a, augment(image, np.random.default_rng(6), options))
    gray = augment(image, np.random.default_rng(5), Augment(height=48, width=24, grayscale=1.0))
    pixels = gray * STD + MEAN
    torch.testing.assert_close(pixels[0], pixels[1], atol=1e-5, rtol=0)
    plain = Augment(height=48, width=24, crop="none", flip=False)
    reference = to_tensor(np.asarray(image.resize((24, 48), Image.BILINEAR)))
    torch.testing.assert_close(augment(image, np.random.default_rng(1), plain), reference)
    blurred = augment(image, np.random.default_rng(1), plain.model_copy(update={"blur": 1.0}))
    assert blurred.diff(dim=2).abs().mean() < reference.diff(dim=2).abs().mean()
    rect = augment(image, np.random.default_rng(2), plain.model_copy(update={"crop": "rect"}))
    assert rect.shape == (3, 48, 24) and not torch.equal(rect, reference)


def test_resnet50_loads_torchvision_named_weights(tmp_path):
    source = ResNet50(last_stride=2)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in source.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet50.pth")
    target = ResNet50(last_stride=1)
    target.load_imagenet(tmp_path / "resnet50.pth")
    torch.testing.assert_close(target.state_dict()["layer4.2.conv3.weight"],
                               state["layer4.2.conv3.weight"])
    assert target(torch.zeros(1, 3, 64, 32)).shape == (1, 2048, 4, 2)  # last stride 1


def test_reid_commands_train_evaluate_and_save_features(shapes, tmp_path):
    runner = CliRunner()
    root = str(shapes.root)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(f"data: ['synthetic:{root}']\nout: {tmp_path / 'cli'}\nepochs: 2\n"
                        "milestones: [1]\n"
                        "model: {embedding: 64}\naugment: {height: 32, width: 16, pad: 2}\n"
                        "batch_size: 32\nworkers: 0\nlr: 0.02\n")
    train = ["reid", "train", "--config", str(run_yaml), "--lr", "0.05", "--grayscale", "0.1"]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert "augmentations: pad-crop, flip, grayscale" in result.output
    saved = read_saved_config(tmp_path / "cli" / "config.yaml")
    assert saved.lr == 0.05 and saved.epochs == 2 and saved.model.embedding == 64  # flag wins
    again = runner.invoke(app, train)
    assert again.exit_code == 2 and "holds a run" in again.output
    other = runner.invoke(app, [*train, "--resume", "--epochs", "3"])
    assert other.exit_code == 2 and "settings other than the saved run's" in other.output
    assert "epochs" in other.output
    assert runner.invoke(app, [*train, "--resume"]).exit_code == 0
    model = str(tmp_path / "cli" / "best.pt")
    evaluated = runner.invoke(app, ["reid", "eval", "--model", model, "--data",
                                    f"synthetic:{root}", "--protocol", "market", "--out",
                                    str(tmp_path / "report")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "mAP" in evaluated.output and (tmp_path / "report" / "cmc.png").exists()
    features = runner.invoke(app, ["reid", "features", "--model", model, "--data",
                                   f"synthetic:{root}", "--out", str(tmp_path / "f.npz")])
    assert features.exit_code == 0, features.output
    assert np.load(tmp_path / "f.npz")["ignore_ids"].tolist() == [0]  # Market's distractors
    evaluated = runner.invoke(app, ["eval", "--features", str(tmp_path / "f.npz")])
    assert evaluated.exit_code == 0 and "mAP" in evaluated.output
    bad = runner.invoke(app, ["reid", "train", "--data", "nowhere", "--out", str(tmp_path / "z")])
    assert bad.exit_code == 2 and "LAYOUT:ROOT" in bad.output


DDP_SCRIPT = """
import os, sys, torch
from synthreid.datasets import IdSplit, read_dataset
from synthreid.evaluate.protocols import CMCResult
from synthreid.reid.config import TrainConfig
from synthreid.reid.data import Augment
from synthreid.reid.model import ModelArgs
from synthreid.reid.train import Trainer
torch.set_num_threads(1)
shapes, other, out = sys.argv[1:4]
config = TrainConfig(out=out, model=ModelArgs(embedding=32), epochs=4, batch_size=8,
                     augment=Augment(height=32, width=16, pad=2), workers=0,
                     validation_repeats=1, warmup_epochs=0, milestones=[], mix_ratio=1,
                     early_stop=1)
datasets = [read_dataset("synthetic", shapes),
            read_dataset("folders", other, split=IdSplit(count=5, seed=0))]
trainer = Trainer(config, datasets)
seen = {"d0": 0, "d1": 0}
batches = trainer._batches
def counting(epoch):
    for head, images, labels in batches(epoch):
        seen[head] += len(labels)
        yield head, images, labels
trainer._batches = counting
# Rank 0's validation gets worse after the first epoch: early stopping must stop every rank.
scores = iter([5.0, 4.0, 3.0, 2.0])
trainer.validate = lambda: [CMCResult(cmc=torch.zeros(10).numpy() + next(scores) / 10)] * 2
head = {name: p.detach().clone() for name, p in trainer.model.g.named_parameters()}
summary = trainer.fit()
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(2)]
torch.distributed.all_gather(gathered, flat)
assert torch.equal(gathered[0], gathered[1])
moved = [name for name, p in trainer.model.g.named_parameters() if not torch.equal(p, head[name])]
print("rank", os.environ["RANK"], "epochs", summary["epochs"], "images", seen, "heads", moved)
"""


def test_a_rank_judges_the_run_folder_before_rank_0_writes_to_it(shapes, tmp_path, monkeypatch):
    """Rank 1 of a torchrun job opens a new run folder while rank 0 writes config.yaml into
    it at the barrier: rank 1 must not take that file for someone else's and refuse."""
    monkeypatch.setenv("RANK", "1")
    trainer = Trainer(small_config(tmp_path / "run", epochs=1), [shapes])
    assert trainer.rank == 1
    rank_0_wrote = []

    def barrier():  # what rank 0 does while this rank waits at the first barrier
        if not rank_0_wrote:
            (tmp_path / "run").mkdir(exist_ok=True)
            (tmp_path / "run" / "config.yaml").write_text("written by rank 0\n")
            rank_0_wrote.append(True)

    monkeypatch.setattr(trainer, "_barrier", barrier)
    assert trainer.open() is False and rank_0_wrote
    # Rank 1 writes nothing: the folder holds rank 0's config only.
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.yaml"]
    assert (tmp_path / "run" / "config.yaml").read_text() == "written by rank 0\n"


@pytest.mark.slow
def test_distributed_training_with_two_datasets_keeps_ranks_in_step(shapes, tmp_path):
    """torchrun with two CPU processes (gloo), mixing two datasets: each rank decodes half of
    each dataset's batches, both heads train, weights stay identical, and an early stop decided
    on rank 0 stops both ranks."""
    import re
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    other = folders_fixture(tmp_path / "other")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", str(script), str(shapes.root), str(other),
                             str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300)
    # torchrun ends with its own summary; the ranks' own errors come before it.
    errors = [line for line in result.stderr.splitlines()
              if re.search(r"\w(Error|Exception)\b", line)]
    assert result.returncode == 0, "\n".join(errors[:8]) + result.stderr[-1500:]
    lines = sorted(re.findall(r"rank (\d) epochs (\d) images (.*) heads (.*)", result.stdout))
    assert [rank for rank, *_ in lines] == ["0", "1"]
    # 240 + 80 training images in batches of 8: 30 + 10 batches an epoch, split over 2 ranks;
    # alternating d0, d1, ..., an epoch is one pass over the first set (15 batches a rank),
    # the second set's 5 batches a rank cycling three times.
    for _, epochs, images, heads in lines:
        assert epochs == "2"  # the score fell after epoch 0, so epoch 1 was the last
        assert images == "{'d0': 240, 'd1': 240}"  # 15 + 15 batches of 8 an epoch, 2 epochs
        assert heads == "['d0.weight', 'd1.weight']"
    assert (tmp_path / "ddp" / "best.pt").exists()
