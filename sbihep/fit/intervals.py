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
from typing import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from sbihep.errors import ConvergenceError, GridResolutionWarning, InvalidInputError, UnknownParameterError
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


# --- Wilks sets: every basin, crossings by root finding on the profile (issue 18, item 1) ---------
#
# A Wilks set {x : q(x) < t}, q the profiled −2ΔlnL and t = χ²₁⁻¹(cl), is found from its basins
# (local minima of the profile with q < t): between two neighbouring basins the maximum of q
# (bounded Brent) decides whether they join or leave a gap whose two ends are found by Brent's root
# finding; outside the outermost basins the search steps outwards (steps of σ√t, doubling) until q
# rises above t (then a root is bracketed) or the bound is reached.  A step on which q *falls* while
# moving away from every known minimum reveals another basin, which is polished and added.  Every
# conditional fit starts from its nearest evaluated neighbour, the nearest basin and the global fit,
# and keeps the lowest; a conditional fit below the global minimum restarts the construction with it.

import json
import warnings

from sbihep.fit.confidence_set import END_KINDS, ConfidenceSet, Interval  # noqa: E402
from sbihep.fit.scan import conditional_fit  # noqa: E402

__all__ += ["ConfidenceSet", "END_KINDS", "GridResolutionWarning"]

#: Default MINUIT tolerance of the conditional fits behind root-found ends (EDM < 1e-7: the ends are
#: then exact to ~1e-7 σ, far below the 1e-3 σ the interval functions promise).
FIT_TOLERANCE = 1e-4

#: Ends found from a grid alone must be resolved to this fraction of σ, or the function refuses.
GRID_RESOLUTION_SIGMA = 1e-3


class _Restart(Exception):
    """A conditional fit went below the global minimum: start again with it as a basin."""

    def __init__(self, values):
        self.values = values


class _Profile:
    """q(x) = 2 (min over the other free parameters of −ln L at ``parameter`` = x − nll_min), cached."""

    def __init__(self, likelihood, parameter, fixed, nll_min, anchors, fit_kwargs):
        self.likelihood, self.parameter, self.fixed = likelihood, parameter, dict(fixed or {})
        self.nll_min, self.anchors, self.fit_kwargs = nll_min, anchors, fit_kwargs
        self.cache: dict[float, tuple[float, dict, bool]] = {}
        self.n_second_start_won = 0

    def fit(self, x: float) -> tuple[float, dict, bool]:
        x = float(x)
        if x not in self.cache:
            starts = []
            if self.cache:
                near = min(self.cache, key=lambda c: abs(c - x))
                starts.append(self.cache[near][1])
            starts.append(min(self.anchors, key=lambda a: abs(a[self.parameter] - x)))
            starts.append(self.anchors[0])
            fit, winner = conditional_fit(self.likelihood, {self.parameter: x}, starts, fixed=self.fixed,
                                          **self.fit_kwargs)
            self.n_second_start_won += int(winner > 0 and len(self.cache) > 0)
            if not fit.converged:
                raise ConvergenceError(f"profile fit at {self.parameter} = {x:.8g} did not converge: {fit.message}")
            self.cache[x] = (fit.nll, fit.values, True)
            if 2.0 * (fit.nll - self.nll_min) < -1e-6:
                raise _Restart(fit.values)
        return self.cache[x]

    def __call__(self, x: float) -> float:
        return 2.0 * (self.fit(x)[0] - self.nll_min)


def _sigma_of(fit: FitResult, parameter: str, bounds) -> float:
    sigma = fit.errors.get(parameter, math.nan)
    if math.isfinite(sigma) and sigma > 0:
        return float(sigma)
    low, high = bounds
    return 0.1 * (high - low) if math.isfinite(high - low) else 0.1 * max(abs(fit.values[parameter]), 1.0)


