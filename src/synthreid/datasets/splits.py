"""Drawing ids to hold out (test, validation): the one place ids are split at random."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def draw_ids(ids: Iterable[int], count: int, rng: np.random.Generator) -> set[int]:
    """`count` distinct ids drawn from `ids` (in sorted order, so the draw depends only on the
    set of ids and the generator's seed)."""
    pool = sorted(set(ids))
    return set(rng.choice(pool, size=min(count, len(pool)), replace=False).tolist())


def hold_out(ids: Iterable[int], counts: list[int],
             rng: np.random.Generator) -> tuple[list[set[int]], set[int]]:
    """Disjoint held-out sets of `counts` ids each, drawn in turn; and the ids left over."""
    left = set(ids)
    held = []
    for count in counts:
        drawn = draw_ids(left, count, rng)
        held.append(drawn)
        left -= drawn
    return held, left
