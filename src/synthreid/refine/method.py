"""What a refiner method is, for the trainer that runs it (`train.py`): its networks, the losses
of one step for the generator side and for the critics, and the rows of its sample grid. The
trainer owns everything else: data, optimizers, the learning-rate schedule, the history pools,
checkpoints, logs. One file per method: `cyclegan.py`, `ptgan.py`, `cut.py`.

Every method has G (generated domain A -> real camera domain B) and D_B, built first and in this
order, so a seed gives the same G and D_B whatever the method.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from synthreid.refine.config import RefinerConfig
from synthreid.refine.networks import PatchDiscriminator, ResnetGenerator
from synthreid.refine.pool import ImagePool

Terms = dict[str, torch.Tensor]  # named loss terms of one step, summed for the update


def build_generator(config: RefinerConfig) -> ResnetGenerator:
    return ResnetGenerator(ngf=config.ngf, blocks=config.blocks, residual=config.residual)


class RefinerMethod:
    """The interface; subclasses add their networks to `networks` in `__init__`."""

    def __init__(self, config: RefinerConfig, device: torch.device) -> None:
        self.config = config
        self.G = build_generator(config).to(device)
        self.D_B = PatchDiscriminator(ndf=config.ndf).to(device)
        # The names a checkpoint stores them under (kept stable: old checkpoints resume).
        self.networks: dict[str, nn.Module] = {"G": self.G, "D_B": self.D_B}

    def generator_side(self) -> Iterable[nn.Parameter]:
        """What the generator optimizer updates."""
        raise NotImplementedError

    def critics(self) -> list[nn.Module]:
        """The discriminators: frozen during the generator's update, then updated."""
        raise NotImplementedError

    def generator_terms(self, a: torch.Tensor, mask_a: torch.Tensor | None, b: torch.Tensor,
                        mask_b: torch.Tensor | None,
                        rng: np.random.Generator) -> tuple[Terms, Terms]:
        """(loss terms, the fakes the critics will judge) for a batch a of A and b of B."""
        raise NotImplementedError

    def critic_terms(self, a: torch.Tensor, b: torch.Tensor, fakes: Terms,
                     pools: dict[str, ImagePool], rng: np.random.Generator) -> Terms:
        raise NotImplementedError

    def sample_rows(self, a: torch.Tensor, mask_a: torch.Tensor | None,
                    b: torch.Tensor) -> list[torch.Tensor]:
        """Rows of the sample grid, each a batch of images in [-1, 1]."""
        raise NotImplementedError
