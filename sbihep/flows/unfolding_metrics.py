"""Figures of merit for unfolded spectra: triangular discriminator, Wasserstein-1 distance, per-bin
pulls and coverage, and the two-sample classifier AUC.

* triangular discriminator of two binned spectra normalised to unit sum (p, q):
  Δ(p, q) = ½ Σ_i (p_i − q_i)² / (p_i + q_i)  ∈ [0, 1] (0: identical, 1: disjoint supports);
  bins where both are zero are skipped.  Often quoted × 10³.
* Wasserstein-1 distance of two weighted 1-d samples: W₁ = ∫ |F(t) − G(t)| dt with the weighted
  empirical CDFs F, G (same units as the values).
* pulls (unfolded − truth)/σ per bin, with σ from replicas (bootstrap or ensemble) or given errors;
  coverage = fraction of (replica, bin) or bin entries with |pull| ≤ z (z = 1: 68.27 % expected for
  Gaussian errors).
* :func:`bias_variance` — the coverage test over independent pseudo-experiments: each pseudo-experiment
  p (fresh data, and fresh simulation when its statistics matter) gives an unfolded spectrum u_p with
  its quoted errors σ_p (bootstrap replicas or propagated); against the truth t it returns per bin the
  bias ⟨u⟩ − t, the true spread std_p(u), the ratio ⟨σ⟩/spread (1 for correct errors) and the
  coverage of |u_p − t| ≤ z σ_p, next to the bias-free coverage of |u_p − ⟨u⟩| ≤ z σ_p.  A regularised
  unfolding (finitely many iterations) is biased; the two coverages separate that bias from a wrong σ.
* the AUC of a classifier that tries to tell two samples apart (0.5: indistinguishable).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.flows.omnifold import as_events, as_weights, fit_ratio

__all__ = ["bias_variance", "classifier_auc", "coverage", "expected_coverage", "pulls", "roc_auc", "triangular_discriminator", "wasserstein_1d"]


def _spectrum(values, argument: str) -> np.ndarray:
    a = np.asarray(getattr(values, "values", values), dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ShapeError(f"{argument}: expected a non-empty (K,) spectrum, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise InvalidInputError(f"{argument}: expected finite, non-negative bin contents")
    if not a.sum() > 0:
        raise InvalidInputError(f"{argument}: all bins are empty")
    return a


def triangular_discriminator(p, q) -> float:
    """Δ(p, q) = ½ Σ (p − q)²/(p + q) of the two (K,) spectra after normalising each to unit sum."""
    p, q = _spectrum(p, "p"), _spectrum(q, "q")
    if p.shape != q.shape:
        raise ShapeError(f"p and q must have the same binning, got {p.shape} and {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    s = p + q
    nz = s > 0
    return float(0.5 * np.sum((p[nz] - q[nz]) ** 2 / s[nz]))


def wasserstein_1d(u, v, u_weights=None, v_weights=None) -> float:
    """W₁ between the weighted 1-d samples u (N,) and v (M,) (weights default 1; must be ≥ 0)."""
    a = as_events(u, "u", 1)[:, 0]
    b = as_events(v, "v", 1)[:, 0]
    wa = as_weights(u_weights, len(a), "u_weights", positive=True)
    wb = as_weights(v_weights, len(b), "v_weights", positive=True)
    if not (wa.sum() > 0 and wb.sum() > 0):
        raise InvalidInputError("u_weights and v_weights must each have a positive sum")
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="mergesort")
    values = values[order]
    step = np.concatenate([wa / wa.sum(), -wb / wb.sum()])[order]
    cdf_diff = np.cumsum(step)[:-1]
    return float(np.sum(np.abs(cdf_diff) * np.diff(values)))


def pulls(unfolded, truth, errors=None) -> xr.DataArray:
    """Per-bin pulls.

    Args:
        unfolded: (K,) spectrum with ``errors`` (K,), or (R, K) replicas (bootstrap/ensemble members).
        truth: (K,) the true spectrum (same normalisation).
        errors: (K,) standard errors; with replicas, None means the replicas' standard deviation.
    Returns:
        (K,) pulls (mean − truth)/σ for one spectrum or when ``errors`` are given, or (R, K) pulls of every
        replica, (replica − truth)/σ_replicas, for replicas without errors; dims ``bin`` [``replica``].
    """
    u = np.asarray(getattr(unfolded, "values", unfolded), dtype=np.float64)
    t = np.asarray(getattr(truth, "values", truth), dtype=np.float64)
    if t.ndim != 1 or u.shape[-1:] != t.shape or u.ndim not in (1, 2):
        raise ShapeError(f"unfolded must be (K,) or (R, K) and truth (K,), got {u.shape} and {t.shape}")
    if not (np.isfinite(u).all() and np.isfinite(t).all()):
        raise InvalidInputError("unfolded/truth: contain NaN or infinite values")
    if errors is None:
        if u.ndim != 2 or u.shape[0] < 2:
            raise InvalidInputError("errors: needed unless unfolded holds at least two replicas (R, K)")
        sigma = u.std(0, ddof=1)
    else:
        sigma = np.asarray(errors, dtype=np.float64)
        if sigma.shape != t.shape:
            raise ShapeError(f"errors: expected shape {t.shape}, got {sigma.shape}")
    if not (sigma > 0).all():
        raise InvalidInputError(f"errors: the uncertainty of bin(s) {np.flatnonzero(~(sigma > 0)).tolist()} is not positive")
    if u.ndim == 2 and errors is None:
        return xr.DataArray((u - t) / sigma, dims=("replica", "bin"))
    centre = u if u.ndim == 1 else u.mean(0)
    return xr.DataArray((centre - t) / sigma, dims=("bin",))


def coverage(pull_values, z: float = 1.0) -> float:
    """Fraction of pulls with |pull| ≤ z (expected 2Φ(z) − 1 = 0.6827 for z = 1 and Gaussian errors)."""
    p = np.asarray(getattr(pull_values, "values", pull_values), dtype=np.float64)
    if p.size == 0 or not np.isfinite(p).all():
        raise InvalidInputError("pull_values: expected a non-empty array of finite pulls")
    if not z > 0:
        raise InvalidInputError(f"z must be positive, got {z!r}")
    return float(np.mean(np.abs(p) <= z))


def expected_coverage(z: float = 1.0) -> float:
    """2Φ(z) − 1, the coverage of |pull| ≤ z for unit Gaussian pulls."""
    return math.erf(z / math.sqrt(2.0))


def bias_variance(unfolded, truth, errors, *, z: float = 1.0) -> xr.Dataset:
    """Bias, spread and coverage of unfolded spectra over P independent pseudo-experiments.

    Args:
        unfolded: (P, K) one unfolded spectrum per pseudo-experiment (P ≥ 2).
        truth: (K,) the true spectrum all pseudo-experiments estimate (e.g. the expected counts), or
            (P, K) one truth per pseudo-experiment (e.g. the truth histogram of its own data).
        errors: (P, K) the standard error each pseudo-experiment quotes for its spectrum (> 0).
        z: the interval half-width in σ (z = 1: 68.27 % expected, :func:`expected_coverage`).
    Returns:
        Dataset over dim ``bin``: ``bias`` = ⟨u − t⟩ (mean over pseudo-experiments), ``bias_error`` =
        std(u − t)/√P, ``spread`` = std_p(u) (ddof 1: the true standard deviation of the estimator),
        ``mean_error`` = ⟨σ⟩, ``error_ratio`` = ⟨σ⟩/spread, ``pull_mean`` and ``pull_rms`` of
        (u − t)/σ, ``coverage`` = fraction of |u − t| ≤ zσ, ``coverage_without_bias`` = fraction of
        |u − ⟨u⟩| ≤ zσ; attrs ``coverage``, ``coverage_without_bias``, ``pull_mean``, ``pull_rms`` (over
        all bins and pseudo-experiments), ``bias_over_spread_rms`` (rms over bins of bias/spread),
        ``error_ratio_mean``, ``expected_coverage`` and ``n_pseudo_experiments``.
    """
    u = np.asarray(getattr(unfolded, "values", unfolded), dtype=np.float64)
    t = np.asarray(getattr(truth, "values", truth), dtype=np.float64)
    e = np.asarray(getattr(errors, "values", errors), dtype=np.float64)
    if u.ndim != 2 or u.shape[0] < 2:
        raise ShapeError(f"unfolded: expected (P, K) spectra of P ≥ 2 pseudo-experiments, got shape {u.shape}")
    if t.shape not in (u.shape[1:], u.shape):
        raise ShapeError(f"truth: expected shape {u.shape[1:]} or {u.shape}, got {t.shape}")
    if e.shape != u.shape:
        raise ShapeError(f"errors: expected shape {u.shape}, got {e.shape}")
    if not (np.isfinite(u).all() and np.isfinite(t).all() and np.isfinite(e).all()):
        raise InvalidInputError("unfolded/truth/errors: contain NaN or infinite values")
    if not (e > 0).all():
        raise InvalidInputError(f"errors: {int((e <= 0).sum())} quoted uncertainties are not positive")
    if not z > 0:
        raise InvalidInputError(f"z must be positive, got {z!r}")
    n = u.shape[0]
    diff = u - t
    spread = u.std(0, ddof=1)
    pull = diff / e
    centred = np.abs(u - u.mean(0)) <= z * e
    inside = np.abs(diff) <= z * e
    safe = np.where(spread > 0, spread, np.nan)
    out = xr.Dataset(
        {
            "bias": ("bin", diff.mean(0)),
            "bias_error": ("bin", diff.std(0, ddof=1) / math.sqrt(n)),
            "spread": ("bin", spread),
            "mean_error": ("bin", e.mean(0)),
            "error_ratio": ("bin", e.mean(0) / safe),
            "pull_mean": ("bin", pull.mean(0)),
            "pull_rms": ("bin", np.sqrt((pull**2).mean(0))),
            "coverage": ("bin", inside.mean(0)),
            "coverage_without_bias": ("bin", centred.mean(0)),
        }
    )
    out.attrs.update(
        coverage=float(inside.mean()), coverage_without_bias=float(centred.mean()), pull_mean=float(pull.mean()),
        pull_rms=float(np.sqrt((pull**2).mean())), bias_over_spread_rms=float(np.sqrt(np.nanmean((diff.mean(0) / safe) ** 2))),
        error_ratio_mean=float(np.nanmean(e.mean(0) / safe)), expected_coverage=expected_coverage(z), n_pseudo_experiments=n,
    )
    return out


def roc_auc(scores_positive, scores_negative, weights_positive=None, weights_negative=None) -> float:
    """Weighted ROC AUC = P(score of a positive > score of a negative) (ties count ½)."""
    sp = np.asarray(scores_positive, dtype=np.float64).ravel()
    sn = np.asarray(scores_negative, dtype=np.float64).ravel()
    if len(sp) == 0 or len(sn) == 0:
        raise InvalidInputError("roc_auc: both score arrays must be non-empty")
    wp = as_weights(weights_positive, len(sp), "weights_positive", positive=True)
    wn = as_weights(weights_negative, len(sn), "weights_negative", positive=True)
    scores = np.concatenate([sp, sn])
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    wpos = np.concatenate([wp, np.zeros(len(sn))])[order]
    wneg = np.concatenate([np.zeros(len(sp)), wn])[order]
    # group ties
    uniq, start = np.unique(s, return_index=True)
    pos_g = np.add.reduceat(wpos, start)
    neg_g = np.add.reduceat(wneg, start)
    neg_below = np.cumsum(neg_g) - neg_g
    auc = np.sum(pos_g * (neg_below + 0.5 * neg_g))
    return float(auc / (wp.sum() * wn.sum()))


def classifier_auc(
    sample_a, sample_b, weights_a=None, weights_b=None, *, test_fraction: float = 0.5, hidden=(64, 64), seed: int = 0, **train_options
) -> float:
    """Two-sample test: train a classifier (:class:`~sbihep.flows.omnifold.DensityRatio`) on part of
    ``sample_a`` (N, D) vs ``sample_b`` (M, D) and return its weighted ROC AUC on the held-out rest
    (0.5: the classifier cannot tell the samples apart)."""
    a = as_events(sample_a, "sample_a")
    b = as_events(sample_b, "sample_b", a.shape[1])
    wa = as_weights(weights_a, len(a), "weights_a", positive=True)
    wb = as_weights(weights_b, len(b), "weights_b", positive=True)
    if not 0 < test_fraction < 1:
        raise InvalidInputError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    ta, tb = rng.random(len(a)) < test_fraction, rng.random(len(b)) < test_fraction
    if ta.all() or tb.all() or not ta.any() or not tb.any():
        raise InvalidInputError("sample_a/sample_b: too few events to split into training and test parts")
    r = fit_ratio(a[~ta], b[~tb], wa[~ta], wb[~tb], hidden=hidden, activation="silu", seed=seed, train_options=train_options)
    return roc_auc(r.logit(a[ta]), r.logit(b[tb]), wa[ta], wb[tb])
