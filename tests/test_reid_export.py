"""Models that leave the project: the exported embedding network computes the checkpoint's
features (TorchScript through torch.jit, ONNX through onnxruntime) and says how to feed it."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from synthreid.cli import app
from synthreid.errors import ReidError
from synthreid.reid.checkpoint import model_from_checkpoint
from synthreid.reid.export import export_model
from synthreid.reid.model import ModelArgs, ReidModel
from synthreid.torch_files import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ReidModel(ModelArgs(backbone="inception", embedding=64), {"d0": 1600}).eval()
    for module in model.modules():  # batch-norm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("model") / "best.pt"
    save_checkpoint({"model": model.state_dict(), **model.describe(),
                     "train_config": {"augment": {"height": 128, "width": 64}}}, path)
    return path


def reference_features(checkpoint, images):
    with torch.no_grad():
        return model_from_checkpoint(checkpoint, torch.device("cpu")).eval().embed(images).numpy()


def test_torchscript_export_computes_the_checkpoints_features(checkpoint, tmp_path):
    out = export_model(checkpoint, tmp_path / "model.pt", "torchscript")
    extra = {"synthreid.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    metadata = json.loads(extra["synthreid.json"])
    assert metadata["input_size"] == [128, 64] and metadata["std"][0] == pytest.approx(0.229)
    images = torch.randn(5, 3, 128, 64)  # another batch size than the one traced
    with torch.no_grad():
        exported = loaded(images).numpy()
    assert exported.shape == (5, 64)
    assert np.abs(exported - reference_features(checkpoint, images)).max() < 1e-4


def test_onnx_export_computes_the_checkpoints_features_in_onnxruntime(checkpoint, tmp_path):
    import onnx
    import onnxruntime

    result = CliRunner().invoke(app, ["reid", "export", "--model", str(checkpoint), "--format",
                                      "onnx", "--out", str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "model.onnx"
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["input_size"]) == [128, 64]
    assert metadata["checkpoint_sha256"] and metadata["output"] == "features"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 128, 64)
    exported = session.run(["features"], {"images": images.numpy()})[0]
    assert np.abs(exported - reference_features(checkpoint, images)).max() < 1e-4
    # No classifier heads in the file: 1,600 ids of weights would be there otherwise.
    names = {init.name for init in onnx.load(str(path)).graph.initializer}
    assert not any(name.startswith("model.g.") for name in names)


def test_export_refuses_what_it_cannot_write(checkpoint, tmp_path):
    with pytest.raises(ReidError, match="a folder; --out names the file"):
        export_model(checkpoint, tmp_path, "onnx")
    with pytest.raises(ReidError, match="--format: expected one of onnx, torchscript"):
        export_model(checkpoint, tmp_path / "m", "tflite")
