"""Attribute descent (Yao et al., ICCV 2019): one attribute at a time, every candidate value is
rendered with the same people and views, scored against the target's training crops, and the
best kept when it beats the current settings; all attributes in order, for a few rounds.

Everything a fit computes is kept in its folder: each candidate's distance, time and contact
sheet under `evaluations/` (keyed by what was rendered, how it was scored and the code version,
so a changed objective or fit is never served a stale distance), its renders in the fit's own
job database and storage. A killed fit, run again, picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from synthreid import atomic
from synthreid.errors import ConfigError
from synthreid.evaluate.realism import STATISTICS_VERSION, Objective
from synthreid.fit.attributes import ATTRIBUTES
from synthreid.fit.config import FitConfig
from synthreid.fit.renders import CandidateRenders
from synthreid.progress import Reporter, report
from synthreid.render.contact_sheet import compose
from synthreid.scene.config import ALL_PRESETS, GenerationConfig, config_from_dict, load_config
from synthreid.seeds import RunStream
from synthreid.typed import deep_merge

FIT_VERSION = 1  # bump when the search, the renders it asks for or its records change meaning
SHEET_CELL_PX = 64


@dataclass
class Step:
    round: int
    attribute: str
    candidates: list[float]
    distances: list[float]
    before: float  # the distance of the settings the step started from
    chosen: float | None  # None: no candidate beat them, the attribute stays as it was
    seconds: float
    sheets: list[str]


@dataclass
class FitResult:
    out: Path
    start_distance: float
    distance: float
    values: dict[str, float]  # the fitted attributes (those a step changed)
    preset_values: dict[str, float]  # the same attributes as the preset has them
    steps: list[Step] = field(default_factory=list)
    budget_reached: bool = False
    minutes: float = 0.0


def target_crops(target: str, count: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Up to `count` training crops of the target, drawn with the fit's seed; only the training
    split is opened."""
    from synthreid.refine.data import training_records

    records = training_records(target)
    rng = np.random.default_rng([seed, RunStream.FIT_TARGET])
    chosen = sorted(rng.choice(len(records), min(count, len(records)), replace=False))
    paths = [records[i].path for i in chosen]
    crops = []
    for path in paths:
        with Image.open(path) as image:
            crops.append(np.asarray(image.convert("RGB")))
    return crops, [str(p) for p in paths]