def _polish(likelihood, values, fixed, fit_kwargs) -> FitResult | None:
    """A local minimum (with HESSE) from ``values``; None when the fit fails."""
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    start = {k: v for k, v in values.items() if k not in all_fixed}
    fit = minimize(likelihood, start=start, fixed=fixed, hesse=True, on_failure="flag", **fit_kwargs)
    if not fit.converged:  # HESSE may fail on a bound; the minimum itself can still be fine
        fit = minimize(likelihood, start=start, fixed=fixed, hesse=False, on_failure="flag", **fit_kwargs)
    return fit if fit.converged else None


def _wilks_set(likelihood, parameter, cl, minima, *, fixed, fit_kwargs, method, xtol=None,
               max_steps=64, max_restarts=8) -> ConfidenceSet:
    """The Wilks set of ``parameter`` from known local minima (FitResults), by root finding."""
    fit_kwargs = {"tolerance": FIT_TOLERANCE, **fit_kwargs}
    threshold = wilks_threshold(cl, 1)
    bounds = likelihood.parameters[parameter].bounds
    minima = [m for m in minima if m is not None]
    if not minima:
        raise ConvergenceError(f"{method}: no converged fit to start from")
    detect_falls = True
    for _ in range(max_restarts):
        minima.sort(key=lambda m: m.nll)
        nll_min = minima[0].nll
        anchors = [m.values for m in minima]
        prof = _Profile(likelihood, parameter, fixed, nll_min, anchors, fit_kwargs)
        try:
            pieces, seeds = _pieces(prof, parameter, cl, minima, threshold, bounds, xtol, max_steps, method,
                                    detect_falls)
        except _Restart as restart:
            x_new = restart.values[parameter]
            found = _polish(likelihood, restart.values, fixed, fit_kwargs)
            below = prof.cache[x_new][0] < nll_min - 5e-7
            if found is not None and any(abs(found.values[parameter] - m.values[parameter])
                                         <= 1e-3 * _sigma_of(m, parameter, bounds) for m in minima):
                if not below:  # a fall that leads back to a known minimum: a plateau, not a basin
                    detect_falls = False
                    continue
                found = None
            if found is None or found.nll >= prof.cache[x_new][0]:
                found = FitResult(values=dict(restart.values), errors={}, covariance=None, free=(),
                                  nll=prof.cache[x_new][0], converged=True, message="", edm=0.0, n_calls=0,
                                  n_starts=1, n_agree=1, method="profile point")
            minima.append(found)
            continue
        best = minima[0].values[parameter]
        info = {"n_profile_fits": len(prof.cache), "n_second_start_won": prof.n_second_start_won,
                "threshold": threshold}
        return ConfidenceSet(parameter, float(best), tuple(pieces), cl, method, tuple(seeds), info)
    raise ConvergenceError(f"{method}: the global minimum kept moving after {max_restarts} restarts")


def _pieces(prof, parameter, cl, minima, threshold, bounds, xtol, max_steps, method, detect_falls=True):
    low_b, high_b = bounds
    # basins inside the set, by position; the same basin found twice is kept once
    seeds: list[tuple[float, float]] = []  # (x, σ)
    for m in minima:
        if 2.0 * (m.nll - prof.nll_min) >= threshold:
            continue
        x, s = float(m.values[parameter]), _sigma_of(m, parameter, bounds)
        if not any(abs(x - y) <= 1e-3 * min(s, t) for y, t in seeds):
            seeds.append((x, s))
    seeds.sort()
    sigma_min = min(s for _, s in seeds)
    tol = xtol if xtol is not None else 1e-6 * sigma_min
    f = lambda x: prof(x) - threshold  # noqa: E731

    def root(a, b):
        return float(optimize.brentq(f, a, b, xtol=tol, rtol=4 * np.finfo(float).eps))

    def walk(x0, s, direction, bound):
        """Outwards from a basin: (end, kind)."""
        inner, q_inner, step = x0, prof(x0), s * math.sqrt(threshold)
        for _ in range(max_steps):
            outer = x0 + direction * step
            if (direction < 0 and outer <= bound) or (direction > 0 and outer >= bound):
                outer = bound
            if outer == inner:
                return bound, "bound"
            q_outer = prof(outer)
            if q_outer > threshold:
                a, b = sorted((inner, outer))
                return root(a, b), "closed"
            if detect_falls and q_outer < q_inner - 1e-5:  # falling away from the basin: another one lies out there
                raise _Restart(prof.fit(outer)[1])
            if outer == bound:
                return bound, "bound"
            inner, q_inner, step = outer, q_outer, 2.0 * step
        return inner, "open"

    ends = []  # (low, low_kind, high, high_kind) per piece
    lo, lo_kind = walk(seeds[0][0], seeds[0][1], -1.0, low_b)
    for (a, sa), (b, sb) in zip(seeds[:-1], seeds[1:]):
        res = optimize.minimize_scalar(lambda x: -prof(x), bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-4 * min(sa, sb)})
        x_max = float(res.x)
        if prof(x_max) >= threshold:
            ends.append((lo, lo_kind, root(a, x_max), "closed"))
            lo, lo_kind = root(x_max, b), "closed"
    hi, hi_kind = walk(seeds[-1][0], seeds[-1][1], 1.0, high_b)
    ends.append((lo, lo_kind, hi, hi_kind))
    best = float(minima[0].values[parameter])
    pieces = [Interval(parameter, best, float(l), float(h), cl, method=method, low_end=lk, high_end=hk)
              for l, lk, h, hk in ends]
    return pieces, [x for x, _ in seeds]


