"""Where tensors go: the GPU when CUDA is present, else the CPU (the one place it is chosen)."""

from __future__ import annotations

import torch


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
