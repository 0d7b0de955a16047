"""Fisher information about the EFT parameters, exact and estimated, as ``xarray.DataArray``.

For an extended (Poisson × density) likelihood with expected rate L·σ(θ), the Fisher information is

    I_ij(θ) = L [ σ(θ) E_θ[t_i t_j] + ∂_iσ ∂_jσ / σ(θ) ]        (kinematic part + rate part),

with t the score of the normalised density.  The four flavours differ only in which t they use:

* ``truth_information``:    t = t(z|θ), the joint (parton-level) score — all information in the event;
* ``rate_information``:     the rate part alone (total cross section only);
* ``histogram_information``: L Σ_bins ∂σ_b ∂σ_bᵀ / σ_b, of one observable's histogram;
* ``sally_information``:    t = t̂(x) of a trained SALLY estimator at θ = θ_ref.

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


def sally_information(estimator, events: EventSet, x, *, lumi_ifb: float, include_rate: bool = True) -> xr.DataArray:
    """Information of the SALLY score t̂(x) at the estimator's θ_ref: L[Σ_i w_i t̂_i t̂_iᵀ + rate].

    Args:
        estimator: a trained :class:`~sbihep.estimators.score.ScoreEstimator`.
        events: the (held-out) events whose weights at θ_ref define the expectation.
        x: (N, n_features) features of those events, in the estimator's observable order.
    """
    lumi = _check_lumi(lumi_ifb)
    if list(estimator.space.names) != events.operators:
        raise InvalidInputError(f"estimator: its parameters {list(estimator.space.names)} differ from the EventSet's {events.operators}")
    t_hat = estimator.score(x)
    if len(t_hat) != events.n_events:
        raise ShapeError(f"x: {len(t_hat)} rows for {events.n_events} events")
    theta = estimator.theta_ref
    matrix = _kinematic(events.weights(theta), t_hat)
    if include_rate:
        matrix = matrix + _rate_matrix(events, events.theta_vector(theta))
    return _wrap(lumi * _PB_PER_FB * matrix, events.operators, "sally" if include_rate else "sally_kinematic", lumi, theta)


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
