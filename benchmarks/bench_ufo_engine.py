"""Throughput of the UFO Lorentz engine: e⁺e⁻ → μ⁺μ⁻ assembled from SMEFTsim structures vs the hand-written one.

Both evaluate the helicity-summed |M|² with three contact operators (SM + cll, cle, cee at a fixed θ)
on the same momenta, on one thread, float64/complex128.  Figures (benchmarks/results/bench_ufo_engine.json):

* ``*_me2_s``: wall time of one ``matrix_element2`` call at the batch size (best of ``--repeats``);
* ``*_grad_s``: one ``matrix_element2(...).sum().backward()`` w.r.t. the momenta;
* ``*_chunked_me2_s``: the same batch evaluated in chunks of ``--chunk`` events (cache-sized tensors);
* ``*_dispatch_ops``: aten operations dispatched for one call (counted with a TorchDispatchMode);
* ``engine_over_handwritten_*``: throughput ratio (> 1: the engine is faster);
* ``max_rel_diff_me2``: max relative difference of |M|² between the two;
* with ``--compile``: torch.compile of the engine's |M|² (first-call time, steady time, agreement).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_ufo_engine.py [--batch 100000] [--compile]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from _results import write_results
from _ufo_ee_mumu import UFOEngineEEToMuMu
from ufo_amplitudes import best_time
from sbihep.physics.processes import EEToMuMu

THETA = {"cll": 0.5, "cle": -1.0, "cee": 0.8}


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=8192)
    parser.add_argument("--sqrt-s", type=float, default=250.0)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the engine (slow to compile)")
    parser.add_argument("--quick", action="store_true", help="smoke sizes")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats = 2000, 2
    torch.set_num_threads(1)

    hand, engine = EEToMuMu(), UFOEngineEEToMuMu()
    r = torch.rand(args.batch, 2, generator=torch.Generator().manual_seed(20), dtype=torch.float64)
    momenta, _ = hand.phase_space(r, args.sqrt_s)
    figures: dict = {
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    m_hand = hand.matrix_element2(momenta, THETA, validate=False)
    m_engine = engine.matrix_element2(momenta, THETA, validate=False)
    figures["max_rel_diff_me2"] = float(((m_hand - m_engine).abs() / m_hand.abs()).max())

    for label, proc in (("handwritten", hand), ("engine", engine)):
        figures[f"{label}_me2_s"] = best_time(lambda: proc.matrix_element2(momenta, THETA, validate=False), args.repeats)

        def chunked(proc=proc):
            for start in range(0, args.batch, args.chunk):
                proc.matrix_element2(momenta[start : start + args.chunk], THETA, validate=False)

        figures[f"{label}_chunked_me2_s"] = best_time(chunked, args.repeats)

        def grad(proc=proc):
            q = momenta.clone().requires_grad_(True)
            proc.matrix_element2(q, THETA, validate=False).sum().backward()

        figures[f"{label}_grad_s"] = best_time(grad, max(1, args.repeats // 2))
        with _OpCounter() as counter:
            proc.matrix_element2(momenta[:8], THETA, validate=False)
        figures[f"{label}_dispatch_ops"] = counter.count
    for key in ("me2", "chunked_me2", "grad"):
        figures[f"engine_over_handwritten_{key}"] = figures[f"handwritten_{key}_s"] / figures[f"engine_{key}_s"]
    figures["chunk"] = args.chunk

    if args.compile:
        def f(p):
            return engine.matrix_element2(p, THETA, validate=False)

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                compiled = torch.compile(f)
                t0 = time.perf_counter()
                out = compiled(momenta)
                figures["compile_first_call_s"] = time.perf_counter() - t0
            figures["compile_max_rel_diff_me2"] = float(((out - m_engine).abs() / m_engine.abs()).max())
            figures["compiled_me2_s"] = best_time(lambda: compiled(momenta), args.repeats)
            figures["compiled_over_eager"] = figures["engine_me2_s"] / figures["compiled_me2_s"]
            figures["compile_warnings"] = sorted({str(w.message)[:120] for w in caught})
        except Exception as exc:  # report, don't fight it
            figures["compile_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"

    for k, v in figures.items():
        print(f"{k:40s} {v}")
    write_results(__file__, figures)


if __name__ == "__main__":
    main()
