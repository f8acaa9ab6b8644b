"""Images for refiner training and use: the training split only, resized to the refiner's size,
as tensors in [-1, 1] (the generator's tanh range), with person masks where the dataset has them.

Batches are drawn from (seed, iteration), so a resumed run sees exactly the images (and flips)
the uninterrupted run saw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from synthreid.datasets import ImageRecord, open_dataset
from synthreid.datasets.images import load_resized
from synthreid.datasets.records import check_readable
from synthreid.errors import RefineError


def training_records(spec: str) -> list[ImageRecord]:
    """The training split of a dataset, and nothing else: never its query, gallery or
    validation images (only these are even opened)."""
    dataset = open_dataset(spec, check_images=False)
    if not dataset.train:
        raise RefineError(f"{spec}: no training images")
    check_readable([r.path for r in dataset.train])
    return dataset.train


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """RGB uint8 pixels (H, W, 3) to a (3, H, W) tensor in [-1, 1], the generators' range."""
    return torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1.0


def to_image(tensor: torch.Tensor) -> Image.Image:
    pixels = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return Image.fromarray(pixels.permute(1, 2, 0).numpy().astype(np.uint8))


def load_image(path, height: int, width: int) -> torch.Tensor:
    return to_tensor(load_resized(path, height, width))


def load_mask(path, height: int, width: int) -> torch.Tensor:
    with Image.open(path) as mask:
        resized = mask.convert("L").resize((width, height), Image.NEAREST)
    return torch.from_numpy((np.asarray(resized) > 127).astype(np.float32))[None]


@dataclass
class Domain:
    """One side of the unpaired translation (A: generated, B: real)."""

    records: list[ImageRecord]
    height: int
    width: int

    @property
    def has_masks(self) -> bool:
        return all(r.mask is not None for r in self.records)

    def load(self, indices: list[int], flips: list[bool] | None = None):
        """(images, masks or None) for these records, flipped where asked."""
        images, masks = [], []
        for n, index in enumerate(indices):
            record = self.records[index]
            image = load_image(record.path, self.height, self.width)
            mask = load_mask(record.mask, self.height, self.width) if self.has_masks else None
            if flips is not None and flips[n]:
                image = image.flip(-1)
                mask = mask.flip(-1) if mask is not None else None
            images.append(image)
            masks.append(mask)
        return torch.stack(images), (torch.stack(masks) if self.has_masks else None)

    def batch(self, rng: np.random.Generator, size: int, flip: bool):
        indices = rng.integers(len(self.records), size=size).tolist()
        flips = (rng.random(size) < 0.5).tolist() if flip else None
        return self.load(indices, flips)
