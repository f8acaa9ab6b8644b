"""Refiners that keep the person: the realism distance, the identity judge, and the checkpoint a
refiner run chooses (never one that erased identity)."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthreid.datasets import open_dataset
from synthreid.errors import RefineError
from synthreid.refine.apply import refine_dataset
from synthreid.refine.config import RefinerConfig
from synthreid.refine.data import load_image
from synthreid.refine.identity import IdentityProbe, choose_checkpoint, rank1, split_probe
from synthreid.refine.realism import RealismMeter
from synthreid.refine.train import RefinerTrainer

H, W = 64, 32


def write_people(root, ids, per_id, seed, cast=(0, 0, 0), blur=False, masks=False):
    """A synthetic-layout set of people drawn as shirt + legs colours, the first two thirds of
    the ids training, the rest validation; `cast` and `blur` make another camera."""
    rng = np.random.default_rng(seed)
    test_ids = (900, 901)  # the layout's query and gallery, never read by a refiner
    for pid in [*ids, *test_ids]:
        shirt, legs = rng.integers(20, 235, 3), rng.integers(20, 235, 3)
        folder = "bounding_box_train" if pid <= 2 * max(ids) // 3 else "bounding_box_val"
        for i in range(per_id):
            if pid in test_ids:
                folder = "query" if i == 0 else "bounding_box_test"
            pixels = np.full((H, W, 3), 120.0) + rng.normal(0, 6, (H, W, 3))
            dy, dx = rng.integers(-3, 4, 2)
            pixels[10 + dy:34 + dy, 8 + dx:24 + dx] = shirt
            pixels[34 + dy:60 + dy, 10 + dx:22 + dx] = legs
            picture = Image.fromarray(np.clip(pixels + cast, 0, 255).astype(np.uint8))
            if blur:
                picture = picture.resize((W // 2, H // 2)).resize((W, H))
            path = root / folder / f"{pid:04d}_c{i % 2 + 1}_{i:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            picture.save(path)
            if masks:
                mask = np.zeros((H, W), np.uint8)
                mask[10 + dy:60 + dy, 8 + dx:24 + dx] = 255
                (root / "masks").mkdir(exist_ok=True)
                Image.fromarray(mask).save(root / "masks" / path.name)
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    return (write_people(root / "generated", range(1, 46), 4, 0),
            write_people(root / "camera", range(1, 31), 2, 1, cast=(30, 10, -30), blur=True))


def images_of(root, folder="bounding_box_train"):
    return torch.stack([load_image(p, H, W) for p in sorted((root / folder).glob("*.png"))])


def test_realism_is_fits_distance_relative_to_the_unrefined_images(sets):
    generated, camera = sets
    target, source = images_of(camera), images_of(generated)
    meter = RealismMeter(target[: len(target) // 2])
    meter.calibrate(source)
    assert meter.distance(source) == pytest.approx(1.0)  # the unrefined images are the 1
    same_camera = meter.distance(target[len(target) // 2:])
    assert same_camera < 0.5  # the target's own other images: far closer than the source
    # The source moved towards the camera (its colour cast, its blur) comes closer.
    cast = torch.tensor([30, 10, -30]).view(1, 3, 1, 1) / 127.5
    blurred = torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(source, 2), size=(H, W), mode="nearest")
    assert same_camera < meter.distance((blurred + cast).clamp(-1, 1)) < 1.0
    # A constant image (a refiner that paints every person alike) is far from any camera.
    assert meter.distance(target.mean(0, keepdim=True).expand(40, -1, -1, -1)) > same_camera


def probe_of(generated, camera, tmp_path, ids=10):
    dataset = open_dataset(f"synthetic:{generated}")
    return IdentityProbe(dataset.train, dataset.validation, H, W, ids, 0, torch.device("cpu"),
                         tmp_path / "judge.pt", RealismMeter(images_of(camera)))


def test_a_mean_image_refiner_scores_chance_and_is_never_chosen(sets, tmp_path):
    generated, camera = sets
    probe = probe_of(generated, camera, tmp_path)
    assert probe.ids == 10  # the validation ids: 15 of them, 10 drawn
    assert len(probe.images) == 40  # every image of each: 40 queries, not 10
    assert probe.baseline.identity_refined >= 70  # the judge tells the generated people apart
    assert probe.baseline.realism == pytest.approx(1.0)
    kept = probe.score(lambda images: images)
    assert kept.identity_refined == probe.baseline.identity_refined
    assert kept.identity_cross == probe.baseline.identity_refined  # G(a) = a: the same ranks
    mean = images_of(camera).mean(0, keepdim=True)
    erased = probe.score(lambda images: mean.expand(len(images), -1, -1, -1))
    assert erased.identity_refined == 0.0  # all ranked alike: ties count against the match
    # Against the unrefined images only the id nearest the constant picture can hit: 4 of 40.
    assert erased.identity_cross <= 10.0 + 1e-9
    rows = [{"iteration": 100, **kept.as_dict()},
            {"iteration": 200, **erased.as_dict(), "realism": kept.realism / 100}]
    chosen = choose_checkpoint(rows, probe.baseline.identity_refined, margin=10)
    assert chosen["iteration"] == 100
    assert choose_checkpoint(rows[1:], probe.baseline.identity_refined, margin=10) is None
    # Among checkpoints that keep identity, the more realistic wins.
    better = {**rows[0], "iteration": 300, "realism": kept.realism / 2}
    assert choose_checkpoint(rows + [better], probe.baseline.identity_refined, 10)["iteration"] \
        == 300
    # The judge is trained once: a second probe loads it.
    saved = (tmp_path / "judge.pt").stat().st_mtime_ns
    probe_of(generated, camera, tmp_path)
    assert (tmp_path / "judge.pt").stat().st_mtime_ns == saved


def test_identity_rank1_counts_ties_against_the_match_and_leaves_the_query_out():
    features = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    ids = torch.tensor([1, 1, 2, 2])
    # Left out, each image's nearest is its partner: all four are hits.
    assert rank1(features, features, ids, ids, exclude_same_index=True) == 100.0
    # Each image's nearest is another id's: no hits.
    swapped = torch.tensor([1, 2, 1, 2])
    assert rank1(features, features, swapped, swapped, exclude_same_index=True) == 0.0
    same = torch.zeros(4, 1)  # every image alike: nothing is strictly nearer
    assert rank1(same, same, ids, ids, exclude_same_index=True) == 0.0


def test_probe_ids_come_from_training_ids_when_there_is_no_validation(sets):
    dataset = open_dataset(f"synthetic:{sets[0]}")
    judge, probe = split_probe(dataset.train, [], 50, 0)
    probe_ids = {r.pid for r in probe}
    assert len(probe_ids) == 15 and not probe_ids & {r.pid for r in judge}
    assert len(probe) == 15 * 4 and len({r.path for r in probe}) == len(probe)
    with pytest.raises(RefineError, match="identity check: .* 8 training ids .* 10 are needed"):
        split_probe([r for r in dataset.train if r.pid <= 8], [], 50, 0)


def test_a_refiner_run_logs_identity_and_refines_with_the_chosen_checkpoint(sets, tmp_path):
    generated, camera = sets
    config = RefinerConfig(source=f"synthetic:{generated}", target=f"synthetic:{camera}",
                           out=str(tmp_path / "run"), height=H, width=W, ngf=8, ndf=8,
                           iterations=4, checkpoint_every=2, sample_every=4, log_every=2,
                           identity_ids=10, identity_margin=100)
    trainer = RefinerTrainer(config)
    trainer.fit()
    with open(tmp_path / "run" / "checkpoints.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["iteration"]) for r in rows] == [0, 2, 4]
    assert rows[0]["unrefined"] == "True"
    assert all(0 <= float(r["identity_refined"]) <= 100 and float(r["realism"]) >= 0
               for r in rows)
    choice = json.loads((tmp_path / "run" / "choice.json").read_text())
    assert choice["chosen"]["iteration"] in (2, 4) and choice["probe_ids"] == 10
    assert choice["probe_images"] == 40 and float(rows[0]["realism"]) == pytest.approx(1.0)
    assert choice["closer_than_unrefined"] == (choice["chosen"]["realism"] < 1.0)
    chosen = trainer.checkpoint_to_use()
    assert chosen.name == "chosen.pt"
    assert torch.load(chosen, weights_only=False)["iteration"] == choice["chosen"]["iteration"]
    result = refine_dataset(chosen, f"synthetic:{generated}", tmp_path / "refined")
    assert result.refined > 0
    # A margin nothing can meet: no checkpoint is chosen, and using one is refused.
    strict = RefinerTrainer(config.model_copy(update={"out": str(tmp_path / "strict"),
                                                      "identity_margin": -1.0}))
    strict.fit()
    assert not (tmp_path / "strict" / "chosen.pt").exists()
    with pytest.raises(RefineError, match="no checkpoint kept identity"):
        strict.checkpoint_to_use()


def test_refiner_train_says_which_checkpoint_it_chose_and_why(sets, tmp_path):
    from typer.testing import CliRunner

    from synthreid.cli import app

    generated, camera = sets
    result = CliRunner().invoke(app, [
        "refiner", "train", "--data", f"synthetic:{generated}", "--target",
        f"synthetic:{camera}", "--out", str(tmp_path / "r"), "--size", f"{H}x{W}",
        "--iterations", "2", "--checkpoint-every", "2", "--sample-every", "2",
        "--identity-margin", "100", "--set", "ngf=8", "--set", "ndf=8",
        "--set", "identity_ids=10"])
    assert result.exit_code == 0, result.output
    choice = json.loads((tmp_path / "r" / "choice.json").read_text())
    said = " ".join(result.output.split())
    assert f"chose iteration 2: identity rank-1 {choice['chosen']['identity_refined']:.1f}" in said
    assert "(unrefined 1.000, lower is closer to the target)" in said
    assert ("no checkpoint that kept identity came closer" in said) != \
        choice["closer_than_unrefined"]


def test_contrastive_loss_pulls_positive_pairs_and_pushes_negative_ones():
    from synthreid.refine.losses import contrastive

    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    assert contrastive(x, x, True, 2.0) == pytest.approx(0.0, abs=1e-9)
    assert contrastive(x, y, True, 2.0) == pytest.approx((0 + 9) / 2)  # mean of d²
    # Negative pairs: nothing once d >= margin; (margin - d)² below it.
    assert contrastive(x, y, False, 2.0) == pytest.approx((4 + 0) / 2, abs=1e-5)
    assert contrastive(x, y, False, 4.0) == pytest.approx((16 + 1) / 2, abs=1e-5)


def test_masked_colour_sees_the_persons_colour_only():
    from synthreid.refine.losses import masked_colour

    a = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # the person: the top half
    background_changed = a.clone()
    background_changed[..., 2:, :] = 0.8
    assert masked_colour(background_changed, a, mask) == pytest.approx(0.0)
    person_recoloured = a.clone()
    person_recoloured[:, 0, :2, :] = 0.6  # red shirt
    assert masked_colour(person_recoloured, a, mask) == pytest.approx(0.6 / 3)


def test_spgan_trains_its_siamese_net_with_the_critics(sets, tmp_path):
    generated, camera = sets
    config = RefinerConfig(source=f"synthetic:{generated}", target=f"synthetic:{camera}",
                           out=str(tmp_path / "sp"), method="spgan", height=H, width=W, ngf=8,
                           ndf=8, iterations=2, checkpoint_every=2, sample_every=2,
                           identity_check=False)
    trainer = RefinerTrainer(config)
    before = [p.detach().clone() for p in trainer.method.M.parameters()]
    terms = trainer.step(0)
    assert {"contrastive", "M", "D_A", "D_B", "cycle_A"} <= set(terms)
    assert all(np.isfinite(v) for v in terms.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.method.M.parameters()))
    trainer.fit()
    assert "M" in torch.load(tmp_path / "sp" / "last.pt", weights_only=False)


def test_colour_weight_needs_masks_and_adds_its_term(sets, tmp_path):
    generated, camera = sets
    config = RefinerConfig(source=f"synthetic:{generated}", target=f"synthetic:{camera}",
                           out=str(tmp_path / "c"), height=H, width=W, ngf=8, ndf=8,
                           iterations=1, colour_weight=5.0, identity_check=False)
    with pytest.raises(RefineError, match="colour_weight > 0 needs person masks"):
        RefinerTrainer(config)
    masked = write_people(tmp_path / "masked", range(1, 13), 2, 3, masks=True)
    trainer = RefinerTrainer(config.model_copy(update={"source": f"synthetic:{masked}"}))
    assert trainer.step(0)["colour_A"] >= 0



def test_a_residual_generator_starts_as_the_identity_and_keeps_the_person(sets, tmp_path):
    """The reference G starts from noise and a short run erases who is who; a residual G starts
    as the identity (G(a) = a exactly) and the same short run keeps identity within the margin,
    while it still learns (G changes)."""
    generated, camera = sets
    config = RefinerConfig(source=f"synthetic:{generated}", target=f"synthetic:{camera}",
                           out=str(tmp_path / "reference"), height=H, width=W, ngf=8, ndf=8,
                           iterations=4, checkpoint_every=4, sample_every=4, log_every=2,
                           identity_ids=10)
    reference = RefinerTrainer(config)
    reference.fit()
    residual = RefinerTrainer(config.model_copy(update={"out": str(tmp_path / "residual"),
                                                        "residual": True}))
    a, _ = residual.a.load(list(range(4)))
    with torch.no_grad():
        assert torch.equal(residual.G(a), a) and torch.equal(residual.method.F(a), a)
    residual.fit()
    with torch.no_grad():
        assert not torch.equal(residual.G(a), a)
    assert not reference.checkpoint_rows[-1]["kept_identity"]
    kept = residual.checkpoint_rows[-1]
    assert kept["kept_identity"] and kept["identity_cross"] >= 80
    assert residual.checkpoint_to_use().name == "chosen.pt"


def test_aspect_keep_judges_g_at_each_images_own_width(sets, tmp_path):
    # A refiner 48 wide squeezes these 64x32 people; with aspect keep, G sees them as `refine`
    # applies it: 32 wide.
    generated, camera = sets
    dataset = open_dataset(f"synthetic:{generated}")
    probe = IdentityProbe(dataset.train, dataset.validation, H, 48, 10, 0, torch.device("cpu"),
                          tmp_path / "judge.pt", RealismMeter(images_of(camera)),
                          keep_aspect=True)
    assert [tuple(image.shape) for image in probe.images] == [(3, H, W)] * 40
    seen = []
    kept = probe.score(lambda images: seen.append(images.shape[-1]) or images)
    assert set(seen) == {W} and kept == probe.baseline and kept.realism == pytest.approx(1.0)
    mean = images_of(camera).mean(0, keepdim=True)
    erased = probe.score(lambda images: mean.expand(len(images), -1, -1, -1))
    assert erased.identity_refined == 0.0
    config = RefinerConfig(source=f"synthetic:{generated}", target=f"synthetic:{camera}",
                           out=str(tmp_path / "run"), height=H, width=48, ngf=8, ndf=8,
                           iterations=2, checkpoint_every=2, sample_every=2, log_every=2,
                           identity_ids=10, identity_margin=100, aspect="keep")
    trainer = RefinerTrainer(config)
    trainer.fit()
    assert [tuple(image.shape) for image in trainer.probe.images] == [(3, H, W)] * 40
    assert json.loads((tmp_path / "run" / "choice.json").read_text())["chosen"]["iteration"] == 2
