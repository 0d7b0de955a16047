"""Throughput and memory of helicity-summed |M|² for every registered process.

For each process: evaluations per second of ``matrix_element2`` (at a fixed θ) and of
``eft_decomposition`` (all SM/linear/quadratic coefficients) at batch 10⁵, with torch pinned to one
thread and with torch's default threading, each with the input validation of the public API and
without it (``validate=False``, as the integrators call it); and the peak resident memory per
event of one batch (rise of the process's peak RSS over the RSS before the call, after the peak
mark is reset through /proc/self/clear_refs).
Each measurement runs in a fresh subprocess so that peak memory is not polluted by the others.

Usage:  python benchmarks/bench_matrix_elements.py [--batch 100000] [--repeats 3] [--processes a,b]
Writes benchmarks/results/bench_matrix_elements.json (flat keys with units).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

from _results import write_results



def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> int:
    """Return freed memory to the OS, reset the peak-RSS mark (Linux ≥ 4.0), return current RSS (KiB)."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def _measure(name: str, batch: int, repeats: int, threads: int | None, what: str, queue) -> None:
    import torch

    from sbihep.physics.processes import get_process

    if threads is not None:
        torch.set_num_threads(threads)
    proc = get_process(name)
    gen = torch.Generator().manual_seed(0)
    r = torch.rand(batch, proc.n_random, generator=gen, dtype=torch.float64)
    sqrt_s = max(3.0 * proc.threshold(), 500.0)
    momenta, _ = proc.phase_space(r, sqrt_s)
    theta = torch.full((len(proc.operators),), 0.1, dtype=torch.float64)

    validate = not what.endswith("_novalidate")

    def run():
        with torch.no_grad():
            if what.startswith("me2"):
                proc.matrix_element2(momenta, theta, validate=validate)
            else:
                proc.eft_decomposition(momenta, validate=validate)

    run()  # warm-up
    rss_before = _reset_peak_rss()
    run()  # the peak-memory sample
    rss_after = _status_kib("VmHWM")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    queue.put(
        {
            "per_s": batch / min(times),
            "bytes_per_event": max(rss_after - rss_before, 0) * 1024 / batch,
            "threads": torch.get_num_threads(),
        }
    )


def measure(name: str, batch: int, repeats: int, threads: int | None, what: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(name, batch, repeats, threads, what, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    from sbihep.physics.processes import PROCESSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", default=",".join(PROCESSES))
    args = parser.parse_args()

    figures: dict[str, float | str] = {
        "batch_events": args.batch,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
    }
    print(f"{'process':12s} {'what':18s} {'1 thread /s':>14s} {'default /s':>14s} {'threads':>7s} {'bytes/event':>12s}")
    for name in args.processes.split(","):
        for what in ("me2", "me2_novalidate", "decomp", "decomp_novalidate"):
            one = measure(name, args.batch, args.repeats, 1, what)
            key = f"{name}_{what}"
            figures[f"{key}_per_s_1core"] = round(one["per_s"], 1)
            figures[f"{key}_peak_bytes_per_event"] = round(one["bytes_per_event"], 1)
            line = f"{name:12s} {what:18s} {one['per_s']:14.4g}"
            if not what.endswith("_novalidate"):
                default = measure(name, args.batch, args.repeats, None, what)
                figures[f"{key}_per_s_default_threads"] = round(default["per_s"], 1)
                line += f" {default['per_s']:14.4g} {default['threads']:7d}"
            else:
                line += f" {'':14s} {'':7s}"
            print(line + f" {one['bytes_per_event']:12.0f}")
    write_results(__file__, figures)


if __name__ == "__main__":
    main()
