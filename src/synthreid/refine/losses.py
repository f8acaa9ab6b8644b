"""The refiners' losses, as the thesis writes them (2.2): least-squares adversarial loss,
cycle consistency (eq. 2.6-2.7), identity mapping, and PTGAN's masked identity loss (eq. 2.9,
with the L1 norm the thesis chose)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """(D(x) - 1)^2 for images D should call real, D(x)^2 for fakes, averaged over patches."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.mse_loss(scores.float(), target.float())


def cycle(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """|| F(G(a)) - a ||_1 (and || G(F(b)) - b ||_1), averaged over pixels."""
    return (reconstructed.float() - original.float()).abs().mean()


def identity(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """|| G(b) - b ||_1: a generator fed its own target domain should change nothing."""
    return (mapped.float() - original.float()).abs().mean()


def masked_identity(mapped: torch.Tensor, original: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """PTGAN: || (G(a) - a) * M(a) ||_1 averaged over pixels: the person (M = 1) keeps its
    colours and shape; the background (M = 0) may change freely."""
    return ((mapped.float() - original.float()) * mask.float()).abs().mean()


def contrastive(first: torch.Tensor, second: torch.Tensor, same: bool,
                margin: float) -> torch.Tensor:
    """SPGAN's contrastive loss on embeddings (Hadsell et al. 2006): a positive pair is pulled
    together (d²), a negative pair pushed to at least `margin` apart (max(0, margin - d)²)."""
    distance = (first.float() - second.float()).pow(2).sum(dim=1).add(1e-12).sqrt()
    if same:
        return distance.pow(2).mean()
    return (margin - distance).clamp(min=0).pow(2).mean()


def masked_colour(mapped: torch.Tensor, original: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """|mean colour of the person in G(a) - in a|_1 per channel: the person keeps its colours
    (the clothes that tell people apart) while shading, noise and blur may change."""
    weight = mask.float()
    area = weight.sum(dim=(2, 3)).clamp(min=1.0)
    before = (original.float() * weight).sum(dim=(2, 3)) / area
    after = (mapped.float() * weight).sum(dim=(2, 3)) / area
    return (after - before).abs().mean()
