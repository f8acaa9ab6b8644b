"""The thesis' experiment matrix (Tables 3.2-3.4, Figures A.1-A.2) as stages:

    generate-P          plan, render (job database + workers), export preset P
    masks-real          person masks for the real training images (when PTGAN is asked)
    refiner-P-M         train refiner M from P's export to the real training images, choose
                        the checkpoint that keeps identity
    refine-P-M          apply that checkpoint to P's export (its own stage, so a change to
                        how images are translated reuses the trained refiners)
    model-NAME          a re-id model: generated-P, refined-P-M, real, finetuned-NAME, mixed-NAME
    evaluate-NAME-ON    a model scored on the real test ids (thesis protocol + the standard
                        one), on its own export's test ids (A.1), on a second real set (A.2);
                        evaluate-hsv-on-real: the colour-histogram baseline, no model

Only `evaluate-*` stages open the real dataset's test images: every other stage reads it with
its images unchecked and uses its training split only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synthreid.errors import ConfigError, EvaluationError, JobError, RefineError
from synthreid.experiment.config import ExperimentConfig, preset_label, seeded
from synthreid.experiment.stages import Stage, run_stage
from synthreid.made_by import usable_folder
from synthreid.progress import Reporter, report
from synthreid.scene.config import check_assets, config_from_dict, load_config
from synthreid.typed import deep_merge, differing_keys

REAL = "real"
HSV = "hsv"  # the colour-histogram descriptor's row


@dataclass
class Plan:
    """Every stage of an experiment, in an order where inputs come first."""
    stages: list[Stage] = field(default_factory=list)
    by_name: dict[str, Stage] = field(default_factory=dict)

    def add(self, stage: Stage, root: Path) -> Stage:
        self.stages.append(stage.place(root))
        self.by_name[stage.name] = stage
        return stage


def _dataset_identity(spec: str) -> dict[str, Any]:
    """What names a user's dataset in stage keys: its spec, and a YAML's parsed contents (an
    edited comment or a re-wrapped line is the same dataset; a changed value is not)."""
    identity: dict[str, Any] = {"spec": spec}
    if spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        identity["yaml"] = yaml.safe_load(Path(spec).read_text())
    return identity


def generation_config(config: ExperimentConfig, preset: str):
    source = load_config(preset)
    check_assets(source, preset)  # a preset file's folders (textures, photos) exist
    data = source.model_dump()
    generation = config.generation
    if generation.crop_height:
        data["crop"]["height_px"] = generation.crop_height
    if generation.engine:
        data["render"]["engine"] = generation.engine
    if generation.samples:
        data["render"]["samples"] = generation.samples
    return config_from_dict(data, f"experiment preset {preset}")


def plan_experiment(config: ExperimentConfig, root: Path) -> Plan:
    plan = Plan()
    real = _dataset_identity(config.real) if config.real else None
    datasets: dict[str, Stage] = {}  # model name -> the stage that made its training data
    for entry in config.presets:
        preset = preset_label(entry)
        datasets[f"generated-{preset}"] = plan.add(Stage(
            f"generate-{preset}", "generate",
            {"preset": generation_config(config, entry).model_dump(mode="json"),
             "characters": config.generation.characters, "images": config.generation.images,
             "format": config.generation.image_format, "seed": config.seed}), root)
    masks = None
    if any("ptgan" in methods for methods in config.refiners.methods.values()):
        masks = plan.add(Stage("masks-real", "masks", {"real": real}), root)
    generated = dict(datasets)
    datasets.update(_plan_refiners(plan, config, root, generated, masks, real, config.seed))
    for seed in [config.seed, *config.reid.seeds]:
        if seed != config.seed and config.refiners.per_seed:
            trained_with = {**generated, **_plan_refiners(plan, config, root, generated, masks,
                                                          real, seed)}
        else:
            trained_with = datasets
        models = _plan_models(plan, config, root, trained_with, real, seed)
        if config.real and seed == config.seed:  # the no-learning baseline every model should beat
            plan.add(Stage(f"evaluate-{HSV}-on-real", "evaluate",
                           {**config.evaluation.model_dump(), "on": "real", "real": real,
                            "descriptor": "hsv"}), root)
        _plan_evaluations(plan, config, root, trained_with, real, models, seed)
    return plan


def _plan_refiners(plan: Plan, config: ExperimentConfig, root: Path,
                   generated: dict[str, Stage], masks: Stage | None,
                   real: dict[str, Any] | None, seed: int) -> dict[str, Stage]:
    """Every refiner trained with `seed` (named like the models of that seed), by the name of
    the model its images train."""
    refined: dict[str, Stage] = {}
    for preset, methods in config.refiners.methods.items():
        for method in methods:
            source = generated[f"generated-{preset}"]
            label = seeded(f"{preset}-{method}", seed, config)
            refiner = plan.add(Stage(
                f"refiner-{label}", "refiner",
                {"method": method, "real": real, "settings": config.refiners.settings,
                 "seed": seed}, [source] + ([masks] if method == "ptgan" else [])), root)
            refined[f"refined-{preset}-{method}"] = plan.add(Stage(
                f"refine-{label}", "refine", {"method": method, "seed": seed},
                [refiner, source]), root)
    return refined


def _plan_models(plan: Plan, config: ExperimentConfig, root: Path, datasets: dict[str, Stage],
                 real: dict[str, Any] | None, seed: int) -> dict[str, Stage]:
    """Every model trained with `seed`, on `datasets`: the renders of the experiment's seed,
    refined by the refiners of the experiment's seed or (refiners.per_seed) of `seed`."""
    reid = {"recipe": config.reid.recipe, "settings": config.reid.settings, "seed": seed}
    models: dict[str, Stage] = {}

    def add_model(name: str, settings: dict[str, Any], inputs: list[Stage]) -> None:
        models[name] = plan.add(Stage(f"model-{seeded(name, seed, config)}", "model", settings,
                                      inputs), root)

    for name, made_by in datasets.items():
        add_model(name, {**reid, "data": "synthetic"}, [made_by])
    if config.real and (seed == config.seed or config.reid.real_seeds):
        real_settings = deep_merge(reid, {"settings": config.reid.real})
        add_model(REAL, {**real_settings, "data": "real", "real": real}, [])
    finetune = deep_merge(reid, {"settings": config.reid.finetune})
    for name in config.finetune:
        add_model(f"finetuned-{name}", {**finetune, "data": "real", "real": real,
                                        "init": name}, [models[name]])
    for name in config.mixed:
        add_model(f"mixed-{name}", {**reid, "data": "mixed", "real": real}, [datasets[name]])
    return models


