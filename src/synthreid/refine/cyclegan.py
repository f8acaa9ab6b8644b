"""CycleGAN (Zhu et al. 2017), in the thesis' notation (2.2): G maps generated images (A) to the
real camera domain (B), F maps back; D_B tells real B images from G(a), D_A A images from F(b).

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)   (2.6-2.7)
        + identity_weight lambda (|G(b) - b|_1 + |F(a) - a|_1)          (identity mapping)

Least-squares GAN losses; each discriminator judges a fake drawn from a pool of 50 past ones.
"""

from __future__ import annotations

import itertools

from synthreid.refine import losses
from synthreid.refine.method import RefinerMethod, Terms, build_generator
from synthreid.refine.networks import PatchDiscriminator


class CycleGAN(RefinerMethod):
    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.F = build_generator(config).to(device)
        self.D_A = PatchDiscriminator(ndf=config.ndf).to(device)
        self.networks = {"G": self.G, "F": self.F, "D_A": self.D_A, "D_B": self.D_B}

    def generator_side(self):
        return itertools.chain(self.G.parameters(), self.F.parameters())

    def critics(self):
        return [self.D_A, self.D_B]

    def generator_terms(self, a, mask_a, b, mask_b, rng) -> tuple[Terms, Terms]:
        lam = self.config.cycle_weight
        fake_b, fake_a = self.G(a), self.F(b)
        terms = {"gan_G": losses.lsgan(self.D_B(fake_b), True),
                 "gan_F": losses.lsgan(self.D_A(fake_a), True),
                 "cycle_A": lam * losses.cycle(self.F(fake_b), a),
                 "cycle_B": lam * losses.cycle(self.G(fake_a), b)}
        if self.config.identity_weight > 0:
            weight = lam * self.config.identity_weight
            terms["identity_A"] = weight * losses.identity(self.F(a), a)
            terms["identity_B"] = weight * losses.identity(self.G(b), b)
        return terms, {"fake_b": fake_b, "fake_a": fake_a}

    def critic_terms(self, a, b, fakes, pools, rng) -> Terms:
        pooled_b = pools["B"].query(fakes["fake_b"].detach(), rng)
        pooled_a = pools["A"].query(fakes["fake_a"].detach(), rng)
        return {"D_B": 0.5 * (losses.lsgan(self.D_B(b), True)
                              + losses.lsgan(self.D_B(pooled_b), False)),
                "D_A": 0.5 * (losses.lsgan(self.D_A(a), True)
                              + losses.lsgan(self.D_A(pooled_a), False))}

    def sample_rows(self, a, mask_a, b):
        """a, G(a), F(G(a)); b, F(b), G(F(b))."""
        g_a, f_b = self.G(a), self.F(b)
        return [a, g_a, self.F(g_a), b, f_b, self.G(f_b)]
