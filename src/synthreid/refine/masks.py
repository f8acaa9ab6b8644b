"""Person masks for real images, from mediapipe's selfie-segmentation model (it ships inside
the `mediapipe==0.10.14` wheel: nothing is downloaded at run time).

PTGAN's identity term needs a mask per real image. `write_masks` writes one PNG per image of a
dataset into a folder, by the image's path relative to the dataset root, which is what a dataset
YAML's `masks: DIR` reads back. The model wants a square input: a tall re-id crop is padded to a
square (edge pixels repeated) rather than squashed, which keeps a person's proportions as the
model saw them in training (benchmarks/mask_quality.py measures both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthreid.datasets import open_dataset
from synthreid.datasets.writer import mirror_folder, mirrored, save_image
from synthreid.errors import RefineError
from synthreid.progress import Reporter, report

THRESHOLD = 0.5  # the model's person confidence at which a pixel counts as person


class PersonSegmenter:
    """mediapipe's general selfie-segmentation model (256x256 input), one image at a time."""

    def __init__(self, pad_square: bool = True):
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's start-up chatter
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except ImportError:
            raise RefineError('person masks need the masks extra: pip install '
                              '"synthreid[masks]" (mediapipe 0.10.14)') from None

        self._model = selfie_segmentation.SelfieSegmentation(model_selection=0)
        self.pad_square = pad_square

    def __enter__(self) -> PersonSegmenter:
        return self

    def __exit__(self, *exc) -> None:
        self._model.close()

    def confidence(self, rgb: np.ndarray) -> np.ndarray:
        """Per-pixel person confidence in [0, 1] for an HxWx3 uint8 image."""
        height, width = rgb.shape[:2]
        if not self.pad_square or height == width:
            return self._model.process(np.ascontiguousarray(rgb)).segmentation_mask
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        square = np.pad(rgb, ((top, side - height - top), (left, side - width - left), (0, 0)),
                        mode="edge")
        mask = self._model.process(square).segmentation_mask
        return mask[top:top + height, left:left + width]

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        return self.confidence(rgb) >= THRESHOLD


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@dataclass
class MasksResult:
    out: Path
    written: int
    skipped: int  # already there (resumed)
    empty: int  # images where the model found no person (an all-black mask is written)


SPLITS = ("train", "validation", "query", "gallery")


def write_masks(data: str, out: str | Path, progress: Reporter | None = None,
                splits: tuple[str, ...] = SPLITS) -> MasksResult:
    """A PNG mask (255 person, 0 background) for every image of `data`'s `splits` under `out`,
    by its path relative to the dataset root. Masks already there are kept, so a stopped run
    resumes. Images of other splits are never opened."""
    if not splits or set(splits) - set(SPLITS):
        raise RefineError(f"splits: expected some of {', '.join(SPLITS)}, got {splits}")
    dataset = open_dataset(data, check_images=False)
    root = dataset.root.resolve()
    out = mirror_folder(root, out, RefineError)
    records = [r for split in splits for r in getattr(dataset, split)]
    images = sorted({r.path.resolve() for r in records})
    todo = [p for p in images if not mirrored(p, root, out, ".png").exists()]
    empty = 0
    with PersonSegmenter() as segmenter:
        for done, path in enumerate(todo, start=1):
            try:
                rgb = read_rgb(path)
            except (OSError, UnidentifiedImageError):
                raise RefineError(f"{path}: not a readable image") from None
            mask = segmenter.mask(rgb)
            empty += not mask.any()
            picture = Image.fromarray(mask.astype(np.uint8) * 255)
            save_image(picture, mirrored(path, root, out, ".png"), "png")
            report(progress, "masks", done, len(todo))
    return MasksResult(out=out, written=len(todo), skipped=len(images) - len(todo), empty=empty)
