"""Refiner speed: training iterations/s and refinement images/s for each method.

    python benchmarks/refiner_speed.py                       # 128x64, 6 blocks, batch 1
    python benchmarks/refiner_speed.py --size 256x128 --blocks 9

Targets on a 2-core CPU: >= 1 iteration/s for CycleGAN at 128x64 with 6 blocks, batch 1, and
refinement >= 20 images/s at 128x64. On an H100: >= 25 iterations/s at 256x128 with 9 blocks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthreid.refine.apply import refine_dataset
from synthreid.refine.config import METHODS, RefinerConfig
from synthreid.refine.train import RefinerTrainer


def write_set(root: Path, height: int, width: int, count: int, seed: int,
              held: int = 8) -> Path:
    """`count` random images with masks in the synthetic layout, the last `held` of them query
    and gallery images, the rest training images."""
    rng = np.random.default_rng(seed)
    for folder in ("bounding_box_train", "bounding_box_test", "query", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        name = f"{i // 4 + 1:04d}_c{i % 2 + 1}_{i:06d}"
        folder = "bounding_box_train" if i < count - held else ("query" if i % 2 else
                                                                "bounding_box_test")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            root / folder / f"{name}.jpg")
        mask = np.zeros((height, width), np.uint8)
        mask[height // 8:-height // 8, width // 4:-width // 4] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = write_set(tmp / "a", height, width, args.images, 0)
        target = write_set(tmp / "b", height, width, 64, 1)
        for method in METHODS:
            config = RefinerConfig(source=f"synthetic:{source}", target=f"synthetic:{target}",
                                   out=str(tmp / method), method=method, height=height,
                                   width=width, blocks=args.blocks, batch_size=args.batch,
                                   iterations=args.iterations + 3, sample_every=10**6,
                                   checkpoint_every=10**6, log_every=10**6)
            trainer = RefinerTrainer(config)
            trainer.open()
            for warm in range(3):  # warm-up: kernels chosen, caches filled
                trainer.step(warm)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            for iteration in range(3, 3 + args.iterations):
                trainer.step(iteration)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            rate = args.iterations / (time.perf_counter() - started)
            trainer.save()
            started = time.perf_counter()
            result = refine_dataset(tmp / method / "last.pt", f"synthetic:{source}",
                                    tmp / f"{method}-refined", batch_size=32)
            images_rate = result.refined / (time.perf_counter() - started)
            print(f"{method:9} {args.size} {args.blocks} blocks batch {args.batch} on {device}: "
                  f"{rate:6.2f} iterations/s, refine {images_rate:6.1f} images/s")


if __name__ == "__main__":
    main()
