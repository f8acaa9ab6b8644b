"""Light (a realism lever): sun colour temperatures and point lamps, drawn per image from their
own seed stream and recorded; a lamp's colour shows on the person."""

import numpy as np
import pytest

from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import blackbody_rgb, sample_character, sample_images


def lit(preset="III", **lights):
    data = load_config(preset).model_dump(mode="json")
    data["lights"] = lights
    return config_from_dict(data)


def test_blackbody_colours_run_from_warm_to_cool():
    warm, white, cool = blackbody_rgb(2700), blackbody_rgb(6500), blackbody_rgb(10000)
    assert warm[0] == 1 and warm[2] < 0.3
    assert min(white) > 0.9
    assert cool[2] == 1 and cool[0] < 0.9


def test_lights_are_drawn_from_their_own_seeded_stream_and_recorded():
    plain = load_config("III")
    config = lit(sun_temperature_k=[3000, 9000], lamps=[1, 3], lamp_saturation=0.8)
    character = sample_character(config, 2, 0)
    images = sample_images(config, character, 6)
    clean = sample_images(plain, sample_character(plain, 2, 0), 6)
    for image, before in zip(images, clean):
        assert image.model_copy(update={"sun_colour": None, "lamps": None}) == before
        assert "lamps" not in before.model_dump() and "lamps" in image.model_dump()
        assert 1 <= len(image.lamps) <= 3 and max(image.sun_colour) == 1.0
    assert images == sample_images(config, character, 6)
    assert len({image.sun_colour for image in images}) == 6


@pytest.mark.render
def test_a_coloured_lamp_tints_the_person(body_model, tmp_path):
    from PIL import Image

    from synthreid.render.renderer import Renderer

    def render(config, name):
        data = config.model_dump(mode="json")
        data["render"].update(samples=8, threads=2)
        data["crop"]["height_px"] = 96
        config = config_from_dict(data)
        character = sample_character(config, 1, 4)
        image = Renderer(config, body_model).render_character(
            character, sample_images(config, character, 1), tmp_path / name)[0]
        rgb = np.asarray(Image.open(image.rgb).convert("RGB")).astype(float)
        person = rgb[np.asarray(Image.open(image.mask).convert("L")) > 127]
        return person.mean(axis=0), image

    plain, _ = render(load_config("III"), "plain")
    red, image = render(lit(lamps=[2, 2], lamp_power_w=[400, 400], lamp_saturation=0.0,
                            lamp_temperature_k=[2000, 2000], lamp_distance_m=[1.5, 1.5],
                            lamp_height_m=[0.5, 0.5]), "red")
    assert len(image.record["image"]["lamps"]) == 2
    # 2000 K lamps are deep orange-red: the person's red rises against its blue.
    assert red[0] / red[2] > 1.3 * plain[0] / plain[2], (plain, red)


def test_sky_and_light_levels_are_drawn_only_when_asked():
    config = lit(sky=True, haze=[1, 2], sun_strength=[0, 0.4], ambient=[0.1, 0.3])
    images = sample_images(config, sample_character(config, 0, 0), 20)
    assert all(1 <= i.sky_haze <= 2 and i.sun_strength <= 0.4 and 0.1 <= i.ambient <= 0.3
               for i in images)
    colours = lit(sun_temperature_k=[3000, 9000])  # without them: the presets' light levels
    before = sample_images(colours, sample_character(colours, 0, 0), 20)
    assert all(1.5 <= i.sun_strength <= 4 and "sky_haze" not in i.model_dump() for i in before)
    # and such lights dump as before the sky existed (run and stage keys stay)
    assert not {"sky", "haze", "sun_strength", "ambient"} & set(colours.lights.model_dump())
    assert {"sky", "haze", "ambient"} <= set(config.lights.model_dump())


@pytest.mark.render
def test_the_indoor_and_outdoor_presets_light_the_room_as_named(body_model, tmp_path):
    """Outdoors a blue-tinged daylight sky; indoors warm lamps (the shipped files)."""
    from pathlib import Path

    from PIL import Image

    from synthreid.render.renderer import Renderer

    levers = Path(__file__).resolve().parents[1] / "experiments" / "levers"

    def render(preset, name, **lights):
        data = load_config(str(levers / f"{preset}.yaml")).model_dump(mode="json")
        data["lights"].update(lights)
        data["room"]["kind"] = "cuboid"  # plain walls: the light itself is measured
        data["render"].update(samples=8, threads=2)
        data["crop"]["height_px"] = 64
        config = config_from_dict(data)
        character = sample_character(config, 0, 3)
        images = Renderer(config, body_model).render_character(
            character, sample_images(config, character, 3), tmp_path / name)
        rgb = np.stack([np.asarray(Image.open(i.rgb).convert("RGB").resize((32, 64)))
                        for i in images]).astype(float)
        return rgb.reshape(len(images), -1, 3).mean(axis=1), images  # each image's mean

    plain, _ = render("IV-outdoor", "plain", sky=False)
    outdoor, images = render("IV-outdoor", "outdoor")
    assert all(i.record["image"]["sky_haze"] is not None for i in images)
    indoor, images = render("IV-indoor", "indoor")
    assert all(len(i.record["image"]["lamps"]) >= 2 for i in images)
    indoor, outdoor_all = indoor.mean(axis=0), outdoor.mean(axis=0)
    assert indoor[0] / indoor[2] > 1.1 * outdoor_all[0] / outdoor_all[2], (indoor, outdoor_all)
    # The daylight sky's blue shade, against the plain sky under the same sun (the first
    # image: the same draws but the sky's haze).
    assert outdoor[0, 2] / outdoor[0, 0] > 1.05 * plain[0, 2] / plain[0, 0], (outdoor, plain)
