"""Fisher information about the EFT parameters, exact and estimated, as ``xarray.DataArray``.

For an extended (Poisson × density) likelihood with expected rate L·σ(θ), the Fisher information is

    I_ij(θ) = L [ σ(θ) E_θ[t_i t_j] + ∂_iσ ∂_jσ / σ(θ) ]        (kinematic part + rate part),

with t the score of the normalised density.  The four flavours differ only in which t they use:

* ``truth_information``:    t = t(z|θ), the joint (parton-level) score — all information in the event;
* ``rate_information``:     the rate part alone (total cross section only);
* ``histogram_information``: L Σ_bins ∂σ_b ∂σ_bᵀ / σ_b, of one observable's histogram;
* ``sally_information``:    the information in a trained SALLY estimator's t̂(x) at θ = θ_ref;
* ``score_information``:    the information in any per-event statistic s(x) (N, k) — a SALLY
  output, a classifier's score, a set of observables.

The information a statistic s(x) carries in the local (linearised) model around θ is, for the best
function of s that is linear in s,

    I_s = σ C_{t s} C_{s s}⁻¹ C_{s t}        (covariances over events at θ, t the joint score),

the "projection" estimate.  It equals σ E[t̂ t̂ᵀ] when s = t̂ is the exact score, never exceeds the
truth (it is the variance of the least-squares projection of t onto the span of s), and is unchanged
by any invertible linear transformation of s — so a t̂ that is a good score up to scale and offset is
not penalised, and a t̂ with spurious variance is not rewarded.  The plain second moment σ E[t̂ t̂ᵀ]
(``method="moment"``) is correct only for a calibrated t̂ = E[t|t̂]: it over-counts a t̂ with
regression noise or the wrong scale (t̂ = 2t would report 4× the truth) and under-counts a shrunk one.
Because E[t(x,z)|x] = t(x), C_{t s} can be taken with the joint score t(x,z) at any level (parton or
reconstructed), so the estimate needs no knowledge of t(x).

Expectations are weighted sums over an EventSet (w_i(θ) in pb); L = ``lumi_ifb`` (fb⁻¹), so I has
units of 1/θ² (θ in the units of the Wilson coefficients).  Results have dims
(``parameter_i``, ``parameter_j``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet

__all__ = [
    "truth_information",
    "rate_information",
    "histogram_information",
    "sally_information",
    "score_information",
    "information_fraction",
]

_PB_PER_FB = 1000.0  # σ in pb × L in fb⁻¹ → events: × 1000


def _wrap(matrix: np.ndarray, names: Sequence[str], kind: str, lumi_ifb: float, theta: Mapping) -> xr.DataArray:
    return xr.DataArray(
        matrix,
        dims=("parameter_i", "parameter_j"),
        coords={"parameter_i": list(names), "parameter_j": list(names)},
        name="fisher_information",
        attrs={"kind": kind, "lumi_ifb": float(lumi_ifb), "theta": str(dict(theta))},
    )


def _check_lumi(lumi_ifb: float) -> float:
    if not (np.isfinite(lumi_ifb) and lumi_ifb > 0):
        raise InvalidInputError(f"lumi_ifb must be a positive number (fb⁻¹), got {lumi_ifb!r}")
    return float(lumi_ifb)


def _sigma_and_gradient(coefficients: torch.Tensor, theta_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row σ(θ) and ∇σ(θ) for coefficient rows (B, M) → (B,), (B, n)."""
    order = "quadratic" if coefficients.shape[-1] == eft_math.n_monomials(len(theta_vec), "quadratic") else "linear"
    m, dm = eft_math.monomials(theta_vec, order), eft_math.monomial_jacobian(theta_vec, order)
    return coefficients @ m, coefficients @ dm


def _rate_matrix(events: EventSet, theta_vec: torch.Tensor) -> np.ndarray:
    s, ds = _sigma_and_gradient(events.sigma_coefficients()[None], theta_vec)
    return (ds[0][:, None] * ds[0][None, :] / s[0]).numpy()


