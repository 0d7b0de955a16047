"""Asymptotic CLs upper limits on a signal strength μ: observed and the expected band.

The statistic and its asymptotic law are those of :mod:`sbihep.fit.hypotest` (q̃_μ or q_μ, the
Asimov data set at μ = 0 with the nuisances profiled on the observed data; Cowan et al.,
arXiv:1007.1727; Read, J. Phys. G 28 (2002) 2693; pyhf's ``AsymptoticCalculator``).

Root finding with few fits.  Asymptotically √q_μ = (μ − μ̂)/σ with σ nearly constant in μ, so the
limits are found on the *width* σ(μ) = (μ − μ̂)/√q(μ) (for q̃ with μ̂ < 0:
√(((μ − μ̂)² − μ̂²)/q̃)), which each fit measures and which varies slowly:

1. one fit on the Asimov data at the median-expected seed μ̂_A + 1.96 σ₀ (σ₀ from the curvature of
   the Asimov −lnL along μ) gives σ_A there;
2. every limit is then solved for on interpolants of σ_A(μ) and σ_obs(μ) through the widths measured
   so far (Lagrange polynomials through the nearest ≤ 4 widths); the expected limit at N σ solves
   √q_A(μ) = N − Φ⁻¹(α Φ(N)) (all five share one σ_A(μ)), the observed CL_s(q_obs(μ), q_A(μ)) = α;
3. a limit is converged when the interpolants of one degree lower move it by less than ``rtol``
   (relative); otherwise a fit is made at the predicted limit, which adds a width there.

Typically 6–7 fits on the Asimov data and 2–4 on the observed data give every limit to ~1e-5
relative.  The conditional fits are warm-started from the nearest μ already fitted; with
``two_starts="auto"`` (the default) the free fit (and the far neighbour) is fitted from as well only
when a probe of −ln L along the segment towards it says it may lead lower, and a fitted neighbour is
refitted when a new fit's solution is lower there (``True``: always two starts; see
:mod:`sbihep.fit.hypotest`).  No fit is made for the Asimov data's free fit (the generating point,
checked to be stationary) nor for the conditional fit at μ = μ̂ (μ̂ = 0 on the bound: the free fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import optimize, stats

from sbihep.errors import ConvergenceError, InvalidInputError
from sbihep.fit.hypotest import (
    BAND,
    ProfiledData,
    _asymptotic_pvalues,
    asimov_data,
    check_two_starts,
    _check_poi,
    _check_test_stat,
    _progress_default,
)
from sbihep.fit.likelihood import Likelihood

__all__ = ["UpperLimit", "cls_upper_limit"]


@dataclass(frozen=True)
class UpperLimit:
    """A CLs upper limit on a POI.

    Attributes:
        poi: the parameter.
        observed: the observed limit (NaN when not asked for).
        expected: N → expected limit for N in (−2, −1, 0, 1, 2) (N σ fluctuations; N > 0 weaker).
        cl: confidence level (1 − α).
        best_fit: μ̂ on the observed data.
        n_fits: fits made (free and conditional, observed and Asimov data).
        n_two_start_disagreements: conditional fits whose starts found different minima (the
            lower one used), neighbour refits that found a lower minimum included.
        rtol: the relative tolerance the limits were converged to.
        n_probed_starts: extra starts fitted because a probe asked for them (``two_starts="auto"``).
        n_neighbour_refits: fitted μ refitted from a neighbour's solution that was lower there.
        asimov_exact: the Asimov data's free fit is the generating point itself (checked, no fit).
        fits: ``{"observed": {μ: FitResult}, "asimov": {μ: FitResult}}``, the conditional fits the
            limits were read from (the Asimov data generated at the observed fit at μ = 0).
    """

    poi: str
    observed: float
    expected: dict[int, float] = field(default_factory=dict)
    cl: float = 0.95
    best_fit: float = math.nan
    n_fits: int = 0
    n_two_start_disagreements: int = 0
    rtol: float = math.nan
    n_probed_starts: int = 0
    n_neighbour_refits: int = 0
    asimov_exact: bool = False
    fits: dict = field(default_factory=dict, compare=False, repr=False)


def _cls_observed(q: float, q_a: float) -> float:
    """Observed CL_s for q̃ from q̃ and q̃_A (kept for callers of the former intervals module)."""
    if q_a <= 0.0:
        return 1.0
    return _asymptotic_pvalues(q, q_a, "qtilde")[2]


def _cls_expected(q_a: float, n_sigma: float) -> float:
    return float(stats.norm.cdf(n_sigma - math.sqrt(max(q_a, 0.0))) / stats.norm.cdf(n_sigma))


class _Width:
    """σ(μ) = (μ − μ̂)/√q(μ) measured at fitted μ, interpolated by Lagrange polynomials."""

    def __init__(self, profile: ProfiledData, test_stat: str) -> None:
        self.profile, self.test_stat = profile, test_stat
        self.mu_hat = max(profile.mu_hat, 0.0) if test_stat == "qtilde" else profile.mu_hat
        # q̃ with μ̂ < 0 (a POI bound below 0): q̃ = ((μ − μ̂)² − μ̂²)/σ²
        self.offset = profile.mu_hat ** 2 if (test_stat == "qtilde" and profile.mu_hat < 0) else 0.0
        self.centre = profile.mu_hat
        self.measured: list[float] = []

    def measure(self, mu: float) -> None:
        self.profile.conditional(mu)
        self.measured.append(mu)

    @property
    def knots(self) -> dict[float, float]:
        """μ → σ(μ) at the measured μ, from the profile's current fits (a fit at μ can be replaced
        by a lower one found later from a neighbour's solution)."""
        out = {}
        for mu in self.measured:
            q = self.profile.q(mu, self.test_stat)
            num = (mu - self.centre) ** 2 - self.offset
            if q > 0 and num > 0:
                out[mu] = math.sqrt(num / q)
        return out

    def sigma(self, mu: float, degree_drop: int = 0) -> float:
        knots = self.knots
        if not knots:
            return math.nan
        xs = np.array(sorted(knots, key=lambda m: abs(m - mu)))
        m = min(4, len(xs)) - degree_drop
        if m < 1:
            return math.nan
        if not (xs.min() <= mu <= xs.max()):
            m = min(m, 2)  # extrapolate at most linearly
        xs = xs[:m]
        ys = np.array([knots[x] for x in xs])
        total = 0.0
        for i in range(m):
            w = 1.0
            for j in range(m):
                if j != i:
                    w *= (mu - xs[j]) / (xs[i] - xs[j])
            total += w * ys[i]
        return float(total)

    def q_model(self, mu: float, degree_drop: int = 0) -> float:
        if mu <= self.profile.mu_hat:
            return 0.0
        s = self.sigma(mu, degree_drop)
        if not (math.isfinite(s) and s > 0):
            return math.nan
        return max(((mu - self.centre) ** 2 - self.offset) / s**2, 0.0)