def wilks_interval(
    scan,
    parameter: str | None = None,
    cl: float = ONE_SIGMA,
    *,
    likelihood: Likelihood | None = None,
    resolution: float = GRID_RESOLUTION_SIGMA,
    find_basins: bool = True,
    **fit_kwargs,
) -> ConfidenceSet:
    """The Wilks confidence set of a 1D profile scan.

    With ``likelihood`` (recommended) the scan only seeds the search: the global best fit and every
    local minimum of the scan below the threshold are polished into basins (with ``find_basins``,
    also those :func:`~sbihep.fit.basins.find_minima` finds: a coarse grid can step over a
    basin), and the ends are found by root finding on the profile (see :func:`profile_interval`); the result does not depend on the
    grid's spacing.

    Without it the set is read off the grid, with the best fit inserted (q = 0 there, so the
    interpolation never runs across the minimum): each end is the root of the cubic through the
    four points around its crossing, and the difference to the quadratics through three of them is
    its error estimate.  When that estimate exceeds ``resolution`` · σ (σ from the local slope:
    2√t / |q'|), or fewer than four points are available, the function refuses.  A basin that falls
    entirely between two grid points cannot be seen from the grid: pass the likelihood.

    Args:
        scan: a Dataset from :func:`~sbihep.fit.scan.profile_scan` over one parameter (any order of
            the grid; points whose fit did not converge are ignored).
        parameter: the scanned parameter (default: the scan's only dimension).
        cl: confidence level.
        likelihood: the scan's likelihood, to find the ends by root finding.
        resolution: required accuracy of grid-read ends, in units of σ.
        find_basins: with ``likelihood``, also look for basins the scan did not sample.
        **fit_kwargs: passed to the conditional fits (default ``tolerance`` :data:`FIT_TOLERANCE`).

    Returns:
        a :class:`~sbihep.fit.confidence_set.ConfidenceSet` (method ``"wilks-scan"`` from the grid,
        ``"wilks-profile"`` with the likelihood); ends reaching the edge of the grid are ``"open"``
        (``"bound"`` when the edge is the parameter's bound).

    Raises:
        InvalidInputError: not a 1D scan; or (without ``likelihood``) a grid that cannot resolve an
            end to ``resolution`` σ — the message says so and how to do better.
        UnknownParameterError: ``parameter`` is not the scanned one.
    """
    dims = list(scan["twice_delta_nll"].dims)
    if len(dims) != 1:
        raise InvalidInputError(f"wilks_interval: scan must be 1D, has dims {dims}")
    parameter = parameter or dims[0]
    if parameter != dims[0]:
        raise UnknownParameterError(f"wilks_interval: scan is over {dims[0]!r}, not {parameter!r}")
    threshold = wilks_threshold(cl, 1)
    x = np.asarray(scan[parameter], dtype=float)
    q = np.asarray(scan["twice_delta_nll"], dtype=float)
    ok = np.asarray(scan["converged"], dtype=bool) & np.isfinite(q)
    has_best = "best_fit" in scan
    x_hat = float(scan["best_fit"].sel(parameter=parameter)) if has_best else math.nan
    if likelihood is not None:
        if parameter not in likelihood.parameters:
            raise UnknownParameterError(f"wilks_interval: the likelihood has no parameter {parameter!r}")
        fixed = json.loads(scan.attrs.get("fixed_json", "{}"))
        kwargs = {"tolerance": FIT_TOLERANCE, **fit_kwargs}
        starts = []
        if has_best:
            starts.append(dict(zip(scan["parameter"].values.tolist(), scan["best_fit"].values.tolist())))
        order = np.argsort(x)
        xs, qs = x[order], np.where(ok[order], q[order], np.inf)
        for i in range(len(xs)):
            left = qs[i - 1] if i > 0 else np.inf
            right = qs[i + 1] if i < len(xs) - 1 else np.inf
            if qs[i] < threshold and qs[i] <= left and qs[i] <= right:
                prof = scan["profiled"].isel({parameter: int(order[i])})
                starts.append(dict(zip(scan["parameter"].values.tolist(), prof.values.tolist())))
        if not starts:
            starts.append(likelihood.start_point())
        minima = [_polish(likelihood, s, fixed, kwargs) for s in starts]
        if find_basins:
            from sbihep.fit.basins import find_minima

            all_fixed = {**likelihood.fixed, **fixed}
            first = {k: v for k, v in starts[0].items() if k not in all_fixed}
            minima += find_minima(likelihood, fixed=fixed, start=first, **kwargs)
        return _wilks_set(likelihood, parameter, cl, minima, fixed=fixed, fit_kwargs=fit_kwargs,
                          method="wilks-profile")
    return _grid_set(scan, parameter, cl, x[ok], q[ok], x_hat, threshold, resolution)


