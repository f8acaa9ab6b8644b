"""Refiners: the reference networks, each loss term, a short run on two toy colour domains,
exact resume, and refining a dataset without touching its labels."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.datasets import read_dataset
from synthreid.errors import RefineError
from synthreid.refine import losses
from synthreid.refine.config import RefinerConfig
from synthreid.refine.cut import encode, nce_layers, patch_nce
from synthreid.refine.data import to_image
from synthreid.refine.networks import PatchDiscriminator, ResidualBlock, ResnetGenerator
from synthreid.refine.pool import ImagePool
from synthreid.refine.train import RefinerTrainer

H, W = 48, 32  # the smallest size a 70x70 PatchGAN takes is 32


def person(rng: np.random.Generator, colour, background) -> tuple[np.ndarray, np.ndarray]:
    """A 'person' (torso and legs) on a plain background, shifted a little, and its mask."""
    pixels = np.empty((H, W, 3))
    pixels[:] = background
    mask = np.zeros((H, W), bool)
    dx, dy = rng.integers(-2, 3, 2)
    mask[8 + dy:26 + dy, 10 + dx:22 + dx] = True
    mask[26 + dy:44 + dy, 12 + dx:20 + dx] = True
    pixels[mask] = colour
    pixels += rng.normal(0, 6, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8), mask


def toy_domain(root, colour, background, seed, ids=range(1, 9), per_id=3):
    """A Market-layout set whose people all wear `colour`; masks beside them."""
    rng = np.random.default_rng(seed)
    for folder in ("bounding_box_train", "bounding_box_test", "query", "masks"):
        (root / folder).mkdir(parents=True)
    for pid in ids:
        for i in range(per_id):
            folder = "bounding_box_train" if pid < 7 else ("query" if i == 0 else
                                                          "bounding_box_test")
            name = f"{pid:04d}_c{i % 2 + 1}_{i:06d}"
            pixels, mask = person(rng, np.array(colour) + rng.normal(0, 10, 3), background)
            Image.fromarray(pixels).save(root / folder / f"{name}.png")
            Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return (toy_domain(root / "red", (200, 40, 40), (120, 120, 120), 0),
            toy_domain(root / "blue", (40, 60, 200), (120, 120, 120), 1))


def toy_config(domains, out, **overrides):
    red, blue = domains
    fields = dict(source=f"synthetic:{red}", target=f"synthetic:{blue}", out=str(out),
                  height=H, width=W, ngf=16, ndf=16, iterations=40, lr=2e-3, pool_size=10,
                  sample_every=20, checkpoint_every=20, log_every=10, seed=3,
                  identity_check=False)  # six ids: too few to judge (test_refine_identity.py)
    return RefinerConfig(**{**fields, **overrides})


def test_reference_networks_have_the_reference_sizes():
    generator, discriminator = ResnetGenerator(blocks=9), PatchDiscriminator()
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179
    assert sum(p.numel() for p in discriminator.parameters()) == 2_764_737
    x = torch.zeros(2, 3, 128, 64)
    assert generator(x).shape == x.shape and discriminator(x).shape == (2, 1, 14, 6)
    weights = torch.cat([m.weight.flatten() for m in generator.modules()
                         if isinstance(m, torch.nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)  # init N(0, 0.02)


def test_each_loss_term_is_its_formula():
    scores = torch.tensor([[0.5, 1.5], [0.0, 2.0]])
    assert losses.lsgan(scores, True).item() == pytest.approx(
        ((0.5 - 1) ** 2 + 0.5 ** 2 + 1 + 1) / 4)
    assert losses.lsgan(scores, False).item() == pytest.approx((0.25 + 2.25 + 0 + 4) / 4)
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = -1.0
    assert losses.cycle(b, a).item() == pytest.approx((11 * 0.5 + 1.0) / 12)
    assert losses.identity(b, a).item() == pytest.approx(losses.cycle(b, a).item())


def test_the_masked_identity_loss_sees_only_the_person():
    a = torch.rand(1, 3, 8, 4)
    mask = torch.zeros(1, 1, 8, 4)
    mask[..., 2:6, 1:3] = 1.0
    outside = a.clone()
    outside[..., :2, :] += 0.7  # background repainted
    assert losses.masked_identity(outside, a, mask).item() == 0.0
    inside = a.clone()
    inside[..., 3, 1] += 0.6  # one person pixel, all three channels
    assert losses.masked_identity(inside, a, mask).item() == pytest.approx(3 * 0.6 / a.numel())


def test_patch_nce_is_infonce_over_the_images_other_patches():
    keys = torch.eye(3)[None]  # three patches, orthogonal unit vectors
    tau = 0.07
    same = patch_nce(keys.clone(), keys, tau)  # each query equals its own key
    expected = -torch.log_softmax(torch.tensor([1.0, 0.0, 0.0]) / tau, 0)[0]
    assert same.item() == pytest.approx(expected.item(), rel=1e-5)
    swapped = patch_nce(keys[:, [1, 2, 0]], keys, tau)  # each query matches another patch
    assert swapped.item() > 10 * same.item()


@pytest.mark.parametrize("blocks", [6, 9])
def test_cut_reads_the_reference_layers_by_role(blocks):
    generator = ResnetGenerator(ngf=8, blocks=blocks)
    layers = list(generator.model)
    picked = nce_layers(generator)
    assert list(picked) == ["input", "downsampling 1", "downsampling 2", "residual block 1",
                            "residual block 5"]
    assert isinstance(layers[picked["input"]], torch.nn.ReflectionPad2d)
    for role in ("downsampling 1", "downsampling 2"):
        assert isinstance(layers[picked[role]], torch.nn.Conv2d)
        assert layers[picked[role]].stride == (2, 2)
    blocks_at = [i for i, layer in enumerate(layers) if isinstance(layer, ResidualBlock)]
    assert picked["residual block 1"] == blocks_at[0] and picked["residual block 5"] == blocks_at[4]
    # All in the encoder: nothing after the last residual block (the decoder) is read.
    assert max(picked.values()) <= blocks_at[-1]
    features = encode(generator, torch.zeros(1, 3, 32, 16))
    assert [f.shape[1] for f in features] == [3, 16, 32, 32, 32]


def test_cut_learns_the_toy_translation_with_one_generator(domains, tmp_path):
    trainer = RefinerTrainer(toy_config(domains, tmp_path / "cut", method="cut", iterations=120))
    a, _ = trainer.a.load(list(range(len(trainer.a.records))))
    b, _ = trainer.b.load(list(range(len(trainer.b.records))))

    def blueness(images):
        return (images[:, 2] - images[:, 0]).mean().item()

    trainer.fit()
    with torch.no_grad():
        after = blueness(trainer.G(a))
    assert set(trainer.method.networks) == {"G", "H", "D_B"}  # no F, no D_A
    assert trainer.history[-1]["nce"] < trainer.history[0]["nce"]
    assert after > blueness(b) - 0.25 * (blueness(b) - blueness(a))  # 0.50; B is 0.29


def test_the_history_pool_keeps_at_most_its_size():
    pool, rng = ImagePool(3), np.random.default_rng(0)
    seen = [pool.query(torch.full((1, 1, 2, 2), float(i)), rng) for i in range(20)]
    assert len(pool.images) == 3
    assert any(s.flatten()[0].item() != i for i, s in enumerate(seen))  # older fakes come back


def test_a_short_run_learns_the_toy_translation(domains, tmp_path):
    trainer = RefinerTrainer(toy_config(domains, tmp_path / "run", iterations=120))
    a, _ = trainer.a.load(list(range(len(trainer.a.records))))
    b, _ = trainer.b.load(list(range(len(trainer.b.records))))

    def blueness(images):
        return (images[:, 2] - images[:, 0]).mean().item()

    with torch.no_grad():
        before = blueness(trainer.G(a))
    trainer.fit()
    with torch.no_grad():
        after = blueness(trainer.G(a))
    history = trainer.history
    assert history[-1]["cycle_A"] < 0.5 * history[0]["cycle_A"]  # 3.0 -> 0.7 with this seed
    # G's output moved from the source's colours to the target's (-0.16 -> +0.28; B is +0.29).
    gap = blueness(b) - blueness(a)
    assert blueness(a) < 0 < blueness(b) and abs(before - blueness(b)) > 0.5 * gap
    assert abs(after - blueness(b)) < 0.25 * gap
    assert (tmp_path / "run" / "samples" / "iteration-0000120.png").exists()
    assert (tmp_path / "run" / "losses.csv").read_text().count("\n") == 13


@pytest.mark.parametrize("method", ["cyclegan", "cut"])
def test_resume_continues_with_the_same_losses(domains, tmp_path, method):
    full = RefinerTrainer(toy_config(domains, tmp_path / "full", method=method))
    full.fit()

    class Killed(Exception):
        pass

    def kill(event):
        if event.done == 20:  # right after the checkpoint at iteration 20
            raise Killed

    with pytest.raises(Killed):
        RefinerTrainer(toy_config(domains, tmp_path / "part", method=method)).fit(progress=kill)
    resumed = RefinerTrainer(toy_config(domains, tmp_path / "part", method=method))
    assert resumed.open(resume=True) and resumed.iteration == 20
    resumed.fit()
    assert [round(h["gan_G"], 5) for h in resumed.history] == \
        [round(h["gan_G"], 5) for h in full.history]
    for key, value in full.G.state_dict().items():
        torch.testing.assert_close(resumed.G.state_dict()[key], value)


def test_ptgan_needs_masks_and_trains_with_them(domains, tmp_path):
    trainer = RefinerTrainer(toy_config(domains, tmp_path / "pt", method="ptgan", iterations=4,
                                        log_every=2))
    trainer.fit()
    # The paper's generator loss: adversarial + cycle + masked identity, no unmasked identity.
    assert {k for k in trainer.history[0] if not k.startswith("D_") and k in (
        "gan_G", "gan_F", "cycle_A", "cycle_B", "identity_A", "identity_B", "masked_A",
        "masked_B")} == {"gan_G", "gan_F", "cycle_A", "cycle_B", "masked_A", "masked_B"}
    asked = RefinerTrainer(toy_config(domains, tmp_path / "pt-id", method="ptgan",
                                      identity_weight=0.5))
    assert "identity_A" in asked.step(0)  # still there when asked for
    assert "identity_A" in RefinerTrainer(toy_config(domains, tmp_path / "cg")).step(0)
    red, _ = domains
    bare = tmp_path / "bare"  # the same images without their masks/ folder
    bare.mkdir()
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (bare / folder).symlink_to(red / folder)
    with pytest.raises(RefineError, match="PTGAN needs person masks"):
        RefinerTrainer(toy_config(domains, tmp_path / "pt2", method="ptgan",
                                  source=f"synthetic:{bare}"))


def test_only_the_training_splits_are_read(domains, tmp_path):
    import shutil

    red, blue = (shutil.copytree(d, tmp_path / d.name) for d in domains)
    for folder in ("query", "bounding_box_test"):
        for image in (blue / folder).iterdir():
            image.write_bytes(b"unreadable")  # the target's test images cannot be opened
    (red / "bounding_box_val").mkdir()  # nor the source's validation images
    (red / "bounding_box_val" / "0099_c1_000000.png").write_bytes(b"unreadable")
    trainer = RefinerTrainer(toy_config((red, blue), tmp_path / "t", iterations=2, log_every=1))
    trainer.fit()
    assert all(r.split == "train" for r in trainer.a.records + trainer.b.records)


def test_refine_keeps_layout_labels_and_masks(domains, tmp_path):
    red, _ = domains
    runner = CliRunner()
    trained = runner.invoke(app, [
        "refiner", "train", "--data", f"synthetic:{red}", "--target", f"synthetic:{red}",
        "--out", str(tmp_path / "r"), "--size", f"{H}x{W}", "--iterations", "2",
        "--sample-every", "2", "--checkpoint-every", "2", "--no-identity-check"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "refined"
    args = ["refine", "--model", str(tmp_path / "r" / "last.pt"), "--data",
            f"synthetic:{red}", "--out", str(out), "--batch-size", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    source, refined = read_dataset("synthetic", red), read_dataset("synthetic", out)
    for split in ("train", "query", "gallery"):
        before, after = getattr(source, split), getattr(refined, split)
        assert [(r.path.name, r.pid, r.camid) for r in before] == \
            [(r.path.name, r.pid, r.camid) for r in after]
        for old, new in zip(before, after):
            assert Image.open(new.path).size == Image.open(old.path).size
            assert new.mask.read_bytes() == old.mask.read_bytes()
    assert any(Image.open(n.path).tobytes() != Image.open(o.path).tobytes()
               for o, n in zip(source.train, refined.train))
    again = runner.invoke(app, ["refine", "--refiner", *args[2:]])  # the spelling before
    assert "0 images refined (24 already there)" in again.output
    inside = runner.invoke(app, [*args[:-4], "--out", str(red / "refined")])
    assert inside.exit_code == 2 and "must lie outside the source dataset" in inside.output
    # Another refiner's images in --out are never kept as if they were this one's.
    other = runner.invoke(app, [  # --source: --data's spelling before
        "refiner", "train", "--source", f"synthetic:{red}", "--target", f"synthetic:{red}",
        "--out", str(tmp_path / "r2"), "--size", f"{H}x{W}", "--iterations", "2",
        "--sample-every", "2", "--checkpoint-every", "2", "--seed", "5", "--no-identity-check"])
    assert other.exit_code == 0, other.output
    swapped = [*args[:2], str(tmp_path / "r2" / "last.pt"), *args[3:]]
    refused = runner.invoke(app, swapped)
    assert refused.exit_code == 2 and "holds the output of another refine" in refused.output
    assert "checkpoint_sha256" in refused.output and refused.output.count("\n") == 1
    replaced = runner.invoke(app, [*swapped, "--overwrite"])
    assert replaced.exit_code == 0 and "24 images refined (0 already there)" in replaced.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    foreign = runner.invoke(app, [*args[:-4], "--out", str(tmp_path / "mine"), "--overwrite"])
    assert foreign.exit_code == 2 and "no synthreid command made" in foreign.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_refiner_train_sets_any_config_field(domains, tmp_path):
    red, _ = domains
    base = ["refiner", "train", "--data", f"synthetic:{red}", "--target", f"synthetic:{red}",
            "--size", f"{H}x{W}", "--iterations", "1", "--no-identity-check"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "r"), "--set",
                                      "residual=true", "--set", "colour_weight=0.5",
                                      "--set", "ngf=8"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["residual"] is True and saved["colour_weight"] == 0.5 and saved["ngf"] == 8
    typo = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "t"), "--set", "residul=1"])
    assert typo.exit_code == 2 and "residul" in typo.output


def _identity_refiner(path, height, width):
    """A checkpoint whose residual G is exactly the identity (its last convolution zero)."""
    config = RefinerConfig(source="synthetic:a", target="synthetic:b", out="r", height=height,
                           width=width, ngf=8, blocks=6, residual=True, identity_check=False)
    generator = ResnetGenerator(ngf=8, blocks=6, residual=True)
    torch.save({"G": generator.state_dict(), "config": config.model_dump(mode="json")}, path)


def _crops(root, sizes):
    """A Market-layout set of noise crops of the given (width, height) sizes, as PNG (each in
    every split: the reader wants none empty)."""
    rng = np.random.default_rng(0)
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (root / folder).mkdir(parents=True)
    for index, (width, height) in enumerate(sizes):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        name = f"{index + 1:04d}_c{index % 2 + 1}_{index:06d}.png"
        for folder in ("bounding_box_train", "bounding_box_test", "query"):
            Image.fromarray(pixels).save(root / folder / name)
    return root


def test_refine_translates_crops_at_their_own_aspect_ratio(tmp_path):
    # Generated crops are narrower than the refiner's 2:1 (about 46x128). Squeezing them to
    # 128x64 and back blurred every image by itself; an identity G must change nothing.
    from synthreid.refine.apply import refine_dataset
    _identity_refiner(tmp_path / "identity.pt", 128, 64)
    source = _crops(tmp_path / "crops", [(46, 128), (47, 128), (46, 128), (64, 128), (5, 128)])
    refine_dataset(tmp_path / "identity.pt", f"synthetic:{source}", tmp_path / "out",
                   batch_size=2)
    for path in sorted((source / "bounding_box_train").glob("*.png")):
        refined = tmp_path / "out" / "bounding_box_train" / path.name
        before, after = np.asarray(Image.open(path)), np.asarray(Image.open(refined))
        assert after.shape == before.shape and np.array_equal(after, before), path.name


def test_refine_scales_only_crops_of_another_height(tmp_path, monkeypatch):
    from synthreid.refine import apply
    _identity_refiner(tmp_path / "identity.pt", 64, 32)
    source = _crops(tmp_path / "crops", [(46, 128), (23, 64), (30, 64)])
    seen = []
    forward = ResnetGenerator.forward
    monkeypatch.setattr(ResnetGenerator, "forward",
                        lambda self, x: seen.append(tuple(x.shape[-2:])) or forward(self, x))
    apply.refine_dataset(tmp_path / "identity.pt", f"synthetic:{source}", tmp_path / "out")
    # 46x128 scaled to 23x64 joins the other 23-wide crops (padded to 24); 30 wide pads to 32.
    assert sorted(seen) == [(64, 24), (64, 32)]
    for path in sorted((source / "bounding_box_train").glob("*.png")):
        refined = Image.open(tmp_path / "out" / "bounding_box_train" / path.name)
        assert refined.size == Image.open(path).size
    unscaled = sorted((source / "bounding_box_train").glob("*.png"))[1]
    assert np.array_equal(np.asarray(Image.open(unscaled)),
                          np.asarray(Image.open(tmp_path / "out" / "bounding_box_train" /
                                                unscaled.name)))


def test_aspect_keep_trains_g_at_each_images_own_width(domains, tmp_path, monkeypatch):
    # The toy people are 48x32 (2:3). At a 96-pixel refiner, "squeeze" widens nothing and
    # narrows them to 32; "keep" scales them to 96x64, as `refine` would apply G.
    squeezed = RefinerTrainer(toy_config(domains, tmp_path / "squeeze", height=96, width=32))
    assert squeezed.a.load([0])[0].shape == (1, 3, 96, 32)
    config = toy_config(domains, tmp_path / "keep", height=96, width=32, aspect="keep",
                        method="ptgan", iterations=4, log_every=2, sample_every=4)
    trainer = RefinerTrainer(config)
    image, mask = trainer.a.load([0])
    assert image.shape == (1, 3, 96, 64) and mask.shape == (1, 1, 96, 64)
    with Image.open(trainer.a.records[0].path) as source:
        expected = np.asarray(source.convert("RGB").resize((64, 96), Image.BICUBIC))
    assert np.array_equal(np.asarray(to_image(image[0])), expected)
    seen = []
    forward = ResnetGenerator.forward
    monkeypatch.setattr(ResnetGenerator, "forward",
                        lambda self, x: seen.append(tuple(x.shape[-2:])) or forward(self, x))
    trainer.fit()
    assert set(seen) == {(96, 64)}
    with Image.open(tmp_path / "keep" / "samples" / "iteration-0000004.png") as grid:
        assert grid.size == (4 * 64, 6 * 96)  # a column is as wide as its widest image
    with pytest.raises(ValueError, match="aspect keep: .*batch_size must be 1, got 2"):
        toy_config(domains, tmp_path / "k2", aspect="keep", batch_size=2)


def test_aspect_keep_pads_narrow_images_for_the_critic_and_masks_with_zeros(tmp_path):
    from synthreid.refine.data import MIN_CRITIC_WIDTH, Domain
    narrow = _crops(tmp_path / "crops", [(18, 64), (46, 128)])
    masks = tmp_path / "crops" / "masks"
    masks.mkdir()
    for path in sorted((narrow / "bounding_box_train").glob("*.png")):
        with Image.open(path) as image:
            Image.new("L", image.size, 255).save(masks / path.name)
    domain = Domain(read_dataset("synthetic", narrow).train, 64, 32, keep_aspect=True)
    image, mask = domain.load([0])  # 18 wide: mirror-padded to the critic's 32
    assert image.shape[-1] == MIN_CRITIC_WIDTH and mask.shape[-1] == MIN_CRITIC_WIDTH
    assert mask[..., :7].sum() == 0 and mask[..., 7:25].all() and mask[..., 25:].sum() == 0
    assert torch.equal(image[..., 6], image[..., 8])  # mirrored about the first real column
    wide, _ = domain.load([1])  # 46x128 at height 64: 23 wide, also padded to 32
    assert wide.shape == (1, 3, 64, 32)
    with pytest.raises(RefineError, match="one at a time, not 2"):
        domain.load([0, 1])
