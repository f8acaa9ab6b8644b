"""What made a folder of outputs: a command that writes into `--out` records what produced its
files (a refiner's checkpoint, the features an evaluation scored, ...) in `made_by.json` and
resumes or rewrites only its own work. Another command's folder is refused unless `--overwrite`
(which empties it first); a folder of files no synthreid command made is never touched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from synthreid import atomic
from synthreid.errors import SynthReidError

MARKER = "made_by.json"


def usable_folder(out: Path, error: type[SynthReidError]) -> Path:
    """`out` as a folder to write into: an existing file there is one line, not a traceback."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise error(f"--out {out}: exists and is not a folder")
    return out


def claim_folder(out: Path, made_by: dict[str, Any], overwrite: bool,
                 error: type[SynthReidError]) -> bool:
    """Make `out` this work's folder; True when it already holds this same work (resume).

    Absent or empty: claimed. Holding another work's `made_by.json`: refused, or emptied when
    `overwrite`. Holding files without one: refused always (nothing a user made is removed)."""
    out = usable_folder(out, error)
    record = out / MARKER
    if out.is_dir() and any(out.iterdir()):
        if not record.is_file():
            raise error(f"--out {out}: holds files that no synthreid command made there; choose "
                        f"an empty or new folder")
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError):
            saved = None
        if saved == made_by:
            return True
        if not overwrite:
            saved = saved if isinstance(saved, dict) else {}  # unreadable: differs in all
            differ = sorted(k for k in set(made_by) | set(saved)
                            if saved.get(k) != made_by.get(k))
            raise error(f"--out {out}: holds the output of another "
                        f"{saved.get('command', 'command')} (differs in {', '.join(differ)}); "
                        f"use --overwrite to replace it, or another folder")
        for item in out.iterdir():
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise error(f"--out {out}: cannot be made ({failure.strerror or failure})") from None
    atomic.write_text(record, json.dumps(made_by, indent=1, sort_keys=True))
    return False


def file_digest(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