def _solve(f: Callable[[float], float], guess: float, lo: float, hi: float, increasing: bool) -> float:
    """The root of a monotone f within [lo, hi], bracketing outwards from ``guess``.

    Returns ``math.inf`` when f has not changed sign at ``hi``, ``lo`` when it already has at ``lo``,
    NaN when f is not finite on the way.
    """
    sign = 1.0 if increasing else -1.0
    g = lambda mu: sign * f(mu)  # noqa: E731  (increasing)
    x = min(max(guess, lo), hi)
    gx = g(x)
    if not math.isfinite(gx):
        return math.nan
    if gx == 0.0:
        return x
    step = max(abs(x) * 0.05, (hi - lo) * 1e-9, 1e-12)
    a = b = x
    ga = gb = gx
    for _ in range(400):
        if gx < 0:  # the root lies above
            if ga < 0 < gb:
                break
            if b >= hi:
                return math.inf
            a, ga = b, gb
            b = min(b + step, hi)
            gb = g(b)
        else:
            if ga < 0 < gb:
                break
            if a <= lo:
                return lo
            b, gb = a, ga
            a = max(a - step, lo)
            ga = g(a)
        if not (math.isfinite(ga) and math.isfinite(gb)):
            return math.nan
        if ga == 0.0:
            return a
        if gb == 0.0:
            return b
        step *= 2.0
    else:
        return math.nan
    return float(optimize.brentq(g, a, b, xtol=1e-15 * max(1.0, abs(x)), rtol=1e-14))


