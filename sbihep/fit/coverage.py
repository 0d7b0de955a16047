"""Coverage of interval methods: toys at a known θ, the fraction of intervals that contain it.

A method is either

- a *test* with ``names`` (tested parameters), ``cl`` and ``accepts(t, point) -> bool``: the
  confidence set contains θ iff the test accepts t(θ) at θ (test inversion, exact for Wilks and
  Neyman sets; t is computed once per toy and shared by all tests of the same parameters) —
  :class:`WilksMethod`, :class:`NeymanMethod` on a fixed belt;
- a *data-dependent test* with ``names``, ``cl`` and ``accepts_data(toy, t, point, conditional)``:
  the critical value depends on the toy itself — :class:`NeymanMethod` on a nuisance belt, whose
  ``"calibrated"``, ``"berger_boos"`` or ``"profile"`` construction is applied to every toy with
  the toy's own ν̂̂ (and, for Berger–Boos, the toy's own nuisance confidence set), so that the
  constructions are tested as they are used, not as a fixed belt.  The profile construction as
  used on real data (toys at ν̂̂ of the data) is evaluated honestly this way: each toy gets the
  critical value at its own ν̂̂, interpolated in a belt over (θ, ν);
- or any callable ``method(likelihood) -> Interval`` (e.g. a profile or Bayesian interval), whose
  interval is computed on every toy.

Coverage p̂ = k/n over the toys whose fits converged, reported with its binomial standard error
√(p̂(1 − p̂)/n) and the Clopper–Pearson interval at 68.27%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import InvalidInputError
from sbihep.fit.intervals import ONE_SIGMA, wilks_threshold
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.neyman import critical_value, tie_tolerance
from sbihep.fit.neyman_nuisance import NuisanceConstruction
from sbihep.fit.statistic import check_stream, profile_fit, toy_seed, toy_stream
from sbihep.parallel import map_jobs

__all__ = ["WilksMethod", "NeymanMethod", "coverage", "covered", "binomial_interval"]


@dataclass(frozen=True)
class WilksMethod:
    """Wilks' confidence set: t(θ) ≤ χ²_k⁻¹(cl), k = len(names)."""

    names: tuple[str, ...]
    cl: float = ONE_SIGMA

    def accepts(self, t: float, point: Mapping[str, float]) -> bool:
        return t <= wilks_threshold(self.cl, len(self.names))


@dataclass(frozen=True)
class NeymanMethod:
    """The Neyman set of a belt (:func:`~sbihep.fit.neyman.neyman_belt`): t(θ) ≤ c(θ).

    With a fixed belt (no nuisance grid) c = c_α(θ) of the belt (+ TIE_TOLERANCE on an exact
    belt, :func:`~sbihep.fit.neyman.tie_tolerance`), the same for every toy.  With a
    nuisance belt c = c(θ; toy) of ``construction`` (default ``"calibrated"``; ``gamma``, ``margin``:
    see :mod:`sbihep.fit.neyman_nuisance`), computed on each toy.
    """

    belt: Any
    cl: float = ONE_SIGMA
    construction: str | None = None
    gamma: float = 0.01
    margin: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.belt.attrs["tested"].split(","))

    @property
    def data_dependent(self) -> bool:
        return bool(self.belt.attrs.get("nuisances", ""))

    def _construction(self) -> NuisanceConstruction:
        cached = self.__dict__.get("_cached")
        if cached is None:
            cached = NuisanceConstruction(self.belt, self.cl, self.construction or "calibrated", gamma=self.gamma,
                                          margin=self.margin)
            object.__setattr__(self, "_cached", cached)
        return cached

    def accepts(self, t: float, point: Mapping[str, float]) -> bool:
        if self.data_dependent:
            raise InvalidInputError("NeymanMethod.accepts: a nuisance belt's critical value depends on the data; "
                                    "use accepts_data (coverage() does)")
        if self.construction not in (None, "profile"):
            raise InvalidInputError(f"NeymanMethod: construction {self.construction!r} needs a nuisance belt")
        return t <= critical_value(self.belt, point, self.cl) + tie_tolerance(self.belt)

    def accepts_data(self, toy: Likelihood, t: float, point: Mapping[str, float], conditional, **fit_kwargs) -> bool:
        """Whether the set computed on ``toy`` contains ``point``; ``conditional`` is the toy's fit at ``point``."""
        if not self.data_dependent:
            return self.accepts(t, point)
        c = self._construction().critical(toy, point, conditional.values, conditional.nll, **fit_kwargs)
        return t <= c


def binomial_interval(k: int, n: int, cl: float = ONE_SIGMA) -> tuple[float, float]:
    """Clopper–Pearson interval of a binomial proportion k/n."""
    a = 1.0 - cl
    low = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return low, high


