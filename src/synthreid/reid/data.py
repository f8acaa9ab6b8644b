"""Training data: image records to augmented tensors, and the samplers that order them.

Every random draw of an epoch comes from (seed, epoch): the order of the samples and, per
sample, its augmentation. A run resumed after epoch k therefore sees exactly the batches the
uninterrupted run saw, whatever the number of loader workers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from synthreid.datasets.records import ImageRecord
from synthreid.errors import ReidError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@dataclass(frozen=True)
class Augment:
    height: int = 256
    width: int = 128
    flip: bool = True
    pad: int = 10
    erasing: float = 0.0  # probability of random erasing


def load_resized(path, height: int, width: int) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255.0
    return (tensor - MEAN) / STD


def augment(pixels: np.ndarray, rng: np.random.Generator, options: Augment) -> torch.Tensor:
    if options.flip and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    if options.pad:
        p = options.pad
        padded = np.pad(pixels, ((p, p), (p, p), (0, 0)))
        top, left = rng.integers(0, 2 * p + 1, 2)
        pixels = padded[top:top + options.height, left:left + options.width]
    tensor = to_tensor(pixels)
    if options.erasing and rng.random() < options.erasing:
        area = options.height * options.width * rng.uniform(0.02, 0.4)
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        h = min(int(round(np.sqrt(area * aspect))), options.height)
        w = min(int(round(np.sqrt(area / aspect))), options.width)
        top = rng.integers(0, options.height - h + 1)
        left = rng.integers(0, options.width - w + 1)
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
        pixels = load_resized(record.path, self.options.height, self.options.width)
        return augment(pixels, np.random.default_rng(seed), self.options), record.pid


class EvalImages(Dataset):
    def __init__(self, records: list[ImageRecord], height: int, width: int) -> None:
        self.records, self.height, self.width = records, height, width

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(load_resized(self.records[index].path, self.height, self.width))


class EpochSampler(Sampler):
    """Base: an order of (index, augmentation seed) fixed by (seed, epoch)."""

    def __init__(self, seed: int) -> None:
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _with_seeds(self, order: list[int], rng: np.random.Generator):
        seeds = rng.integers(0, 2**31 - 1, len(order))
        return iter(list(zip((int(i) for i in order), (int(s) for s in seeds))))


class ShuffleSampler(EpochSampler):
    def __init__(self, size: int, batch: int, seed: int) -> None:
        super().__init__(seed)
        self.size, self.batch = size, batch

    def __len__(self) -> int:
        return self.size // self.batch * self.batch

    def __iter__(self):
        rng = self._rng()
        return self._with_seeds(rng.permutation(self.size)[:len(self)].tolist(), rng)


class IdentitySampler(EpochSampler):
    """P x K: batches of P identities with K images each (repeating images of small ids)."""

    def __init__(self, labels: list[int], p: int, k: int, seed: int) -> None:
        super().__init__(seed)
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

    def __len__(self) -> int:
        return self.batches_per_epoch * self.p * self.k

    def __iter__(self):
        rng = self._rng()
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
        return self._with_seeds([i for batch in batches for i in batch], rng)