def _grid_set(scan, parameter, cl, x, q, x_hat, threshold, resolution) -> ConfidenceSet:
    """The set read off a grid (see :func:`wilks_interval`), or a refusal."""
    advice = "pass likelihood= (root finding on the profile), use profile_interval, or scan a finer grid"
    q_hat = None
    if math.isfinite(x_hat):
        if "best_fit_nll" in scan.attrs:
            q_hat = 2.0 * (float(scan.attrs["best_fit_nll"]) - float(scan.attrs["nll_min"]))
        elif not scan.attrs.get("improved_minimum", 1):
            q_hat = 0.0
    if q_hat is not None and not np.any(np.isclose(x, x_hat, rtol=0, atol=1e-12 * max(1.0, abs(x_hat)))):
        x, q = np.append(x, x_hat), np.append(q, q_hat)
    x, idx = np.unique(x, return_index=True)
    q = q[idx]
    if x.size < 4:
        raise InvalidInputError(f"wilks_interval: scan over {parameter!r} has {x.size} usable points (best fit "
                                f"included); at least 4 are needed to read an interval off a grid; {advice}")
    coord = scan[parameter]
    low_b, high_b = coord.attrs.get("parameter_bounds", (-math.inf, math.inf))
    below = q < threshold
    if not below.any():
        raise InvalidInputError(f"wilks_interval: no point of the scan over {parameter!r} lies below the "
                                f"threshold {threshold:.4g}; {advice}")
    worst = 0.0
    pieces = []
    i = 0
    best = x_hat if math.isfinite(x_hat) else float(x[np.argmin(q)])
    while i < x.size:
        if not below[i]:
            i += 1
            continue
        j = i
        while j + 1 < x.size and below[j + 1]:
            j += 1
        if i == 0:
            low, low_kind = float(x[0]), ("bound" if x[0] <= low_b else "open")
        else:
            low, err = _grid_crossing(x, q, i - 1, threshold)
            low_kind, worst = "closed", max(worst, err)
        if j == x.size - 1:
            high, high_kind = float(x[-1]), ("bound" if x[-1] >= high_b else "open")
        else:
            high, err = _grid_crossing(x, q, j, threshold)
            high_kind, worst = "closed", max(worst, err)
        if worst > resolution:
            raise InvalidInputError(
                f"wilks_interval: the grid over {parameter!r} cannot resolve the {100 * cl:.4g}% set: an end near "
                f"{low if low_kind == 'closed' else high:.6g} has an interpolation error estimate of {worst:.2g} σ "
                f"(> {resolution:g} σ); {advice}")
        pieces.append(Interval(parameter, best, low, high, cl, method="wilks-scan", low_end=low_kind,
                               high_end=high_kind))
        i = j + 1
    minima = [float(x[k]) for k in range(x.size) if below[k] and (k == 0 or q[k] <= q[k - 1])
              and (k == x.size - 1 or q[k] <= q[k + 1])]
    return ConfidenceSet(parameter, float(best), tuple(pieces), cl, "wilks-scan", tuple(minima),
                         {"grid_error_sigma": float(worst), "threshold": threshold})


