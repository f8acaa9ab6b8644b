"""Time and peak memory of the Market-1501 protocol on 20,000 x 20,000 random 2,048-d features.

    python benchmarks/eval_speed.py [--queries 20000] [--gallery 20000] [--dim 2048] [--block 512]

Target on a 2-core CPU: under 60 s and under 4 GB.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from synthreid.evaluate import protocols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--gallery", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--block", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = 1500
    qf = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    gf = rng.standard_normal((args.gallery, args.dim), dtype=np.float32)
    q_ids, g_ids = rng.integers(0, ids, args.queries), rng.integers(0, ids, args.gallery)
    q_cams, g_cams = rng.integers(1, 7, args.queries), rng.integers(1, 7, args.gallery)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    result = protocols.market(qf, q_ids, q_cams, gf, g_ids, g_cams, block=args.block)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"market protocol {args.queries} x {args.gallery} x {args.dim}-d on {device}: "
          f"{seconds:.1f} s, peak memory {peak:.2f} GB (features alone {before:.2f} GB); "
          f"rank-1 {100 * result.rank(1):.2f}% mAP {100 * result.mAP:.2f}% (chance level)")


if __name__ == "__main__":
    main()
