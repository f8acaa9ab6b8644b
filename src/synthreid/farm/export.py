"""Export a finished run as a dataset in Market-1501 layout.

    OUT/bounding_box_train/  OUT/bounding_box_val/  OUT/bounding_box_test/  OUT/query/
    OUT/masks/  OUT/keypoints.json (COCO)  OUT/metadata.csv  OUT/split.json

As in the thesis, 100 test ids and 100 validation ids are held out (fewer for small runs: a
quarter of the ids each), and each image gets one of two pseudo-cameras at random; both draws
come from the run's seed. File names are `PPPP_cC_CCCCCCIII.jpg` (person id = character + 1,
since 0000 means "distractor" in Market-1501); JPEG by default, as torchreid's and fast-reid's
Market-1501 readers take `*.jpg` only (they also assert ids <= 1501: a larger run exports fine
but needs our reader or a custom dataset class there). Masks stay lossless PNG.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError
from sqlalchemy import select

from synthreid import atomic
from synthreid.datasets.coco import coco_document, coco_entry, read_mask
from synthreid.datasets.records import ImageRecord, split_query_gallery
from synthreid.datasets.splits import hold_out
from synthreid.datasets.writer import (
    MARKET_FOLDERS,
    MASK_FOLDER,
    check_free,
    make_market_folders,
    market_stem,
    save_image,
    staged_folder,
    write_csv,
)
from synthreid.errors import JobError
from synthreid.farm.db import characters, connect, images, run_id, runs
from synthreid.farm.storage import Storage
from synthreid.farm.supervisor import run_status
from synthreid.seeds import RunStream

HELD_OUT = 100


def _split_ids(ids: list[int], seed: int) -> dict[str, set[int]]:
    held = min(HELD_OUT, len(ids) // 4)
    if held < 1:
        raise JobError(f"export needs at least 4 finished characters, the run has {len(ids)}")
    rng = np.random.default_rng([seed, RunStream.EXPORT_SPLIT])
    (test, val), train = hold_out(ids, [held, held], rng)
    return {"test": test, "val": val, "train": train}


def _hex(colour: list[float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


def _metadata_row(name: str, split: str, pid: int, camid: int, spec: dict, view: dict) -> dict:
    body, camera = spec["body"], view["camera"]
    direction = camera["direction"]
    garments = {g["kind"]: g for g in spec["garments"]}
    lower = garments.get("pants") or garments.get("skirt")
    return {
        "file": name, "split": split, "pid": pid, "camid": camid,
        "character": spec["character_id"], "image": view["image_index"],
        "female": body["female"], "age_years": round(body["age_years"], 2),
        "height_m": round(body["height_m"], 3), "muscle": round(body["muscle"], 3),
        "weight": round(body["weight"], 3), "proportions": round(body["proportions"], 3),
        "skin_tone": _hex(body["skin_tone"]),
        "shirt_colour": _hex(garments["shirt"]["colour"]),
        "shirt_texture": (garments["shirt"]["texture"] or {}).get("family", ""),
        "sleeve_length": round(garments["shirt"]["length"], 3),
        "lower": lower["kind"], "lower_length": round(lower["length"], 3),
        "lower_colour": _hex(lower["colour"]),
        "lower_texture": (lower["texture"] or {}).get("family", ""),
        "shoes": "shoes" in garments, "hair": spec["hair"]["style"],
        "accessories": " ".join(a["kind"] for a in spec["accessories"]),
        "room": spec["room"]["kind"], "background": spec["room"]["background"] or "",
        "camera_polar_deg": round(math.degrees(math.acos(direction[2])), 2),
        "camera_azimuth_deg": round(math.degrees(math.atan2(direction[1], direction[0])), 2),
        "focal_mm": round(camera["focal_mm"], 2), "gait_phase": round(view["gait_phase"], 3),
        "heading": round(view["heading"], 3),
    }


def export_run(db_url: str, storage_url: str, run_name: str, out: str | Path,
               allow_failed: bool = False, image_format: str = "jpg",
               quality: int = 95) -> Path:
    """Write the run's images (JPEG by default, as Market-1501 readers glob `*.jpg`; or PNG) with
    PNG masks. Every file is checked against the checksum its worker verified on upload."""
    if image_format not in ("jpg", "png"):
        raise JobError(f"--format: expected jpg or png, got {image_format!r}")
    if not 1 <= quality <= 100:
        raise JobError(f"--quality: expected 1 to 100, got {quality}")
    out = check_free(out)
    engine = connect(db_url, create=False)
    run = run_id(engine, run_name)
    status = run_status(engine, run)
    if not status.planned_whole:
        raise JobError(f"run {run_name!r} is not whole: planning stopped at "
                       f"{status.characters_stored} of {status.characters_planned} characters; "
                       f"run the same 'synthreid plan' again to finish it")
    if status.outstanding or (status.jobs.get("failed") and not allow_failed):
        raise JobError(f"run {run_name!r} is not finished: {status.jobs}; render it first"
                       + ("" if allow_failed else " (or export with --allow-failed)"))
    storage = Storage(storage_url, create=False)
    with engine.connect() as connection:
        seed = connection.execute(select(runs.c.seed).where(runs.c.id == run)).scalar()
        rows = connection.execute(
            select(characters.c.index, characters.c.spec, images.c.index.label("image"),
                   images.c.spec.label("view"), images.c.storage_key, images.c.sha256,
                   images.c.record)
            .join(images, images.c.character_id == characters.c.id)
            .where(characters.c.run_id == run, images.c.status == "done")
            .order_by(characters.c.index, images.c.index)).mappings().all()
    splits = _split_ids(sorted({r["index"] for r in rows}), seed)
    rng = np.random.default_rng([seed, RunStream.EXPORT_CAMERAS])
    cams = rng.integers(1, 3, len(rows))
    stems = [market_stem(r["index"] + 1, int(c), r["index"], r["image"])
             for r, c in zip(rows, cams)]
    # Each test id's query is chosen as every reader chooses it: its first image in the lowest
    # camera; the rest of its images are the gallery.
    test = [ImageRecord(Path(stem), r["index"] + 1, int(c), "test")
            for r, c, stem in zip(rows, cams, stems) if r["index"] in splits["test"]]
    queries = {str(r.path) for r in split_query_gallery(test)[0]}
    with staged_folder(out) as staging:
        folders = make_market_folders(staging)
        metadata, coco_images, coco_annotations = [], [], []
        for row, camid, stem in zip(rows, cams, stems):
            index, pid = row["index"], row["index"] + 1
            split = next(s for s, members in splits.items() if index in members)
            if split == "test":
                split = "query" if stem in queries else "gallery"
            name = f"{stem}.{image_format}"
            rgb = storage.read_verified(row["storage_key"], row["sha256"])
            save_image(rgb, folders[split] / name, image_format, quality)
            mask_key = row["storage_key"].removesuffix(".png") + ".mask.png"
            mask, person = verified_mask(storage, mask_key, row["record"])
            atomic.write_bytes(staging / MASK_FOLDER / f"{stem}.png", mask)
            metadata.append(_metadata_row(name, split, pid, int(camid), row["spec"], row["view"]))
            image, annotation = coco_entry(len(coco_images) + 1,
                                           f"{MARKET_FOLDERS[split]}/{name}", person,
                                           row["record"]["keypoints"]["xyv"], index)
            coco_images.append(image)
            coco_annotations.append(annotation)
        write_csv(staging / "metadata.csv", metadata)
        atomic.write_text(staging / "keypoints.json",
                          json.dumps(coco_document(coco_images, coco_annotations)))
        atomic.write_text(staging / "split.json", json.dumps(
            {k: sorted(i + 1 for i in v) for k, v in splits.items()}))
    return out


def verified_mask(storage: Storage, key: str, record: dict) -> tuple[bytes, np.ndarray]:
    """The mask's bytes, checked against its upload checksum (runs rendered before checksums
    were recorded have none), and the mask decoded."""
    expected = (record.get("sha256") or {}).get("mask")
    data = storage.read_verified(key, expected) if expected else storage.read(key)
    try:
        return data, read_mask(io.BytesIO(data))
    except (OSError, UnidentifiedImageError):
        raise JobError(f"storage {storage.url}: {key} is not a readable mask image") from None
