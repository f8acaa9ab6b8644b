"""Occluders (a realism lever): props between camera and person, drawn per image from their own
seed stream and recorded; a prop hides part of the person and never enters the person's mask."""

import math

import numpy as np
import pytest

from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images


def with_props(**occluders):
    data = load_config("III").model_dump(mode="json")
    data["occluders"] = occluders
    return config_from_dict(data)


def test_props_stand_between_the_person_and_the_camera():
    config = with_props(probability=0.5)
    plain = load_config("III")
    character = sample_character(config, 0, 0)
    images = sample_images(config, character, 40)
    clean = sample_images(plain, sample_character(plain, 0, 0), 40)
    assert all(i.model_copy(update={"props": None}) == c for i, c in zip(images, clean))
    counts = [len(image.props) for image in images]
    assert set(counts) == {0, 1} and 10 <= sum(counts) <= 30  # about half the images
    for image in images:
        for prop in image.props:
            direction = np.array(image.camera.direction[:2])
            direction /= np.linalg.norm(direction)
            along = float(np.dot([prop.x, prop.y], direction))
            assert 0.15 * 5.0 - 1e-9 <= along <= 0.5 * 5.0 + 1e-9  # radius 5 m
            assert abs(prop.x * direction[1] - prop.y * direction[0]) <= 0.35 + 1e-9
    assert images == sample_images(config, character, 40)


def render_mask(body_model, config, out):
    """The person mask (and the image) of character 0's first view, a quick Workbench render."""
    from PIL import Image

    from synthreid.render.renderer import Renderer

    data = config.model_dump(mode="json")
    data["render"].update(engine="workbench")
    data["crop"]["height_px"] = 128
    config = config_from_dict(data)
    character = sample_character(config, 0, 2)
    image = Renderer(config, body_model).render_character(
        character, sample_images(config, character, 1), out)[0]
    return np.asarray(Image.open(image.mask).convert("L")) > 127, image


@pytest.mark.render
def test_a_prop_hides_part_of_the_person_and_stays_out_of_the_mask(body_model, tmp_path):
    def mask(config, name):
        return render_mask(body_model, config, tmp_path / name)

    free, _ = mask(load_config("III"), "free")
    hidden, image = mask(with_props(probability=1.0, kinds=["pole"], sideways_m=[0, 0],
                                    pole_radius_m=[0.15, 0.15], toward_camera=[0.3, 0.3]),
                         "hidden")
    assert image.record["image"]["props"][0]["kind"] == "pole"
    assert not (hidden & ~free).any()  # nothing of the prop counts as person
    assert hidden.sum() < 0.9 * free.sum()  # a 30 cm pole in front hides a good part
    assert not math.isclose(hidden.sum(), 0)


def test_bicycles_stand_side_on_to_the_camera():
    config = with_props(probability=1.0, kinds=["bicycle"])
    for image in sample_images(config, sample_character(config, 0, 0), 30):
        (bike,) = image.props
        toward = math.atan2(image.camera.direction[1], image.camera.direction[0])
        off = (bike.heading - toward) % math.pi  # the frame's axis against the line of sight
        assert math.radians(60) - 1e-9 <= off <= math.radians(120) + 1e-9
        assert 1.5 < bike.size_m[0] < 2.0 and bike.kind == "bicycle"


@pytest.mark.render
def test_a_bicycle_hides_part_of_the_person_and_stays_out_of_the_mask(body_model, tmp_path):
    def mask(config, name):
        return render_mask(body_model, config, tmp_path / name)[0]

    free = mask(load_config("III"), "free")
    hidden = mask(with_props(probability=1.0, kinds=["bicycle"], sideways_m=[0, 0],
                             toward_camera=[0.15, 0.15]), "bicycle")
    assert not (hidden & ~free).any()  # no part of the bicycle counts as person
    assert 0.3 * free.sum() < hidden.sum() < 0.97 * free.sum()  # spokes and tubes: partly hidden
