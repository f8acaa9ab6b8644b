"""Accessories as rigid meshes, each fixed to one bone so it moves with the pose.

Sizes are fitted to the shaped body's rest geometry (the back's depth, the head's radius).
"""

from __future__ import annotations

import numpy as np

from synthreid.body.mesh import MeshPart, box, cylinder, ellipsoid, merge
from synthreid.scene.spec import AccessorySpec


class Landmarks:
    """Rest-pose measurements an accessory is fitted to."""

    def __init__(self, rest_vertices: np.ndarray, weights: np.ndarray, bone_heads: np.ndarray,
                 labels: list[str]) -> None:
        self.index = {label: i for i, label in enumerate(labels)}
        self.vertices, self.weights, self.heads = rest_vertices, weights, bone_heads
        head = weights[:, self.index["head"]] > 0.5
        self.head_centre = rest_vertices[head].mean(axis=0)
        self.head_top = rest_vertices[head, 2].max()
        self.head_radius = float(np.percentile(
            np.linalg.norm(rest_vertices[head][:, :2] - self.head_centre[:2], axis=1), 95))

    def head(self, label: str) -> np.ndarray:
        return self.heads[self.index[label]]

    def torso_extent(self, z_low: float, z_high: float) -> tuple[float, float, float]:
        """(back y, front y, half width) of the trunk between two heights, arms excluded."""
        band = (self.vertices[:, 2] > z_low) & (self.vertices[:, 2] < z_high)
        trunk = band & (np.abs(self.vertices[:, 0]) < 0.16)
        return (float(self.vertices[trunk, 1].max()), float(self.vertices[trunk, 1].min()),
                float(np.abs(self.vertices[band & (np.abs(self.vertices[:, 0]) < 0.25), 0]).max()))


def _backpack(m: Landmarks) -> tuple[tuple, str]:
    z = m.head("spine03")[2]
    back, _, _ = m.torso_extent(z - 0.15, z + 0.15)
    pack = box((0, back + 0.075, z), (0.30, 0.14, 0.40))
    straps = [box((sx * 0.09, 0, z + 0.06), (0.04, 2 * (back + 0.02) + 0.02, 0.02))
              for sx in (-1, 1)]
    return merge([pack, *straps]), "spine03"


def _shoulder_bag(m: Landmarks, side: str) -> tuple[tuple, str]:
    sx = 1 if side == "left" else -1
    hip = m.head("upperleg01.L" if side == "left" else "upperleg01.R")
    _, _, half_width = m.torso_extent(hip[2] - 0.05, hip[2] + 0.15)
    bag = box((sx * (half_width + 0.05), hip[1], hip[2] + 0.08), (0.07, 0.26, 0.21))
    return bag, "root"


def _hat(m: Landmarks) -> tuple[tuple, str]:
    r, c = m.head_radius, m.head_centre
    base = np.array([c[0], c[1], m.head_top - 0.06])
    crown = cylinder(base, 1.08 * r, 1.18 * r, 0.13)
    brim = cylinder(base, 1.08 * r + 0.07, 1.18 * r + 0.07, 0.008, segments=28)
    return merge([crown, brim]), "head"


def _cap(m: Landmarks) -> tuple[tuple, str]:
    r, c = m.head_radius, m.head_centre
    base = np.array([c[0], c[1], m.head_top - 0.075])
    dome = ellipsoid(base, (1.1 * r, 1.2 * r, 0.09), z_min=0.0)
    visor = box(base + [0, -1.2 * r - 0.035, 0.005], (1.4 * r, 0.09, 0.008))
    return merge([dome, visor]), "head"


def _glasses(m: Landmarks) -> tuple[tuple, str]:
    eyes = [m.head("eye.L"), m.head("eye.R")]
    front_y = min(e[1] for e in eyes) - 0.035
    lenses = [box((e[0], front_y, e[2]), (0.045, 0.004, 0.032)) for e in eyes]
    bridge = box(((eyes[0][0] + eyes[1][0]) / 2, front_y, eyes[0][2] + 0.008), (0.02, 0.004, 0.005))
    temples = [box((e[0] + np.sign(e[0]) * 0.03, front_y + 0.05, e[2] + 0.005),
                   (0.004, 0.10, 0.005)) for e in eyes]
    return merge([*lenses, bridge, *temples]), "head"


def accessory_mesh(index: int, spec: AccessorySpec, landmarks: Landmarks,
                   bone_count: int) -> MeshPart:
    if spec.kind == "backpack":
        (vertices, faces), bone = _backpack(landmarks)
    elif spec.kind == "shoulder_bag":
        (vertices, faces), bone = _shoulder_bag(landmarks, spec.side)
    elif spec.kind == "hat":
        (vertices, faces), bone = _hat(landmarks)
    elif spec.kind == "cap":
        (vertices, faces), bone = _cap(landmarks)
    else:
        (vertices, faces), bone = _glasses(landmarks)
    weights = np.zeros((len(vertices), bone_count))
    weights[:, landmarks.index[bone]] = 1.0
    return MeshPart(spec.kind, vertices, faces, weights, f"accessory:{index}")
