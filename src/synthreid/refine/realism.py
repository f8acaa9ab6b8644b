"""How close a refiner brings images to the target cameras: `synthreid fit`'s distance
(evaluate/realism.py, `combined`) between refined images and the target's training images, as
a ratio to the unrefined images' distance. 1 is the unrefined images; below 1 is closer to
the target's cameras, 0 would be indistinguishable from them by these measures.
"""

from __future__ import annotations

import numpy as np
import torch

from synthreid.evaluate.realism import Objective


def to_crops(images: torch.Tensor | list[torch.Tensor]) -> list[np.ndarray]:
    """Images (N, 3, H, W), or a list of (3, H, W) of any widths, in [-1, 1] as the RGB uint8
    crops the distance reads."""
    return [((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            .permute(1, 2, 0).cpu().numpy() for image in images]


class RealismMeter:
    """The target's description, computed once; `calibrate(unrefined)` sets the 1, then
    `distance(images)` for any set of images."""

    def __init__(self, target_images: torch.Tensor | list[torch.Tensor]) -> None:
        self.objective = Objective("combined", to_crops(target_images))

    def calibrate(self, unrefined: torch.Tensor | list[torch.Tensor]) -> None:
        self.objective.calibrate(to_crops(unrefined))

    def distance(self, images: torch.Tensor | list[torch.Tensor]) -> float:
        return self.objective.distance(to_crops(images)) / len(self.objective.measures)
