"""Losses: softmax cross entropy (label smoothing by default, as in the thesis), batch-hard
triplet (Hermans et al. 2017), or both summed with weights. One place for all of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from synthreid.errors import ReidError


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """For each anchor: its farthest positive and nearest negative in the batch."""
    distances = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    hardest_positive = (distances * same).max(dim=1).values
    hardest_negative = distances.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


@dataclass(frozen=True)
class LossConfig:
    softmax_weight: float = 1.0
    triplet_weight: float = 0.0
    label_smoothing: float = 0.1
    margin: float = 0.3

    def __post_init__(self) -> None:
        if self.softmax_weight <= 0 and self.triplet_weight <= 0:
            raise ReidError("loss: give softmax and/or triplet a positive weight")
        if not 0 <= self.label_smoothing < 1:
            raise ReidError(f"loss: label smoothing must be in [0, 1), got {self.label_smoothing}")

    def __call__(self, features: torch.Tensor, logits: torch.Tensor,
                 labels: torch.Tensor) -> torch.Tensor:
        loss = features.new_zeros(())
        if self.softmax_weight > 0:
            loss = loss + self.softmax_weight * F.cross_entropy(
                logits.float(), labels, label_smoothing=self.label_smoothing)
        if self.triplet_weight > 0:
            loss = loss + self.triplet_weight * batch_hard_triplet(features.float(), labels,
                                                                   self.margin)
        return loss
