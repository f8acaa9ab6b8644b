"""Where tensors go and in what form: the GPU when CUDA is present, else the CPU; bf16 autocast
where the hardware computes bf16 natively; channels-last memory for convolutions (the one
place all of this is chosen).

bf16 is chosen on CUDA and on CPUs whose oneDNN reports native bf16 (AVX-512 BF16 or AMX). On
a CPU without it (AVX2 only, e.g. AMD Zen 3) PyTorch emulates bf16 and a training step runs
ten times slower than in fp32, so `auto` keeps fp32 there. `SYNTHREID_PRECISION=fp32|bf16|auto`
(or `synthreid --precision`) overrides the choice for every stage of a process.
The thread cap (`threads.py`) is applied here too, before any network is built.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from synthreid.threads import apply_thread_cap

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISION_VARIABLE = "SYNTHREID_PRECISION"


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and
                torch.ops.mkldnn._is_mkldnn_bf16_supported())


def requested_precision() -> Precision:
    value = os.environ.get(PRECISION_VARIABLE, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"{PRECISION_VARIABLE}={value!r}: expected one of "
                         f"{', '.join(PRECISIONS)}")
    return value  # type: ignore[return-value]


def choose_dtype(device: torch.device, precision: Precision, native: bool) -> torch.dtype:
    """The autocast dtype for `precision` on `device`; `native` says whether the hardware
    has bf16 (kept apart from the probe so the rule is testable on any machine)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16" or native:
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class Compute:
    """A device with its arithmetic: the autocast dtype and the memory layout of images."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    channels_last: bool = True  # measured faster on CPU (oneDNN) and CUDA (tensor cores)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def module(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def describe(self) -> str:
        precision = "bf16 autocast" if self.dtype == torch.bfloat16 else "fp32"
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"{self.device.type}, {precision}, {layout}"


def compute(device: torch.device | None = None, precision: Precision | None = None,
            channels_last: bool = True) -> Compute:
    """The arithmetic this process uses on `device` (default: `torch_device()`)."""
    device = device or torch_device()
    precision = precision or requested_precision()
    apply_thread_cap()
    return Compute(device, choose_dtype(device, precision, native_bf16(device)), channels_last)
