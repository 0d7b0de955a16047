"""Profile-scan speed and toy throughput of the exact unbinned WH likelihood.

- 2D 50×50 profile scan in (cHW, cHq3) of the Asimov data set of ``--events`` WH events (the pool is
  the data: every event with its expected count), with two nuisances profiled (μ_F morphing and a
  2.5% log-normal luminosity), on one core (``n_workers=1``).
- Toys per second (free + conditional fit of t(cHW) per toy) with 1 and 2 workers (spawned
  processes through sbihep.parallel), on a 20k-event pool at 10 fb⁻¹.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_scan.py

Writes benchmarks/results/bench_fit_scan.json (flat keys, units in names) atomically.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_results

from sbihep.events.generate import generate
from sbihep.fit import Likelihood, minimize, profile_scan
from sbihep.fit.coverage import WilksMethod, coverage
from sbihep.fit.exact import exact_unbinned_term
from sbihep.physics.processes import get_process


def scan_benchmark(proc, args) -> dict:
    """The 2D profile scan on one core: wall and CPU seconds."""
    events = generate(proc, 13000.0, args.events, seed=1, systematics=("mu_f",), n_adapt=3, n_per_iteration=6000, progress=False)
    lik = Likelihood([exact_unbinned_term(events, 300.0, pois={"cHW": (-2, 2), "cHq3": (-2, 2)}, lumi_uncertainty=0.025)])
    best = minimize(lik)
    e1, e2 = best.errors["cHW"], best.errors["cHq3"]
    grid = {"cHW": np.linspace(-3 * e1, 3 * e1, args.points), "cHq3": np.linspace(-3 * e2, 3 * e2, args.points)}
    t0, c0 = time.perf_counter(), time.process_time()
    scan = profile_scan(lik, grid, best_fit=best, n_workers=1, strategy=args.strategy)
    t_scan, cpu_scan = time.perf_counter() - t0, time.process_time() - c0
    return {"scan_events": args.events, "scan_points": args.points**2, "scan_s": t_scan, "scan_cpu_s": cpu_scan,
            "scan_minuit_strategy": args.strategy, "scan_ms_per_point": 1e3 * t_scan / args.points**2,
            "scan_failed_points": int(scan.attrs["n_failed"]), "scan_nuisances": "mu_f,lumi"}


def toy_benchmark(proc, args) -> dict:
    """Toys per second (one free + one conditional fit each) with 1 and 2 worker processes."""
    pool = generate(proc, 13000.0, 20_000, seed=1, systematics=("mu_f",), n_adapt=3, n_per_iteration=6000, progress=False)
    toy_lik = Likelihood([exact_unbinned_term(pool, 10.0, pois={"cHW": (-3, 3)}, lumi_uncertainty=0.025)])
    truth = {"cHW": 0.0, "mu_f": 0.0, "lumi": 0.0}
    result = {"toy_expected_events": toy_lik.terms[0].expected_events(truth), "toys": args.toys}
    for workers in (1, 2):
        t0 = time.perf_counter()
        coverage(toy_lik, truth, {"wilks": WilksMethod(("cHW",))}, n_toys=args.toys, seed=workers, n_workers=workers)
        result[f"toys_per_s_{workers}_workers"] = args.toys / (time.perf_counter() - t0)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--toys", type=int, default=200)
    ap.add_argument("--strategy", type=int, default=0, help="MINUIT strategy of the scan's profile fits")
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--skip-toys", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/bench_fit_scan.json")
    args = ap.parse_args()
    proc = get_process("wh_lvbb")
    result: dict = {}
    if not args.skip_scan:
        result.update(scan_benchmark(proc, args))
    if not args.skip_toys:
        result.update(toy_benchmark(proc, args))
    for k, v in result.items():
        print(f"{k:32s} {v}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
