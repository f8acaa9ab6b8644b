"""Models that leave the project: the embedding network of a checkpoint (the features `reid
features` computes: after the BNNeck where the model uses it) as TorchScript or ONNX, without
classifier heads, optimizer or RNG state.

Input: a float batch (N, 3, H, W), RGB in [0, 1] scaled to the checkpoint's training size and
normalised by the ImageNet mean and std; output: (N, D) features. Both files carry that in their
metadata (TorchScript: the extra file `synthreid.json`; ONNX: metadata_props), with the source
checkpoint's hash. ONNX needs the `export` extra (`pip install "synthreid[export]"`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from synthreid import __version__, atomic
from synthreid.errors import ReidError
from synthreid.made_by import file_digest
from synthreid.reid.checkpoint import load_checkpoint, model_from_checkpoint
from synthreid.reid.data import MEAN, STD

FORMATS = ("onnx", "torchscript")


class Embedder(nn.Module):
    """The test-time network alone: images in, features out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images)


def export_metadata(checkpoint: str | Path) -> dict:
    state = load_checkpoint(checkpoint)
    augment = state.get("train_config", {}).get("augment", {})
    return {"producer": f"synthreid {__version__}", "input": "images",
            "output": "features",
            "input_size": [augment.get("height", 256), augment.get("width", 128)],
            "input_range": "RGB in [0, 1], then (x - mean) / std per channel",
            "mean": MEAN.flatten().tolist(), "std": STD.flatten().tolist(),
            "backbone": state["model_args"]["backbone"],
            "checkpoint_sha256": file_digest(checkpoint)}


def export_model(checkpoint: str | Path, out: str | Path, format: str) -> Path:
    """Write the embedding network of `checkpoint` to `out` (atomically)."""
    if format not in FORMATS:
        raise ReidError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    out = Path(out)
    if out.is_dir():
        raise ReidError(f"{out}: a folder; --out names the file to write")
    metadata = export_metadata(checkpoint)
    embedder = Embedder(model_from_checkpoint(checkpoint, torch.device("cpu"))).eval()
    height, width = metadata["input_size"]
    example = torch.rand(2, 3, height, width)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), atomic.atomic_path(out) as tmp:
        if format == "torchscript":
            traced = torch.jit.trace(embedder, example)
            torch.jit.save(traced, str(tmp), _extra_files={"synthreid.json": json.dumps(metadata)})
        else:
            _export_onnx(embedder, example, tmp, metadata)
    return out


def _export_onnx(embedder: nn.Module, example: torch.Tensor, path: Path, metadata: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise ReidError('ONNX export needs the export extra: pip install "synthreid[export]" '
                        '(onnx<1.18, which fits the protobuf the masks extra needs)') from None
    torch.onnx.export(embedder, (example,), str(path), dynamo=False, input_names=["images"],
                      output_names=["features"], opset_version=17,
                      dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value) if not isinstance(value, str) else value
    onnx.save(model, str(path))
