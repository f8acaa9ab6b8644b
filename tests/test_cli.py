"""The command line's vocabulary: fixed choices are listed in --help and refused by name, and
each list matches the config field it feeds (the CLI keeps its own copy to start fast)."""

import re
import typing

import pytest
from typer.testing import CliRunner

from synthreid import cli
from synthreid.cli import app
from synthreid.evaluate import PROTOCOLS
from synthreid.fit.config import FitConfig
from synthreid.refine.config import RefinerConfig
from synthreid.reid.config import TrainConfig
from synthreid.reid.data import Augment
from synthreid.reid.model import ModelArgs
from synthreid.scene.config import CropConfig, RenderConfig


def literal(model, field):
    return tuple(typing.get_args(model.model_fields[field].annotation))


def test_choices_match_the_config_fields_they_feed():
    args = typing.get_args
    assert args(cli.Engine) == literal(RenderConfig, "engine")
    assert args(cli.CropMode) == literal(CropConfig, "mode")
    assert args(cli.Backbone) == literal(ModelArgs, "backbone")
    assert args(cli.TestOutput) == literal(ModelArgs, "test_output")
    assert args(cli.Optimizer) == literal(TrainConfig, "optimizer")
    assert args(cli.Schedule) == literal(TrainConfig, "schedule")
    assert args(cli.AugmentCrop) == literal(Augment, "crop")
    assert args(cli.FitObjective) == literal(FitConfig, "objective")
    assert args(cli.Method) == literal(RefinerConfig, "method")
    assert args(cli.ProtocolName) == PROTOCOLS


def plain(text):
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


@pytest.mark.parametrize("command, shown", [
    (["preview"], "<cycles|workbench>"),
    (["reid", "train"], "<inception|resnet50>"),
    (["reid", "eval"], "<thesis|thesis-mixed|market"),
    (["refiner", "train"], "<cyclegan|ptgan|cut|spgan>"),
    (["fit"], "<combined|statistics|random-features>"),
])
def test_help_lists_the_choices(command, shown):
    result = CliRunner().invoke(app, command + ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert shown in plain(result.output)


def test_a_value_outside_the_choices_is_refused_naming_them(tmp_path):
    result = CliRunner().invoke(app, ["preview", "IV", "--engine", "eevee", "--out",
                                      str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "'eevee' is not one of 'cycles', 'workbench'" in plain(result.output)
    assert not (tmp_path / "p").exists()


def test_reid_train_calls_its_loader_processes_loader_workers_and_keeps_the_old_spelling():
    runner = CliRunner()
    for flag in ("--loader-workers", "--workers"):
        result = runner.invoke(app, ["reid", "train", flag, "3", "--print-config"])
        assert result.exit_code == 0, result.output
        assert "workers: 3" in result.output
    shown = plain(runner.invoke(app, ["reid", "train", "--help"],
                                env={"COLUMNS": "200"}).output)
    assert "--loader-workers" in shown and "--workers " not in shown


def test_image_sizes_are_height_x_width_everywhere():
    runner = CliRunner()
    result = runner.invoke(app, ["reid", "train", "--size", "256x128", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "height: 256" in result.output and "width: 128" in result.output
    old = runner.invoke(app, ["reid", "train", "--height", "192", "--width", "96",
                              "--print-config"])
    assert "height: 192" in old.output and "width: 96" in old.output
    bad = runner.invoke(app, ["reid", "train", "--size", "256by128", "--print-config"])
    assert bad.exit_code == 2 and "--size: expected HEIGHTxWIDTH" in plain(bad.output)
