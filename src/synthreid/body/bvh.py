"""BVH motion capture (e.g. the CMU database's BVH conversions) retargeted onto anny's rig.

BVH: a joint hierarchy with rest offsets (a T-pose, y up, facing +z, the body's left at +x)
and per-frame Euler rotations. For each mapped joint we take its world rotation in a frame and
bring anny's bone there: anny's pose parameters ('local-ref') satisfy E_c = E_parent D_c, where
E_c rotates bone c from its reference orientation to its posed one, so D_c = E_parent^T E_c.
A rest correction S_c first turns anny's reference bone direction onto the BVH rest direction
(anny stands in an A-pose, BVH in a T-pose). Root translation is dropped: the character is
placed on the floor and turned to its heading by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from synthreid.errors import ConfigError

# CMU joint -> anny bone (default rig). Joints not listed still move their mapped children.
CMU_TO_ANNY = {
    "Hips": "root", "LowerBack": "spine05", "Spine": "spine03", "Spine1": "spine01",
    "Neck": "neck01", "Head": "head",
    "LeftShoulder": "clavicle.L", "LeftArm": "upperarm01.L", "LeftForeArm": "lowerarm01.L",
    "LeftHand": "wrist.L", "RightShoulder": "clavicle.R", "RightArm": "upperarm01.R",
    "RightForeArm": "lowerarm01.R", "RightHand": "wrist.R",
    "LeftUpLeg": "upperleg01.L", "LeftLeg": "lowerleg01.L", "LeftFoot": "foot.L",
    "RightUpLeg": "upperleg01.R", "RightLeg": "lowerleg01.R", "RightFoot": "foot.R",
}
# BVH (y up, facing +z) to anny (z up, facing -y); the body's left stays +x.
BVH_TO_ANNY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass
class Motion:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) rest offsets from the parent
    channels: list[list[str]]
    frames: np.ndarray  # (F, channel count)

    def global_rotations(self, frame: int) -> np.ndarray:
        """(J, 3, 3) world rotations of every joint in `frame`, in BVH axes."""
        values = self.frames[frame]
        rotations = np.zeros((len(self.names), 3, 3))
        cursor = 0
        for j, channels in enumerate(self.channels):
            local = np.eye(3)
            for channel in channels:
                value = values[cursor]
                cursor += 1
                if channel.endswith("rotation"):
                    local = local @ _axis_rotation(channel[0].lower(), math.radians(value))
            parent = self.parents[j]
            rotations[j] = local if parent < 0 else rotations[parent] @ local
        return rotations


def _axis_rotation(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def parse_bvh(path: str | Path) -> Motion:
    path = Path(path)
    try:
        tokens = path.read_text().split()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read BVH file ({error.strerror})") from None
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    i = 0
    try:
        if tokens[0] != "HIERARCHY":
            raise ValueError("does not start with HIERARCHY")
        i = 1
        while tokens[i] != "MOTION":
            token = tokens[i]
            if token in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                i += 2
            elif token == "End":
                names.append(f"{names[stack[-1]]}_end")
                parents.append(stack[-1])
                channels.append([])  # an end site has an offset but no channels
                i += 2
            elif token == "{":
                stack.append(len(names) - 1)
                i += 1
            elif token == "}":
                stack.pop()
                i += 1
            elif token == "OFFSET":
                offsets.append([float(v) for v in tokens[i + 1:i + 4]])
                i += 4
            elif token == "CHANNELS":
                count = int(tokens[i + 1])
                channels.append(tokens[i + 2:i + 2 + count])
                i += 2 + count
            else:
                raise ValueError(f"unexpected {token!r}")
        count = int(tokens[i + 2])
        i += 6  # MOTION Frames: N Frame Time: T
        width = sum(len(c) for c in channels)
        values = np.array(tokens[i:i + count * width], dtype=float)
        if len(values) != count * width or count == 0:
            raise ValueError(f"expected {count} frames of {width} values")
    except (IndexError, ValueError) as error:
        raise ConfigError(f"{path}: not a valid BVH file ({error})") from None
    return Motion(names, parents, np.array(offsets), channels, values.reshape(count, width))


@lru_cache(maxsize=64)
def load_motion(path: str) -> Motion:
    return parse_bvh(path)


def _shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation taking unit direction a onto unit direction b by the smallest angle."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis, cos = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(axis) < 1e-9:
        if cos > 0:
            return np.eye(3)
        ortho = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis, cos = ortho / np.linalg.norm(ortho), -1.0
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k * (1 / (1 + cos))


def retarget(motion: Motion, frame: int, bone_labels: list[str], bone_parents: np.ndarray,
             reference_heads: np.ndarray) -> np.ndarray:
    """(J, 4, 4) anny 'local-ref' deltas reproducing `frame` of `motion`."""
    index = {label: i for i, label in enumerate(bone_labels)}
    joint = {name: j for j, name in enumerate(motion.names)}
    rotations = motion.global_rotations(frame % len(motion.frames))
    world = np.tile(np.eye(3), (len(bone_labels), 1, 1))  # E_c per anny bone
    mapped = {}
    for name, bone in CMU_TO_ANNY.items():
        if name not in joint or bone not in index:
            continue
        j = joint[name]
        rotation = BVH_TO_ANNY @ rotations[j] @ BVH_TO_ANNY.T
        child = next((c for c, p in enumerate(motion.parents)
                      if p == j and motion.names[c] in CMU_TO_ANNY), None)
        correction = np.eye(3)
        if child is not None and name != "Hips":
            bvh_rest = BVH_TO_ANNY @ motion.offsets[child]
            anny_rest = reference_heads[index[CMU_TO_ANNY[motion.names[child]]]] - \
                reference_heads[index[bone]]
            correction = _shortest_arc(anny_rest, bvh_rest)
        mapped[index[bone]] = rotation @ correction
    if index["root"] in mapped:  # keep the walking direction to the caller's heading
        root = mapped[index["root"]]
        forward = root @ np.array([0.0, -1.0, 0.0])
        yaw = math.atan2(-forward[0], -forward[1])
        unturn = _axis_rotation("z", yaw)
        mapped = {b: unturn @ r for b, r in mapped.items()}
    for c in range(len(bone_labels)):  # parents come before children in anny's order
        parent = bone_parents[c]
        world[c] = mapped.get(c, world[parent] if parent >= 0 else np.eye(3))
    deltas = np.tile(np.eye(4), (len(bone_labels), 1, 1))
    for c in range(len(bone_labels)):
        parent = bone_parents[c]
        deltas[c, :3, :3] = world[c] if parent < 0 else world[parent].T @ world[c]
    return deltas
