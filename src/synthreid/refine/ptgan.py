"""PTGAN (Wei et al. 2018, as the thesis uses it, eq. 2.9): CycleGAN whose generators must leave
the person as it is, so that only the background and the camera's look change:

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cycle
        + mu (|(G(a) - a) M(a)|_1 + |(F(b) - b) M(b)|_1)        (masked identity, L1 here)

M is the person mask: generated images bring theirs, real images when their dataset has masks
(the term for b is left out otherwise). CycleGAN's unmasked identity term is not part of the
paper's loss: it is off unless `identity_weight` asks for it.
"""

from __future__ import annotations

import torch

from synthreid.refine import losses
from synthreid.refine.cyclegan import CycleGAN
from synthreid.refine.method import Terms


class PTGAN(CycleGAN):
    def generator_terms(self, a, mask_a, b, mask_b, rng) -> tuple[Terms, Terms]:
        terms, fakes = super().generator_terms(a, mask_a, b, mask_b, rng)
        mu = self.config.mask_weight
        terms["masked_A"] = mu * losses.masked_identity(fakes["fake_b"], a, mask_a)
        if mask_b is not None:
            terms["masked_B"] = mu * losses.masked_identity(fakes["fake_a"], b, mask_b)
        return terms, fakes

    def sample_rows(self, a, mask_a, b):
        """CycleGAN's rows, the person masks M(a) tinting the first."""
        rows = super().sample_rows(a, mask_a, b)
        if mask_a is not None:
            tint = torch.tensor([-1.0, 1.0, -1.0], device=a.device).view(1, 3, 1, 1)
            rows[0] = rows[0] * 0.6 + mask_a.to(a.device) * 0.4 * tint
        return rows
