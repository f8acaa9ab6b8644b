"""Ranked retrieval lists for a few fixed queries: what a model returns first, for a person to
look at (torchreid's `visrank`, fast-reid's `visualize_result`). The gallery is ranked as the
Market protocol ranks it: same-id images from the query's own camera are left out."""

from __future__ import annotations

import numpy as np

from synthreid.datasets.records import ImageRecord
from synthreid.evaluate.features import FeatureSet

QUERIES = 4
TOP = 10


def ranked_lists(features: FeatureSet, query: list[ImageRecord], gallery: list[ImageRecord],
                 queries: int = QUERIES, top: int = TOP) -> list[dict]:
    """For `queries` queries spread evenly over the ids (in id order, so the same ones for every
    model): the query's path and id, its top `top` gallery paths with whether each is the same
    person, and the rank of its first true match (None: no match in the gallery)."""
    (qf, q_ids, q_cams), (gf, g_ids, g_cams) = features.split()
    if not len(qf) or not len(gf):
        return []
    order = np.argsort(q_ids, kind="stable")
    picks = order[np.unique(np.linspace(0, len(order) - 1, min(queries, len(order)))
                            .round().astype(int))]
    ignore = set(features.ignore_ids.tolist())
    lists = []
    for index in picks:
        distances = ((gf - qf[index]) ** 2).sum(axis=1)
        usable = ~((g_ids == q_ids[index]) & (g_cams == q_cams[index]))
        usable &= ~np.isin(g_ids, list(ignore))
        ranked = np.flatnonzero(usable)[np.argsort(distances[usable], kind="stable")]
        matches = g_ids[ranked] == q_ids[index]
        first = int(np.argmax(matches)) + 1 if matches.any() else None
        lists.append({"query": str(query[index].path), "pid": int(q_ids[index]),
                      "first_match": first,
                      "ranked": [[str(gallery[g].path), bool(m)]
                                 for g, m in zip(ranked[:top], matches[:top])]})
    return lists
