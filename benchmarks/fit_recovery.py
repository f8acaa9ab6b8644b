"""Does `synthreid fit` find settings it was not told? A target is rendered from IV with hidden
settings far from IV's (other people than the fit renders), then IV is fitted to it with each
objective. Prints, per objective, the fitted value of every hidden attribute, whether it landed
within tolerance, and whether a one-attribute grid around the truth ranks the truth first.

    python benchmarks/fit_recovery.py                         # Cycles, 12 x 5 per candidate
    python benchmarks/fit_recovery.py --engine workbench --characters 8 --images 4

tests/test_fit.py runs the same check at a tiny size (Workbench, four attributes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.fit.config import FitConfig
from synthreid.fit.renders import CandidateRenders
from synthreid.fit.search import Fit
from synthreid.scene.config import config_from_dict, load_config
from synthreid.typed import deep_merge

HIDDEN = {"camera": {"theta_deg": [52.0, 58.0]},
          "lights": {"sun_temperature_k": [3400.0, 3600.0]},
          "camera_effects": {"height_px": [78, 82], "defocus_sigma_px": [1.4, 1.6],
                             "jpeg_quality": [38, 42]}}
# attribute: (truth, grid, tolerance)
TRUTH = {"resolution_scale": (0.625, [0.4, 0.625, 0.8, 1.0], 0.2),
         "defocus_px": (1.5, [0.0, 0.75, 1.5, 2.5, 4.0], 0.75),
         "jpeg_quality": (40, [100, 85, 65, 40, 25], 20),
         "sun_temperature_k": (3500.0, [3500.0, 5000.0, 6500.0, 9000.0], 1000),
         "polar_deg": (55.0, [55.0, 65.0, 75.0, 87.0], 10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="cycles", choices=("cycles", "workbench"))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--characters", type=int, default=12)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--target-characters", type=int, default=20)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--objectives", default="combined,statistics,random-features")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="fit-recovery-"))
    root.mkdir(parents=True, exist_ok=True)
    db, storage = f"sqlite:///{root / 'farm.db'}", str(root / "storage")
    render = {"render": {"engine": args.engine, "samples": args.samples},
              "crop": {"height_px": args.height}}
    base = deep_merge(load_config("IV").model_dump(mode="json"), render)
    hidden = config_from_dict(deep_merge(base, HIDDEN))
    started = time.perf_counter()
    target_renders = CandidateRenders(db, storage, args.target_characters, args.images, seed=99)
    target_renders.ensure([hidden])
    target = root / "target"
    (target / "bounding_box_train").mkdir(parents=True, exist_ok=True)
    for folder in ("bounding_box_test", "query"):
        (target / folder).mkdir(exist_ok=True)
    for i, crop in enumerate(target_renders.crops(hidden)):
        Image.fromarray(crop).save(target / "bounding_box_train"
                                   / f"{i // args.images + 1:04d}_c1s1_{i:06d}_00.png")
    for folder in ("bounding_box_test", "query"):  # the layout wants them; a fit never reads them
        Image.fromarray(crop).save(target / folder / "0001_c2s1_000001_00.png")
    print(f"target: {args.target_characters} x {args.images} crops, "
          f"{time.perf_counter() - started:.0f} s; work in {root}")
    rows = []
    for objective in args.objectives.split(","):
        settings = FitConfig(
            rounds=2, characters=args.characters, images_per_character=args.images,
            engine=args.engine, samples=args.samples, crop_height_px=args.height,
            budget_minutes=600, objective=objective,
            attributes=[{"name": n, "candidates": g} for n, (_, g, _) in TRUTH.items()])
        started = time.perf_counter()
        fit = Fit("IV", f"market1501:{target}", root / f"fit-{objective}", settings, db, storage)
        result = fit.run()
        truth = {n: t for n, (t, _, _) in TRUTH.items()}
        for name, (value, grid, tolerance) in TRUTH.items():
            fitted = result.values.get(name, result.preset_values[name])
            distances = [e["distance"] for e in fit.evaluate(
                [fit.config_for({**truth, name: v}) for v in grid])]
            rows.append((objective, name, value, fitted, abs(fitted - value) <= tolerance,
                         grid[int(np.argmin(distances))] == value))
        print(f"{objective}: {time.perf_counter() - started:.0f} s")
    print("\n| objective | attribute | hidden | fitted | within tolerance "
          "| truth first on its grid |")
    print("|---|---|---|---|---|---|")
    for objective, name, value, fitted, within, first in rows:
        print(f"| {objective} | {name} | {value:g} | {fitted:g} | {'yes' if within else 'no'} "
              f"| {'yes' if first else 'no'} |")


if __name__ == "__main__":
    main()
