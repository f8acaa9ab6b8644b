"""Re-id evaluation protocols: CMC, mAP and mINP.

- `market`: every query against the whole gallery; gallery entries of the same id and camera as
  the query, and junk ids (-1), are removed before ranking (the official Market-1501 code).
  Also the CUHK03 new protocol.
- `cuhk03_classic`: single-gallery-shot: each camera's images are queries against one random
  image per id from the other camera(s), repeated and averaged.
- `cuhk03_openreid`: Open-ReID's CUHK03 CMC, which the thesis reported (Table 3.2): as classic,
  but every query draws its own gallery.
- `thesis`: 100 random identities, one query and one gallery image each, Euclidean distance,
  CMC over ranks 1..100, repeated with K seeds (thesis 2.3.2). With real camera labels the
  queries of a repeat come from one camera and the gallery from another (Open-ReID's CUHK03
  CMC, which produced the thesis' figures); with pseudo-cameras (synthetic exports) each id's
  two images are drawn from any cameras (`thesis-mixed` forces that draw for comparison). Its
  validation score is the area under the CMC: the sum over ranks (2.3.3).

Ties count against the true match (the pessimistic rank) and non-finite features are refused,
so identical or NaN features from a broken model score at the bottom, never at the top.

Distances are computed in torch on the GPU when present, one block of queries at a time, so
memory stays bounded (a 20,000 x 20,000 evaluation never holds more than one block's sort).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from synthreid.device import torch_device
from synthreid.errors import EvaluationError


@dataclass
class CMCResult:
    cmc: np.ndarray  # matching rate at ranks 1..len, in [0, 1]
    cmc_std: np.ndarray | None = None  # spread over repeats, when repeated
    mAP: float | None = None
    mINP: float | None = None
    queries: int = 0
    extra: dict = field(default_factory=dict)

    def rank(self, k: int) -> float:
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    @property
    def area(self) -> float:
        """The thesis' validation score: the sum of the CMC over its ranks."""
        return float(self.cmc.sum())

    def to_record(self) -> dict:
        """Plain values, ready for JSON (cmc.json, an experiment stage's record)."""
        return {"cmc": self.cmc.tolist(),
                "cmc_std": None if self.cmc_std is None else self.cmc_std.tolist(),
                "mAP": self.mAP, "mINP": self.mINP, "queries": self.queries,
                "cmc_area": self.area, **self.extra}

    @classmethod
    def from_record(cls, record: dict) -> CMCResult:
        """The result `to_record` wrote."""
        fixed = ("cmc", "cmc_std", "mAP", "mINP", "queries", "cmc_area")
        std = record.get("cmc_std")
        return cls(np.asarray(record["cmc"]), None if std is None else np.asarray(std),
                   record.get("mAP"), record.get("mINP"), record.get("queries", 0),
                   {k: v for k, v in record.items() if k not in fixed})


def _tensor(array, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)


