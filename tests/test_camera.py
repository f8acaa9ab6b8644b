import math

import numpy as np
import pytest
from scipy import stats

from synthreid.scene.camera import camera_positions, sample_unit_directions

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


def test_positions_lie_at_radius_from_the_centre():
    centre = np.array([1.0, -2.0, 0.9])
    p = camera_positions(np.random.default_rng(0), 5000, centre, 4.5, 0.5, 1.4)
    np.testing.assert_allclose(np.linalg.norm(p - centre, axis=1), 4.5, rtol=1e-12)


def test_same_seed_same_cameras_and_bad_arguments():
    a = sample_unit_directions(np.random.default_rng(3), 10, 0.2, 1.0)
    b = sample_unit_directions(np.random.default_rng(3), 10, 0.2, 1.0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        sample_unit_directions(np.random.default_rng(0), 10, 1.0, 0.5)
    with pytest.raises(ValueError):
        camera_positions(np.random.default_rng(0), 10, np.zeros(3), 0.0, 0.1, 0.5)
