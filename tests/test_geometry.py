"""Geometry without Blender: hem clipping, projection and crop."""

import numpy as np
import pytest

from synthreid.body.mesh import clip_to_field
from synthreid.render.crop import PinholeCamera, compute_crop


def grid(n=12):
    ys, xs = np.mgrid[0:n, 0:n]
    vertices = np.stack([xs.ravel(), np.zeros(n * n), ys.ravel()], axis=1) / (n - 1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            faces += [(i, i + 1, i + n + 1), (i, i + n + 1, i + n)]
    return vertices, np.array(faces)


def test_clipping_cuts_along_a_smooth_iso_line():
    vertices, faces = grid()
    # A slanted hem: keep where z > 0.3 + 0.2 x.
    field = vertices[:, 2] - 0.3 - 0.2 * vertices[:, 0]
    weights = np.stack([vertices[:, 0], 1 - vertices[:, 0]], axis=1)
    out, out_faces, (out_weights,) = clip_to_field(vertices, faces, field, [weights])
    level = out[:, 2] - 0.3 - 0.2 * out[:, 0]
    assert level.min() > -1e-9  # nothing below the hem
    hem = np.abs(level) < 1e-9
    # The hem is a straight line of new vertices, not the grid's saw-tooth.
    assert hem.sum() >= 11
    np.testing.assert_allclose(out_weights[:, 0], out[:, 0])  # attributes interpolated too
    assert out_faces.max() < len(out) and out_faces.min() >= 0
    # No triangle is lost or flipped: the kept area equals the analytic area above the line.
    tri = out[out_faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all(normals[:, 1] <= 1e-12)  # same winding as the input (all -y)
    area = 0.5 * np.abs(normals[:, 1]).sum()
    assert area == pytest.approx(1 - 0.4, abs=1e-9)


def test_whole_mesh_kept_when_the_field_is_positive():
    vertices, faces = grid(5)
    out, out_faces, _ = clip_to_field(vertices, faces, np.ones(len(vertices)), [])
    assert len(out) == len(vertices) and len(out_faces) == len(faces)


def test_projection_centres_the_target_and_crop_contains_points():
    camera = PinholeCamera(position=np.array([0.0, -5.0, 1.5]), target=np.array([0.0, 0.0, 0.9]),
                           focal_mm=50, sensor_mm=36)
    np.testing.assert_allclose(camera.project(camera.target[None])[0], [0.5, 0.5], atol=1e-12)
    rng = np.random.default_rng(0)
    points = rng.normal([0, 0, 0.9], [0.25, 0.2, 0.5], (500, 3))
    crop = compute_crop(camera, points, "tight", height_px=256, margin_px=4)
    assert crop.height == 256
    pixels = crop.to_pixels(camera.project(points))
    assert pixels.min() >= 4 - 1 and pixels[:, 0].max() <= crop.width - 4 + 1
    assert pixels[:, 1].max() <= crop.height - 4 + 1
    loose = compute_crop(camera, points, "bbox3d", height_px=256, margin_px=4)
    inside = loose.to_pixels(camera.project(points))
    assert inside.min() >= 0 and inside[:, 0].max() <= loose.width
    with pytest.raises(ValueError):
        compute_crop(camera, points, "snug", 256, 4)


def test_points_to_the_camera_right_project_right_and_up_project_up():
    camera = PinholeCamera(position=np.array([0.0, -5.0, 1.0]), target=np.array([0.0, 0.0, 1.0]),
                           focal_mm=50, sensor_mm=36)
    right, up = camera.project(np.array([[0.5, 0, 1.0], [0, 0, 1.5]]))
    assert right[0] > 0.5 and up[1] > 0.5
