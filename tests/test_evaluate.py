"""Evaluation protocols: hand-computed cases and properties."""

import numpy as np
import pytest
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.errors import EvaluationError
from synthreid.evaluate import protocols
from synthreid.evaluate.features import save_features
from synthreid.evaluate.report import write_report

# Gallery on a line: features 0.5, 1, 2, 3, 4 with ids 1, 1, 2, 3, 1 and cameras 1, 2, 2, 2, 2.
GALLERY = (np.array([[0.5], [1.0], [2.0], [3.0], [4.0]]), np.array([1, 1, 2, 3, 1]),
           np.array([1, 2, 2, 2, 2]))
# Query 0: id 1, cam 1 at 0: ranks after junk removal: match at 1 and 4 -> AP (1 + 2/4)/2.
# Query 1: id 2 at 2.4: match first -> AP 1.
# Query 2: id 3, cam 2: its only gallery image is in its own camera -> no valid match, skipped.
# Query 3: id 1, cam 1 at 2.1: kept order id2, id3, id1, id1 -> first match 3, AP (1/3 + 2/4)/2.
QUERY = (np.array([[0.0], [2.4], [0.9], [2.1]]), np.array([1, 2, 3, 1]), np.array([1, 1, 2, 1]))


def test_market_protocol_on_a_hand_computed_case():
    result = protocols.market(*QUERY, *GALLERY, max_rank=4)
    assert result.queries == 3
    np.testing.assert_allclose(result.cmc, [2 / 3, 2 / 3, 1, 1])
    assert result.mAP == pytest.approx((0.75 + 1 + (1 / 3 + 2 / 4) / 2) / 3)
    assert result.mINP == pytest.approx((2 / 4 + 1 + 2 / 4) / 3)


def test_junk_ids_are_ignored():
    features, ids, cams = GALLERY
    # A junk image (-1) right next to query 3 changes nothing.
    with_junk = (np.vstack([features, [[2.1]]]), np.append(ids, -1), np.append(cams, 2))
    assert protocols.market(*QUERY, *with_junk, max_rank=4).mAP == pytest.approx(
        protocols.market(*QUERY, *GALLERY, max_rank=4).mAP)


def test_blocks_and_gallery_order_change_nothing():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(60, 16)), rng.normal(size=(300, 16))
    q_ids, g_ids = rng.integers(0, 30, 60), rng.integers(0, 30, 300)
    q_cams, g_cams = rng.integers(1, 4, 60), rng.integers(1, 4, 300)
    base = protocols.market(qf, q_ids, q_cams, gf, g_ids, g_cams, block=512)
    small = protocols.market(qf, q_ids, q_cams, gf, g_ids, g_cams, block=7)
    perm = rng.permutation(300)
    permuted = protocols.market(qf, q_ids, q_cams, gf[perm], g_ids[perm], g_cams[perm])
    for other in (small, permuted):
        np.testing.assert_allclose(other.cmc, base.cmc)
        assert other.mAP == pytest.approx(base.mAP) and other.mINP == pytest.approx(base.mINP)


def identity_features(ids):
    eye = np.eye(ids.max() + 1)
    return eye[ids]


def test_identical_features_give_perfect_scores():
    ids = np.repeat(np.arange(150), 3)
    cams = np.tile([1, 2, 2], 150)
    features = identity_features(ids)
    market = protocols.market(features, ids, cams, features, ids, cams)
    assert market.rank(1) == 1.0 and market.mAP == pytest.approx(1.0)
    thesis = protocols.thesis(features, ids, cams, repeats=3)
    assert thesis.rank(1) == 1.0 and thesis.area == pytest.approx(100.0)
    classic = protocols.cuhk03_classic(features, ids, cams, features, ids, cams, repeats=2)
    assert classic.rank(1) == 1.0


def test_random_features_score_chance_in_the_thesis_protocol():
    # A large pool, so the 200 draws of 100 ids rarely reuse a vector: reused vectors correlate
    # the repeats (with 400 ids the area spreads over 48-53 from one feature seed to another).
    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(4000), 2)
    cams = np.tile([1, 2], 4000)
    result = protocols.thesis(rng.normal(size=(8000, 32)), ids, cams, repeats=200, seed=3)
    assert result.rank(1) == pytest.approx(0.01, abs=0.004)
    assert result.rank(20) == pytest.approx(0.20, abs=0.02)
    assert result.cmc[-1] == 1.0 and len(result.cmc) == 100
    assert result.area == pytest.approx(50.5, abs=1.5)  # chance area: sum of k/100
    assert result.cmc_std is not None and result.cmc_std[0] > 0


def test_thesis_protocol_draws_query_and_gallery_from_different_cameras():
    # Id k's camera-1 image is identical to every other id's camera-1 image; matching is only
    # possible across cameras, where each id has a unique vector.
    ids = np.repeat(np.arange(120), 3)
    cams = np.tile([1, 2, 2], 120)
    features = np.where((cams == 1)[:, None], 0.0, identity_features(ids))
    features[cams == 1] = identity_features(ids)[cams == 1]
    result = protocols.thesis(features, ids, cams, repeats=4)
    assert result.rank(1) == 1.0


def test_errors_are_one_line():
    with pytest.raises(EvaluationError, match="needs 100 identities"):
        protocols.thesis(np.zeros((10, 2)), np.arange(10), np.ones(10))
    with pytest.raises(EvaluationError, match="4-d"):
        protocols.market(np.zeros((2, 3)), [1, 2], [1, 1], np.zeros((2, 4)), [1, 2], [2, 2])


def test_eval_command_prints_the_table_and_writes_a_report(tmp_path):
    ids = np.repeat(np.arange(120), 2)
    cams = np.tile([1, 2], 120)
    features = identity_features(ids)
    split = save_features(tmp_path / "f.npz", query_features=features[::2], query_ids=ids[::2],
                          query_cams=cams[::2], gallery_features=features[1::2],
                          gallery_ids=ids[1::2], gallery_cams=cams[1::2])
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--features", str(split), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "| f | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in result.output
    assert (tmp_path / "r" / "cmc.png").stat().st_size > 1000
    thesis = runner.invoke(app, ["eval", "-f", str(split), "--protocol", "thesis"])
    assert thesis.exit_code == 0 and "100.0 ± 0.0" in thesis.output
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    bad = runner.invoke(app, ["eval", "-f", str(tmp_path / "bad.npz")])
    assert bad.exit_code == 2 and "not a .npz" in bad.output


def test_report_files_for_several_models(tmp_path):
    a = protocols.market(*QUERY, *GALLERY, max_rank=4)
    paths = write_report({"a": a, "b": a}, tmp_path)
    assert paths["md"].read_text().count("\n") == 4
    assert "a,1,0.666667" in paths["csv"].read_text()
