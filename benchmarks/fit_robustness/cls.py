"""CLs like pyhf users expect, on the shipped ATLAS workspaces (issue 18, item 5).

- ``hypotest`` (q̃_μ, asymptotics) against ``pyhf.infer.hypotest`` (numpy + MINUIT, tolerance 1e-4 on
  both sides) at a few μ: the largest relative difference in CL_s over the observed value and the
  expected band, on stau (1911.06660 Region-highMass DS_200_1_Staus) and eRJR (1912.08479
  ERJR_500p0_0p0);
- ``cls_upper_limit`` on stau highMass (observed + expected band) timed against ten conditional
  fits at μ spread around the limit (each started from the free fit), with ``two_starts`` "auto"
  (the default), False and True in one run; the conditional fits of the "auto" limit are then
  verified by refits from the free fit and from both neighbouring fitted μ;
- conditional-fit local minima: on each workspace a μ scan with ``profile_scan`` as it stands; at
  every point the fit is redone from the free fit and from both neighbours' profiled values; a point
  counts when a refit finds −lnL lower by more than 1e-3 than the scan's.

Environment: ``SBIHEP_CLS_PARTS`` (comma list of hypotest, limit, minima; default all) picks parts;
``SBIHEP_CLS_HYPOTEST`` (comma list of erjr, stau_high; default both) the hypotest workspaces.
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
    """Our hypotest against pyhf.infer.hypotest (numpy + MINUIT, tolerance 1e-4 on both sides).

    pyhf is started from its suggested init; where its MINUIT fails (eRJR: every μ), it is started
    again from our free fit (``init_pars``, the same start for pyhf's free, conditional and Asimov
    fits), and the key ``..._pyhf_init`` says which start gave the compared numbers.  pyhf's own
    −2 ln L (``model.logpdf``) at our free fit is recorded beside our −2 ln L there.
    """
    import pyhf

    from sbihep.fit import hypotest, minimize

    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=TOL))
    lik, model, data = workspace(key)
    t0 = time.perf_counter()
    ours = hypotest(lik, list(mus), tolerance=TOL)
    t_ours = time.perf_counter() - t0
    out, worst, worst_converged = {}, 0.0, 0.0
    term = lik.terms[0]
    free = minimize(lik, hesse=False, tolerance=TOL)
    ours_init = [free.values[n] for n in term.parameters.names]
    out[f"hypotest_{key}_sbihep_free_twice_nll"] = 2 * free.nll
    out[f"hypotest_{key}_pyhf_twice_nll_at_sbihep_free_fit"] = -2 * float(model.logpdf(np.array(ours_init), data)[0])
    t0 = time.perf_counter()
    for mu, r in zip(mus, ours):
        result = None
        for label, init in (("suggested", None), ("sbihep_free_fit", ours_init)):
            try:
                result = pyhf.infer.hypotest(float(mu), data, model, init_pars=init, test_stat="qtilde",
                                             return_expected_set=True)
                out[f"hypotest_{key}_mu{mu:g}_pyhf_init"] = label
                break
            except pyhf.exceptions.FailedMinimization:  # pyhf+MINUIT fails at some μ on eRJR
                out[f"hypotest_{key}_mu{mu:g}_pyhf_failed_from_{label}"] = 1
        if result is None:
            continue
        obs, band = result
        # who found the lower conditional minimum (in pyhf's own −2 ln L): a CLs difference is only
        # a disagreement of the two codes where pyhf's fit reached the minimum ours found
        start = init if init is not None else model.config.suggested_init()
        _, pyhf_cond = pyhf.infer.mle.fixed_poi_fit(float(mu), data, model, init_pars=start, return_fitted_val=True)
        ours_cond = minimize(lik, fixed={model.config.poi_name: float(mu)}, hesse=False, tolerance=TOL,
                             start={n: float(v) for n, v in zip(term.parameters.names, start)
                                    if n != model.config.poi_name})
        ours_vec = np.array([ours_cond.values[n] for n in term.parameters.names])
        gap = float(pyhf_cond) - (-2 * float(model.logpdf(ours_vec, data)[0]))
        out[f"hypotest_{key}_mu{mu:g}_pyhf_cond_twice_nll_above_sbihep"] = gap
        want = np.array([float(obs), *[float(b) for b in band]])
        got = np.array([r.cls_obs, *r.cls_expected_band])
        rel = np.abs(got / want - 1.0)
        worst = max(worst, float(rel.max()))
        out[f"hypotest_{key}_mu{mu:g}_cls_obs_sbihep"] = r.cls_obs
        out[f"hypotest_{key}_mu{mu:g}_cls_obs_pyhf"] = float(obs)
        out[f"hypotest_{key}_mu{mu:g}_cls_exp_median_sbihep"] = r.cls_expected[0]
        out[f"hypotest_{key}_mu{mu:g}_cls_exp_median_pyhf"] = float(band[2])
        out[f"hypotest_{key}_mu{mu:g}_max_rel_diff"] = float(rel.max())
        if gap <= 1e-4:
            worst_converged = max(worst_converged, float(rel.max()))
        print(key, mu, out, flush=True)
    out[f"hypotest_{key}_pyhf_s"] = time.perf_counter() - t0
    out[f"hypotest_{key}_sbihep_s"] = t_ours
    compared = sum(1 for k in out if k.endswith("_max_rel_diff"))
    # no comparison at all (pyhf failed at every μ) is reported as such, never as a difference of 0
    out[f"hypotest_max_rel_diff_cls_{key.split('_')[0]}"] = worst if compared else None
    out[f"hypotest_max_rel_diff_cls_{key.split('_')[0]}_where_pyhf_reached_the_minimum"] = (
        worst_converged if compared else None)
    out[f"hypotest_{key}_n_compared"] = compared
    out[f"hypotest_{key}_n_tried"] = len(mus)
    return out


def _verify_fits(lik, poi: str, ul, tol: float = 1e-3) -> tuple[int, float, int]:
    """Refit every conditional fit the limit used from the free fit and from both neighbouring fitted
    μ of the same data set; (points where a refit is lower by more than ``tol``, largest gain, refits)."""
    from sbihep.fit import minimize

    fixed = set(lik.fixed)
    observed = ul.fits["observed"]
    datasets = {"observed": lik, "asimov": lik.asimov(observed[0.0].values)}
    bad, worst, n = 0, 0.0, 0
    for key, fits in ul.fits.items():
        data = datasets[key]
        free = minimize(data, hesse=False, on_failure="flag")
        mus = sorted(fits)
        for i, mu in enumerate(mus):
            starts = [free.values] + [fits[mus[j]].values for j in (i - 1, i + 1) if 0 <= j < len(mus)]
            gains = []
            for st in starts:
                st = {k: v for k, v in st.items() if k not in fixed}
                refit = minimize(data, start={**st, poi: mu}, fixed={poi: mu}, hesse=False, on_failure="flag")
                n += 1
                gains.append(fits[mu].nll - refit.nll)
            worst = max(worst, max(gains))
            bad += int(max(gains) > tol)
    return bad, worst, n


def limit_timing() -> dict:
    """``cls_upper_limit`` on stau highMass with two_starts "auto" (the default), False and True, and
    ten fixed-μ fits, all in one run (the ratios are what is compared: the machine is shared)."""
    from sbihep.fit import cls_upper_limit, minimize

    lik, _, _ = workspace("stau_high")
    poi = "mu_SIG"
    out = {}
    modes = {"": "auto", "one_start_": False, "two_start_": True}
    limits = {}
    free = minimize(lik, hesse=False)

    def ten_fits() -> float:
        t0 = time.perf_counter()
        for mu in np.linspace(0.24, 0.9, 10):  # 0.5 × the observed to 1.5 × the median expected limit
            minimize(lik, start=free.values, fixed={poi: float(mu)}, hesse=False)
        return time.perf_counter() - t0

    ten_before = ten_fits()
    for prefix, mode in modes.items():
        t0 = time.perf_counter()
        ul = cls_upper_limit(lik, poi, progress=False, two_starts=mode)
        limits[mode] = ul
        out[f"cls_limit_{prefix}stau_highmass_s"] = time.perf_counter() - t0
        out[f"cls_limit_{prefix}observed_stau_highmass"] = ul.observed
        out[f"cls_limit_{prefix}expected_median_stau_highmass"] = ul.expected[0]
        out[f"cls_limit_{prefix}n_fits_stau_highmass"] = ul.n_fits
        out[f"cls_limit_{prefix}two_start_disagreements_stau_highmass"] = ul.n_two_start_disagreements
        out[f"cls_limit_{prefix}probed_starts_stau_highmass"] = ul.n_probed_starts
        out[f"cls_limit_{prefix}neighbour_refits_stau_highmass"] = ul.n_neighbour_refits
        print(mode, out, flush=True)
    ul = limits["auto"]
    for n in (-2, -1, 1, 2):
        out[f"cls_limit_expected_{n:+d}sigma_stau_highmass"] = ul.expected[n]
    out["cls_limit_two_starts_default"] = "auto"
    out["cls_limit_asimov_free_fit_exact"] = ul.asimov_exact
    ref = limits[True]
    out["cls_limit_auto_vs_two_start_max_rel_diff"] = max(
        abs(ul.observed / ref.observed - 1), *(abs(ul.expected[n] / ref.expected[n] - 1) for n in ul.expected))
    ten_after = ten_fits()
    ten = 0.5 * (ten_before + ten_after)  # before and after the limits: the machine's load drifts
    out["ten_fixed_mu_fits_stau_highmass_s"] = ten
    out["ten_fixed_mu_fits_before_stau_highmass_s"] = ten_before
    out["ten_fixed_mu_fits_after_stau_highmass_s"] = ten_after
    for prefix in modes:
        label = prefix or ""
        out[f"cls_limit_{label}time_over_ten_fits"] = out[f"cls_limit_{prefix}stau_highmass_s"] / ten
    print(out, flush=True)
    bad, worst, n = _verify_fits(lik, poi, ul)
    out["cls_limit_conditional_local_minima_stau_highmass"] = bad
    out["cls_limit_conditional_max_nll_gain_stau_highmass"] = worst
    out["cls_limit_conditional_refits_stau_highmass"] = n
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
        keys = os.environ.get("SBIHEP_CLS_HYPOTEST", "erjr,stau_high").split(",")
        if "erjr" in keys:
            out.update(hypotest_vs_pyhf("erjr", (2.0,) if args.quick else (1.5, 2.0, 2.2, 2.5, 3.0)))
        if "stau_high" in keys:
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