def rate_information(events: EventSet, theta: Mapping[str, float] | None = None, *, lumi_ifb: float) -> xr.DataArray:
    """L ∇σ∇σᵀ/σ: the information in the total number of events."""
    lumi = _check_lumi(lumi_ifb)
    th = events.theta_vector(theta)
    return _wrap(lumi * _PB_PER_FB * _rate_matrix(events, th), events.operators, "rate", lumi, theta or {})


def _kinematic(weights: torch.Tensor, scores: np.ndarray) -> np.ndarray:
    w = weights.numpy()
    return np.einsum("n,ni,nj->ij", w, scores, scores)


def truth_information(
    events: EventSet, theta: Mapping[str, float] | None = None, *, lumi_ifb: float, include_rate: bool = True
) -> xr.DataArray:
    """The full parton-level information, with the joint score t(z|θ) of every event."""
    lumi = _check_lumi(lumi_ifb)
    th = events.theta_vector(theta)
    matrix = _kinematic(events.weights(theta), events.joint_score(theta).numpy())
    if include_rate:
        matrix = matrix + _rate_matrix(events, th)
    return _wrap(lumi * _PB_PER_FB * matrix, events.operators, "truth" if include_rate else "truth_kinematic", lumi, theta or {})


def histogram_information(
    events: EventSet,
    observable: str,
    bins: int | Sequence[float],
    theta: Mapping[str, float] | None = None,
    *,
    lumi_ifb: float,
) -> xr.DataArray:
    """L Σ_b ∇σ_b∇σ_bᵀ/σ_b of a histogram of ``observable`` (bins: a count — equal-population at θ — or edges).

    Includes the rate information (the sum over bins is the total rate).
    """
    lumi = _check_lumi(lumi_ifb)
    x = events.observables()
    if observable not in list(x["observable"].values):
        raise InvalidInputError(f"observable: {observable!r} is not in the EventSet (have {list(x['observable'].values)})")
    values = x.sel(observable=observable).values
    w = events.weights(theta).numpy()
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise InvalidInputError(f"bins must be ≥ 1, got {bins}")
        order = np.argsort(values)
        cum = np.cumsum(w[order]) / w.sum()
        cuts = [values[order][np.searchsorted(cum, q)] for q in np.linspace(0, 1, int(bins) + 1)[1:-1]]
        edges = np.concatenate([[-np.inf], np.unique(cuts), [np.inf]])
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise InvalidInputError(f"bins: edges must be increasing with at least two entries, got {bins!r}")
    index = np.digitize(values, edges[1:-1])
    th = events.theta_vector(theta)
    c = events.coefficients()
    matrix = np.zeros((len(th), len(th)))
    for b in range(len(edges) - 1):
        mask = torch.from_numpy(index == b)
        if not mask.any():
            continue
        s, ds = _sigma_and_gradient(c[mask].sum(0, keepdim=True), th)
        if s[0] > 0:
            matrix += (ds[0][:, None] * ds[0][None, :] / s[0]).numpy()
    return _wrap(lumi * _PB_PER_FB * matrix, events.operators, f"histogram({observable})", lumi, theta or {})


METHODS = ("projection", "moment")