def covered(toy: Likelihood, theta: Mapping[str, float], methods: Sequence, *, free_fit=None,
            **fit_kwargs: Any) -> np.ndarray:
    """Whether each method's confidence set on the data of ``toy`` contains the true ``theta``.

    Args:
        toy: the likelihood of one data set.
        theta: the true values (every parameter by name).
        methods: a sequence of methods (see the module docstring).
        free_fit: the data set's unconditional fit, if already known (flagged, not raised, on failure).

    Returns:
        (len(methods),) float: 1 covered, 0 not, NaN when a fit (or an interval) failed.  Summing
        this with Poisson weights over a lattice of counts gives the exact coverage.
    """
    out = np.full(len(methods), np.nan)
    start = {k: v for k, v in theta.items() if k not in toy.fixed}
    free = free_fit
    fits: dict[tuple[str, ...], tuple[float, bool, Any]] = {}
    for j, method in enumerate(methods):
        if hasattr(method, "accepts") or hasattr(method, "accepts_data"):
            names = tuple(method.names)
            point = {n: theta[n] for n in names}
            if names not in fits:
                if free is None:
                    free = minimize(toy, start=start, hesse=False, on_failure="flag", **fit_kwargs)
                t, ok, _, cond = profile_fit(toy, point, start=start, free_fit=free, **fit_kwargs)
                fits[names] = (t, ok, cond)
            t, ok, cond = fits[names]
            if ok:
                if hasattr(method, "accepts_data"):
                    out[j] = float(method.accepts_data(toy, t, point, cond, **fit_kwargs))
                else:
                    out[j] = float(method.accepts(t, point))
        else:
            try:
                iv = method(toy)
            except Exception:  # noqa: BLE001 - a failed interval is counted, not hidden
                continue
            # a ConfidenceSet may have gaps: ask it, not its hull
            inside = iv.contains(theta[iv.parameter]) if hasattr(iv, "contains") else iv.low <= theta[iv.parameter] <= iv.high
            out[j] = float(inside)
    return out


def _coverage_chunk(likelihood: Likelihood, theta: Mapping[str, float], methods: Sequence, seed: int,
                    indices: Sequence[int], stream: str, fit_kwargs: Mapping[str, Any]) -> np.ndarray:
    """(len(indices), len(methods)): 1 covered, 0 not, NaN when the toy's fits failed."""
    out = np.full((len(indices), len(methods)), np.nan)
    for i, index in enumerate(indices):
        rng = toy_seed(seed, index) if stream == "shared" else toy_stream(seed, "coverage", theta, index)
        out[i] = covered(likelihood.toy(theta, rng), theta, methods, **fit_kwargs)
    return out


def coverage(
    likelihood: Likelihood,
    theta: Mapping[str, float],
    methods: Mapping[str, Callable | WilksMethod | NeymanMethod],
    *,
    n_toys: int = 1000,
    seed: int = 12345,
    stream: str = "independent",
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    **fit_kwargs: Any,
):
    """Throw ``n_toys`` toys at the true ``theta`` and report each method's coverage.

    Args:
        likelihood: the model (its terms must draw toys).
        theta: the true values (every parameter by name; left-out ones at their SM value).
        methods: label → method (see the module docstring).
        n_toys: toys; seed: their seed.  stream: ``"independent"`` (default): each toy's stream
            from (seed, "coverage", θ, toy index), so that coverage at different truth points, and
            belts, never share toys; ``"shared"``: the old (seed, toy index), the same at every θ.
        n_workers, executor, client, progress: passed to :func:`~sbihep.parallel.map_jobs`.
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.

    Returns:
        ``xarray.Dataset`` over dim ``interval_method`` (not ``method``, which ``Dataset.sel`` reserves): ``coverage``, ``coverage_error`` (binomial standard
        error), ``cp_low``/``cp_high`` (Clopper–Pearson 68.27%), ``cl`` (the nominal level, NaN when
        unknown), ``n_valid``, ``n_failed``; and ``covered`` (``toy``, ``interval_method``; NaN = failed).
    """
    import xarray as xr

    if not methods:
        raise InvalidInputError("coverage: methods must name at least one interval method")
    if int(n_toys) != n_toys or n_toys < 1:
        raise InvalidInputError(f"coverage: n_toys must be a positive integer, got {n_toys!r}")
    check_stream(stream, "coverage")
    full = likelihood.parameters.validate(theta)
    labels, method_list = list(methods), list(methods.values())
    n_jobs = max(1, min(int(n_toys), 4 * max(int(n_workers), 1)))
    edges = np.linspace(0, n_toys, n_jobs + 1).astype(int)
    jobs = [(likelihood, full, method_list, seed, list(range(lo, hi)), stream, fit_kwargs) for lo, hi in zip(edges[:-1], edges[1:])]
    covered = np.concatenate(map_jobs(_coverage_chunk, jobs, n_workers=n_workers, executor=executor, client=client,
                                      progress=progress, desc="coverage toys"))
    valid = np.isfinite(covered)
    n_valid = valid.sum(axis=0)
    k = np.nansum(covered, axis=0)
    p = np.where(n_valid > 0, k / np.maximum(n_valid, 1), np.nan)
    err = np.sqrt(p * (1 - p) / np.maximum(n_valid, 1))
    cp = np.array([binomial_interval(int(kk), int(nn)) if nn else (math.nan, math.nan) for kk, nn in zip(k, n_valid)])
    cl = [float(getattr(m, "cl", math.nan)) for m in method_list]
    return xr.Dataset(
        {
            "coverage": (("interval_method",), p),
            "coverage_error": (("interval_method",), err),
            "cp_low": (("interval_method",), cp[:, 0]),
            "cp_high": (("interval_method",), cp[:, 1]),
            "cl": (("interval_method",), cl),
            "n_valid": (("interval_method",), n_valid),
            "n_failed": (("interval_method",), (~valid).sum(axis=0)),
            "covered": (("toy", "interval_method"), covered),
        },
        coords={"interval_method": labels},
        attrs={"n_toys": int(n_toys), "seed": int(seed), "stream": stream},
    )
