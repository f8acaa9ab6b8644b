"""The 2-D convolution every synthreid network uses: `torch.nn.Conv2d` with one guard.

On CPUs with AMX, oneDNN's bf16 convolution kernel (`brg_conv_fwd:avx10_1_512_amx`, the one
PyTorch 2.13 picks under bf16 autocast) returns garbage, often NaN, when the output is one
column wide and the horizontal stride is above one (PyTorch issue 169688). The weight gradient
of the same convolution is wrong too. It reads memory it never wrote, so the result depends on
what ran before: a fresh process often gets the right answer, and the same network after an
fp32 pass gets NaN. Both memory layouts are affected. Small crops reach this shape: an
Inception at 32x16, or ResNet-50 at 64x32 with a last stride of 2, has a last stride-2
convolution whose output is one column wide.

The guard pads such an input on the right with `stride` zero columns, so the output is two
columns wide, and keeps the first column. That column sees the same input as before: the
extra columns fall where the convolution's own zero padding already was. So the result is
exact, forward and backward, and the fast kernel stays in use.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _bf16_on_cpu(images: torch.Tensor) -> bool:
    if images.device.type != "cpu":
        return False
    if images.dtype == torch.bfloat16:
        return True
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def output_width(conv: nn.Conv2d, input_width: int) -> int:
    padding = 0 if conv.padding == "valid" else conv.padding[1]
    reach = conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
    return (input_width + 2 * padding - reach) // conv.stride[1] + 1


def needs_width_guard(conv: nn.Conv2d, images: torch.Tensor) -> bool:
    """Whether `conv` on `images` is the shape the bf16 AMX kernel gets wrong."""
    return (conv.stride[1] > 1 and conv.padding_mode == "zeros" and _bf16_on_cpu(images)
            and output_width(conv, images.shape[-1]) == 1)


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same arguments, same parameter names) that never hands oneDNN a bf16
    convolution with a one-column output and a horizontal stride."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if needs_width_guard(self, input):
            widened = F.pad(input, (0, self.stride[1]))
            return super()._conv_forward(widened, weight, bias)[..., :1]
        return super()._conv_forward(input, weight, bias)
