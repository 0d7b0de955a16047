"""Profile-likelihood scans on a grid of one or more parameters, as an ``xarray.Dataset``.

At each grid point the scanned parameters are fixed and every other free parameter (nuisances and
the other POIs) is profiled.  Points are visited in boustrophedon ("snake") order so that each fit
starts from its neighbour's profiled values; the grid is cut into contiguous chunks that run
through :func:`sbihep.parallel.map_jobs`.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize
from sbihep.parallel import map_jobs

__all__ = ["profile_scan", "grid_axes"]


def _snake_order(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All indices of an array of ``shape``, each consecutive pair differing in one index by ±1."""
    if len(shape) == 1:
        return [(i,) for i in range(shape[0])]
    inner = _snake_order(shape[1:])
    out = []
    for i in range(shape[0]):
        out.extend((i, *rest) for rest in (inner if i % 2 == 0 else inner[::-1]))
    return out


def _scan_chunk(likelihood: Likelihood, names: Sequence[str], points: Sequence[Sequence[float]],
                fixed: Mapping[str, float], start: Mapping[str, float], fit_kwargs: Mapping[str, Any]) -> list:
    """Profile fits at consecutive points; returns (values (P,), nll, converged, edm, message) per point."""
    out = []
    current = dict(start)
    nothing_free = set(likelihood.names) <= set(names) | set(fixed)
    for point in points:
        pinned = dict(zip(names, point))
        if nothing_free:  # no nuisance to profile: evaluate directly
            full = likelihood.parameters.validate({**fixed, **pinned})
            out.append((np.array([full[n] for n in likelihood.names]), likelihood.nll(full), True, 0.0, ""))
            continue
        fit = minimize(likelihood, start={**current, **pinned}, fixed={**fixed, **pinned},
                       hesse=False, on_failure="flag", **fit_kwargs)
        if fit.converged:
            current = {k: v for k, v in fit.values.items() if k not in fixed}
        out.append((np.array([fit.values[n] for n in likelihood.names]), fit.nll, fit.converged, fit.edm, fit.message))
    return out


def profile_scan(
    likelihood: Likelihood,
    grid: Mapping[str, Sequence[float]],
    *,
    best_fit: FitResult | None = None,
    fixed: Mapping[str, float] | None = None,
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
        grid: scanned parameter → 1D array of its values (the grid is their outer product).
        best_fit: the global fit (computed here if not given) that defines −2ΔlnL = 0.
        fixed: further parameters held fixed everywhere (in addition to ``likelihood.fixed``).
        n_workers, executor, client, progress: passed to :func:`sbihep.parallel.map_jobs`; the grid
            is split into one contiguous chunk per worker.
        agree_tol: a scan point below the global minimum by more than this marks the global fit as
            not the global minimum (``attrs["improved_minimum"] = 1``; the reference becomes the
            lowest point).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (e.g. ``method="scipy"``).

    Returns:
        ``xarray.Dataset`` with one coordinate per scanned parameter and

        - ``twice_delta_nll`` (scan dims): −2ΔlnL = 2 (nll − nll_min);
        - ``nll`` (scan dims): −ln L profiled;
        - ``profiled`` (scan dims, ``parameter``): the profiled values of every parameter;
        - ``converged`` (scan dims, bool), ``edm`` (scan dims);
        - ``best_fit`` (``parameter``): the global best fit;
        - attrs: ``nll_min``, ``best_fit_converged``, ``improved_minimum``, ``n_failed``.

    Raises:
        UnknownParameterError: a grid name not in the likelihood.
        InvalidInputError: an empty grid, a non-1D or non-finite grid, a scanned parameter that is fixed.
        OutOfBoundsError: grid values outside the parameter's bounds.
    """
    import xarray as xr

    names, axes = grid_axes(likelihood, grid, fixed, "profile_scan")
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    if best_fit is None:
        best_fit = minimize(likelihood, fixed=fixed, **{k: v for k, v in fit_kwargs.items() if k != "hesse"})
    shape = tuple(a.size for a in axes)
    order = _snake_order(shape)
    points = [tuple(float(axes[d][i]) for d, i in enumerate(idx)) for idx in order]
    n_chunks = max(1, min(int(n_workers), len(points)))
    bounds = np.linspace(0, len(points), n_chunks + 1).astype(int)
    start = {k: v for k, v in best_fit.values.items() if k not in all_fixed}
    jobs = [(likelihood, names, points[lo:hi], all_fixed, start, fit_kwargs) for lo, hi in zip(bounds[:-1], bounds[1:])]
    chunks = map_jobs(_scan_chunk, jobs, n_workers=n_workers, executor=executor, client=client,
                      progress=progress, desc="profile scan")
    results = list(itertools.chain.from_iterable(chunks))

    n_par = len(likelihood.names)
    nll = np.empty(shape)
    profiled = np.empty((*shape, n_par))
    converged = np.empty(shape, dtype=bool)
    edm = np.empty(shape)
    for idx, (values, f, ok, e, _msg) in zip(order, results):
        nll[idx], profiled[idx], converged[idx], edm[idx] = f, values, ok, e
    lowest = float(np.min(np.where(converged, nll, np.inf))) if converged.any() else np.inf
    improved = lowest < best_fit.nll - agree_tol
    nll_min = min(best_fit.nll, lowest)
    dims = tuple(names)
    coords = {name: axis for name, axis in zip(names, axes)}
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
    ds.attrs.update(nll_min=nll_min, best_fit_converged=int(best_fit.converged),
                    improved_minimum=int(improved), n_failed=int((~converged).sum()))
    return ds


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
