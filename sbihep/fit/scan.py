"""Profile-likelihood scans on a grid of one or more parameters, as an ``xarray.Dataset``.

At each grid point the scanned parameters are fixed and every other free parameter (nuisances and
the other POIs) is profiled.  Points are visited in boustrophedon ("snake") order; each conditional
fit starts from its neighbour's profiled values *and* from the free (global) fit (and from the
nearest other basin when ``basins`` are given), and keeps the lowest: a neighbour-only warm start
follows a branch of local minima once it has stepped onto one.  How often a start other than the
neighbour's won is reported in ``attrs["n_second_start_won"]``.  The grid is cut into contiguous
chunks that run through :func:`sbihep.parallel.map_jobs`.

A grid axis may be ``"auto"`` (or ``("auto", n_points)``): :func:`auto_grid` chooses it from the
fit's errors and widens it until the profile crosses the threshold of ``auto_cl`` on both sides
(or reaches the bound), always including the best fit.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize
from sbihep.parallel import map_jobs

__all__ = ["profile_scan", "grid_axes", "auto_grid", "conditional_fit", "AUTO_POINTS"]

#: Points per axis of an ``"auto"`` grid axis: 1D scans, and each axis of a scan of more dimensions.
AUTO_POINTS = {1: 41, 2: 25}


def _snake_order(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All indices of an array of ``shape``, each consecutive pair differing in one index by ±1."""
    if len(shape) == 1:
        return [(i,) for i in range(shape[0])]
    inner = _snake_order(shape[1:])
    out = []
    for i in range(shape[0]):
        out.extend((i, *rest) for rest in (inner if i % 2 == 0 else inner[::-1]))
    return out


def conditional_fit(
    likelihood: Likelihood,
    pinned: Mapping[str, float],
    starts: Sequence[Mapping[str, float]],
    *,
    fixed: Mapping[str, float] | None = None,
    agree_tol: float = 1e-6,
    **fit_kwargs: Any,
) -> tuple[FitResult, int]:
    """The lowest of the fits at ``pinned`` (held fixed) from each of ``starts``.

    Starts that coincide (on the free parameters) are fitted once.  A later start wins only when its
    −ln L is lower by more than ``agree_tol``, so ties go to the first (the neighbour's) start.

    Returns:
        (the lowest converged fit — or the lowest fit, flagged, if none converged; index of the start
        that gave it).
    """
    fixed = {**(fixed or {}), **pinned}
    all_fixed = {**likelihood.fixed, **fixed}
    free = [n for n in likelihood.names if n not in all_fixed]
    if not free:  # nothing to profile: evaluate directly
        full = likelihood.parameters.validate(all_fixed)
        value = likelihood.nll(full)
        return FitResult(values=dict(full), errors={n: 0.0 for n in full}, covariance=None, free=(), nll=value,
                         converged=True, message="", edm=0.0, n_calls=1, n_starts=1, n_agree=1,
                         method="none (all parameters fixed)", fixed=all_fixed, start_nlls=(value,)), 0
    seen: list[np.ndarray] = []
    best, best_i = None, 0
    for i, s in enumerate(starts):
        key = np.array([float(s.get(n, np.nan)) for n in free])
        if any(np.array_equal(key, k, equal_nan=True) for k in seen):
            continue
        seen.append(key)
        start = {k: v for k, v in s.items() if k not in all_fixed and k in likelihood.parameters}
        fit = minimize(likelihood, start=start, fixed=fixed, hesse=False, on_failure="flag", **fit_kwargs)
        if best is None:
            best, best_i = fit, i
        elif fit.converged and (not best.converged or fit.nll < best.nll - agree_tol):
            best, best_i = fit, i
    return best, best_i