def _grid_crossing(x, q, k, level) -> tuple[float, float]:
    """Root of q = level in [x_k, x_k+1] from the cubic through the 4 nearest points; (root, error in σ).

    The error estimate is the largest distance to the roots of the quadratics through 3 of those
    points, in units of σ = 2√level / |q'| (exact for a parabola)."""
    n = x.size
    lo4 = min(max(k - 1, 0), n - 4)
    w4 = np.arange(lo4, lo4 + 4)
    a, b = x[k], x[k + 1]
    center, scale = 0.5 * (a + b), 0.5 * (b - a)
    t = (x - center) / scale

    def solve(window):
        coef = np.polyfit(t[window], q[window] - level, len(window) - 1)
        g = lambda u: np.polyval(coef, u)  # noqa: E731
        ga, gb = g(-1.0), g(1.0)
        if ga == 0.0:
            return -1.0, coef
        if gb == 0.0 or ga * gb > 0:
            return (1.0 if gb == 0.0 else math.nan), coef
        return float(optimize.brentq(g, -1.0, 1.0, xtol=1e-14)), coef

    u3, coef3 = solve(w4)
    slope = abs(np.polyval(np.polyder(coef3), u3)) / scale if math.isfinite(u3) else 0.0
    sigma = 2.0 * math.sqrt(level) / slope if slope > 0 else math.inf
    errs = []
    for lo3 in (k - 1, k):
        if 0 <= lo3 and lo3 + 3 <= n:
            u2, _ = solve(np.arange(lo3, lo3 + 3))
            errs.append(abs(u2 - u3) * scale if math.isfinite(u2) else math.inf)
    if not math.isfinite(u3) or not math.isfinite(sigma):
        return float(center), math.inf
    return float(center + u3 * scale), max(errs) / sigma if errs else math.inf


