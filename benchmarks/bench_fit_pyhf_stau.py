"""sbihep's fitter against pyhf+MINUIT on the ATLAS direct-stau likelihoods (arXiv:1911.06660).

Per (region, patch): μ̂ and the minimum −lnL; −2ΔlnL at a few fixed μ (pyhf ``fixed_poi_fit``); the
observed and expected CLs at sbihep's 95% upper limits with ``pyhf.infer.hypotest`` (q̃, asymptotics),
and pyhf's upper limit from log-linear interpolation of its CLs at UL·(1 ± 2%) — the whole comparison
costs a few dozen pyhf fits instead of pyhf's root finding (``upper_limit`` ran over an hour here).

    OMP_NUM_THREADS=1 python benchmarks/bench_fit_pyhf_stau.py [--region highMass] [--patches DS_...]

Figures are merged into benchmarks/results/bench_fit_pyhf_stau.json (flat keys, units in the names).
Skips (exit 0) when ``../shared/data/workspaces`` is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from _results import write_results

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "workspaces" / "1911.06660.tar.gz"


def load(region: str):
    with tarfile.open(ARCHIVE) as tar:
        def pick(name):
            member = next(m for m in tar.getmembers() if m.name.endswith(f"Region-{region}/{name}"))
            return json.load(tar.extractfile(member))

        return pick("BkgOnly.json"), pick("patchset.json")


def rel(a: float, b: float) -> float:
    return float(abs(a - b) / abs(b)) if b else float(abs(a - b))


def compare(region: str, patch: str, bkg, patchset, mu_points) -> dict:
    import pyhf

    from sbihep.fit import Likelihood, PyhfTerm, cls_upper_limit, minimize

    key = f"{region}.{patch}"
    out: dict = {}
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=1e-4))
    ws = pyhf.Workspace(pyhf.PatchSet(patchset)[patch].apply(bkg))
    model, data = ws.model(), ws.data(ws.model())
    poi = model.config.poi_name
    lik = Likelihood([PyhfTerm(bkg, patch, patchset=patchset)])
    out[f"{key}.n_parameters"] = int(model.config.npars)

    t = time.perf_counter()
    fit = minimize(lik, hesse=False)
    out[f"{key}.sbihep_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    best, twice_min = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    out[f"{key}.pyhf_fit_s"] = time.perf_counter() - t
    mu_pyhf = float(best[model.config.poi_index])
    out[f"{key}.mu_hat_sbihep"], out[f"{key}.mu_hat_pyhf"] = fit.values[poi], mu_pyhf
    out[f"{key}.mu_hat_abs_diff"] = abs(fit.values[poi] - mu_pyhf)
    out[f"{key}.twice_nll_min_sbihep_minus_pyhf"] = float(2 * fit.nll - float(twice_min))

    worst = 0.0
    for mu in mu_points:
        fixed = minimize(lik, fixed={poi: float(mu)}, start=fit.values, hesse=False)
        t_ours = 2 * (fixed.nll - fit.nll)
        twice_fixed = float(pyhf.infer.mle.fixed_poi_fit(float(mu), data, model, return_fitted_val=True)[1])
        t_pyhf = twice_fixed - float(twice_min)
        out[f"{key}.t_mu{mu:g}_sbihep"], out[f"{key}.t_mu{mu:g}_pyhf"] = t_ours, t_pyhf
        worst = max(worst, rel(t_ours, t_pyhf))
    out[f"{key}.t_profile_max_rel_diff"] = worst

    t = time.perf_counter()
    ul = cls_upper_limit(lik, poi)
    out[f"{key}.sbihep_upper_limit_s"] = time.perf_counter() - t
    out[f"{key}.cls_obs_limit_sbihep"] = ul.observed
    out[f"{key}.cls_exp_limit_median_sbihep"] = ul.expected[0]

    t = time.perf_counter()
    cls_obs, cls_exp = {}, {}
    for factor in (0.98, 1.0, 1.02):
        obs, exp_set = pyhf.infer.hypotest(ul.observed * factor, data, model, test_stat="qtilde", return_expected_set=True)
        cls_obs[factor] = float(obs)
        if factor == 1.0:
            out[f"{key}.pyhf_cls_obs_at_sbihep_limit"] = float(obs)
    for factor in (0.98, 1.0, 1.02):
        obs, exp_set = pyhf.infer.hypotest(ul.expected[0] * factor, data, model, test_stat="qtilde", return_expected_set=True)
        cls_exp[factor] = float(exp_set[2])
        if factor == 1.0:
            out[f"{key}.pyhf_cls_exp_median_at_sbihep_limit"] = float(exp_set[2])
    out[f"{key}.pyhf_hypotests_s"] = time.perf_counter() - t

    def interpolated_limit(mu0: float, cls: dict) -> float:
        """μ where pyhf's CLs = 0.05, from log CLs linear in μ through the three points (least squares)."""
        mus = np.array([mu0 * f for f in cls])
        slope, intercept = np.polyfit(mus, np.log(list(cls.values())), 1)
        return float((np.log(0.05) - intercept) / slope)

    ul_obs_pyhf = interpolated_limit(ul.observed, cls_obs)
    ul_exp_pyhf = interpolated_limit(ul.expected[0], cls_exp)
    out[f"{key}.cls_obs_limit_pyhf_interpolated"] = ul_obs_pyhf
    out[f"{key}.cls_exp_limit_median_pyhf_interpolated"] = ul_exp_pyhf
    out[f"{key}.cls_obs_limit_rel_diff"] = rel(ul.observed, ul_obs_pyhf)
    out[f"{key}.cls_exp_limit_median_rel_diff"] = rel(ul.expected[0], ul_exp_pyhf)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="highMass", choices=("highMass", "lowMass", "combined"))
    parser.add_argument("--patches", nargs="+", default=None, help="patch names (default: the first of the patchset)")
    parser.add_argument("--mu", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="fixed μ of the profile comparison")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        print(f"skip: {ARCHIVE} is absent")
        return 0
    import torch

    torch.set_num_threads(1)
    bkg, patchset = load(args.region)
    names = [p["metadata"]["name"] for p in patchset["patches"]]
    for patch in args.patches or names[:1]:
        if patch not in names:
            print(f"skip {patch}: not in the {args.region} patchset")
            continue
        figures = compare(args.region, patch, bkg, patchset, args.mu)
        print(json.dumps(figures, indent=1), flush=True)
        write_results(__file__, figures, merge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
