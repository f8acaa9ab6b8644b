"""The `synthreid` command: one Typer app, each stage a thin command over the library."""

from __future__ import annotations

import contextlib
import enum
import json
import sys
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.text import Text

from synthreid.errors import ConfigError, EvaluationError, ReidError, SynthReidError
from synthreid.refine.config import METHODS

app = typer.Typer(help="Artificial training data for person re-identification.",
                  no_args_is_help=True, add_completion=False)
# Messages carry user text (paths, names, YAML values): printed as text, never read as rich
# markup or emoji codes, so a path holding "[/x]" or ":x:" prints as it is.
console = Console(stderr=True, markup=False, emoji=False, highlight=False)

# Choices, as types: --help lists them and a value outside them is refused naming them. Kept
# here rather than imported from the config modules (some import torch) so `synthreid --help`
# stays fast; tests/test_cli.py checks each against the config field it feeds.
Engine = Literal["cycles", "workbench"]
CropMode = Literal["tight", "bbox3d"]
ImageFormat = Literal["jpg", "png"]
Backbone = Literal["inception", "resnet50"]
TestOutput = Literal["features", "logits"]
Loss = Literal["softmax", "triplet", "both"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["step", "cosine"]
AugmentCrop = Literal["pad", "rect", "none"]
FitObjective = Literal["combined", "statistics", "random-features"]
Method = Literal[METHODS]


def _fail(error: Exception) -> None:
    console.print(Text("error:", style="red") + Text(f" {error}"), soft_wrap=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _one_line_errors():
    """Our errors end the command with their one line and exit code 2, never a traceback."""
    try:
        yield
    except SynthReidError as error:
        _fail(error)


class Precision(str, enum.Enum):
    auto, fp32, bf16 = "auto", "fp32", "bf16"


def _print_version(value: bool) -> None:
    if value:
        from synthreid import __version__

        typer.echo(f"synthreid {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    precision: Optional[Precision] = typer.Option(
        None, "--precision",
        help="arithmetic of every network in this command (default: auto, or "
             "$SYNTHREID_PRECISION): bf16 autocast where the GPU or CPU computes bf16 natively"),
    threads: Optional[int] = typer.Option(
        None, "--torch-threads", min=1,
        help="math threads of every network in this command (default: every core, or "
             "$SYNTHREID_TORCH_THREADS); give each process sharing the cores its share"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """Artificial training data for person re-identification."""
    import os

    if precision is not None:
        from synthreid.device import PRECISION_VARIABLE

        os.environ[PRECISION_VARIABLE] = precision.value
    from synthreid.threads import THREADS_VARIABLE, apply_thread_cap

    if threads is not None:
        os.environ[THREADS_VARIABLE] = str(threads)
    try:
        apply_thread_cap()  # every torch use of this command, from its start
    except ValueError as error:
        _fail(error)


@app.command()
def preview(
    preset: str = typer.Argument(..., help="I, II, III, IV or a YAML file"),
    characters: int = typer.Option(4, "--characters", "-c", min=1),
    images: int = typer.Option(3, "--images", "-m", min=1, help="images per character"),
    seed: int = typer.Option(0, "--seed", "-s"),
    out: Path = typer.Option(Path("out/preview"), "--out", "-o"),
    engine: Optional[Engine] = typer.Option(None, help="default: the preset's"),
    crop: Optional[CropMode] = typer.Option(None, help="default: the preset's"),
    samples: int = typer.Option(None, min=1, help="Cycles samples (default: the preset's)"),
    overwrite: bool = typer.Option(False, help="replace a preview of other settings in --out"),
) -> None:
    """Render a preset straight to a folder and write a contact sheet of all images."""
    from synthreid.preview import preview as run_preview

    with _one_line_errors(), _shown() as show:
        result = run_preview(preset, characters, images, seed, out, engine=engine, crop=crop,
                             samples=samples, overwrite=overwrite, progress=show)
    console.print(f"{len(result.images)} images ({result.rendered} rendered now) in {result.out}; "
                  f"contact sheet {result.contact_sheet}")


DB_OPTION = typer.Option("sqlite:///synthreid.db", "--db", envvar="SYNTHREID_DB",
                         help="job database URL (sqlite:///FILE or postgresql+psycopg://...)")
STORAGE_OPTION = typer.Option("out/storage", "--storage", envvar="SYNTHREID_STORAGE",
                              help="storage folder or fsspec URL (s3://bucket/prefix, ...)")


@app.command()
def plan(
    preset: str = typer.Argument(..., help="I, II, III, IV or a YAML file"),
    run: str = typer.Option(..., "--run", help="a name for this run"),
    characters: int = typer.Option(None, "--characters", "-c", min=1,
                                   help="default: the preset's"),
    images: int = typer.Option(None, "--images", "-m", min=1, help="default: the preset's"),
    seed: int = typer.Option(0, "--seed", "-s"),
    db: str = DB_OPTION,
) -> None:
    """Sample every character of a run and store them, with their images and jobs."""
    from synthreid.farm.db import connect
    from synthreid.farm.plan import plan_run
    from synthreid.scene.config import load_config

    with _one_line_errors():
        config = load_config(preset)
        engine = connect(db)
        run_id = plan_run(engine, run, config, characters or config.characters,
                          images or config.images_per_character, seed)
    console.print(f"run {run!r} (id {run_id}) planned in {db}")


@app.command()
def render(
    db: str = DB_OPTION, storage: str = STORAGE_OPTION,
    workers: int = typer.Option(None, "--workers", "-w", min=1,
                                help="default: one per core, or one per GPU"),
    run: str = typer.Option(None, "--run", help="only this run (default: all)"),
    lease: float = typer.Option(120.0, help="seconds a claim lasts without a heartbeat"),
) -> None:
    """Render every outstanding job with local worker processes."""
    from synthreid.farm.supervisor import render_run

    with _one_line_errors(), _shown() as show:
        status = render_run(db, storage, workers, run, lease, progress=show)
    console.print(f"{status.images_done} of {status.images_total} images done; jobs {status.jobs}",
                  markup=False, highlight=False, soft_wrap=True)
    failed = status.jobs.get("failed", 0)
    if failed:  # exit 1: the rendering ended, but not every character was made
        console.print(f"error: {failed} jobs failed and were quarantined; 'synthreid status' "
                      f"shows why, 'synthreid retry RUN' requeues them", markup=False,
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def worker(
    db: str = DB_OPTION, storage: str = STORAGE_OPTION,
    run: str = typer.Option(None, "--run", help="only this run's jobs (default: any run's)"),
    lease: float = typer.Option(120.0, help="seconds a claimed job stays ours unrenewed"),
    heartbeat: float = typer.Option(None, help="seconds between lease renewals (default: a "
                                               "third of --lease)"),
    max_attempts: int = typer.Option(None, help="attempts before a job is quarantined"),
    threads: int = typer.Option(0, help="render threads (0: all cores)"),
    max_jobs: int = typer.Option(None, help="stop after this many jobs"),
    job_timeout: float = typer.Option(3600.0, help="seconds a character may take before it "
                                                   "is given up and its lease left to expire"),
) -> None:
    """Run one worker (on any machine that reaches the database and the storage)."""
    from synthreid.farm.worker import main

    args = ["--db", db, "--storage", storage, "--lease", str(lease), "--threads", str(threads),
            "--job-timeout", str(job_timeout)]
    for flag, value in (("--run", run), ("--heartbeat", heartbeat),
                        ("--max-attempts", max_attempts), ("--max-jobs", max_jobs)):
        if value is not None:
            args += [flag, str(value)]
    raise typer.Exit(main(args))


@app.command()
def status(db: str = DB_OPTION) -> None:
    """Progress per run, and the error of every failed (quarantined) job."""
    from synthreid.farm.db import connect
    from synthreid.farm.supervisor import failed_jobs, run_names, run_status

    with _one_line_errors():
        engine = connect(db, create=False)
        all_runs, failed = run_names(engine), failed_jobs(engine)
    for run_id, name, preset in all_runs:
        s = run_status(engine, run_id)
        counts = " ".join(f"{k} {v}" for k, v in sorted(s.jobs.items()))
        typer.echo(f"{name} (preset {preset}): images {s.images_done}/{s.images_total}; "
                   f"jobs: {counts}")
        if not s.planned_whole:
            typer.echo(f"  planning incomplete: {s.characters_stored} of "
                       f"{s.characters_planned} characters stored; run the same "
                       f"'synthreid plan' again to finish it")
        for job in failed:
            if job.run == run_id:
                typer.echo(f"  failed character {job.character} after {job.attempts} attempts: "
                           f"{job.error}")


@app.command()
def retry(run: str = typer.Argument(...), db: str = DB_OPTION) -> None:
    """Requeue the failed (quarantined) jobs of a run."""
    from synthreid.farm.db import connect, run_id
    from synthreid.farm.queue import retry_failed

    with _one_line_errors():
        engine = connect(db, create=False)
        count = retry_failed(engine, run_id(engine, run))
    console.print(f"{count} failed jobs of {run!r} requeued")


@app.command()
def export(
    run: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", "-o"),
    db: str = DB_OPTION, storage: str = STORAGE_OPTION,
    allow_failed: bool = typer.Option(False, help="export although some jobs failed"),
    image_format: ImageFormat = typer.Option("jpg", "--format", help="jpg (what Market-1501 "
                                             "readers glob) or png (lossless)"),
    quality: int = typer.Option(95, help="JPEG quality"),
) -> None:
    """Write a finished run as a Market-1501-layout dataset with masks, keypoints, metadata."""
    from synthreid.farm.export import export_run

    with _one_line_errors():
        path = export_run(db, storage, run, out, allow_failed, image_format, quality)
    console.print(f"dataset written to {path}")


from synthreid.evaluate import PROTOCOLS  # noqa: E402 (a tuple of names; nothing heavy)

ProtocolName = Literal[PROTOCOLS]


@app.command("eval")
def evaluate_features(
    features: Path = typer.Option(..., "--features", "-f", help=".npz of features, ids, cams"),
    protocol: ProtocolName = typer.Option("market"),
    out: Path = typer.Option(None, "--out", "-o", help="write cmc.png/.md/.csv/.json here"),
    name: str = typer.Option(None, help="model name in the table (default: the file name)"),
    repeats: int = typer.Option(10, min=1, help="thesis/cuhk03-classic repeats"),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace another evaluation's report in --out"),
) -> None:
    """Evaluate saved features and print the CMC table (and mAP)."""
    from synthreid.evaluate.features import evaluate, load_features
    from synthreid.evaluate.report import markdown, write_report
    from synthreid.made_by import claim_folder, file_digest

    if protocol not in PROTOCOLS:
        _fail(ValueError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}"))
    with _one_line_errors():
        result = evaluate(load_features(features), protocol, repeats, seed)
        if out is not None:  # checked before anything is printed as done
            claim_folder(out, {"command": "eval", "features_sha256": file_digest(features),
                               "name": name or features.stem, "protocol": protocol,
                               "repeats": repeats, "seed": seed}, overwrite, EvaluationError)
    results = {name or features.stem: result}
    typer.echo(markdown(results), nl=False)
    if out is not None:
        paths = write_report(results, out, title=f"CMC ({protocol})")
        console.print(f"report in {paths['md'].parent}")


@app.command()
def dataset(
    kind: str = typer.Argument(..., help="LAYOUT:ROOT or a dataset .yaml (as --data takes), "
                               "or a layout (market1501, dukemtmc, msmt17, cuhk03-np, "
                               "cuhk03-mat, viper, prid2011, folders, pattern, synthetic) "
                               "followed by ROOT"),
    root: Optional[Path] = typer.Argument(None, help="the dataset folder (cuhk03-mat: the "
                                          ".mat file) after a layout"),
    pattern: str = typer.Option(None, help="pattern: regex with (?P<pid>...) and (?P<camid>...)"),
    test_ids: str = typer.Option(None, help="folders/pattern: test id ranges, e.g. 301-450"),
    test_count: int = typer.Option(None, help="folders/pattern: number of random test ids"),
    test_fraction: float = typer.Option(None, help="folders/pattern: fraction of test ids"),
    split_file: Path = typer.Option(None, help="folders/pattern: file of test ids"),
    seed: int = typer.Option(0),
) -> None:
    """Read a dataset and print what was found (ids and images per split): check the spec or
    YAML you will pass to --data."""
    from synthreid.datasets import IdSplit, read_dataset

    options: dict = {}
    with _one_line_errors():
        if root is None:
            typer.echo(open_dataset(kind).summary())
            return
        if kind in ("folders", "pattern"):
            options["split"] = IdSplit(test_ids, test_count, test_fraction, split_file, seed)
        if kind == "pattern":
            options["pattern"] = pattern or ""
        typer.echo(read_dataset(kind, root, **options).summary())


def open_dataset(spec: str):
    from synthreid.datasets import open_dataset as open_spec

    return open_spec(spec)


reid_app = typer.Typer(help="Train, evaluate and use re-id models.", no_args_is_help=True)
app.add_typer(reid_app, name="reid")


LOSS_WEIGHTS = {"softmax": (1.0, 0.0), "triplet": (0.0, 1.0), "both": (1.0, 1.0)}


def _dotted_settings(settings: list[str]) -> dict:
    """`--set a.b=VALUE` options as nested fields; VALUE is read as YAML (1, true, [20, 40])."""
    import yaml

    nested: dict = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {setting!r}: expected KEY=VALUE, e.g. model.last_stride=1")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {setting!r}: the value is not YAML") from None
        *parents, last = key.split(".")
        place = nested
        for part in parents:
            place = place.setdefault(part, {})
            if not isinstance(place, dict):
                raise ConfigError(f"--set {setting!r}: {part} was set to a value before")
        place[last] = value
    return nested


def _size(size: str) -> tuple[int, int]:
    """`--size HEIGHTxWIDTH`, the one spelling of an image size on the command line."""
    height, sep, width = size.partition("x")
    if not (sep and height.isdigit() and width.isdigit()):
        raise ConfigError(f"--size: expected HEIGHTxWIDTH, e.g. 128x64, got {size!r}")
    return int(height), int(width)


def _train_overrides(given: dict) -> dict:
    """Flags the user gave, as nested TrainConfig fields (None: not given)."""
    nested = {"model": ("backbone", "embedding", "bnneck", "features_after_bn", "dropout",
                        "test_output"),
              "loss": ("label_smoothing",),
              "augment": ("height", "width", "crop", "erasing", "grayscale", "blur")}
    overrides: dict = {}
    for key, value in given.items():
        if value is None:
            continue
        section = next((name for name, keys in nested.items() if key in keys), None)
        if section:
            overrides.setdefault(section, {})[key] = value
        elif key == "loss":
            if value not in LOSS_WEIGHTS:
                raise ReidError(f"--loss: expected softmax, triplet or both, got {value!r}")
            softmax, triplet = LOSS_WEIGHTS[value]
            overrides.setdefault("loss", {}).update(softmax_weight=softmax,
                                                    triplet_weight=triplet)
        elif key == "colour_jitter":
            overrides.setdefault("augment", {})["colour_jitter"] = {
                "brightness": value, "contrast": value, "saturation": value}
        elif key == "hue":
            overrides.setdefault("augment", {}).setdefault("colour_jitter", {})["hue"] = value
        elif key in ("data", "milestones"):
            overrides[key] = list(value) or None
        else:
            overrides[key] = str(value) if isinstance(value, Path) else value
    return {k: v for k, v in overrides.items() if v is not None}


@reid_app.command("train")
def reid_train(
    data: list[str] = typer.Option(None, "--data",
                                   help="LAYOUT:ROOT or a dataset .yaml; twice to mix two sets"),
    out: Path = typer.Option(None, "--out", "-o"),
    config: Path = typer.Option(None, "--config", help="run YAML (TrainConfig fields); "
                                "flags override it"),
    recipe: str = typer.Option(None, help="modern (default) | openreid (the thesis' Open-ReID "
                               "softmax example)"),
    backbone: Optional[Backbone] = typer.Option(None),
    pretrained: Path = typer.Option(None, help="resnet50: torchvision ImageNet weights file"),
    embedding: int = typer.Option(None, help="embedding size (0: the backbone's features)"),
    bnneck: Optional[bool] = typer.Option(None, "--bnneck/--no-bnneck"),
    features_after_bn: Optional[bool] = typer.Option(
        None, "--features-after-bn/--features-before-bn", help="test features after the BNNeck"),
    dropout: float = typer.Option(None, help="dropout before the classifier"),
    test_output: Optional[TestOutput] = typer.Option(None, help="logits: as Open-ReID's "
                                                     "evaluator"),
    loss: Optional[Loss] = typer.Option(None),
    label_smoothing: float = typer.Option(None),
    epochs: int = typer.Option(None), lr: float = typer.Option(None),
    optimizer: Optional[Optimizer] = typer.Option(None),
    schedule: Optional[Schedule] = typer.Option(None),
    milestones: list[int] = typer.Option(None, "--milestone",
                                         help="step schedule: an epoch (from 0) where the rate "
                                         "drops by gamma; repeat for more"),
    batch_size: int = typer.Option(None), p: int = typer.Option(None), k: int = typer.Option(None),
    size: Optional[str] = typer.Option(None, help="HEIGHTxWIDTH input size, e.g. 256x128 "
                                       "(default: per backbone)"),
    height: int = typer.Option(None, hidden=True),  # the spellings before --size
    width: int = typer.Option(None, hidden=True),
    crop: Optional[AugmentCrop] = typer.Option(None, help="rect: Open-ReID's "
                                               "RandomSizedRectCrop"),
    colour_jitter: float = typer.Option(None, help="brightness, contrast, saturation jitter"),
    hue: float = typer.Option(None, help="hue jitter (fraction of the colour circle)"),
    grayscale: float = typer.Option(None, help="random grayscale probability"),
    blur: float = typer.Option(None, help="Gaussian blur probability"),
    erasing: float = typer.Option(None, help="random erasing probability"),
    workers: int = typer.Option(None, "--loader-workers", min=0,
                                help="data-loader processes (render processes: `render "
                                     "--workers`)"),
    old_workers: int = typer.Option(None, "--workers", min=0, hidden=True),
    seed: int = typer.Option(None),
    early_stop: int = typer.Option(None, help="stop after this many epochs without improvement"),
    init: Path = typer.Option(None, help="finetune: start f from this checkpoint"),
    finetune_lr_factor: float = typer.Option(None),
    mix_ratio: int = typer.Option(None, help="batches of the first set per batch of the second"),
    joint_head: Optional[bool] = typer.Option(None, "--joint-head/--separate-heads",
                                              help="one classifier over both sets' ids"),
    select_on: int = typer.Option(None, help="with two sets: whose validation picks best.pt"),
    settings: list[str] = typer.Option(None, "--set", help="any config field, as KEY=VALUE "
                                       "with dotted keys and a YAML value, e.g. "
                                       "model.last_stride=1; repeat for more; after the flags"),
    print_config: bool = typer.Option(False, "--print-config",
                                      help="print the resolved config as YAML and exit"),
    resume: bool = typer.Option(False, help="continue the run in --out (same settings)"),
    overwrite: bool = typer.Option(False, help="replace the run in --out"),
) -> None:
    """Train a re-id model; the best epoch by validation CMC area is kept as best.pt."""
    if workers is None:
        workers = old_workers  # the spelling `--workers` had before it meant render processes
    if size is not None:
        with _one_line_errors():
            height, width = _size(size)
    given = {k: v for k, v in locals().items()  # the TrainConfig fields among the flags
             if k not in ("config", "recipe", "resume", "overwrite", "settings",
                          "print_config", "old_workers", "size")}
    from synthreid.reid.config import load_train_config
    from synthreid.reid.train import Trainer
    from synthreid.typed import deep_merge, dump_config

    with _one_line_errors():
        overrides = deep_merge(_train_overrides(given), _dotted_settings(settings or []))
        run = load_train_config(config, recipe, overrides)
        if print_config:
            typer.echo(dump_config(run).rstrip("\n"))
            return
        if not run.data or not run.out:
            raise ReidError("give --data and --out (or data: and out: in --config)")
        trainer = Trainer(run, [open_dataset(d) for d in run.data])
        if trainer.open(resume=resume, overwrite=overwrite):
            console.print(f"resuming after epoch {trainer.start_epoch}")
        console.print(f"recipe {run.recipe}, {run.model.backbone} at {run.augment.height}x"
                      f"{run.augment.width}; augmentations: "
                      f"{', '.join(run.augment.used()) or 'none'}; config in {run.out}/config.yaml")
        def log(stats):
            console.print(f"epoch {stats['epoch']}: loss {stats['loss']:.3f}, validation CMC "
                          f"area {stats['validation_area']:.2f}, {stats['images_per_s']:.1f} "
                          f"images/s")

        with _shown() as show:
            summary = trainer.fit(show, log)
    console.print(f"best validation CMC area {summary['best_validation_area']:.2f}; "
                  f"checkpoints in {run.out}")


@reid_app.command("eval")
def reid_eval(
    model: Optional[Path] = typer.Option(None, "--model", help="a re-id checkpoint"),
    descriptor: Optional[str] = typer.Option(
        None, "--descriptor", help="hsv: a colour-histogram baseline instead of a model"),
    data: str = typer.Option(..., "--data", help="LAYOUT:ROOT or a dataset .yaml"),
    protocol: ProtocolName = typer.Option("market"),
    out: Path = typer.Option(None, "--out", "-o"),
    repeats: int = typer.Option(10), seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace another evaluation's report in --out"),
) -> None:
    """Evaluate a checkpoint (or a hand-crafted descriptor) on a dataset's query and gallery;
    print the CMC table."""
    from synthreid.evaluate.descriptors import descriptor_features
    from synthreid.evaluate.features import evaluate
    from synthreid.evaluate.report import markdown, write_report
    from synthreid.reid.features import dataset_features

    if protocol not in PROTOCOLS:
        _fail(ValueError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}"))
    if (model is None) == (descriptor is None):
        _fail(ValueError("give --model CHECKPOINT or --descriptor hsv (one of them)"))
    with _one_line_errors():
        dataset = open_dataset(data)
        features = (descriptor_features(descriptor, dataset) if descriptor else
                    dataset_features(str(model), dataset))
        result = evaluate(features, protocol, repeats, seed)
        if out is not None:
            from synthreid.made_by import claim_folder, file_digest

            claim_folder(out, {"command": "reid eval", "data": data, "protocol": protocol,
                               "model_sha256": file_digest(model) if model else None,
                               "descriptor": descriptor, "repeats": repeats, "seed": seed},
                         overwrite, EvaluationError)
    results = {descriptor or model.parent.name or model.stem: result}
    typer.echo(markdown(results), nl=False)
    if out is not None:
        write_report(results, out, title=f"CMC ({protocol})")


@reid_app.command("features")
def reid_features(
    model: Path = typer.Option(..., "--model"),
    data: str = typer.Option(..., "--data", help="LAYOUT:ROOT or a dataset .yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="a .npz file"),
) -> None:
    """Save query and gallery features (with ids and cameras) for `synthreid eval`."""
    from synthreid.reid.features import dataset_features

    with _one_line_errors():
        features = dataset_features(str(model), open_dataset(data))
    features.save(out)
    console.print(f"features of {len(features.arrays['query_ids'])} queries and "
                  f"{len(features.arrays['gallery_ids'])} gallery images in {out}")


class ExportFormat(str, enum.Enum):
    onnx, torchscript = "onnx", "torchscript"


@reid_app.command("export")
def reid_export(
    model: Path = typer.Option(..., "--model", help="a checkpoint (best.pt)"),
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format"),
    out: Path = typer.Option(..., "--out", "-o", help="the file to write (model.onnx, model.pt)"),
) -> None:
    """Write the embedding network alone (features as `reid features` computes them) as ONNX
    or TorchScript, with input size and normalisation in the file's metadata."""
    from synthreid.reid.export import export_model

    with _one_line_errors():
        written = export_model(model, out, format.value)
    console.print(f"{format.value} model in {written}")


refiner_app = typer.Typer(help="Train refiners (CycleGAN, PTGAN, CUT).", no_args_is_help=True)
app.add_typer(refiner_app, name="refiner")


@refiner_app.command("train")
def refiner_train(
    data: str = typer.Option(None, "--data", help="the generated images to refine: "
                             "LAYOUT:ROOT or a dataset .yaml (required)"),
    target: str = typer.Option(..., help="real images to imitate: LAYOUT:ROOT or a .yaml"),
    source: str = typer.Option(None, "--source", hidden=True),  # --data's spelling before
    out: Path = typer.Option(..., "--out", "-o"),
    method: Method = typer.Option("cyclegan"),
    size: str = typer.Option("128x64", help="HEIGHTxWIDTH the refiner works at"),
    iterations: int = typer.Option(20000), blocks: int = typer.Option(6, help="6 or 9"),
    batch_size: int = typer.Option(1), lr: float = typer.Option(2e-4),
    mask_weight: float = typer.Option(10.0, help="PTGAN: weight of the masked identity loss"),
    identity_weight: float = typer.Option(None, help="identity mapping, times the cycle weight "
                                          "(default 0.5; PTGAN: 0, its masked term replaces it)"),
    sample_every: int = typer.Option(500), checkpoint_every: int = typer.Option(500),
    seed: int = typer.Option(0),
    identity_check: bool = typer.Option(
        True, help="score identity and realism at every checkpoint and choose one (chosen.pt)"),
    identity_margin: float = typer.Option(
        10.0, help="rank-1 points a chosen checkpoint may lose against the unrefined set"),
    settings: list[str] = typer.Option(None, "--set", help="any refiner config field, as "
                                       "KEY=VALUE with a YAML value, e.g. colour_weight=5"),
    resume: bool = typer.Option(False, help="continue the run in --out (same settings)"),
    overwrite: bool = typer.Option(False, help="replace the run in --out"),
) -> None:
    """Train an unpaired refiner (CycleGAN, PTGAN, CUT) from generated to real images, on the
    training splits only; with the identity check, refine with the chosen.pt it writes."""
    from synthreid.refine.config import RefinerConfig
    from synthreid.refine.train import RefinerTrainer
    from synthreid.typed import validate_model

    with _one_line_errors():
        source = data or source
        if not source:
            raise ConfigError("refiner train: give --data, the generated images to refine")
        height, width = _size(size)
        config = validate_model(RefinerConfig, {**dict(
            source=source, target=target, out=str(out), method=method, height=height,
            width=width, iterations=iterations, blocks=blocks, batch_size=batch_size, lr=lr,
            mask_weight=mask_weight, identity_weight=identity_weight, sample_every=sample_every,
            checkpoint_every=checkpoint_every, seed=seed, identity_check=identity_check,
            identity_margin=identity_margin), **_dotted_settings(settings or [])},
            "refiner train")
        trainer = RefinerTrainer(config)
        if trainer.open(resume=resume, overwrite=overwrite):
            console.print(f"resuming after iteration {trainer.iteration}")
        with _shown() as show:
            summary = trainer.fit(show)
        checkpoint = trainer.checkpoint_to_use()
    console.print(f"{summary['iterations']} iterations; refine with {checkpoint}, samples in "
                  f"{out / 'samples'}" + (f", identity and realism in {out / 'checkpoints.csv'}"
                                          if identity_check else ""))
    choice_file = out / "choice.json"
    if identity_check and choice_file.exists():
        choice = json.loads(choice_file.read_text())
        chosen, unrefined = choice["chosen"], choice["unrefined"]
        console.print(f"chose iteration {chosen['iteration']}: identity rank-1 "
                      f"{chosen['identity_refined']:.1f} (unrefined "
                      f"{unrefined['identity_refined']:.1f}), realism {chosen['realism']:.3f} "
                      f"(unrefined {unrefined['realism']:.3f}, lower is closer to the target)"
                      + ("" if choice["closer_than_unrefined"] else
                         "; no checkpoint that kept identity came closer to the target than "
                         "the unrefined images"))


@app.command()
def refine(
    model: Path = typer.Option(None, "--model", help="a refiner checkpoint (chosen.pt, or "
                               "last.pt) (required)"),
    data: str = typer.Option(..., "--data", help="the generated dataset: LAYOUT:ROOT or .yaml"),
    refiner: Path = typer.Option(None, "--refiner", hidden=True),  # --model's spelling before
    out: Path = typer.Option(..., "--out", "-o"),
    batch_size: int = typer.Option(16, min=1),
    overwrite: bool = typer.Option(False, help="replace another refiner's images in --out"),
) -> None:
    """Refine every image of a dataset; labels, layout, masks and metadata stay as they are.
    An interrupted run resumes; an --out refined by another checkpoint is refused."""
    from synthreid.refine.apply import refine_dataset

    with _one_line_errors(), _shown() as show:
        if not (model or refiner):
            raise ConfigError("refine: give --model, a refiner checkpoint (chosen.pt)")
        result = refine_dataset(model or refiner, data, out, batch_size, progress=show,
                                overwrite=overwrite)
    console.print(f"{result.refined} images refined ({result.skipped} already there), "
                  f"{result.copied} other files copied, in {result.out}")


@contextlib.contextmanager
def _shown():
    """The one progress display: a line per task of the events a command's work reports (see
    `synthreid.progress`), drawn from the first event on, so an early error stays one line."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("{task.description:<28}", markup=False), BarColumn(),
                   MofNCompleteColumn(), TextColumn("{task.fields[values]}", markup=False),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    tasks: dict[str, int] = {}

    def show(event) -> None:
        if not bar.live.is_started:
            bar.start()
        if event.task not in tasks:
            tasks[event.task] = bar.add_task(event.task, total=event.total, values="")
        values = " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in event.values.items())
        bar.update(tasks[event.task], completed=event.done, total=event.total, values=values)

    try:
        yield show
    finally:
        if bar.live.is_started:
            bar.stop()


@app.command()
def masks(
    data: str = typer.Option(..., "--data", help="a real dataset: LAYOUT:ROOT or .yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="the mask folder (then `masks: DIR`)"),
) -> None:
    """Person masks for a real dataset (mediapipe selfie segmentation), for PTGAN's real side."""
    from synthreid.refine.masks import write_masks

    with _one_line_errors(), _shown() as show:
        result = write_masks(data, out, progress=show)
    console.print(f"{result.written} masks written ({result.skipped} already there, "
                  f"{result.empty} with no person found) in {result.out}; give it to the "
                  f"dataset YAML as `masks: {result.out}`")


@app.command()
def experiment(
    config: Path = typer.Argument(..., help="an experiment YAML, e.g. experiments/small.yaml"),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="default: out/experiments/<config name>"),
    real: Optional[str] = typer.Option(None, "--real",
                                       help="replaces the config's real dataset (LAYOUT:ROOT "
                                            "or .yaml)"),
    overwrite: bool = typer.Option(False, help="run here although --out holds another "
                                   "experiment (its report is replaced; finished stages are "
                                   "kept and reused by key)"),
    list_stages: bool = typer.Option(False, "--list-stages",
                                     help="print the stages (name, kind, key, needs, done)"),
    as_json: bool = typer.Option(False, "--json", help="with --list-stages: as JSON"),
    stage: Optional[str] = typer.Option(None, "--stage", help="run this stage only (its "
                                        "inputs must be finished); no report"),
    parallel: int = typer.Option(1, "--parallel", "-j", min=1, help="run up to N independent "
                                 "stages at once, each in its own process with its share of "
                                 "the cores"),
) -> None:
    """The thesis' experiment matrix on a real dataset, resumable; writes report.md/.html."""
    from synthreid.experiment.matrix import open_experiment
    from synthreid.experiment.parallel import run_in_processes

    with _one_line_errors():
        # Checked before the progress display starts, so a bad config or --out stays one line.
        experiment = open_experiment(config, out, real, say=console.print, overwrite=overwrite,
                                     claim=not list_stages)
        if list_stages:
            table = experiment.stage_table()
            if as_json:
                typer.echo(json.dumps(table, indent=1))
            else:
                for row in table:
                    state = "done" if row["done"] else \
                        f"left out ({row['left_out']})" if row["left_out"] else "to do"
                    typer.echo(f"{row['name']}  {row['kind']}  {row['key']}  {state}  needs: "
                               f"{', '.join(row['needs']) or '-'}")
            return
        with _shown() as experiment.progress:
            if stage is not None:
                experiment.run_one(stage)
            else:
                if parallel > 1:
                    def stage_command(name: str) -> list[str]:
                        return [sys.executable, "-m", "synthreid.cli", "experiment",
                                str(config), "--out", str(experiment.out), "--stage", name,
                                *(["--real", real] if real else [])]
                    run_in_processes(experiment, stage_command, parallel)
                experiment.run()  # what is left (nothing, unless a stage was skipped), report
        if stage is not None:
            console.print(f"stage {stage} finished in {experiment.out}")
            return
        report = experiment.report
    for name, why in experiment.skipped.items():
        console.print(f"left out: {name} ({why})")
    console.print(f"report: {report['md']} and {report['html']}")


@app.command()
def fit(
    preset: str = typer.Argument(..., help="I, II, III, IV or a YAML file"),
    target: str = typer.Option(..., "--target", help="the user's real dataset (LAYOUT:ROOT or "
                               ".yaml); only its training split is read"),
    out: Path = typer.Option(..., "--out", "-o", help="the fit's folder (resumed when it holds "
                             "this fit)"),
    config: Optional[Path] = typer.Option(None, "--config", help="a fit YAML: attributes and "
                                          "their candidates, sizes, objective, budget"),
    rounds: Optional[int] = typer.Option(None, min=1, help="passes over the attributes "
                                         "(default 2)"),
    images: Optional[int] = typer.Option(None, min=2, help="images per candidate (default 60: "
                                         "12 characters x 5)"),
    budget_minutes: Optional[float] = typer.Option(None, min=0.01, help="stop starting new "
                                                   "steps after this much time (default 40)"),
    objective: Optional[FitObjective] = typer.Option(None, help="default: combined"),
    engine: Optional[Engine] = typer.Option(None, help="default: the preset's"),
    db: Optional[str] = typer.Option(None, "--db", help="a job database for the fit's renders "
                                     "(default: OUT/farm.db); workers of a farm may join"),
    storage: Optional[str] = typer.Option(None, "--storage", help="default: OUT/storage"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1),
) -> None:
    """Tune a preset to a real camera network by attribute descent; writes fit.yaml."""
    import math

    from synthreid.fit.config import load_fit_config
    from synthreid.fit.search import Fit
    from synthreid.typed import validate_model

    with _one_line_errors():
        settings = load_fit_config(config)
        given = {"rounds": rounds, "budget_minutes": budget_minutes, "objective": objective,
                 "engine": engine}
        changes = {k: v for k, v in given.items() if v is not None}
        if images is not None:
            changes["characters"] = math.ceil(images / settings.images_per_character)
        settings = validate_model(type(settings), {**settings.model_dump(), **changes},
                                  "command line")
        search = Fit(preset, target, out, settings, db, storage, workers)
        with _shown() as show:
            search.progress = search.renders.progress = show
            result = search.run()
    console.print(f"distance {result.start_distance:.4f} -> {result.distance:.4f} in "
                  f"{len(result.steps)} steps ({result.minutes:.1f} min"
                  f"{', budget reached' if result.budget_reached else ''}); "
                  f"{out / 'fit.yaml'} and {out / 'report.html'}", markup=False)


@app.command()
def textures(
    data: str = typer.Option(..., "--data", help="a real dataset with person masks (LAYOUT:ROOT "
                             "or .yaml with masks: DIR)"),
    out: Path = typer.Option(..., "--out", "-o", help="the library folder"),
) -> None:
    """Cut garment textures from a real dataset's training images, for clothes.photo_textures."""
    from synthreid.scene.photo_textures import build_texture_library

    with _one_line_errors(), _shown() as show:
        result = build_texture_library(data, out, progress=show)
    console.print(f"{result.upper} upper and {result.lower} lower patches in {result.out} "
                  f"({result.skipped} training images gave fewer than two); use it as "
                  f"clothes: {{photo_textures: {{folder: {result.out}}}}}")


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o"),
    preset: str = typer.Option("IV"),
    characters: int = typer.Option(40, min=8), images: int = typer.Option(6, min=2),
    epochs: int = typer.Option(15, min=1), seed: int = typer.Option(0),
    engine: Optional[Engine] = typer.Option(None, help="default: the preset's"),
    workers: int = typer.Option(None, min=1),
    real: Optional[str] = typer.Option(None, "--real", help="a real dataset (LAYOUT:ROOT or "
                                       ".yaml): adds a small refiner, real and finetuned rows"),
    overwrite: bool = typer.Option(False, help="replace a demo of other settings in --out (its "
                                   "report; finished stages are kept and reused by key)"),
) -> None:
    """The whole chain at a tiny size: plan, render, export, (refine,) train re-id, evaluate."""
    from synthreid.experiment.demo import demo_result, open_demo

    with _one_line_errors():
        # Checked before the progress display starts, so a bad --out stays one line.
        experiment = open_demo(out, preset, characters, images, epochs, seed, engine, workers,
                               real, say=console.print, overwrite=overwrite)
        with _shown() as experiment.progress:
            experiment.run()
        result = demo_result(experiment)
    typer.echo(result.table, nl=False)
    console.print(f"dataset {result.dataset}; report {result.report['html']}")


@app.command()
def presets() -> None:
    """List the built-in presets (thesis Table 3.1)."""
    from synthreid.scene.config import ALL_PRESETS, load_config

    for name in ALL_PRESETS:
        config = load_config(name)
        typer.echo(f"{name:6} {config.characters:5} x {config.images_per_character}  "
                   f"{config.description}")


if __name__ == "__main__":
    app()
