"""Datasets in no standard layout: a folder per identity, or any files named by a pattern.

The pattern reader is the way in for everything else: a regular expression with named groups
`pid` (required) and `camid` (optional), matched against file names found recursively, e.g.
`(?P<pid>\\d{4})(?P<camid>\\d{3})\\.png` for PRID 450S. Which ids are for testing is given by
id ranges ("301-450,500"), a count or a fraction (drawn with a recorded seed), or a split file
(one test id per line). Without cameras in the names, cameras are assigned and the dataset says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from synthreid.datasets.records import (
    ImageRecord,
    ReidDataset,
    assign_cameras,
    check_readable,
    list_images,
    parse_names,
    split_query_gallery,
)
from synthreid.datasets.splits import draw_ids
from synthreid.errors import DatasetError

CAMERA_IN_NAME = re.compile(r"(?:^|_)c(?:am)?(?P<camid>\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class IdSplit:
    """Exactly one of: id ranges, a count, a fraction, a split file."""

    ranges: str | None = None
    count: int | None = None
    fraction: float | None = None
    file: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.ranges, self.count, self.fraction, self.file)]
        if sum(given) != 1:
            raise DatasetError("split: give exactly one of test id ranges, a count, a fraction "
                               "or a split file (e.g. --test-count 100)")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 1):
            raise DatasetError(f"split: count must be a whole number >= 1, got {self.count!r}")
        if self.fraction is not None and (not isinstance(self.fraction, (int, float))
                                          or not 0 < self.fraction < 1):
            raise DatasetError(f"split: fraction must lie in (0, 1), got {self.fraction!r}")
        if not isinstance(self.seed, int):
            raise DatasetError(f"split: seed must be a whole number, got {self.seed!r}")

    def test_ids(self, ids: list[int]) -> set[int]:
        if self.ranges is not None:
            return _parse_ranges(self.ranges) & set(ids)
        if self.file is not None:
            return _read_split_file(Path(self.file)) & set(ids)
        count = self.count if self.count is not None else round(self.fraction * len(ids))
        if not 0 < count < len(ids):
            raise DatasetError(f"split: {count} test ids of {len(ids)} leaves no train or no test")
        return draw_ids(ids, count, np.random.default_rng(self.seed))

    def describe(self) -> str:
        if self.ranges is not None:
            return f"test ids {self.ranges}"
        if self.file is not None:
            return f"test ids from {self.file}"
        amount = self.count if self.count is not None else f"{self.fraction:.0%}"
        return f"{amount} test ids drawn with seed {self.seed}"


def _parse_ranges(text: str) -> set[int]:
    ids: set[int] = set()
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise DatasetError(f"split: bad id range {part.strip()!r} (expected e.g. 301-450,500)")
        low, high = int(match[1]), int(match[2] or match[1])
        ids.update(range(low, high + 1))
    return ids


def _read_split_file(path: Path) -> set[int]:
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    ids = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            if not line.strip().lstrip("-").isdigit():
                raise DatasetError(f"{path}:{number}: expected one test id per line, got "
                                   f"{line.strip()!r}")
            ids.add(int(line))
    return ids


def _assemble(name: str, root: Path, records: list[ImageRecord], split: IdSplit,
              cameras_known: bool) -> ReidDataset:
    notes = [split.describe()]
    if not cameras_known:
        records = assign_cameras(records)
        notes.append("no camera ids in the file names: cameras 1, 2, 1, ... assigned per identity")
    test = split.test_ids(sorted({r.pid for r in records}))
    if not test:
        raise DatasetError(f"{root}: the split selects no test ids present in the data")
    train = [replace(r, split="train") for r in records if r.pid not in test]
    query, gallery = split_query_gallery([r for r in records if r.pid in test])
    return ReidDataset(name, root, train, query, gallery, cameras_assigned=not cameras_known,
                       notes=notes)


def read_pattern(root: str | Path, pattern: str, split: IdSplit,
                 check_images: bool = True) -> ReidDataset:
    root = Path(root).expanduser()
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise DatasetError(f"pattern {pattern!r}: not a regular expression ({error})") from None
    if "pid" not in regex.groupindex:
        raise DatasetError(f"pattern {pattern!r}: needs a named group (?P<pid>...)")
    paths = list_images(root, recursive=True)
    if check_images:
        check_readable(paths)
    parsed = parse_names(paths, regex, f"a name matching {pattern}", root)
    records = [ImageRecord(path, pid, camid or 0, "test") for path, pid, camid in parsed]
    return _assemble("pattern", root, records, split, "camid" in regex.groupindex)


def read_folders(root: str | Path, split: IdSplit, check_images: bool = True) -> ReidDataset:
    """One sub-folder per identity (any names; ids are their sorted order, from 1); a camera is
    read from names like `..._c2_...` or `cam2_...` when every file has one."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root}: expected one sub-folder of images per identity")
    records = []
    for pid, folder in enumerate(folders, start=1):
        paths = list_images(folder)
        if not paths:
            raise DatasetError(f"{folder}: identity folder holds no images")
        if check_images:
            check_readable(paths)
        for path in paths:
            match = CAMERA_IN_NAME.search(path.stem)
            records.append(ImageRecord(path, pid, int(match["camid"]) if match else 0, "test"))
    cameras_known = all(CAMERA_IN_NAME.search(r.path.stem) for r in records)
    return _assemble("folders", root, records, split, cameras_known)
