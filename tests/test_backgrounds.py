"""Photo backgrounds (a realism lever): a folder of equirectangular photos, one drawn per
character from its seed, stored by content when a run is planned, and seen behind the person."""

import numpy as np
import pytest
from PIL import Image

from synthreid.errors import ConfigError
from synthreid.scene.config import check_assets, config_from_dict, load_config
from synthreid.scene.sampling import sample_character

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def photo_folder(root):
    root.mkdir()
    for name, colour in COLOURS.items():
        Image.new("RGB", (256, 128), colour).save(root / f"{name}.jpg", quality=98)
    (root / "notes.txt").write_text("not a photo")
    return root


def photo_config(folder, **render):
    data = load_config("IV").model_dump(mode="json")
    data["room"].update(kind="equirect", cubemaps=[str(folder)])
    data["render"].update(render)
    return config_from_dict(data)


def test_each_character_draws_one_photo_of_the_folder_from_its_seed(tmp_path):
    config = photo_config(photo_folder(tmp_path / "photos"))
    check_assets(config)
    drawn = [sample_character(config, i, 0).room.background for i in range(30)]
    assert {p.rsplit("/", 1)[1] for p in drawn} == {"red.jpg", "green.jpg", "blue.jpg"}
    assert drawn == [sample_character(config, i, 0).room.background for i in range(30)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no .png/.jpg images"):
        check_assets(photo_config(tmp_path / "empty"))


@pytest.mark.render
def test_the_drawn_photo_is_behind_the_person(body_model, tmp_path):
    from synthreid.render.renderer import Renderer
    from synthreid.scene.sampling import sample_images

    data = photo_config(photo_folder(tmp_path / "photos"), samples=4, threads=2).model_dump()
    data["crop"]["height_px"] = 96
    config = config_from_dict(data)
    renderer = Renderer(config, body_model)
    for cid in range(2):
        character = sample_character(config, cid, 1)
        image = renderer.render_character(character, sample_images(config, character, 1),
                                          tmp_path / "out")[0]
        rgb = np.asarray(Image.open(image.rgb).convert("RGB")).astype(float)
        behind = rgb[np.asarray(Image.open(image.mask).convert("L")) < 128]
        colour = character.room.background.rsplit("/", 1)[1].removesuffix(".jpg")
        channel = list(COLOURS).index(colour)
        # the drawn photo's colour dominates what is seen around the person (the floor too)
        assert behind.mean(axis=0).argmax() == channel, (colour, behind.mean(axis=0))


def test_a_backplate_window_keeps_the_render_aspect_inside_the_photo():
    from synthreid.render.backplate import backplate_window

    windows = [backplate_window((640, 480), (64, 128), seed) for seed in range(200)]
    for left, top, right, bottom in windows:
        assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480
        assert abs((right - left) / (bottom - top) - 0.5) < 0.02
    assert len(set(windows)) > 150  # drawn per image seed
    assert windows == [backplate_window((640, 480), (64, 128), seed) for seed in range(200)]


@pytest.mark.parametrize("engine", ["cycles", "workbench"])
def test_a_backplate_photo_is_behind_the_person(body_model, tmp_path, engine):
    from synthreid.render.renderer import Renderer
    from synthreid.scene.sampling import sample_images

    data = photo_config(photo_folder(tmp_path / "photos"), samples=4, threads=2,
                        engine=engine).model_dump()
    data["room"]["kind"] = "backplate"
    data["crop"]["height_px"] = 96
    config = config_from_dict(data)
    check_assets(config)
    renderer = Renderer(config, body_model)
    for cid in range(2):
        character = sample_character(config, cid, 1)
        image = renderer.render_character(character, sample_images(config, character, 1),
                                          tmp_path / "out")[0]
        with Image.open(image.rgb) as picture:
            assert picture.mode == "RGB"
            rgb = np.asarray(picture).astype(float)
        mask = np.asarray(Image.open(image.mask).convert("L"))
        assert ((mask < 10) | (mask > 245)).all()  # person or not: no world colour in it
        person = mask > 127
        colour = np.array(COLOURS[character.room.background.rsplit("/", 1)[1][:-4]])
        behind = rgb[~person]
        # the photo itself around the person (the shadow only darkens it)
        assert (np.abs(behind - colour).max(axis=1) < 12).mean() > 0.6, behind.mean(axis=0)
        assert (behind.argmax(axis=1) == colour.argmax()).mean() > 0.95
        assert np.abs(rgb[person] - colour).max(axis=1).mean() > 30  # the person is drawn
