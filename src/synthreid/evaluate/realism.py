"""How far a set of person crops is from a camera domain (the target's training crops),
computed on this machine with no downloaded weights; `synthreid fit` minimises it and refiners
log it at every checkpoint. Two measures, and their sum, compared by measurement
(`benchmarks/fit_recovery.py`):

- `statistics`: per-image statistics of what a camera and a scene do to a crop (colour and its
  spread, contrast, saturation, detail at three scales, JPEG blockiness, the crop's shape, where
  the light falls from top to bottom, edge orientation), standardised by the target's spread and
  compared as distributions by the kernel maximum mean discrepancy (MMD², Gretton et al. 2012)
  with a Gaussian kernel at the target's median distance.
- `random-features`: a fixed random-weight convolutional network's pooled activations, compared
  by the kernel inception distance (KID: unbiased MMD² with a cubic polynomial kernel).
- `combined` (the default): the sum of both as distances (the square roots of MMD² and KID),
  each divided by its value for a reference set (`calibrate`: the preset's own renders in fit,
  the unrefined images in a refiner), so each starts at 1 and neither one's units dominate.
  Measured on hidden settings (tests/test_fit.py), the statistics find the camera effects
  (resolution, defocus, JPEG) and miss the camera's pitch; the random features find the pitch
  and JPEG and miss the blurs; the plain sum of MMD² and KID lets KID's cubic kernel swamp the
  pitch; the sum of the square roots finds all four.

Both compare crops at one size, the target's median crop size, so a lower resolution shows as
missing detail, as it does in the target's own upsampled crops.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from synthreid.conv import Conv2d

STATISTICS_VERSION = 1  # bump when a statistic changes: cached distances are then stale


def image_statistics(images: torch.Tensor) -> torch.Tensor:
    """(N, 10) statistics of images (N, 3, H, W) in [-1, 1]: mean and spread of each colour,
    luminance contrast, saturation, gradient energy, fine detail."""
    x = (images.float().clamp(-1, 1) + 1) / 2
    mean = x.mean(dim=(2, 3))
    std = x.std(dim=(2, 3))
    luminance = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    contrast = luminance.flatten(1).quantile(0.95, dim=1) - \
        luminance.flatten(1).quantile(0.05, dim=1)
    saturation = (x.max(dim=1).values - x.min(dim=1).values).mean(dim=(1, 2))
    dy = luminance[:, 1:, :] - luminance[:, :-1, :]
    dx = luminance[:, :, 1:] - luminance[:, :, :-1]
    gradient = dy.abs().mean(dim=(1, 2)) + dx.abs().mean(dim=(1, 2))
    # What is left after a 3x3 box blur: sensor noise, JPEG ringing, texture.
    blurred = torch.nn.functional.avg_pool2d(luminance[:, None], 3, 1, 1,
                                             count_include_pad=False)[:, 0]
    detail = (luminance - blurred).abs().mean(dim=(1, 2))
    return torch.cat([mean, std, torch.stack([contrast, saturation, gradient, detail], 1)], 1)


def median_bandwidth(samples: torch.Tensor) -> float:
    """The median squared pairwise distance of samples (n, d): the Gaussian kernel's scale."""
    distances = torch.cdist(samples.double(), samples.double()) ** 2
    positive = distances[distances > 0]
    return float(positive.median()) if len(positive) else 1.0


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Biased MMD² between samples x (n, d) and y (m, d), Gaussian kernel at `bandwidth`."""
    pooled = torch.cat([x, y]).double()
    kernel = torch.exp(-torch.cdist(pooled, pooled) ** 2 / bandwidth)
    n = len(x)
    return float(kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean())


def common_size(images: list[np.ndarray]) -> tuple[int, int]:
    """(height, width): the median crop height, and the median aspect ratio at it."""
    heights = np.array([i.shape[0] for i in images], dtype=float)
    aspects = np.array([i.shape[1] / i.shape[0] for i in images])
    height = int(round(np.median(heights) / 8)) * 8 or 8
    return height, max(8, int(round(height * np.median(aspects) / 8)) * 8)


def _batch(images: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    height, width = size
    resized = [np.asarray(Image.fromarray(i).resize((width, height), Image.BILINEAR))
               for i in images]
    return torch.from_numpy(np.stack(resized).astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1


def _blockiness(image: np.ndarray) -> float:
    """JPEG's 8x8 grid: luminance steps across block borders against steps inside blocks."""
    grey = image.astype(np.float32).mean(axis=-1)
    steps = np.abs(np.diff(grey, axis=1))
    if steps.shape[1] < 16:
        return 1.0
    columns = np.arange(steps.shape[1])
    border = steps[:, columns % 8 == 7].mean()
    inside = steps[:, columns % 8 != 7].mean()
    return float(border / (inside + 1e-3))


