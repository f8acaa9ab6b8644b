"""A parametric walk cycle on anny's joint rotations.

anny's shipped walk cycle is IK-driven (MPFB2) and cannot drive its rig directly, so the gait is
written as sinusoids of the phase, in anny's 'local-ref' parameterisation (each bone's rotation in
world-aligned axes: x to the body's left, y backwards, z up). Amplitudes follow textbook sagittal
joint angles of normal walking: hip +-25 deg, knee up to 60 deg in swing, shoulder +-15-30 deg.
"""

from __future__ import annotations

import math

import numpy as np


def rotation(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        m = [[1, 0, 0], [0, c, -s], [0, s, c]]
    elif axis == "y":
        m = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    else:
        m = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    out = np.eye(4)
    out[:3, :3] = m
    return out


def walk_pose(bone_labels: list[str], phase: float, stride: float,
              arm_swing: float) -> np.ndarray:
    """(J, 4, 4) local-ref deltas for a walking pose at `phase` in [0, 1) of the gait cycle."""
    pose = np.tile(np.eye(4), (len(bone_labels), 1, 1))
    index = {label: i for i, label in enumerate(bone_labels)}
    w = 2 * math.pi * phase

    def set_bone(label: str, matrix: np.ndarray) -> None:
        pose[index[label]] = matrix

    for side, offset, sign in (("L", 0.0, 1.0), ("R", math.pi, -1.0)):
        leg = w + offset
        # Hip flexion swings the thigh forward (towards -y): a negative rotation about +x.
        hip = -math.radians(22) * stride * math.sin(leg) - math.radians(3)
        # The knee bends most just after toe-off, when the thigh swings forward.
        knee = math.radians(8 + 45 * stride * max(0.0, math.sin(leg + 0.6)) ** 2)
        ankle = -math.radians(8) * math.sin(leg - 0.4)
        set_bone(f"upperleg01.{side}", rotation("x", hip))
        set_bone(f"lowerleg01.{side}", rotation("x", knee))
        set_bone(f"foot.{side}", rotation("x", ankle))
        # Arms hang from the A-pose (about 45 deg out) to the sides, then swing against the legs.
        lower_arm = rotation("y", sign * math.radians(33))
        swing = rotation("x", math.radians(18) * arm_swing * math.sin(leg))
        set_bone(f"upperarm01.{side}", swing @ lower_arm)
        # anny's rest forearm is bent about 43 deg forward; keep a relaxed 10-20 deg of it.
        set_bone(f"lowerarm01.{side}", rotation("x", math.radians(43 - 10 - 10 * arm_swing)))
    set_bone("spine03", rotation("z", math.radians(4) * stride * math.sin(w)))
    return pose
