"""Backgrounds: where cubemap faces come from.

A small procedural set ships for tests and the demo ("builtin:brick", "builtin:tiles",
"builtin:street", "builtin:office"); it is drawn with numpy on first use and cached. Real
cubemaps (a folder of px/nx/py/ny/pz/nz images) and equirectangular images are the user's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.errors import ConfigError
from synthreid.scene.config import BUILTIN_CUBEMAPS, CUBEMAP_FACES, PHOTO_SUFFIXES

FACE_SIZE = 512


def _brick(rng, size, base, mortar):
    y, x = np.mgrid[0:size, 0:size]
    row = y // 32
    offset = (row % 2) * 32
    is_mortar = ((y % 32) < 3) | (((x + offset) % 64) < 3)
    tint = rng.uniform(0.85, 1.1, (size // 32 + 1, size // 64 + 2))
    colour = np.asarray(base)[None, None] * tint[row, (x + offset) // 64][..., None]
    return np.where(is_mortar[..., None], np.asarray(mortar), colour)


def _tiles(rng, size, a, b):
    y, x = np.mgrid[0:size, 0:size]
    checker = ((x // 64) + (y // 64)) % 2 == 0
    grout = ((x % 64) < 2) | ((y % 64) < 2)
    colour = np.where(checker[..., None], np.asarray(a), np.asarray(b))
    return np.where(grout[..., None], 0.3, colour)


def _stripes_wall(rng, size, a, b):
    x = np.mgrid[0:size, 0:size][1]
    panel = (x // 96) % 2 == 0
    return np.where(panel[..., None], np.asarray(a), np.asarray(b))


def _windows(rng, size, wall, glass):
    y, x = np.mgrid[0:size, 0:size]
    window = ((x % 128) > 24) & ((x % 128) < 104) & (y > 80) & (y < 300)
    return np.where(window[..., None], np.asarray(glass), np.asarray(wall))


def _draw_builtin(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, name)))
    n = FACE_SIZE
    if name == "brick":
        wall = _brick(rng, n, (0.55, 0.25, 0.18), (0.7, 0.7, 0.65))
        floor = _tiles(rng, n, (0.45, 0.45, 0.45), (0.35, 0.35, 0.35))
    elif name == "tiles":
        wall = _tiles(rng, n, (0.85, 0.85, 0.8), (0.75, 0.8, 0.85))
        floor = _tiles(rng, n, (0.2, 0.2, 0.22), (0.6, 0.6, 0.6))
    elif name == "street":
        wall = _windows(rng, n, (0.62, 0.58, 0.5), (0.25, 0.32, 0.4))
        floor = np.full((n, n, 3), 0.3) + rng.normal(0, 0.03, (n, n, 1))
    else:  # office
        wall = _stripes_wall(rng, n, (0.8, 0.78, 0.72), (0.7, 0.72, 0.75))
        floor = _tiles(rng, n, (0.5, 0.42, 0.32), (0.45, 0.38, 0.3))
    ceiling = np.full((n, n, 3), 0.85)
    faces = {face: wall for face in ("px", "nx", "py", "ny")}
    faces["pz"], faces["nz"] = ceiling, floor
    return {k: np.clip(v + rng.normal(0, 0.015, v.shape), 0, 1) for k, v in faces.items()}


def _cache_root() -> Path:
    return Path(os.environ.get("SYNTHREID_CACHE", Path.home() / ".cache" / "synthreid"))


def _cache_dir() -> Path:
    return _cache_root() / "cubemaps"


def asset_cache() -> Path:
    """Where a farm worker keeps the assets its jobs name (fetched once, by content)."""
    return _cache_root() / "assets"


def builtin_cubemap(name: str) -> Path:
    """The folder of a built-in cubemap, drawn on first use (atomically: temp dir + rename)."""
    if name not in BUILTIN_CUBEMAPS:
        raise ConfigError(f"room.cubemaps: unknown builtin:{name}; built-in ones are "
                          f"{', '.join(BUILTIN_CUBEMAPS)}")
    folder = _cache_dir() / name
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
    for face, pixels in _draw_builtin(name).items():
        Image.fromarray((pixels * 255).astype(np.uint8)).save(staging / f"{face}.png")
    try:
        staging.rename(folder)
    except OSError:  # another process finished first; theirs is identical
        for file in staging.iterdir():
            file.unlink()
        staging.rmdir()
    return folder


def cubemap_faces(source: str) -> dict[str, Path]:
    """Face name -> image path for a cubemap source ("builtin:NAME" or a folder)."""
    folder = builtin_cubemap(source.removeprefix("builtin:")) if source.startswith(
        "builtin:") else Path(source).expanduser()
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in PHOTO_SUFFIXES}
    missing = [face for face in CUBEMAP_FACES if face not in found]
    if missing:
        raise ConfigError(f"room.cubemaps: folder {folder} lacks face images {', '.join(missing)}")
    return {face: found[face] for face in CUBEMAP_FACES}
