"""Neyman confidence sets from toys, for the profile-likelihood-ratio statistic of any likelihood.

For each point θ_k of a grid over the tested parameters, toys are drawn at (θ_k, ν̂̂(θ_k)) — the
other parameters profiled on the observed data, the usual "profile construction" for nuisances —
and t(θ_k) (:mod:`sbihep.fit.statistic`) is evaluated on each.  The critical value c_α(θ_k) is
the empirical ``cl`` quantile of those t; the confidence set is {θ_k : t_obs(θ_k) ≤ c_α(θ_k)}.
Unlike Wilks' χ² thresholds this holds at any sample size and for learned statistics (Dalmasso et
al., LF2I, arXiv:2107.03920, with toys at grid points instead of their quantile regression).  With
one tested parameter bounded at 0 the construction is Feldman & Cousins' (arXiv:physics/9711021).

Toys run through :func:`sbihep.parallel.map_jobs` (local processes, or dask when a client is
given); each toy's random stream depends only on (seed, grid point, toy index).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, Interval
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.scan import grid_axes, profile_scan
from sbihep.fit.statistic import toy_seed, toy_statistics
from sbihep.parallel import map_jobs

__all__ = ["neyman_belt", "neyman_interval", "neyman_region", "neyman_contours", "neyman_expected", "critical_value"]

#: Quantiles of the expected-interval bands: −2σ, −1σ, median, +1σ, +2σ.
BAND_QUANTILES = (0.02275, 0.15866, 0.5, 0.84134, 0.97725)


def neyman_belt(
    likelihood: Likelihood,
    grid: Mapping[str, Sequence[float]],
    *,
    n_toys: int = 1000,
    cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA),
    seed: int = 0,
    generate_at: Mapping[str, float] | None = None,
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    **fit_kwargs: Any,
):
    """Calibrate t(θ) by toys at every grid point.

    Args:
        likelihood: the likelihood of the observed data; its terms must draw toys (``toy``).
        grid: tested parameter → 1D values; the belt covers their outer product.
        n_toys: toys per grid point.
        cls: confidence levels whose critical values are stored.
        seed: seed of every toy stream.
        generate_at: values of the non-tested parameters to generate toys at; default: profiled
            on the observed data at each grid point (ν̂̂(θ_k)).
        n_workers, executor, client, progress: passed to :func:`~sbihep.parallel.map_jobs`.
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.

    Returns:
        ``xarray.Dataset`` with one coordinate per tested parameter and

        - ``statistic`` (grid dims, ``toy``): t of every toy (NaN where a fit failed);
        - ``critical_value`` (grid dims, ``cl``): the ``cl`` quantile of the converged toys' t;
        - ``n_failed`` (grid dims): toys whose fits failed (left out of the quantiles);
        - ``generated_at`` (grid dims, ``parameter``): where the toys were drawn;
        - attrs ``n_toys``, ``seed``, ``tested`` (JSON-free: comma-joined names).

    Raises:
        InvalidInputError / UnknownParameterError: a bad grid, ``n_toys`` < 1 or a cl outside (0, 1).
    """
    import xarray as xr

    if int(n_toys) != n_toys or n_toys < 1:
        raise InvalidInputError(f"neyman_belt: n_toys must be a positive integer, got {n_toys!r}")
    cls = [float(c) for c in cls]
    if not all(0 < c < 1 for c in cls):
        raise InvalidInputError(f"neyman_belt: every cl must lie in (0, 1), got {cls}")
    names, axes = grid_axes(likelihood, grid, None, "neyman_belt")
    shape = tuple(a.size for a in axes)
    indices = list(itertools.product(*(range(n) for n in shape)))
    points = [{name: float(axes[d][i]) for d, (name, i) in enumerate(zip(names, idx))} for idx in indices]
    generating = []
    for point in points:
        if generate_at is None:
            fit = minimize(likelihood, fixed=point, hesse=False, **fit_kwargs)
            generating.append(fit.values)
        else:
            generating.append(likelihood.parameters.validate({**generate_at, **point}))
    # about four jobs per worker, never splitting below one toy
    per_point = max(1, min(n_toys, math.ceil(4 * max(n_workers, 1) / len(points))))
    edges = np.linspace(0, n_toys, per_point + 1).astype(int)
    jobs, owners = [], []
    for k, (point, gen) in enumerate(zip(points, generating)):
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi > lo:
                jobs.append((likelihood, gen, [point], seed, (k,), list(range(lo, hi)), fit_kwargs))
                owners.append(k)
    results = map_jobs(toy_statistics, jobs, n_workers=n_workers, executor=executor, client=client,
                       progress=progress, desc="Neyman toys")
    stat = np.full((len(points), n_toys), np.nan)
    filled = np.zeros(len(points), dtype=int)
    for k, res in zip(owners, results):
        t = np.where(res[:, 0, 1] > 0, res[:, 0, 0], np.nan)
        stat[k, filled[k]:filled[k] + len(t)] = t
        filled[k] += len(t)
    n_failed = np.sum(np.isnan(stat), axis=1)
    crit = np.array([[_quantile(row, c) for c in cls] for row in stat])
    coords = {name: axis for name, axis in zip(names, axes)}
    coords.update(cl=cls, parameter=list(likelihood.names))
    dims = tuple(names)
    return xr.Dataset(
        {
            "statistic": ((*dims, "toy"), stat.reshape(*shape, n_toys)),
            "critical_value": ((*dims, "cl"), crit.reshape(*shape, len(cls))),
            "n_failed": (dims, n_failed.reshape(shape)),
            "generated_at": ((*dims, "parameter"), np.array([[g[n] for n in likelihood.names] for g in generating]).reshape(*shape, -1)),
        },
        coords=coords,
        attrs={"n_toys": int(n_toys), "seed": int(seed), "tested": ",".join(names)},
    )


def _quantile(values: np.ndarray, q: float) -> float:
    ok = values[np.isfinite(values)]
    return float(np.quantile(ok, q)) if ok.size else math.nan


def critical_value(belt, point: Mapping[str, float], cl: float) -> float:
    """c_α at ``point``, linearly interpolated between grid points (``cl`` must be one of the belt's)."""
    crit = belt["critical_value"].sel(cl=cl, method="nearest")
    if abs(float(crit["cl"]) - cl) > 1e-9:
        raise InvalidInputError(f"critical_value: cl {cl} is not in the belt's {belt['cl'].values.tolist()}")
    names = [d for d in crit.dims]
    missing = [n for n in names if n not in point]
    if missing:
        raise InvalidInputError(f"critical_value: point lacks tested parameter(s) {missing}")
    return float(crit.interp({n: float(point[n]) for n in names}))


def neyman_interval(likelihood: Likelihood, belt, cl: float = ONE_SIGMA, *, scan=None, **fit_kwargs: Any) -> Interval:
    """The Neyman interval of one tested parameter on the data of ``likelihood``.

    t_obs is profiled on the belt's grid (or taken from ``scan``, a 1D
    :func:`~sbihep.fit.scan.profile_scan` on that grid); the interval's ends are where
    t_obs − c_α crosses 0, linearly interpolated, walking out from the best grid point.  An end
    that stays accepted up to the grid's edge is returned open (``low_closed``/``high_closed``).
    """
    crit = belt["critical_value"].sel(cl=cl, method="nearest")
    if abs(float(crit["cl"]) - cl) > 1e-9:
        raise InvalidInputError(f"neyman_interval: cl {cl} is not in the belt's {belt['cl'].values.tolist()}")
    if crit.ndim != 1:
        raise InvalidInputError(f"neyman_interval: the belt must test one parameter, tests {list(crit.dims)}")
    name = crit.dims[0]
    x = np.asarray(belt[name], dtype=float)
    if scan is None:
        scan = profile_scan(likelihood, {name: x}, **fit_kwargs)
    q = np.asarray(scan["twice_delta_nll"], dtype=float)
    if q.shape != x.shape:
        raise InvalidInputError("neyman_interval: scan and belt grids differ")
    d = np.where(np.asarray(scan["converged"], bool), q - np.asarray(crit, dtype=float), np.inf)
    i_best = int(np.argmin(np.where(np.asarray(scan["converged"], bool), q, np.inf)))
    if not d[i_best] <= 0:
        raise InvalidInputError(
            f"neyman_interval: no grid point of {name} is accepted at cl {cl} (best point {x[i_best]:.6g} has "
            f"t_obs − c_α = {d[i_best]:.3g} > 0): the grid is coarser than the interval — add points around the best fit")
    lo = i_best
    while lo > 0 and d[lo - 1] <= 0:
        lo -= 1
    hi = i_best
    while hi < len(x) - 1 and d[hi + 1] <= 0:
        hi += 1
    low_closed, high_closed = lo > 0, hi < len(x) - 1
    low = _zero(x[lo - 1], x[lo], d[lo - 1], d[lo]) if low_closed else x[lo]
    high = _zero(x[hi], x[hi + 1], d[hi], d[hi + 1]) if high_closed else x[hi]
    best = float(scan["best_fit"].sel(parameter=name))
    return Interval(name, best, float(low), float(high), cl, low_closed, high_closed, "neyman")


def neyman_region(likelihood: Likelihood, belt, cl: float = ONE_SIGMA, *, scan=None, **fit_kwargs: Any):
    """The Neyman confidence set of two (or more) tested parameters on the belt's grid.

    t_obs is profiled on the belt's grid (or taken from ``scan``, a :func:`~sbihep.fit.scan.profile_scan`
    on that grid).

    Returns:
        ``xarray.Dataset`` on the belt's grid: ``accepted`` (bool: t_obs ≤ c_α and the fit converged),
        ``margin`` = t_obs − c_α (its zero level is the set's boundary), ``twice_delta_nll`` (t_obs),
        ``critical_value`` (c_α); attrs ``cl`` and the ``area`` of the accepted set for two parameters
        (the number of accepted cells × the cell area of a regular grid — a grid-resolution estimate).
    Raises:
        InvalidInputError: a ``cl`` the belt does not hold, or a scan on another grid.
    """
    import xarray as xr

    crit = belt["critical_value"].sel(cl=cl, method="nearest")
    if abs(float(crit["cl"]) - cl) > 1e-9:
        raise InvalidInputError(f"neyman_region: cl {cl} is not in the belt's {belt['cl'].values.tolist()}")
    names = list(crit.dims)
    if scan is None:
        scan = profile_scan(likelihood, {n: np.asarray(belt[n], dtype=float) for n in names}, **fit_kwargs)
    q = scan["twice_delta_nll"]
    if list(q.dims) != names or any(not np.allclose(np.asarray(scan[n]), np.asarray(belt[n])) for n in names):
        raise InvalidInputError(f"neyman_region: the scan's grid {list(q.dims)} differs from the belt's {names}")
    converged = np.asarray(scan["converged"], dtype=bool)
    margin = np.where(converged, np.asarray(q, dtype=float) - np.asarray(crit, dtype=float), np.nan)
    coords = {n: np.asarray(belt[n]) for n in names}
    ds = xr.Dataset(
        {
            "accepted": (names, np.nan_to_num(margin, nan=np.inf) <= 0),
            "margin": (names, margin),
            "twice_delta_nll": (names, np.asarray(q, dtype=float)),
            "critical_value": (names, np.asarray(crit, dtype=float)),
        },
        coords=coords,
        attrs={"cl": float(cl), "method": "neyman"},
    )
    if len(names) == 2:
        steps = [np.diff(coords[n]) for n in names]
        if all(np.allclose(d, d[0]) for d in steps if d.size):
            ds.attrs["area"] = float(ds["accepted"].sum()) * float(np.prod([d[0] for d in steps]))
    return ds


def neyman_contours(region) -> list[np.ndarray]:
    """Boundary lines of a 2D :func:`neyman_region`: a list of (k, 2) point arrays (columns in the
    region's dimension order; the zero level of t_obs − c_α, linearly interpolated; open at the grid's edge)."""
    import contourpy

    margin = region["margin"]
    if margin.ndim != 2:
        raise InvalidInputError(f"neyman_contours: the region must be 2D, has dims {list(margin.dims)}")
    dx, dy = margin.dims
    gen = contourpy.contour_generator(np.asarray(region[dx], float), np.asarray(region[dy], float),
                                      np.asarray(margin, float).T, line_type=contourpy.LineType.Separate)
    return [np.asarray(line) for line in gen.lines(0.0)]


def _zero(x0, x1, d0, d1) -> float:
    if not math.isfinite(d0) or not math.isfinite(d1):
        return float(x0 if math.isfinite(d0) and d0 <= 0 else x1)
    return float(x0 - d0 * (x1 - x0) / (d1 - d0))


def _toy_interval(likelihood: Likelihood, belt, theta: Mapping[str, float], cl: float, seed: int, index: int,
                  fit_kwargs: Mapping[str, Any]) -> tuple[float, float]:
    toy = likelihood.toy(theta, toy_seed(seed, 1_000_003, index))
    iv = neyman_interval(toy, belt, cl, **fit_kwargs)
    return iv.low, iv.high


def neyman_expected(
    likelihood: Likelihood,
    belt,
    theta: Mapping[str, float],
    cl: float = ONE_SIGMA,
    *,
    n_toys: int = 0,
    seed: int = 1,
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    **fit_kwargs: Any,
):
    """Expected Neyman intervals under the hypothesis ``theta`` (all parameters by name).

    Returns:
        ``xarray.Dataset``: ``asimov`` (``end`` = low, high) — the interval on the Asimov data set
        at θ; with ``n_toys`` > 0 also ``band`` (``quantile``, ``end``) — the −2σ…+2σ quantiles
        (:data:`BAND_QUANTILES`) of each end over toys drawn at θ, and ``toy_ends`` (``toy``, ``end``).
    """
    import xarray as xr

    full = likelihood.parameters.validate(theta)
    asimov = neyman_interval(likelihood.asimov(full), belt, cl, **fit_kwargs)
    ds = xr.Dataset({"asimov": (("end",), [asimov.low, asimov.high])}, coords={"end": ["low", "high"]},
                    attrs={"cl": cl, "parameter": asimov.parameter})
    if n_toys:
        jobs = [(likelihood, belt, full, cl, seed, i, fit_kwargs) for i in range(int(n_toys))]
        ends = np.array(map_jobs(_toy_interval, jobs, n_workers=n_workers, executor=executor, client=client,
                                 progress=progress, desc="expected intervals"))
        ds["toy_ends"] = (("toy", "end"), ends)
        ds["band"] = (("quantile", "end"), np.quantile(ends, BAND_QUANTILES, axis=0))
        ds = ds.assign_coords(quantile=list(BAND_QUANTILES))
    return ds
