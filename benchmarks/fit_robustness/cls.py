"""CLs like pyhf users expect, on the shipped ATLAS workspaces (issue 18, item 5).

- ``hypotest`` (q̃_μ, asymptotics) against ``pyhf.infer.hypotest`` (numpy + MINUIT, tolerance 1e-4 on
  both sides) at a few μ: the largest relative difference in CL_s over the observed value and the
  expected band, on stau (1911.06660 Region-highMass DS_200_1_Staus) and eRJR (1912.08479
  ERJR_500p0_0p0);
- ``cls_upper_limit`` on stau highMass (observed + expected band) timed against ten conditional
  fits at μ spread around the limit (each started from the free fit), with ``two_starts`` on (the
  default) and off;
- conditional-fit local minima: on each workspace a μ scan with ``profile_scan`` as it stands; at
  every point the fit is redone from the free fit and from both neighbours' profiled values; a point
  counts when a refit finds −lnL lower by more than 1e-3 than the scan's.

Environment: ``SBIHEP_CLS_PARTS`` (comma list of hypotest, limit, minima; default all) picks parts.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORKSPACES = ROOT.parent / "shared" / "data" / "workspaces"
STAU, ERJR = WORKSPACES / "1911.06660.tar.gz", WORKSPACES / "1912.08479.tar.gz"
TOL = 1e-4


def _load(archive: Path, suffix: str):
    with tarfile.open(archive) as tar:
        def pick(name):
            member = next(m for m in tar.getmembers() if m.name.endswith(f"{suffix}{name}"))
            return json.load(tar.extractfile(member))

        return pick("BkgOnly.json"), pick("patchset.json")


def workspace(key: str):
    """(sbihep Likelihood, pyhf model, data) of one of: erjr, stau_high, stau_low."""
    import pyhf

    from sbihep.fit import Likelihood, PyhfTerm

    archive, suffix, patch = {
        "erjr": (ERJR, "/", "ERJR_500p0_0p0"),
        "stau_high": (STAU, "Region-highMass/", "DS_200_1_Staus"),
        "stau_low": (STAU, "Region-lowMass/", "DS_120_1_Staus"),
    }[key]
    bkg, patchset = _load(archive, suffix)
    ws = pyhf.Workspace(pyhf.PatchSet(patchset)[patch].apply(bkg))
    model = ws.model()
    return Likelihood([PyhfTerm(bkg, patch, patchset=patchset)]), model, ws.data(model)


def hypotest_vs_pyhf(key: str, mus) -> dict:
    import pyhf

    from sbihep.fit import hypotest

    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=TOL))
    lik, model, data = workspace(key)
    t0 = time.perf_counter()
    ours = hypotest(lik, list(mus), tolerance=TOL)
    t_ours = time.perf_counter() - t0
    out, worst = {}, 0.0
    t0 = time.perf_counter()
    for mu, r in zip(mus, ours):
        try:
            obs, band = pyhf.infer.hypotest(float(mu), data, model, test_stat="qtilde", return_expected_set=True)
        except pyhf.exceptions.FailedMinimization:  # pyhf+MINUIT fails at some μ on eRJR
            out[f"hypotest_{key}_mu{mu:g}_pyhf_failed"] = 1
            continue
        want = np.array([float(obs), *[float(b) for b in band]])
        got = np.array([r.cls_obs, *r.cls_expected_band])
        rel = np.abs(got / want - 1.0)
        worst = max(worst, float(rel.max()))
        out[f"hypotest_{key}_mu{mu:g}_cls_obs_sbihep"] = r.cls_obs
        out[f"hypotest_{key}_mu{mu:g}_cls_obs_pyhf"] = float(obs)
        out[f"hypotest_{key}_mu{mu:g}_max_rel_diff"] = float(rel.max())
    out[f"hypotest_{key}_pyhf_s"] = time.perf_counter() - t0
    out[f"hypotest_{key}_sbihep_s"] = t_ours
    compared = sum(1 for k in out if k.endswith("_max_rel_diff"))
    # no comparison at all (pyhf failed at every μ) is reported as such, never as a difference of 0
    out[f"hypotest_max_rel_diff_cls_{key.split('_')[0]}"] = worst if compared else None
    out[f"hypotest_{key}_n_compared"] = compared
    return out


def limit_timing() -> dict:
    from sbihep.fit import cls_upper_limit, minimize

    lik, _, _ = workspace("stau_high")
    poi = "mu_SIG"
    out = {}
    t0 = time.perf_counter()
    ul = cls_upper_limit(lik, poi, progress=False)
    out["cls_limit_stau_highmass_s"] = time.perf_counter() - t0
    out["cls_limit_observed_stau_highmass"] = ul.observed
    out["cls_limit_expected_median_stau_highmass"] = ul.expected[0]
    for n in (-2, -1, 1, 2):
        out[f"cls_limit_expected_{n:+d}sigma_stau_highmass"] = ul.expected[n]
    out["cls_limit_n_fits_stau_highmass"] = ul.n_fits
    out["cls_limit_two_start_disagreements_stau_highmass"] = ul.n_two_start_disagreements
    t0 = time.perf_counter()
    ul1 = cls_upper_limit(lik, poi, progress=False, two_starts=False)
    out["cls_limit_one_start_stau_highmass_s"] = time.perf_counter() - t0
    out["cls_limit_one_start_n_fits_stau_highmass"] = ul1.n_fits
    out["cls_limit_one_start_observed_stau_highmass"] = ul1.observed
    out["cls_limit_one_start_expected_median_stau_highmass"] = ul1.expected[0]
    t0 = time.perf_counter()
    ulo = cls_upper_limit(lik, poi, progress=False, expected=False)
    out["cls_limit_observed_only_stau_highmass_s"] = time.perf_counter() - t0
    out["cls_limit_observed_only_n_fits_stau_highmass"] = ulo.n_fits
    free = minimize(lik, hesse=False)
    t0 = time.perf_counter()
    for mu in np.linspace(0.5 * ul.observed, 1.5 * ul.expected[0], 10):
        minimize(lik, start=free.values, fixed={poi: float(mu)}, hesse=False)
    ten = time.perf_counter() - t0
    out["ten_fixed_mu_fits_stau_highmass_s"] = ten
    out["cls_limit_time_over_ten_fits"] = out["cls_limit_stau_highmass_s"] / ten
    out["cls_limit_one_start_time_over_ten_fits"] = out["cls_limit_one_start_stau_highmass_s"] / ten
    out["cls_limit_observed_only_time_over_ten_fits"] = out["cls_limit_observed_only_stau_highmass_s"] / ten
    return out


def local_minima(key: str, grid) -> dict:
    from sbihep.fit import minimize, profile_scan

    lik, _, _ = workspace(key)
    poi = "mu_SIG"
    free = minimize(lik, hesse=False)
    scan = profile_scan(lik, {poi: grid}, best_fit=free)
    nll = np.asarray(scan["nll"], dtype=float)
    profiled = np.asarray(scan["profiled"], dtype=float)
    names = list(lik.names)
    fixed = set(lik.fixed)

    def start_of(vec):
        return {n: float(v) for n, v in zip(names, vec) if n not in fixed}

    bad, gains = [], []
    for i, mu in enumerate(grid):
        starts = [{k: v for k, v in free.values.items() if k not in fixed}]
        starts += [start_of(profiled[j]) for j in (i - 1, i + 1) if 0 <= j < len(grid)]
        best = min(minimize(lik, start={**s, poi: float(mu)}, fixed={poi: float(mu)}, hesse=False,
                            on_failure="flag").nll for s in starts)
        gains.append(nll[i] - best)
        if nll[i] - best > 1e-3:
            bad.append(float(mu))
    return {
        f"conditional_fit_local_minima_{key}": len(bad),
        f"conditional_fit_local_minima_{key}_points": ",".join(f"{m:g}" for m in bad),
        f"conditional_fit_local_minima_{key}_max_nll_gain": float(max(gains)),
        f"conditional_fit_local_minima_{key}_n_points": len(grid),
    }


def run(args) -> dict:
    import pyhf

    if not (STAU.is_file() and ERJR.is_file()):
        return {"cls_skipped": f"workspaces absent under {WORKSPACES}"}
    parts = os.environ.get("SBIHEP_CLS_PARTS", "hypotest,limit,minima").split(",")
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=TOL))
    out: dict = {}
    if "hypotest" in parts:
        out.update(hypotest_vs_pyhf("erjr", (1.5,) if args.quick else (1.0, 1.5, 2.0, 3.0)))
        out.update(hypotest_vs_pyhf("stau_high", (0.48,) if args.quick else (0.3, 0.48, 0.6)))
        print(out, flush=True)
    if "limit" in parts:
        out.update(limit_timing())
        print(out, flush=True)
    if "minima" in parts:
        n = 6 if args.quick else 12
        total = 0
        for key, hi in (("erjr", 4.0), ("stau_high", 1.5), ("stau_low", 3.0)):
            res = local_minima(key, np.linspace(0.0, hi, n if key == "erjr" else max(n - 4, 4)))
            total += res[f"conditional_fit_local_minima_{key}"]
            out.update(res)
            print(res, flush=True)
        out["conditional_fit_local_minima"] = total
    return out
