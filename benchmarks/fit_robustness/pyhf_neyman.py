"""Neyman belts and coverage on a shipped pyhf workspace through PyhfTerm.toy (issue 18, item 6).

eRJR (1912.08479, patch ERJR_500p0_0p0, 69 parameters): a coarse μ belt (toys at ν̂̂(μ) of the
observed data, :func:`sbihep.fit.neyman.neyman_belt`), the 68.27% Neyman interval on the observed
data with the Wilks interval beside it, and the coverage of both at μ = 1 (toys at the profiled
nuisances) with :func:`sbihep.fit.coverage.coverage`.
"""

from __future__ import annotations

import numpy as np

from fit_robustness.cls import ERJR, workspace


def run(args) -> dict:
    import pyhf

    from sbihep.fit import NeymanMethod, WilksMethod, coverage, minimize, neyman_belt, neyman_interval, profile_scan, wilks_interval
    from sbihep.fit.intervals import ONE_SIGMA

    if not ERJR.is_file():
        return {"pyhf_neyman_skipped": f"{ERJR} absent"}
    pyhf.set_backend("numpy")
    lik, _, _ = workspace("erjr")
    poi = "mu_SIG"
    grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0]) if args.quick else np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5])
    n_toys = 20 if args.quick else 100
    fit_kwargs = {"tolerance": 0.1}
    belt = neyman_belt(lik, {poi: grid}, n_toys=n_toys, cls=(ONE_SIGMA,), seed=11, n_workers=args.workers, **fit_kwargs)
    iv = neyman_interval(lik, belt, ONE_SIGMA, **fit_kwargs)
    scan = profile_scan(lik, {poi: grid})
    wilks = wilks_interval(scan, poi, ONE_SIGMA)
    truth = minimize(lik, fixed={poi: 1.0}, hesse=False).values
    cov = coverage(lik, truth, {"neyman": NeymanMethod(belt, ONE_SIGMA), "wilks": WilksMethod((poi,), ONE_SIGMA)},
                   n_toys=n_toys, seed=12, n_workers=args.workers, **fit_kwargs)
    return {
        "pyhf_neyman_workspace": "1912.08479 ERJR_500p0_0p0",
        "pyhf_neyman_n_toys_per_point": n_toys,
        "pyhf_neyman_grid_points": len(grid),
        "pyhf_neyman_interval_low": iv.low,
        "pyhf_neyman_interval_high": iv.high,
        "pyhf_wilks_interval_low": wilks.low,
        "pyhf_wilks_interval_high": wilks.high,
        "pyhf_neyman_critical_value_68_min": float(np.nanmin(belt["critical_value"])),
        "pyhf_neyman_critical_value_68_max": float(np.nanmax(belt["critical_value"])),
        "pyhf_neyman_belt_failed_toys": int(belt["n_failed"].sum()),
        "pyhf_neyman_coverage_68": float(cov["coverage"].sel(interval_method="neyman")),
        "pyhf_neyman_coverage_68_error": float(cov["coverage_error"].sel(interval_method="neyman")),
        "pyhf_wilks_coverage_68": float(cov["coverage"].sel(interval_method="wilks")),
        "pyhf_wilks_coverage_68_error": float(cov["coverage_error"].sel(interval_method="wilks")),
    }
