"""Feature files: a `.npz` with either `query_*` and `gallery_*` arrays (features, ids, cams)
for the standard protocols, or `features`, `ids`, `cams` for the thesis protocol."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from synthreid.errors import EvaluationError
from synthreid.evaluate import PROTOCOLS

SPLIT_KEYS = ("features", "ids", "cams")


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise EvaluationError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError):
        raise EvaluationError(f"{path}: not a .npz archive of arrays") from None
    split = all(f"{s}_{k}" in arrays for s in ("query", "gallery") for k in SPLIT_KEYS)
    pooled = all(k in arrays for k in SPLIT_KEYS)
    if not (split or pooled):
        raise EvaluationError(
            f"{path}: expected arrays query_features, query_ids, query_cams, gallery_features, "
            f"gallery_ids, gallery_cams (or features, ids, cams); found {', '.join(arrays)}")
    return arrays


def pooled(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All evaluation samples in one pool, as the thesis protocol draws from."""
    if all(k in arrays for k in SPLIT_KEYS):
        return arrays["features"], arrays["ids"], arrays["cams"]
    return tuple(np.concatenate([arrays[f"query_{k}"], arrays[f"gallery_{k}"]])
                 for k in SPLIT_KEYS)


def save_features(path: Path, **arrays: np.ndarray) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def evaluate_arrays(arrays: dict[str, np.ndarray], protocol: str, repeats: int = 10,
                    seed: int = 0):
    """Run a protocol on a feature file's arrays. The thesis and cuhk03-openreid protocols draw
    from the pooled samples (the thesis protocol with up to 100 identities), never drawing the
    ids in an optional `ignore_ids` array (Market's distractors, 0); the others need query_* and
    gallery_* arrays."""
    from synthreid.evaluate import protocols

    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got "
                              f"{protocol!r}")
    ignore = np.asarray(arrays.get("ignore_ids", np.zeros(0, np.int64)))
    if protocol in ("thesis", "cuhk03-openreid"):
        features, ids, cams = pooled(arrays)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise EvaluationError(f"ids must be a 1-d array of integers, got {ids.dtype} "
                                  f"{ids.shape}")
        if protocol == "thesis":
            people = len(set(ids[(ids >= 0) & ~np.isin(ids, ignore)].tolist()))
            return protocols.thesis(features, ids, cams, min(100, people), repeats=repeats,
                                    seed=seed, ignore_ids=ignore)
        keep = ~np.isin(ids, ignore)
        return protocols.cuhk03_openreid(features[keep], ids[keep], cams[keep],
                                         repeats=repeats, seed=seed)
    if "query_features" not in arrays:
        raise EvaluationError(f"the {protocol} protocol needs query_* and gallery_* arrays")
    split = [arrays[f"{s}_{k}"] for s in ("query", "gallery") for k in SPLIT_KEYS]
    if protocol == "cuhk03-classic":
        return protocols.cuhk03_classic(*split, repeats=repeats, seed=seed)
    return protocols.market(*split)