def _plan_evaluations(plan: Plan, config: ExperimentConfig, root: Path,
                      datasets: dict[str, Stage], real: dict[str, Any] | None,
                      models: dict[str, Stage], seed: int) -> None:
    """The stages that score the models trained with `seed`."""
    scoring = config.evaluation.model_dump()
    for name, model in models.items():
        label = seeded(name, seed, config)
        if config.real:
            plan.add(Stage(f"evaluate-{label}-on-real", "evaluate",
                           {**scoring, "on": "real", "real": real}, [model]), root)
        if name in datasets:  # Figure A.1: its own export's test ids (Market layout)
            plan.add(Stage(f"evaluate-{label}-on-own", "evaluate",
                           {**scoring, "on": "own", "standard": "market"},
                           [model, datasets[name]]), root)
        if config.second_real:  # Figure A.2
            plan.add(Stage(f"evaluate-{label}-on-second", "evaluate",
                           {**scoring, "on": "second", "standard": None,
                            "second": _dataset_identity(config.second_real)}, [model]), root)


class Experiment:
    """Runs a plan's stages in order, each through `run_stage` (skipped when finished)."""

    def __init__(self, config: ExperimentConfig, out: Path, say: Callable[[str], None] = print,
                 progress: Reporter | None = None) -> None:
        self.config, self.out = config, Path(out)
        self.plan = plan_experiment(config, self.out)
        self.say, self.progress = say, progress
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}  # stage name -> why `run` left it out
        self.report: dict[str, Path] = {}  # report.md and report.html, once written
        self.title = "synthreid experiment"

    @property
    def db_url(self) -> str:
        return self.config.db or f"sqlite:///{(self.out / 'jobs.db').resolve()}"

    @property
    def storage_url(self) -> str:
        return self.config.storage or str((self.out / "storage").resolve())

    def run(self) -> dict[str, dict]:
        """Every stage, then the report. `progress` hears of the stages ("stages", with each
        one's number) and of each running stage's own work (its name: epochs, iterations)."""
        from synthreid.experiment.report import write_experiment_report
        from synthreid.typed import dump_config

        total = len(self.plan.stages)
        for index, stage in enumerate(self.plan.stages):
            report(self.progress, "stages", index, total)
            why = self.left_out(stage)
            if why is None:
                with stage_lock(stage):
                    self.results[stage.name] = run_stage(stage, self._works[stage.kind])
            else:
                self.skipped[stage.name] = why
            report(self.progress, "stages", index + 1, total)
        self.report = write_experiment_report(self.plan.stages, self.results, self.out,
                                              dump_config(self.config), title=self.title,
                                              left_out=self.skipped)
        return self.results

    def left_out(self, stage: Stage) -> str | None:
        """Why `stage` is not run: a refiner upstream of it, finished, kept no identity; else
        None. Read from the finished stages' records, so any process asks it alike."""
        for needed in stage.inputs:
            if needed.kind == "refine" and needed.done and \
                    needed.record()["result"].get("dataset") is None:
                return f"{needed.name} kept no identity"
            why = self.left_out(needed)
            if why is not None:
                return why
        return None

    @property
    def _works(self) -> dict[str, Callable[[Stage], dict[str, Any]]]:
        return {"generate": self._generate, "masks": self._masks, "refiner": self._refiner,
                "refine": self._refine, "model": self._model, "evaluate": self._evaluate}

    def stage_table(self) -> list[dict[str, Any]]:
        """Every stage with its key, kind, the stages it needs and whether it is finished."""
        return [{"name": s.name, "kind": s.kind, "key": s.key,
                 "needs": [i.name for i in s.inputs], "done": s.done,
                 "left_out": self.left_out(s)} for s in self.plan.stages]

    def run_one(self, name: str) -> dict[str, Any]:
        """One stage whose inputs are finished (in another process, on another machine that
        shares `out`), so independent stages run at once; the report is left to a full run."""
        stage = next((s for s in self.plan.stages if s.name == name), None)
        if stage is None:
            raise ConfigError(f"--stage {name}: no such stage in this experiment "
                              f"(--list-stages lists them)")
        why = self.left_out(stage)
        if why is not None:
            raise ConfigError(f"--stage {name}: left out, {why} (nothing to run)")
        missing = [s.name for s in stage.inputs if not s.done]
        if missing:
            raise ConfigError(f"--stage {name}: needs {', '.join(missing)} finished first")
        for needed in stage.inputs:
            self.results[needed.name] = needed.record()["result"]
        with stage_lock(stage):
            self.results[name] = run_stage(stage, self._works[stage.kind])
        return self.results[name]

    def _inner(self, stage: Stage, done: int, total: int) -> None:
        report(self.progress, stage.name, done, total)

    def _result(self, stage: Stage) -> dict[str, Any]:
        return self.results[stage.name]

    # -- generation -------------------------------------------------------------------------

    def _generate(self, stage: Stage) -> dict[str, Any]:
        from synthreid.farm.db import connect
        from synthreid.farm.export import export_run
        from synthreid.farm.plan import plan_run
        from synthreid.farm.supervisor import render_run

        settings, preset = stage.settings, stage.name.removeprefix("generate-")
        config = config_from_dict(settings["preset"], f"experiment preset {preset}")
        run = f"{stage.name}-{stage.key}"
        dataset = stage.folder / "dataset"
        if not (dataset / "split.json").exists():
            stage.log(f"planning {settings['characters']} x {settings['images']} as run {run}")
            plan_run(connect(self.db_url), run, config, settings["characters"],
                     settings["images"], settings["seed"])
            stage.log("rendering")
            status = render_run(self.db_url, self.storage_url, self.config.generation.workers,
                                run)
            if status.jobs.get("failed"):
                raise JobError(f"{stage.name}: {status.jobs['failed']} characters failed to "
                               f"render (synthreid status --db {self.db_url} shows why)")
            stage.log("exporting")
            export_run(self.db_url, self.storage_url, run, dataset,
                       image_format=settings["format"])
        return {"dataset": f"synthetic:{dataset}", "run": run}

    # -- refinement -------------------------------------------------------------------------

    def _masks(self, stage: Stage) -> dict[str, Any]:
        """The real dataset with masks for its training images (PTGAN's real-side term): its
        own when it has them for every training image, else automatic ones."""
        from synthreid.datasets import open_dataset
        from synthreid.refine.masks import write_masks

        if all(r.mask is not None for r in open_dataset(self.config.real,
                                                        check_images=False).train):
            stage.log("the real dataset brings masks for all its training images")
            return {"dataset": self.config.real}
        masks = stage.folder / "masks"
        result = write_masks(self.config.real, masks, splits=("train",))
        stage.log(f"{result.written} masks written, {result.empty} without a person found")
        spec = _dataset_spec(self.config.real)
        spec["masks"] = str(masks)
        described = stage.folder / "real-masked.yaml"
        described.write_text(yaml.safe_dump(spec, sort_keys=False))
        open_dataset(str(described), check_images=False)  # it reads back as a dataset
        return {"dataset": str(described)}

    def _refiner(self, stage: Stage) -> dict[str, Any]:
        from synthreid.refine.config import RefinerConfig
        from synthreid.refine.train import RefinerTrainer
        from synthreid.typed import validate_model

        source = self._result(stage.inputs[0])["dataset"]
        target = self._result(stage.inputs[1])["dataset"] if len(stage.inputs) > 1 \
            else self.config.real
        fields = {**stage.settings["settings"], "source": source, "target": target,
                  "out": str(stage.folder / "refiner"), "method": stage.settings["method"],
                  "seed": stage.settings["seed"]}
        config = validate_model(RefinerConfig, fields, f"experiment refiner {stage.name}")
        trainer = RefinerTrainer(config)
        if trainer.open(resume=True):
            stage.log(f"resuming the refiner after iteration {trainer.iteration}")
        trainer.fit(lambda event: self._inner(stage, event.done, config.iterations))
        samples = sorted((stage.folder / "refiner" / "samples").glob("*.png"))
        choice = stage.folder / "refiner" / "choice.json"
        result = {"samples": str(samples[-1]) if samples else None,
                  "checkpoints": str(stage.folder / "refiner" / "checkpoints.csv")
                  if choice.exists() else None,
                  "choice": json.loads(choice.read_text()) if choice.exists() else None,
                  "checkpoint": None}
        try:
            result["checkpoint"] = str(trainer.checkpoint_to_use())
        except RefineError as error:
            stage.log(str(error))
        return result

    def _refine(self, stage: Stage) -> dict[str, Any]:
        from synthreid.refine.apply import refine_dataset

        refiner, source = (self._result(needed) for needed in stage.inputs)
        if refiner["checkpoint"] is None:
            # The refiner is judged, not failed: its branch of the matrix ends here (every
            # model of its images is left out, and says why) while the other rows go on.
            self.say(f"{stage.name}: no checkpoint kept identity; the models of its images "
                     f"are left out (see {refiner['checkpoints']})")
            return {**refiner, "dataset": None}
        refined = stage.folder / "dataset"
        written = refine_dataset(refiner["checkpoint"], source["dataset"], refined)
        stage.log(f"refined {written.refined} images with {refiner['checkpoint']} "
                  f"({written.skipped} already there)")
        return {**refiner, "dataset": f"synthetic:{refined}"}

    # -- re-id ------------------------------------------------------------------------------

    def _model(self, stage: Stage) -> dict[str, Any]:
        from synthreid.datasets import open_dataset
        from synthreid.reid.config import load_train_config
        from synthreid.reid.train import Trainer

        settings = stage.settings
        if settings["data"] == "synthetic":
            data = [self._result(stage.inputs[0])["dataset"]]
        elif settings["data"] == "mixed":  # the real set first: it picks the best epoch
            data = [self.config.real, self._result(stage.inputs[0])["dataset"]]
        else:
            data = [self.config.real]
        overrides = deep_merge(settings["settings"], {
            "data": data, "out": str(stage.folder / "run"), "seed": settings["seed"]})
        if settings.get("init"):
            overrides["init"] = self._result(stage.inputs[0])["checkpoint"]
        train = load_train_config(recipe=settings["recipe"], overrides=overrides)
        # Training reads training (and validation) images only: the test images stay unopened.
        trainer = Trainer(train, [open_dataset(d, check_images=False) for d in data])
        if trainer.open(resume=True):
            stage.log(f"resuming after epoch {trainer.start_epoch}")

        def log(stats: dict) -> None:
            stage.log(f"epoch {stats['epoch']}: loss {stats['loss']:.3f}, validation CMC area "
                      f"{stats['validation_area']:.2f}")
            self._inner(stage, stats["epoch"] + 1, train.epochs)

        summary = trainer.fit(log=log)
        return {"checkpoint": str(stage.folder / "run" / "best.pt"),
                "log": str(stage.folder / "run" / "log.csv"), **summary}

    # -- evaluation -------------------------------------------------------------------------

    def _evaluate(self, stage: Stage) -> dict[str, Any]:
        from synthreid.datasets import open_dataset
        from synthreid.evaluate.descriptors import descriptor_features
        from synthreid.evaluate.features import evaluate
        from synthreid.evaluate.retrieval import ranked_lists
        from synthreid.reid.features import dataset_features

        settings = stage.settings
        spec = {"real": self.config.real, "second": self.config.second_real}.get(settings["on"])
        if settings["on"] == "own":
            spec = self._result(stage.inputs[1])["dataset"]
        dataset = open_dataset(spec)
        if settings.get("descriptor"):
            features = descriptor_features(settings["descriptor"], dataset)
        else:
            features = dataset_features(self._result(stage.inputs[0])["checkpoint"], dataset)
        protocols = ["thesis"] + ([settings["standard"]] if settings["standard"] else [])
        if settings["on"] == "real":
            protocols += [p for p in settings.get("compare", []) if p not in protocols]
        scores = {}
        for protocol in protocols:
            try:
                scores[protocol] = evaluate(features, protocol, repeats=settings["repeats"],
                                            seed=settings["seed"])
            except EvaluationError as error:
                # A tiny export's few test ids may have no pair across its random pseudo-cameras:
                # the standard protocol is then not computable there (shown as missing).
                if protocol == "thesis" or settings["on"] != "own":
                    raise
                stage.log(f"{protocol}: not computable on this export's test ids ({error})")
        for protocol, score in scores.items():
            stage.log(f"{protocol}: rank-1 {100 * score.rank(1):.1f}%")
        return {"dataset": spec, "dataset_name": dataset.name,
                "scores": {protocol: score.to_record() for protocol, score in scores.items()},
                "ranked": ranked_lists(features, dataset.query, dataset.gallery)}


