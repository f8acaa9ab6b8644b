"""The typed description of an experiment (`synthreid experiment CONFIG.yaml`): which real data,
which presets at which size, which refiners, how re-id models train and how they are scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from synthreid.errors import ConfigError
from synthreid.evaluate import PROTOCOLS
from synthreid.limits import MAX_CHARACTERS, MAX_IMAGES_PER_CHARACTER
from synthreid.scene.config import ALL_PRESETS, PRESET_NAMES
from synthreid.typed import Strict, deep_merge, first_error, read_yaml, validate_model


class Generation(Strict):
    # At least 8: the export holds a quarter out as test ids, and a CMC needs 2 of them.
    characters: int = Field(1500, ge=8, le=MAX_CHARACTERS)  # the thesis: 1500 x 10 a preset
    images: int = Field(10, ge=2, le=MAX_IMAGES_PER_CHARACTER)
    crop_height: int | None = Field(None, ge=32, le=2048)  # None: the preset's
    engine: Literal["cycles", "workbench"] | None = None  # None: the preset's
    samples: int | None = Field(None, ge=1)  # Cycles samples; None: the preset's
    workers: int | None = Field(None, ge=1)  # local render workers; None: one per core
    image_format: Literal["jpg", "png"] = "jpg"


class Refiners(Strict):
    """Which refiners per preset (default: the thesis' CycleGAN for each, PTGAN for IV) and the
    settings they share (those of `synthreid refiner train`)."""
    methods: dict[str, list[Literal["cyclegan", "ptgan", "cut", "spgan"]]] = Field(
        default_factory=lambda: {"I": ["cyclegan"], "II": ["cyclegan"], "III": ["cyclegan"],
                                 "IV": ["cyclegan", "ptgan"]})
    settings: dict[str, Any] = Field(default_factory=lambda: {"iterations": 20000})
    # With reid.seeds: every extra seed trains the refiners again too (refiner-IV-cyclegan-seed1,
    # applied by refine-IV-cyclegan-seed1), and that seed's refined models learn from their
    # images, so a refined row's spread over seeds includes the refiner's, not only the re-id
    # model's. Off: one refiner per method.
    per_seed: bool = False


class Reid(Strict):
    """`reid train` settings for every model (recipe, then `settings` as a TrainConfig's fields);
    finetuning starts from a model's best epoch at `finetune_lr_factor` for f."""
    recipe: Literal["modern", "openreid"] = "modern"
    settings: dict[str, Any] = Field(default_factory=dict)
    real: dict[str, Any] = Field(default_factory=dict)  # overrides for the real-only model
    finetune: dict[str, Any] = Field(default_factory=dict)  # overrides for finetuned models
    # More training seeds: every model (and its scores) again with each, on the same data
    # (renders, and refiners unless refiners.per_seed, keep the experiment's seed), so a table
    # says how far one seed moves a row. The experiment's `seed` is always the first.
    seeds: list[int] = Field(default_factory=list)
    # Off: the real-only model trains once, with the experiment's seed, when a comparison needs
    # only the generated models' spread (the real model is often the longest training).
    real_seeds: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> Reid:
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: expected distinct seeds >= 0, got {self.seeds}")
        return self


class Evaluation(Strict):
    repeats: int = Field(10, ge=1)  # draws of the thesis' 100-id single-shot protocol
    standard: str | None = "market"  # the dataset's standard protocol; None: none
    # More protocols scored on the real test ids, for comparison (e.g. thesis-mixed, the
    # thesis draw that ignores real cameras).
    compare: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0)


class ExperimentConfig(Strict):
    # The real dataset: LAYOUT:ROOT or a dataset YAML (its training ids are used). Without one,
    # only the generated models and their own test ids remain (what `synthreid demo` runs).
    real: str | None = None
    second_real: str | None = None  # Figure A.2: does a model generalise to another dataset?
    # Preset names, or generation YAML files (relative to this config; e.g. IV plus a realism
    # lever), each named by its file's stem in stages and tables.
    presets: list[str] = Field(default_factory=lambda: list(PRESET_NAMES))
    generation: Generation = Generation()
    refiners: Refiners = Refiners()
    reid: Reid = Reid()
    # Models first trained on these, then on the real training ids (Table 3.4). Names are model
    # names: generated-P, refined-P-METHOD.
    finetune: list[str] = Field(default_factory=lambda: [
        "generated-IV", "refined-IV-cyclegan", "refined-IV-ptgan"])
    # Real and synthetic training ids together (the thesis' future work), one model each.
    mixed: list[str] = Field(default_factory=lambda: ["refined-IV-cyclegan"])
    evaluation: Evaluation = Evaluation()
    db: str | None = None  # job database URL; None: SQLite in the experiment folder
    storage: str | None = None  # render storage URL; None: a folder in the experiment folder
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        unknown = [p for p in self.presets if p not in ALL_PRESETS
                   and not (p.endswith((".yaml", ".yml")) and Path(p).is_file())]
        if unknown or not self.presets:
            raise ValueError(f"presets: expected names among {', '.join(ALL_PRESETS)} or "
                             f"existing .yaml files, got {unknown or self.presets}")
        labels = [preset_label(p) for p in self.presets]
        looks_seeded = [label for label in labels if unseeded(label)[1] is not None]
        if looks_seeded:
            raise ValueError(f"presets: {looks_seeded} end like a training seed's models "
                             f"(-seedN); rename the file")
        if len(set(labels)) != len(labels):
            raise ValueError(f"presets: two presets share a name ({labels})")
        for preset, methods in self.refiners.methods.items():
            if preset not in labels:
                raise ValueError(f"refiners.methods: preset {preset!r} is not in presets")
            if len(set(methods)) != len(methods):
                raise ValueError(f"refiners.methods.{preset}: a method is named twice")
        if self.real is None and (self.second_real or self.finetune or self.mixed or any(
                self.refiners.methods.values())):
            raise ValueError("real: refiners, finetuned, mixed models and a second_real need a "
                             "real dataset (or set refiners.methods: {}, finetune: [], "
                             "mixed: [])")
        known = set(self.synthetic_models())
        for field in ("finetune", "mixed"):
            for name in getattr(self, field):
                if name not in known:
                    raise ValueError(f"{field}: {name!r} is no model of this experiment "
                                     f"(known: {', '.join(sorted(known))})")
        if self.evaluation.standard is not None and self.evaluation.standard not in PROTOCOLS:
            raise ValueError(f"evaluation.standard: expected one of {', '.join(PROTOCOLS)}")
        unknown = [p for p in self.evaluation.compare if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"evaluation.compare: {unknown} not among {', '.join(PROTOCOLS)}")
        if self.seed in self.reid.seeds:
            raise ValueError(f"reid.seeds: {self.seed} is the experiment's seed, which every "
                             f"model trains with first; list only the extra seeds")
        if self.refiners.per_seed and not self.reid.seeds:
            raise ValueError("refiners.per_seed: retrains the refiners with each of reid.seeds, "
                             "and reid.seeds is empty; list the extra seeds there")
        if (self.db is None) != (self.storage is None):
            raise ValueError("db and storage: give both (a farm) or neither (local)")
        self._check_stage_settings()
        return self

    def model_settings(self) -> dict[str, dict[str, Any]]:
        """Each kind of model's `reid train` overrides, by the config fields they come from."""
        base = {**self.reid.settings, "seed": self.seed, "out": "run"}
        kinds = {"reid.settings": {**base, "data": ["generated"]}}
        if self.real:
            kinds["reid.real"] = deep_merge(base, {**self.reid.real, "data": ["real"]})
        if self.finetune:
            kinds["reid.finetune"] = deep_merge(base, {**self.reid.finetune, "data": ["real"],
                                                       "init": "model.pt"})
        if self.mixed:
            kinds["mixed"] = {**base, "data": ["real", "generated"]}
        return kinds

    def _check_stage_settings(self) -> None:
        """Build every stage's typed settings now, so a typo stops the experiment before it
        renders, not hours later when its stage comes."""
        from synthreid.refine.config import RefinerConfig
        from synthreid.reid.config import TrainConfig, recipe_fields

        for where, overrides in self.model_settings().items():
            _check_fields(TrainConfig, deep_merge(recipe_fields(self.reid.recipe), overrides),
                          where)
        for preset, methods in self.refiners.methods.items():
            for method in methods:
                _check_fields(RefinerConfig, {**self.refiners.settings, "method": method,
                                              "source": "generated", "target": "real",
                                              "out": "refiner"}, "refiners.settings")

    def synthetic_models(self) -> list[str]:
        names = [f"generated-{preset_label(p)}" for p in self.presets]
        for preset in map(preset_label, self.presets):
            names += [f"refined-{preset}-{m}" for m in self.refiners.methods.get(preset, [])]
        return names


def _check_fields(model, data: dict[str, Any], where: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as error:
        problem = first_error(error)  # "field: message", or a whole-model "message"
        joiner = "." if error.errors()[0]["loc"] else ": "
        raise ValueError(f"{where}{joiner}{problem}") from None


def preset_label(entry: str) -> str:
    """A preset's name in stages and tables: the preset's, or a YAML file's stem."""
    return entry if entry in ALL_PRESETS else Path(entry).stem


SEED_SUFFIX = "-seed"  # generated-IV-seed1: generated-IV trained with extra seed 1


def seeded(name: str, seed: int, config: ExperimentConfig) -> str:
    """A model's name when trained with `seed`: the experiment's seed keeps the plain name."""
    return name if seed == config.seed else f"{name}{SEED_SUFFIX}{seed}"


def unseeded(name: str) -> tuple[str, int | None]:
    """(the model's plain name, the extra training seed in `name` or None)."""
    base, sep, seed = name.rpartition(SEED_SUFFIX)
    return (base, int(seed)) if sep and seed.isdigit() else (name, None)


def load_experiment_config(path: str | Path, real: str | None = None) -> ExperimentConfig:
    """The config in `path`; `real` (as given on the command line) replaces its `real`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment config")
    data = read_yaml(path)
    for key in ("real", "second_real"):  # dataset paths are relative to the config's folder
        value = data.get(key)
        if isinstance(value, str):
            data[key] = _beside(path, value)
    if isinstance(data.get("presets"), list):  # and so are preset files
        data["presets"] = [str(_absolute(path, p)) if isinstance(p, str) and
                           p.endswith((".yaml", ".yml")) else p for p in data["presets"]]
    if real is not None:  # relative to where the command runs
        data["real"] = _beside(Path.cwd() / "command line", real)
    config = validate_model(ExperimentConfig, data, path)
    check_datasets(config, path)
    return config


def check_datasets(config: ExperimentConfig, source: object) -> None:
    """Open the real datasets' training splits (images unchecked, test images unopened) now,
    so a wrong path or layout is one line before hours of rendering."""
    from synthreid.datasets import open_dataset
    from synthreid.errors import SynthReidError

    for field in ("real", "second_real"):
        spec = getattr(config, field)
        if spec is None:
            continue
        try:
            dataset = open_dataset(spec, check_images=False)
        except SynthReidError as error:
            raise ConfigError(f"{source}: {field}: {error}") from None
        if field == "real" and len({r.pid for r in dataset.train}) < 2:
            raise ConfigError(f"{source}: real: {spec} has {len(dataset.train)} training "
                              f"images of fewer than 2 ids; refiners and real models need more")


def _beside(config: Path, spec: str) -> str:
    if spec.endswith((".yaml", ".yml")):
        return str(_absolute(config, spec))
    layout, sep, root = spec.partition(":")
    return f"{layout}:{_absolute(config, root)}" if sep and root else spec


def _absolute(config: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config.parent / path).resolve()

