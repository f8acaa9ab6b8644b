"""A run folder (a training run of any stage) is never overwritten silently: it is resumed only
with the settings its `config.yaml` holds, or replaced when the user says so."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

from synthreid import atomic
from synthreid.errors import SynthReidError
from synthreid.made_by import usable_folder
from synthreid.typed import differing_keys, read_yaml


def existing_run(out: Path, files: tuple[str, ...]) -> list[str]:
    return [name for name in files if (out / name).exists()]


def settle(out: Path, existing: list[str], asked: dict[str, Any], resume: bool, overwrite: bool,
           error: type[SynthReidError], ignore: tuple[str, ...] = (), remove: bool = True) -> bool:
    """Check a run folder before a run starts; True when the run there is to be resumed.

    A folder holding a run is refused unless `resume` (its config.yaml must match `asked`, but
    for `ignore`) or `overwrite` (its files are removed, where `remove`; else the caller removes
    them with `clear`). A file at `out`, or a folder holding other files and no run, is refused
    always: nothing a user made is touched."""
    usable_folder(out, error)
    if not existing and out.is_dir() and any(out.iterdir()):
        raise error(f"--out {out}: holds files that are not a run of this kind; choose an empty "
                    f"or new folder")
    if existing and resume:
        saved = out / "config.yaml"
        if not saved.exists():
            raise error(f"{out}: holds a run without config.yaml, so a resume cannot be checked; "
                        f"use --overwrite to start it again")
        differ = differing_keys(read_yaml(saved), asked, ignore)
        if differ:
            raise error(f"{out}: --resume with settings other than the saved run's "
                        f"({saved.name}): {', '.join(differ)}")
        return True
    if existing and not overwrite:
        raise error(f"{out}: holds a run ({', '.join(existing)}); pass --resume to continue it "
                    f"or --overwrite to replace it")
    if existing and remove:
        clear(out, existing)
    return False


def clear(out: Path, existing: list[str]) -> None:
    """Remove an overwritten run's files (the names `existing_run` found)."""
    for name in existing:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def write_log(path: Path, history: list[dict]) -> None:
    """The run's log as CSV, rewritten whole (atomically) after each entry."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for h in history for k in h)))
    writer.writeheader()
    writer.writerows(history)
    atomic.write_text(path, out.getvalue())


def tensorboard(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
