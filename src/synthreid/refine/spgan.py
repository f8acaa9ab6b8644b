"""SPGAN (Deng et al., CVPR 2018: similarity preserving GAN for person re-id): CycleGAN plus a
small siamese network M that keeps a translated image close to its source and far from the
other domain's images:

    L = L_CycleGAN (identity mapping on, as the paper) + w L_con
    L_con = |M(a) - M(G(a))|² + |M(b) - M(F(b))|²                      (positive pairs)
          + max(0, m - |M(G(a)) - M(b)|)² + max(0, m - |M(F(b)) - M(a)|)²   (negative pairs)

M (four strided convolutions, LeakyReLU, pooled to a 128-d embedding) is trained with the
discriminators on the same pairs, the fakes detached; the generators then meet the frozen M.
"""

from __future__ import annotations

from torch import nn

from synthreid.conv import Conv2d
from synthreid.refine import losses
from synthreid.refine.cyclegan import CycleGAN
from synthreid.refine.method import Terms


class SiameseNet(nn.Module):
    def __init__(self, width: int = 64, embedding: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [Conv2d(channels, out, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, embedding))

    def forward(self, images):
        return self.body(images)


def pair_terms(M: nn.Module, a, fake_b, b, fake_a, margin: float) -> dict:
    return {"positive": losses.contrastive(M(a), M(fake_b), True, margin)
            + losses.contrastive(M(b), M(fake_a), True, margin),
            "negative": losses.contrastive(M(fake_b), M(b), False, margin)
            + losses.contrastive(M(fake_a), M(a), False, margin)}


class SPGAN(CycleGAN):
    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.M = SiameseNet(width=config.ndf).to(device)
        self.networks = {**self.networks, "M": self.M}

    def critics(self):
        return [*super().critics(), self.M]

    def generator_terms(self, a, mask_a, b, mask_b, rng) -> tuple[Terms, Terms]:
        terms, fakes = super().generator_terms(a, mask_a, b, mask_b, rng)
        pairs = pair_terms(self.M, a, fakes["fake_b"], b, fakes["fake_a"],
                           self.config.contrastive_margin)
        terms["contrastive"] = self.config.contrastive_weight * (pairs["positive"] +
                                                                 pairs["negative"])
        return terms, fakes

    def critic_terms(self, a, b, fakes, pools, rng) -> Terms:
        terms = super().critic_terms(a, b, fakes, pools, rng)
        pairs = pair_terms(self.M, a, fakes["fake_b"].detach(), b, fakes["fake_a"].detach(),
                           self.config.contrastive_margin)
        terms["M"] = pairs["positive"] + pairs["negative"]
        return terms
