"""Pinhole projection and the crop rectangle, in numpy (no bpy), matching Blender's camera.

The full frame is square, so a normalised image position does not depend on the resolution;
the resolution is then chosen so the crop comes out `height_px` tall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    position: np.ndarray  # (3,)
    target: np.ndarray  # (3,)
    focal_mm: float
    sensor_mm: float

    @property
    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; the camera looks down its -z axis with +y up (Blender)."""
        forward = self.target - self.position
        forward = forward / np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-9:  # looking straight down: any right vector will do
            right = np.array([1.0, 0.0, 0.0])
        right = right / np.linalg.norm(right)
        up = np.cross(right, forward)
        return np.stack([right, up, -forward])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points to (N, 2) normalised frame coordinates: (0, 0) bottom left,
        (1, 1) top right, as Blender's world_to_camera_view."""
        cam = (np.asarray(points) - self.position) @ self.rotation.T
        depth = -cam[:, 2]
        scale = self.focal_mm / self.sensor_mm
        return np.stack([0.5 + scale * cam[:, 0] / depth, 0.5 + scale * cam[:, 1] / depth], axis=1)

    def camera_to_world(self) -> np.ndarray:
        """The camera object's 4x4 world matrix (Blender's matrix_world)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation.T
        matrix[:3, 3] = self.position
        return matrix


@dataclass(frozen=True)
class Crop:
    """A render border: the frame's resolution and the pixel rectangle rendered from it."""

    resolution: int  # the full square frame, pixels
    x0: int  # left, from the frame's left edge
    y0: int  # top, from the frame's top edge
    width: int
    height: int

    def border(self) -> tuple[float, float, float, float]:
        """Blender's (min_x, max_x, min_y, max_y), normalised, y from the bottom."""
        r = self.resolution
        return (self.x0 / r, (self.x0 + self.width) / r,
                1 - (self.y0 + self.height) / r, 1 - self.y0 / r)

    def to_pixels(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised frame coordinates to (x, y) pixels in the crop, y down."""
        r = self.resolution
        return np.stack([normalised[:, 0] * r - self.x0, (1 - normalised[:, 1]) * r - self.y0],
                        axis=1)


def bbox_corners(points: np.ndarray) -> np.ndarray:
    low, high = points.min(axis=0), points.max(axis=0)
    return np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                     for z in (low[2], high[2])])


def compute_crop(camera: PinholeCamera, points: np.ndarray, mode: str, height_px: int,
                 margin_px: int) -> Crop:
    """The crop around `points`: `tight` (projected points + margin) or `bbox3d` (the projected
    8 corners of their 3D bounding box, the thesis' method, no margin)."""
    if mode == "bbox3d":
        uv, margin_px = camera.project(bbox_corners(points)), 0
    elif mode == "tight":
        uv = camera.project(points)
    else:
        raise ValueError(f"crop mode must be 'tight' or 'bbox3d', got {mode!r}")
    low, high = uv.min(axis=0), uv.max(axis=0)
    inner = max(height_px - 2 * margin_px, 8)
    # Rounding the resolution down keeps the person within `inner` pixels, so the crop is
    # exactly `height_px` tall whenever it fits in the frame.
    resolution = max(int(inner / max(high[1] - low[1], 1e-6)), 1)
    x0 = int(math.floor(low[0] * resolution)) - margin_px
    x1 = int(math.ceil(high[0] * resolution)) + margin_px
    top = int(math.floor((1 - high[1]) * resolution)) - margin_px
    bottom = top + height_px
    x0, top = max(x0, 0), max(top, 0)
    x1, bottom = min(x1, resolution), min(bottom, resolution)
    return Crop(resolution=resolution, x0=x0, y0=top, width=x1 - x0, height=bottom - top)
