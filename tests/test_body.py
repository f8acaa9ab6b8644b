"""The anny body as we use it: skinning, height, clothes, hair and accessories."""

import numpy as np
import pytest

from synthreid.body.character import CharacterGeometry
from synthreid.body.gait import walk_pose
from synthreid.body.model import skin
from synthreid.scene.config import load_config
from synthreid.scene.sampling import sample_character
from synthreid.scene.spec import BodySpec

BODY = BodySpec(female=True, age_years=30, height_m=1.68, muscle=0.5, weight=0.5,
                proportions=0.5, skin_tone=(0.8, 0.6, 0.5))


def test_our_skinning_matches_anny(body_model):
    shaped = body_model.shape(BODY)
    pose = walk_pose(body_model.bone_labels, 0.3, 1.0, 1.0)
    ours = skin(shaped.rest_vertices, body_model.skin_weights,
                body_model.bone_transforms(shaped, pose))
    theirs = body_model._forward(shaped.phenotype, pose)["vertices"]
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


@pytest.mark.parametrize("height", [1.50, 1.70, 1.95])
def test_height_is_reached_within_a_centimetre(body_model, height):
    shaped = body_model.shape(BODY.model_copy(update={"height_m": height}))
    assert shaped.height_m == pytest.approx(height, abs=0.01)


def test_gait_moves_the_legs_in_antiphase(body_model):
    shaped = body_model.shape(BODY)
    ankle_l, ankle_r = body_model.bone("foot.L"), body_model.bone("foot.R")
    forward = []
    for phase in (0.25, 0.75):
        transforms = body_model.bone_transforms(
            shaped, walk_pose(body_model.bone_labels, phase, 1.0, 1.0))
        heads = (transforms @ shaped.rest_bone_poses)[:, :3, 3]
        forward.append(heads[ankle_l, 1] - heads[ankle_r, 1])  # -y is forward
    assert forward[0] * forward[1] < 0 and abs(forward[0]) > 0.2


def test_a_character_wears_shells_that_stand_off_the_skin(body_model):
    config = load_config("IV")
    spec = next(c for c in (sample_character(config, i, 3) for i in range(50))
                if c.garment("pants") and c.hair.style != "none" and c.accessories)
    geometry = CharacterGeometry(body_model, spec)
    names = {p.name for p in geometry.parts}
    assert {"body", "shirt", "pants", "shoes", "hair"} <= names
    assert {a.kind for a in spec.accessories} <= names
    body = geometry.parts[0].vertices
    from scipy.spatial import cKDTree

    tree = cKDTree(body)
    for part in geometry.parts:
        if part.name in ("shirt", "pants"):
            distance, _ = tree.query(part.vertices)
            assert np.median(distance) > 0.005  # not skin-tight
            assert np.allclose(part.weights.sum(axis=1), 1, atol=1e-6)
    posed = geometry.pose(0.4, 1.0)
    low, high = posed.bounds()
    assert low[2] == pytest.approx(0.0, abs=1e-9)  # standing on the floor
    assert 1.4 < high[2] < 2.3
    assert posed.keypoints.shape == (17, 3)


def test_sleeves_and_legs_follow_their_length(body_model):
    config = load_config("I")
    spec = sample_character(config, 0, 0)
    short = spec.model_copy(update={"garments": (
        spec.garments[0].model_copy(update={"length": 0.2}),
        spec.garments[1].model_copy(update={"length": 0.4}))})
    long = spec.model_copy(update={"garments": (
        spec.garments[0].model_copy(update={"length": 0.95}),
        spec.garments[1].model_copy(update={"length": 1.0}))})
    parts = [{p.name: p for p in CharacterGeometry(body_model, s).parts} for s in (short, long)]
    assert len(parts[0]["shirt"].vertices) < len(parts[1]["shirt"].vertices)
    assert parts[0]["pants"].vertices[:, 2].min() > parts[1]["pants"].vertices[:, 2].min() + 0.2


def test_sparse_skinning_equals_dense(body_model):
    from synthreid.body.model import SparseWeights

    shaped = body_model.shape(BODY)
    transforms = body_model.bone_transforms(
        shaped, walk_pose(body_model.bone_labels, 0.7, 0.9, 0.8))
    dense = skin(shaped.rest_vertices, body_model.skin_weights, transforms)
    sparse = skin(shaped.rest_vertices, SparseWeights.from_dense(body_model.skin_weights),
                  transforms)
    np.testing.assert_allclose(sparse, dense, atol=1e-12)


def test_the_body_model_leaves_autograd_alone(body_model):
    import torch

    body_model.shape(BODY)
    assert torch.is_grad_enabled()  # training in the same process must still get gradients
