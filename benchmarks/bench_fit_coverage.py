"""Coverage of Neyman and Wilks intervals on the WH unbinned benchmark with two nuisances.

Model: pp → W±H → ℓν b b̄ at 13 TeV, parton level, the exact unbinned likelihood
(:func:`sbihep.fit.exact.exact_unbinned_term`) in cHW (cHWtil, cHq3 held at 0), with the μ_F
nuisance (event-weight morphing) and a 2.5% log-normal luminosity nuisance.  Toy data reuse the
simulated pool (N ~ Poisson(λ), events drawn ∝ w_i(θ, ν)).

Neyman: critical values of t(cHW) from ``--calibration-toys`` toys at the true point; coverage from
``--toys`` independent toys (test inversion: the set covers θ iff t(θ) ≤ c(θ)); Wilks beside.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_coverage.py --toys 2000 --calibration-toys 4000 --workers 2

Writes benchmarks/results/bench_fit_coverage.json (flat keys, units in names) atomically.
"""

from __future__ import annotations

import argparse
import time

from _results import write_results

from sbihep.events.generate import generate
from sbihep.fit import Likelihood
from sbihep.fit.coverage import NeymanMethod, WilksMethod, coverage
from sbihep.fit.exact import exact_unbinned_term
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA
from sbihep.fit.neyman import neyman_belt
from sbihep.physics.processes import get_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toys", type=int, default=2000)
    ap.add_argument("--calibration-toys", type=int, default=4000)
    ap.add_argument("--pool-events", type=int, default=20000)
    ap.add_argument("--lumi-ifb", type=float, default=10.0)
    ap.add_argument("--cHW-true", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/bench_fit_coverage.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    pool = generate(get_process("wh_lvbb"), 13000.0, args.pool_events, seed=1, systematics=("mu_f",),
                    n_adapt=3, n_per_iteration=6000, progress=False)
    term = exact_unbinned_term(pool, args.lumi_ifb, pois={"cHW": (-3.0, 3.0)}, lumi_uncertainty=0.025)
    lik = Likelihood([term])
    truth = {"cHW": args.cHW_true, "mu_f": 0.0, "lumi": 0.0}
    t_gen = time.perf_counter() - t0

    t0 = time.perf_counter()
    belt = neyman_belt(lik, {"cHW": [args.cHW_true]}, n_toys=args.calibration_toys, cls=(ONE_SIGMA, TWO_SIGMA),
                       seed=1, generate_at=truth, n_workers=args.workers)
    t_belt = time.perf_counter() - t0
    t0 = time.perf_counter()
    methods = {"neyman_68": NeymanMethod(belt, ONE_SIGMA), "neyman_95": NeymanMethod(belt, TWO_SIGMA),
               "wilks_68": WilksMethod(("cHW",), ONE_SIGMA), "wilks_95": WilksMethod(("cHW",), TWO_SIGMA)}
    cov = coverage(lik, truth, methods, n_toys=args.toys, seed=2, n_workers=args.workers)
    t_cov = time.perf_counter() - t0

    result = {
        "process": "wh_lvbb", "pool_events": args.pool_events, "lumi_ifb": args.lumi_ifb,
        "expected_events": term.expected_events({**truth}), "cHW_true_TeVm2": args.cHW_true,
        "nuisances": "mu_f,lumi(2.5%)", "calibration_toys": args.calibration_toys, "coverage_toys": args.toys,
        "workers": args.workers, "generation_s": t_gen, "calibration_s": t_belt, "coverage_s": t_cov,
        "calibration_failed_toys": int(belt["n_failed"].sum()),
        "critical_value_68": float(belt["critical_value"].sel(cl=ONE_SIGMA).squeeze()),
        "critical_value_95": float(belt["critical_value"].sel(cl=TWO_SIGMA).squeeze()),
        "toys_per_s": (args.toys + args.calibration_toys) / (t_belt + t_cov),
    }
    for m in cov["interval_method"].values:
        r = cov.sel(interval_method=m)
        result[f"coverage_{m}"] = float(r["coverage"])
        result[f"coverage_{m}_binomial_error"] = float(r["coverage_error"])
        result[f"nominal_{m}"] = float(r["cl"])
        result[f"failed_toys_{m}"] = int(r["n_failed"])
    for k, v in result.items():
        print(f"{k:40s} {v}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
