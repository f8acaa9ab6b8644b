"""Wall time of each stage of a tiny experiment (one preset, a 30-person Market-layout "real"
set of coloured blocks written here), from a clean folder.

    python benchmarks/experiment_tiny.py [--out out/experiment-tiny] [--characters 12]

Prints one line per stage (kind, seconds) and the total; a second run of the same folder shows
what a resume of a finished experiment costs (every stage skipped, the report rewritten).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

from synthreid.datasets.toy import write_toy_market
from synthreid.experiment.matrix import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/experiment-tiny"))
    parser.add_argument("--characters", type=int, default=12)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    real = write_toy_market(args.out / "real")
    config = {
        "real": f"market1501:{real.resolve()}", "presets": ["IV"],
        "generation": {"characters": args.characters, "images": 2, "crop_height": 64,
                       "engine": "workbench", "workers": 2},
        "refiners": {"methods": {"IV": ["cyclegan", "ptgan"]},
                     "settings": {"iterations": 20, "height": 32, "width": 32, "ngf": 16,
                                  "ndf": 16, "sample_every": 10, "checkpoint_every": 10}},
        "reid": {"settings": {"epochs": 4, "batch_size": 8, "workers": 0,
                              "model": {"embedding": 32},
                              "augment": {"height": 32, "width": 16, "pad": 2},
                              "warmup_epochs": 0, "milestones": [3], "validation_repeats": 2}},
        "finetune": ["refined-IV-cyclegan"], "mixed": ["generated-IV"],
        "evaluation": {"repeats": 3},
    }
    path = args.out / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    for attempt in ("first run", "again (all finished)"):
        start = time.perf_counter()
        experiment = run_experiment(path, args.out / "experiment", say=lambda _: None)
        wall = time.perf_counter() - start
        print(f"{attempt}: {wall:.1f} s")
        if attempt == "first run":
            for stage in experiment.plan.stages:
                record = json.loads((stage.folder / "stage.json").read_text())
                print(f"  {stage.name:48} {stage.kind:9} {record['wall_s']:7.1f} s")
    print(f"report: {experiment.report['html']}")


if __name__ == "__main__":
    main()
