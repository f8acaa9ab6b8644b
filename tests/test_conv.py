"""The convolution guard: bf16 convolutions with a one-column output and a horizontal stride
are widened by zero columns, which changes nothing in the result, and every network uses it."""

import ast
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from synthreid.conv import Conv2d, needs_width_guard

SOURCE = Path(__file__).resolve().parents[1] / "src" / "synthreid"


def one_pass(conv, images, upstream, bf16):
    """Output, input gradient and weight gradient of one pass (bf16 autocast or fp32), in
    fp32."""
    images = images.detach().clone().requires_grad_(True)
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = conv(images)
    out.float().backward(upstream)
    return out.float(), images.grad.float(), conv.weight.grad.float()


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("shape,kernel", [((8, 256, 4, 2), 3), ((8, 128, 8, 1), 3),
                                          ((8, 256, 8, 3), 4)])
def test_a_one_column_strided_bf16_convolution_agrees_with_fp32(shape, kernel, channels_last):
    """The shapes oneDNN's AMX kernel returned NaN for, forward and weight gradient, after an
    fp32 pass of the same shape had left its memory behind. Where the CPU has no AMX this
    passes with or without the guard; where it has AMX it fails without it."""
    generator = torch.Generator().manual_seed(0)
    conv = Conv2d(shape[1], shape[1], kernel, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.05)
    images = torch.randn(shape, generator=generator)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(shape[0], shape[1], (shape[2] + 2 - kernel) // 2 + 1, 1,
                           generator=generator)
    for _ in range(3):
        expected = one_pass(conv, images, upstream, bf16=False)
        got = one_pass(conv, images, upstream, bf16=True)
        for name, a, b in zip(("output", "input gradient", "weight gradient"), got, expected):
            assert torch.isfinite(a).all(), name
            assert (a - b).abs().max() <= 0.02 * b.abs().max(), name


class ConvolutionWidths(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.widths = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv2d:
            self.widths.append(args[0].shape[-1])
        return func(*args, **(kwargs or {}))


def test_the_kernel_is_handed_two_columns_and_one_comes_back():
    conv = Conv2d(16, 16, 3, stride=2, padding=1)
    images = torch.randn(2, 16, 6, 2)
    with ConvolutionWidths() as seen, torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(images)
    assert seen.widths == [4] and out.shape == (2, 16, 3, 1)
    with ConvolutionWidths() as seen:  # fp32: left alone
        conv(images)
    assert seen.widths == [2]


def test_the_guard_fires_only_where_the_kernel_is_wrong():
    bf16 = torch.zeros(1, 8, 4, 2, dtype=torch.bfloat16)
    assert needs_width_guard(Conv2d(8, 8, 3, stride=2, padding=1), bf16)
    assert not needs_width_guard(Conv2d(8, 8, 3, stride=1, padding=1), bf16[..., :1])
    assert not needs_width_guard(Conv2d(8, 8, 3, stride=2, padding=1), bf16.float())
    wide = torch.zeros(1, 8, 4, 3, dtype=torch.bfloat16)  # two output columns
    assert not needs_width_guard(Conv2d(8, 8, 3, stride=2, padding=1), wide)


@pytest.mark.parametrize("kernel,padding,dilation,stride,width", [
    (3, 1, 1, 2, 1), (3, 1, 1, 2, 2), (4, 1, 1, 2, 3), (7, 3, 1, 2, 2), (3, 0, 1, 2, 3),
    (3, 2, 2, 3, 2), (5, 2, 1, 4, 4), (1, 0, 1, 2, 1)])
def test_widening_by_zero_columns_leaves_the_first_output_column_exact(kernel, padding,
                                                                       dilation, stride, width):
    """The guard's premise, in fp64 so rounding cannot hide a change: padding `stride` zero
    columns on the right gives a second output column and leaves the first one as it was."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 4, 5, width, generator=generator, dtype=torch.float64)
    weight = torch.randn(6, 4, kernel, kernel, generator=generator, dtype=torch.float64)
    options = dict(stride=stride, padding=padding, dilation=dilation)
    plain = F.conv2d(images, weight, **options)
    assert plain.shape[-1] == 1
    widened = F.conv2d(F.pad(images, (0, stride)), weight, **options)
    assert widened.shape[-1] == 2
    assert torch.allclose(widened[..., :1], plain, rtol=0, atol=1e-12)


def test_every_network_builds_its_convolutions_with_the_guard():
    """A new network built on `nn.Conv2d` would bring the bf16 defect back."""
    unguarded = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "conv.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Conv2d"):
                unguarded.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert unguarded == []
