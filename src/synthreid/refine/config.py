"""The typed description of a refiner run (saved as `config.yaml` beside its checkpoints)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthreid.limits import MAX_ITERATIONS, MAX_SIDE_PX
from synthreid.typed import Strict

METHODS = ("cyclegan", "ptgan", "cut", "spgan")


class RefinerConfig(Strict):
    source: str  # generated images (domain A): LAYOUT:ROOT or a dataset YAML
    target: str  # real images of the camera domain to imitate (domain B)
    out: str
    method: Literal["cyclegan", "ptgan", "cut", "spgan"] = "cyclegan"
    height: int = Field(128, ge=32, le=MAX_SIDE_PX)
    width: int = Field(64, ge=32, le=MAX_SIDE_PX)  # the 70x70 PatchGAN needs 32 pixels a side
    blocks: Literal[6, 9] = 6  # residual blocks in G (9 in the reference at 256 px)
    # G (and F) output input + change, starting as the identity (networks.py); False: the
    # reference's tanh output from random weights.
    residual: bool = False
    ngf: int = Field(64, ge=8)
    ndf: int = Field(64, ge=8)
    batch_size: int = Field(1, ge=1)
    # "squeeze": every image resized to height x width. "keep": scaled to `height` at its own
    # aspect ratio (data.py), as `refine` applies G; one image a step (batch_size 1), each at
    # its own width, and the identity and realism checks judge G at that geometry too.
    aspect: Literal["squeeze", "keep"] = "squeeze"
    iterations: int = Field(20000, ge=1, le=MAX_ITERATIONS)
    decay_from: float = Field(0.5, ge=0, le=1)  # fraction of iterations at the full rate
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    cycle_weight: float = Field(10.0, ge=0)  # lambda of eq. 2.6-2.7
    # CycleGAN's unmasked identity term, times cycle_weight (0.5 in the reference). None: 0.5
    # for CycleGAN, 0 for PTGAN, whose paper replaces it by the masked identity term.
    identity_weight: float | None = Field(None, ge=0)
    mask_weight: float = Field(10.0, ge=0)  # PTGAN's masked identity loss (eq. 2.9, L1)
    nce_weight: float = Field(1.0, ge=0)  # CUT: PatchNCE between a and G(a)
    nce_identity: bool = True  # CUT: PatchNCE between b and G(b) too
    contrastive_weight: float = Field(2.0, ge=0)  # SPGAN: the siamese contrastive loss
    contrastive_margin: float = Field(2.0, gt=0)  # SPGAN: negative pairs at least this apart
    # Any method: |mean colour of the person in G(a) - in a|, inside a's mask (needs masks).
    colour_weight: float = Field(0.0, ge=0)
    pool_size: int = Field(50, ge=0)
    flip: bool = True
    sample_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(50, ge=1)
    seed: int = Field(0, ge=0)
    # At every checkpoint: does G keep the person (identity.py), how close is it to the target
    # (realism.py); the checkpoint used is the most realistic within identity_margin rank-1
    # points of the unrefined set's identity score.
    identity_check: bool = True
    identity_ids: int = Field(50, ge=5)
    identity_margin: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _sizes(self) -> RefinerConfig:
        if self.height % 4 or self.width % 4:
            raise ValueError(f"height and width must be multiples of 4 (two stride-2 stages), "
                             f"got {self.height}x{self.width}")
        if self.aspect == "keep" and self.batch_size != 1:
            raise ValueError(f"aspect keep: images of their own widths train one at a time; "
                             f"batch_size must be 1, got {self.batch_size}")
        if self.identity_weight is None:
            object.__setattr__(self, "identity_weight", 0.0 if self.method == "ptgan" else 0.5)
        return self
