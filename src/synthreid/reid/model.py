"""The re-id model: an embedding network f and classifier heads g (thesis 2.3.1).

f = backbone -> global average pooling -> (optional) linear embedding -> BNNeck.
g = one linear classifier over the training ids; mixed training may give each dataset its own.
Checkpoints carry the arguments that rebuild the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from synthreid.reid.backbones import build_backbone


@dataclass(frozen=True)
class ModelArgs:
    backbone: str = "inception"
    embedding: int = 256  # 0: the backbone's pooled features as they are
    bnneck: bool = True  # BN between the features and the classifier
    features_after_bn: bool = True  # test-time features after the BNNeck (else before)
    last_stride: int = 1  # resnet50 only


class Embedding(nn.Module):
    """f: an image batch to feature vectors."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        options = {"last_stride": args.last_stride} if args.backbone == "resnet50" else {}
        self.backbone = build_backbone(args.backbone, **options)
        channels = self.backbone.out_channels
        self.project = None
        if args.embedding:
            self.project = nn.Sequential(nn.Linear(channels, args.embedding),
                                         nn.BatchNorm1d(args.embedding), nn.ReLU(inplace=True))
            channels = args.embedding
        self.dim = channels
        self.neck = nn.BatchNorm1d(channels) if args.bnneck else nn.Identity()
        if args.bnneck:
            self.neck.bias.requires_grad_(False)  # the BNNeck habit: no shift before softmax
        self.features_after_bn = args.features_after_bn

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features for the triplet loss, features for the classifier)."""
        pooled = self.backbone(images).mean(dim=(2, 3))
        raw = pooled if self.project is None else self.project(pooled)
        return raw, self.neck(raw)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raw, normed = self(images)
        return normed if self.features_after_bn else raw


class ReidModel(nn.Module):
    def __init__(self, args: ModelArgs, classes: dict[str, int]) -> None:
        super().__init__()
        self.args = args
        self.f = Embedding(args)
        self.g = nn.ModuleDict({name: nn.Linear(self.f.dim, n, bias=False)
                                for name, n in classes.items()})

    def reset_heads(self, classes: dict[str, int]) -> None:
        """New classifiers for new training ids (finetuning): f is kept, g starts afresh."""
        self.g = nn.ModuleDict({name: nn.Linear(self.f.dim, n, bias=False)
                                for name, n in classes.items()}).to(next(self.parameters()).device)

    def forward(self, images: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor]:
        raw, normed = self.f(images)
        return raw, self.g[head](normed)

    def describe(self) -> dict:
        return {"model_args": asdict(self.args),
                "classes": {name: head.out_features for name, head in self.g.items()}}
