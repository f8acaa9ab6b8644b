"""Evaluation protocols: hand-computed cases and properties."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.errors import EvaluationError
from synthreid.evaluate import protocols
from synthreid.evaluate.features import evaluate, save_features
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
    # Each id: one camera-1 image (random noise) and four identical camera-2 images. A same-camera
    # pair would always match at rank 1; a cross-camera pair only by chance (1 in 100).
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(120), 5)
    cams = np.tile([1, 2, 2, 2, 2], 120)
    features = identity_features(ids).astype(float)
    features[cams == 1] = rng.normal(size=((cams == 1).sum(), features.shape[1]))
    result = protocols.thesis(features, ids, cams, repeats=4)
    assert result.rank(1) < 0.1  # drawing any two images would pick two camera-2 ones 60% of the time


def test_ties_count_against_the_match():
    # A broken model (every feature the same) must score as badly as possible, not perfectly.
    ids = np.repeat(np.arange(120), 2)
    cams = np.tile([1, 2], 120)
    constant = np.ones((240, 8))
    thesis = protocols.thesis(constant, ids, cams, repeats=2)
    assert thesis.rank(1) == 0.0 and thesis.rank(99) == 0.0 and thesis.area == 1.0
    market = protocols.market(constant, ids, cams, constant, ids, cams)
    assert market.rank(1) == 0.0 and market.mAP == pytest.approx(1 / 239)  # match last of 239
    classic = protocols.cuhk03_classic(constant[::2], ids[::2], cams[::2], constant[1::2],
                                       ids[1::2], cams[1::2], repeats=2)
    assert classic.rank(1) == 0.0
    openreid = protocols.cuhk03_openreid(constant, ids, cams, repeats=2)
    assert openreid.rank(1) == 0.0
    # A tie with both images of another id: the match is third, whatever the gallery order.
    features = identity_features(ids).astype(float)
    features[ids == 1] = features[ids == 0][0]
    for order in (np.arange(240), np.arange(240)[::-1]):
        result = protocols.market(features[order], ids[order], cams[order], features[order],
                                  ids[order], cams[order], max_rank=3)
        assert result.rank(2) == pytest.approx(118 / 120) and result.rank(3) == 1.0


def test_non_finite_features_are_refused():
    ids = np.repeat(np.arange(120), 2)
    cams = np.tile([1, 2], 120)
    features = identity_features(ids).astype(float)
    features[5, 3] = np.nan
    with pytest.raises(EvaluationError, match="1 of 240 feature vectors hold NaN or infinite"):
        protocols.thesis(features, ids, cams)
    features[5, 3] = np.inf
    with pytest.raises(EvaluationError, match="NaN or infinite"):
        protocols.market(features, ids, cams, features, ids, cams)
    with pytest.raises(EvaluationError, match="NaN or infinite"):
        protocols.cuhk03_openreid(features, ids, cams)


def test_the_thesis_protocol_never_draws_distractors():
    # 100 people whose two images match exactly, and Market's distractor id 0: many unrelated
    # images. Drawing id 0 as a person would put a non-match at rank 1.
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.repeat(np.arange(1, 101), 2), np.zeros(50, int)])
    cams = np.concatenate([np.tile([1, 2], 100), rng.integers(1, 3, 50)])
    features = np.vstack([identity_features(ids[:200]), rng.normal(size=(50, 101))])
    clean = protocols.thesis(features, ids, cams, repeats=5, ignore_ids=(0,))
    assert clean.rank(1) == 1.0
    split = dict(features=features, ids=ids, cams=cams, ignore_ids=np.array([0]))
    assert evaluate(split, "thesis", repeats=5).rank(1) == 1.0
    fewer = protocols.thesis(features[:198], ids[:198], cams[:198], ignore_ids=(0,))
    assert fewer.extra["identities"] == 99 and len(fewer.cmc) == 99  # never id 0 to fill up


def camera_offset_features(noise: float = 0.5, seed: int = 0):
    """100 ids x 2 cameras: identity + a large offset shared by each camera's images + noise.
    A feature like a camera's colour cast: its own camera's strangers sit closer than the match."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(100, 32))
    offset = 3 * rng.normal(size=(2, 32))
    ids, cams = np.repeat(np.arange(100), 2), np.tile([1, 2], 100)
    return identity[ids] + offset[cams - 1] + noise * rng.normal(size=(200, 32)), ids, cams


