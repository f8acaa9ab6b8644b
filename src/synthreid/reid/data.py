"""Training data: image records to augmented tensors, and the samplers that order them.

Every random draw of an epoch comes from (seed, epoch): the order of the samples and, per
sample, its augmentation. A run resumed after epoch k therefore sees exactly the batches the
uninterrupted run saw, whatever the number of loader workers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from pydantic import Field
from torch.utils.data import Dataset, Sampler

from synthreid.datasets.images import load_resized
from synthreid.datasets.records import ImageRecord
from synthreid.errors import ReidError
from synthreid.limits import MAX_SIDE_PX
from synthreid.typed import Interval, Strict

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
INPUT_SIZE = {"inception": (144, 56), "resnet50": (256, 128)}  # Open-ReID's sizes per backbone


class ColourJitter(Strict):
    """Factors drawn uniformly in [1 - x, 1 + x] (hue: a shift in [-x, x] of the full circle)."""

    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(0.0, ge=0, le=1)
    hue: float = Field(0.0, ge=0, le=0.5)


class Augment(Strict):
    height: int | None = Field(None, ge=8, le=MAX_SIDE_PX)  # None: the backbone's (INPUT_SIZE)
    width: int | None = Field(None, ge=8, le=MAX_SIDE_PX)
    crop: Literal["pad", "rect", "none"] = "pad"  # rect: Open-ReID's RandomSizedRectCrop
    pad: int = Field(10, ge=0)  # crop "pad": zero padding, then a random crop back
    flip: bool = True
    colour_jitter: ColourJitter = ColourJitter()
    grayscale: float = Field(0.0, ge=0, le=1)  # probability
    blur: float = Field(0.0, ge=0, le=1)  # probability of a Gaussian blur
    blur_sigma: Interval = (0.1, 2.0)  # pixels
    erasing: float = Field(0.0, ge=0, le=1)  # probability of random erasing

    def used(self) -> list[str]:
        """The augmentations this config applies, by name (for logs and reports)."""
        names = []
        if self.crop == "rect" or (self.crop == "pad" and self.pad > 0):
            names.append(f"{self.crop}-crop")
        names += ["flip"] if self.flip else []
        names += [f"{k}-jitter" for k, v in self.colour_jitter.model_dump().items() if v]
        for name in ("grayscale", "blur", "erasing"):
            names += [name] if getattr(self, name) else []
        return names


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255.0
    return (tensor - MEAN) / STD


def random_sized_rect_crop(image: Image.Image, rng: np.random.Generator, height: int,
                           width: int) -> Image.Image:
    """Open-ReID's RandomSizedRectCrop: 64-100% of the area at an aspect (h/w) of 2-3, resized;
    after 10 failed tries, the whole image resized."""
    for _ in range(10):
        area = image.width * image.height * rng.uniform(0.64, 1.0)
        aspect = rng.uniform(2, 3)
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if w <= image.width and h <= image.height:
            left = int(rng.integers(0, image.width - w + 1))
            top = int(rng.integers(0, image.height - h + 1))
            return image.crop((left, top, left + w, top + h)).resize((width, height),
                                                                    Image.BILINEAR)
    return image.resize((width, height), Image.BILINEAR)


def _jitter(image: Image.Image, rng: np.random.Generator, jitter: ColourJitter) -> Image.Image:
    for amount, enhancer in ((jitter.brightness, ImageEnhance.Brightness),
                             (jitter.contrast, ImageEnhance.Contrast),
                             (jitter.saturation, ImageEnhance.Color)):
        if amount:
            image = enhancer(image).enhance(rng.uniform(1 - amount, 1 + amount))
    if jitter.hue:
        hsv = np.array(image.convert("HSV"))
        shift = int(round(rng.uniform(-jitter.hue, jitter.hue) * 255))
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
        image = Image.fromarray(hsv, "HSV").convert("RGB")
    return image


def augment(image: Image.Image, rng: np.random.Generator, options: Augment) -> torch.Tensor:
    """One training view of an image. Every draw comes from `rng`, seeded per sample and epoch."""
    height, width = options.height, options.width
    image = image.convert("RGB")
    if options.crop == "rect":
        image = random_sized_rect_crop(image, rng, height, width)
    else:
        image = image.resize((width, height), Image.BILINEAR)
    if options.flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = _jitter(image, rng, options.colour_jitter)
    if options.grayscale and rng.random() < options.grayscale:
        image = image.convert("L").convert("RGB")
    if options.blur and rng.random() < options.blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*options.blur_sigma)))
    pixels = np.asarray(image)
    if options.crop == "pad" and options.pad:
        p = options.pad
        padded = np.pad(pixels, ((p, p), (p, p), (0, 0)))
        top, left = rng.integers(0, 2 * p + 1, 2)
        pixels = padded[top:top + height, left:left + width]
    tensor = to_tensor(pixels)
    if options.erasing and rng.random() < options.erasing:
        area = height * width * rng.uniform(0.02, 0.4)
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        h = min(int(round(np.sqrt(area * aspect))), height)
        w = min(int(round(np.sqrt(area / aspect))), width)
        top = rng.integers(0, height - h + 1)
        left = rng.integers(0, width - w + 1)
        tensor[:, top:top + h, left:left + w] = torch.from_numpy(
            rng.normal(size=(3, h, w)).astype(np.float32))
    return tensor


class TrainImages(Dataset):
    """Indexed by (sample index, augmentation seed) pairs that the samplers yield."""

    def __init__(self, records: list[ImageRecord], options: Augment) -> None:
        self.records, self.options = records, options

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        record = self.records[index]
        with Image.open(record.path) as image:
            return augment(image, np.random.default_rng(seed), self.options), record.pid


class EvalImages(Dataset):
    def __init__(self, records: list[ImageRecord], height: int, width: int) -> None:
        self.records, self.height, self.width = records, height, width

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(load_resized(self.records[index].path, self.height, self.width))


class EpochSampler(Sampler):
    """Base: batches of (index, augmentation seed) fixed by (seed, epoch). Under distributed
    training, rank r of W takes batches r, r + W, ... (the same count on every rank), so each
    rank decodes only its own share and the augmentation of a sample does not depend on W."""

    def __init__(self, seed: int, batch: int) -> None:
        self.seed, self.batch, self.epoch = seed, batch, 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def batches(self) -> int:
        """Batches of the whole epoch, all ranks together."""
        raise NotImplementedError

    def _order(self, rng: np.random.Generator) -> list[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.batches() // self.world * self.batch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._order(rng)
        count = min(len(order) // self.batch, self.batches())  # full batches this epoch
        seeds = rng.integers(0, 2**31 - 1, count * self.batch)
        mine = list(range(self.rank, count, self.world))[:count // self.world]
        return iter([(int(order[i]), int(seeds[i])) for b in mine
                     for i in range(b * self.batch, (b + 1) * self.batch)])


class ShuffleSampler(EpochSampler):
    def __init__(self, size: int, batch: int, seed: int) -> None:
        super().__init__(seed, batch)
        self.size = size

    def batches(self) -> int:
        return self.size // self.batch

    def _order(self, rng: np.random.Generator) -> list[int]:
        return rng.permutation(self.size).tolist()


class IdentitySampler(EpochSampler):
    """P x K: batches of P identities with K images each (repeating images of small ids)."""

    def __init__(self, labels: list[int], p: int, k: int, seed: int) -> None:
        super().__init__(seed, p * k)
        if p < 2 or k < 1:
            raise ReidError(f"P x K sampler: need P >= 2 and K >= 1, got P={p}, K={k}")
        self.by_id: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            self.by_id[label].append(index)
        if len(self.by_id) < p:
            raise ReidError(f"P x K sampler: P={p} identities per batch, but the training set "
                            f"has only {len(self.by_id)}")
        self.p, self.k = p, k
        self.batches_per_epoch = sum(max(len(v) // k, 1) for v in self.by_id.values()) // p

    def batches(self) -> int:
        return self.batches_per_epoch

    def _order(self, rng: np.random.Generator) -> list[int]:
        chunks = []
        for label in sorted(self.by_id):
            images = list(rng.permutation(self.by_id[label]))
            while len(images) < self.k:
                images.append(images[rng.integers(len(self.by_id[label]))])
            chunks += [(label, images[i:i + self.k])
                       for i in range(0, len(images) - self.k + 1, self.k)]
        order = [chunks[i] for i in rng.permutation(len(chunks))]
        batches, pending = [], []
        for label, chunk in order:
            if any(label == other for other, _ in pending):
                continue  # one chunk per identity per batch
            pending.append((label, chunk))
            if len(pending) == self.p:
                batches.append([i for _, c in pending for i in c])
                pending = []
            if len(batches) == self.batches_per_epoch:
                break
        return [i for batch in batches for i in batch]
