"""Refining a whole dataset with a trained generator G (generated -> real camera domain).

The output keeps the source's layout exactly: the same folders and file names (so ids, cameras
and splits), its masks, keypoints and metadata copied as they are; only the images change. A crop
is resized to the refiner's size, translated, and resized back to its own size: re-id crops of
one dataset share an aspect ratio close to the refiner's (2:1), so resizing distorts little,
while padding would spend the refiner's pixels on borders it never saw in training.
Images already written are skipped, so an interrupted run resumes; every write is atomic and
goes through the same writer as the farm's export (`datasets/writer.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from synthreid.datasets import open_dataset
from synthreid.datasets.writer import copy_file, mirror_folder, mirrored, save_image
from synthreid.device import compute
from synthreid.errors import RefineError
from synthreid.made_by import MARKER, claim_folder, file_digest
from synthreid.progress import Reporter, report
from synthreid.refine.config import RefinerConfig
from synthreid.refine.data import load_image, to_image
from synthreid.refine.method import build_generator
from synthreid.refine.networks import CHANNELS_LAST
from synthreid.torch_files import read_torch_file
from synthreid.typed import validate_model


@dataclass
class RefineResult:
    out: Path
    refined: int  # images written by this call
    skipped: int  # already there (resumed)
    copied: int  # other files (masks, metadata) copied as they are


def load_refiner(checkpoint: str | Path, device: torch.device):
    state = read_torch_file(checkpoint, "refiner checkpoint", RefineError)
    if not isinstance(state, dict) or "G" not in state or "config" not in state:
        raise RefineError(f"{checkpoint}: not a refiner checkpoint (no G and config)")
    config = validate_model(RefinerConfig, state["config"], checkpoint)
    generator = build_generator(config)
    generator.load_state_dict(state["G"])
    return generator.to(device).eval(), config


def refine_dataset(checkpoint: str | Path, data: str, out: str | Path, batch_size: int = 16,
                   progress: Reporter | None = None, overwrite: bool = False) -> RefineResult:
    """Refine every image of `data` into `out`; an `out` holding images of another refiner
    checkpoint or source is refused unless `overwrite` (images are resumed only from the same)."""
    arithmetic = compute(channels_last=CHANNELS_LAST)
    generator, config = load_refiner(checkpoint, arithmetic.device)
    arithmetic.module(generator)
    dataset = open_dataset(data)
    root = dataset.root.resolve()
    out = mirror_folder(root, out, RefineError)
    claim_folder(out, {"command": "refine", "checkpoint_sha256": file_digest(checkpoint),
                       "source": str(root)}, overwrite, RefineError)
    records = dataset.train + dataset.validation + dataset.query + dataset.gallery
    images = {r.path.resolve() for r in records}
    todo = sorted(p for p in images if not mirrored(p, root, out).exists())
    copied = 0
    for path in sorted(root.rglob("*")):
        target = mirrored(path, root, out)
        if path.is_file() and path.resolve() not in images and not target.exists() and \
                path.name != MARKER:
            copy_file(path, target)
            copied += 1
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        batch = torch.stack([load_image(p, config.height, config.width) for p in chunk])
        with torch.no_grad(), arithmetic.autocast():
            refined = generator(arithmetic.images(batch)).float()
        for path, image in zip(chunk, refined):
            with Image.open(path) as original:
                size, image_format = original.size, original.format
            picture = to_image(image).resize(size, Image.BICUBIC)
            save_image(picture, mirrored(path, root, out), image_format)
        report(progress, "refining", start + len(chunk), len(todo))
    return RefineResult(out=out, refined=len(todo), skipped=len(images) - len(todo),
                        copied=copied)
