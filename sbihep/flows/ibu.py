"""Iterative Bayesian unfolding (D'Agostini) of a 1-d spectrum, the binned baseline, via ``pyunfold``.

The response matrix R[j, i] = P(reco bin j, passed | truth bin i) is filled from simulated
(truth, reco) pairs with their weights; its columns sum to the efficiencies ε_i.  Simulated events
whose truth lies outside the truth binning, or that have no truth record (fakes), but whose reco falls
into reco bin j make up the fake fraction f_j of that bin; the data are multiplied by (1 − f_j) before
unfolding (a purity correction that needs no common normalisation of simulation and data).  A
background sample (normalised to the data) is subtracted from the data first.

:func:`ibu` returns every iteration as an ``xarray.Dataset`` with dims ``iteration`` and
``truth_bin``; the unfolded numbers count data events at truth level (efficiency corrected).

Uncertainties: pyunfold propagates the data statistics (``stat_error``) and the response matrix's
statistics (``sys_error``), but not the way the simulation's own fluctuations move the unfolded
spectrum; with a simulation as large as the data these errors cover only ≈ 46 % at "1σ".
``ibu(..., n_bootstrap=B, seed=s)`` instead unfolds B Poisson bootstrap replicas in which every data,
simulated and background event gets an independent Poisson(1) weight, and returns their standard
deviation as ``bootstrap_error`` (coverage 0.69 of the nominal 0.68 on the Gaussian toy; the spread
over independent pseudo-experiments is reproduced to ≈ 5 %; benchmarks/RESULTS.md, "Unfolding coverage").
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.flows.omnifold import as_events, as_mask, as_weights

__all__ = ["ibu", "response_matrix"]


def _edges(bins, argument: str) -> np.ndarray:
    e = np.asarray(bins, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0) or not np.isfinite(e).all():
        raise InvalidInputError(f"{argument}: expected at least two finite, strictly increasing bin edges, got {bins!r}")
    return e


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin number of each value, −1 outside [edges[0], edges[-1]) (NaN → −1)."""
    idx = np.digitize(values, edges) - 1
    idx[(idx < 0) | (idx >= len(edges) - 1) | ~np.isfinite(values)] = -1
    return idx


def _describe(bins: np.ndarray, edges: np.ndarray) -> str:
    return ", ".join(f"{int(i)} [{edges[i]:g}, {edges[i + 1]:g})" for i in bins)


def response_matrix(truth, reco, bins_truth, bins_reco, *, passed=None, has_truth=None, sim_weights=None) -> xr.Dataset:
    """The binned detector response from simulated pairs.

    Args:
        truth: (N,) generator-level values (ignored where ``has_truth`` is false).
        reco: (N,) detector-level values (ignored where ``passed`` is false).
        bins_truth: (K + 1,) truth bin edges; bins_reco: (L + 1,) reco bin edges.
        passed, has_truth: (N,) bool masks (default all true).
        sim_weights: (N,) event weights (default 1).
    Returns:
        Dataset with ``response`` (reco_bin, truth_bin) = P(reco bin, passed | truth bin),
        ``response_error`` (same dims, from Σw²), ``efficiency`` and ``efficiency_error`` (truth_bin),
        ``truth_counts`` (truth_bin, Σw of all simulated events in the bin), ``fake_fraction`` (reco_bin)
        and ``reco_counts`` (reco_bin, Σw of all simulated events reconstructed there).
    Raises:
        InvalidInputError: naming the truth bins without simulated events or with zero efficiency.
    """
    et, er = _edges(bins_truth, "bins_truth"), _edges(bins_reco, "bins_reco")
    reco_raw = np.asarray(getattr(reco, "values", reco), dtype=np.float64)
    n = reco_raw.shape[0] if reco_raw.ndim >= 1 else 0
    passed = as_mask(passed, n, "passed")
    has_truth = as_mask(has_truth, n, "has_truth")
    truth_raw = np.asarray(getattr(truth, "values", truth), dtype=np.float64)
    if truth_raw.ndim == 0 or len(truth_raw) != n:
        raise ShapeError(f"truth and reco must describe the same simulated events: {truth_raw.shape} vs {reco_raw.shape}")
    reco = as_events(reco, "reco", 1, rows=passed)[:, 0]
    truth = as_events(truth, "truth", 1, rows=has_truth)[:, 0]
    w = as_weights(sim_weights, n, "sim_weights")
    k, l = len(et) - 1, len(er) - 1
    it = np.where(has_truth, _bin_index(np.where(has_truth, truth, np.nan), et), -1)
    ir = np.where(passed, _bin_index(np.where(passed, reco, np.nan), er), -1)
    truth_counts = np.bincount(it[it >= 0], weights=w[it >= 0], minlength=k)
    empty = np.flatnonzero(truth_counts <= 0)
    if len(empty):
        raise InvalidInputError(f"bins_truth: no simulated events (or non-positive total weight) in truth bin(s) {_describe(empty, et)}")
    pair = (it >= 0) & (ir >= 0)
    flat = ir[pair] * k + it[pair]
    h = np.bincount(flat, weights=w[pair], minlength=k * l).reshape(l, k)
    h2 = np.bincount(flat, weights=w[pair] ** 2, minlength=k * l).reshape(l, k)
    efficiency = h.sum(0) / truth_counts
    zero = np.flatnonzero(efficiency <= 0)
    if len(zero):
        raise InvalidInputError(
            f"bins_truth: zero efficiency in truth bin(s) {_describe(zero, et)} — no simulated event of these bins is "
            "reconstructed inside bins_reco, so they cannot be unfolded; merge or drop them"
        )
    sumw2_truth = np.bincount(it[it >= 0], weights=w[it >= 0] ** 2, minlength=k)
    n_eff = truth_counts**2 / sumw2_truth
    eff_err = np.sqrt(np.clip(efficiency * (1 - efficiency), 0, None) / n_eff)
    reco_counts = np.bincount(ir[ir >= 0], weights=w[ir >= 0], minlength=l)
    fake = (ir >= 0) & (it < 0)
    fake_counts = np.bincount(ir[fake], weights=w[fake], minlength=l)
    fake_fraction = np.divide(fake_counts, reco_counts, out=np.zeros(l), where=reco_counts > 0)
    dims = ("reco_bin", "truth_bin")
    return xr.Dataset(
        {
            "response": (dims, h / truth_counts),
            "response_error": (dims, np.sqrt(h2) / truth_counts),
            "efficiency": ("truth_bin", efficiency),
            "efficiency_error": ("truth_bin", eff_err),
            "truth_counts": ("truth_bin", truth_counts),
            "fake_fraction": ("reco_bin", fake_fraction),
            "reco_counts": ("reco_bin", reco_counts),
        },
        coords={
            "truth_low": ("truth_bin", et[:-1]), "truth_high": ("truth_bin", et[1:]),
            "reco_low": ("reco_bin", er[:-1]), "reco_high": ("reco_bin", er[1:]),
        },
    )


