"""Automatic person masks (mediapipe selfie segmentation, as `synthreid masks` uses) against
the exact masks the renderer writes, on generated people in front of real-looking cubemap rooms
(preset IV), and a picture of the automatic masks on real images.

    python benchmarks/mask_quality.py [--characters 20] [--images 3] [--real DATASET]
        [--out out/mask-quality]

Prints the mean IoU (and its spread over images) for padded-to-square input (the default) and
for squashed input, and images/s; writes OUT/generated.png (rows: image, rendered mask,
automatic mask) and, with --real, OUT/real.png (image and automatic mask overlaid).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.datasets import open_dataset
from synthreid.preview import preview
from synthreid.refine.masks import PersonSegmenter, read_rgb


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    tinted = rgb.astype(np.float32)
    tinted[~mask] *= 0.3
    return tinted.astype(np.uint8)


def sheet(columns: list[list[np.ndarray]], height: int = 128) -> Image.Image:
    """Columns of equally many images, each resized to `height` rows."""
    tiles = [[Image.fromarray(t).resize((height // 2, height)) for t in c] for c in columns]
    canvas = Image.new("RGB", (len(tiles) * height // 2, len(tiles[0]) * height), "white")
    for x, column in enumerate(tiles):
        for y, tile in enumerate(column):
            canvas.paste(tile.convert("RGB"), (x * height // 2, y * height))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=20)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--real", help="a real dataset (LAYOUT:ROOT or .yaml) to picture")
    parser.add_argument("--out", type=Path, default=Path("out/mask-quality"))
    args = parser.parse_args()
    rendered = preview("IV", args.characters, args.images, seed=0, out=args.out / "rendered")
    pairs = []
    for path in rendered.images:
        mask_path = path.parent.parent / "masks" / f"{path.stem}.png"
        with Image.open(mask_path) as mask:
            pairs.append((read_rgb(path), np.asarray(mask.convert("L")) > 127))
    for pad in (True, False):
        with PersonSegmenter(pad_square=pad) as segmenter:
            start = time.perf_counter()
            found = [segmenter.mask(rgb) for rgb, _ in pairs]
            speed = len(pairs) / (time.perf_counter() - start)
        scores = np.array([iou(f, truth) for f, (_, truth) in zip(found, pairs)])
        print(f"{'padded ' if pad else 'squashed'} input: IoU {scores.mean():.3f} "
              f"(median {np.median(scores):.3f}, 10th percentile "
              f"{np.percentile(scores, 10):.3f}) over {len(pairs)} generated images "
              f"(preset IV), {speed:.0f} images/s")
        if pad:
            shown = list(range(min(12, len(pairs))))
            sheet([[pairs[i][0], pairs[i][1].astype(np.uint8) * 255,
                    found[i].astype(np.uint8) * 255] for i in shown]
                  ).save(args.out / "generated.png")
    if args.real:
        dataset = open_dataset(args.real)
        records = sorted(dataset.train, key=lambda r: r.path)[:24]
        with PersonSegmenter() as segmenter:
            columns = [[rgb, overlay(rgb, segmenter.mask(rgb))]
                       for rgb in (read_rgb(r.path) for r in records)]
        sheet(columns).save(args.out / "real.png")
    print(f"pictures in {args.out}")


if __name__ == "__main__":
    main()
