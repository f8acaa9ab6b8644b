"""The `synthreid` command: one Typer app, each stage a thin command over the library."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from synthreid.errors import SynthReidError

app = typer.Typer(help="Artificial training data for person re-identification.",
                  no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def preview(
    preset: str = typer.Argument(..., help="I, II, III, IV or a YAML file"),
    characters: int = typer.Option(4, "--characters", "-c", min=1),
    images: int = typer.Option(3, "--images", "-m", min=1, help="images per character"),
    seed: int = typer.Option(0, "--seed", "-s"),
    out: Path = typer.Option(Path("out/preview"), "--out", "-o"),
    engine: str = typer.Option(None, help="cycles or workbench (default: the preset's)"),
    crop: str = typer.Option(None, help="tight or bbox3d (default: the preset's)"),
    samples: int = typer.Option(None, min=1, help="Cycles samples (default: the preset's)"),
) -> None:
    """Render a preset straight to a folder and write a contact sheet of all images."""
    from synthreid.generate import preview as run_preview

    if engine not in (None, "cycles", "workbench"):
        _fail(ValueError(f"--engine: expected cycles or workbench, got {engine!r}"))
    if crop not in (None, "tight", "bbox3d"):
        _fail(ValueError(f"--crop: expected tight or bbox3d, got {crop!r}"))
    try:
        result = run_preview(preset, characters, images, seed, out, engine=engine, crop=crop,
                             samples=samples)
    except SynthReidError as error:
        _fail(error)
    console.print(f"{len(result.images)} images ({result.rendered} rendered now) in {result.out}; "
                  f"contact sheet {result.contact_sheet}")


PROTOCOLS = ("thesis", "market", "cuhk03-new", "cuhk03-classic")


@app.command("eval")
def evaluate_features(
    features: Path = typer.Option(..., "--features", "-f", help=".npz of features, ids, cams"),
    protocol: str = typer.Option("market", help=" | ".join(PROTOCOLS)),
    out: Path = typer.Option(None, "--out", "-o", help="write cmc.png/.md/.csv/.json here"),
    name: str = typer.Option(None, help="model name in the table (default: the file name)"),
    repeats: int = typer.Option(10, min=1, help="thesis/cuhk03-classic repeats"),
    seed: int = typer.Option(0),
) -> None:
    """Evaluate saved features and print the CMC table (and mAP)."""
    from synthreid.evaluate import protocols
    from synthreid.evaluate.features import load_features, pooled
    from synthreid.evaluate.report import markdown, write_report

    if protocol not in PROTOCOLS:
        _fail(ValueError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}"))
    try:
        arrays = load_features(features)
        if protocol == "thesis":
            result = protocols.thesis(*pooled(arrays), repeats=repeats, seed=seed)
        else:
            split = [arrays.get(f"{s}_{k}") for s in ("query", "gallery")
                     for k in ("features", "ids", "cams")]
            if any(a is None for a in split):
                raise protocols.EvaluationError(
                    f"{features}: the {protocol} protocol needs query_* and gallery_* arrays")
            if protocol == "cuhk03-classic":
                result = protocols.cuhk03_classic(*split, repeats=repeats, seed=seed)
            else:
                result = protocols.market(*split)
    except SynthReidError as error:
        _fail(error)
    results = {name or features.stem: result}
    typer.echo(markdown(results), nl=False)
    if out is not None:
        paths = write_report(results, out, title=f"CMC ({protocol})")
        console.print(f"report in {paths['md'].parent}")


@app.command()
def dataset(
    kind: str = typer.Argument(..., help="market1501, dukemtmc, msmt17, cuhk03-np, cuhk03-mat, "
                               "viper, prid2011, folders, pattern, synthetic"),
    root: Path = typer.Argument(..., help="the dataset folder (cuhk03-mat: the .mat file)"),
    pattern: str = typer.Option(None, help="pattern: regex with (?P<pid>...) and (?P<camid>...)"),
    test_ids: str = typer.Option(None, help="folders/pattern: test id ranges, e.g. 301-450"),
    test_count: int = typer.Option(None, help="folders/pattern: number of random test ids"),
    test_fraction: float = typer.Option(None, help="folders/pattern: fraction of test ids"),
    split_file: Path = typer.Option(None, help="folders/pattern: file of test ids"),
    seed: int = typer.Option(0),
) -> None:
    """Read a dataset and print what was found (ids and images per split)."""
    from synthreid.datasets import IdSplit, read_dataset

    options: dict = {}
    if kind in ("folders", "pattern"):
        options["split"] = IdSplit(test_ids, test_count, test_fraction, split_file, seed)
    if kind == "pattern":
        options["pattern"] = pattern or ""
    try:
        typer.echo(read_dataset(kind, root, **options).summary())
    except SynthReidError as error:
        _fail(error)


@app.command()
def presets() -> None:
    """List the built-in presets (thesis Table 3.1)."""
    from synthreid.config import PRESET_NAMES, load_config

    for name in PRESET_NAMES:
        config = load_config(name)
        typer.echo(f"{name:4} {config.characters} x {config.images_per_character}  "
                   f"{config.description}")


if __name__ == "__main__":
    app()
