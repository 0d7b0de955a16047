"""Training samples for likelihood-ratio and score estimators, with the joint ratio and score attached.

Every event of an :class:`~sbihep.events.eventset.EventSet` is exactly reweightable, so a sample
"generated at θ" is drawn from one base EventSet by choosing events with probability ∝ w_i(θ)
(with replacement; the effective sample size is reported).  What the estimators need
(Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013, 1805.00020; Stoye et al. arXiv:1808.00973):

* ratio estimators (CARL, ROLR, RASCAL, ALICE, ALICES, CASCAL): x from θ₀ (label y = 0) and from
  θ₁ (y = 1), θ₀ drawn from a prior (and θ₁ too for doubly parametrised estimators), with
  log r(x,z|θ₀,θ₁) and the joint scores t(x,z|θ₀), t(x,z|θ₁) of every sample;
* the same for ratio estimators without resampling (:func:`weighted_ratio_training_sample`): every
  event, each with several θ₀, weighted by its exact probability under θ₀ and under θ₁ — every event's
  information at every θ₀ is used, where resampling repeats the few tail events that dominate far from
  the SM and leaves others out;
* local score estimators (SALLY, SALLINO): x at θ_ref with t(x,z|θ_ref).

The result is an ``xarray.Dataset`` with dims (sample, observable) and (sample, parameter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from sbihep.errors import InvalidInputError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.params import ParameterSpace

__all__ = [
    "ThetaSampler",
    "uniform_prior",
    "gaussian_prior",
    "grid",
    "benchmarks",
    "draw_at_theta",
    "ratio_training_sample",
    "weighted_ratio_training_sample",
    "score_training_sample",
    "on_slice",
]

#: elements of one block of the (distinct θ × events) weight matrix in draw_at_theta (≈ 0.4 GB float64)
_DRAW_BLOCK_ELEMENTS = 50_000_000

#: (n, generator) → θ of shape (n, n_parameters).
ThetaSampler = Callable[[int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class _Named:
    """A θ sampler that remembers the parameter names it produces."""

    names: tuple[str, ...]
    draw: ThetaSampler

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.draw(n, rng)


def uniform_prior(space: ParameterSpace, bounds: Mapping[str, tuple[float, float]] | None = None) -> _Named:
    """θ uniform in each parameter's bounds (or the narrower ``bounds`` given by name).

    Raises:
        InvalidInputError: a ``bounds`` name that is not a parameter of ``space``, or bounds that are not
            finite with low < high.
    """
    bounds = dict(bounds or {})
    unknown = sorted(set(bounds) - set(space.names))
    if unknown:
        raise InvalidInputError(f"uniform_prior: bounds for {unknown}, which are not parameters of the space {list(space.names)}")
    lows, highs = [], []
    for p in space:
        low, high = bounds.get(p.name, p.bounds)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise InvalidInputError(f"uniform_prior: parameter {p.name!r} needs finite bounds low < high, got ({low}, {high})")
        lows.append(low)
        highs.append(high)
    lo, hi = np.array(lows), np.array(highs)
    return _Named(space.names, lambda n, rng: lo + (hi - lo) * rng.random((n, len(lo))))


def gaussian_prior(space: ParameterSpace, sigma: float | Mapping[str, float] = 1.0) -> _Named:
    """θ ~ N(SM value, σ²) per parameter, truncated to the bounds by redrawing."""
    sigmas = np.array([sigma.get(p.name, 1.0) if isinstance(sigma, Mapping) else float(sigma) for p in space])
    centre = np.array([p.sm_value for p in space])
    lo = np.array([p.bounds[0] for p in space])
    hi = np.array([p.bounds[1] for p in space])

    def draw(n, rng):
        out = centre + sigmas * rng.standard_normal((n, len(centre)))
        bad = ((out < lo) | (out > hi)).any(1)
        while bad.any():
            out[bad] = centre + sigmas * rng.standard_normal((int(bad.sum()), len(centre)))
            bad = ((out < lo) | (out > hi)).any(1)
        return out

    return _Named(space.names, draw)


def grid(space: ParameterSpace, points_per_axis: int | Mapping[str, Sequence[float]]) -> _Named:
    """θ cycling through a regular grid (the bounds split into ``points_per_axis`` values each, or explicit values)."""
    axes = []
    for p in space:
        if isinstance(points_per_axis, Mapping):
            axes.append(np.asarray(points_per_axis[p.name], dtype=float))
        else:
            axes.append(np.linspace(p.bounds[0], p.bounds[1], int(points_per_axis)))
    table = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    return _Named(space.names, lambda n, rng: table[np.arange(n) % len(table)])


def benchmarks(space: ParameterSpace, points: Sequence[Mapping[str, float]]) -> _Named:
    """θ cycling through named benchmark points (morphing-style), missing parameters at their SM value."""
    table = np.stack([space.to_vector(p) for p in points])
    return _Named(space.names, lambda n, rng: table[np.arange(n) % len(table)])


def on_slice(events: EventSet, names: Sequence[str], fixed: Mapping[str, float] | None = None) -> EventSet:
    """``events`` restricted to the operators ``names`` (a sampler's parameters), every other operator held
    at 0 or at its ``fixed`` value (:meth:`~sbihep.events.eventset.EventSet.restrict`); ``events`` itself
    when ``names`` are all its operators in its order and nothing is fixed.

    Raises:
        InvalidInputError: a name that is not an operator of ``events``, or a ``fixed`` entry for an
            operator that is sampled or unknown.
    """
    names = [str(n) for n in names]
    unknown = sorted(set(names) - set(events.operators))
    if unknown:
        raise InvalidInputError(f"the θ sampler has parameters {unknown} that the EventSet does not know ({events.operators})")
    if names == list(events.operators) and not fixed:
        return events
    clash = sorted(set(fixed or {}) & set(names))
    if clash:
        raise InvalidInputError(f"fixed: {clash} are also sampled by the prior; fix only operators the prior leaves out")
    return events.restrict(names, fixed)


def draw_at_theta(events: EventSet, theta: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Indices of events distributed as at each θ (one draw per row of θ (K, n)), and the effective sample size.

    Event i is chosen for row k with probability w_i(θ_k)/Σ_j w_j(θ_k).
    """
    coefficients = events.coefficients()
    n_events = coefficients.shape[0]
    u = torch.from_numpy(rng.random(theta.shape[0]))
    # distinct θ rows only, a block at a time: a (K, N) weight matrix would not fit in memory for
    # K ~ N ~ 10⁵ (a fixed θ₁ is one distinct row however many samples use it)
    distinct, inverse = torch.unique(theta, dim=0, return_inverse=True)
    idx = torch.empty(theta.shape[0], dtype=torch.int64)
    ess_sum = 0.0
    block = max(1, _DRAW_BLOCK_ELEMENTS // max(n_events, 1))
    for start in range(0, distinct.shape[0], block):
        weights = eft_math.weights_at(coefficients, distinct[start : start + block])  # (k, N)
        if (weights < 0).any():
            raise InvalidInputError("negative event weights at some θ (linear order far from the SM): cannot sample")
        cumulative = torch.cumsum(weights, dim=1)
        totals = cumulative[:, -1:]
        ess_rows = totals[:, 0] ** 2 / (weights**2).sum(1)
        # row r's normalised cumulative lies in (r, r + 1]: one sorted sequence for all rows
        rows = torch.arange(weights.shape[0], dtype=torch.float64)[:, None]
        flat = (cumulative / totals + rows).reshape(-1)
        mine = (inverse >= start) & (inverse < start + weights.shape[0])
        local = inverse[mine] - start
        position = torch.searchsorted(flat, local.to(torch.float64) + u[mine])
        idx[mine] = torch.clamp(position - local * n_events, 0, n_events - 1)
        ess_sum += float(ess_rows[local].sum())
    return idx.numpy(), ess_sum / theta.shape[0]


def _theta1_vector(events: EventSet, theta: Mapping[str, float] | None, argument: str = "theta1") -> torch.Tensor:
    """θ by name on the events' (possibly restricted) operators; a held operator named is an error."""
    held = sorted(set(theta or {}) & set(events.fixed_operators))
    if held:
        raise InvalidInputError(f"{argument}: {held} are held fixed in this sample (at {events.fixed_operators}); "
                                f"name only the sampled parameters {events.operators}")
    return events.theta_vector(theta or {})


def _features(events: EventSet, features: str | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    if features == "z":
        return events.data["z"].values, [str(v) for v in events.data["latent"].values]
    x = events.observables()
    names = list(x["observable"].values) if features == "x" else list(features)
    missing = sorted(set(names) - set(x["observable"].values.tolist()))
    if missing:
        raise InvalidInputError(f"observables {missing} are not in the EventSet (have {list(x['observable'].values)})")
    return x.sel(observable=names).values, [str(n) for n in names]


def _dataset(x, names, operators, theta0, theta1, y, log_r, t0, t1, attrs) -> xr.Dataset:
    data = {
        "x": (("sample", "observable"), x),
        "theta0": (("sample", "parameter"), theta0),
        "t_xz0": (("sample", "parameter"), t0),
    }
    if theta1 is not None:
        data.update(
            {
                "theta1": (("sample", "parameter"), theta1),
                "y": (("sample",), y),
                "log_r_xz": (("sample",), log_r),
                "t_xz1": (("sample", "parameter"), t1),
            }
        )
    return xr.Dataset(data, coords={"observable": names, "parameter": list(operators)}, attrs=attrs)


def _sigma_attrs(events: EventSet) -> dict:
    """The base events' σ(θ) polynomial (pb, over the monomials of their operators and order): lets a
    morphing-aware estimator use the exact cross section (``RatioEstimator.fit(normalisation="cross_section")``)."""
    return {"sigma_coefficients": events.sigma_coefficients().numpy().astype(np.float64), "eft_order": events.order,
            "sigma_operators": list(events.operators), "fixed_parameters": json.dumps(events.fixed_operators)}


def ratio_training_sample(
    events: EventSet,
    prior: _Named,
    n_samples: int,
    *,
    theta1: Mapping[str, float] | _Named | None = None,
    features: str | Sequence[str] = "x",
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Samples for parametrised ratio estimators r̂(x|θ₀, θ₁).

    The sample's parameters are the prior's, in its order: a prior over a subset of the EventSet's
    operators draws on the slice where the others are held at 0 (SM) or at their ``fixed`` values
    (:func:`on_slice`), and the sample's θ columns, joint ratios, scores and σ(θ) polynomial are those
    of that slice.

    Args:
        events: the base EventSet (ideally generated near the middle of the prior).
        prior: θ₀ sampler (e.g. :func:`uniform_prior`).
        n_samples: total samples; half with y = 0 (x ~ θ₀), half with y = 1 (x ~ θ₁).
        theta1: fixed reference θ₁ by name (default SM: the prior's parameters at 0, held operators at their
            ``fixed`` values), or a sampler over the prior's parameters for doubly parametrised estimators.
        features: "x" (all observables), a list of observable names, or "z" (parton-level momenta).
        seed: random seed.
        fixed: values (TeV⁻²) of operators of ``events`` that the prior leaves out (default 0, the SM).
    Returns:
        Dataset with x (sample, observable), theta0/theta1/t_xz0/t_xz1 (sample, parameter),
        y and log_r_xz (sample); attrs record the effective sample sizes, the base events' σ(θ)
        polynomial (``sigma_coefficients`` in pb, ``eft_order``, ``sigma_operators``) and the held
        operators (``fixed_parameters``, JSON {name: value}).
    Raises:
        InvalidInputError: a ``theta1`` sampler over other parameters than the prior, a ``theta1``
            mapping naming a held operator, or a bad ``fixed`` entry (see :func:`on_slice`).
    """
    if int(n_samples) != n_samples or n_samples < 2:
        raise InvalidInputError(f"n_samples must be an integer ≥ 2, got {n_samples!r}")
    rng = np.random.default_rng(seed)
    n0 = n_samples // 2
    n1 = n_samples - n0
    events = on_slice(events, prior.names, fixed)
    th0 = torch.from_numpy(np.asarray(prior(n_samples, rng), dtype=np.float64))
    if isinstance(theta1, _Named):
        if list(theta1.names) != list(prior.names):
            raise InvalidInputError(f"theta1: the sampler's parameters {list(theta1.names)} must be the prior's {list(prior.names)}")
        th1 = torch.from_numpy(np.asarray(theta1(n_samples, rng), dtype=np.float64))
    else:
        th1 = _theta1_vector(events, theta1).expand(n_samples, -1).clone()
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    source = torch.where(torch.from_numpy(y)[:, None] == 0, th0, th1)
    idx, ess = draw_at_theta(events, source, rng)
    coeffs = events.coefficients()[idx]
    sigma = events.sigma_coefficients()
    log_r = eft_math.paired_log_joint_ratio(coeffs, sigma, th0, th1)
    t0 = eft_math.paired_joint_score(coeffs, sigma, th0)
    t1 = eft_math.paired_joint_score(coeffs, sigma, th1)
    x, names = _features(events, features)
    attrs = {"effective_sample_size": ess, "n_base_events": events.n_events, "seed": seed, "kind": "ratio", **_sigma_attrs(events)}
    return _dataset(x[idx], names, events.operators, th0.numpy(), th1.numpy(), y, log_r.numpy(), t0.numpy(), t1.numpy(), attrs)


def weighted_ratio_training_sample(
    events: EventSet,
    prior: _Named,
    n_theta_per_event: int,
    *,
    theta1: Mapping[str, float] | None = None,
    features: str | Sequence[str] = "x",
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Weighted samples for ratio estimators: every event with ``n_theta_per_event`` draws of θ₀.

    Row (i, k) holds event i, θ₀ drawn from ``prior`` and the fixed θ₁ (default SM), with the
    normalised probabilities of the event under each hypothesis,

        weight0 = N w_i(θ₀)/Σ_j w_j(θ₀),    weight1 = N w_i(θ₁)/Σ_j w_j(θ₁)    (N events; mean 1 per θ),

    so that a weighted mean over rows is the expectation over x ~ θ₀ (weight0) or x ~ θ₁ (weight1)
    for each θ₀ — the population of :func:`ratio_training_sample` without its sampling noise.  Every
    row serves both classes: the ratio losses weight their y = 0 part with ``weight0`` and their y = 1
    part with ``weight1`` (:meth:`sbihep.estimators.ratio.RatioEstimator.fit` does so when it sees
    them).  With both weights, CARL's loss equals ALICE's: its label averages to s(x,z) = 1/(1 + r(x,z)).

    Args:
        events: the base EventSet (events with non-negative weights at every θ of the prior).
        prior: θ₀ sampler (e.g. :func:`uniform_prior`).
        n_theta_per_event: θ₀ draws per event (rows = events × this).
        theta1: the fixed reference θ₁ by name (default SM).
        features: as in :func:`ratio_training_sample`.
        seed: random seed of the θ₀ draws.
        fixed: values of operators the prior leaves out (default 0), as in :func:`ratio_training_sample`.
    Returns:
        Dataset with x (sample, observable); theta0, theta1, t_xz0, t_xz1 (sample, parameter);
        log_r_xz, weight0, weight1 and ``event`` (the event's index, for splitting by event) (sample);
        attrs as :func:`ratio_training_sample`'s, with the σ(θ) polynomial.
    """
    if int(n_theta_per_event) != n_theta_per_event or n_theta_per_event < 1:
        raise InvalidInputError(f"n_theta_per_event must be a positive integer, got {n_theta_per_event!r}")
    if isinstance(theta1, _Named):
        raise InvalidInputError("theta1: weighted samples need one fixed reference θ₁ (a mapping), not a sampler")
    rng = np.random.default_rng(seed)
    events = on_slice(events, prior.names, fixed)
    n_events, k = events.n_events, int(n_theta_per_event)
    event = np.repeat(np.arange(n_events), k)
    th0 = torch.from_numpy(np.asarray(prior(n_events * k, rng), dtype=np.float64))
    th1 = _theta1_vector(events, theta1).expand(n_events * k, -1).clone()
    coefficients = events.coefficients()
    sample_sigma = coefficients.sum(0)  # Σ_j w_j(θ) = m(θ)·Σ_j c_j: this sample's own normalisation
    order = eft_math._order_from_width(coefficients, th0.shape[-1])
    m0, m1 = eft_math.monomials(th0, order), eft_math.monomials(th1, order)
    coeffs = coefficients[torch.from_numpy(event)]
    w0, w1 = (coeffs * m0).sum(-1), (coeffs * m1).sum(-1)
    if (w0 < 0).any() or (w1 < 0).any():
        raise InvalidInputError("negative event weights at some θ (linear order far from the SM): the sample is undefined there")
    weight0 = n_events * w0 / (m0 @ sample_sigma)
    weight1 = n_events * w1 / (m1 @ sample_sigma)
    keep = (w0 > 0) | (w1 > 0)  # rows impossible under both hypotheses carry nothing
    if ((w0 == 0) | (w1 == 0))[keep].any():
        raise InvalidInputError("some events have zero weight under θ₀ or θ₁ but not both: their log r is infinite")
    sigma = events.sigma_coefficients()
    idx = torch.from_numpy(event)[keep]
    log_r = eft_math.paired_log_joint_ratio(coefficients[idx], sigma, th0[keep], th1[keep])
    t0 = eft_math.paired_joint_score(coefficients[idx], sigma, th0[keep])
    t1 = eft_math.paired_joint_score(coefficients[idx], sigma, th1[keep])
    x, names = _features(events, features)
    data = xr.Dataset(
        {
            "x": (("sample", "observable"), x[idx.numpy()]),
            "theta0": (("sample", "parameter"), th0[keep].numpy()),
            "theta1": (("sample", "parameter"), th1[keep].numpy()),
            "t_xz0": (("sample", "parameter"), t0.numpy()),
            "t_xz1": (("sample", "parameter"), t1.numpy()),
            "log_r_xz": (("sample",), log_r.numpy()),
            "weight0": (("sample",), weight0[keep].numpy()),
            "weight1": (("sample",), weight1[keep].numpy()),
            "event": (("sample",), idx.numpy()),
        },
        coords={"observable": names, "parameter": list(events.operators)},
        attrs={"n_base_events": n_events, "n_theta_per_event": k, "seed": seed, "kind": "ratio_weighted",
               "dropped_zero_weight_rows": int((~keep).sum()), **_sigma_attrs(events)},
    )
    return data


def score_training_sample(
    events: EventSet,
    n_samples: int,
    *,
    theta_ref: Mapping[str, float] | None = None,
    features: str | Sequence[str] = "x",
    seed: int = 0,
    parameters: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Samples x ~ p(x|θ_ref) with the joint score t(x,z|θ_ref) (SALLY, SALLINO).

    Args:
        events: the base EventSet.
        n_samples: number of samples.
        theta_ref: the reference point by name (default SM; only ``parameters`` may be named).
        features: as in :func:`ratio_training_sample`.
        seed: random seed.
        parameters: the operators whose score is learned, in this order (default every operator of
            ``events``); the others are held at 0 or at their ``fixed`` values (:func:`on_slice`).
        fixed: values of the held operators (TeV⁻²).
    Returns:
        Dataset with x (sample, observable), theta0 and t_xz0 (sample, parameter); attrs record the
        effective sample size and the held operators (``fixed_parameters``, JSON).
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise InvalidInputError(f"n_samples must be a positive integer, got {n_samples!r}")
    rng = np.random.default_rng(seed)
    events = on_slice(events, events.operators if parameters is None else list(parameters), fixed)
    th = _theta1_vector(events, theta_ref, "theta_ref").expand(n_samples, -1).clone()
    idx, ess = draw_at_theta(events, th, rng)
    t = eft_math.joint_score(events.coefficients()[idx], events.sigma_coefficients(), th[0])
    x, names = _features(events, features)
    attrs = {"effective_sample_size": ess, "n_base_events": events.n_events, "seed": seed, "kind": "score",
             "fixed_parameters": json.dumps(events.fixed_operators)}
    return _dataset(x[idx], names, events.operators, th.numpy(), None, None, None, t.numpy(), None, attrs)
