"""CUHK03, in its two forms.

- The new protocol (767 train / 700 test ids): the `cuhk03-np` folders `labeled/` and
  `detected/`, each in Market-1501 layout (names like 0001_c1_1.png).
- The original `cuhk-03.mat` (MATLAB v7.3, HDF5): cells `labeled` and `detected` of 5 camera
  pairs, each a (people x 10) cell of images (5 per camera), and `testsets`, the 20 classic
  splits of 100 (pair, person) test ids. Images are extracted once to PNG files beside the .mat.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.datasets.market import read_market_layout
from synthreid.datasets.records import ImageRecord, ReidDataset
from synthreid.errors import DatasetError


def read_cuhk03_np(root: str | Path, kind: str = "labeled",
                   check_images: bool = True) -> ReidDataset:
    if kind not in ("labeled", "detected"):
        raise DatasetError(f"cuhk03: kind must be 'labeled' or 'detected', got {kind!r}")
    root = Path(root).expanduser()
    folder = root / kind if (root / kind).is_dir() else root
    if not (folder / "bounding_box_train").is_dir():
        raise DatasetError(f"{root}: expected {kind}/bounding_box_train (the cuhk03-np layout)")
    dataset = read_market_layout(folder, "cuhk03-np", check_images)
    dataset.name = f"cuhk03-np-{kind}"
    return dataset


def _open(mat_path: Path):
    import h5py

    try:
        return h5py.File(mat_path, "r")
    except OSError:
        raise DatasetError(f"{mat_path}: not an HDF5 file (cuhk-03.mat is MATLAB v7.3)") from None


def _global_pid(pair: int, person: int) -> int:
    """A unique id per (camera pair, person), both 1-based: 1001, 1002, ..., 5xxx."""
    return pair * 1000 + person


def _extract(mat_path: Path, kind: str) -> Path:
    """Write every image of the `kind` cell to PNG once (temp folder + rename)."""
    out = mat_path.parent / f"cuhk03_{kind}_images"
    if out.is_dir():
        return out
    staging = Path(tempfile.mkdtemp(dir=mat_path.parent, prefix=f".{out.name}-"))
    try:
        with _open(mat_path) as mat:
            if kind not in mat:
                raise DatasetError(f"{mat_path}: no '{kind}' cell (is this cuhk-03.mat?)")
            for pair, pair_ref in enumerate(mat[kind][0], start=1):
                people = mat[pair_ref][:].T  # (people, 10) references
                for person, row in enumerate(people, start=1):
                    for index, image_ref in enumerate(row):
                        pixels = mat[image_ref][:].T
                        if pixels.ndim < 3 or pixels.size == 0:
                            continue  # an empty cell: this person has fewer images
                        camera = 1 if index < 5 else 2
                        name = f"{pair}_{person:03d}_{camera}_{index + 1:02d}.png"
                        Image.fromarray(pixels.astype(np.uint8)).save(staging / name)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def classic_splits(mat_path: str | Path) -> list[set[int]]:
    """The 20 classic test splits, as sets of global person ids."""
    with _open(Path(mat_path)) as mat:
        if "testsets" not in mat:
            raise DatasetError(f"{mat_path}: no 'testsets' cell (is this cuhk-03.mat?)")
        return [{_global_pid(int(p), int(q)) for p, q in mat[ref][:].T}
                for ref in mat["testsets"][0]]


def read_cuhk03_mat(mat_path: str | Path, kind: str = "labeled", split: int = 0,
                    check_images: bool = True) -> ReidDataset:
    """Classic protocol, split `split` (0-19): its 100 test people as query (camera 1 of
    their pair) and gallery (camera 2); everyone else trains. Cameras are the two views of a
    pair (1 and 2), as Open-ReID numbers them. `kind: both` takes the labeled and the detected
    images of every person together, as Open-ReID's CUHK03 (and so the thesis) did."""
    mat_path = Path(mat_path).expanduser()
    if not mat_path.is_file():
        raise DatasetError(f"{mat_path}: cuhk-03.mat not found")
    if kind not in ("labeled", "detected", "both"):
        raise DatasetError(f"cuhk03: kind must be 'labeled', 'detected' or 'both', got {kind!r}")
    splits = classic_splits(mat_path)
    if not 0 <= split < len(splits):
        raise DatasetError(f"cuhk03: split must be in 0..{len(splits) - 1}, got {split}")
    test = splits[split]
    kinds = ("labeled", "detected") if kind == "both" else (kind,)
    train, query, gallery = [], [], []
    for folder in [_extract(mat_path, k) for k in kinds]:
        for path in sorted(folder.glob("*.png")):
            pair, person, camera, _ = (int(x) for x in path.stem.split("_"))
            pid = _global_pid(pair, person)
            if pid not in test:
                train.append(ImageRecord(path, pid, camera, "train"))
            else:
                (query if camera == 1 else gallery).append(
                    ImageRecord(path, pid, camera, "query" if camera == 1 else "gallery"))
    return ReidDataset(f"cuhk03-{kind}-split{split}", mat_path.parent, train, query, gallery,
                       notes=[f"classic split {split} of {len(splits)}"])
