"""Re-id training on a tiny fixture of distinguishable identities (coloured figures)."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.datasets import read_dataset
from synthreid.errors import ReidError
from synthreid.reid.backbones import ResNet50
from synthreid.reid.checkpoint import load_checkpoint
from synthreid.reid.data import Augment, IdentitySampler
from synthreid.reid.losses import LossConfig
from synthreid.reid.model import ModelArgs
from synthreid.reid.train import TrainConfig, Trainer

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


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return read_dataset("synthetic", write_fixture(tmp_path_factory.mktemp("shapes")))


def small_config(out, **overrides):
    config = TrainConfig(out=str(out), model=ModelArgs(embedding=64), augment=SIZE, epochs=6,
                         lr=0.05, warmup_epochs=1, milestones=(5,), batch_size=32, workers=0,
                         validation_repeats=5, seed=1)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def chance_area(ids: int) -> float:
    return sum(k / ids for k in range(1, ids + 1))


def test_training_raises_the_validation_score_far_above_chance(shapes, tmp_path):
    config = small_config(tmp_path / "run", epochs=20, batch_size=16, milestones=(16,))
    trainer = Trainer(config, [shapes])  # 15 batches an epoch: 300 iterations
    untrained = trainer.validate().area
    summary = trainer.fit()
    # 12 unseen validation ids: chance is a CMC area of 6.5 (of at most 12); the untrained net
    # scores about 8.2 (the identity colours show through); with this seed training reaches
    # 9.9. We ask for 9.0: 2.5 above chance and 1 above the untrained net.
    assert chance_area(12) == pytest.approx(6.5)
    assert summary["best_validation_area"] >= 9.0
    assert summary["best_validation_area"] >= untrained + 1.0
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 21 and log[0].startswith("loss,accuracy,images_per_s")
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best_score"] == pytest.approx(summary["best_validation_area"])


def test_a_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    full = Trainer(small_config(tmp_path / "full", epochs=3), [shapes])
    full.fit()
    first = Trainer(small_config(tmp_path / "part", epochs=1), [shapes])
    first.fit()  # "killed" after epoch 1: only its checkpoint survives
    resumed = Trainer(small_config(tmp_path / "part", epochs=3), [shapes])
    assert resumed.resume() and resumed.start_epoch == 1
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


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


def test_mixed_training_alternates_two_datasets(shapes, tmp_path):
    other = read_dataset("synthetic", write_fixture(tmp_path / "other", range(100, 120),
                                                    range(120, 130), seed=2))
    separate = Trainer(small_config(tmp_path / "mix", epochs=1, mix_ratio=2), [shapes, other])
    heads = [head for head, _, _ in separate._batches(0)]
    assert heads[:6] == ["d0", "d0", "d1", "d0", "d0", "d1"]
    assert set(separate.model.g) == {"d0", "d1"}
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


def test_triplet_training_runs_with_pk_batches(shapes, tmp_path):
    config = small_config(tmp_path / "tri", epochs=2, p=8, k=4,
                          loss=LossConfig(softmax_weight=1.0, triplet_weight=1.0))
    summary = Trainer(config, [shapes]).fit()
    assert summary["epochs"] == 2


def test_bad_arguments_and_checkpoints_give_one_line_errors(shapes, tmp_path):
    with pytest.raises(ReidError, match="optimizer"):
        Trainer(small_config(tmp_path / "x", optimizer="rmsprop"), [shapes])
    with pytest.raises(ReidError, match="unknown backbone 'vgg'"):
        Trainer(small_config(tmp_path / "x", model=ModelArgs(backbone="vgg")), [shapes])
    with pytest.raises(ReidError, match="positive weight"):
        LossConfig(softmax_weight=0, triplet_weight=0)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ReidError, match="damaged"):
        load_checkpoint(tmp_path / "junk.pt")
    base = Trainer(small_config(tmp_path / "b", epochs=1), [shapes])
    base.fit()
    with pytest.raises(ReidError, match="inception checkpoint, but the backbone asked for is resnet50"):
        load_checkpoint(tmp_path / "b" / "last.pt", expect_backbone="resnet50")
    with pytest.raises(ReidError, match="weights file not found"):
        ResNet50().load_imagenet(tmp_path / "missing.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ReidError, match="does not match ResNet-50"):
        ResNet50().load_imagenet(tmp_path / "wrong.pth")


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
    result = runner.invoke(app, ["reid", "train", "--data", f"synthetic:{root}", "--out",
                                 str(tmp_path / "cli"), "--epochs", "2", "--height", "32",
                                 "--width", "16", "--embedding", "64", "--workers", "0",
                                 "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    model = str(tmp_path / "cli" / "best.pt")
    evaluated = runner.invoke(app, ["reid", "eval", "--model", model, "--data",
                                    f"synthetic:{root}", "--protocol", "market", "--out",
                                    str(tmp_path / "report")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "mAP" in evaluated.output and (tmp_path / "report" / "cmc.png").exists()
    saved = runner.invoke(app, ["reid", "features", "--model", model, "--data",
                                f"synthetic:{root}", "--out", str(tmp_path / "f.npz")])
    assert saved.exit_code == 0, saved.output
    again = runner.invoke(app, ["eval", "--features", str(tmp_path / "f.npz")])
    assert again.exit_code == 0 and "mAP" in again.output
    bad = runner.invoke(app, ["reid", "train", "--data", "nowhere", "--out", str(tmp_path / "z")])
    assert bad.exit_code == 2 and "LAYOUT:ROOT" in bad.output


def test_distributed_training_keeps_ranks_in_step(shapes, tmp_path):
    """torchrun with two CPU processes (gloo): both ranks take the same number of steps and end
    with identical weights."""
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(f"""
import os, torch
from synthreid.datasets import read_dataset
from synthreid.reid.data import Augment
from synthreid.reid.model import ModelArgs
from synthreid.reid.train import TrainConfig, Trainer
torch.set_num_threads(1)
config = TrainConfig(out={str(tmp_path / "ddp")!r}, model=ModelArgs(embedding=32),
                     augment=Augment(height=32, width=16, pad=2), epochs=1, batch_size=16,
                     workers=0, validation_repeats=1, warmup_epochs=0)
trainer = Trainer(config, [read_dataset("synthetic", {str(shapes.root)!r})])
trainer.fit()
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(2)]
torch.distributed.all_gather(gathered, flat)
assert torch.equal(gathered[0], gathered[1])
print("rank", os.environ["RANK"], "ok")
""")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                             "2", "--master-port", "29517", str(script)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "rank 0 ok" in result.stdout and "rank 1 ok" in result.stdout
    assert (tmp_path / "ddp" / "best.pt").exists()
