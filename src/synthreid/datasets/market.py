"""Market-1501 layout: bounding_box_train/, bounding_box_test/, query/ with names like
0002_c1s1_000451_03.jpg. DukeMTMC-reID, CUHK03-NP and our synthetic export share it; the export
adds bounding_box_val/ (held-out validation ids) and masks/. Id -1 is junk and id 0 a
distractor (not a person), so neither trains and the thesis protocol never draws them. The
`synthetic` layout's cameras are pseudo-cameras drawn at random by the export."""

from __future__ import annotations

import re
from pathlib import Path

from synthreid.datasets.records import (
    ImageRecord,
    ReidDataset,
    check_readable,
    list_images,
    parse_names,
)

MARKET_NAME = re.compile(r"^(?P<pid>-?\d+)_c(?P<camid>\d+)")
FOLDERS = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}
VALIDATION_FOLDER = "bounding_box_val"  # our export's held-out validation ids
MASK_FOLDER = "masks"  # our export's person masks, a PNG per image stem
EXAMPLES = {"market1501": "0001_c1s1_000001_00.jpg", "dukemtmc": "0001_c2_f0046182.jpg",
            "cuhk03-np": "0001_c1_1.png", "synthetic": "0001_c1_000001_000.png"}


def read_market_layout(root: str | Path, name: str = "market1501",
                       check_images: bool = True) -> ReidDataset:
    root = Path(root).expanduser()
    example = EXAMPLES.get(name, EXAMPLES["market1501"])
    parts: dict[str, list[ImageRecord]] = {}
    folders = dict(FOLDERS)
    if (root / VALIDATION_FOLDER).is_dir():
        folders["validation"] = VALIDATION_FOLDER
    for split, folder_name in folders.items():
        folder = root / folder_name
        paths = list_images(folder)
        if check_images:
            check_readable(paths)
        masks = root / MASK_FOLDER
        records = []
        for path, pid, camid in parse_names(paths, MARKET_NAME, example, folder):
            if split in ("train", "validation") and pid <= 0:
                continue  # junk (-1) and distractors (0) never train
            mask = masks / f"{path.stem}.png"
            records.append(ImageRecord(path, pid, camid, split,
                                       mask if mask.exists() else None))
        parts[split] = records
    return ReidDataset(name, root, parts["train"], parts["query"], parts["gallery"],
                       validation=parts.get("validation", []), distractor_ids=(0,),
                       random_cameras=name == "synthetic")