def profile_interval(
    likelihood: Likelihood,
    parameter: str,
    cl: float = ONE_SIGMA,
    *,
    best_fit: FitResult | None = None,
    fixed: Mapping[str, float] | None = None,
    xtol: float | None = None,
    find_basins: bool = True,
    n_starts: int | None = None,
    seed: int = 0,
    **fit_kwargs,
) -> ConfidenceSet:
    """The Wilks confidence set of one parameter by root finding on the profiled −2ΔlnL.

    Every basin is looked for first (:func:`~sbihep.fit.basins.find_minima` with ``n_starts`` and
    ``seed``; ``best_fit`` is added to what it finds); the set is the union of the pieces around the
    basins below the threshold, each end root-found to ``xtol`` (default 10⁻⁶ σ).  Ends on a bound
    are ``"bound"``; ends the outward search did not reach are ``"open"``.

    Args:
        likelihood: the likelihood.
        parameter: the parameter of the interval (the others free are profiled).
        cl: confidence level.
        best_fit: a global fit already made (its minimum is one of the basins).
        fixed: parameters held fixed (besides ``likelihood.fixed``).
        xtol: absolute tolerance of the ends.
        find_basins: look for other basins (False: only the basin of ``best_fit`` / a fresh fit,
            plus any basin the outward search stumbles on).  The search costs
            :func:`~sbihep.fit.basins.default_n_starts` extra fits (8 + 4 per free parameter, at most 40).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (default ``tolerance``
            :data:`FIT_TOLERANCE`).

    Returns:
        a :class:`~sbihep.fit.confidence_set.ConfidenceSet` (method ``"wilks-profile"``); with one
        piece it reads like the old single Interval (``.low``, ``.high``, ...).

    Raises:
        UnknownParameterError: ``parameter`` not in the likelihood.
        ConvergenceError: a profile fit that does not converge.
    """
    if parameter not in likelihood.parameters:
        raise UnknownParameterError(f"profile_interval: unknown parameter {parameter!r}; known: {list(likelihood.names)}")
    if parameter in {**likelihood.fixed, **(fixed or {})}:
        raise InvalidInputError(f"profile_interval: parameter {parameter!r} is fixed")
    kwargs = {"tolerance": FIT_TOLERANCE, **fit_kwargs}
    minima: list = []
    if find_basins:
        from sbihep.fit.basins import find_minima

        start = None if best_fit is None else {k: v for k, v in best_fit.values.items()
                                               if k not in {**likelihood.fixed, **(fixed or {})}}
        minima = find_minima(likelihood, fixed=fixed, start=start, n_starts=n_starts, seed=seed, **kwargs)
    if best_fit is not None:
        minima.append(best_fit)
    if not minima:
        minima.append(minimize(likelihood, fixed=fixed, **kwargs))
    return _wilks_set(likelihood, parameter, cl, minima, fixed=fixed, fit_kwargs=fit_kwargs, xtol=xtol,
                      method="wilks-profile")


def wilks_contours(
    scan,
    cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA),
    *,
    likelihood: Likelihood | None = None,
    resolution: float = GRID_RESOLUTION_SIGMA,
    **fit_kwargs,
) -> dict[float, list[np.ndarray]]:
    """Wilks contours of a 2D profile scan: cl → list of (k, 2) arrays of points, one per region.

    The columns follow the scan's dimension order; the threshold is χ²₂⁻¹(cl) (2.30 for 68.27%,
    6.18 for 95.45%).  Disjoint regions come back as separate arrays; a contour touching the scan's
    edge is returned open (its first and last points differ).

    With ``likelihood`` every contour point is moved onto the exact contour by root finding along the
    local gradient of −2ΔlnL (conditional fits with both parameters pinned, warm-started from the
    nearest scan point and the best fit); a point that cannot be bracketed within four grid
    spacings is kept and counted in a :class:`GridResolutionWarning`.  Without it the contour is
    the grid's linear interpolation, and a :class:`GridResolutionWarning` says when its estimated
    error, h²|q''|/(16√t) in units of the local σ (exact for a parabola), exceeds ``resolution``.

    Raises:
        InvalidInputError: a scan that is not 2D.
    """
    import contourpy

    q = scan["twice_delta_nll"]
    if q.ndim != 2:
        raise InvalidInputError(f"wilks_contours: scan must be 2D, has dims {list(q.dims)}")
    dx, dy = q.dims
    x, y = np.asarray(scan[dx], dtype=float), np.asarray(scan[dy], dtype=float)
    ox, oy = np.argsort(x), np.argsort(y)
    x, y = x[ox], y[oy]
    z = np.where(np.asarray(scan["converged"], dtype=bool), np.asarray(q, dtype=float), np.nan)[np.ix_(ox, oy)]
    # contourpy takes z indexed [y, x]
    gen = contourpy.contour_generator(x, y, z.T, line_type=contourpy.LineType.Separate)
    out = {cl: [np.asarray(line, dtype=float) for line in gen.lines(wilks_threshold(cl, 2))] for cl in cls}
    if likelihood is None:
        worst = _grid_contour_error(x, y, z, cls)
        if worst > resolution:
            warnings.warn(f"wilks_contours: the grid resolves the contours only to ~{worst:.2g} σ (> {resolution:g} σ); "
                          "pass likelihood= to refine them by root finding, or scan a finer grid",
                          GridResolutionWarning, stacklevel=2)
        return out
    return _refine_contours(scan, likelihood, out, x, y, z, ox, oy, dx, dy, fit_kwargs)


