import math

import numpy as np
import pytest
from scipy import stats

from synthreid.scene.camera import camera_position, sample_unit_directions
from synthreid.scene.config import load_config
from synthreid.scene.sampling import sample_character, sample_images

SEGMENTS_DEG = [(0, 90), (60, 90), (30, 45), (80, 85), (10, 70)]


@pytest.mark.parametrize("theta_deg", SEGMENTS_DEG)
def test_directions_are_uniform_on_the_segment(theta_deg):
    theta1, theta2 = (math.radians(t) for t in theta_deg)
    rng = np.random.default_rng(sum(theta_deg))
    d = sample_unit_directions(rng, 20_000, theta1, theta2)
    z_low, z_high = math.cos(theta2), math.cos(theta1)
    # Uniform area on a sphere segment <=> z uniform in [cos theta2, cos theta1] (hat-box theorem)
    assert stats.kstest(d[:, 2], stats.uniform(z_low, z_high - z_low).cdf).pvalue > 0.01
    phi = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * math.pi)
    assert stats.kstest(phi, stats.uniform(0, 2 * math.pi).cdf).pvalue > 0.01
    polar = np.arccos(np.clip(d[:, 2], -1, 1))
    assert polar.min() >= theta1 - 1e-9 and polar.max() <= theta2 + 1e-9


def test_naive_angle_sampling_would_fail_the_same_test():
    # The test has power: sampling theta uniformly (the thesis' counter-example) is rejected.
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, math.pi / 2, 20_000)
    assert stats.kstest(np.cos(theta), stats.uniform(0, 1).cdf).pvalue < 1e-6


@pytest.mark.parametrize("theta_deg", [(60, 90), (20, 50)])
def test_the_renderers_cameras_are_uniform_on_the_preset_segment(theta_deg):
    # The whole path the renderer takes: a preset, sampled characters and their image specs,
    # and the position the renderer computes from each spec.
    config = load_config("IV").model_copy(update={"camera": load_config("IV").camera.model_copy(
        update={"theta_deg": theta_deg})})
    target = np.array([0.3, -1.0, 0.9])
    positions = np.array([
        camera_position(image.camera, target)
        for character_id in range(400)
        for image in sample_images(config, sample_character(config, character_id, 7), 10)])
    offsets = positions - target
    radius = config.camera.radius_m
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), radius, rtol=1e-9)
    z = offsets[:, 2] / radius
    z_low, z_high = (math.cos(math.radians(t)) for t in reversed(theta_deg))
    assert stats.kstest(z, stats.uniform(z_low, z_high - z_low).cdf).pvalue > 0.01
    phi = np.mod(np.arctan2(offsets[:, 1], offsets[:, 0]), 2 * math.pi)
    assert stats.kstest(phi, stats.uniform(0, 2 * math.pi).cdf).pvalue > 0.01
    # Power: away from the equator (where cos is nearly linear) the polar angle itself is not
    # uniform, which a naive sampler's would be.
    if theta_deg[1] < 80:
        polar = np.degrees(np.arccos(z))
        assert stats.kstest(polar, stats.uniform(theta_deg[0], theta_deg[1] - theta_deg[0]).cdf
                            ).pvalue < 1e-4


def test_same_seed_same_cameras_and_bad_arguments():
    a = sample_unit_directions(np.random.default_rng(3), 10, 0.2, 1.0)
    b = sample_unit_directions(np.random.default_rng(3), 10, 0.2, 1.0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        sample_unit_directions(np.random.default_rng(0), 10, 1.0, 0.5)