def _dataset_spec(spec: str) -> dict[str, Any]:
    """A dataset spec as the mapping a dataset YAML holds (absolute root)."""
    if spec.endswith((".yaml", ".yml")):
        data = yaml.safe_load(Path(spec).read_text())
        root = Path(str(data["root"])).expanduser()
        data["root"] = str(root if root.is_absolute() else (Path(spec).parent / root).resolve())
        data.pop("masks", None)  # they miss some training images: ours replace them
        return data
    layout, _, root = spec.partition(":")
    return {"layout": layout, "root": str(Path(root).expanduser().resolve())}


@contextlib.contextmanager
def stage_lock(stage: Stage):
    """An exclusive lock on the stage's folder while it runs: a second process asked for the
    same stage is refused at once instead of writing beside the first. A finished stage is only
    read: nothing is locked or touched."""
    if stage.done:
        yield
        return
    stage.folder.mkdir(parents=True, exist_ok=True)
    with open(stage.folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"stage {stage.name}: another process is running it "
                              f"({stage.folder})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_experiment(config: str | Path | ExperimentConfig, out: str | Path | None = None,
                    real: str | None = None, say: Callable[[str], None] = print,
                    progress: Reporter | None = None,
                    title: str | None = None, overwrite: bool = False,
                    claim: bool = True) -> Experiment:
    """An experiment (a config or its YAML file) checked, planned and given its folder `out`
    (default: out/experiments/<config name>), before any stage runs. An `out` holding another
    experiment (its config.yaml differs) is refused unless `overwrite`: its config and report
    are then replaced, while its stages stay (keyed by their settings, reused where equal).
    `claim=False` (listing stages) writes nothing."""
    from synthreid import atomic
    from synthreid.experiment.config import load_experiment_config
    from synthreid.typed import dump_config

    if not isinstance(config, ExperimentConfig):
        name = Path(config).stem
        config = load_experiment_config(config, real)
    else:
        name = "experiment"
    # Absolute: stage records name their files, and datasets resolve relative paths from their root.
    out = usable_folder(Path(out or Path("out/experiments") / name).resolve(), ConfigError)
    text = dump_config(config)
    saved = out / "config.yaml"
    if saved.is_file() and saved.read_text() != text and not overwrite:
        differ = differing_keys(yaml.safe_load(saved.read_text()) or {},
                                yaml.safe_load(text))
        raise ConfigError(f"--out {out}: holds another experiment (its config.yaml differs in "
                          f"{', '.join(differ[:6]) or 'form'}); use --overwrite to run this one "
                          f"there (finished stages are reused by key), or another folder")
    experiment = Experiment(config, out, say, progress)
    experiment.title = title or f"synthreid experiment: {name}"
    if not claim:
        return experiment
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot be made ({error.strerror or error})") from None
    atomic.write_text(saved, text)
    return experiment


def run_experiment(config: str | Path | ExperimentConfig, out: str | Path | None = None,
                   real: str | None = None, say: Callable[[str], None] = print,
                   progress: Reporter | None = None, title: str | None = None,
                   overwrite: bool = False) -> Experiment:
    """Run (or resume) every stage of an experiment (see `open_experiment`), then write its
    report into its folder."""
    experiment = open_experiment(config, out, real, say, progress, title, overwrite)
    experiment.run()
    return experiment
