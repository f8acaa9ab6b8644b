"""Feature files: a `.npz` with either `query_*` and `gallery_*` arrays (features, ids, cams)
for the standard protocols, or `features`, `ids`, `cams` for the thesis protocol. Optional:
`ignore_ids` (ids that are no person, e.g. Market's distractor 0) and `pseudo_cameras` (true
when the cameras were drawn at random, as in synthetic exports, not real camera labels)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from synthreid import atomic
from synthreid.errors import EvaluationError
from synthreid.evaluate import PROTOCOLS

SPLIT_KEYS = ("features", "ids", "cams")


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise EvaluationError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise EvaluationError(f"{path}: not a .npz archive of arrays") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise EvaluationError(f"{path}: a single .npy array, not a .npz archive of arrays")
    try:
        with data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise EvaluationError(f"{path}: damaged .npz archive") from None
    split = all(f"{s}_{k}" in arrays for s in ("query", "gallery") for k in SPLIT_KEYS)
    pooled = all(k in arrays for k in SPLIT_KEYS)
    if not (split or pooled):
        raise EvaluationError(
            f"{path}: expected arrays query_features, query_ids, query_cams, gallery_features, "
            f"gallery_ids, gallery_cams (or features, ids, cams); found {', '.join(arrays)}")
    return arrays


def _group(arrays: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, ...] | None:
    """(features, ids, cams) under a prefix, checked; None when the file has none of them."""
    from synthreid.evaluate.protocols import check_samples

    keys = [f"{prefix}{k}" for k in SPLIT_KEYS]
    if not any(k in arrays for k in keys):
        return None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise EvaluationError(f"feature file: {', '.join(missing)} missing beside "
                              f"{', '.join(k for k in keys if k in arrays)}")
    group = tuple(np.asarray(arrays[k]) for k in keys)
    check_samples(*group, prefix.rstrip("_") or "features")
    return group


def split_groups(arrays: dict[str, np.ndarray]) -> tuple[tuple, tuple]:
    query, gallery = _group(arrays, "query_"), _group(arrays, "gallery_")
    if query is None or gallery is None:
        raise EvaluationError("this protocol needs query_* and gallery_* arrays")
    if query[0].shape[1] != gallery[0].shape[1]:
        raise EvaluationError(f"query features are {query[0].shape[1]}-d but gallery features "
                              f"{gallery[0].shape[1]}-d")
    return query, gallery


def pooled(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All evaluation samples in one pool, as the thesis protocol draws from."""
    together = _group(arrays, "")
    if together is not None:
        return together
    query, gallery = split_groups(arrays)
    return tuple(np.concatenate([q, g]) for q, g in zip(query, gallery))


def save_features(path: Path, **arrays: np.ndarray) -> Path:
    with atomic.atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def label_arrays(dataset, split: str) -> dict[str, np.ndarray]:
    """A dataset split's ids and cameras under a feature file's names (`query_ids`, ...)."""
    records = getattr(dataset, split)
    return {f"{split}_ids": np.array([r.pid for r in records], dtype=np.int64),
            f"{split}_cams": np.array([r.camid for r in records], dtype=np.int64)}


def dataset_labels(dataset) -> dict[str, np.ndarray]:
    """What a feature file says of its dataset besides features: query and gallery ids and
    cameras, the ids that are no person, and whether the cameras are pseudo-cameras."""
    return {**label_arrays(dataset, "query"), **label_arrays(dataset, "gallery"),
            "ignore_ids": np.array(dataset.distractor_ids, dtype=np.int64),
            "pseudo_cameras": np.array(dataset.pseudo_cameras)}


def evaluate_arrays(arrays: dict[str, np.ndarray], protocol: str, repeats: int = 10,
                    seed: int = 0):
    """Run a protocol on a feature file's arrays. The thesis and cuhk03-openreid protocols draw
    from the pooled samples (the thesis protocol with up to 100 identities, its cameras kept
    apart unless `pseudo_cameras` is true or the protocol is `thesis-mixed`), never drawing the
    ids in an optional `ignore_ids` array (Market's distractors, 0); the others need query_* and
    gallery_* arrays."""
    from synthreid.evaluate import protocols

    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got "
                              f"{protocol!r}")
    ignore = np.asarray(arrays.get("ignore_ids", np.zeros(0, np.int64))).ravel()
    if not np.issubdtype(ignore.dtype, np.number):
        raise EvaluationError(f"ignore_ids must be whole numbers, got {ignore.dtype}")
    if protocol in ("thesis", "thesis-mixed", "cuhk03-openreid"):
        features, ids, cams = pooled(arrays)
        if protocol.startswith("thesis"):
            pseudo = bool(np.asarray(arrays.get("pseudo_cameras", False)).any())
            cameras = "mixed" if pseudo or protocol == "thesis-mixed" else "apart"
            return protocols.thesis(features, ids, cams, repeats=repeats, seed=seed,
                                    ignore_ids=ignore, cameras=cameras)
        keep = ~np.isin(ids, ignore)
        return protocols.cuhk03_openreid(features[keep], ids[keep], cams[keep],
                                         repeats=repeats, seed=seed)
    query, gallery = split_groups(arrays)
    if protocol == "cuhk03-classic":
        return protocols.cuhk03_classic(*query, *gallery, repeats=repeats, seed=seed)
    return protocols.market(*query, *gallery)
