"""Crowds (a realism lever): bystanders of the same preset, drawn per character from their own
seed stream and placed per image; they appear in the picture, hide the person where they stand
in front, and never enter the person's mask."""

import math

import numpy as np
import pytest

from synthreid.errors import ConfigError
from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images


def with_crowd(preset: str = "III", **crowd):
    data = load_config(preset).model_dump(mode="json")
    data["crowd"] = crowd
    return config_from_dict(data)


def test_bystanders_are_drawn_apart_from_the_person_and_recorded():
    config, plain = with_crowd(people=[2, 2], probability=0.5), load_config("III")
    character = sample_character(config, 0, 0)
    alone = sample_character(plain, 0, 0)
    assert character.model_copy(update={"crowd": None}) == alone  # the person is unchanged
    assert "crowd" not in alone.model_dump()  # old specs serialise as they did
    assert len(character.crowd) == 2
    assert len({b.seed for b in character.crowd} | {character.seed}) == 3
    assert character.crowd[0].body != character.crowd[1].body
    images = sample_images(config, character, 60)
    clean = sample_images(plain, alone, 60)
    assert all(i.model_copy(update={"crowd": None}) == c for i, c in zip(images, clean))
    present = [len(image.crowd) for image in images]
    assert 40 <= sum(present) <= 80  # each of two bystanders in about half the images
    for image in images:
        for bystander in image.crowd:
            assert 0.6 - 1e-9 <= math.hypot(bystander.x, bystander.y) <= 2.5 + 1e-9
    assert images == sample_images(config, sample_character(config, 0, 0), 60)


def test_in_view_bystanders_stand_on_the_line_of_sight():
    config = with_crowd(people=[1, 1], probability=1.0, in_view=1.0)
    character = sample_character(config, 3, 0)
    for image in sample_images(config, character, 40):
        (bystander,) = image.crowd
        camera = np.array(image.camera.direction[:2]) / np.linalg.norm(image.camera.direction[:2])
        where = np.array([bystander.x, bystander.y]) / math.hypot(bystander.x, bystander.y)
        assert abs(float(np.dot(camera, where))) >= math.cos(0.3) - 1e-9  # in front or behind


def test_a_bad_crowd_is_one_line():
    with pytest.raises(ConfigError, match="people"):
        with_crowd(people=[3, 1])


@pytest.mark.render
def test_a_bystander_in_front_hides_the_person_and_stays_out_of_the_mask(body_model, tmp_path):
    from PIL import Image

    from synthreid.render.renderer import Renderer

    def render(config, name, cid):
        data = config.model_dump(mode="json")
        data["render"].update(engine="workbench")
        data["crop"]["height_px"] = 128
        config = config_from_dict(data)
        character = sample_character(config, cid, 2)
        image = Renderer(config, body_model).render_character(
            character, sample_images(config, character, 1), tmp_path / name)[0]
        rgb = np.asarray(Image.open(image.rgb).convert("RGB")).astype(float)
        return rgb, np.asarray(Image.open(image.mask).convert("L")) > 127, image

    # One bystander, always present, 70 cm in front of the person on the line of sight.
    crowd = with_crowd(people=[1, 1], probability=1.0, in_view=1.0, distance_m=[0.7, 0.7])

    def in_front(cid):
        (image,) = sample_images(crowd, sample_character(crowd, cid, 2), 1)
        return np.dot([image.crowd[0].x, image.crowd[0].y], image.camera.direction[:2]) > 0

    cid = next(cid for cid in range(20) if in_front(cid))
    free_rgb, free, _ = render(load_config("III"), "free", cid)
    rgb, hidden, image = render(crowd, "crowd", cid)
    assert image.record["image"]["crowd"][0]["index"] == 0
    assert len(image.record["character"]["crowd"]) == 1
    assert not (hidden & ~free).any()  # nothing of the bystander counts as person
    assert hidden.sum() < 0.8 * free.sum()  # a body 70 cm in front hides a good part
    assert hidden.sum() > 0
    # The bystander is in the picture: outside the person's mask, the pixels changed.
    assert np.abs(rgb - free_rgb)[~free].mean() > 5
