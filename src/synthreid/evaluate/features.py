"""Feature files: a `.npz` with either `query_*` and `gallery_*` arrays (features, ids, cams)
for the standard protocols, or `features`, `ids`, `cams` for the thesis protocol. Optional:
`ignore_ids` (ids that are no person, e.g. Market's distractor 0) and `pseudo_cameras` (true
when the cameras were drawn at random, as in synthetic exports, not real camera labels)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthreid import atomic
from synthreid.errors import EvaluationError
from synthreid.evaluate import PROTOCOLS

SPLIT_KEYS = ("features", "ids", "cams")


def load_features(path: str | Path) -> FeatureSet:
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
    return FeatureSet(arrays)


@dataclass(frozen=True)
class FeatureSet:
    """What an evaluation scores: a feature file's arrays, by their names (`query_features`,
    ..., or `features`, `ids`, `cams` for one pool; `ignore_ids`, `pseudo_cameras`), read
    through checked accessors. Built by `dataset_feature_set` from a dataset and its features
    (a model's or a descriptor's), or from a loaded `.npz`."""
    arrays: dict[str, np.ndarray]

    @property
    def ignore_ids(self) -> np.ndarray:
        ignore = np.asarray(self.arrays.get("ignore_ids", np.zeros(0, np.int64))).ravel()
        if not np.issubdtype(ignore.dtype, np.number):
            raise EvaluationError(f"ignore_ids must be whole numbers, got {ignore.dtype}")
        return ignore

    @property
    def pseudo_cameras(self) -> bool:
        return bool(np.asarray(self.arrays.get("pseudo_cameras", False)).any())

    def group(self, prefix: str) -> tuple[np.ndarray, ...] | None:
        """(features, ids, cams) under a prefix, checked; None when there are none of them."""
        from synthreid.evaluate.protocols import check_samples

        keys = [f"{prefix}{k}" for k in SPLIT_KEYS]
        if not any(k in self.arrays for k in keys):
            return None
        missing = [k for k in keys if k not in self.arrays]
        if missing:
            raise EvaluationError(f"feature file: {', '.join(missing)} missing beside "
                                  f"{', '.join(k for k in keys if k in self.arrays)}")
        group = tuple(np.asarray(self.arrays[k]) for k in keys)
        check_samples(*group, prefix.rstrip("_") or "features")
        return group

    def split(self) -> tuple[tuple, tuple]:
        """(query, gallery), each (features, ids, cams)."""
        query, gallery = self.group("query_"), self.group("gallery_")
        if query is None or gallery is None:
            raise EvaluationError("this protocol needs query_* and gallery_* arrays")
        if query[0].shape[1] != gallery[0].shape[1]:
            raise EvaluationError(f"query features are {query[0].shape[1]}-d but gallery "
                                  f"features {gallery[0].shape[1]}-d")
        return query, gallery

    def pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All evaluation samples in one pool, as the thesis protocol draws from."""
        together = self.group("")
        if together is not None:
            return together
        query, gallery = self.split()
        return tuple(np.concatenate([q, g]) for q, g in zip(query, gallery))

    def save(self, path: Path) -> Path:
        with atomic.atomic_path(path) as tmp:
            np.savez(tmp, **self.arrays)
        return path


def dataset_feature_set(dataset, query_features: np.ndarray,
                        gallery_features: np.ndarray) -> FeatureSet:
    """A dataset's query and gallery features with what the evaluation needs to know of it:
    ids and cameras, the ids that are no person, and whether its cameras are pseudo-cameras."""
    arrays = {"query_features": query_features, "gallery_features": gallery_features}
    for split in ("query", "gallery"):
        records = getattr(dataset, split)
        arrays[f"{split}_ids"] = np.array([r.pid for r in records], dtype=np.int64)
        arrays[f"{split}_cams"] = np.array([r.camid for r in records], dtype=np.int64)
    arrays["ignore_ids"] = np.array(dataset.distractor_ids, dtype=np.int64)
    arrays["pseudo_cameras"] = np.array(dataset.pseudo_cameras)
    return FeatureSet(arrays)


def evaluate(features: FeatureSet | dict[str, np.ndarray], protocol: str, repeats: int = 10,
             seed: int = 0):
    """Run a protocol on a feature set (or a feature file's arrays). The thesis and
    cuhk03-openreid protocols draw from the pooled samples (the thesis protocol with up to 100
    identities, its cameras kept apart unless `pseudo_cameras` is true or the protocol is
    `thesis-mixed`), never drawing the ids in `ignore_ids` (Market's distractors, 0); the
    others need query_* and gallery_* arrays."""
    from synthreid.evaluate import protocols

    if not isinstance(features, FeatureSet):
        features = FeatureSet(dict(features))
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got "
                              f"{protocol!r}")
    ignore = features.ignore_ids
    if protocol in ("thesis", "thesis-mixed", "cuhk03-openreid"):
        samples, ids, cams = features.pooled()
        if protocol.startswith("thesis"):
            cameras = "mixed" if features.pseudo_cameras or protocol == "thesis-mixed" \
                else "apart"
            return protocols.thesis(samples, ids, cams, repeats=repeats, seed=seed,
                                    ignore_ids=ignore, cameras=cameras)
        keep = ~np.isin(ids, ignore)
        return protocols.cuhk03_openreid(samples[keep], ids[keep], cams[keep],
                                         repeats=repeats, seed=seed)
    query, gallery = features.split()
    if protocol == "cuhk03-classic":
        return protocols.cuhk03_classic(*query, *gallery, repeats=repeats, seed=seed)
    return protocols.market(*query, *gallery)



def save_features(path: Path, **arrays: np.ndarray) -> Path:
    """A feature file of these arrays (atomically)."""
    return FeatureSet(arrays).save(Path(path))
