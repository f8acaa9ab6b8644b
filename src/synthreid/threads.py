"""How many threads PyTorch's math may use in this process.

PyTorch takes every core it sees, so two trainings (or a training beside a render) on the same
cores each run many times slower than alone (benchmarks/concurrent_training.py).
`SYNTHREID_TORCH_THREADS=N` (or `synthreid --torch-threads N`) caps this process' math threads,
and processes it starts inherit the variable: give each process sharing a machine its share of
the cores. Local render workers started by a capped process divide its share (core_share).
Read without importing torch, so commands that never use it start fast.
"""

from __future__ import annotations

import os

THREADS_VARIABLE = "SYNTHREID_TORCH_THREADS"


def requested_threads() -> int | None:
    """The cap `SYNTHREID_TORCH_THREADS` asks for, or None (PyTorch's default: every core)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={value!r}: expected a whole number of threads "
                         f">= 1")
    return int(value)


def core_share() -> int:
    """The cores this process may keep busy: the cap, else every core. Render workers started
    by this process divide it among themselves."""
    return requested_threads() or os.cpu_count() or 1


def apply_thread_cap() -> int | None:
    """Cap PyTorch's math threads as `SYNTHREID_TORCH_THREADS` asks; the cap, or None when none
    is asked (then torch is not even imported)."""
    threads = requested_threads()
    if threads is not None:
        import torch

        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
    return threads
