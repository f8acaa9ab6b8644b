"""MSMT17: list files (list_train.txt, list_val.txt, list_query.txt, list_gallery.txt) with lines
`0000/0000_000_01_0303morning_0015_0.jpg 0`, images under train/ and test/ (V1) or
mask_train_v2/ and mask_test_v2/ (V2). The camera is the third field of the file name."""

from __future__ import annotations

from pathlib import Path

from synthreid.datasets.records import ImageRecord, ReidDataset, check_readable
from synthreid.errors import DatasetError

LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
         "gallery": ("list_gallery.txt",)}
IMAGE_DIRS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))


def _image_dirs(root: Path) -> tuple[Path, Path]:
    for train, test in IMAGE_DIRS:
        if (root / train).is_dir() and (root / test).is_dir():
            return root / train, root / test
    raise DatasetError(f"{root}: expected image folders train/ and test/ (or mask_train_v2/ "
                       f"and mask_test_v2/)")


def _read_list(list_path: Path, image_dir: Path, split: str) -> list[ImageRecord]:
    if not list_path.is_file():
        raise DatasetError(f"{list_path}: list file not found")
    records = []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            relative, pid = fields[0], int(fields[1])
            camid = int(Path(relative).name.split("_")[2])
        except (IndexError, ValueError):
            raise DatasetError(f"{list_path}:{number}: expected 'PID/PID_IDX_CAM_...jpg PID', "
                               f"got {line.strip()!r}") from None
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise DatasetError(f"{list_path}:{number}: image path {relative!r} leaves the image "
                               f"folder {image_dir}")
        path = image_dir / relative
        if not path.is_file():
            raise DatasetError(f"{list_path}:{number}: image {path} not found")
        records.append(ImageRecord(path, pid, camid, split))
    return records


def read_msmt17(root: str | Path, check_images: bool = True) -> ReidDataset:
    root = Path(root).expanduser()
    train_dir, test_dir = _image_dirs(root)
    parts = {}
    for split, names in LISTS.items():
        image_dir = train_dir if split == "train" else test_dir
        parts[split] = [r for name in names for r in _read_list(root / name, image_dir, split)]
        if check_images:
            check_readable([r.path for r in parts[split]])
    return ReidDataset("msmt17", root, parts["train"], parts["query"], parts["gallery"])