def _scan_chunk(likelihood: Likelihood, names: Sequence[str], points: Sequence[Sequence[float]],
                fixed: Mapping[str, float], start: Mapping[str, float], basins: Sequence[Mapping[str, float]],
                free_start: bool, fit_kwargs: Mapping[str, Any]) -> list:
    """Profile fits at consecutive points; per point (values (P,), nll, converged, edm, message, winner)
    where winner is the index of the start that gave the lowest fit (0: the neighbour's)."""
    out = []
    current = dict(start)
    # the chunk's first point has no fitted neighbour: besides the free fit it starts from the
    # likelihood's start point (from the free fit alone a conditional fit can settle in a basin that
    # exists only at fixed POI, and every later point would be warm-started from it)
    first_extra = [likelihood.start_point()] if free_start else []
    for k, point in enumerate(points):
        pinned = dict(zip(names, point))
        starts = [current, start] if free_start else [current]
        if k == 0:
            starts += first_extra
        if basins:  # the basin nearest to this point in the scanned coordinates
            d = [sum((b[n] - pinned[n]) ** 2 for n in names) for b in basins]
            starts.append(basins[int(np.argmin(d))])
        fit, winner = conditional_fit(likelihood, pinned, starts, fixed=fixed, **fit_kwargs)
        if fit.converged:
            current = {k: v for k, v in fit.values.items() if k not in fixed}
        out.append((np.array([fit.values[n] for n in likelihood.names]), fit.nll, fit.converged, fit.edm,
                    fit.message, winner))
    return out


