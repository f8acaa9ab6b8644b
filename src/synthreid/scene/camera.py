"""Camera placement: uniform on a user-defined segment of the upper hemisphere (thesis 2.1.2).

Archimedes' hat-box theorem: the radial projection from a cylinder to the sphere preserves area,
so z ~ U[cos theta2, cos theta1] and phi ~ U[0, 2 pi) give points uniform on the segment.
"""

from __future__ import annotations

import math

import numpy as np

from synthreid.scene.spec import CameraSpec


def sample_unit_directions(
    rng: np.random.Generator, count: int, theta1: float, theta2: float
) -> np.ndarray:
    """`count` unit vectors uniform on the sphere segment theta1 <= polar angle <= theta2 (radians).

    The polar angle is measured from the +z axis (up), so theta = pi/2 is level with the centre.
    """
    if not 0 <= theta1 <= theta2 <= math.pi:
        raise ValueError(f"need 0 <= theta1 <= theta2 <= pi, got {theta1}, {theta2}")
    xi1, xi2 = rng.random(count), rng.random(count)
    z_high, z_low = math.cos(theta1), math.cos(theta2)
    z = z_low + (z_high - z_low) * xi1  # the cylinder sample squeezed into [h2, h1]
    phi = 2 * math.pi * xi2
    r = np.sqrt(np.clip(1 - z * z, 0, None))  # projected from the cylinder onto the sphere
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def camera_position(camera: CameraSpec, target: np.ndarray) -> np.ndarray:
    """Where the renderer puts the camera of an image: `radius_m` from the character's centre
    along the sampled direction."""
    return np.asarray(target, dtype=float) + camera.radius_m * np.asarray(camera.direction)
