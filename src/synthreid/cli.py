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
