"""Re-id evaluation protocols: CMC, mAP and mINP.

- `market`: every query against the whole gallery; gallery entries of the same id and camera as
  the query, and junk ids (-1), are removed before ranking (the official Market-1501 code).
  Also the CUHK03 new protocol.
- `cuhk03_classic`: single-gallery-shot: one random gallery image per id, repeated and averaged.
- `thesis`: 100 random identities, one query and one gallery image each (different cameras
  where cameras exist), Euclidean distance, CMC over ranks 1..100, repeated with K seeds
  (thesis 2.3.2). Its validation score is the area under the CMC: the sum over ranks (2.3.3).

Distances are computed in torch on the GPU when present, one block of queries at a time, so
memory stays bounded (a 20,000 x 20,000 evaluation never holds more than one block's sort).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _tensor(array, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)


def squared_euclidean(a: torch.Tensor, b: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 for every pair; the ranking is the same as for the Euclidean distance."""
    d = (a * a).sum(1, keepdim=True) + b_norms[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0)


def _check(features: np.ndarray, ids: np.ndarray, cams: np.ndarray, name: str) -> None:
    if features.ndim != 2 or len(features) != len(ids) or len(ids) != len(cams):
        raise EvaluationError(f"{name}: expected features (N, D) with N ids and N cameras, got "
                              f"{features.shape}, {len(ids)} ids, {len(cams)} cameras")
    if len(features) == 0:
        raise EvaluationError(f"{name}: no samples")


def market(query_features, query_ids, query_cams, gallery_features, gallery_ids, gallery_cams,
           max_rank: int = 50, block: int = 512, device: torch.device | None = None) -> CMCResult:
    qf, gf = np.asarray(query_features), np.asarray(gallery_features)
    _check(qf, np.asarray(query_ids), np.asarray(query_cams), "query")
    _check(gf, np.asarray(gallery_ids), np.asarray(gallery_cams), "gallery")
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationError(f"query features are {qf.shape[1]}-d but gallery features "
                              f"{gf.shape[1]}-d")
    device = device or default_device()
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
        order = torch.argsort(squared_euclidean(q, g, g_norms), dim=1)
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
    first = (d < true_d[:, None]).sum(1) + 1  # ties resolved in the match's favour
    ranks = torch.arange(1, max_rank + 1, device=d.device)
    return (first[:, None] <= ranks[None, :]).double().mean(0).cpu().numpy()


def thesis(features, ids, cams, identities: int = 100, repeats: int = 10, seed: int = 0,
           device: torch.device | None = None) -> CMCResult:
    """The thesis protocol on one pool of evaluation images (ids not used for training)."""
    features, ids, cams = np.asarray(features), np.asarray(ids), np.asarray(cams)
    _check(features, ids, cams, "evaluation set")
    device = device or default_device()
    by_id: dict[int, np.ndarray] = {}
    for pid in np.unique(ids[ids >= 0]):
        members = np.flatnonzero(ids == pid)
        if len(members) >= 2:
            by_id[int(pid)] = members
    if len(by_id) < identities:
        raise EvaluationError(f"the thesis protocol needs {identities} identities with two "
                              f"images; the evaluation set has {len(by_id)}")
    pool = np.array(sorted(by_id))
    all_features = _tensor(features, device)
    curves = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        chosen = np.sort(rng.choice(pool, size=identities, replace=False))
        query, gallery = [], []
        for pid in chosen:
            members = by_id[int(pid)]
            a = rng.choice(members)
            others = members[(members != a) & (cams[members] != cams[a])]
            if len(others) == 0:  # one camera only for this id: any other image
                others = members[members != a]
            query.append(a)
            gallery.append(rng.choice(others))
        curves.append(_single_shot_cmc(all_features[query], all_features[gallery], chosen,
                                       chosen, identities))
    curves = np.stack(curves)
    return CMCResult(cmc=curves.mean(0), cmc_std=curves.std(0), queries=identities,
                     extra={"repeats": repeats, "identities": identities, "seed": seed})


def cuhk03_classic(query_features, query_ids, query_cams, gallery_features, gallery_ids,
                   gallery_cams, repeats: int = 10, max_rank: int = 50, seed: int = 0,
                   device: torch.device | None = None) -> CMCResult:
    """Single-gallery-shot: per repeat, one random gallery image per id (the classic splits put
    queries and gallery in different cameras); the CMC is averaged over repeats."""
    qf, gf = np.asarray(query_features), np.asarray(gallery_features)
    q_ids, g_ids = np.asarray(query_ids), np.asarray(gallery_ids)
    _check(qf, q_ids, np.asarray(query_cams), "query")
    _check(gf, g_ids, np.asarray(gallery_cams), "gallery")
    device = device or default_device()
    unique = np.unique(g_ids)
    keep = np.isin(q_ids, unique)
    if not keep.any():
        raise EvaluationError("no query id appears in the gallery")
    q = _tensor(qf[keep], device)
    g_all = _tensor(gf, device)
    max_rank = min(max_rank, len(unique))
    curves = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        picks = [rng.choice(np.flatnonzero(g_ids == pid)) for pid in unique]
        curves.append(_single_shot_cmc(q, g_all[picks], q_ids[keep], unique, max_rank))
    curves = np.stack(curves)
    return CMCResult(cmc=curves.mean(0), cmc_std=curves.std(0), queries=int(keep.sum()),
                     extra={"repeats": repeats})
