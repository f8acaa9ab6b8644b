"""The reference CycleGAN networks (Zhu et al. 2017; pytorch-CycleGAN-and-pix2pix): a ResNet
generator and a 70x70 PatchGAN discriminator, both with instance normalisation (no affine
parameters, so convolutions carry biases) and weights initialised N(0, 0.02)."""

from __future__ import annotations

from torch import nn

from synthreid.conv import Conv2d

# The memory layout the refiners train and refine in: NCHW, because channels-last made CycleGAN
# and PTGAN training 20% slower on a CPU (instance norm and reflection padding convert back and
# forth; benchmarks/speed_table.py measures both).
CHANNELS_LAST = False


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), Conv2d(channels, channels, 3), _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), Conv2d(channels, channels, 3), _norm(channels))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, `blocks` x R256, u128, u64, c7s1-3 (tanh): images in [-1, 1].

    `residual`: the last convolution's output is added to the input instead (then clipped to
    [-1, 1]), and that convolution starts at zero, so G starts as the identity and training
    learns what to change: the reference's G starts from noise, and in a short run never gets
    back to the person it was given."""

    def __init__(self, channels: int = 3, ngf: int = 64, blocks: int = 9,
                 residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), Conv2d(channels, ngf, 7), _norm(ngf),
                                   nn.ReLU(True)]
        width = ngf
        for _ in range(2):  # downsampling
            layers += [Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2),
                       nn.ReLU(True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(blocks)]
        for _ in range(2):  # upsampling
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1,
                                          output_padding=1), _norm(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), Conv2d(width, channels, 7)]
        if not residual:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)
        init_weights(self)
        if residual:
            nn.init.zeros_(layers[-1].weight)

    def forward(self, x):
        if self.residual:
            return (x + self.model(x)).clamp(-1.0, 1.0)
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (`layers` = 3): a map of real/fake scores, one per overlapping patch."""

    def __init__(self, channels: int = 3, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        parts: list[nn.Module] = [Conv2d(channels, ndf, 4, stride=2, padding=1),
                                  nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, layers + 1):
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < layers else 1
            parts += [Conv2d(width, out, 4, stride=stride, padding=1), _norm(out),
                      nn.LeakyReLU(0.2, True)]
            width = out
        parts += [Conv2d(width, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*parts)
        init_weights(self)

    def forward(self, x):
        return self.model(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
