"""COCO person-keypoint annotations (the 17 COCO keypoints, boxes and areas from person masks),
as preview folders and exports write them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid import atomic

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def coco_document(images: list[dict], annotations: list[dict]) -> dict:
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": list(COCO17), "skeleton": SKELETON}]}


def coco_entry(image_id: int, file_name: str, mask: np.ndarray, xyv: list,
               character_index: int) -> tuple[dict, dict]:
    """One image and its person annotation: keypoints, box and area from the person mask.
    `person_id` is the dataset's person id (character + 1, as exports name files)."""
    ys, xs = np.nonzero(mask)
    bbox = ([int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
             int(ys.max() - ys.min() + 1)] if len(xs) else [0, 0, 0, 0])
    image = {"id": image_id, "file_name": file_name, "width": int(mask.shape[1]),
             "height": int(mask.shape[0])}
    annotation = {"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                  "keypoints": [v for point in xyv for v in point],
                  "num_keypoints": sum(1 for point in xyv if point[2] > 0),
                  "bbox": bbox, "area": int(mask.sum()),
                  "person_id": character_index + 1, "character_id": character_index}
    return image, annotation


def read_mask(source) -> np.ndarray:
    """A mask PNG (path or file object) as a boolean array."""
    with Image.open(source) as mask_image:
        return np.asarray(mask_image.convert("L")) > 127


def coco_keypoints(records: list[dict], images_dir: Path, masks_dir: Path, out_path: Path) -> Path:
    images, annotations = [], []
    for image_id, record in enumerate(sorted(records, key=lambda r: r["stem"]), start=1):
        stem = record["stem"]
        image, annotation = coco_entry(image_id, f"{images_dir.name}/{stem}.png",
                                       read_mask(masks_dir / f"{stem}.png"),
                                       record["keypoints"]["xyv"],
                                       record["character"]["character_id"])
        images.append(image)
        annotations.append(annotation)
    return atomic.write_text(out_path, json.dumps(coco_document(images, annotations)))