def _grid_contour_error(x, y, z, cls) -> float:
    """Largest h²|q''|/(16√t) over grid cells next to a contour (units of σ)."""
    worst = 0.0
    for cl in cls:
        t = wilks_threshold(cl, 2)
        for axis, h in ((0, np.diff(x)), (1, np.diff(y))):
            zz = np.moveaxis(z, axis, 0)
            if zz.shape[0] < 3:
                return math.inf
            hh = h[:, None]
            d2 = np.abs(2.0 * ((zz[2:] - zz[1:-1]) / hh[1:] - (zz[1:-1] - zz[:-2]) / hh[:-1]) / (hh[1:] + hh[:-1]))
            crossing = (zz[1:-1] - t) * (zz[2:] - t) <= 0
            if crossing.any():
                err = (np.maximum(hh[1:], hh[:-1]) ** 2 * d2 / (16.0 * math.sqrt(t)))[crossing]
                err = err[np.isfinite(err)]
                if err.size:
                    worst = max(worst, float(err.max()))
    return worst


def _refine_contours(scan, likelihood, contours, x, y, z, ox, oy, dx, dy, fit_kwargs):
    from scipy.interpolate import RegularGridInterpolator

    kwargs = {"tolerance": FIT_TOLERANCE, **fit_kwargs}
    fixed = json.loads(scan.attrs.get("fixed_json", "{}"))
    nll_min = float(scan.attrs["nll_min"])
    names = scan["parameter"].values.tolist()
    best = dict(zip(names, scan["best_fit"].values.tolist()))
    profiled = np.asarray(scan["profiled"], dtype=float)[np.ix_(ox, oy)]
    zf = np.where(np.isfinite(z), z, np.nanmax(z))
    gx, gy = np.gradient(zf, x, y)
    hx, hy = float(np.median(np.diff(x))), float(np.median(np.diff(y)))
    grad = RegularGridInterpolator((x, y), np.stack([gx * hx, gy * hy], axis=-1), bounds_error=False, fill_value=None)
    (xlo, xhi), (ylo, yhi) = likelihood.parameters[dx].bounds, likelihood.parameters[dy].bounds
    n_unrefined = 0
    refined = {}
    for cl, lines in contours.items():
        t = wilks_threshold(cl, 2)
        new_lines = []
        for line in lines:
            pts = line.copy()
            for k, p in enumerate(line):
                g = np.asarray(grad(p[None, :])[0])
                norm = float(np.hypot(*g))
                if not norm > 0:
                    n_unrefined += 1
                    continue
                u = g / norm * np.array([hx, hy])  # one grid spacing along the gradient

                i, j = int(np.abs(x - p[0]).argmin()), int(np.abs(y - p[1]).argmin())
                starts = [dict(zip(names, profiled[i, j])), best]

                def f(s):
                    px = min(max(p[0] + s * u[0], xlo), xhi)
                    py = min(max(p[1] + s * u[1], ylo), yhi)
                    fit, _ = conditional_fit(likelihood, {dx: px, dy: py}, starts, fixed=fixed, **kwargs)
                    return 2.0 * (fit.nll - nll_min) - t

                s_root = None
                for half in (0.5, 1.0, 2.0, 4.0):
                    fa, fb = f(-half), f(half)
                    if fa * fb < 0:
                        s_root = optimize.brentq(f, -half, half, xtol=1e-7)
                        break
                if s_root is None:
                    n_unrefined += 1
                    continue
                pts[k] = [p[0] + s_root * u[0], p[1] + s_root * u[1]]
            new_lines.append(pts)
        refined[cl] = new_lines
    if n_unrefined:
        warnings.warn(f"wilks_contours: {n_unrefined} contour point(s) could not be refined by root finding "
                      "(no crossing within four grid spacings); scan a finer grid", GridResolutionWarning, stacklevel=3)
    return refined
