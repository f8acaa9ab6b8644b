"""Losses: softmax cross entropy (with label smoothing in the modern recipe; the thesis and
Open-ReID used plain cross entropy), batch-hard triplet (Hermans et al. 2017), or both summed
with weights. One place for all of them."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch.nn import functional as F

from synthreid.typed import Strict


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """For each anchor: its farthest positive and nearest negative in the batch."""
    distances = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    hardest_positive = (distances * same).max(dim=1).values
    hardest_negative = distances.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


class LossConfig(Strict):
    softmax_weight: float = Field(1.0, ge=0)
    triplet_weight: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    margin: float = Field(0.3, ge=0)

    @model_validator(mode="after")
    def _some_loss(self) -> LossConfig:
        if self.softmax_weight <= 0 and self.triplet_weight <= 0:
            raise ValueError("give softmax and/or triplet a positive weight")
        return self

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
