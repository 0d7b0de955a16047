"""Neyman belts and coverage on a shipped pyhf workspace through PyhfTerm.toy (issue 18, item 6).

eRJR (1912.08479, patch ERJR_500p0_0p0, 69 parameters, the whole workspace: 4 one-bin channels):
a μ belt (toys at ν̂̂(μ) of the observed data, :func:`sbihep.fit.neyman.neyman_belt`, the profile
construction), the 68.27% Neyman set on the observed data with the Wilks interval beside it, and
the coverage of both at μ = 1 (toys at ν̂̂(1) of the observed data) with
:func:`sbihep.fit.coverage.coverage`; every toy drawn by ``PyhfTerm.toy`` from pyhf's own pdf.

Sized to finish in well under 20 minutes on a loaded 2-core machine with ``--workers 2``: one toy
(its free and conditional fits) is timed first; then 5 μ points × 40 toys and 100 coverage toys
(``--quick``: 3 × 10 and 20).  Environment ``SBIHEP_PYHF_NEYMAN_TOYS`` (toys per μ point) and
``SBIHEP_PYHF_NEYMAN_COVERAGE_TOYS`` override the sizes.
"""

from __future__ import annotations

import os
import time

import numpy as np

from fit_robustness.cls import ERJR, workspace


def run(args) -> dict:
    import pyhf

    from sbihep.fit import NeymanMethod, WilksMethod, coverage, minimize, neyman_belt, neyman_interval, profile_scan, wilks_interval
    from sbihep.fit.intervals import ONE_SIGMA
    from sbihep.fit.statistic import profile_statistic

    if not ERJR.is_file():
        return {"pyhf_neyman_skipped": f"{ERJR} absent"}
    pyhf.set_backend("numpy")
    lik, _, _ = workspace("erjr")
    poi = "mu_SIG"
    fit_kwargs = {"tolerance": 0.1}
    grid = np.array([0.0, 1.0, 2.0]) if args.quick else np.array([0.0, 0.5, 1.0, 1.5, 2.5])
    n_toys = int(os.environ.get("SBIHEP_PYHF_NEYMAN_TOYS", 10 if args.quick else 40))
    n_cov = int(os.environ.get("SBIHEP_PYHF_NEYMAN_COVERAGE_TOYS", 20 if args.quick else 100))
    out: dict = {"pyhf_neyman_workspace": "1912.08479 ERJR_500p0_0p0 (all 4 channels, 69 parameters)"}

    truth = minimize(lik, fixed={poi: 1.0}, hesse=False, **fit_kwargs).values
    t0 = time.perf_counter()
    toy = lik.toy(truth, np.random.default_rng(0))
    profile_statistic(toy, {poi: 1.0}, start=truth, **fit_kwargs)
    out["pyhf_neyman_one_toy_s"] = time.perf_counter() - t0
    print(f"one toy (free + conditional fit at mu = 1): {out['pyhf_neyman_one_toy_s']:.2f} s", flush=True)

    t0 = time.perf_counter()
    belt = neyman_belt(lik, {poi: grid}, n_toys=n_toys, cls=(ONE_SIGMA,), seed=11, n_workers=args.workers, **fit_kwargs)
    out["pyhf_neyman_belt_s"] = time.perf_counter() - t0
    print(f"belt: {out['pyhf_neyman_belt_s']:.1f} s", flush=True)
    t0 = time.perf_counter()
    cs = neyman_interval(lik, belt, ONE_SIGMA, xtol=1e-3, **fit_kwargs)
    out["pyhf_neyman_interval_s"] = time.perf_counter() - t0
    print(f"Neyman set {cs.describe()}: {out['pyhf_neyman_interval_s']:.1f} s", flush=True)
    t0 = time.perf_counter()
    scan = profile_scan(lik, {poi: grid}, **fit_kwargs)
    wilks = wilks_interval(scan, poi, ONE_SIGMA, likelihood=lik)
    out["pyhf_wilks_interval_s"] = time.perf_counter() - t0
    print(f"Wilks set {wilks.describe()}: {out['pyhf_wilks_interval_s']:.1f} s", flush=True)
    t0 = time.perf_counter()
    cov = coverage(lik, truth, {"neyman": NeymanMethod(belt, ONE_SIGMA), "wilks": WilksMethod((poi,), ONE_SIGMA)},
                   n_toys=n_cov, seed=12, n_workers=args.workers, **fit_kwargs)
    out["pyhf_neyman_coverage_s"] = time.perf_counter() - t0
    crit = np.asarray(belt["critical_value"].sel(cl=ONE_SIGMA), dtype=float)
    out.update({
        "pyhf_neyman_n_toys_per_point": n_toys,
        "pyhf_neyman_grid_points": len(grid),
        "pyhf_neyman_grid_mu": ",".join(f"{m:g}" for m in grid),
        "pyhf_neyman_workers": int(args.workers),
        "pyhf_neyman_set_68": cs.describe(),
        "pyhf_neyman_set_68_pieces": len(cs.intervals),
        "pyhf_neyman_interval_low": cs.low,
        "pyhf_neyman_interval_high": cs.high,
        "pyhf_neyman_interval_low_end": cs.low_end,
        "pyhf_neyman_interval_high_end": cs.high_end,
        "pyhf_wilks_set_68": wilks.describe(),
        "pyhf_wilks_interval_low": wilks.low,
        "pyhf_wilks_interval_high": wilks.high,
        "pyhf_neyman_best_fit_mu": cs.best,
        "pyhf_neyman_critical_value_68_min": float(np.nanmin(crit)),
        "pyhf_neyman_critical_value_68_max": float(np.nanmax(crit)),
        "pyhf_neyman_belt_failed_toys": int(belt["n_failed"].sum()),
        "pyhf_neyman_coverage_n_toys": n_cov,
        "pyhf_neyman_coverage_68_at_mu1": float(cov["coverage"].sel(interval_method="neyman")),
        "pyhf_neyman_coverage_68_at_mu1_error": float(cov["coverage_error"].sel(interval_method="neyman")),
        "pyhf_wilks_coverage_68_at_mu1": float(cov["coverage"].sel(interval_method="wilks")),
        "pyhf_wilks_coverage_68_at_mu1_error": float(cov["coverage_error"].sel(interval_method="wilks")),
        "pyhf_neyman_coverage_failed_toys": int(cov["n_failed"].sel(interval_method="neyman")),
    })
    for m, c in zip(grid, crit):
        out[f"pyhf_neyman_critical_value_68_mu{m:g}"] = float(c)
    return out
