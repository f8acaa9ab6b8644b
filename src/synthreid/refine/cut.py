"""Contrastive unpaired translation (CUT, Park et al. 2020): one generator G, no cycle (the
method `CUT` at the end; PatchNCE's parts first). A patch of
G(a) must be more like the patch of a at the same place than like any other patch of a (PatchNCE
on features of G's own encoder), so G keeps the content where it changes the style.

The layers read are those the reference's `nce_layers` 0,4,8,12,16 pick in its generator, named
by role so they hold for ours (which has no antialiasing layers, so the same indices would land
elsewhere, on the decoder with 6 blocks): the padded input image, the two downsampling
convolutions, and the first and fifth residual blocks (the last one when there are fewer).
256 patches a layer, a two-layer MLP head per layer onto 256-d unit vectors, temperature 0.07."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthreid.refine import losses
from synthreid.refine.method import RefinerMethod, Terms
from synthreid.refine.networks import ResidualBlock

NCE_ROLES = ("input", "downsampling 1", "downsampling 2", "residual block 1",
             "residual block 5")


def nce_layers(generator: nn.Module) -> dict[str, int]:
    """Which of G's sequential layers PatchNCE reads, by role (see the module's docstring)."""
    layers = list(generator.model)
    downsampling = [i for i, layer in enumerate(layers)
                    if isinstance(layer, nn.Conv2d) and layer.stride == (2, 2)]
    blocks = [i for i, layer in enumerate(layers) if isinstance(layer, ResidualBlock)]
    if len(downsampling) != 2 or not blocks:
        raise ValueError("CUT needs a ResNet generator with two downsampling convolutions "
                         "and residual blocks")
    picked = [0, *downsampling, blocks[0], blocks[min(4, len(blocks) - 1)]]
    return dict(zip(NCE_ROLES, picked))


def encode(generator: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Feature maps of G's PatchNCE layers (all in its encoder half), in role order."""
    layers = set(nce_layers(generator).values())
    features, x = [], images
    for index, layer in enumerate(generator.model):
        x = layer(x)
        if index in layers:
            features.append(x)
        if index >= max(layers):
            break
    return features


class PatchProjector(nn.Module):
    """One MLP head per encoder layer: a sampled feature vector -> a 256-d unit vector."""

    def __init__(self, channels: list[int], dim: int = 256) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim))
                                   for c in channels)
        for head in self.heads:
            for m in head:
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for head, feature, index in zip(self.heads, features, ids):
            flat = feature.flatten(2).transpose(1, 2)  # (B, H*W, C)
            out.append(F.normalize(head(flat[:, index]), dim=-1))  # (B, P, dim)
        return out


def patch_ids(features: list[torch.Tensor], rng: np.random.Generator,
              patches: int = 256) -> list[torch.Tensor]:
    """The same random locations for the query and its keys, drawn from the run's generator."""
    ids = []
    for feature in features:
        places = feature.shape[2] * feature.shape[3]
        chosen = rng.permutation(places)[:min(patches, places)]
        ids.append(torch.as_tensor(chosen, device=feature.device))
    return ids


def patch_nce(query: torch.Tensor, key: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """InfoNCE per patch: its positive is the key at the same place, its negatives the keys at
    the image's other sampled places. `query`, `key`: (B, P, D) unit vectors."""
    query, key = query.float(), key.detach().float()
    positive = (query * key).sum(-1, keepdim=True)  # (B, P, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # (B, P, P)
    eye = torch.eye(query.shape[1], dtype=torch.bool, device=query.device)[None]
    negative = negative.masked_fill(eye, -10.0)  # a patch is not its own negative
    logits = torch.cat([positive, negative], dim=-1) / tau
    target = torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long,
                         device=query.device)
    return F.cross_entropy(logits.flatten(0, 1), target)


def nce_loss(generator: nn.Module, projector: PatchProjector, source: torch.Tensor,
             translated: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """PatchNCE between an image and its translation, averaged over the layers."""
    keys = encode(generator, source)
    queries = encode(generator, translated)
    ids = patch_ids(keys, rng)
    pairs = zip(projector(queries, ids), projector(keys, ids))
    return sum(patch_nce(q, k) for q, k in pairs) / len(keys)


class CUT(RefinerMethod):
    """One generator G and one discriminator D_B, no F and no cycle:

        L = L_GAN(G, D_B) + nce_weight PatchNCE(a, G(a))    [averaged with PatchNCE(b, G(b))]

    with a projection head H per read layer of G's encoder. D_B judges the current fake (no
    pool, as the reference)."""

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        with torch.no_grad():  # the heads' input sizes: one look at G's encoder
            probe = encode(self.G, torch.zeros(1, 3, config.height, config.width, device=device))
        self.H = PatchProjector([f.shape[1] for f in probe]).to(device)
        self.networks = {"G": self.G, "H": self.H, "D_B": self.D_B}

    def generator_side(self):
        return itertools.chain(self.G.parameters(), self.H.parameters())

    def critics(self):
        return [self.D_B]

    def generator_terms(self, a, mask_a, b, mask_b, rng) -> tuple[Terms, Terms]:
        fake_b = self.G(a)
        terms = {"gan_G": losses.lsgan(self.D_B(fake_b), True)}
        nce = nce_loss(self.G, self.H, a, fake_b, rng)
        if self.config.nce_identity:
            nce = 0.5 * (nce + nce_loss(self.G, self.H, b, self.G(b), rng))
        terms["nce"] = self.config.nce_weight * nce
        return terms, {"fake_b": fake_b}

    def critic_terms(self, a, b, fakes, pools, rng) -> Terms:
        return {"D_B": 0.5 * (losses.lsgan(self.D_B(b), True)
                              + losses.lsgan(self.D_B(fakes["fake_b"].detach()), False))}

    def sample_rows(self, a, mask_a, b):
        """a, G(a); b, G(b)."""
        return [a, self.G(a), b, self.G(b)]
