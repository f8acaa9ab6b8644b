"""Garment textures from real photos (a realism lever): patches come from the training split
only, carry the photographed cloth's colours, are drawn per character from their own stream,
travel with a farm job by content, and show on the rendered garment."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.scene.config import check_assets, config_from_dict, load_config
from synthreid.scene.photo_textures import cut_patches
from synthreid.scene.sampling import sample_character


def person(shirt, pants, background=(120, 120, 120), size=(128, 64)):
    """A person-shaped crop: head, shirt, pants, on a background; and its mask."""
    height, width = size
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = background
    mask = np.zeros(size, bool)
    rgb[4:20, 26:38], mask[4:20, 26:38] = (200, 160, 130), True
    rgb[20:66, 16:48], mask[20:66, 16:48] = shirt, True
    rgb[66:124, 18:46], mask[66:124, 18:46] = pants, True
    return rgb, mask


def test_patches_carry_the_cloth_colours_and_wrap_without_a_seam():
    rgb, mask = person((30, 180, 40), (40, 40, 170))
    patches = cut_patches(rgb, mask)
    assert set(patches) == {"upper", "lower"}
    upper, lower = patches["upper"], patches["lower"]
    assert upper.shape == (64, 128, 3)
    assert np.abs(upper.reshape(-1, 3).mean(0) - (30, 180, 40)).max() < 3
    assert np.abs(lower.reshape(-1, 3).mean(0) - (40, 40, 170)).max() < 3
    assert np.array_equal(upper[:, 0], upper[:, -1])  # mirrored: the wrap meets itself
    assert cut_patches(rgb, np.zeros_like(mask)) == {}


def library_source(root, people=12):
    """A Market-layout set with masks: ids 1-8 train, 9-12 test (whose images are garbage)."""
    rng = np.random.default_rng(0)
    for folder in ("bounding_box_train", "bounding_box_test", "query", "masks"):
        (root / folder).mkdir(parents=True)
    for pid in range(1, people + 1):
        shirt, pants = rng.integers(20, 230, 3), rng.integers(20, 230, 3)
        for i in range(2):
            folder = "bounding_box_train" if pid <= 8 else ("query", "bounding_box_test")[i]
            name = f"{pid:04d}_c{i + 1}s1_{i:06d}_00"
            rgb, mask = person(shirt, pants)
            if folder == "bounding_box_train":
                Image.fromarray(rgb).save(root / folder / f"{name}.jpg", quality=98)
            else:
                (root / folder / f"{name}.jpg").write_bytes(b"test ids are never opened")
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{name}.png")
    return root


def test_the_library_reads_training_ids_only(tmp_path):
    source = library_source(tmp_path / "real")
    result = CliRunner().invoke(app, ["textures", "--data", f"market1501:{source}", "--out",
                                      str(tmp_path / "library")])
    assert result.exit_code == 0, result.output
    library = json.loads((tmp_path / "library" / "library.json").read_text())
    assert {s["pid"] for s in library["sources"]} == set(range(1, 9))
    assert len(list((tmp_path / "library" / "upper").glob("*.png"))) == 16
    unmasked = CliRunner().invoke(app, ["textures", "--data", f"market1501:{tmp_path}/none",
                                        "--out", str(tmp_path / "x")])
    assert unmasked.exit_code == 2


def photo_config(library, probability=1.0, preset="III"):
    data = load_config(preset).model_dump(mode="json")
    data["clothes"]["photo_textures"] = {"folder": str(library), "probability": probability}
    return config_from_dict(data)


def test_characters_draw_patches_from_their_own_stream(tmp_path):
    source = library_source(tmp_path / "real")
    CliRunner().invoke(app, ["textures", "--data", f"market1501:{source}", "--out",
                             str(tmp_path / "library")])
    config = photo_config(tmp_path / "library", probability=0.5)
    check_assets(config)
    plain = load_config("III")
    dressed = 0
    for cid in range(20):
        character, before = sample_character(config, cid, 0), sample_character(plain, cid, 0)
        assert character == sample_character(config, cid, 0)
        for garment, clean in zip(character.garments, before.garments):
            if garment.texture is not None and garment.texture.family == "photo":
                dressed += 1
                part = "upper" if garment.kind == "shirt" else "lower"
                assert f"/{part}/" in garment.texture.image
                with Image.open(garment.texture.image) as patch:
                    mean = np.asarray(patch, float).reshape(-1, 3).mean(0) / 255
                assert np.allclose(garment.colour, mean)
            else:
                assert garment == clean
        assert character.body == before.body and character.room == before.room
    assert 10 <= dressed <= 30  # about half of 40 shirts and lower garments


def test_a_farm_job_carries_its_patches_by_content(tmp_path):
    from synthreid.farm.assets import PREFIX, freeze, materialize
    from synthreid.farm.db import connect

    source = library_source(tmp_path / "real")
    CliRunner().invoke(app, ["textures", "--data", f"market1501:{source}", "--out",
                             str(tmp_path / "library")])
    data = photo_config(tmp_path / "library").model_dump(mode="json")
    data["crowd"] = {"people": [2, 2]}  # bystanders wear patches too
    character = sample_character(config_from_dict(data), 0, 0)
    engine = connect(f"sqlite:///{tmp_path / 'jobs.db'}")
    with engine.begin() as connection:
        frozen = freeze(connection, character, {})
    people = [frozen, *frozen.crowd]
    images = [g.texture.image for p in people for g in p.garments if g.texture and g.texture.image]
    assert len({p.seed for p in people}) == 3 and len(images) >= 3
    assert all(i.startswith(PREFIX) for i in images)
    local = materialize(engine, frozen, tmp_path / "cache")
    for person, original_person in zip([local, *local.crowd], [character, *character.crowd]):
        for garment, original in zip(person.garments, original_person.garments):
            if original.texture and original.texture.image:
                assert garment.texture.image.startswith(str(tmp_path / "cache"))
                assert open(garment.texture.image, "rb").read() == \
                    open(original.texture.image, "rb").read()


@pytest.mark.render
def test_the_patch_shows_on_the_rendered_shirt(body_model, tmp_path):
    from synthreid.render.renderer import Renderer
    from synthreid.scene.sampling import sample_images

    library = tmp_path / "library"
    for part, colour in (("upper", (40, 200, 40)), ("lower", (40, 40, 200))):
        (library / part).mkdir(parents=True)
        Image.new("RGB", (128, 64), colour).save(library / part / "only.png")
    data = photo_config(library).model_dump(mode="json")
    data["render"].update(samples=8, threads=2)
    data["crop"]["height_px"] = 128
    config = config_from_dict(data)
    character = sample_character(config, 0, 3)
    image = Renderer(config, body_model).render_character(
        character, sample_images(config, character, 1), tmp_path / "out")[0]
    rgb = np.asarray(Image.open(image.rgb).convert("RGB")).astype(float)
    mask = np.asarray(Image.open(image.mask).convert("L")) > 127
    rows = np.flatnonzero(mask.any(axis=1))
    top, height = rows[0], rows[-1] - rows[0]
    torso = rgb[top + int(0.3 * height):top + int(0.45 * height)][
        mask[top + int(0.3 * height):top + int(0.45 * height)]]
    legs = rgb[top + int(0.52 * height):top + int(0.6 * height)][
        mask[top + int(0.52 * height):top + int(0.6 * height)]]
    assert torso.mean(0).argmax() == 1, torso.mean(0)  # green shirt
    assert legs.mean(0).argmax() == 2, legs.mean(0)  # blue trousers or skirt (thighs)
