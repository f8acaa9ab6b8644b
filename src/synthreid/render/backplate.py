"""A photo behind the render (planar backplate): the render, transparent where no person (or
the person's shadow) is, laid over a window of the photo with the render's aspect ratio. The
window is drawn from the image's recorded seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.seeds import ImageStream

WINDOW_SCALE = (0.35, 1.0)  # of the largest window of the render's aspect the photo holds


def backplate_window(photo_size: tuple[int, int], render_size: tuple[int, int],
                     seed: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the photo to show behind a render of `render_size`."""
    rng = np.random.default_rng([seed, ImageStream.BACKPLATE])
    (pw, ph), (rw, rh) = photo_size, render_size
    fit = min(pw / rw, ph / rh)  # the largest window of the render's aspect
    scale = fit * rng.uniform(*WINDOW_SCALE)
    w, h = max(1, round(rw * scale)), max(1, round(rh * scale))
    left, top = int(rng.integers(0, pw - w + 1)), int(rng.integers(0, ph - h + 1))
    return left, top, left + w, top + h


def composite_backplate(render_path: Path, photo: str | Path, seed: int) -> None:
    """The RGBA render at `render_path` rewritten as RGB, over its window of `photo`."""
    with Image.open(render_path) as render_file:
        render = np.asarray(render_file.convert("RGBA")).astype(np.float32) / 255
    height, width = render.shape[:2]
    with Image.open(Path(photo).expanduser()) as photo_file:
        window = backplate_window(photo_file.size, (width, height), seed)
        behind = photo_file.convert("RGB").resize((width, height), Image.BILINEAR, box=window)
    alpha = render[..., 3:]
    rgb = render[..., :3] * alpha + np.asarray(behind, np.float32) / 255 * (1 - alpha)
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(render_path, "PNG")