def profile_scan(
    likelihood: Likelihood,
    grid: Mapping[str, Sequence[float] | str],
    *,
    best_fit: FitResult | None = None,
    fixed: Mapping[str, float] | None = None,
    basins: Sequence[FitResult] | None = None,
    free_start: bool = True,
    auto_cl: float = 0.9973,
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    agree_tol: float = 1e-3,
    **fit_kwargs: Any,
):
    """Profile −2 ln L over a grid (1D, 2D, or more).

    Args:
        likelihood: the likelihood.
        grid: scanned parameter → 1D array of its values (the grid is their outer product), or
            ``"auto"`` / ``("auto", n_points)``: chosen by :func:`auto_grid` (the best fit included).
        best_fit: the global fit (computed here if not given) that defines −2ΔlnL = 0.
        fixed: further parameters held fixed everywhere (in addition to ``likelihood.fixed``).
        basins: other local minima (e.g. from :func:`~sbihep.fit.basins.find_minima`): each
            conditional fit also starts from the nearest one.
        free_start: also start each conditional fit from the free fit, and the first point of each
            chunk from the likelihood's start point too (default; about doubles the scan's cost).  False: neighbour-only warm starts, for likelihoods known to have one
            branch of conditional minima.
        auto_cl: confidence level whose threshold (with as many degrees of freedom as scanned
            parameters) an ``"auto"`` axis must cross on both sides.
        n_workers, executor, client, progress: passed to :func:`sbihep.parallel.map_jobs`; the grid
            is split into one contiguous chunk per worker.
        agree_tol: a scan point below the global minimum by more than this marks the global fit as
            not the global minimum (``attrs["improved_minimum"] = 1``; the reference becomes the
            lowest point).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (e.g. ``method="scipy"``).

    Returns:
        ``xarray.Dataset`` with one coordinate per scanned parameter (attribute ``parameter_bounds``: the
        parameter's bounds) and

        - ``twice_delta_nll`` (scan dims): −2ΔlnL = 2 (nll − nll_min);
        - ``nll`` (scan dims): −ln L profiled;
        - ``profiled`` (scan dims, ``parameter``): the profiled values of every parameter;
        - ``converged`` (scan dims, bool), ``edm`` (scan dims);
        - ``best_fit`` (``parameter``): the global best fit;
        - attrs: ``nll_min``, ``best_fit_nll``, ``best_fit_converged``, ``improved_minimum``,
            ``n_failed``, ``n_second_start_won`` (points where the free fit's or a basin's start gave a
            lower conditional minimum than the neighbour's), ``fixed_json`` (the fixed parameters).

    Raises:
        UnknownParameterError: a grid name not in the likelihood.
        InvalidInputError: an empty grid, a non-1D or non-finite grid, a scanned parameter that is fixed.
        OutOfBoundsError: grid values outside the parameter's bounds.
    """
    import xarray as xr

    all_fixed = {**likelihood.fixed, **(fixed or {})}
    if best_fit is None:
        best_fit = minimize(likelihood, fixed=fixed, **{k: v for k, v in fit_kwargs.items() if k != "hesse"})
    if isinstance(grid, Mapping) and any(_is_auto(v) for v in grid.values()):
        auto = {k: (v if isinstance(v, str) else v[1]) for k, v in grid.items() if _is_auto(v)}
        grid = {**grid, **auto_grid(likelihood, {k: (None if isinstance(v, str) else int(v)) for k, v in auto.items()},
                                    best_fit=best_fit, fixed=fixed, cl=auto_cl, n_dims=len(grid), **fit_kwargs)}
    names, axes = grid_axes(likelihood, grid, fixed, "profile_scan")
    shape = tuple(a.size for a in axes)
    order = _snake_order(shape)
    points = [tuple(float(axes[d][i]) for d, i in enumerate(idx)) for idx in order]
    n_chunks = max(1, min(int(n_workers), len(points)))
    bounds = np.linspace(0, len(points), n_chunks + 1).astype(int)
    start = {k: v for k, v in best_fit.values.items() if k not in all_fixed}
    basin_starts = [{k: v for k, v in b.values.items() if k not in all_fixed} for b in (basins or ())]
    jobs = [(likelihood, names, points[lo:hi], all_fixed, start, basin_starts, free_start, fit_kwargs)
            for lo, hi in zip(bounds[:-1], bounds[1:])]
    chunks = map_jobs(_scan_chunk, jobs, n_workers=n_workers, executor=executor, client=client,
                      progress=progress, desc="profile scan")
    results = list(itertools.chain.from_iterable(chunks))

    n_par = len(likelihood.names)
    nll = np.empty(shape)
    profiled = np.empty((*shape, n_par))
    converged = np.empty(shape, dtype=bool)
    edm = np.empty(shape)
    n_second = 0
    for idx, (values, f, ok, e, _msg, winner) in zip(order, results):
        nll[idx], profiled[idx], converged[idx], edm[idx] = f, values, ok, e
        n_second += int(winner > 0)
    lowest = float(np.min(np.where(converged, nll, np.inf))) if converged.any() else np.inf
    improved = lowest < best_fit.nll - agree_tol
    nll_min = min(best_fit.nll, lowest)
    dims = tuple(names)
    coords = {name: (name, axis, {"parameter_bounds": list(likelihood.parameters[name].bounds)})
              for name, axis in zip(names, axes)}
    coords["parameter"] = list(likelihood.names)
    ds = xr.Dataset(
        {
            "twice_delta_nll": (dims, 2.0 * (nll - nll_min), {"long_name": "-2 Delta ln L"}),
            "nll": (dims, nll, {"long_name": "-ln L (profiled)"}),
            "profiled": ((*dims, "parameter"), profiled),
            "converged": (dims, converged),
            "edm": (dims, edm),
            "best_fit": (("parameter",), np.array([best_fit.values[n] for n in likelihood.names])),
        },
        coords=coords,
    )
    ds.attrs.update(nll_min=nll_min, best_fit_nll=float(best_fit.nll), best_fit_converged=int(best_fit.converged),
                    improved_minimum=int(improved), n_failed=int((~converged).sum()),
                    n_second_start_won=int(n_second),
                    fixed_json=json.dumps({k: float(v) for k, v in (fixed or {}).items()}))
    return ds


def _is_auto(value) -> bool:
    if isinstance(value, str):
        if value != "auto":
            raise InvalidInputError(f"profile_scan: a grid axis given as a string must be 'auto', got {value!r}")
        return True
    return isinstance(value, tuple) and len(value) == 2 and value[0] == "auto"


