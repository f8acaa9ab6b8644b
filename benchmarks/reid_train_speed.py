"""Training speed of both backbones at 256x128: the real loop (data loading, augmentation,
loss, optimizer) next to the bare forward + backward + step of the same model on random tensors.

    python benchmarks/reid_train_speed.py [--batch 32] [--batches 4] [--workers 2]

Target: the real loop reaches at least 90% of the bare rate (the input pipeline is never the
bottleneck). Runs on CUDA (bf16 autocast, channels_last) when present, else on the CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthreid.datasets import read_dataset
from synthreid.reid.config import TrainConfig
from synthreid.reid.data import Augment
from synthreid.reid.losses import LossConfig
from synthreid.reid.model import ModelArgs, ReidModel
from synthreid.reid.train import Trainer


def write_images(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("bounding_box_train", "bounding_box_val", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (256, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "bounding_box_train" / f"{i // 4 + 1:04d}_c1_{i:06d}.jpg")
    for folder in ("bounding_box_val", "query", "bounding_box_test"):
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (256, 128, 3), dtype=np.uint8)).save(
                root / folder / f"{9000 + i // 2:04d}_c{i % 2 + 1}_{i:06d}.jpg")
    return root


def bare_rate(backbone: str, batch: int, batches: int, device: torch.device) -> float:
    model = ReidModel(ModelArgs(backbone=backbone), {"d0": 100}).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = LossConfig()
    images = torch.randn(batch, 3, 256, 128, device=device)
    labels = torch.randint(0, 100, (batch,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for step in range(batches + 1):  # the first step warms up
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast:
            features, logits = model(images, "d0")
            loss = loss_fn(features, logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * batches / (time.perf_counter() - start)


def loop_rate(backbone: str, batch: int, batches: int, workers: int, root: Path) -> float:
    dataset = read_dataset("synthetic", root)
    config = TrainConfig(out=str(root / f"run-{backbone}"), model=ModelArgs(backbone=backbone),
                         augment=Augment(height=256, width=128, erasing=0.5), epochs=2,
                         batch_size=batch, workers=workers, warmup_epochs=0,
                         milestones=[], validation_repeats=1)
    trainer = Trainer(config, [dataset])
    trainer.train_epoch(0)  # warm-up epoch: loader workers start, kernels are chosen
    return trainer.train_epoch(1)["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        root = write_images(Path(tmp) / "data", args.batch * args.batches)
        for backbone in ("inception", "resnet50"):
            bare = bare_rate(backbone, args.batch, args.batches, device)
            loop = loop_rate(backbone, args.batch, args.batches, args.workers, root)
            print(f"{backbone:9} on {name}: real loop {loop:7.1f} images/s, bare step "
                  f"{bare:7.1f} images/s: {100 * loop / bare:.0f}%")


if __name__ == "__main__":
    main()
