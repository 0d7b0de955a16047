"""Find every basin of −ln L: local fits from a spread design of starts, distinct minima kept.

A single local fit answers "where is *a* minimum": EFT likelihoods at quadratic order often have
two nearly equal minima (the sign ambiguity of an interference term against a square), and a fit
from the SM point finds the one on its side.  :func:`find_minima` runs :func:`~sbihep.fit.minimize.minimize`
from

- the given (or default) start, whose HESSE errors σ set the scale of the design;
- a scrambled Sobol design in the box x̂ ± s·σ for s in :data:`SPREAD_SIGMAS` (clipped to the
  bounds), so that basins near and far (tens to hundreds of σ) are both reached;
- where a parameter's bounds are finite, Sobol points spread uniformly over them,

and merges end points that are the same minimum (every coordinate within ``same_sigma`` σ, or −ln L
within ``agree_tol`` and every coordinate within 1σ).  Each distinct minimum is refitted with HESSE, so it carries its own errors.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from sbihep.errors import ConvergenceError, InvalidInputError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize

__all__ = ["SPREAD_SIGMAS", "default_n_starts", "explore_minima", "find_minima"]

#: Half-widths of the start boxes around the first fit, in units of its errors.
SPREAD_SIGMAS = (3.0, 10.0, 30.0, 100.0, 300.0)


def default_n_starts(n_free: int) -> int:
    """Starts of the spread design for ``n_free`` free parameters: 8 + 4·k, at most 40."""
    return int(min(8 + 4 * n_free, 40))


def find_minima(
    likelihood: Likelihood,
    *,
    fixed: Mapping[str, float] | None = None,
    start: Mapping[str, float] | None = None,
    n_starts: int | None = None,
    seed: int = 0,
    agree_tol: float = 1e-3,
    same_sigma: float = 0.05,
    **fit_kwargs: Any,
) -> list[FitResult]:
    """Distinct local minima of −ln L over the free parameters, lowest first.

    Args:
        likelihood: the likelihood.
        fixed: parameters held fixed (besides ``likelihood.fixed``).
        start: the first start (default :meth:`Likelihood.start_point`).
        n_starts: starts of the spread design besides the first (default :func:`default_n_starts`).
        seed: seed of the scrambled Sobol design.
        agree_tol, same_sigma: two end points are the same minimum when every free coordinate is
            within ``same_sigma`` σ, or −ln L within ``agree_tol`` and every coordinate within 1σ.
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (not ``n_starts``/``hesse``).

    Returns:
        The converged distinct minima as FitResults (with HESSE errors), sorted by −ln L; the first is
        the global minimum among those found.  Fits that failed their checks are left out.

    Raises:
        InvalidInputError: ``n_starts`` < 0, or ``fit_kwargs`` naming ``n_starts``/``hesse``/``on_failure``/
            ``global_search``.
        ConvergenceError: no start converged.
    """
    _check_reserved(fit_kwargs)
    first = minimize(likelihood, fixed=fixed, start=start, hesse=True, on_failure="flag", global_search=False,
                     **fit_kwargs)
    return explore_minima(likelihood, first, fixed=fixed, n_starts=n_starts, seed=seed, agree_tol=agree_tol,
                          same_sigma=same_sigma, **fit_kwargs)


def _check_reserved(fit_kwargs) -> None:
    for reserved in ("n_starts", "hesse", "on_failure", "global_search"):
        if reserved in fit_kwargs:
            raise InvalidInputError(f"find_minima: {reserved!r} is set by find_minima itself")


def explore_minima(
    likelihood: Likelihood,
    first: FitResult,
    *,
    fixed: Mapping[str, float] | None = None,
    n_starts: int | None = None,
    seed: int = 0,
    agree_tol: float = 1e-3,
    same_sigma: float = 0.05,
    **fit_kwargs: Any,
) -> list[FitResult]:
    """:func:`find_minima` around a fit already made (``first``: its errors set the design's scale;
    it is one of the candidates when converged).  Used by ``minimize(global_search=...)``."""
    _check_reserved(fit_kwargs)
    fit_kwargs = {**fit_kwargs, "global_search": False}
    free = first.free
    if not free:
        return [first]
    n = default_n_starts(len(free)) if n_starts is None else int(n_starts)
    if n < 0:
        raise InvalidInputError(f"find_minima: n_starts must be ≥ 0, got {n_starts!r}")
    scale = _scales(likelihood, first)
    ends = [first] if first.converged else []
    for x in _design(likelihood, first, scale, n, seed):
        try:
            fit = minimize(likelihood, fixed=fixed, start=dict(zip(free, x)), hesse=False, on_failure="flag",
                           **fit_kwargs)
        except InvalidInputError:
            # the likelihood is undefined along this start's path (e.g. negative event weights far out
            # in an EFT direction): the start is lost, the search is not
            continue
        if fit.converged:
            ends.append(fit)
    if not ends:
        raise ConvergenceError(f"find_minima: none of {n + 1} starts converged; first fit: {first.message}")
    distinct = _merge(ends, free, scale, agree_tol, same_sigma)
    polished = []
    for fit in distinct:
        if fit.covariance is None:  # polish with HESSE; the end point of a far start may sit a hair off
            refit = minimize(likelihood, fixed=fixed, start={k: fit.values[k] for k in free}, hesse=True,
                             on_failure="flag", **fit_kwargs)
            fit = refit if refit.converged and refit.nll <= fit.nll + agree_tol else fit
        polished.append(fit)
    return _merge(polished, free, scale, agree_tol, same_sigma)


def _merge(fits: list[FitResult], free, scale: np.ndarray, agree_tol: float, same_sigma: float) -> list[FitResult]:
    """The fits that are distinct minima, lowest first (a later duplicate of a lower one is dropped)."""
    distinct: list[FitResult] = []
    for fit in sorted(fits, key=lambda f: f.nll):
        if not any(_same(fit, other, free, scale, agree_tol, same_sigma) for other in distinct):
            distinct.append(fit)
    return distinct


def _scales(likelihood: Likelihood, fit: FitResult) -> np.ndarray:
    """σ per free parameter: HESSE where usable, else 10% of the finite bound width, else 1."""
    out = []
    for name in fit.free:
        sigma = fit.errors.get(name, math.nan)
        low, high = likelihood.parameters[name].bounds
        if not (math.isfinite(sigma) and sigma > 0):
            sigma = 0.1 * (high - low) if math.isfinite(high - low) else 1.0
        out.append(sigma)
    return np.array(out)


def _design(likelihood: Likelihood, first: FitResult, scale: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, k) starts: Sobol boxes x̂ ± sσ cycling over SPREAD_SIGMAS, and uniform over finite bounds."""
    from scipy.stats import qmc

    k = len(first.free)
    if n == 0:
        return np.empty((0, k))
    bounds = np.array([likelihood.parameters[name].bounds for name in first.free], dtype=float)
    center = np.array([first.values[name] for name in first.free])
    u = qmc.Sobol(k, scramble=True, seed=seed).random(max(2, 1 << (n - 1).bit_length()))[:n]
    finite = np.isfinite(bounds).all(axis=1)
    starts = np.empty((n, k))
    n_kinds = len(SPREAD_SIGMAS) + (1 if finite.any() else 0)
    for i in range(n):
        kind = i % n_kinds
        if kind < len(SPREAD_SIGMAS):
            starts[i] = center + SPREAD_SIGMAS[kind] * scale * (2.0 * u[i] - 1.0)
        else:
            wide = center + SPREAD_SIGMAS[-1] * scale * (2.0 * u[i] - 1.0)
            uniform = bounds[:, 0] + u[i] * np.where(finite, bounds[:, 1] - bounds[:, 0], 0.0)
            starts[i] = np.where(finite, uniform, wide)
    return np.clip(starts, bounds[:, 0], bounds[:, 1])


def _same(a: FitResult, b: FitResult, free, scale: np.ndarray, agree_tol: float, same_sigma: float) -> bool:
    """Same minimum: every coordinate within ``same_sigma`` σ, or −ln L within ``agree_tol`` and every
    coordinate within 1σ (a fit stopped short of a shallow minimum)."""
    dx = np.abs(np.array([a.values[n] - b.values[n] for n in free]) / scale)
    return bool(np.all(dx < same_sigma) or (abs(a.nll - b.nll) < agree_tol and np.all(dx < 1.0)))
