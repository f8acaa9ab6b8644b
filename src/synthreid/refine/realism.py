"""How far a set of images is from a camera domain, computed here with no downloaded weights:
per-image statistics of what a camera does to a picture (colour and its spread, luminance
contrast, sharpness, fine-grain noise), compared as distributions by the kernel maximum mean
discrepancy (MMD², Gretton et al. 2012) with a Gaussian kernel at the median distance.

The statistics are standardised by the target's spread, so no one statistic's units dominate.
0 means the two sets' statistics are alike; a refiner that learns the target cameras lowers it.
"""

from __future__ import annotations

import torch

STATISTICS = ("mean R", "mean G", "mean B", "std R", "std G", "std B", "luminance contrast",
              "saturation", "gradient energy", "fine detail")


def image_statistics(images: torch.Tensor) -> torch.Tensor:
    """(N, len(STATISTICS)) statistics of images (N, 3, H, W) in [-1, 1]."""
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
    return _median_positive(torch.cdist(samples.double(), samples.double()) ** 2)


def _median_positive(distances: torch.Tensor) -> float:
    positive = distances[distances > 0]
    return float(positive.median()) if len(positive) else 1.0


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> float:
    """Biased MMD² between samples x (n, d) and y (m, d), Gaussian kernel at `bandwidth`, by
    default the median pairwise distance of the pooled samples (a fixed one keeps distances to
    one target comparable across sets)."""
    pooled = torch.cat([x, y]).double()
    distances = torch.cdist(pooled, pooled) ** 2
    if bandwidth is None:
        bandwidth = _median_positive(distances)
    kernel = torch.exp(-distances / bandwidth)
    n = len(x)
    return float(kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean())


class RealismMeter:
    """The target's statistics, computed once; `distance(images)` for any set of images."""

    def __init__(self, target_images: torch.Tensor) -> None:
        self.target = image_statistics(target_images)
        self.scale = self.target.std(dim=0).clamp_min(1e-3)
        self.centre = self.target.mean(dim=0)

    def _standard(self, statistics: torch.Tensor) -> torch.Tensor:
        return (statistics - self.centre) / self.scale

    def distance(self, images: torch.Tensor) -> float:
        return mmd(self._standard(image_statistics(images)), self._standard(self.target))
