"""The typed description of a re-id training run, its recipes, and how it is loaded and saved.

A run is one `TrainConfig`: a recipe (`modern` or `openreid`, YAML files in `recipes/`), then a
user's YAML file (`--config run.yaml`), then command-line flags, each overriding the one before.
The resolved config is saved as `config.yaml` in the run folder; a resume must match it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from synthreid.errors import ConfigError
from synthreid.limits import MAX_EPOCHS
from synthreid.reid.data import INPUT_SIZE, Augment
from synthreid.reid.losses import LossConfig
from synthreid.reid.model import ModelArgs
from synthreid.typed import Strict, deep_merge, read_yaml, validate_model

RECIPES = ("modern", "openreid")
# Settings that change how fast a run goes, never what it computes: a resume may change them.
RUNTIME_ONLY = ("workers",)


class TrainConfig(Strict):
    recipe: str = "modern"  # the recipe this config started from
    data: list[str] = Field(default_factory=list)  # LAYOUT:ROOT or dataset YAML files
    out: str | None = None
    model: ModelArgs = ModelArgs()
    pretrained: str | None = None  # resnet50: torchvision ImageNet weights file
    loss: LossConfig = LossConfig()
    augment: Augment = Augment()
    epochs: int = Field(60, ge=1, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: int = Field(2, ge=0)
    schedule: Literal["step", "cosine"] = "step"
    milestones: list[int] = Field(default_factory=lambda: [40])
    gamma: float = Field(0.1, gt=0, le=1)
    batch_size: int = Field(64, ge=2)  # softmax only: random batches of this size
    p: int = Field(16, ge=2)  # P x K batches whenever the triplet loss is on
    k: int = Field(4, ge=1)
    workers: int = Field(2, ge=0)
    seed: int = Field(0, ge=0)
    validation_ids: int = Field(100, ge=2)
    validation_repeats: int = Field(10, ge=1)
    early_stop: int = Field(0, ge=0)  # epochs without a better validation score; 0: never
    init: str | None = None  # finetuning: load f from this checkpoint, fresh classifiers
    finetune_lr_factor: float = Field(0.1, gt=0)  # f's learning rate is this times the base
    mix_ratio: int = Field(1, ge=1)  # with two datasets: batches of the first per one of the 2nd
    joint_head: bool = False  # with two datasets: one classifier over both id sets
    select_on: int = Field(0, ge=0)  # the dataset whose validation area picks best.pt

    @model_validator(mode="after")
    def _resolved(self) -> TrainConfig:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe: expected one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.pretrained and self.model.backbone != "resnet50":
            raise ValueError("pretrained: only the resnet50 backbone loads ImageNet weights")
        if len(self.data) > 2:
            raise ValueError("data: train on one dataset, or mix exactly two")
        late = [m for m in self.milestones if m >= self.epochs]
        if self.schedule == "step" and late:
            # A decay that never happens trains the whole run at the peak rate, unnoticed.
            raise ValueError(f"milestones: {late} at or past the last epoch (epochs: "
                             f"{self.epochs}, counted from 0): the learning rate would never "
                             f"decay; give milestones below the epochs (--milestone N) or the "
                             f"cosine schedule")
        if self.data and self.select_on >= len(self.data):
            raise ValueError(f"select_on: {self.select_on} names no dataset of {len(self.data)}")
        if self.augment.height is None or self.augment.width is None:
            height, width = INPUT_SIZE[self.model.backbone]
            size = {"height": self.augment.height or height, "width": self.augment.width or width}
            object.__setattr__(self, "augment", self.augment.model_copy(update=size))
        return self


def recipe_fields(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"recipe: expected one of {', '.join(RECIPES)}, got {name!r}")
    text = resources.files("synthreid.reid.recipes").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_train_config(config_file: str | Path | None = None, recipe: str | None = None,
                      overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Recipe, then the YAML file, then `overrides` (nested dicts, e.g. from flags). The recipe
    is `recipe`, else the file's `recipe:` key, else `modern`."""
    from_file = read_yaml(Path(config_file).expanduser()) if config_file else {}
    name = recipe or from_file.get("recipe") or "modern"
    data = deep_merge(deep_merge(recipe_fields(str(name)), from_file), overrides or {})
    data["recipe"] = name
    return validate_model(TrainConfig, data, config_file or f"recipe {name}")


def read_saved_config(path: Path) -> TrainConfig:
    return validate_model(TrainConfig, read_yaml(path), path)
