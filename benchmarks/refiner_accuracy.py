"""Does a refiner learn the same on the new arithmetic? One fixed refiner run, old path (fp32,
NCHW) against the path refiners take here (`compute()`'s precision, `networks.CHANNELS_LAST`),
each with three seeds: every logged loss term per window of iterations, the new path's mean
against the old path's mean +- 2 sample standard deviations, and iterations/s.

    python benchmarks/refiner_accuracy.py --source synthetic:out/X/stages/generate-IV-KEY/dataset \
        --target experiments/prid450s.yaml [--method cyclegan] [--iterations 200] [--window 50]

Pass: every new-path point (term, window, seed) inside the old path's band; the share inside
is printed, with the windows and terms outside it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from synthreid.device import Compute, compute, torch_device
from synthreid.refine.config import METHODS, RefinerConfig
from synthreid.refine.networks import CHANNELS_LAST
from synthreid.refine.train import RefinerTrainer


def train_once(args, arithmetic: Compute, seed: int, out: Path) -> tuple[list[dict], float]:
    """The logged loss windows and iterations/s of one run (no identity checks: losses only)."""
    config = RefinerConfig(source=args.source, target=args.target, out=str(out),
                           method=args.method, height=128, width=64, blocks=6, batch_size=1,
                           iterations=args.iterations, log_every=args.window,
                           sample_every=args.iterations, checkpoint_every=args.iterations,
                           residual=True, identity_check=False, seed=seed)
    trainer = RefinerTrainer(config, arithmetic)
    start = time.perf_counter()
    trainer.fit()
    return trainer.history, args.iterations / (time.perf_counter() - start)


def band(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="generated dataset (LAYOUT:ROOT)")
    parser.add_argument("--target", required=True, help="real dataset (LAYOUT:ROOT or .yaml)")
    parser.add_argument("--method", choices=METHODS, default="cyclegan")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--window", type=int, default=50, help="iterations a logged mean")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    new = compute(channels_last=CHANNELS_LAST)
    paths = {"old (fp32, NCHW)": Compute(torch_device(), channels_last=False),
             f"new ({new.describe()})": new}
    runs: dict[str, list[list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arithmetic in paths.items():
            for seed in args.seeds:
                history, speed = train_once(args, arithmetic, seed,
                                            Path(tmp) / f"{len(runs)}-{name[:3]}-{seed}")
                runs.setdefault(name, []).append(history)
                print(f"{name}, seed {seed}: {speed:.2f} iterations/s", flush=True)
    old, new_runs = runs.values()
    terms = [k for k in old[0][0] if k != "iteration"]
    print("\n| loss term | iterations to | old (mean +- sd) | new (mean +- sd) | new seeds "
          "inside old +- 2 sd |\n|---|---|---|---|---|")
    inside, total, outside = 0, 0, []
    for term in terms:
        for w, window in enumerate(old[0]):
            old_mean, old_sd = band([run[w][term] for run in old])
            values = [run[w][term] for run in new_runs]
            new_mean, new_sd = band(values)
            hits = sum(abs(v - old_mean) <= 2 * old_sd for v in values)
            inside, total = inside + hits, total + len(values)
            if hits < len(values):
                outside.append(f"{term} to {window['iteration']}")
            print(f"| {term} | {window['iteration']} | {old_mean:.3f} +- {old_sd:.3f} | "
                  f"{new_mean:.3f} +- {new_sd:.3f} | {hits} of {len(values)} |")
    print(f"\n{inside} of {total} new-path points inside the old path's mean +- 2 sd"
          + (f"; outside: {', '.join(outside)}" if outside else ""))


if __name__ == "__main__":
    main()
