"""Confidence intervals from the profile likelihood.

- Wilks (1D intervals, 2D contours): −2ΔlnL is asymptotically χ² with as many degrees of freedom
  as scanned parameters; an interval at confidence ``cl`` is where −2ΔlnL < χ²_k⁻¹(cl).
- CLs upper limits on a signal strength μ with the asymptotic distribution of q̃_μ
  (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727, eqs. 16, 65–66; Read, J. Phys. G 28 (2002)
  2693): observed, and the expected band from the Asimov data set generated at μ = 0 with the
  nuisances profiled on the observed data.  With t the transformed statistic
  (t = √q̃ − √q̃_A for q̃ ≤ q̃_A, else (q̃ − q̃_A)/(2√q̃_A)):
  CL_{s+b} = Φ(−(t + √q̃_A)), CL_b = Φ(−t), CL_s = CL_{s+b}/CL_b; the expected CL_s at N σ
  (N > 0: weaker limit) is Φ(N − √q̃_A)/Φ(N).  These are the conventions of pyhf's
  ``AsymptoticCalculator`` with ``test_stat="qtilde"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from sbihep.errors import ConvergenceError, InvalidInputError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize
from sbihep.fit.cls import UpperLimit, cls_upper_limit  # noqa: E402,F401  (moved to sbihep.fit.cls)

__all__ = [
    "ONE_SIGMA",
    "TWO_SIGMA",
    "Interval",
    "UpperLimit",
    "wilks_threshold",
    "wilks_interval",
    "profile_interval",
    "wilks_contours",
    "cls_upper_limit",
]

#: Probability content of ±1σ and ±2σ of a Gaussian (the usual "68%" and "95%").
ONE_SIGMA = float(stats.chi2.cdf(1.0, 1))
TWO_SIGMA = float(stats.chi2.cdf(4.0, 1))


def wilks_threshold(cl: float, n_parameters: int = 1) -> float:
    """−2ΔlnL at the boundary of a ``cl`` region for ``n_parameters`` parameters: χ²_k⁻¹(cl)."""
    if not 0 < cl < 1:
        raise InvalidInputError(f"cl must lie in (0, 1), got {cl!r}")
    return float(stats.chi2.ppf(cl, n_parameters))


@dataclass(frozen=True)
class Interval:
    """A 1D confidence interval [low, high] around ``best``.

    ``low_closed``/``high_closed`` are False when −2ΔlnL did not reach the threshold before the
    parameter's bound (or the end of the scan): the interval then extends at least to that value.
    """

    parameter: str
    best: float
    low: float
    high: float
    cl: float
    low_closed: bool = True
    high_closed: bool = True
    method: str = "wilks"


def wilks_interval(scan, parameter: str | None = None, cl: float = ONE_SIGMA) -> Interval:
    """The Wilks interval read off a 1D profile scan (linear interpolation of −2ΔlnL).

    Args:
        scan: a Dataset from :func:`~sbihep.fit.scan.profile_scan` over one parameter.
        parameter: the scanned parameter (default: the scan's only dimension).
        cl: confidence level.
    """
    dims = list(scan["twice_delta_nll"].dims)
    if len(dims) != 1:
        raise InvalidInputError(f"wilks_interval: scan must be 1D, has dims {dims}")
    parameter = parameter or dims[0]
    if parameter != dims[0]:
        raise UnknownParameterError(f"wilks_interval: scan is over {dims[0]!r}, not {parameter!r}")
    x = np.asarray(scan[parameter], dtype=float)
    q = np.asarray(scan["twice_delta_nll"], dtype=float)
    ok = np.asarray(scan["converged"], dtype=bool)
    x, q = x[ok], q[ok]
    threshold = wilks_threshold(cl, 1)
    i_min = int(np.argmin(q))
    below = q < threshold
    # walk outwards from the minimum to the first crossing on each side
    lo_i = i_min
    while lo_i > 0 and below[lo_i - 1]:
        lo_i -= 1
    hi_i = i_min
    while hi_i < len(x) - 1 and below[hi_i + 1]:
        hi_i += 1
    low_closed, high_closed = lo_i > 0, hi_i < len(x) - 1
    low = _crossing(x[lo_i - 1], x[lo_i], q[lo_i - 1], q[lo_i], threshold) if low_closed else x[lo_i]
    high = _crossing(x[hi_i], x[hi_i + 1], q[hi_i], q[hi_i + 1], threshold) if high_closed else x[hi_i]
    best = float(scan["best_fit"].sel(parameter=parameter)) if "best_fit" in scan else float(x[i_min])
    return Interval(parameter, best, float(low), float(high), cl, low_closed, high_closed, "wilks-scan")


def _crossing(x0, x1, q0, q1, level):
    return x0 + (level - q0) * (x1 - x0) / (q1 - q0)


def profile_interval(
    likelihood: Likelihood,
    parameter: str,
    cl: float = ONE_SIGMA,
    *,
    best_fit: FitResult | None = None,
    fixed: Mapping[str, float] | None = None,
    xtol: float = 1e-7,
    **fit_kwargs,
) -> Interval:
    """The Wilks interval of one parameter by root finding on the profiled −2ΔlnL (exact to ``xtol``).

    Raises:
        UnknownParameterError: ``parameter`` not in the likelihood.
        ConvergenceError: a profile fit that does not converge.
    """
    if parameter not in likelihood.parameters:
        raise UnknownParameterError(f"profile_interval: unknown parameter {parameter!r}; known: {list(likelihood.names)}")
    if best_fit is None:
        best_fit = minimize(likelihood, fixed=fixed, **fit_kwargs)
    threshold = wilks_threshold(cl, 1)
    best = best_fit.values[parameter]
    low_b, high_b = likelihood.parameters[parameter].bounds
    sigma = best_fit.errors.get(parameter, math.nan)
    if not (math.isfinite(sigma) and sigma > 0):
        sigma = 0.1 * max(abs(best), 1.0)
    start = {k: v for k, v in best_fit.values.items() if k not in {**likelihood.fixed, **(fixed or {})}}

    def q(x: float) -> float:
        fit = minimize(likelihood, start={**start, parameter: x}, fixed={**(fixed or {}), parameter: x},
                       hesse=False, **fit_kwargs)
        return 2.0 * (fit.nll - best_fit.nll) - threshold

    ends, closed = [], []
    for direction, bound in ((-1.0, low_b), (1.0, high_b)):
        inner, step = best, sigma * math.sqrt(threshold)
        while True:
            outer = best + direction * step
            if (direction < 0 and outer <= bound) or (direction > 0 and outer >= bound):
                outer = bound
            if outer == best:
                ends.append(best)
                closed.append(False)
                break
            if q(outer) > 0:
                ends.append(optimize.brentq(q, min(inner, outer), max(inner, outer), xtol=xtol, rtol=1e-12))
                closed.append(True)
                break
            if outer == bound:
                ends.append(bound)
                closed.append(False)
                break
            inner, step = outer, 2.0 * step
    return Interval(parameter, best, float(ends[0]), float(ends[1]), cl, closed[0], closed[1], "wilks-profile")


def wilks_contours(scan, cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA)) -> dict[float, list[np.ndarray]]:
    """Wilks contours of a 2D profile scan: cl → list of (k, 2) arrays of points.

    The columns follow the scan's dimension order; the threshold is χ²₂⁻¹(cl) (2.30 for 68.27%,
    6.18 for 95.45%).  A contour touching the scan's edge is returned open.
    """
    import contourpy

    q = scan["twice_delta_nll"]
    if q.ndim != 2:
        raise InvalidInputError(f"wilks_contours: scan must be 2D, has dims {list(q.dims)}")
    dx, dy = q.dims
    x, y = np.asarray(scan[dx], dtype=float), np.asarray(scan[dy], dtype=float)
    z = np.where(np.asarray(scan["converged"], dtype=bool), np.asarray(q, dtype=float), np.nan)
    # contourpy takes z indexed [y, x]
    gen = contourpy.contour_generator(x, y, z.T, line_type=contourpy.LineType.Separate)
    return {cl: [np.asarray(line) for line in gen.lines(wilks_threshold(cl, 2))] for cl in cls}
