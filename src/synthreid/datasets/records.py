"""The record every reader returns, the dataset they fill, and the checks they share."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from synthreid.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    pid: int  # the dataset's own person id (-1: junk, 0 in Market-style sets: distractor)
    camid: int
    split: str  # "train", "query", "gallery" (or "test" before a query/gallery split)
    mask: Path | None = None


@dataclass
class ReidDataset:
    name: str
    root: Path
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    cameras_assigned: bool = False  # True: the files carry no camera; the reader assigned them
    notes: list[str] = field(default_factory=list)
    validation: list[ImageRecord] = field(default_factory=list)  # held-out ids, when given
    # Ids that are not a person in this layout (Market-style distractors, 0): evaluation that
    # draws people (the thesis protocol) must not draw them. Negative ids are junk everywhere.
    distractor_ids: tuple[int, ...] = ()
    # True when the cameras are not real camera labels but drawn at random (synthetic exports)
    # or assigned by the reader: the thesis protocol then cannot keep cameras apart.
    random_cameras: bool = False

    @property
    def pseudo_cameras(self) -> bool:
        return self.random_cameras or self.cameras_assigned

    @property
    def train_ids(self) -> int:
        return len({r.pid for r in self.train})

    def summary(self) -> str:
        def ids(records: list[ImageRecord]) -> int:
            return len({r.pid for r in records})

        lines = [f"{self.name} ({self.root})",
                 f"  train   {ids(self.train):6} ids {len(self.train):8} images",
                 f"  query   {ids(self.query):6} ids {len(self.query):8} images",
                 f"  gallery {ids(self.gallery):6} ids {len(self.gallery):8} images"]
        if self.validation:
            lines.append(f"  val     {ids(self.validation):6} ids {len(self.validation):8} images")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def relabel(records: list[ImageRecord]) -> tuple[list[ImageRecord], dict[int, int]]:
    """Person ids mapped to 0..M-1 in sorted order, for a classifier; the one place this happens."""
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [replace(r, pid=mapping[r.pid]) for r in records], mapping


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check_readable(paths: list[Path]) -> None:
    """Decode each image whole (a truncated JPEG has a valid header); a damaged file stops the
    read with its path, before any training or evaluation starts."""
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DatasetError(f"{path}: unreadable image ({reason})") from None


def parse_names(paths: list[Path], pattern: re.Pattern, example: str,
                folder: Path) -> list[tuple[Path, int, int | None]]:
    """(path, pid, camid) from each file name; the first name that does not match stops it."""
    if not paths:
        raise DatasetError(f"{folder}: no images (expected files named like {example})")
    parsed = []
    for path in paths:
        match = pattern.search(path.name)
        if match is None:
            raise DatasetError(f"{path}: file name does not match {pattern.pattern} "
                               f"(expected names like {example})")
        groups = match.groupdict()
        camid = groups.get("camid")
        parsed.append((path, int(groups["pid"]), int(camid) if camid is not None else None))
    return parsed


def assign_cameras(records: list[ImageRecord]) -> list[ImageRecord]:
    """Cameras for datasets that have none: 1, 2, 1, 2, ... over each identity's images in name
    order, so every identity with two images has a cross-camera pair to evaluate."""
    seen: dict[int, int] = defaultdict(int)
    out = []
    for record in sorted(records, key=lambda r: (r.pid, str(r.path))):
        out.append(replace(record, camid=seen[record.pid] % 2 + 1))
        seen[record.pid] += 1
    return out


def split_query_gallery(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """One query per identity (its first image in the lowest camera); the rest is the gallery."""
    by_id: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_id[record.pid].append(record)
    query, gallery = [], []
    for pid in sorted(by_id):
        images = sorted(by_id[pid], key=lambda r: (r.camid, str(r.path)))
        query.append(replace(images[0], split="query"))
        gallery += [replace(r, split="gallery") for r in images[1:]]
    return query, gallery


def attach_masks(dataset: ReidDataset, folder: Path) -> ReidDataset:
    """Person masks from `folder`, by each image's path relative to the dataset root (as PNG);
    images without one keep what their reader found."""
    if not folder.is_dir():
        raise DatasetError(f"masks: folder {folder} not found")
    found = 0

    def with_mask(record: ImageRecord) -> ImageRecord:
        nonlocal found
        try:
            mask = folder / record.path.relative_to(dataset.root).with_suffix(".png")
        except ValueError:  # an image outside the root: no relative name to look up
            return record
        if not mask.is_file():
            return record
        found += 1
        return replace(record, mask=mask)

    for split in ("train", "validation", "query", "gallery"):
        setattr(dataset, split, [with_mask(r) for r in getattr(dataset, split)])
    total = sum(len(getattr(dataset, s)) for s in ("train", "validation", "query", "gallery"))
    dataset.notes.append(f"masks from {folder}: {found} of {total} images")
    return dataset