def test_the_thesis_protocol_keeps_real_cameras_apart():
    features, ids, cams = camera_offset_features()
    first = cams == 1
    market = protocols.market(features[first], ids[first], cams[first], features[~first],
                              ids[~first], cams[~first]).rank(1)
    assert market > 0.1  # the people are findable across cameras
    apart = protocols.thesis(features, ids, cams)
    assert apart.rank(1) == pytest.approx(market, abs=0.04)
    assert apart.rank(1) == pytest.approx(
        protocols.cuhk03_openreid(features, ids, cams).rank(1), abs=0.04)
    # The draw that mixes cameras ranks the query's own-camera strangers first.
    mixed = evaluate(dict(features=features, ids=ids, cams=cams), "thesis-mixed")
    assert mixed.rank(1) < 0.02
    assert evaluate(dict(features=features, ids=ids, cams=cams),
                           "thesis").rank(1) == apart.rank(1)


def test_the_thesis_protocol_alternates_the_camera_pair():
    # Two cameras: queries from camera 1 and gallery from 2 on even repeats, the reverse on odd.
    ids, cams = np.repeat(np.arange(150), 3), np.tile([1, 1, 2], 150)
    count, draws = protocols._apart_draws(ids, cams, protocols.people(ids), 100, 4, seed=0)
    assert count == 100
    for repeat, (chosen, query, gallery) in enumerate(draws):
        query_cam, gallery_cam = (1, 2) if repeat % 2 == 0 else (2, 1)
        assert set(cams[query]) == {query_cam} and set(cams[gallery]) == {gallery_cam}
        assert list(ids[query]) == list(chosen) == list(ids[gallery])


def test_pseudo_cameras_keep_the_mixed_draw():
    features, ids, cams = camera_offset_features()
    arrays = dict(features=features, ids=ids, cams=cams, pseudo_cameras=np.array(True))
    assert evaluate(arrays, "thesis").rank(1) == \
        evaluate(arrays, "thesis-mixed").rank(1)


def test_the_thesis_protocol_uses_the_shared_ids_it_has():
    # PRID2011-like: 50 ids seen by both cameras, 150 more by camera 2 only.
    ids = np.concatenate([np.repeat(np.arange(50), 2), np.arange(50, 200)])
    cams = np.concatenate([np.tile([1, 2], 50), np.full(150, 2)])
    features = identity_features(ids)
    result = evaluate(dict(features=features, ids=ids, cams=cams), "thesis")
    assert result.extra["identities"] == 50 and len(result.cmc) == 50
    assert result.rank(1) == 1.0
    with pytest.raises(EvaluationError, match="at least 2 identities seen by two cameras"):
        protocols.thesis(features[100:], ids[100:], cams[100:])


def test_a_synthetic_export_reads_as_pseudo_cameras(tmp_path):
    from synthreid.datasets import read_dataset
    from synthreid.evaluate.features import dataset_feature_set

    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (tmp_path / folder).mkdir()
        for pid in (1, 2):
            Image.new("RGB", (8, 16)).save(tmp_path / folder / f"{pid:04d}_c1_000001_000.png")
    assert read_dataset("synthetic", tmp_path).pseudo_cameras
    export = read_dataset("synthetic", tmp_path)
    features = dataset_feature_set(export, np.zeros((2, 4)), np.zeros((2, 4)))
    assert features.pseudo_cameras and features.arrays["pseudo_cameras"]
    assert not read_dataset("market1501", tmp_path).pseudo_cameras


def openreid_cmc(dist, ids, cams, repeats, rng):
    """Open-ReID's `cmc(separate_camera_set=True, single_gallery_shot=True,
    first_match_break=False)`, transcribed loop by loop (query = gallery = all test images)."""
    order = np.argsort(dist, axis=1, kind="stable")
    hits, valid_queries = np.zeros(len(ids)), 0
    for i in range(len(ids)):
        valid = cams[order[i]] != cams[i]
        matches = ids[order[i]] == ids[i]
        if not matches[valid].any():
            continue
        groups = {}
        for j in np.flatnonzero(valid):
            groups.setdefault(ids[order[i][j]], []).append(j)
        for _ in range(repeats):
            sampled = np.zeros(len(ids), bool)
            sampled[[rng.choice(members) for members in groups.values()]] = True
            k = np.flatnonzero(matches[sampled])[0]
            hits[k] += 1 / repeats
        valid_queries += 1
    return hits.cumsum() / valid_queries