def score_information(
    events: EventSet,
    statistic,
    theta: Mapping[str, float] | None = None,
    *,
    lumi_ifb: float,
    include_rate: bool = True,
    method: str = "projection",
) -> xr.DataArray:
    """Fisher information about θ carried by a per-event statistic s(x), at ``theta`` (default SM).

    Args:
        events: the (held-out) events; their weights at θ define the expectations and their joint
            scores t(x,z|θ) the target.
        statistic: s(x_i) per event, (N, k) or (N,); any k (a SALLY output has k = n_parameters).
        lumi_ifb: integrated luminosity in fb⁻¹.
        include_rate: add the rate part L ∇σ∇σᵀ/σ.
        method: ``"projection"`` — L σ C_{t s} C_{s s}⁺ C_{s t}, the information of the best linear
            function of s (pseudo-inverse: redundant columns are allowed); ``"moment"`` — L σ E[s sᵀ],
            which treats s itself as the score (needs k = n_parameters and a calibrated s).
    Returns:
        (parameter_i, parameter_j) DataArray in 1/θ²; ``attrs["kind"]`` names the method.
    Raises:
        ShapeError: ``statistic`` has the wrong number of rows (or of columns for ``"moment"``).
        InvalidInputError: unknown ``method``, NaN in ``statistic``, bad ``lumi_ifb``.
    """
    lumi = _check_lumi(lumi_ifb)
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    s = np.asarray(getattr(statistic, "values", statistic), dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2 or s.shape[0] != events.n_events:
        raise ShapeError(f"statistic: expected shape ({events.n_events}, k) — one row per event — got {s.shape}")
    if not np.isfinite(s).all():
        raise InvalidInputError("statistic: contains NaN or infinite values")
    th = events.theta_vector(theta)
    w = events.weights(theta).numpy()
    if method == "moment":
        if s.shape[1] != len(events.operators):
            raise ShapeError(f"statistic: method='moment' needs one column per parameter {events.operators}, got {s.shape[1]}")
        matrix = _kinematic(torch.from_numpy(w), s)
    else:
        t = events.joint_score(theta).numpy()
        sigma = w.sum()
        p = w / sigma
        tc, sc = t - p @ t, s - p @ s
        c_ts = np.einsum("n,ni,nk->ik", p, tc, sc)
        c_ss = np.einsum("n,nk,nl->kl", p, sc, sc)
        matrix = sigma * c_ts @ np.linalg.pinv(c_ss, rcond=1e-12, hermitian=True) @ c_ts.T
        matrix = 0.5 * (matrix + matrix.T)
    if include_rate:
        matrix = matrix + _rate_matrix(events, th)
    kind = f"score({method})" if include_rate else f"score_kinematic({method})"
    return _wrap(lumi * _PB_PER_FB * matrix, events.operators, kind, lumi, theta or {})


def sally_information(
    estimator, events: EventSet, x, *, lumi_ifb: float, include_rate: bool = True, method: str = "projection"
) -> xr.DataArray:
    """Information in the SALLY score t̂(x) at the estimator's θ_ref (see :func:`score_information`).

    The default ``method="projection"``, L σ C_{t t̂} C_{t̂ t̂}⁻¹ C_{t̂ t} (+ rate), is the information a
    fit built on t̂ can reach; ``"moment"``, L σ E[t̂ t̂ᵀ], is the older estimate, right only when t̂
    is the exact score (it over-counts regression noise).

    Args:
        estimator: a trained :class:`~sbihep.estimators.score.ScoreEstimator`.
        events: the (held-out) events whose weights at θ_ref define the expectation.
        x: (N, n_features) features of those events, in the estimator's observable order.
    """
    _check_lumi(lumi_ifb)
    if list(estimator.space.names) != events.operators:
        raise InvalidInputError(f"estimator: its parameters {list(estimator.space.names)} differ from the EventSet's {events.operators}")
    t_hat = estimator.score(x)
    if len(t_hat) != events.n_events:
        raise ShapeError(f"x: {len(t_hat)} rows for {events.n_events} events")
    out = score_information(events, t_hat, estimator.theta_ref, lumi_ifb=lumi_ifb, include_rate=include_rate, method=method)
    out.attrs["kind"] = ("sally" if include_rate else "sally_kinematic") + ("" if method == "projection" else f"({method})")
    return out


def information_fraction(estimate: xr.DataArray, truth: xr.DataArray) -> xr.Dataset:
    """How much of ``truth`` an estimate recovers: per-parameter diagonal ratios (dim ``parameter``)
    and the ratio of determinants to the power 1/n (``determinant``)."""
    a, b = estimate.values, truth.values
    if a.shape != b.shape:
        raise ShapeError(f"estimate and truth must have the same shape, got {a.shape} and {b.shape}")
    names = list(truth["parameter_i"].values)
    det_ratio = (np.linalg.det(a) / np.linalg.det(b)) ** (1.0 / len(names))
    return xr.Dataset(
        {"diagonal": ("parameter", np.diag(a) / np.diag(b)), "determinant": ((), float(det_ratio))},
        coords={"parameter": names},
    )
