"""Hair as meshes of their own: a cap cut from the smoothed scalp, plus volumes for some styles."""

from __future__ import annotations

import numpy as np

from synthreid.body.mesh import MeshPart, clip_to_field, ellipsoid, merge, vertex_normals

# style: (cut level of the cap in head radii, thickness in m, extra volume)
STYLES = {
    "buzz": (0.05, 0.004, None),
    "short": (-0.10, 0.014, None),
    "bob": (-0.55, 0.020, None),
    "long": (-0.55, 0.018, "curtain"),
    "bun": (-0.15, 0.014, "bun"),
    "ponytail": (-0.15, 0.014, "ponytail"),
}


def hair_mesh(style: str, smoothed: np.ndarray, faces: np.ndarray, weights: np.ndarray,
              head_bone: int) -> MeshPart | None:
    if style == "none":
        return None
    cut, thickness, extra = STYLES[style]
    head = weights[:, head_bone] > 0.5
    centre = smoothed[head].mean(axis=0)
    radius = np.percentile(np.linalg.norm(smoothed[head] - centre, axis=1), 90)
    u = (smoothed - centre) / radius
    # The face (towards -y) stays free: the cut rises in front, drops at the back and sides.
    field = u[:, 2] + 0.6 * u[:, 1] - 0.15 * np.abs(u[:, 0]) - cut
    field = np.where(weights[:, head_bone] > 0.3, field, -1.0)
    shell = smoothed + thickness * vertex_normals(smoothed, faces)
    vertices, hair_faces, (hair_weights,) = clip_to_field(shell, faces, field, [weights])
    if extra is None:
        return MeshPart("hair", vertices, hair_faces, hair_weights, "hair")
    if extra == "curtain":  # long hair falling over the upper back
        volume = ellipsoid(centre + [0, 0.55 * radius, -0.9 * radius],
                           (0.95 * radius, 0.45 * radius, 1.5 * radius))
    elif extra == "bun":
        volume = ellipsoid(centre + [0, 0.85 * radius, 0.55 * radius], [0.42 * radius] * 3)
    else:  # ponytail
        volume = ellipsoid(centre + [0, 1.05 * radius, -0.35 * radius],
                           (0.25 * radius, 0.25 * radius, 0.85 * radius))
    rigid = np.zeros((len(volume[0]), weights.shape[1]))
    rigid[:, head_bone] = 1.0
    merged_vertices, merged_faces = merge([(vertices, hair_faces), volume])
    return MeshPart("hair", merged_vertices, merged_faces,
                    np.concatenate([hair_weights, rigid]), "hair")
