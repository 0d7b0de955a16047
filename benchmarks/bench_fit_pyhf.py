"""Compare sbihep's fitter with pyhf+MINUIT on the ATLAS 3L eRJR workspace (arXiv:1912.08479).

For several signal patches: μ̂, −lnL at the minimum and the observed/expected CLs upper limits on
μ from ``cls_upper_limit`` against ``pyhf.infer.mle.fit`` and
``pyhf.infer.intervals.upper_limits.upper_limit`` with ``pyhf.set_backend("numpy", "minuit")``;
pyhf's default scipy SLSQP (stays at the start point) against our fits; the speed of a 1D
profile scan with 1 and 2 workers (through sbihep.parallel).

    python benchmarks/bench_fit_pyhf.py [PATCH ...]

Prints the figures and writes benchmarks/results/bench_fit_pyhf.json (flat keys, units in names).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyhf

from sbihep.fit import Likelihood, PyhfTerm, cls_upper_limit, minimize, profile_scan

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / ".." / "shared" / "data" / "workspaces" / "1912.08479.tar.gz"
OUT = ROOT / "benchmarks" / "results" / "bench_fit_pyhf.json"
DEFAULT_PATCHES = ["ERJR_200p0_100p0", "ERJR_300p0_150p0", "ERJR_500p0_0p0"]


def load():
    with tarfile.open(ARCHIVE) as tar:
        pick = lambda end: json.load(tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith(end))))  # noqa: E731
        return pick("/BkgOnly.json"), pick("/patchset.json")


def rel(a, b):
    return float(abs(a - b) / abs(b)) if b else float(abs(a - b))


def main(patches):
    bkg, patchset = load()
    available = [p.name for p in pyhf.PatchSet(patchset).patches]
    out: dict[str, float | int | str] = {}
    for patch in patches:
        if patch not in available:
            print(f"skip {patch}: not in the patchset")
            continue
        key = patch
        ws = pyhf.Workspace(pyhf.PatchSet(patchset)[patch].apply(bkg))
        model = ws.model()
        data = ws.data(model)
        lik = Likelihood([PyhfTerm(bkg, patch, patchset=patchset)])

        pyhf.set_backend("numpy", "minuit")
        t = time.perf_counter()
        fit = minimize(lik, hesse=False)
        out[f"{key}.sbihep_fit_s"] = time.perf_counter() - t
        out[f"{key}.mu_hat_sbihep"] = fit.values["mu_SIG"]
        t = time.perf_counter()
        try:
            bf, twice = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
            out[f"{key}.pyhf_fit_s"] = time.perf_counter() - t
            mu_pyhf = float(bf[model.config.poi_index])
            out[f"{key}.mu_hat_pyhf"] = mu_pyhf
            out[f"{key}.mu_hat_rel_diff"] = rel(fit.values["mu_SIG"], mu_pyhf)
            out[f"{key}.twice_nll_min_diff"] = float(2 * fit.nll - twice)
        except pyhf.exceptions.FailedMinimization:
            out[f"{key}.pyhf_fit_failed"] = 1

        t = time.perf_counter()
        try:
            obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=0.05)
            out[f"{key}.pyhf_upper_limit_s"] = time.perf_counter() - t
            pyhf_ok = True
        except pyhf.exceptions.FailedMinimization:
            out[f"{key}.pyhf_upper_limit_failed"] = 1
            pyhf_ok = False
        t = time.perf_counter()
        ul = cls_upper_limit(lik, "mu_SIG")
        out[f"{key}.sbihep_upper_limit_s"] = time.perf_counter() - t
        out[f"{key}.cls_obs_limit_sbihep"] = ul.observed
        for n in (-2, -1, 0, 1, 2):
            out[f"{key}.cls_exp_limit_{n:+d}sigma_sbihep"] = ul.expected[n]
        if pyhf_ok:
            out[f"{key}.cls_obs_limit_pyhf"] = float(obs)
            out[f"{key}.cls_obs_limit_rel_diff"] = rel(ul.observed, float(obs))
            diffs = [rel(ul.expected[n], float(e)) for n, e in zip((-2, -1, 0, 1, 2), exp)]
            for n, e in zip((-2, -1, 0, 1, 2), exp):
                out[f"{key}.cls_exp_limit_{n:+d}sigma_pyhf"] = float(e)
            out[f"{key}.cls_exp_limit_max_rel_diff"] = max(diffs)

        pyhf.set_backend("numpy")  # pyhf's default optimiser: scipy SLSQP
        bf_s, twice_s, res = pyhf.infer.mle.fit(data, model, return_result_obj=True, return_fitted_val=True)
        out[f"{key}.pyhf_slsqp_iterations"] = int(res.nit)
        out[f"{key}.pyhf_slsqp_success"] = int(bool(res.success))
        out[f"{key}.pyhf_slsqp_max_abs_step_from_init"] = float(np.max(np.abs(np.asarray(bf_s) - model.config.suggested_init())))
        out[f"{key}.pyhf_slsqp_twice_nll_above_minuit"] = float(twice_s - 2 * fit.nll)
        print(json.dumps({k: v for k, v in out.items() if k.startswith(key)}, indent=1))

    # local minima at fixed μ (first patch): default start vs warm start vs several starts
    patch = [p for p in patches if p in available][0]
    lik = Likelihood([PyhfTerm(bkg, patch, patchset=patchset)])
    fit = minimize(lik, hesse=False)
    for label, kw in (("default_start", {}), ("best_fit_start", {"start": fit.values}),
                      ("three_starts", {"n_starts": 3, "seed": 0})):
        f = minimize(lik, fixed={"mu_SIG": 3.0}, hesse=False, on_failure="flag", **kw)
        out[f"{patch}.twice_nll_at_mu3_{label}"] = 2 * f.nll

    # profile scan speed: 16 points, 1 and 2 workers
    grid = {"mu_SIG": np.linspace(0.0, 3.0, 16)}
    for workers in (1, 2):
        t = time.perf_counter()
        ds = profile_scan(lik, grid, best_fit=fit, n_workers=workers)
        dt = time.perf_counter() - t
        out[f"scan.points_per_s_{workers}_workers"] = 16 / dt
        out[f"scan.n_failed_{workers}_workers"] = int(ds.attrs["n_failed"])
    out["machine.cpu_count"] = os.cpu_count() or 0
    print(json.dumps(out, indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=OUT.parent, delete=False, suffix=".tmp") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
    os.replace(fh.name, OUT)


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT_PATCHES)
