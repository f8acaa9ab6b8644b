"""A tiny Market-layout "real" set of coloured-block people (shirt and legs on grey), for smoke
runs and tests that need real-shaped data without a real dataset: two thirds of the people train,
the rest are test ids with one query (camera 1) and three gallery images each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_toy_market(root: str | Path, people: int = 30, seed: int = 0) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    for pid in range(1, people + 1):
        shirt, legs = rng.integers(30, 220, 3), rng.integers(30, 220, 3)
        for i in range(4):
            folder = ("bounding_box_train" if pid <= 2 * people // 3 else
                      "query" if i == 0 else "bounding_box_test")
            pixels = np.full((64, 32, 3), 110.0) + rng.normal(0, 8, (64, 32, 3))
            pixels[10:34, 8:24], pixels[34:60, 10:22] = shirt, legs
            path = root / folder / f"{pid:04d}_c{i % 2 + 1}s1_{i:06d}_00.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return root