def test_openreid_cuhk03_protocol_matches_its_reference_loop():
    rng = np.random.default_rng(4)
    ids = np.repeat(np.arange(30), 6)
    cams = np.tile([1, 1, 1, 2, 2, 2], 30)
    features = rng.normal(size=(30, 8))[ids] + rng.normal(scale=1.2, size=(180, 8))
    dist = ((features[:, None] - features[None]) ** 2).sum(-1)
    reference = openreid_cmc(dist, ids, cams, 200, np.random.default_rng(0))
    ours = protocols.cuhk03_openreid(features, ids, cams, repeats=200, seed=1)
    assert ours.queries == 180  # every test image is a query, from both cameras
    np.testing.assert_allclose(ours.cmc, reference[:30], atol=0.02)
    assert 0.2 < ours.rank(1) < 0.9  # neither trivial nor chance (1/30)


def test_cuhk03_classic_queries_both_cameras_against_the_other_camera():
    # Same-camera duplicates would be perfect matches; across cameras, images are noise.
    rng = np.random.default_rng(2)
    ids = np.repeat(np.arange(100), 4)
    cams = np.tile([1, 1, 2, 2], 100)
    features = rng.normal(size=(400, 16))
    features[1::2] = features[::2]  # the two images of an id in one camera are identical
    query, gallery = cams == 1, cams == 2
    result = protocols.cuhk03_classic(features[query], ids[query], cams[query],
                                      features[gallery], ids[gallery], cams[gallery], repeats=3)
    assert result.queries == 400 and result.rank(1) < 0.1


def test_errors_are_one_line():
    with pytest.raises(EvaluationError, match="needs at least 2 identities seen by two cameras"):
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


def test_the_hsv_baseline_matches_by_colour_and_scores_a_blank_set_at_zero(tmp_path):
    from PIL import Image

    from synthreid.datasets.toy import write_toy_market

    data = write_toy_market(tmp_path / "toy", people=30)  # 10 test ids, each its own colours
    result = CliRunner().invoke(app, ["reid", "eval", "--descriptor", "hsv", "--data",
                                      f"market1501:{data}", "--protocol", "thesis"])
    assert result.exit_code == 0, result.output
    rank1 = float(result.output.splitlines()[2].split("|")[2].split("±")[0])
    assert rank1 >= 90.0, result.output  # chance: 10%
    for folder in ("query", "bounding_box_test"):  # every test image the same grey
        for path in (data / folder).iterdir():
            Image.new("RGB", (32, 64), (110, 110, 110)).save(path)
    blank = CliRunner().invoke(app, ["reid", "eval", "--descriptor", "hsv", "--data",
                                     f"market1501:{data}", "--protocol", "thesis"])
    assert blank.output.splitlines()[2].split("|")[2].strip().startswith("0.0"), blank.output
    both = CliRunner().invoke(app, ["reid", "eval", "--descriptor", "hsv", "--model", "x.pt",
                                    "--data", f"market1501:{data}"])
    assert both.exit_code == 2 and "one of them" in both.output


def test_ranked_lists_rank_the_nearest_first_without_the_querys_own_camera_images():
    from pathlib import Path

    from synthreid.datasets.records import ImageRecord
    from synthreid.evaluate.features import FeatureSet
    from synthreid.evaluate.retrieval import ranked_lists

    rng = np.random.default_rng(0)
    ids = np.arange(1, 11)
    people = rng.normal(size=(10, 8))
    query = [ImageRecord(Path(f"q{i}.png"), int(i), 1, "query") for i in ids]
    # Each person twice in the gallery: an exact copy from the query's own camera (which the
    # Market rule leaves out) and a near copy from the other camera (the true match).
    gallery = [ImageRecord(Path(f"g{i}c{c}.png"), int(i), c, "gallery")
               for i in ids for c in (1, 2)]
    gallery_features = np.stack([people[i - 1] + (0 if c == 1 else 0.01) for i in ids
                                 for c in (1, 2)])
    features = FeatureSet({"query_features": people, "query_ids": ids,
                           "query_cams": np.ones(10, np.int64),
                           "gallery_features": gallery_features,
                           "gallery_ids": np.repeat(ids, 2),
                           "gallery_cams": np.tile([1, 2], 10)})
    lists = ranked_lists(features, query, gallery, queries=4, top=5)
    assert [entry["pid"] for entry in lists] == [1, 4, 7, 10]  # spread over the ids, in order
    for entry in lists:
        assert entry["first_match"] == 1
        top_path, same = entry["ranked"][0]
        assert top_path == f"g{entry['pid']}c2.png" and same
        assert all(not path.endswith("c1.png") or not path.startswith(f"g{entry['pid']}c")
                   for path, _ in entry["ranked"])
        assert len(entry["ranked"]) == 5 and sum(s for _, s in entry["ranked"]) == 1
