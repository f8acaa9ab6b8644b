"""The arithmetic a process uses: bf16 only where the hardware has it (CUDA untouched by the CPU
rules), a switch to turn it off, and channels-last features equal to NCHW ones."""

import numpy as np
import pytest
import torch

from synthreid.datasets import read_dataset
from synthreid.datasets.toy import write_toy_market
from synthreid.device import (
    PRECISION_VARIABLE,
    Compute,
    choose_dtype,
    compute,
    requested_precision,
)
from synthreid.evaluate import protocols
from synthreid.reid.data import EvalImages
from synthreid.reid.features import extract_features
from synthreid.reid.model import ModelArgs, ReidModel
from synthreid.threads import THREADS_VARIABLE

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_takes_bf16_only_where_the_hardware_has_it():
    assert choose_dtype(CPU, "auto", native=False) == torch.float32
    assert choose_dtype(CPU, "auto", native=True) == torch.bfloat16
    assert choose_dtype(CUDA, "auto", native=True) == torch.bfloat16


def test_the_switch_overrides_detection_both_ways():
    assert choose_dtype(CPU, "fp32", native=True) == torch.float32
    assert choose_dtype(CUDA, "fp32", native=True) == torch.float32
    assert choose_dtype(CPU, "bf16", native=False) == torch.bfloat16


def test_precision_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(PRECISION_VARIABLE, "FP32")
    assert requested_precision() == "fp32"
    assert compute(CPU).dtype == torch.float32
    monkeypatch.setenv(PRECISION_VARIABLE, "bf16")
    assert compute(CPU).dtype == torch.bfloat16
    monkeypatch.setenv(PRECISION_VARIABLE, "half")
    with pytest.raises(ValueError, match=f"{PRECISION_VARIABLE}='half'.*auto, fp32, bf16"):
        requested_precision()


def test_the_thread_cap_comes_from_the_environment_or_the_command_line(monkeypatch):
    from typer.testing import CliRunner

    from synthreid.cli import app

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(THREADS_VARIABLE, "1")
        compute(CPU)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_VARIABLE, "none")
        with pytest.raises(ValueError, match=f"{THREADS_VARIABLE}='none'.*whole number"):
            compute(CPU)
        monkeypatch.delenv(THREADS_VARIABLE)
        result = CliRunner().invoke(app, ["--torch-threads", "3", "presets"])
        assert result.exit_code == 0 and __import__("os").environ[THREADS_VARIABLE] == "3"
        assert torch.get_num_threads() == 3  # from the command's start, whatever it runs
        monkeypatch.setenv(THREADS_VARIABLE, "0")
        refused = CliRunner().invoke(app, ["presets"])
        assert refused.exit_code == 2 and f"{THREADS_VARIABLE}='0'" in refused.output
    finally:
        monkeypatch.delenv(THREADS_VARIABLE, raising=False)
        torch.set_num_threads(before)


def test_bf16_autocast_runs_a_convolution_in_bf16():
    arithmetic = Compute(CPU, torch.bfloat16)
    conv = arithmetic.module(torch.nn.Conv2d(3, 4, 3))
    with arithmetic.autocast():
        out = conv(arithmetic.images(torch.rand(2, 3, 8, 8)))
    assert out.dtype == torch.bfloat16
    assert arithmetic.images(torch.rand(2, 3, 8, 8)).is_contiguous(
        memory_format=torch.channels_last)


def test_features_score_the_market_protocol_as_fp32_nchw_ones_whatever_the_training_arithmetic(
        tmp_path):
    dataset = read_dataset("market1501", write_toy_market(tmp_path / "toy", people=30))
    torch.manual_seed(0)
    model = ReidModel(ModelArgs(backbone="inception", embedding=0, features_after_bn=False),
                      {"d0": 20})
    images = torch.stack([EvalImages(dataset.train, 128, 64)[i] for i in range(len(dataset.train))])
    for module in model.modules():  # exact batch-norm statistics of these images
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model.embed(images)
    scores, features = [], []
    # bf16 forced: what `auto` picks on a CPU with native bf16 (and on CUDA), on any machine.
    for arithmetic in (Compute(CPU, torch.float32, channels_last=False),
                       Compute(CPU, torch.bfloat16, channels_last=True)):
        arithmetic.module(model)
        query, gallery = (extract_features(model, getattr(dataset, split), 128, 64, arithmetic)
                          for split in ("query", "gallery"))
        assert query.dtype == np.float32
        features.append(query)
        scores.append(protocols.market(
            query, np.array([r.pid for r in dataset.query]),
            np.array([r.camid for r in dataset.query]), gallery,
            np.array([r.pid for r in dataset.gallery]),
            np.array([r.camid for r in dataset.gallery])))
    # The features themselves (rankings of near-ties could hide a change; these cannot).
    assert features[0].std(axis=0).mean() > 0.05
    assert np.abs(features[0] - features[1]).max() < 1e-4 * np.abs(features[0]).max()
    assert abs(scores[0].mAP - scores[1].mAP) < 1e-4
    assert np.allclose(scores[0].cmc, scores[1].cmc, atol=1e-4)


def test_the_command_line_sets_precision_and_prints_its_version(monkeypatch):
    from typer.testing import CliRunner

    from synthreid import __version__
    from synthreid.cli import app

    monkeypatch.delenv(PRECISION_VARIABLE, raising=False)
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"synthreid {__version__}"
    result = CliRunner().invoke(app, ["--precision", "fp32", "status", "--help"])
    assert result.exit_code == 0
    assert requested_precision() == "fp32"
    result = CliRunner().invoke(app, ["--precision", "fp16", "status", "--help"])
    assert result.exit_code == 2 and "fp16" in result.output
