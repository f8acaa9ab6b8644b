"""A character's geometry: the shaped body, its clothes, hair and accessories, posed per image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthreid.body.accessories import Landmarks, accessory_mesh
from synthreid.body.bvh import load_motion, retarget
from synthreid.body.clothes import GarmentFields, garment_shell, skirt_mesh
from synthreid.body.gait import rotation, walk_pose
from synthreid.body.hair import hair_mesh
from synthreid.body.mesh import MeshPart, taubin_smooth
from synthreid.body.model import BodyModel, ShapedBody, SparseWeights, skin
from synthreid.scene.spec import CharacterSpec


@dataclass
class PosedCharacter:
    """World-space geometry of one image: z up, feet on the floor (z = 0)."""

    vertices: dict[str, np.ndarray]  # part name -> (N, 3)
    keypoints: np.ndarray  # (17, 3) COCO order
    heading: float

    def all_vertices(self) -> np.ndarray:
        return np.concatenate(list(self.vertices.values()))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        points = self.all_vertices()
        return points.min(axis=0), points.max(axis=0)


class CharacterGeometry:
    """Built once per character (shape, clothes, hair, accessories); posed once per image."""

    def __init__(self, model: BodyModel, spec: CharacterSpec) -> None:
        self.model, self.spec = model, spec
        self.shaped: ShapedBody = model.shape(spec.body)
        weights = model.skin_weights
        rest = self.shaped.rest_vertices
        heads = self.shaped.rest_bone_poses[:, :3, 3]
        labels, bones = model.bone_labels, len(model.bone_labels)
        smoothed = taubin_smooth(rest, model.faces)
        fields = GarmentFields(rest, weights, heads, labels)

        self.parts: list[MeshPart] = [MeshPart("body", rest, model.faces, weights, "skin")]
        for garment in spec.garments:
            if garment.kind == "shirt":
                field = fields.shirt(garment.length)
            elif garment.kind == "pants":
                field = fields.pants(garment.length)
            elif garment.kind == "shoes":
                field = fields.shoes()
            else:
                self.parts.append(skirt_mesh(garment, rest, heads, labels, bones))
                continue
            self.parts.append(garment_shell(garment.kind, field, smoothed, model.faces, weights))
        hair = hair_mesh(spec.hair.style, smoothed, model.faces, weights, model.bone("head"))
        if hair is not None:
            self.parts.append(hair)
        landmarks = Landmarks(rest, weights, heads, labels)
        for i, accessory in enumerate(spec.accessories):
            self.parts.append(accessory_mesh(i, accessory, landmarks, bones))

        self._sparse = [SparseWeights.from_dense(p.weights) for p in self.parts]
        self._reference_heads = None

    def _deltas(self, gait_phase: float) -> np.ndarray:
        gait = self.spec.gait
        if gait.motion is None:
            return walk_pose(self.model.bone_labels, gait_phase, gait.stride, gait.arm_swing)
        if self._reference_heads is None:  # where the bones stand at zero deltas
            identity = np.tile(np.eye(4), (len(self.model.bone_labels), 1, 1))
            transforms = self.model.bone_transforms(self.shaped, identity)
            self._reference_heads = (transforms @ self.shaped.rest_bone_poses)[:, :3, 3]
        motion = load_motion(gait.motion)
        frame = int(gait_phase * len(motion.frames))
        return retarget(motion, frame, self.model.bone_labels, self.model.bone_parents,
                        self._reference_heads)

    def pose(self, gait_phase: float, heading: float) -> PosedCharacter:
        transforms = self.model.bone_transforms(self.shaped, self._deltas(gait_phase))
        # The body faces -y at rest; turn it to walk along `heading` and stand it on the floor.
        turn = rotation("z", heading)[:3, :3]
        posed = {p.name: skin(p.vertices, w, transforms) @ turn.T
                 for p, w in zip(self.parts, self._sparse)}
        body = posed["body"]
        keypoints = self.model.keypoint_weights @ body
        floor = min(v[:, 2].min() for v in posed.values())
        shift = np.array([-body[:, 0].mean(), -body[:, 1].mean(), -floor])
        return PosedCharacter(
            vertices={name: v + shift for name, v in posed.items()},
            keypoints=keypoints + shift, heading=heading,
        )
