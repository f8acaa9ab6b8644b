"""The whole chain at a tiny size on the embedded defaults: an experiment of one preset whose
generation goes through a SQLite job database and local workers, a re-id model trained on the
export's training ids and scored on its held-out test ids, with the experiment's report.
Given a real dataset, a small CycleGAN refiner joins, and the refined, real-only and finetuned
(refined, then real) models are scored on the real test ids too.

    from synthreid.experiment.demo import run_demo
    run_demo("out/demo")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthreid.experiment.config import ExperimentConfig, preset_label
from synthreid.experiment.matrix import Experiment, open_experiment
from synthreid.typed import validate_model

# A refiner small enough for minutes on a CPU: the reference networks at 64x32.
DEMO_REFINER = {"iterations": 300, "height": 64, "width": 32, "blocks": 6, "sample_every": 100,
                "checkpoint_every": 50, "log_every": 10}


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    report: dict
    table: str


def demo_config(preset: str = "IV", characters: int = 40, images: int = 6, epochs: int = 15,
                seed: int = 0, engine: str | None = None, workers: int | None = None,
                real: str | None = None) -> ExperimentConfig:
    fields = {
        "presets": [preset],
        "generation": {"characters": characters, "images": images, "crop_height": 128,
                       "engine": engine, "workers": workers},
        "refiners": {"methods": {preset: ["cyclegan"]} if real else {},
                     "settings": DEMO_REFINER},
        "reid": {"recipe": "modern", "settings": {
            "model": {"embedding": 128}, "augment": {"height": 128, "width": 64, "pad": 6},
            "epochs": epochs, "lr": 0.05, "warmup_epochs": 1,
            "milestones": [max(epochs - 2, 1)], "batch_size": 32, "workers": 0,
            "validation_repeats": 5},
            # A real set is larger than the demo's export: fewer epochs keep it to minutes.
            "real": {"epochs": max(2, epochs // 3), "milestones": [max(epochs // 3 - 1, 1)]},
            "finetune": {"epochs": max(2, epochs // 5), "warmup_epochs": 0,
                         "milestones": [max(epochs // 5 - 1, 1)]}},
        "finetune": [f"refined-{preset}-cyclegan"] if real else [],
        "mixed": [],
        "real": real,
        "evaluation": {"repeats": 10, "standard": "market", "seed": seed},
        "seed": seed,
    }
    return validate_model(ExperimentConfig, fields, "demo")


def open_demo(out: str | Path, preset: str = "IV", characters: int = 40, images: int = 6,
              epochs: int = 15, seed: int = 0, engine: str | None = None,
              workers: int | None = None, real: str | None = None, say=print, progress=None,
              overwrite: bool = False) -> Experiment:
    """The demo's experiment, checked and given its folder; `.run()` runs it."""
    config = demo_config(preset, characters, images, epochs, seed, engine, workers, real)
    return open_experiment(config, out, say=say, progress=progress,
                           title=f"synthreid demo: preset {preset}", overwrite=overwrite)


def demo_result(experiment: Experiment) -> DemoResult:
    preset = preset_label(experiment.config.presets[0])
    dataset = Path(experiment.results[f"generate-{preset}"]["dataset"].partition(":")[2])
    return DemoResult(out=experiment.out, dataset=dataset, report=experiment.report,
                      table=experiment.report["summary"].read_text())


def run_demo(out: str | Path, preset: str = "IV", characters: int = 40, images: int = 6,
             epochs: int = 15, seed: int = 0, engine: str | None = None, workers: int | None = None,
             real: str | None = None, say=print, progress=None,
             overwrite: bool = False) -> DemoResult:
    experiment = open_demo(out, preset, characters, images, epochs, seed, engine, workers, real,
                           say, progress, overwrite)
    experiment.run()
    return demo_result(experiment)
