"""Two re-id trainings on the same cores: each with PyTorch's default threads (every core)
against each capped to its share (`SYNTHREID_TORCH_THREADS`), beside one training alone.

    python benchmarks/concurrent_training.py [--steps 6] [--processes 2]

Each process times `--steps` Inception training steps at 128x64, batch 32, after one warm-up
step; prints images/s per process and in all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_process(steps: int) -> None:
    from speed_table import rate, reid_step

    from synthreid.device import compute

    arithmetic = compute()  # applies SYNTHREID_TORCH_THREADS
    print(rate(reid_step("inception", 128, 64, arithmetic, 32), 32, steps), flush=True)


def run(count: int, steps: int, threads: int | None) -> list[float]:
    from synthreid.threads import THREADS_VARIABLE

    env = dict(os.environ)
    env.pop(THREADS_VARIABLE, None)
    if threads is not None:
        env[THREADS_VARIABLE] = str(threads)
    procs = [subprocess.Popen([sys.executable, __file__, "--one", str(steps)], env=env,
                              stdout=subprocess.PIPE, text=True, cwd=HERE)
             for _ in range(count)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a training process failed ({proc.returncode})")
        rates.append(float(out.strip().splitlines()[-1]))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one_process(args.one)
    cores = len(os.sched_getaffinity(0))
    share = max(1, cores // args.processes)
    print(f"{cores} cores; Inception 128x64, batch 32, {args.steps} steps a process")
    print("| setting | images/s per process | images/s in all |\n|---|---|---|")
    for label, count, threads in (("one training alone", 1, None),
                                  (f"{args.processes} at once, default threads", args.processes,
                                   None),
                                  (f"{args.processes} at once, {share} thread(s) each",
                                   args.processes, share)):
        rates = run(count, args.steps, threads)
        print(f"| {label} | {' / '.join(f'{r:.2f}' for r in rates)} | {sum(rates):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
