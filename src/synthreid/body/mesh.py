"""Mesh helpers in numpy: normals, smoothing, iso-line clipping and simple primitives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class MeshPart:
    """A piece of the character in its rest pose, skinned by `weights` (N, J) to anny's bones.

    `material` names what render/ paints it with: "skin", "garment:<kind>", "hair",
    "accessory:<i>".
    """

    name: str
    vertices: np.ndarray  # (N, 3) rest-pose positions
    faces: np.ndarray  # (F, 3)
    weights: np.ndarray  # (N, J)
    material: str


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _umbrella(vertex_count: int, faces: np.ndarray) -> sp.csr_matrix:
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2],
                           faces[:, 0]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1],
                           faces[:, 2]])
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                              shape=(vertex_count, vertex_count))
    adjacency.data[:] = 1.0
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(degree, 1)) @ adjacency


def taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int = 10,
                  lam: float = 0.5, mu: float = -0.53) -> np.ndarray:
    """Smooth away small detail (muscles, navel) without shrinking the body (Taubin 1995)."""
    average = _umbrella(len(vertices), faces)
    smoothed = vertices.copy()
    for _ in range(iterations):
        smoothed = smoothed + lam * (average @ smoothed - smoothed)
        smoothed = smoothed + mu * (average @ smoothed - smoothed)
    return smoothed


def clip_to_field(vertices: np.ndarray, faces: np.ndarray, field: np.ndarray,
                  attributes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Keep the part of a triangle mesh where the per-vertex `field` > 0.

    Triangles crossing the zero level are cut along it, with new vertices interpolated linearly
    on the crossed edges, so a hem follows a smooth line instead of the triangles' saw-tooth.
    `attributes` (per-vertex arrays) are interpolated the same way.
    """
    inside = field > 0
    count_in = inside[faces].sum(axis=1)
    keep_faces = faces[count_in == 3]
    crossing = faces[(count_in == 1) | (count_in == 2)]

    new_points: dict[tuple[int, int], int] = {}
    extra_t: list[tuple[int, int, float]] = []

    def edge_point(a: int, b: int) -> int:
        key = (a, b) if a < b else (b, a)
        if key not in new_points:
            t = field[key[0]] / (field[key[0]] - field[key[1]])
            new_points[key] = len(vertices) + len(extra_t)
            extra_t.append((key[0], key[1], float(t)))
        return new_points[key]

    new_faces = []
    for tri in crossing:
        flags = inside[tri]
        # Rotate the triangle so the odd-one-out vertex comes first, keeping the winding.
        odd = int(np.flatnonzero(flags if flags.sum() == 1 else ~flags)[0])
        a, b, c = np.roll(tri, -odd)
        ab, ac = edge_point(a, b), edge_point(a, c)
        if flags.sum() == 1:  # only a inside: one smaller triangle
            new_faces.append((a, ab, ac))
        else:  # a outside: a quad b, c, ac, ab
            new_faces.append((ab, b, c))
            new_faces.append((ab, c, ac))

    def extend(values: np.ndarray) -> np.ndarray:
        if not extra_t:
            return values
        i, j, t = (np.array(col) for col in zip(*extra_t))
        t = t.reshape((-1,) + (1,) * (values.ndim - 1))
        return np.concatenate([values, values[i] * (1 - t) + values[j] * t])

    all_faces = np.concatenate([keep_faces, np.array(new_faces, dtype=faces.dtype).reshape(-1, 3)])
    all_vertices = extend(vertices)
    all_attributes = [extend(a) for a in attributes]
    used = np.unique(all_faces)
    remap = np.full(len(all_vertices), -1)
    remap[used] = np.arange(len(used))
    return all_vertices[used], remap[all_faces], [a[used] for a in all_attributes]


def box(centre, size) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    vertices = np.asarray(centre) + corners * np.asarray(size)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(q[0], q[1], q[2]) for q in quads] + [(q[0], q[2], q[3]) for q in quads]
    return vertices, np.array(faces)


def ellipsoid(centre, radii, rings: int = 10, segments: int = 16,
              z_min: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere scaled by `radii`; `z_min` > -1 cuts it (0 gives a dome)."""
    polar = np.linspace(0, math.acos(z_min), rings + 1)
    azimuth = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    unit = np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)], axis=-1)
    vertices = np.asarray(centre) + unit.reshape(-1, 3) * np.asarray(radii)
    faces = []
    for r in range(rings):
        for s in range(segments):
            i0, i1 = r * segments + s, r * segments + (s + 1) % segments
            j0, j1 = i0 + segments, i1 + segments
            faces += [(i0, j0, j1), (i0, j1, i1)]
    return vertices, np.array(faces)


def cylinder(centre, radius_x: float, radius_y: float, height: float,
             segments: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A closed elliptic cylinder standing on its base circle at `centre`."""
    a = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring = np.stack([radius_x * np.cos(a), radius_y * np.sin(a), np.zeros_like(a)], axis=1)
    bottom, top = ring + centre, ring + centre + [0, 0, height]
    vertices = np.concatenate([bottom, top, [np.asarray(centre)],
                               [np.asarray(centre) + [0, 0, height]]])
    faces = []
    for s in range(segments):
        n = (s + 1) % segments
        faces += [(s, n, segments + n), (s, segments + n, segments + s)]
        faces += [(2 * segments, n, s), (2 * segments + 1, segments + s, segments + n)]
    return vertices, np.array(faces)


def merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)