def squared_euclidean(a: torch.Tensor, b: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 for every pair; the ranking is the same as for the Euclidean distance."""
    d = (a * a).sum(1, keepdim=True) + b_norms[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0)


def check_samples(features: np.ndarray, ids: np.ndarray, cams: np.ndarray, name: str) -> None:
    if features.ndim != 2 or ids.ndim != 1 or cams.ndim != 1 or not (
            len(features) == len(ids) == len(cams)):
        raise EvaluationError(f"{name}: expected features (N, D) with N ids and N cameras (1-d), "
                              f"got {features.shape}, ids {ids.shape}, cameras {cams.shape}")
    if len(features) == 0:
        raise EvaluationError(f"{name}: no samples")
    for what, array in (("ids", ids), ("cameras", cams)):
        whole = np.issubdtype(array.dtype, np.integer) or (
            np.issubdtype(array.dtype, np.floating) and np.array_equal(array, np.round(array)))
        if not whole:
            raise EvaluationError(f"{name}: {what} must be whole numbers, got {array.dtype}")
    if not np.issubdtype(features.dtype, np.number) or np.issubdtype(features.dtype,
                                                                      np.complexfloating):
        raise EvaluationError(f"{name}: features must be real numbers, got {features.dtype}")
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        # A diverged model's NaN features would otherwise tie everywhere and score as hits.
        raise EvaluationError(f"{name}: {int(bad.sum())} of {len(features)} feature vectors "
                              f"hold NaN or infinite values (did training diverge?)")


def _pessimistic_order(d: torch.Tensor, q_ids: torch.Tensor, g_ids: torch.Tensor) -> torch.Tensor:
    """Gallery order per query by distance, where a true match never wins a tie: an equal
    distance counts against the match (constant features rank every match last)."""
    values, order = torch.sort(d, dim=1)
    tied = (values[:, 1:] == values[:, :-1]).any(1)
    if tied.any():
        rows = tied.nonzero().squeeze(1)
        non_match_first = torch.argsort((g_ids[None, :] == q_ids[rows]).to(torch.int8), dim=1,
                                        stable=True)
        by_distance = torch.argsort(d[rows].gather(1, non_match_first), dim=1, stable=True)
        order[rows] = non_match_first.gather(1, by_distance)
    return order


def market(query_features, query_ids, query_cams, gallery_features, gallery_ids, gallery_cams,
           max_rank: int = 50, block: int = 512, device: torch.device | None = None) -> CMCResult:
    qf, gf = np.asarray(query_features), np.asarray(gallery_features)
    query_ids, query_cams = np.asarray(query_ids), np.asarray(query_cams)
    check_samples(qf, query_ids, query_cams, "query")
    check_samples(gf, np.asarray(gallery_ids), np.asarray(gallery_cams), "gallery")
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationError(f"query features are {qf.shape[1]}-d but gallery features "
                              f"{gf.shape[1]}-d")
    device = device or torch_device()
    g = _tensor(gf, device)
    g_norms = (g * g).sum(1)
    g_ids, g_cams = _tensor(gallery_ids, device, torch.long), _tensor(gallery_cams, device, torch.long)
    max_rank = min(max_rank, len(gf))
    hits = torch.zeros(max_rank, dtype=torch.float64, device=device)
    ap_sum = inp_sum = 0.0
    valid_queries = 0
    for start in range(0, len(qf), block):
        q = _tensor(qf[start:start + block], device)
        q_ids = _tensor(query_ids[start:start + block], device, torch.long)[:, None]
        q_cams = _tensor(query_cams[start:start + block], device, torch.long)[:, None]
        order = _pessimistic_order(squared_euclidean(q, g, g_norms), q_ids, g_ids)
        ids, cams = g_ids[order], g_cams[order]
        junk = ((ids == q_ids) & (cams == q_cams)) | (ids == -1)
        keep = ~junk
        match = (ids == q_ids) & keep
        position = torch.cumsum(keep, dim=1)  # 1-based rank among kept entries
        n_match = match.sum(1)
        has = n_match > 0
        if not has.any():
            continue
        match, position, n_match = match[has], position[has], n_match[has]
        first = torch.where(match, position, torch.iinfo(torch.long).max).min(1).values
        ranks = torch.arange(1, max_rank + 1, device=device)
        hits += (first[:, None] <= ranks[None, :]).sum(0).double()
        cum_match = torch.cumsum(match, dim=1)
        precision = torch.where(match, cum_match / position.clamp_min(1), 0.0)
        ap_sum += (precision.sum(1) / n_match).sum().item()
        last = torch.where(match, position, 0).max(1).values
        inp_sum += (n_match / last).sum().item()
        valid_queries += int(has.sum())
    if valid_queries == 0:
        raise EvaluationError("no query has a matching gallery image in another camera")
    return CMCResult(cmc=(hits / valid_queries).cpu().numpy(), mAP=ap_sum / valid_queries,
                     mINP=inp_sum / valid_queries, queries=valid_queries)


def _single_shot_cmc(qf: torch.Tensor, gf: torch.Tensor, q_ids: np.ndarray,
                     g_ids: np.ndarray, max_rank: int) -> np.ndarray:
    """CMC when each query id has exactly one gallery image and every query has its match."""
    d = squared_euclidean(qf, gf, (gf * gf).sum(1))
    truth = torch.as_tensor(np.searchsorted(g_ids, q_ids), device=d.device)
    true_d = d[torch.arange(len(qf), device=d.device), truth]
    first = (d <= true_d[:, None]).sum(1)  # the match itself and every tie: pessimistic rank
    ranks = torch.arange(1, max_rank + 1, device=d.device)
    return (first[:, None] <= ranks[None, :]).double().mean(0).cpu().numpy()


def people(ids: np.ndarray, ignore_ids=()) -> np.ndarray:
    """Which samples are people the thesis protocol may draw: not junk (negative ids), not one
    of `ignore_ids` (e.g. Market's distractor id 0)."""
    ids = np.asarray(ids)
    return (ids >= 0) & ~np.isin(ids, np.asarray(ignore_ids, dtype=ids.dtype))


CAMERA_RULES = ("apart", "mixed")


def thesis(features, ids, cams, identities: int = 100, repeats: int = 10, seed: int = 0,
           ignore_ids=(), cameras: str = "apart",
           device: torch.device | None = None) -> CMCResult:
    """The thesis protocol on one pool of evaluation images (ids not used for training).
    Negative ids (junk) and `ignore_ids` (e.g. Market's distractor id 0) are never drawn.

    `cameras="apart"` (real camera labels): each repeat takes its queries from one camera and
    its gallery from another, so no gallery image shares the query's camera, as Open-ReID's
    CUHK03 CMC (the thesis' figures) does; a feature that carries a camera's colour cast then
    gains nothing. The ordered camera pairs that share the most ids (at least `identities`)
    take turns: camera 1 to 2 on even repeats, 2 to 1 on odd ones in a two-camera set.
    `cameras="mixed"` (pseudo-cameras drawn at random, as in synthetic exports): each id's
    query is any of its images and its gallery image another, from another camera when it has
    one (`thesis-mixed`). Either uses as many ids as the set has, up to `identities`; the
    result's `extra["identities"]` says how many."""
    if cameras not in CAMERA_RULES:
        raise EvaluationError(f"cameras: expected one of {', '.join(CAMERA_RULES)}, "
                              f"got {cameras!r}")
    features, ids, cams = np.asarray(features), np.asarray(ids), np.asarray(cams)
    check_samples(features, ids, cams, "evaluation set")
    device = device or torch_device()
    drawn = _apart_draws if cameras == "apart" else _mixed_draws
    chosen_ids, draws = drawn(ids, cams, people(ids, ignore_ids), identities, repeats, seed)
    all_features = _tensor(features, device)
    curves = np.stack([_single_shot_cmc(all_features[query], all_features[gallery], chosen,
                                        chosen, chosen_ids)
                       for chosen, query, gallery in draws])
    return CMCResult(cmc=curves.mean(0), cmc_std=_sample_std(curves), queries=chosen_ids,
                     extra={"repeats": repeats, "identities": chosen_ids, "seed": seed,
                            "cameras": cameras})


def _sample_std(curves: np.ndarray) -> np.ndarray | None:
    """The spread over repeats as a sample standard deviation (ddof=1); None for one repeat."""
    return curves.std(0, ddof=1) if len(curves) > 1 else None


def _too_few(found: int, what: str) -> None:
    if found < 2:
        raise EvaluationError(f"the thesis protocol needs at least 2 identities {what}; the "
                              f"evaluation set has {found}")


def _mixed_draws(ids, cams, drawable, identities, repeats, seed):
    """(ids used, [(chosen ids, query indices, gallery indices)] per repeat), any camera."""
    by_id: dict[int, np.ndarray] = {}
    for pid in np.unique(ids[drawable]):
        members = np.flatnonzero(ids == pid)
        if len(members) >= 2:
            by_id[int(pid)] = members
    _too_few(len(by_id), "with two images")
    count = min(identities, len(by_id))
    pool = np.array(sorted(by_id))
    draws = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        chosen = np.sort(rng.choice(pool, size=count, replace=False))
        query, gallery = [], []
        for pid in chosen:
            members = by_id[int(pid)]
            a = rng.choice(members)
            others = members[(members != a) & (cams[members] != cams[a])]
            if len(others) == 0:  # one camera only for this id: any other image
                others = members[members != a]
            query.append(a)
            gallery.append(rng.choice(others))
        draws.append((chosen, query, gallery))
    return count, draws


def camera_pairs(ids, cams, drawable) -> dict[tuple[int, int], np.ndarray]:
    """Every ordered pair of cameras (query, gallery) with the ids that both have seen."""
    seen = {int(c): set(np.unique(ids[drawable & (cams == c)]).tolist())
            for c in np.unique(cams[drawable])}
    return {(a, b): np.array(sorted(seen[a] & seen[b])) for a in seen for b in seen if a != b}


def _apart_draws(ids, cams, drawable, identities, repeats, seed):
    """(ids used, draws) with each repeat's queries from one camera and gallery from another."""
    pairs = camera_pairs(ids, cams, drawable)
    most = max((len(shared) for shared in pairs.values()), default=0)
    _too_few(most, "seen by two cameras")
    count = min(identities, most)
    turns = sorted(pair for pair, shared in pairs.items() if len(shared) >= count)
    if len(turns) > 2:  # many cameras: a seeded order, so 10 repeats do not all start at cam 1
        turns = [turns[i] for i in np.random.default_rng([seed, 1 << 20]).permutation(len(turns))]
    draws = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        query_cam, gallery_cam = turns[repeat % len(turns)]
        chosen = np.sort(rng.choice(pairs[(query_cam, gallery_cam)], size=count, replace=False))
        query = [rng.choice(np.flatnonzero(drawable & (ids == pid) & (cams == query_cam)))
                 for pid in chosen]
        gallery = [rng.choice(np.flatnonzero(drawable & (ids == pid) & (cams == gallery_cam)))
                   for pid in chosen]
        draws.append((chosen, query, gallery))
    return count, draws


def _other_camera_single_shot(features, ids, cams, repeats: int, seed: int, max_rank: int,
                              per_query_draws: bool, device) -> CMCResult:
    """Every image is a query against the images of the other cameras, of which one random image
    per id is drawn, `repeats` times; the rank of the drawn match among the drawn images counts
    ties against the match. With `per_query_draws` every query draws its own gallery (Open-ReID's
    `single_gallery_shot`); otherwise one draw per camera and repeat serves all its queries."""
    features, ids, cams = np.asarray(features), np.asarray(ids), np.asarray(cams)
    check_samples(features, ids, cams, "evaluation set")
    device = device or torch_device()
    drawn = people(ids)
    features, ids, cams = features[drawn], ids[drawn], cams[drawn]
    all_features = _tensor(features, device)
    norms = (all_features * all_features).sum(1)
    ranks, shortest = [], None
    for camera in np.unique(cams):
        other = np.flatnonzero(cams != camera)
        other = other[np.argsort(ids[other], kind="stable")]  # grouped by id
        gallery_ids, offsets, sizes = np.unique(ids[other], return_index=True, return_counts=True)
        queries = np.flatnonzero((cams == camera) & np.isin(ids, gallery_ids))
        if len(queries) == 0 or len(gallery_ids) < 2:
            continue
        d = squared_euclidean(all_features[queries], all_features[other], norms[other])
        d = d.cpu().numpy()
        truth = np.searchsorted(gallery_ids, ids[queries])
        rng = np.random.default_rng([seed, int(camera) & 0xFFFFFFFF])
        shape = (len(queries) if per_query_draws else 1, repeats, len(gallery_ids))
        picks = offsets + np.floor(rng.random(shape) * sizes).astype(np.int64)
        drawn = np.take_along_axis(d[:, None, :], np.broadcast_to(
            picks, (len(queries), repeats, len(gallery_ids))), axis=2)
        true_d = np.take_along_axis(drawn, truth[:, None, None], axis=2)
        ranks.append((drawn <= true_d).sum(2))  # (queries, repeats)
        shortest = len(gallery_ids) if shortest is None else min(shortest, len(gallery_ids))
    if not ranks:
        raise EvaluationError("no query has an image of its id in another camera")
    all_ranks = np.concatenate(ranks)
    max_rank = min(max_rank, shortest)
    curves = (all_ranks[:, :, None] <= np.arange(1, max_rank + 1)).mean(0)  # (repeats, ranks)
    return CMCResult(cmc=curves.mean(0), cmc_std=_sample_std(curves), queries=len(all_ranks),
                     extra={"repeats": repeats, "seed": seed})


def cuhk03_classic(query_features, query_ids, query_cams, gallery_features, gallery_ids,
                   gallery_cams, repeats: int = 10, max_rank: int = 100, seed: int = 0,
                   device: torch.device | None = None) -> CMCResult:
    """CUHK03's classic single-gallery-shot CMC: query and gallery are pooled; the images of each
    camera are queries against one random image per id from the other camera(s), drawn once
    per camera and repeat; the CMC is averaged over the queries and repeats."""
    pooled = [np.concatenate([np.asarray(a), np.asarray(b)]) for a, b in (
        (query_features, gallery_features), (query_ids, gallery_ids), (query_cams, gallery_cams))]
    return _other_camera_single_shot(*pooled, repeats, seed, max_rank, per_query_draws=False,
                                     device=device)


def cuhk03_openreid(features, ids, cams, repeats: int = 10, max_rank: int = 100, seed: int = 0,
                    device: torch.device | None = None) -> CMCResult:
    """Open-ReID's CUHK03 CMC (the thesis' Table 3.2): all test images (labeled and detected)
    are queries; each draws, independently, one random image per id from the other camera,
    10 times (`cmc(..., separate_camera_set=True, single_gallery_shot=True)`)."""
    return _other_camera_single_shot(features, ids, cams, repeats, seed, max_rank,
                                     per_query_draws=True, device=device)
