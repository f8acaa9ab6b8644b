"""Backbones: image to feature map. Heads and losses live elsewhere (`model.py`, `losses.py`).

- `inception`: the small Inception-style network Open-ReID trains from scratch (the thesis'
  choice): three 3x3 convolutions, then three pairs of inception blocks.
- `resnet50`: the standard architecture with torchvision's parameter names, so torchvision's
  ImageNet weights file loads into it (given by the user; nothing is downloaded). No torchvision
  import is needed, which matters here: PyPI's torchvision does not import beside the CPU torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from synthreid.conv import Conv2d
from synthreid.errors import ReidError


def _conv_bn(in_planes: int, out_planes: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(Conv2d(in_planes, out_planes, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(out_planes), nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """Parallel 1x1, 3x3, double-3x3 and pooling branches, concatenated (Open-ReID)."""

    def __init__(self, in_planes: int, out_planes: int, pool: str, stride: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList()
        if stride == 1:
            self.branches.append(_conv_bn(in_planes, out_planes, 1))
        self.branches.append(nn.Sequential(_conv_bn(in_planes, out_planes, 1),
                                           _conv_bn(out_planes, out_planes, 3, stride)))
        self.branches.append(nn.Sequential(_conv_bn(in_planes, out_planes, 1),
                                           _conv_bn(out_planes, out_planes, 3),
                                           _conv_bn(out_planes, out_planes, 3, stride)))
        if pool == "avg":
            self.branches.append(nn.Sequential(nn.AvgPool2d(3, stride, 1),
                                               _conv_bn(in_planes, out_planes, 1)))
            self.out_planes = out_planes * len(self.branches)
        else:
            self.branches.append(nn.MaxPool2d(3, stride, 1))
            self.out_planes = out_planes * (len(self.branches) - 1) + in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class InceptionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 32), _conv_bn(32, 32), _conv_bn(32, 32),
                                   nn.MaxPool2d(3, 2, 1)]
        planes = 32
        for width in (64, 128, 256):
            for pool, stride in (("avg", 1), ("max", 2)):
                block = InceptionBlock(planes, width, pool, stride)
                layers.append(block)
                planes = block.out_planes
        self.features = nn.Sequential(*layers)
        self.out_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes * 4:
            self.downsample = nn.Sequential(Conv2d(in_planes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision's ResNet-50 layout (same parameter names), with a configurable last stride
    (1 is the re-id habit: a finer last feature map)."""

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.in_planes = 64
        self.layer1 = self._layer(64, 3, 1)
        self.layer2 = self._layer(128, 4, 2)
        self.layer3 = self._layer(256, 6, 2)
        self.layer4 = self._layer(512, 3, last_stride)
        self.out_channels = 2048

    def _layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [Bottleneck(self.in_planes, planes, stride)]
        self.in_planes = planes * 4
        layers += [Bottleneck(self.in_planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def load_imagenet(self, path: str | Path) -> None:
        """Load torchvision's ResNet-50 weights from a local file (its `fc` is dropped)."""
        from synthreid.torch_files import read_torch_file

        state = read_torch_file(path, "pretrained weights file", ReidError)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            first = (missing or wrong)[0]
            raise ReidError(f"{path}: does not match ResNet-50 ({len(missing)} missing and "
                            f"{len(wrong)} mis-shaped tensors, e.g. {first})")
        self.load_state_dict({k: state[k] for k in own})


BACKBONES = {"inception": lambda **kw: InceptionNet(), "resnet50": ResNet50}


def build_backbone(name: str, **options) -> nn.Module:
    if name not in BACKBONES:
        raise ReidError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name](**options)
