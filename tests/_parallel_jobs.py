"""Module-level job functions for tests/test_parallel.py (picklable for spawned workers)."""

import numpy as np


def seeded_sum(seed: int, n: int) -> float:
    return float(np.random.default_rng(seed).normal(size=n).sum())


def fail_on_three(i: int) -> int:
    if i == 3:
        raise ValueError("job 3 failed")
    return i
