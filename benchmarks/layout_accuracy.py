"""Does the new arithmetic learn as well as the old? The same short re-id training, old path
(fp32, NCHW) against the new one (what `compute()` chooses here: channels-last, bf16 only where
native), each with three seeds: the best validation CMC area and images/s of every run, then
the new path's mean against the old path's seed spread.

    python benchmarks/layout_accuracy.py --data synthetic:out/small/stages/generate-IV-KEY/dataset
        [--epochs 4] [--seeds 0 1 2] [--height 128 --width 64]

Pass: every new-path area inside the old path's mean +- 2 sample standard deviations (three
seeds say little more than that). A speed ratio comes with it, from the same runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from synthreid.datasets import open_dataset
from synthreid.device import Compute, compute, torch_device
from synthreid.reid.config import TrainConfig
from synthreid.reid.train import Trainer


def train_once(data: str, arithmetic: Compute, seed: int, args, out: Path) -> tuple[float, float]:
    """(best validation CMC area, training images/s) of one short run."""
    config = TrainConfig.model_validate({
        "out": str(out), "epochs": args.epochs, "batch_size": 32, "lr": 0.05,
        "warmup_epochs": 1, "milestones": [], "seed": seed, "workers": 1,
        "validation_repeats": 5, "model": {"embedding": 128},
        "augment": {"height": args.height, "width": args.width, "pad": 6}})
    trainer = Trainer(config, [open_dataset(data)], arithmetic)
    images = sum(len(s.records) for s in trainer.sources) * args.epochs
    start = time.perf_counter()
    result = trainer.fit()
    return result["best_validation_area"], images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a dataset with validation ids")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    paths = {"old (fp32, NCHW)": Compute(torch_device(), channels_last=False),
             f"new ({compute().describe()})": compute()}
    areas: dict[str, list[float]] = {}
    print("| path | seed | best validation CMC area | images/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, arithmetic in paths.items():
            for seed in args.seeds:
                area, speed = train_once(args.data, arithmetic, seed, args,
                                         Path(tmp) / f"{len(areas)}-{seed}")
                areas.setdefault(name, []).append(area)
                print(f"| {name} | {seed} | {area:.1f} | {speed:.2f} |", flush=True)
    (old_name, old), (new_name, new) = areas.items()
    mean, spread = statistics.fmean(old), statistics.stdev(old) if len(old) > 1 else 0.0
    inside = all(abs(area - mean) <= 2 * spread for area in new)
    print(f"\nold: {mean:.1f} +- {spread:.1f}; new: {statistics.fmean(new):.1f} +- "
          f"{statistics.stdev(new) if len(new) > 1 else 0.0:.1f}; every new area within "
          f"2 sd of the old: {'yes' if inside else 'no'}")


if __name__ == "__main__":
    main()
