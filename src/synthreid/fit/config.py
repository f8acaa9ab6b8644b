"""The fit's settings, typed and loaded from YAML: which attributes to search (in order) and
their candidates, how many people each candidate renders, the objective and the time budget.
The defaults suit preset IV and crops of re-id size."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from synthreid.fit.attributes import ATTRIBUTES
from synthreid.typed import Strict, read_yaml, validate_model


class AttributeSearch(Strict):
    name: str
    candidates: list[float] = Field(min_length=2)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {name!r}; expected one of "
                             f"{', '.join(ATTRIBUTES)}")
        return name


def _default_search() -> list[AttributeSearch]:
    # Camera effects first: they cost no renders. Then the camera's pitch and the person's
    # scale, then the light, then the lens and distance (which change the crop least).
    return [AttributeSearch(name=a.name, candidates=list(a.default_candidates))
            for a in ATTRIBUTES.values()]


class FitConfig(Strict):
    attributes: list[AttributeSearch] = Field(default_factory=_default_search, min_length=1)
    rounds: int = Field(2, ge=1, le=10)
    characters: int = Field(12, ge=1, le=500)  # the same people for every candidate
    images_per_character: int = Field(5, ge=1, le=50)
    seed: int = 0
    target_images: int = Field(300, ge=8)  # training crops of the target, drawn once
    budget_minutes: float = Field(40.0, gt=0)
    objective: Literal["combined", "statistics", "random-features"] = "combined"
    # The renders: None keeps the preset's engine and samples; crop height None takes the
    # target's median crop height (at most the preset's), since finer renders add nothing.
    engine: Literal["cycles", "workbench"] | None = None
    samples: int | None = Field(None, ge=1, le=4096)
    crop_height_px: int | None = Field(None, ge=32, le=2048)

    @field_validator("attributes")
    @classmethod
    def _once(cls, searches: list[AttributeSearch]) -> list[AttributeSearch]:
        names = [s.name for s in searches]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"attribute {twice[0]!r} is listed twice")
        return searches


def load_fit_config(path: str | Path | None) -> FitConfig:
    if path is None:
        return FitConfig()
    return validate_model(FitConfig, read_yaml(Path(path)), Path(path))