def cls_upper_limit(
    likelihood: Likelihood,
    poi: str | None = None,
    *,
    cl: float = 0.95,
    expected: bool = True,
    observed: bool = True,
    rtol: float = 1e-4,
    test_stat: str = "qtilde",
    two_starts: bool | str = "auto",
    agree_tol: float = 1e-3,
    max_fits: int = 60,
    progress: bool | None = None,
    **fit_kwargs: Any,
) -> UpperLimit:
    """Asymptotic CLs upper limit on a signal strength (observed and, optionally, the expected band).

    Args:
        likelihood: the likelihood; every term must support ``asimov``.
        poi: the signal strength (default: the only POI of the likelihood).  Its lower bound should
            be 0 for q̃ (μ̂ is restricted to it, as pyhf does).
        cl: confidence level 1 − α of the limit.
        expected: also compute the expected limits at −2…+2 σ.
        observed: compute the observed limit (False: the expected band only, no fits on the data
            beyond the free and μ = 0 ones).
        rtol: relative accuracy of every limit (the change the next lower-degree interpolant of the
            widths makes; see the module docstring).
        test_stat: ``"qtilde"`` or ``"q"``.
        two_starts: ``"auto"`` (default): start each conditional fit from the nearest fitted μ and
            fit from the free fit (or the far neighbour) only when a probe of −ln L along the
            segment towards it says that start may lead lower, and refit a neighbour when this
            fit's solution is lower there (see :mod:`sbihep.fit.hypotest`); ``True``: always also
            from the free fit, the lower minimum kept (about twice the fits); ``False``: the
            nearest only.
        agree_tol: two starts disagree when their −lnL differ by more than this.
        max_fits: give up (ConvergenceError) after this many fits.
        progress: a tqdm bar over the fits (default: on when stderr is a terminal).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (e.g. ``tolerance``, ``fixed``).

    Returns:
        :class:`UpperLimit`.

    Raises:
        InvalidInputError: no single POI, ``cl`` outside (0, 1), a bad ``rtol`` or ``test_stat``.
        ConvergenceError: a fit fails, CLs does not fall below α within the POI's bounds, or the
            limits are not converged after ``max_fits`` fits.
    """
    if not 0 < cl < 1:
        raise InvalidInputError(f"cls_upper_limit: cl must lie in (0, 1), got {cl!r}")
    if not (0 < rtol < 0.1):
        raise InvalidInputError(f"cls_upper_limit: rtol must lie in (0, 0.1), got {rtol!r}")
    if not (expected or observed):
        raise InvalidInputError("cls_upper_limit: nothing to compute (observed=False and expected=False)")
    poi = _check_poi(likelihood, poi, "cls_upper_limit")
    two_starts = check_two_starts(two_starts, "cls_upper_limit")
    test_stat = _check_test_stat(test_stat, "cls_upper_limit")
    alpha = 1.0 - cl
    low_b, high_b = likelihood.parameters[poi].bounds
    bar = None
    if _progress_default(progress):
        from sbihep._progress import tqdm

        bar = tqdm(desc="CLs limit", unit="fit")
    tick = (lambda: bar.update(1)) if bar is not None else None
    try:
        data = ProfiledData(likelihood, poi, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol, on_fit=tick)
        asimov = asimov_data(data, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol, on_fit=tick)
        w_obs, w_a = _Width(data, test_stat), _Width(asimov, test_stat)
        lo = max(low_b, 0.0)
        sigma0 = _curvature_width(asimov, poi, high_b)
        targets = {n: n - stats.norm.ppf(alpha * stats.norm.cdf(n)) for n in (BAND if expected else ())}

        def clip(mu: float) -> float:
            return min(max(mu, lo + 1e-9 * max(sigma0, 1e-9)), high_b)

        # 1. a first width on the Asimov data at the median seed
        first = clip(w_a.mu_hat + stats.norm.ppf(1 - alpha / 2) * sigma0)
        w_a.measure(first)
        if not w_a.knots:
            raise ConvergenceError(f"cls_upper_limit: q_A = 0 at {poi} = {first:g}: the likelihood has no sensitivity to {poi}")

        def expected_root(n: float, drop: int) -> float:
            return _solve(lambda mu: math.sqrt(max(w_a.q_model(mu, drop), 0.0)) - targets[n] if math.isfinite(w_a.q_model(mu, drop)) else math.nan,
                          w_a.mu_hat + targets[n] * w_a.sigma(first), lo, high_b, True)

        def observed_root(drop_obs: int, drop_a: int) -> float:
            def f(mu):
                q, q_a = w_obs.q_model(mu, drop_obs) if w_obs.knots else ((mu - w_obs.centre) ** 2 / w_a.sigma(mu) ** 2 if mu > w_obs.mu_hat else 0.0), w_a.q_model(mu, drop_a)
                if not (math.isfinite(q) and math.isfinite(q_a)) or q_a <= 0:
                    return math.nan
                return _asymptotic_pvalues(q, q_a, test_stat)[2] - alpha
            guess = w_obs.mu_hat + stats.norm.ppf(1 - alpha / 2) * w_a.sigma(first)
            return _solve(f, guess, lo, high_b, False)

        limits: dict = {}
        while True:
            to_fit_a, to_fit_obs = set(), set()
            for n in targets:
                root = expected_root(n, 0)
                _check_root(root, poi, high_b, f"expected ({n:+d}σ)")
                limits[n] = root
                coarse = expected_root(n, 1) if len(w_a.knots) >= 2 else math.nan
                if not (abs(coarse - root) <= rtol * abs(root)):
                    to_fit_a.add(root)
            if observed:
                root = observed_root(0, 0)
                _check_root(root, poi, high_b, "observed")
                limits["obs"] = root
                coarse_obs = observed_root(1, 0) if len(w_obs.knots) >= 2 else math.nan
                coarse_a = observed_root(0, 1) if len(w_a.knots) >= 2 else math.nan
                if not (abs(coarse_obs - root) <= rtol * abs(root)):
                    to_fit_obs.add(root)
                if not (abs(coarse_a - root) <= rtol * abs(root)):
                    to_fit_a.add(root)
            if bar is not None:
                bar.set_postfix_str(", ".join(f"{k}: {v:.5g}" for k, v in limits.items()))
            if not to_fit_a and not to_fit_obs:
                break
            if data.n_fits + asimov.n_fits >= max_fits:
                raise ConvergenceError(f"cls_upper_limit: limits not converged to rtol={rtol} after {max_fits} fits: {limits}")
            new_a = _new_points(map(clip, sorted(to_fit_a)), w_a.measured, rtol)
            new_obs = _new_points(map(clip, sorted(to_fit_obs)), w_obs.measured, rtol)
            if not new_a and not new_obs:
                break  # every predicted limit sits on a measured width: the interpolant is exact there
            for mu in new_a:
                w_a.measure(mu)
            for mu in new_obs:
                w_obs.measure(mu)
    finally:
        if bar is not None:
            bar.close()
    return UpperLimit(poi, float(limits.get("obs", math.nan)), {n: float(limits[n]) for n in targets}, cl, data.mu_hat,
                      data.n_fits + asimov.n_fits, data.n_disagreements + asimov.n_disagreements, rtol,
                      data.n_probed_starts + asimov.n_probed_starts, data.n_neighbour_refits + asimov.n_neighbour_refits,
                      bool(getattr(asimov, "asimov_exact", False)), {"observed": data.fitted, "asimov": asimov.fitted})