def ibu(
    truth,
    reco,
    data,
    *,
    bins_truth,
    bins_reco,
    passed=None,
    has_truth=None,
    sim_weights=None,
    data_weights=None,
    background=None,
    background_weights=None,
    iterations: int = 4,
    prior: str | np.ndarray = "simulation",
    n_bootstrap: int = 0,
    seed: int = 0,
) -> xr.Dataset:
    """Unfold the 1-d spectrum of ``data`` with a fixed number of D'Agostini iterations (``pyunfold``).

    Args:
        truth, reco, passed, has_truth, sim_weights: the simulation, see :func:`response_matrix`.
        data: (M,) detector-level data; data_weights: (M,) (default 1).
        bins_truth, bins_reco: bin edges.
        background: (B,) background events, subtracted with ``background_weights`` (default 1).
        iterations: number of iterations (≥ 1); pyunfold's stopping test is switched off.
        prior: "simulation" (the simulated truth spectrum, as OmniFold starts), "flat", or (K,) probabilities.
        n_bootstrap: B ≥ 2 Poisson bootstrap replicas of data, simulation and background together (0: none).
        seed: seed of the bootstrap's Poisson weights (each replica draws the simulation's, then the
            data's, then the background's).
    Returns:
        Dataset: ``unfolded``, ``stat_error``, ``sys_error`` (iteration, truth_bin) — counts of data
        events per truth bin, the errors as pyunfold propagates them (data statistics; response-matrix
        statistics) — plus the response matrix variables of :func:`response_matrix`.  These errors
        leave out the simulation's own statistical fluctuations (the spread it causes through the
        response matrix): with a simulation as large as the data they cover only ≈ 46% of the time
        at "1σ" (⟨σ⟩/true spread 0.63; benchmarks/RESULTS.md, "Unfolding coverage") — use ``n_bootstrap``.
        With ``n_bootstrap``: ``bootstrap_error`` (iteration, truth_bin), the replicas' standard deviation
        (ddof 1), and ``bootstrap`` (replica, iteration, truth_bin), the replicas' unfolded spectra.
    Raises:
        InvalidInputError: for zero-efficiency or empty truth bins, data in reco bins that the simulation
            never populates, non-positive data after background and fake subtraction, or bad arguments.
    """
    import pyunfold

    if not (isinstance(iterations, (int, np.integer)) and iterations >= 1):
        raise InvalidInputError(f"iterations must be a positive integer, got {iterations!r}")
    if not (isinstance(n_bootstrap, (int, np.integer)) and (n_bootstrap == 0 or n_bootstrap >= 2)):
        raise InvalidInputError(f"n_bootstrap must be 0 (no bootstrap) or an integer ≥ 2, got {n_bootstrap!r}")
    if n_bootstrap and not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer, got {seed!r}")
    resp = response_matrix(truth, reco, bins_truth, bins_reco, passed=passed, has_truth=has_truth, sim_weights=sim_weights)
    er = _edges(bins_reco, "bins_reco")
    x = as_events(data, "data", 1)[:, 0]
    wd = as_weights(data_weights, len(x), "data_weights")
    ix = _bin_index(x, er)
    l = len(er) - 1
    counts = np.bincount(ix[ix >= 0], weights=wd[ix >= 0], minlength=l)
    var = np.bincount(ix[ix >= 0], weights=wd[ix >= 0] ** 2, minlength=l)
    if background is not None:
        b = as_events(background, "background", 1)[:, 0]
        wb = as_weights(background_weights, len(b), "background_weights")
        ib = _bin_index(b, er)
        counts = counts - np.bincount(ib[ib >= 0], weights=wb[ib >= 0], minlength=l)
        var = var + np.bincount(ib[ib >= 0], weights=wb[ib >= 0] ** 2, minlength=l)
    elif background_weights is not None:
        raise InvalidInputError("background_weights given without a background sample")
    purity = 1.0 - resp["fake_fraction"].values
    counts, err = counts * purity, np.sqrt(var) * purity
    response = resp["response"].values
    unpopulated = response.sum(1) <= 0
    stray = np.flatnonzero(unpopulated & (counts != 0))
    if len(stray):
        raise InvalidInputError(f"data: events in reco bin(s) {_describe(stray, er)} that no simulated truth-bin event populates")
    if not counts[~unpopulated].sum() > 0:
        raise InvalidInputError("data: no positive count left in the reco bins after background and fake subtraction")
    keep = ~unpopulated
    k = response.shape[1]
    if isinstance(prior, str):
        if prior == "simulation":
            p = resp["truth_counts"].values / resp["truth_counts"].values.sum()
        elif prior == "flat":
            p = np.full(k, 1.0 / k)
        else:
            raise InvalidInputError(f"prior must be 'simulation', 'flat' or an array of {k} probabilities, got {prior!r}")
    else:
        p = np.asarray(prior, dtype=np.float64)
        if p.shape != (k,) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
            raise InvalidInputError(f"prior: expected {k} non-negative probabilities summing to 1, got {prior!r}")
    out = pyunfold.iterative_unfold(
        data=counts[keep], data_err=np.where(err[keep] > 0, err[keep], 1e-12),
        response=response[keep], response_err=resp["response_error"].values[keep],
        efficiencies=resp["efficiency"].values, efficiencies_err=resp["efficiency_error"].values,
        prior=p, ts_stopping=0.0, max_iter=int(iterations), return_iterations=True,
    )
    if len(out) != iterations:
        raise InvalidInputError(f"pyunfold ran {len(out)} iterations instead of {iterations}")
    stack = lambda col: np.stack([np.asarray(v, dtype=np.float64) for v in out[col]])  # noqa: E731
    result = resp.assign(
        unfolded=(("iteration", "truth_bin"), stack("unfolded")),
        stat_error=(("iteration", "truth_bin"), stack("stat_err")),
        sys_error=(("iteration", "truth_bin"), stack("sys_err")),
        data_counts=("reco_bin", counts),
    )
    if n_bootstrap:
        replicas = _bootstrap(
            dict(truth=truth, reco=reco, data=data, bins_truth=bins_truth, bins_reco=bins_reco, passed=passed, has_truth=has_truth,
                 background=background, iterations=iterations, prior=prior),
            sim_weights, len(np.asarray(getattr(reco, "values", reco))), data_weights, len(x),
            background_weights, None if background is None else len(np.asarray(getattr(background, "values", background))),
            int(n_bootstrap), int(seed),
        )
        result = result.assign(
            bootstrap=(("replica", "iteration", "truth_bin"), replicas),
            bootstrap_error=(("iteration", "truth_bin"), replicas.std(0, ddof=1)),
        )
    return result.assign_coords(iteration=np.arange(1, iterations + 1))


def _bootstrap(common: dict, sim_weights, n_sim: int, data_weights, n_data: int, background_weights, n_bkg: int | None,
               n_replicas: int, seed: int) -> np.ndarray:
    """(B, iterations, K) unfolded spectra of B Poisson(1) replicas of simulation, data and background."""
    rng = np.random.default_rng(seed)
    ws = as_weights(sim_weights, n_sim, "sim_weights")
    wd = as_weights(data_weights, n_data, "data_weights")
    wb = None if n_bkg is None else as_weights(background_weights, n_bkg, "background_weights")
    out = []
    for b in range(n_replicas):
        r_sim, r_data = rng.poisson(1.0, n_sim), rng.poisson(1.0, n_data)
        extra = {} if wb is None else {"background_weights": wb * rng.poisson(1.0, n_bkg)}
        try:
            rep = ibu(sim_weights=ws * r_sim, data_weights=wd * r_data, **extra, **common)
        except InvalidInputError as exc:
            raise InvalidInputError(f"n_bootstrap: bootstrap replica {b} cannot be unfolded ({exc}); use wider bins or more events") from exc
        out.append(rep["unfolded"].values)
    return np.stack(out)