def _fingerprint(crops: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for crop in crops:
        digest.update(np.ascontiguousarray(crop).tobytes())
    return digest.hexdigest()[:16]


def _render_height(preset: GenerationConfig, crops: list[np.ndarray], asked: int | None) -> int:
    if asked is not None:
        return asked
    median = int(np.median([c.shape[0] for c in crops]))
    return max(32, min(preset.crop.height_px, -(-median // 8) * 8))


class Fit:
    def __init__(self, preset: str, target: str, out: str | Path, config: FitConfig,
                 db_url: str | None = None, storage_url: str | None = None,
                 workers: int | None = None, progress: Reporter | None = None) -> None:
        self.out = Path(out)
        self.config, self.progress = config, progress
        self.preset_name = preset if preset in ALL_PRESETS else str(Path(preset).resolve())
        preset_config = load_config(preset)
        self.target = target
        self.crops, self.target_paths = target_crops(target, config.target_images, config.seed)
        render = {"crop": {"height_px": _render_height(preset_config, self.crops,
                                                       config.crop_height_px)}}
        if config.engine is not None:
            render["render"] = {"engine": config.engine}
        if config.samples is not None:
            render.setdefault("render", {})["samples"] = config.samples
        self.render_overrides = render
        self.base = config_from_dict(deep_merge(preset_config.model_dump(mode="json"), render),
                                     f"fit of {preset}")
        self.settings = {"fit_version": FIT_VERSION, "preset": self.preset_name,
                         "preset_config": preset_config.model_dump(mode="json"),
                         "target": target, "target_crops": _fingerprint(self.crops),
                         "fit": config.model_dump(mode="json")}
        self._claim_folder()
        db_url = db_url or f"sqlite:///{(self.out / 'farm.db').resolve()}"
        storage_url = storage_url or str(self.out / "storage")
        self.renders = CandidateRenders(db_url, storage_url, config.characters,
                                        config.images_per_character, config.seed, workers,
                                        progress)
        self.objective = Objective(config.objective, self.crops)

    def _claim_folder(self) -> None:
        """The folder holds this fit (resumed) or nothing: a fit of other settings, or anything
        else a user keeps there, is never mixed in or overwritten."""
        record = self.out / "settings.json"
        if record.exists():
            if json.loads(record.read_text()) != self.settings:
                raise ConfigError(f"{self.out}: holds a fit of other settings (see its "
                                  f"settings.json); choose a new --out")
            return
        if self.out.exists() and any(self.out.iterdir()):
            raise ConfigError(f"{self.out}: folder exists and is not a fit's; choose a new --out")
        atomic.write_text(record, json.dumps(self.settings, indent=1, sort_keys=True))

    # -- candidates ---------------------------------------------------------------------------

    def config_for(self, values: dict[str, float]) -> GenerationConfig:
        data = self.base.model_dump(mode="json")
        for name, value in values.items():
            data = deep_merge(data, ATTRIBUTES[name].overrides(value, self.base))
        return config_from_dict(data, "fitted settings")

    def _key(self, config: GenerationConfig) -> str:
        what = {"config": config.model_dump(mode="json"), "fit_version": FIT_VERSION,
                "objective": self.config.objective, "statistics": STATISTICS_VERSION,
                "target": self.settings["target_crops"], "seed": self.config.seed,
                "characters": self.config.characters,
                "images": self.config.images_per_character}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def _record(self, key: str) -> Path:
        return self.out / "evaluations" / f"{key}.json"

    def evaluate(self, configs: list[GenerationConfig]) -> list[dict[str, Any]]:
        """Each config's distance, seconds and contact sheet, rendering what is missing."""
        keys = [self._key(c) for c in configs]
        new = [i for i, k in enumerate(keys) if not self._record(k).exists()]
        if not new:
            return [json.loads(self._record(k).read_text()) for k in keys]
        calibration_seconds = 0.0
        if not self.objective.calibrated:  # the preset's renders come first, and count here
            _, calibration_seconds = self.renders.ensure([self.base])
            self.objective.calibrate(self.renders.crops(self.base))
        _, render_seconds = self.renders.ensure([configs[i] for i in new])
        render_seconds += calibration_seconds
        share = render_seconds / max(1, len(new))
        for i in new:
            started = time.perf_counter()
            crops = self.renders.crops(configs[i])
            distance = self.objective.distance(crops)
            sheet = self.out / "evaluations" / f"{keys[i]}.png"
            per_row = self.config.images_per_character
            rows = [[Image.fromarray(c) for c in crops[r:r + per_row]]
                    for r in range(0, len(crops), per_row)]
            with atomic.atomic_path(sheet) as tmp:
                compose(rows, SHEET_CELL_PX, 2).save(tmp)
            atomic.write_text(self._record(keys[i]), json.dumps({
                "distance": distance, "seconds": share + time.perf_counter() - started,
                "run": self.renders.run_name(configs[i]), "sheet": sheet.name,
                "images": len(crops), "config": configs[i].model_dump(mode="json")}))
        return [json.loads(self._record(k).read_text()) for k in keys]

    # -- the descent --------------------------------------------------------------------------

    def run(self) -> FitResult:
        searched = [s.name for s in self.config.attributes]
        start, = self.evaluate([self.base])
        result = FitResult(self.out, start["distance"], start["distance"], {},
                           {name: ATTRIBUTES[name].read(self.base) for name in searched},
                           minutes=start["seconds"] / 60)
        total = self.config.rounds * len(self.config.attributes)
        for round_index in range(self.config.rounds):
            for search in self.config.attributes:
                if result.minutes >= self.config.budget_minutes:
                    result.budget_reached = True
                    return self._finish(result)
                report(self.progress, "fit", len(result.steps), total)
                configs = [self.config_for({**result.values, search.name: v})
                           for v in search.candidates]
                evaluations = self.evaluate(configs)
                distances = [e["distance"] for e in evaluations]
                best = int(np.argmin(distances))
                chosen = search.candidates[best] if distances[best] < result.distance else None
                seconds = sum(e["seconds"] for e in evaluations)
                result.steps.append(Step(round_index + 1, search.name, list(search.candidates),
                                         distances, result.distance, chosen, seconds,
                                         [e["sheet"] for e in evaluations]))
                result.minutes += seconds / 60
                if chosen is not None:
                    result.values[search.name] = chosen
                    result.distance = distances[best]
        report(self.progress, "fit", total, total)
        return self._finish(result)

    def fitted_config(self, result: FitResult) -> dict[str, Any]:
        """The generation YAML of the fit: the preset, the fit's render size, the fitted values."""
        data: dict[str, Any] = {"extends": self.preset_name,
                                "name": f"{Path(self.preset_name).stem}-fit",
                                "description": f"{Path(self.preset_name).stem} fitted to "
                                               f"{self.target} by synthreid fit"}
        data = deep_merge(data, self.render_overrides)
        for name, value in result.values.items():
            data = deep_merge(data, ATTRIBUTES[name].overrides(value, self.base))
        return data

    def _finish(self, result: FitResult) -> FitResult:
        from synthreid.fit.report import write_report

        fitted = self.fitted_config(result)
        path = self.out / "fit.yaml"
        atomic.write_text(path, "# Written by synthreid fit; values found by attribute "
                                "descent (see report.html).\n"
                          + yaml.safe_dump(fitted, sort_keys=False))
        load_config(path)  # what was written loads as a preset
        atomic.write_text(self.out / "fit.json", json.dumps(
            {**{k: v for k, v in asdict(result).items() if k != "out"},
             "target_crops": self.target_paths[:20]}, indent=1))
        write_report(self, result)
        return result