def _new_points(candidates, knots, rtol: float) -> list[float]:
    """Candidates not within 0.1·rtol (relative) of a measured μ or of each other."""
    out: list[float] = []
    for mu in candidates:
        near = [*knots, *out]
        if all(abs(mu - k) > 0.1 * rtol * max(abs(mu), 1e-12) for k in near):
            out.append(mu)
    return out


def _check_root(root: float, poi: str, high: float, what: str) -> None:
    if root == math.inf:
        raise ConvergenceError(f"cls_upper_limit: the {what} CLs stays above α up to the bound {poi} = {high}")
    if not math.isfinite(root):
        raise ConvergenceError(f"cls_upper_limit: the {what} limit could not be solved for (widths {what})")


def _curvature_width(asimov: ProfiledData, poi: str, high: float) -> float:
    """1/√(∂²(−lnL)/∂μ²) of the Asimov data at its best fit, the nuisances held (a lower bound on σ)."""
    values = dict(asimov.free.values)
    mu0 = values[poi]
    lik = asimov.likelihood
    h = 1e-3 * max(1.0, abs(mu0))
    for _ in range(30):
        hi = min(mu0 + 2 * h, high)
        f0 = lik.nll(values)
        f1 = lik.nll({**values, poi: min(mu0 + h, high)})
        f2 = lik.nll({**values, poi: hi})
        curv = (f2 - 2 * f1 + f0) / h**2
        if curv > 0 and math.isfinite(curv):
            sigma = 1.0 / math.sqrt(curv)
            if sigma < 50 * h:  # step small against the width: done
                return sigma
            h = sigma / 100.0 if sigma / 100.0 > h else h * 10
        else:
            h *= 10
        if mu0 + 2 * h > high:
            break
    return max(0.1 * (high - max(mu0, 0.0)), 1e-6)
