"""Two-camera sets without a standard split: VIPeR (cam_a/, cam_b/, names like 001_45.bmp) and
PRID2011 single-shot (cam_a/, cam_b/, person_0001.png; only the first 200 ids appear in both).

Test ids are chosen by a seeded random half (VIPeR: 316 of 632) or a count (PRID2011: 100 of
the 200 paired ids, as in the usual protocol); queries come from cam_a, the gallery from cam_b
(PRID2011's gallery also holds cam_b's 549 unpaired people as distractors)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from synthreid.datasets.records import (
    ImageRecord,
    ReidDataset,
    check_readable,
    list_images,
    parse_names,
)
from synthreid.datasets.splits import draw_ids

VIPER_NAME = re.compile(r"^(?P<pid>\d+)_\d+")
PRID_NAME = re.compile(r"^person_(?P<pid>\d+)")


def _cameras(root: Path, pattern: re.Pattern, example: str,
             check_images: bool) -> dict[int, dict[int, Path]]:
    cameras = {}
    for camid, folder in ((1, root / "cam_a"), (2, root / "cam_b")):
        paths = list_images(folder)
        if check_images:
            check_readable(paths)
        cameras[camid] = {pid: path for path, pid, _ in parse_names(paths, pattern, example, folder)}
    return cameras


def _split(paired: list[int], test_count: int, seed: int) -> set[int]:
    return draw_ids(paired, test_count, np.random.default_rng(seed))


def read_viper(root: str | Path, seed: int = 0, check_images: bool = True) -> ReidDataset:
    root = Path(root).expanduser()
    cams = _cameras(root, VIPER_NAME, "001_45.bmp", check_images)
    paired = sorted(set(cams[1]) & set(cams[2]))
    test = _split(paired, len(paired) // 2, seed)
    train = [ImageRecord(cams[c][p], p, c, "train") for p in paired if p not in test for c in (1, 2)]
    query = [ImageRecord(cams[1][p], p, 1, "query") for p in sorted(test)]
    gallery = [ImageRecord(cams[2][p], p, 2, "gallery") for p in sorted(test)]
    return ReidDataset("viper", root, train, query, gallery,
                       notes=[f"random half split with seed {seed}"])


def read_prid2011(root: str | Path, seed: int = 0, test_count: int = 100,
                  check_images: bool = True) -> ReidDataset:
    root = Path(root).expanduser()
    if (root / "single_shot").is_dir():
        root = root / "single_shot"
    cams = _cameras(root, PRID_NAME, "person_0001.png", check_images)
    paired = [p for p in range(1, 201) if p in cams[1] and p in cams[2]]
    test = _split(paired, test_count, seed)
    train = [ImageRecord(cams[c][p], p, c, "train") for p in paired if p not in test for c in (1, 2)]
    query = [ImageRecord(cams[1][p], p, 1, "query") for p in sorted(test)]
    gallery = [ImageRecord(cams[2][p], p, 2, "gallery") for p in sorted(test)]
    gallery += [ImageRecord(path, p, 2, "gallery") for p, path in sorted(cams[2].items()) if p > 200]
    return ReidDataset("prid2011", root, train, query, gallery,
                       notes=[f"{len(test)} paired test ids chosen with seed {seed}"])
