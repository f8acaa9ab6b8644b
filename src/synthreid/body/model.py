"""The anny body: shaped from a BodySpec, posed from bone rotations, skinned with its own weights.

anny builds a cache on first use (about a minute, 1.4 GB of memory); it lives in ANNY_CACHE_DIR,
which defaults to ~/.cache/synthreid/anny so CI and workers pay for it once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from synthreid.datasets.coco import COCO17
from synthreid.scene.spec import BodySpec

CACHE_ROOT = Path(os.environ.get("SYNTHREID_CACHE", Path.home() / ".cache" / "synthreid"))


def configure_anny_cache() -> None:
    """Point anny's and warp's caches at a known folder unless the user already did."""
    os.environ.setdefault("ANNY_CACHE_DIR", str(CACHE_ROOT / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(CACHE_ROOT / "warp"))


def age_to_phenotype(years: float) -> float:
    """MakeHuman's age anchors: newborn -1/3, baby (1 y) 0, child (11 y) 1/3, young (25 y) 2/3,
    old (90 y) 1; linear in between."""
    anchors_years = (0.0, 1.0, 11.0, 25.0, 90.0)
    anchors_value = (-1 / 3, 0.0, 1 / 3, 2 / 3, 1.0)
    return float(np.interp(years, anchors_years, anchors_value))


@dataclass(frozen=True)
class ShapedBody:
    """A body in its rest pose (A-pose, z up, facing -y, pelvis at the origin)."""

    phenotype: dict[str, float]
    rest_vertices: np.ndarray  # (V, 3)
    rest_bone_poses: np.ndarray  # (J, 4, 4)
    height_m: float


class BodyModel:
    """One anny model per process; shaping and posing are cheap after it is built."""

    def __init__(self) -> None:
        configure_anny_cache()
        import anny
        import torch

        self._torch = torch
        self.anny = anny.Anny()
        self.bone_labels: list[str] = list(self.anny.bone_labels)
        self.bone_parents = np.asarray(self.anny.bone_parents)
        self.faces = self.anny.faces.numpy().astype(np.int64)
        self.uvs = self.anny.texture_coordinates.numpy().astype(np.float32)
        self.face_uv_indices = self.anny.face_texture_coordinate_indices.numpy()
        regressor = anny.KeypointsRegressor.coco(self.anny, labels=list(COCO17))
        self.keypoint_weights = regressor.regression_weights.numpy()  # (17, V)
        self.version = anny.__version__

    def bone(self, label: str) -> int:
        return self.bone_labels.index(label)

    @cached_property
    def skin_weights(self) -> np.ndarray:
        """Dense (V, J) linear-blend-skinning weights."""
        indices = self.anny.vertex_bone_indices.numpy()
        weights = self.anny.vertex_bone_weights.numpy()
        dense = np.zeros((len(indices), len(self.bone_labels)))
        np.add.at(dense, (np.arange(len(indices))[:, None], indices), weights)
        return dense

    def _forward(self, phenotype: dict[str, float], pose: np.ndarray | None = None) -> dict:
        with self._torch.no_grad():  # never touch the process-wide autograd switch
            return self._forward_no_grad(phenotype, pose)

    def _forward_no_grad(self, phenotype: dict[str, float], pose: np.ndarray | None) -> dict:
        torch = self._torch
        kwargs = {k: torch.tensor([v], dtype=self.anny.dtype) for k, v in phenotype.items()}
        pose_tensor = None if pose is None else torch.as_tensor(pose, dtype=self.anny.dtype)[None]
        out = self.anny(pose_parameters=pose_tensor, phenotype_kwargs=kwargs)
        return {k: v[0].numpy() for k, v in out.items()}

    def shape(self, body: BodySpec) -> ShapedBody:
        """Shape the body; the height phenotype is solved for to reach body.height_m."""
        phenotype = {
            "gender": 1.0 if body.female else 0.0, "age": age_to_phenotype(body.age_years),
            "muscle": body.muscle, "weight": body.weight, "proportions": body.proportions,
        }
        # Height is close to linear in the height phenotype: a few secant steps on the bracket
        # [0, 1] reach the target to well under a millimetre.
        def height_at(value: float) -> float:
            return float(np.ptp(self._forward({**phenotype, "height": value})["rest_vertices"][:, 2]))

        low, high = (0.0, height_at(0.0)), (1.0, height_at(1.0))
        value = 0.5
        for _ in range(4):
            value = low[0] + (body.height_m - low[1]) * (high[0] - low[0]) / (high[1] - low[1])
            value = min(max(value, 0.0), 1.0)
            reached = height_at(value)
            if abs(reached - body.height_m) < 5e-4 or value in (0.0, 1.0):
                break
            low, high = ((value, reached), high) if reached < body.height_m else (low, (value, reached))
        phenotype["height"] = value
        out = self._forward(phenotype)
        return ShapedBody(phenotype=phenotype, rest_vertices=out["rest_vertices"],
                          rest_bone_poses=out["rest_bone_poses"],
                          height_m=float(np.ptp(out["rest_vertices"][:, 2])))

    def bone_transforms(self, shaped: ShapedBody, pose: np.ndarray) -> np.ndarray:
        """(J, 4, 4) transforms taking rest-pose points to posed points, per bone.

        `pose` holds anny 'local-ref' deltas: rotations in world-aligned axes, (J, 4, 4).
        """
        torch = self._torch
        with torch.no_grad():
            transforms, _ = self.anny.get_bone_transforms(
                torch.as_tensor(pose, dtype=self.anny.dtype)[None],
                torch.as_tensor(shaped.rest_bone_poses, dtype=self.anny.dtype)[None])
        return transforms[0].numpy()


@dataclass(frozen=True)
class SparseWeights:
    """Skinning weights as the k largest per vertex: (N, k) bone indices and weights."""

    bones: np.ndarray
    weights: np.ndarray

    @staticmethod
    def from_dense(dense: np.ndarray) -> SparseWeights:
        k = max(int((dense > 0).sum(axis=1).max()), 1)
        bones = np.argsort(-dense, axis=1)[:, :k]
        return SparseWeights(bones, np.take_along_axis(dense, bones, axis=1))


def skin(points: np.ndarray, weights: np.ndarray | SparseWeights,
         transforms: np.ndarray) -> np.ndarray:
    """Linear blend skinning: sum_j w_ij T_j p_i, for points (N, 3), weights (N, J) or sparse."""
    if isinstance(weights, SparseWeights):
        blended = np.einsum("nk,nkab->nab", weights.weights, transforms[weights.bones, :3, :])
    else:
        blended = np.einsum("nj,jab->nab", weights, transforms[:, :3, :])  # (N, 3, 4)
    return np.einsum("nab,nb->na", blended[:, :, :3], points) + blended[:, :, 3]
