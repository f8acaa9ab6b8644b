"""Images for refiner training and use: the training split only, as tensors in [-1, 1] (the
generator's tanh range), with person masks where the dataset has them. Either squeezed to the
refiner's height x width, or (aspect "keep") scaled to its height at their own aspect ratio,
the geometry `refine` applies G at: generated crops are narrower than real ones (about 46x128
against PRID's 64x128), so a squeezed G learns on people two fifths wider than those it refines.

Batches are drawn from (seed, iteration), so a resumed run sees exactly the images (and flips)
the uninterrupted run saw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from synthreid.datasets import ImageRecord, open_dataset
from synthreid.datasets.images import load_resized
from synthreid.datasets.records import check_readable
from synthreid.errors import RefineError

MIN_GENERATOR_WIDTH = 16  # 4 after G's two stride-2 stages, room for its mirror padding
MIN_CRITIC_WIDTH = 32  # the 70x70 PatchGAN's three stride-2 stages and two 4x4 convolutions


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


def refiner_width(size: tuple[int, int], height: int) -> int:
    """The width of a (width, height) crop scaled to the refiner's `height`, aspect kept."""
    return max(1, round(size[0] * height / size[1]))


def scale_to_height(picture: Image.Image, height: int) -> Image.Image:
    """A crop at the refiner's height, its aspect kept (as it is when the height matches)."""
    scaled = (refiner_width(picture.size, height), height)
    return picture if picture.size == scaled else picture.resize(scaled, Image.BICUBIC)


def load_kept(path, height: int) -> torch.Tensor:
    with Image.open(path) as image:
        return to_tensor(np.asarray(scale_to_height(image.convert("RGB"), height)))


def pad_to_width(images: torch.Tensor, minimum: int) -> tuple[torch.Tensor, int]:
    """(images mirror-padded on both sides to a multiple of 4 of at least `minimum` pixels, the
    left padding): G's two stride-2 stages need a multiple of 4, the 70x70 PatchGAN 32 pixels.
    Mirrored pixels, not zeros: G never saw black borders."""
    width = images.shape[-1]
    pad = max(minimum, width + -width % 4) - width
    if pad:
        mode = "reflect" if pad < width else "replicate"
        images = F.pad(images, (pad // 2, pad - pad // 2, 0, 0), mode=mode)
    return images, pad // 2


def translate_padded(translate, images: torch.Tensor) -> torch.Tensor:
    """`translate` (a generator, or any images-to-images function) applied to images of one
    width, padded for G (`pad_to_width`) and cut back to that width."""
    width = images.shape[-1]
    padded, left = pad_to_width(images, MIN_GENERATOR_WIDTH)
    return translate(padded)[..., left:left + width]


@dataclass
class Domain:
    """One side of the unpaired translation (A: generated, B: real), squeezed to height x width
    or, with `keep_aspect`, at the height and each image's own aspect."""

    records: list[ImageRecord]
    height: int
    width: int
    keep_aspect: bool = False

    @property
    def has_masks(self) -> bool:
        return all(r.mask is not None for r in self.records)

    def load_one(self, index: int, flip: bool = False):
        """(image, mask or None) of one record; at its own aspect with `keep_aspect`."""
        record = self.records[index]
        if self.keep_aspect:
            image = load_kept(record.path, self.height)
            mask = load_mask(record.mask, *image.shape[-2:]) if self.has_masks else None
        else:
            image = load_image(record.path, self.height, self.width)
            mask = load_mask(record.mask, self.height, self.width) if self.has_masks else None
        if flip:
            image = image.flip(-1)
            mask = mask.flip(-1) if mask is not None else None
        return image, mask

    def load(self, indices: list[int], flips: list[bool] | None = None):
        """(images, masks or None) for these records, flipped where asked, as one batch; with
        `keep_aspect` a batch of one, padded for the networks (`pad_to_width`; masks with
        zeros: the padding is no person)."""
        if self.keep_aspect and len(indices) != 1:
            raise RefineError(f"images at their own aspect batch one at a time, not "
                              f"{len(indices)}")
        images, masks = [], []
        for n, index in enumerate(indices):
            image, mask = self.load_one(index, flips is not None and flips[n])
            images.append(image)
            masks.append(mask)
        batch = torch.stack(images)
        mask_batch = torch.stack(masks) if self.has_masks else None
        if self.keep_aspect:
            batch, left = pad_to_width(batch, MIN_CRITIC_WIDTH)
            if mask_batch is not None:
                right = batch.shape[-1] - mask_batch.shape[-1] - left
                mask_batch = F.pad(mask_batch, (left, right, 0, 0))
        return batch, mask_batch

    def batch(self, rng: np.random.Generator, size: int, flip: bool):
        indices = rng.integers(len(self.records), size=size).tolist()
        flips = (rng.random(size) < 0.5).tolist() if flip else None
        return self.load(indices, flips)
