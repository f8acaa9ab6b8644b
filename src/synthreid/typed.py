"""The typed-config base every stage builds on: frozen pydantic models without unknown fields,
YAML reading, deep merges, one-line validation errors, and dumps (saved beside every output).
The generation schema is `scene/config.py`; re-id, refiner and experiment configs have their
own modules; all of them build on this one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer

from synthreid.errors import ConfigError

Interval = tuple[float, float]
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Frozen, no unknown fields. Options added after runs were planned are named in
    `omitted_when_none`: left out of dumps while unused, so a config or spec that does not use
    them dumps as before they existed, and the runs, jobs and experiment stages keyed by that
    dump keep their identity."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    omitted_when_none: ClassVar[tuple[str, ...]] = ()

    def _omitted(self) -> set[str]:
        return {name for name in self.omitted_when_none if getattr(self, name) is None}

    @model_serializer(mode="wrap")
    def _without_unused_options(self, handler):
        data = handler(self)
        for name in self._omitted() & set(data):
            del data[name]
        return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected YAML)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields at the top level")
    return data


def validate_model(model: type[M], data: dict[str, Any], source: object = "config") -> M:
    """Build a typed config; the first bad field becomes one ConfigError line naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {first_error(error)}") from None


def first_error(error: ValidationError) -> str:
    """A validation error's first problem as `field.path: message` (a whole-model check names
    its own fields in its message, so it stands alone)."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{field + ': ' if field else ''}{message}"


def differing_keys(saved: dict[str, Any], asked: dict[str, Any],
                   ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted names of the settings where two plain (YAML/JSON) configs differ."""
    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                out.update(flat(item, f"{prefix}{key}."))
            return out
        return {prefix.rstrip("."): value}

    a, b = flat(saved), flat(asked)
    return [key for key in dict.fromkeys([*a, *b]) if key not in ignore and a.get(key) != b.get(key)]


def dump_config(config: BaseModel) -> str:
    """A frozen config (of any stage) as YAML, saved next to every output."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
