"""Camera effects (a realism lever): each changes what it should, draws are seeded and recorded,
and a preset without effects draws and serialises exactly as before."""

import numpy as np
import pytest

from synthreid.render.effects import apply_effects, high_frequency_energy
from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images
from synthreid.scene.spec import EffectsSpec


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A sharp test card: a person-shaped block with stripes on a checked background."""
    rng = np.random.default_rng(seed)
    rgb = np.kron((np.indices((32, 16)).sum(0) % 2) * 120 + 60, np.ones((8, 8)))[..., None]
    rgb = np.repeat(rgb, 3, axis=2).astype(np.uint8)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[40:220, 40:88] = True
    rgb[mask] = [200, 40, 40]
    rgb[40:220:6, 40:88] = [20, 20, 200]
    return np.clip(rgb + rng.normal(0, 2, rgb.shape), 0, 255).astype(np.uint8), mask


def test_blur_lowers_high_frequency_energy_and_leaves_the_mask():
    rgb, mask = scene()
    sharp = high_frequency_energy(rgb)
    for effects in (EffectsSpec(defocus_sigma_px=1.5), EffectsSpec(motion_blur_px=6,
                                                                   motion_angle=0.3)):
        blurred, kept = apply_effects(rgb, mask, effects)
        assert high_frequency_energy(blurred) < 0.5 * sharp
        assert np.array_equal(kept, mask) and blurred.shape == rgb.shape


def test_the_requested_resolution_comes_out_with_the_mask_alongside():
    rgb, mask = scene()
    small, small_mask = apply_effects(rgb, mask, EffectsSpec(height_px=128))
    assert small.shape == (128, 64, 3) and small_mask.shape == (128, 64)
    assert abs(small_mask.mean() - mask.mean()) < 0.02  # the person keeps its share


def test_exposure_white_balance_noise_and_jpeg_do_what_they_say():
    rgb, mask = scene()
    grey = np.full((64, 32, 3), 100, np.uint8)
    warm, _ = apply_effects(grey, mask[:64, :32], EffectsSpec(exposure=1.2,
                                                              gains=(1.1, 1.0, 0.8)))
    assert warm[0, 0].tolist() == [132, 120, 96]
    noisy, _ = apply_effects(grey, mask[:64, :32], EffectsSpec(noise_sigma=5, noise_seed=1))
    assert 4 < noisy.astype(float).std() < 6
    again, _ = apply_effects(grey, mask[:64, :32], EffectsSpec(noise_sigma=5, noise_seed=1))
    assert np.array_equal(noisy, again)  # seeded
    low, _ = apply_effects(rgb, mask, EffectsSpec(jpeg_quality=10))
    high, _ = apply_effects(rgb, mask, EffectsSpec(jpeg_quality=95))
    error = lambda out: np.abs(out.astype(float) - rgb).mean()  # noqa: E731
    assert error(low) > 1.3 * error(high)  # (quality 95 still subsamples colour)


def test_effects_are_drawn_from_their_own_seeded_stream():
    plain = load_config("IV")
    data = plain.model_dump(mode="json")
    assert "camera_effects" not in data  # presets without effects dump as before
    data["camera_effects"] = {"defocus_sigma_px": [0.5, 1.5], "height_px": [128, 160],
                              "jpeg_quality": [40, 95], "noise_sigma": [1, 4],
                              "white_balance": 0.1}
    with_effects = config_from_dict(data)
    character = sample_character(with_effects, 3, 0)
    images = sample_images(with_effects, character, 4)
    before = sample_images(plain, sample_character(plain, 3, 0), 4)
    for image, clean in zip(images, before):  # every other draw unchanged
        assert image.model_copy(update={"effects": None}) == clean
        assert "effects" not in clean.model_dump() and "effects" in image.model_dump()
        assert 0.5 <= image.effects.defocus_sigma_px <= 1.5
        assert 128 <= image.effects.height_px <= 160 and 40 <= image.effects.jpeg_quality <= 95
    assert images == sample_images(with_effects, character, 4)
    assert len({i.effects.noise_seed for i in images}) == 4


@pytest.mark.render
def test_a_render_with_effects_has_the_asked_size_and_scaled_keypoints(body_model, tmp_path):
    from synthreid.render.renderer import Renderer

    data = load_config("IV").model_dump(mode="json")
    data["render"].update(samples=4, threads=2)
    data["crop"].update(height_px=256)
    data["camera_effects"] = {"height_px": [100, 100], "defocus_sigma_px": [1, 1]}
    config = config_from_dict(data)
    character = sample_character(config, 0, 5)
    image = Renderer(config, body_model).render_character(
        character, sample_images(config, character, 1), tmp_path)[0]
    from PIL import Image

    rgb, mask = Image.open(image.rgb), Image.open(image.mask)
    assert rgb.height == 100 and mask.size == rgb.size
    assert image.record["size"] == {"width": rgb.width, "height": 100}
    assert image.record["image"]["effects"]["height_px"] == 100
    visible = [(x, y) for x, y, v in image.record["keypoints"]["xyv"] if v == 2]
    assert visible and all(0 <= x < rgb.width and 0 <= y < 100 for x, y in visible)
    inside = np.asarray(mask.convert("L")) > 127
    assert np.mean([inside[int(y), int(x)] for x, y in visible]) > 0.6
