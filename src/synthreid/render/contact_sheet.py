"""A contact sheet: every image of a folder on one PNG, one row per character."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image

from synthreid import atomic


def contact_sheet(image_paths: list[Path], out_path: Path, cell_height: int = 128,
                  gap: int = 4) -> Path:
    rows: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(image_paths):
        rows[path.stem.split("_")[0]].append(path)
    rows_of_images = []
    for paths in rows.values():
        row = []
        for path in paths:
            with Image.open(path) as image:
                row.append(image.convert("RGB"))
        rows_of_images.append(row)
    sheet = compose(rows_of_images, cell_height, gap)
    with atomic.atomic_path(out_path) as tmp:
        sheet.save(tmp)
    return out_path


def compose(rows: list[list[Image.Image]], cell_height: int = 128, gap: int = 4) -> Image.Image:
    """Rows of images on one white sheet, each scaled to `cell_height`."""
    if not rows:
        raise ValueError("no images for a contact sheet")
    thumbs = [[image.resize((max(1, round(image.width * cell_height / image.height)),
                             cell_height), Image.LANCZOS) for image in row] for row in rows]
    width = max(sum(t.width for t in row) + gap * (len(row) + 1) for row in thumbs)
    height = len(thumbs) * (cell_height + gap) + gap
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    for r, row in enumerate(thumbs):
        x = gap
        for thumb in row:
            sheet.paste(thumb, (x, gap + r * (cell_height + gap)))
            x += thumb.width + gap
    return sheet
