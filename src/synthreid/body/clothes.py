"""Clothes as shells of their own: the body surface, smoothed, pushed out along its normals and
cut along a smooth hem.

anny's segmentation labels torso, arms and legs all as "body", so garments are found from the
skinning weights (which bones move a vertex) plus a coordinate along each limb for sleeve and
leg length. Both are per-vertex fields interpolated along edges by `clip_to_field`, so hems are
smooth lines.
"""

from __future__ import annotations

import math

import numpy as np

from synthreid.body.mesh import MeshPart, clip_to_field, vertex_normals
from synthreid.scene.spec import GarmentSpec

# How far each garment stands off the skin (m): layered so the shirt hangs over the pants.
OFFSETS = {"pants": 0.010, "shirt": 0.016, "shoes": 0.012, "skirt": 0.0}


def bone_groups(labels: list[str]) -> dict[str, np.ndarray]:
    def pick(predicate) -> np.ndarray:
        return np.array([i for i, label in enumerate(labels) if predicate(label)])

    arm = ("shoulder01", "upperarm", "lowerarm")
    return {
        "torso": pick(lambda b: b.startswith(("spine", "clavicle"))),
        "arm.L": pick(lambda b: b.startswith(arm) and b.endswith(".L")),
        "arm.R": pick(lambda b: b.startswith(arm) and b.endswith(".R")),
        "lower": pick(lambda b: b == "root" or b.startswith(("pelvis", "upperleg", "lowerleg"))),
        "feet": pick(lambda b: b.startswith(("foot", "toe"))),
        "head": pick(lambda b: b.startswith(("neck", "head", "eye"))),
    }


class GarmentFields:
    """Per-vertex coverage fields of one shaped body (positive inside a garment)."""

    def __init__(self, rest_vertices: np.ndarray, weights: np.ndarray, bone_heads: np.ndarray,
                 labels: list[str]) -> None:
        groups = bone_groups(labels)
        self.w = {name: weights[:, idx].sum(axis=1) for name, idx in groups.items()}
        index = {label: i for i, label in enumerate(labels)}
        self.vertices = rest_vertices
        self.arm_t = {}
        for side in ("L", "R"):
            shoulder = bone_heads[index[f"upperarm01.{side}"]]
            wrist = bone_heads[index[f"wrist.{side}"]]
            axis = wrist - shoulder
            self.arm_t[side] = (rest_vertices - shoulder) @ axis / (axis @ axis)
        hip_z = bone_heads[[index["upperleg01.L"], index["upperleg01.R"]], 2].mean()
        ankle_z = bone_heads[[index["foot.L"], index["foot.R"]], 2].mean()
        self.leg_t = (hip_z - rest_vertices[:, 2]) / (hip_z - ankle_z)

    def shirt(self, sleeve_length: float) -> np.ndarray:
        upper = self.w["torso"] + self.w["arm.L"] + self.w["arm.R"]
        field = upper - 0.25  # reaches a little below the waist, over the pants
        for side in ("L", "R"):
            on_arm = np.clip(self.w[f"arm.{side}"] / 0.5, 0, 1)
            sleeve = (sleeve_length - self.arm_t[side]) * on_arm + (1 - on_arm)
            field = np.minimum(field, sleeve)
        return field

    def pants(self, leg_length: float) -> np.ndarray:
        lower = self.w["lower"] - 0.3
        return np.minimum(lower, leg_length - self.leg_t)

    def shoes(self) -> np.ndarray:
        return np.maximum(self.w["feet"] - 0.3, self.leg_t - 0.93)


def garment_shell(kind: str, field: np.ndarray, smoothed: np.ndarray, faces: np.ndarray,
                  weights: np.ndarray) -> MeshPart:
    """Cut the smoothed body along `field` and push it out by the garment's offset."""
    normals = vertex_normals(smoothed, faces)
    shell = smoothed + OFFSETS[kind] * normals
    vertices, shell_faces, (shell_weights,) = clip_to_field(shell, faces, field, [weights])
    return MeshPart(kind, vertices, shell_faces, shell_weights, f"garment:{kind}")


def skirt_mesh(garment: GarmentSpec, rest_vertices: np.ndarray, bone_heads: np.ndarray,
               labels: list[str], bone_count: int) -> MeshPart:
    """A flared tube from the waist down to `length` of the leg, swaying with the thighs."""
    index = {label: i for i, label in enumerate(labels)}
    hips = bone_heads[[index["upperleg01.L"], index["upperleg01.R"]]]
    top_z = hips[:, 2].mean() + 0.10
    ankle_z = bone_heads[index["foot.L"], 2]
    bottom_z = top_z - 0.1 - garment.length * (top_z - ankle_z) * 0.85
    # The trunk at the waist; the A-pose hands hang at the same height, further out.
    band = (np.abs(rest_vertices[:, 2] - top_z) < 0.03) & (np.abs(rest_vertices[:, 0]) < 0.24)
    near = rest_vertices[band]
    centre = near.mean(axis=0)
    half_x = np.abs(near[:, 0] - centre[0]).max() + 0.025
    half_y = np.abs(near[:, 1] - centre[1]).max() + 0.03
    rings, segments = 8, 28
    s = np.linspace(0, 1, rings + 1)[:, None]
    a = np.linspace(0, 2 * math.pi, segments, endpoint=False)[None, :]
    flare = 1 + 0.6 * s  # wider at the hem
    x = centre[0] + half_x * flare * np.cos(a)
    y = centre[1] + half_y * flare * np.sin(a)
    z = np.broadcast_to(top_z + (bottom_z - top_z) * s, x.shape)
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    faces = []
    for r in range(rings):
        for k in range(segments):
            i0, i1 = r * segments + k, r * segments + (k + 1) % segments
            faces += [(i0, i1 + segments, i0 + segments), (i0, i1, i1 + segments)]
    weights = np.zeros((len(vertices), bone_count))
    depth = np.broadcast_to(s, x.shape).ravel()
    left = np.clip(0.5 + (vertices[:, 0] - centre[0]) / (2 * half_x), 0, 1)
    weights[:, index["root"]] = 1 - 0.85 * depth
    weights[:, index["upperleg01.L"]] = 0.85 * depth * left
    weights[:, index["upperleg01.R"]] = 0.85 * depth * (1 - left)
    return MeshPart("skirt", vertices, np.array(faces), weights, "garment:skirt")