def _detail(luminance: torch.Tensor, size: int) -> torch.Tensor:
    blurred = torch.nn.functional.avg_pool2d(luminance[:, None], size, 1, size // 2,
                                             count_include_pad=False)[:, 0]
    return (luminance - blurred).abs().mean(dim=(1, 2))


def crop_statistics(images: list[np.ndarray], batch: torch.Tensor) -> torch.Tensor:
    """(N, d) statistics of RGB uint8 crops of any size and of `batch`, the same crops at the
    common size."""
    x = (batch + 1) / 2
    luminance = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    bands = torch.stack([b.mean(dim=(1, 2)) for b in luminance.chunk(4, dim=1)], 1)
    dy = (luminance[:, 1:, :] - luminance[:, :-1, :]).abs().mean(dim=(1, 2))
    dx = (luminance[:, :, 1:] - luminance[:, :, :-1]).abs().mean(dim=(1, 2))
    native = torch.tensor([[_blockiness(i), i.shape[1] / i.shape[0]] for i in images])
    return torch.cat([image_statistics(batch), bands, _detail(luminance, 5)[:, None],
                      _detail(luminance, 9)[:, None], (dx / (dy + 1e-4))[:, None], native], 1)


class RandomFeatures(torch.nn.Module):
    """Four strided conv layers with fixed random weights; each layer's channels, pooled."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = (3, 32, 64, 128, 256)
        self.layers = torch.nn.ModuleList()
        for inputs, outputs in zip(widths, widths[1:]):
            conv = Conv2d(inputs, outputs, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator)
                                  * (2 / (inputs * 9)) ** 0.5)
                conv.bias.zero_()
            self.layers.append(conv)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for layer in self.layers:
            x = torch.relu(layer(x))
            pooled += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        return torch.cat(pooled, 1)


def kid(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² with the kernel (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    x, y = x.double(), y.double()
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                 + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


class _Measure:
    """One description of crops (statistics or random features), standardised by the
    target's spread, and its distance to the target's."""

    def __init__(self, kind: str, target: list[np.ndarray], batch: torch.Tensor) -> None:
        self.network = RandomFeatures() if kind == "random-features" else None
        described = self._describe(target, batch)
        self.centre = described.mean(dim=0)
        self.scale = described.std(dim=0).clamp_min(1e-3)
        self.target = self._standard(described)
        self.bandwidth = median_bandwidth(self.target)  # fixed: distances stay comparable

    def _describe(self, images: list[np.ndarray], batch: torch.Tensor) -> torch.Tensor:
        if self.network is None:
            return crop_statistics(images, batch)
        return torch.cat([self.network(batch[i:i + 64]) for i in range(0, len(batch), 64)])

    def _standard(self, described: torch.Tensor) -> torch.Tensor:
        return (described - self.centre) / self.scale

    def distance(self, images: list[np.ndarray], batch: torch.Tensor) -> float:
        described = self._standard(self._describe(images, batch))
        if self.network is None:
            return mmd(described, self.target, self.bandwidth)
        return kid(described, self.target)


class Objective:
    """The target's description, computed once; `distance(crops)` for any set of crops.
    `combined` needs `calibrate(preset_crops)` before its first distance."""

    def __init__(self, name: str, target: list[np.ndarray]) -> None:
        if len(target) < 2:
            raise ValueError("the objective needs at least 2 target crops")
        self.size = common_size(target)
        batch = _batch(target, self.size)  # resized once, for every measure
        kinds = ("statistics", "random-features") if name == "combined" else (name,)
        self.measures = [_Measure(kind, target, batch) for kind in kinds]
        self.references: list[float] | None = None if name == "combined" else [1.0]

    @property
    def calibrated(self) -> bool:
        return self.references is not None

    def calibrate(self, preset_crops: list[np.ndarray]) -> None:
        batch = _batch(preset_crops, self.size)
        self.references = [max(_root(m.distance(preset_crops, batch)), 1e-6)
                           for m in self.measures]

    def distance(self, images: list[np.ndarray]) -> float:
        if self.references is None:
            raise RuntimeError("a combined objective is calibrated on the preset's renders "
                               "before its first distance")
        batch = _batch(images, self.size)  # resized once, for every measure
        if len(self.measures) == 1:
            return self.measures[0].distance(images, batch)
        return sum(_root(m.distance(images, batch)) / r
                   for m, r in zip(self.measures, self.references))


def _root(squared: float) -> float:
    """A squared distance's root (KID's unbiased estimate may dip below 0: that is 0)."""
    return max(squared, 0.0) ** 0.5
