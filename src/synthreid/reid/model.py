"""The re-id model: an embedding network f and classifier heads g (thesis 2.3.1).

f = backbone -> global average pooling -> (optional) linear embedding -> BNNeck.
g = (dropout ->) one linear classifier over the training ids; mixed training may give each
dataset its own. Checkpoints carry the arguments that rebuild the model.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from synthreid.reid.backbones import build_backbone
from synthreid.typed import Strict


class ModelArgs(Strict):
    backbone: Literal["inception", "resnet50"] = "inception"
    embedding: int = Field(256, ge=0)  # 0: the backbone's pooled features as they are
    bnneck: bool = True  # BN between the features and the classifier
    features_after_bn: bool = True  # test-time features after the BNNeck (else before)
    last_stride: Literal[1, 2] = 1  # resnet50 only
    dropout: float = Field(0.0, ge=0, lt=1)  # before the classifier (Open-ReID: 0.5)
    init: Literal["pytorch", "openreid"] = "pytorch"  # openreid: Kaiming fan-out, N(0, 0.001)
    classifier_bias: bool = False
    test_output: Literal["features", "logits"] = "features"  # logits: as Open-ReID evaluated


def openreid_init(module: nn.Module) -> None:
    """Open-ReID's `reset_params`: convolutions Kaiming-normal (fan-out), BN weight 1 and bias 0,
    linear layers N(0, 0.001) with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


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
        self.dropout = nn.Dropout(args.dropout) if args.dropout else nn.Identity()
        self.g = self._heads(classes)
        if args.init == "openreid":
            openreid_init(self)

    def _heads(self, classes: dict[str, int]) -> nn.ModuleDict:
        heads = nn.ModuleDict({name: nn.Linear(self.f.dim, n, bias=self.args.classifier_bias)
                               for name, n in classes.items()})
        if self.args.init == "openreid":
            openreid_init(heads)
        return heads

    def reset_heads(self, classes: dict[str, int]) -> None:
        """New classifiers for new training ids (finetuning): f is kept, g starts afresh."""
        self.g = self._heads(classes).to(next(self.parameters()).device)

    def forward(self, images: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor]:
        raw, normed = self.f(images)
        return raw, self.g[head](self.dropout(normed))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Test-time descriptors: f's features, or the first head's logits (Open-ReID's
        evaluator ran the whole softmax model)."""
        if self.args.test_output == "logits":
            return self.g[next(iter(self.g))](self.f(images)[1])
        return self.f.embed(images)

    def describe(self) -> dict:
        return {"model_args": self.args.model_dump(),
                "classes": {name: head.out_features for name, head in self.g.items()}}
