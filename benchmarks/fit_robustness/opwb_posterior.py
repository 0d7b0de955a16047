"""Posterior mode masses of the OpWB quadratic SMEFiT likelihood (two nearly equal minima).

ATLAS_ZH_Hbb_13TeV + CMS_ggF_aa_13TeV at quadratic order, OpWB alone with a uniform prior on (−2, 2):
the posterior mass of each mode (split at the local maximum of the likelihood between the minima)
from ``sample_posterior`` against brute-force 1D quadrature of exp(−nll).  Methods: the new default
(emcee ensembles in every basin, masses from the basins' evidences), dynesty nested sampling, and the
old single-mode behaviour (``basins=False``: walkers start at the global fit only).  A 2D case adds
OpBox (uniform on (−2, 2); its minima sit on the bound OpBox = 2); its exact masses come from a dense grid, the modes split at the minimum
of the marginal OpWB density between them.

    posterior_two_mode_mass_error: max over the two modes (and over seeds) of |mass − exact|.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from scipy.integrate import quad
from scipy.optimize import minimize_scalar

from sbihep.errors import PosteriorWarning
from sbihep.fit import Likelihood, find_minima, sample_posterior, smefit_term
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "smefit"
DATASETS = ["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"]


def likelihood(names) -> Likelihood:
    space = ParameterSpace([Parameter(n, 0.0, (-2, 2)) for n in names])
    return Likelihood([smefit_term(DATASETS, DATA / "commondata", DATA / "theory", space, eft_order="quadratic")])


def exact_1d(lik):
    minima = sorted(m.values["OpWB"] for m in find_minima(lik))
    saddle = minimize_scalar(lambda x: -lik.nll({"OpWB": x}), bounds=(minima[0], minima[-1]), method="bounded").x
    ref = min(lik.nll({"OpWB": m}) for m in minima)
    dens = lambda x: np.exp(-(lik.nll({"OpWB": x}) - ref))  # noqa: E731
    low = quad(dens, -2, saddle, points=[minima[0]], limit=400, epsabs=0, epsrel=1e-10)[0]
    high = quad(dens, saddle, 2, points=[minima[-1]], limit=400, epsabs=0, epsrel=1e-10)[0]
    log_z = float(np.log((low + high) / 4.0) - ref)
    return float(saddle), low / (low + high), log_z


def exact_grid(lik, fits, n: int):
    """Masses on a dense grid: OpWB over both basins ± 12σ, every other parameter over its whole
    bounds (a uniform prior); split in OpWB at the minimum of the marginal density between the modes.
    Also returns the largest density on the OpWB edges of the grid relative to the peak."""
    names = lik.names
    axes = []
    for k in names:
        if k == "OpWB":
            lo = min(f.values[k] - 12 * f.errors[k] for f in fits)
            hi = max(f.values[k] + 12 * f.errors[k] for f in fits)
            axes.append(np.linspace(max(lo, -2), min(hi, 2), n))
        else:
            low, high = lik.parameters[k].bounds
            axes.append(np.linspace(low, high, n))
    grid = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(names), -1).T
    nll = np.array([lik.nll_vector(x) for x in grid]).reshape(n, n)
    dens = np.exp(-(nll - nll.min()))
    i = names.index("OpWB")
    marginal = dens.sum(axis=1 - i)
    a, b = sorted(np.searchsorted(axes[i], [f.values["OpWB"] for f in fits[:2]]))
    split_index = a + int(np.argmin(marginal[a:b + 1]))
    split = float(axes[i][split_index])
    low = marginal[:split_index].sum() + 0.5 * marginal[split_index]
    edge = np.take(dens, [0, n - 1], axis=i).max()
    return split, float(low / marginal.sum()), float(edge)


def mass_error(post, split, exact_low) -> float:
    x = post["samples"].sel(parameter="OpWB").values
    low = float(np.mean(x < split))
    return max(abs(low - exact_low), abs((1 - low) - (1 - exact_low)))


def sampled(lik, split, exact_low, seeds, **kw):
    errors, rhats, times, warned = [], [], [], 0
    for seed in seeds:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PosteriorWarning)
            post = sample_posterior(lik, seed=seed, **kw)
        times.append(time.perf_counter() - t0)
        warned += int(any(issubclass(w.category, PosteriorWarning) for w in caught))
        errors.append(mass_error(post, split, exact_low))
        rhats.append(post.attrs["rhat_max"])
    return post, errors, rhats, times, warned


def run(args) -> dict:
    seeds = (0,) if args.quick else (0, 1, 2)
    out: dict = {}
    lik = likelihood(["OpWB"])
    split, exact_low, exact_log_z = exact_1d(lik)
    out["opwb_posterior_exact_low_mode_mass"] = round(exact_low, 5)
    out["opwb_posterior_split_OpWB"] = round(split, 5)
    steps = dict(n_steps=800, n_burn=200) if args.quick else {}
    post, err, rh, t, warned = sampled(lik, split, exact_low, seeds, **steps)
    out["posterior_two_mode_mass_error"] = round(max(err), 5)
    out["posterior_two_mode_mass_error_per_seed"] = [round(e, 5) for e in err]
    out["posterior_two_mode_mass_error_reported_sigma"] = round(float(post["basin_mass_error"].max()), 5)
    out["posterior_rhat_max"] = round(max(rh), 5)
    out["posterior_emcee_warned_runs"] = warned
    out["posterior_emcee_time_s"] = round(float(np.mean(t)), 2)
    post, err, rh, t, warned = sampled(lik, split, exact_low, seeds[:1], basins=False, **steps)
    out["posterior_two_mode_mass_error_old_single_mode"] = round(max(err), 5)
    out["posterior_old_single_mode_warned_runs"] = warned
    out["posterior_old_single_mode_autocorr_reliable"] = int(post.attrs["autocorr_reliable"])
    n_live = 250 if args.quick else 500
    post, err, rh, t, warned = sampled(lik, split, exact_low, seeds, method="nested", n_live=n_live)
    out["posterior_two_mode_mass_error_nested"] = round(max(err), 5)
    out["posterior_two_mode_mass_error_nested_per_seed"] = [round(e, 5) for e in err]
    out["posterior_nested_reported_mass_sigma"] = round(float(post["basin_mass_error"].max()), 5)
    out["posterior_nested_n_live"] = n_live
    out["posterior_nested_time_s"] = round(float(np.mean(t)), 2)
    out["posterior_nested_log_evidence"] = round(post.attrs["log_evidence"], 4)
    out["posterior_nested_log_evidence_error"] = round(post.attrs["log_evidence_error"], 4)
    out["posterior_exact_log_evidence"] = round(exact_log_z, 4)
    # --- 2D: OpWB with OpBox
    lik2 = likelihood(["OpWB", "OpBox"])
    fits = find_minima(lik2)
    out["posterior_2d_n_basins"] = len(fits)
    if len(fits) >= 2:
        split2, exact2, edge = exact_grid(lik2, fits, 161 if args.quick else 401)
        out["posterior_2d_exact_low_mode_mass"] = round(exact2, 5)
        out["posterior_2d_grid_edge_density_rel"] = float(f"{edge:.3g}")
        post, err, rh, t, warned = sampled(lik2, split2, exact2, seeds[:1], basins=fits, **steps)
        out["posterior_2d_two_mode_mass_error"] = round(max(err), 5)
        out["posterior_2d_rhat_max"] = round(max(rh), 5)
        out["posterior_2d_emcee_time_s"] = round(float(np.mean(t)), 2)
        post, err, rh, t, warned = sampled(lik2, split2, exact2, seeds[:1], method="nested", n_live=n_live, basins=fits)
        out["posterior_2d_two_mode_mass_error_nested"] = round(max(err), 5)
        out["posterior_2d_nested_time_s"] = round(float(np.mean(t)), 2)
    return out