def auto_grid(
    likelihood: Likelihood,
    parameters: Sequence[str] | Mapping[str, int | None],
    *,
    best_fit: FitResult | None = None,
    fixed: Mapping[str, float] | None = None,
    cl: float = 0.9973,
    n_dims: int | None = None,
    n_points: int | None = None,
    margin: float = 1.25,
    max_widenings: int = 40,
    **fit_kwargs: Any,
) -> dict[str, np.ndarray]:
    """Scan axes chosen from the fit's errors, widened until the profile crosses the threshold.

    Each axis starts at x̂ ± ``margin``·σ·√t (σ: HESSE error, t = χ²_k⁻¹(``cl``) with k = ``n_dims``,
    default the number of parameters); while the 1D profile (every other parameter profiled) at an
    end is still below t and the end is not on the bound, the half-width on that side doubles.  The
    projection of a k-dimensional region onto one axis is the 1D profile interval at the k-dof
    threshold, so these axes contain the whole region.  The best fit is inserted into each axis.

    Args:
        parameters: names (with ``n_points`` or :data:`AUTO_POINTS`), or name → points (None: default).

    Returns:
        name → sorted 1D array of grid values (within the bounds, best fit included).

    Raises:
        ConvergenceError: the profile does not reach the threshold within ``max_widenings`` doublings
            on an unbounded side.
    """
    from sbihep.errors import ConvergenceError

    if not isinstance(parameters, Mapping):
        parameters = {p: None for p in parameters}
    k = int(n_dims or len(parameters))
    threshold = float(stats.chi2.ppf(cl, k))
    if best_fit is None:
        best_fit = minimize(likelihood, fixed=fixed, **fit_kwargs)
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    start = {n: v for n, v in best_fit.values.items() if n not in all_fixed}
    out = {}
    for name, n in parameters.items():
        if name not in likelihood.parameters:
            raise UnknownParameterError(f"auto_grid: unknown parameter {name!r}; known: {list(likelihood.names)}")
        if name in all_fixed:
            raise InvalidInputError(f"auto_grid: parameter {name!r} is fixed")
        n = int(n or AUTO_POINTS.get(k, 21))
        if n < 3:
            raise InvalidInputError(f"auto_grid: an auto axis needs at least 3 points, got {n}")
        x_hat = best_fit.values[name]
        low_b, high_b = likelihood.parameters[name].bounds
        sigma = best_fit.errors.get(name, math.nan)
        if not (math.isfinite(sigma) and sigma > 0):
            sigma = 0.1 * (high_b - low_b) if math.isfinite(high_b - low_b) else max(abs(x_hat), 1.0) * 0.1
        ends = []
        for direction, bound in ((-1.0, low_b), (1.0, high_b)):
            half = margin * sigma * math.sqrt(threshold)
            for _ in range(max_widenings):
                end = min(max(x_hat + direction * half, low_b), high_b)
                fit, _ = conditional_fit(likelihood, {name: end}, [start], fixed=fixed, **fit_kwargs)
                if end == bound or 2.0 * (fit.nll - best_fit.nll) > threshold:
                    break
                half *= 2.0
            else:
                raise ConvergenceError(f"auto_grid: the profile of {name!r} stays below {threshold:.3g} out to "
                                       f"{end:.6g} after {max_widenings} widenings")
            ends.append(end)
        axis = np.union1d(np.linspace(ends[0], ends[1], n), [x_hat])
        out[name] = axis
    return out


def grid_axes(
    likelihood, grid: Mapping[str, Sequence[float]], fixed: Mapping[str, float] | None = None, who: str = "scan"
) -> tuple[list[str], list[np.ndarray]]:
    """Validate a scan/belt grid: known, free parameters, each a non-empty 1D array of finite in-bounds values.

    Returns (parameter names, axes).  ``who`` names the caller in error messages.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidInputError(f"{who}: grid must be a non-empty mapping parameter → values")
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    names, axes = list(grid), []
    for name in names:
        if name not in likelihood.parameters:
            raise UnknownParameterError(f"{who}: grid names unknown parameter {name!r}; known: {list(likelihood.names)}")
        if name in all_fixed:
            raise InvalidInputError(f"{who}: grid parameter {name!r} is fixed (in the likelihood or by the caller)")
        values = np.asarray(grid[name], dtype=float)
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
            raise InvalidInputError(f"{who}: grid[{name!r}] must be a non-empty 1D array of finite values")
        for v in values:
            likelihood.parameters[name].check(v)
        axes.append(values)
    return names, axes
