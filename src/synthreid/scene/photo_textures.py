"""Clothing textures cut from real photos (a realism lever): UnrealPerson found real clothing
textures the largest single step toward real data. From each training image of a real dataset
with person masks, an upper-garment patch (the torso band) and a lower-garment patch (the thigh
band) are cut by body proportions, the background inside them is filled from the nearest
person pixel, and each is mirrored side by side so it wraps around a garment without a seam.

    synthreid textures --data market1501:/data/market --out textures/market

The library (`upper/*.png`, `lower/*.png`, `library.json`) then feeds generation:
`clothes: {photo_textures: {folder: textures/market, probability: 0.5}}`. Only the dataset's
training split is opened: test ids never become textures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from synthreid import atomic
from synthreid.errors import DatasetError
from synthreid.progress import Reporter, report

# Rows of the person's box, as fractions from the top: torso and thighs (below the hands).
BANDS = {"upper": (0.24, 0.46), "lower": (0.60, 0.80)}
PATCH = 64  # each half of a patch is PATCH x PATCH pixels
MIN_COVER = 0.5  # a band must be at least this much person to become a patch


def cut_patches(rgb: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """{"upper": patch, "lower": patch} (PATCH x 2 PATCH x 3, seamless left to right) of one
    person crop; a band the mask covers too little of is left out."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) < 20 or len(cols) < 8:
        return {}
    top, height = rows[0], rows[-1] - rows[0] + 1
    patches = {}
    for name, (start, stop) in BANDS.items():
        y0, y1 = top + int(start * height), top + int(stop * height)
        band_mask = mask[y0:y1, cols[0]:cols[-1] + 1]
        # Keep the middle of the band's person columns: the arms and the edges are not cloth.
        inside = np.flatnonzero(band_mask.mean(axis=0) > 0.5)
        if len(inside) < 4:
            continue
        left, right = inside[len(inside) // 6], inside[-1 - len(inside) // 6] + 1
        region, region_mask = (rgb[y0:y1, cols[0]:cols[-1] + 1][:, left:right],
                               band_mask[:, left:right])
        if region_mask.size == 0 or region_mask.mean() < MIN_COVER:
            continue
        # Fill what is not person from the nearest person pixel.
        nearest = ndimage.distance_transform_edt(~region_mask, return_distances=False,
                                                 return_indices=True)
        filled = region[nearest[0], nearest[1]]
        square = np.asarray(Image.fromarray(filled).resize((PATCH, PATCH), Image.BICUBIC))
        patches[name] = np.concatenate([square, square[:, ::-1]], axis=1)
    return patches


@dataclass
class LibraryResult:
    out: Path
    upper: int
    lower: int
    skipped: int  # training images without a mask or with too little person in a band


def build_texture_library(data: str, out: str | Path,
                          progress: Reporter | None = None) -> LibraryResult:
    """Cut patches from every training image of `data` (which needs person masks: a Market
    export's, `masks: DIR` in a dataset YAML, or `synthreid masks`)."""
    from synthreid.datasets import open_dataset

    dataset = open_dataset(data, check_images=False)  # its test images are never opened
    out = Path(out)
    if not dataset.train:
        raise DatasetError(f"{data}: no training images to cut textures from")
    if not any(r.mask for r in dataset.train):
        raise DatasetError(f"{data}: its training images have no person masks; make them with "
                           f"'synthreid masks' and give them as masks: DIR in a dataset YAML")
    counts, skipped, sources = {"upper": 0, "lower": 0}, 0, []
    for done, record in enumerate(dataset.train, start=1):
        if record.mask is None:
            skipped += 1
            continue
        try:
            with Image.open(record.path) as image, Image.open(record.mask) as mask:
                patches = cut_patches(np.asarray(image.convert("RGB")),
                                      np.asarray(mask.convert("L")) > 127)
        except (OSError, UnidentifiedImageError):
            raise DatasetError(f"{record.path}: not a readable image (or its mask)") from None
        skipped += len(patches) < 2
        stem = f"{record.pid:06d}_{record.path.stem}"
        for name, patch in patches.items():
            with atomic.atomic_path(out / name / f"{stem}.png") as tmp:
                Image.fromarray(patch).save(tmp, "PNG")
            counts[name] += 1
        if patches:
            sources.append({"image": str(record.path), "pid": record.pid,
                            "patches": sorted(patches)})
        report(progress, "textures", done, len(dataset.train))
    atomic.write_text(out / "library.json", json.dumps(
        {"data": data, "bands": BANDS, "sources": sources}, indent=1))
    return LibraryResult(out=out, upper=counts["upper"], lower=counts["lower"], skipped=skipped)


def library_patches(folder: str | Path, part: str) -> list[Path]:
    """A library's patches of one part ("upper" or "lower"), in a fixed order."""
    return sorted((Path(folder).expanduser() / part).glob("*.png"))
