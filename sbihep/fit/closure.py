"""Closure checks for learned likelihoods: does the fit of a learned ratio return the truth?

A learned likelihood (an :class:`~sbihep.fit.unbinned.UnbinnedTerm` on a learned ln r̂, a surrogate,
…) can be biased with no symptom in the fit itself: a ratio trained on a small sample gave a CP-odd
coefficient 7σ off on Asimov data at the SM, with a converged fit and sensible errors.  The one
call :func:`closure_check` generates data at known points θ — the reference point of the training
and a few θ around it — fits them with the learned likelihood and, where given, the exact one, and
reports per point and parameter

- the bias of the learned best fit, (θ̂_learned − θ_true)/σ, with σ the statistical error (the exact
  likelihood's HESSE error where an exact likelihood is given, else the learned one's);
- the exact likelihood's own bias (≈ 0 on Asimov data: a check of the check);
- learned − exact best fit in σ, and the ratio of their errors (the interval widths);

and flags a point where |bias| exceeds ``threshold_sigma`` or where the learned error is smaller than
the exact one by more than ``width_tolerance`` (an overconfident likelihood: no estimator can carry
more information than the exact likelihood, so a narrower learned interval is an error, not a gain).

Default threshold 0.5σ: a Gaussian estimator biased by b (in σ) covers with its ±1σ interval
Φ(1 − b) − Φ(−1 − b): 68.3% → 62.5% at b = 0.5 (95.4% → 92.7% at ±2σ), i.e. the stated confidence
level is off by about 6 percentage points, the most a result can carry without the bias being quoted
as a systematic (in quadrature it would inflate the error by 12%).  A stricter threshold (0.2σ: 68.3%
→ 67.0%) needs more careful estimators and, for toys, ≥ 100 toys per point (the bias's own MC error
is 1/√n_toys σ).

Data: a likelihood (or term) offers ``asimov(θ)`` and ``toy(θ, rng)``, which for an
:class:`~sbihep.fit.unbinned.UnbinnedTerm` draw from its simulated pool — the truth, not the learned
model — so the learned likelihood can be passed as it is.  For anything else pass a callable
``make(theta, rng) -> Likelihood`` that returns the learned likelihood on data generated at θ
(``rng`` None for the Asimov data set).  Toys use the random stream (seed, point, toy), the same for
the learned and the exact likelihood, so two pools of the same events draw the same toys.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from sbihep.errors import ClosureWarning, InvalidInputError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize

__all__ = ["ClosureResult", "closure_check", "CLOSURE_THRESHOLD_SIGMA"]

#: Default largest tolerated |bias| of a learned fit, in units of the statistical error (see the module).
CLOSURE_THRESHOLD_SIGMA = 0.5


@dataclass
class ClosureResult:
    """The outcome of :func:`closure_check`.

    Attributes:
        passed: no point flagged (every fit converged, every |bias| ≤ threshold, no overconfident error).
        max_abs_bias_sigma: the largest |bias| over points and parameters, in σ.
        dataset: ``xarray.Dataset`` over (``point``, ``parameter``): ``truth``, ``learned_value``,
            ``learned_error``, ``exact_value``, ``exact_error`` (NaN without an exact likelihood),
            ``sigma`` (the statistical error used), ``bias_sigma``, ``bias_error_sigma`` (the MC error
            of a toy-averaged bias; 0 on Asimov data), ``exact_bias_sigma``,
            ``learned_minus_exact_sigma``, ``width_ratio`` (learned/exact error), ``flagged``; over
            ``point``: ``learned_converged``, ``exact_converged``, ``n_toys``; attrs ``threshold_sigma``,
            ``width_tolerance``, ``passed``, ``max_abs_bias_sigma``, ``data`` (``"asimov"``/``"toys"``),
            ``max_pool_mc_ratio`` (of the learned data's toy pool, where it has one).
        messages: one line per flagged point and parameter.
    """

    passed: bool
    max_abs_bias_sigma: float
    dataset: object
    messages: list[str] = field(default_factory=list)

    def to_dataset(self):
        return self.dataset

    def __repr__(self) -> str:
        state = "passed" if self.passed else "FAILED"
        return f"ClosureResult({state}, max |bias| = {self.max_abs_bias_sigma:.3g} σ, {self.dataset.sizes['point']} points)"


def _as_maker(obj, argument: str) -> Callable:
    if obj is None:
        return None
    if isinstance(obj, Likelihood):
        lik = obj
    elif hasattr(obj, "parameters") and hasattr(obj, "nll"):
        lik = Likelihood([obj])
    elif callable(obj):
        def made(theta, rng):
            out = obj(theta, rng)
            return out if isinstance(out, Likelihood) else Likelihood([out])
        return made
    else:
        raise InvalidInputError(f"closure_check: {argument} must be a Likelihood, a likelihood term or a callable "
                                f"make(theta, rng) -> Likelihood; got {type(obj).__name__}")

    def generated(theta, rng):
        full = {n: theta.get(n, v) for n, v in lik.parameters.sm_point().items()}
        return lik.asimov(full) if rng is None else lik.toy(full, rng)
    return generated


def _fit(lik: Likelihood, fixed, names, truth):
    """A local fit started at the truth: the check asks whether the learned minimum near the truth is
    biased (a global search per point would multiply the cost by ~20 on unbinned likelihoods)."""
    known = lik.parameters.names
    fit = minimize(lik, start={k: v for k, v in truth.items() if k in known},
                   fixed={k: v for k, v in (fixed or {}).items() if k in known}, on_failure="flag", global_search=False)
    return (np.array([fit.values.get(n, math.nan) for n in names]), np.array([fit.errors.get(n, math.nan) for n in names]),
            bool(fit.converged))


def _pool_ratio(lik: Likelihood) -> float:
    ratios = [getattr(t, "pool_mc_ratio", math.nan) for t in lik.terms]
    ratios = [r for r in ratios if np.isfinite(r)]
    return max(ratios) if ratios else math.nan


def closure_check(
    learned,
    exact=None,
    *,
    parameters: Sequence[str] | None = None,
    points: Sequence[Mapping[str, float]] | None = None,
    reference: Mapping[str, float] | None = None,
    step_sigma: float = 2.0,
    n_toys: int = 0,
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
    threshold_sigma: float = CLOSURE_THRESHOLD_SIGMA,
    width_tolerance: float = 0.2,
    warn: bool = True,
) -> ClosureResult:
    """Fit data generated at known points with a learned (and the exact) likelihood; flag bias.

    Args:
        learned: the learned likelihood: a :class:`Likelihood` or term whose ``asimov``/``toy`` draw
            data from the truth (an UnbinnedTerm with a simulated pool does), or a callable
            ``make(theta, rng) -> Likelihood`` (``rng`` None: Asimov data).
        exact: the exact likelihood in the same form, or None (then σ is the learned HESSE error).
        parameters: the parameters whose bias is checked (default: the learned likelihood's free POIs;
            with a callable, the POIs of ``make(reference, None)``).
        points: the truth points, by name (names left out take the reference value). Default: the
            reference, then for each checked parameter the reference ± ``step_sigma`` σ (σ from the
            Asimov fit at the reference), kept inside 90% of the distance to the bounds.
        reference: the reference point of the training (default: the SM point).
        step_sigma: distance of the default points from the reference, in σ.
        n_toys: 0 for the Asimov data set (default: deterministic, the bias of the expected data); else
            toys per point, and the bias is the toys' mean deviation (with its MC error).
        seed: seed of the toys' streams (seed, point index, toy index).
        fixed: parameters held fixed in every fit.
        threshold_sigma: largest tolerated |bias| in σ (default 0.5, see the module docstring).
        width_tolerance: flag a learned error below (1 − width_tolerance) × the exact one.
        warn: emit :class:`~sbihep.errors.ClosureWarning` when a point is flagged.

    Returns:
        :class:`ClosureResult` (``passed``, ``max_abs_bias_sigma``, ``dataset``, ``messages``).

    Raises:
        InvalidInputError: a bad argument (unknown parameter, n_toys < 0 or 1, threshold ≤ 0).
    """
    import xarray as xr

    if not (threshold_sigma > 0 and math.isfinite(threshold_sigma)):
        raise InvalidInputError(f"closure_check: threshold_sigma must be finite and > 0, got {threshold_sigma!r}")
    if not 0 <= width_tolerance < 1:
        raise InvalidInputError(f"closure_check: width_tolerance must lie in [0, 1), got {width_tolerance!r}")
    if n_toys < 0 or n_toys == 1 or int(n_toys) != n_toys:
        raise InvalidInputError(f"closure_check: n_toys must be 0 (Asimov) or an integer ≥ 2, got {n_toys!r}")
    if not (step_sigma > 0):
        raise InvalidInputError(f"closure_check: step_sigma must be > 0, got {step_sigma!r}")
    make_learned, make_exact = _as_maker(learned, "learned"), _as_maker(exact, "exact")
    fixed = dict(fixed or {})

    template = learned if isinstance(learned, Likelihood) else (
        Likelihood([learned]) if hasattr(learned, "nll") else make_learned(dict(reference or {}), None))
    space = template.parameters
    ref = space.sm_point()
    if reference is not None:
        ref.update(space.validate(reference))
    all_fixed = {**template.fixed, **fixed}
    names = list(parameters) if parameters is not None else [n for n in space.pois if n not in all_fixed]
    unknown = [n for n in names if n not in space.names]
    if unknown or not names:
        raise InvalidInputError(f"closure_check: parameters {unknown or names} are not free parameters of the learned "
                                f"likelihood {list(space.names)}")

    def run(point, index):
        truth = {**ref, **point}
        rngs = [None] if n_toys == 0 else [np.random.default_rng([seed, index, k]) for k in range(n_toys)]
        out = {}
        for label, make in (("learned", make_learned), ("exact", make_exact)):
            if make is None:
                continue
            values, errors, ok, pools = [], [], True, []
            for rng in rngs:
                lik = make(truth, rng)
                v, e, converged = _fit(lik, fixed, names, truth)
                values.append(v), errors.append(e)
                ok &= converged
                pools.append(_pool_ratio(lik))
            out[label] = (np.array(values), np.array(errors), ok, np.nanmax(pools) if np.any(np.isfinite(pools)) else math.nan)
        return truth, out

    if points is None:
        truth0, first = run({}, 0)
        sigma0 = (first["exact"] if "exact" in first else first["learned"])[1].mean(axis=0)
        points = [{}]
        for name, s in zip(names, sigma0.tolist()):
            low, high = space[name].bounds
            for sign in (1.0, -1.0):
                room = 0.9 * ((high - ref[name]) if sign > 0 else (ref[name] - low))
                step = min(step_sigma * s, room) if np.isfinite(s) and s > 0 else 0.5 * room
                points.append({name: ref[name] + sign * step})
        results = [(truth0, first)] + [run(p, i + 1) for i, p in enumerate(points[1:])]
    else:
        points = [space.validate({**ref, **p}) for p in points]
        results = [run(p, i) for i, p in enumerate(points)]

    n_p, n_k = len(results), len(names)
    shape = (n_p, n_k)
    var = {k: np.full(shape, math.nan) for k in ("truth", "learned_value", "learned_error", "exact_value", "exact_error",
                                                 "sigma", "bias_sigma", "bias_error_sigma", "exact_bias_sigma",
                                                 "learned_minus_exact_sigma", "width_ratio")}
    flagged = np.zeros(shape, dtype=bool)
    learned_ok, exact_ok, pool = np.zeros(n_p, bool), np.ones(n_p, bool), np.full(n_p, math.nan)
    labels, messages = [], []
    for i, (truth, out) in enumerate(results):
        t = np.array([truth[n] for n in names])
        moved = {n: truth[n] for n in space.names if truth[n] != ref[n]}
        labels.append("reference" if not moved else ", ".join(f"{k}={v:+.4g}" for k, v in moved.items()))
        lv, le, learned_ok[i], pool[i] = out["learned"]
        var["truth"][i] = t
        var["learned_value"][i], var["learned_error"][i] = lv.mean(axis=0), le.mean(axis=0)
        if "exact" in out:
            ev, ee, exact_ok[i], _ = out["exact"]
            var["exact_value"][i], var["exact_error"][i] = ev.mean(axis=0), ee.mean(axis=0)
            sigma = ee.mean(axis=0)
            var["exact_bias_sigma"][i] = (ev.mean(axis=0) - t) / sigma
            var["learned_minus_exact_sigma"][i] = (lv - ev).mean(axis=0) / sigma
            var["width_ratio"][i] = le.mean(axis=0) / sigma
        else:
            sigma = le.mean(axis=0)
        var["sigma"][i] = sigma
        var["bias_sigma"][i] = (lv.mean(axis=0) - t) / sigma
        var["bias_error_sigma"][i] = lv.std(axis=0, ddof=1) / math.sqrt(len(lv)) / sigma if len(lv) > 1 else 0.0
        for k, name in enumerate(names):
            reasons = []
            if not learned_ok[i] or not exact_ok[i]:
                reasons.append("a fit did not converge (" + ", ".join(
                    w for w, ok in (("learned", learned_ok[i]), ("exact", exact_ok[i])) if not ok) + ")")
            b = var["bias_sigma"][i, k]
            if not np.isfinite(b) or abs(b) > threshold_sigma:
                reasons.append(f"bias {b:+.2f} σ (threshold {threshold_sigma} σ; learned {var['learned_value'][i, k]:+.5g}, "
                               f"truth {t[k]:+.5g}, σ {sigma[k]:.3g})")
            wr = var["width_ratio"][i, k]
            if np.isfinite(wr) and wr < 1 - width_tolerance:
                reasons.append(f"learned error {wr:.2f} × the exact one (overconfident; tolerance {width_tolerance})")
            if reasons:
                flagged[i, k] = True
                messages.append(f"{name} at {labels[-1]}: " + "; ".join(reasons))

    finite = np.abs(var["bias_sigma"][np.isfinite(var["bias_sigma"])])
    max_bias = float(finite.max()) if finite.size else math.nan
    passed = not flagged.any()
    dims = ("point", "parameter")
    ds = xr.Dataset({k: (dims, v) for k, v in var.items()}, coords={"point": labels, "parameter": names})
    ds["flagged"] = (dims, flagged)
    ds["learned_converged"] = ("point", learned_ok)
    ds["exact_converged"] = ("point", exact_ok if make_exact is not None else np.zeros(n_p, bool))
    ds["n_toys"] = ("point", np.full(n_p, max(n_toys, 1) if n_toys else 0))
    max_pool = float(np.nanmax(pool)) if np.any(np.isfinite(pool)) else math.nan
    ds.attrs.update(threshold_sigma=threshold_sigma, width_tolerance=width_tolerance, passed=int(passed),
                    max_abs_bias_sigma=max_bias, data="toys" if n_toys else "asimov", max_pool_mc_ratio=max_pool,
                    has_exact=int(make_exact is not None))
    if warn and not passed:
        warnings.warn("closure_check: the learned likelihood does not close on the truth: " + " | ".join(messages),
                      ClosureWarning, stacklevel=2)
    return ClosureResult(passed, max_bias, ds, messages)
