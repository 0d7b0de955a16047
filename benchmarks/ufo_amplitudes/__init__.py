"""Sections of benchmarks/bench_ufo_amplitudes.py (one module each), and what they share."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def temporary_process_cache():
    """Point ``SBIHEP_CACHE_DIR`` at a fresh temporary folder (yielded) for the duration, so that figures never
    come from a process cached by an earlier run; the previous value is restored."""
    old = os.environ.get("SBIHEP_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SBIHEP_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("SBIHEP_CACHE_DIR", None)
            else:
                os.environ["SBIHEP_CACHE_DIR"] = old


def best_time(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (s), after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
