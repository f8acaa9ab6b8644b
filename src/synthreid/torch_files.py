"""Torch files of every stage: checkpoints written atomically, read with `weights_only=True`."""

from __future__ import annotations

from pathlib import Path

import torch

from synthreid import atomic
from synthreid.errors import SynthReidError


def save_checkpoint(state: dict, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_torch_file(path: str | Path, what: str, error: type[SynthReidError] = SynthReidError):
    """torch.load with weights_only=True; a missing or damaged file is one `error` line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as problem:  # torch raises many kinds for a damaged file
        raise error(f"{path}: damaged or not a {what} ({type(problem).__name__})") from None


