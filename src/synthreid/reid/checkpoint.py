"""Re-id checkpoints: read with `weights_only=True` (torch_files.py) and checked before use."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import ValidationError

from synthreid.errors import ReidError
from synthreid.torch_files import read_torch_file


def load_checkpoint(path: str | Path, expect_backbone: str | None = None) -> dict:
    state = read_torch_file(path, "synthreid checkpoint", ReidError)
    if not isinstance(state, dict) or "model" not in state or "model_args" not in state:
        raise ReidError(f"{path}: not a synthreid checkpoint (no model and model_args)")
    backbone = state["model_args"].get("backbone")
    if expect_backbone is not None and backbone != expect_backbone:
        raise ReidError(f"{path}: a {backbone} checkpoint, but the backbone asked for is "
                        f"{expect_backbone}")
    return state


def model_from_checkpoint(path: str | Path, device: torch.device | None = None):
    from synthreid.reid.model import ModelArgs, ReidModel

    state = load_checkpoint(path)
    try:
        args = ModelArgs(**state["model_args"])
    except (ValidationError, TypeError) as error:
        problem = error.errors()[0] if isinstance(error, ValidationError) else {"loc": ("?",)}
        field = ".".join(str(part) for part in problem["loc"])
        raise ReidError(f"{path}: model argument {field!r} is not one this version knows or "
                        f"accepts (a checkpoint of another synthreid version?)") from None
    model = ReidModel(args, state["classes"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise ReidError(f"{path}: its weights do not fit the model its arguments describe") from None
    return model.to(device or torch.device("cpu")).eval()
