"""Neyman confidence sets from toys, for the profile-likelihood-ratio statistic of any likelihood.

For each point θ_k of a grid over the tested parameters, toys are drawn at (θ_k, ν̂̂(θ_k)) — the
other parameters profiled on the observed data, the usual "profile construction" for nuisances —
and t(θ_k) (:mod:`sbihep.fit.statistic`) is evaluated on each.  The critical value c_α(θ_k) is
the empirical ``cl`` quantile of those t; the confidence set is {θ_k : t_obs(θ_k) ≤ c_α(θ_k)}.
The quantile is taken on the conservative side for discrete t (the smallest toy value v with
F̂(v) ≥ cl), so that a point mass at the boundary never turns into undercoverage.  On an exact
belt (``method="exact"``, below) the quantile holds a whole atom of t (one count vector, e.g. 10%
of the probability for one Poisson count), so data are accepted when t_obs ≤ c_α +
:data:`~sbihep.fit.neyman_nuisance.TIE_TOLERANCE`: the data's refit must not reject the atom by
fit noise of 1e-12.  (A toy belt's quantile splits an atom's noisy toys at random, and the data
with them: no bias, and no tolerance, which would widen intervals on continuous data.)

Which construction covers where:

- Without nuisance parameters (or with them fixed), the set covers at any sample size, also for
  learned statistics (Dalmasso et al., LF2I, arXiv:2107.03920, with toys at grid points instead of
  their quantile regression), up to the toys' quantile error.  With one tested parameter bounded at
  0 it is Feldman & Cousins' (arXiv:physics/9711021).
- With nuisances, the default profile construction (toys at ν̂̂ of the observed data) covers only
  approximately: exactly in the asymptotic limit, and it can undercover where the distribution of
  t changes fast with ν — e.g. where θ and ν sit on their bounds (LF2I OnOff, exact 68% coverage
  −2.9% at (μ, ν) = (0, 1.4)).
- A *nuisance belt* (``nuisance_grid=``: toys at every node of a grid over θ and ν) gives
  constructions with pointwise coverage over the nuisances: ``"calibrated"`` (default) and
  ``"berger_boos"``, and the profile construction evaluated at each data set's own ν̂̂
  (``"profile"``); see :mod:`sbihep.fit.neyman_nuisance`.

For likelihoods of :class:`~sbihep.fit.counting.CountingTerm` s, ``neyman_belt(...,
method="exact")`` replaces the toys by the Poisson lattice of the counts, each count vector
fitted once and weighed with its exact probability (:mod:`sbihep.fit.neyman_exact`): critical
values and calibrations without toy noise, which matters where t has point masses.

Interval ends are found by root finding on t_obs(θ) − c(θ) (profile fits at off-grid points,
c interpolated between grid nodes), seeded by the grid and the best fit.

Toys run through :func:`sbihep.parallel.map_jobs` (local processes, or dask when a client is
given); each toy's random stream depends only on (seed, the values of the point it is drawn at,
toy index, purpose) — :func:`~sbihep.fit.statistic.toy_stream` — so that belts of different data
sets and coverage at different truth points never share toys (``stream="shared"`` gives the
old streams, (seed, grid index, toy index), that repeat from belt to belt).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from scipy import optimize

from sbihep.errors import ConvergenceError, InvalidInputError
from sbihep.fit.confidence_set import ConfidenceSet, Interval, merge_pieces
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.neyman_nuisance import TIE_TOLERANCE, GridTable, NuisanceConstruction, discrete_quantile, is_exact
from sbihep.fit.scan import grid_axes, profile_scan
from sbihep.fit.statistic import check_stream, toy_profile_statistics, toy_seed, toy_stream
from sbihep.parallel import map_jobs

__all__ = ["neyman_belt", "neyman_interval", "neyman_region", "neyman_contours", "neyman_expected", "critical_value", "tie_tolerance"]

#: Quantiles of the expected-interval bands: −2σ, −1σ, median, +1σ, +2σ.
BAND_QUANTILES = (0.02275, 0.15866, 0.5, 0.84134, 0.97725)


def neyman_belt(
    likelihood: Likelihood,
    grid: Mapping[str, Sequence[float]],
    *,
    nuisance_grid: Mapping[str, Sequence[float]] | None = None,
    n_toys: int = 1000,
    cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA),
    seed: int = 0,
    generate_at: Mapping[str, float] | None = None,
    stream: str = "independent",
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    method: str = "toys",
    exact_tail: float = 1e-6,
    max_lattice_points: int = 200_000,
    **fit_kwargs: Any,
):
    """Calibrate t(θ) by toys at every grid point (or exactly, for counting models).

    Args:
        likelihood: the likelihood of the observed data; its terms must draw toys (``toy``).
        grid: tested parameter → 1D values; the belt covers their outer product.
        nuisance_grid: nuisance → 1D values: toys are also drawn at every node of this grid
            (a *nuisance belt*, for the constructions with pointwise coverage of
            :mod:`sbihep.fit.neyman_nuisance`; t still tests only ``grid``'s parameters, the
            nuisances profiled).  Cover each nuisance's bounds (or the region it can take).
        n_toys: toys per grid point.
        cls: confidence levels whose critical values are stored.
        seed: seed of every toy stream.
        generate_at: values of the other parameters to generate toys at; default: profiled on
            the observed data at each grid point (ν̂̂(θ_k), the profile construction).
        stream: ``"independent"`` (default): each toy's stream from (seed, the generating point's
            values, toy index); ``"shared"``: the old (seed, grid index, toy index), which repeats
            in every belt with the same seed.
        n_workers, executor, client, progress: passed to :func:`~sbihep.parallel.map_jobs`.
        method: ``"toys"`` (default) or ``"exact"``: for a likelihood of
            :class:`~sbihep.fit.counting.CountingTerm` s only, every count vector of non-negligible
            probability is fitted once and weighed with its exact Poisson probability at each node
            (:mod:`sbihep.fit.neyman_exact`) — critical values without toy noise; ``n_toys``,
            ``seed`` and ``stream`` are then unused.
        exact_tail: ``method="exact"``: probability each node may leave out of its lattice (counted
            as rejected, so conservative); default 1e-6.
        max_lattice_points: ``method="exact"``: refuse a lattice larger than this (default 200000).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.

    Returns:
        ``xarray.Dataset`` with one coordinate per tested parameter (then per nuisance) and

        - ``statistic`` (grid dims, ``toy``): t of every toy (NaN where a fit failed);
        - ``critical_value`` (grid dims, ``cl``): the ``cl`` quantile of the converged toys' t, on
            the conservative side for discrete t (smallest toy t with F̂ ≥ cl);
        - ``n_failed`` (grid dims): toys whose fits failed (left out of the quantiles);
        - ``generated_at`` (grid dims, ``parameter``): where the toys were drawn;
        - with ``nuisance_grid``: ``profiled_nuisance`` (grid dims, ``toy``, ``nuisance``), each
            toy's ν̂̂ at the tested point;
        - attrs ``n_toys``, ``seed``, ``stream``, ``tested`` and ``nuisances`` (comma-joined names),
            ``method``;
        - with ``method="exact"`` the ``toy`` dim indexes the lattice of each tested point (the same
            count vectors at all its nuisance nodes; padded with NaN), and also ``weight`` (grid dims,
            ``toy``): each count vector's probability at the node, ``missing_probability`` (grid
            dims): the probability left out, ``lattice_counts`` (tested dims, ``toy``, ``count``);
            ``critical_value`` is then the exact (weighted) conservative quantile.

    Raises:
        InvalidInputError / UnknownParameterError: a bad grid, a nuisance also tested, ``n_toys`` < 1,
            a cl outside (0, 1), an unknown ``stream`` or ``method``; ``method="exact"`` on a
            likelihood with other terms than CountingTerms, or a lattice over ``max_lattice_points``.
    """
    import xarray as xr

    if method not in ("toys", "exact"):
        raise InvalidInputError(f"neyman_belt: method must be 'toys' or 'exact', got {method!r}")

    if int(n_toys) != n_toys or n_toys < 1:
        raise InvalidInputError(f"neyman_belt: n_toys must be a positive integer, got {n_toys!r}")
    n_toys = int(n_toys)
    cls = [float(c) for c in cls]
    if not all(0 < c < 1 for c in cls):
        raise InvalidInputError(f"neyman_belt: every cl must lie in (0, 1), got {cls}")
    check_stream(stream, "neyman_belt")
    names, axes = grid_axes(likelihood, grid, None, "neyman_belt")
    nuisances, nuisance_axes = [], []
    if nuisance_grid is not None:
        nuisances, nuisance_axes = grid_axes(likelihood, nuisance_grid, None, "neyman_belt (nuisance_grid)")
        both = sorted(set(names) & set(nuisances))
        if both:
            raise InvalidInputError(f"neyman_belt: {both} are in both grid and nuisance_grid")
        for n, a in zip(nuisances, nuisance_axes):
            if a.size > 1 and not np.all(np.diff(a) > 0):
                raise InvalidInputError(f"neyman_belt: nuisance_grid[{n!r}] must be strictly increasing")
    all_names, all_axes = names + nuisances, axes + nuisance_axes
    shape = tuple(a.size for a in all_axes)
    indices = list(itertools.product(*(range(n) for n in shape)))
    nodes = [{name: float(all_axes[d][i]) for d, (name, i) in enumerate(zip(all_names, idx))} for idx in indices]
    generating = []
    for node in nodes:
        if generate_at is None:
            fit = minimize(likelihood, fixed=node, hesse=False, **fit_kwargs)
            generating.append(fit.values)
        else:
            generating.append(likelihood.parameters.validate({**generate_at, **node}))
    if method == "exact":
        return _exact_belt(likelihood, names, axes, nuisances, nuisance_axes, nodes, generating, cls, exact_tail,
                           max_lattice_points, n_workers, executor, client, progress, fit_kwargs)
    # about four jobs per worker, never splitting below one toy
    per_point = max(1, min(n_toys, math.ceil(4 * max(n_workers, 1) / len(nodes))))
    edges = np.linspace(0, n_toys, per_point + 1).astype(int)
    jobs, owners = [], []
    for k, (node, gen) in enumerate(zip(nodes, generating)):
        tested = {n: node[n] for n in names}
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi > lo:
                if stream == "shared":
                    streams = [("shared", seed, k, i) for i in range(lo, hi)]
                else:
                    streams = [("independent", seed, "neyman_belt", i) for i in range(lo, hi)]
                jobs.append((likelihood, gen, tested, nuisances, streams, fit_kwargs))
                owners.append(k)
    results = map_jobs(toy_profile_statistics, jobs, n_workers=n_workers, executor=executor, client=client,
                       progress=progress, desc="Neyman toys")
    stat = np.full((len(nodes), n_toys), np.nan)
    nu_hat = np.full((len(nodes), n_toys, len(nuisances)), np.nan)
    filled = np.zeros(len(nodes), dtype=int)
    for k, res in zip(owners, results):
        good = res[:, 1] > 0
        t = np.where(good, res[:, 0], np.nan)
        stat[k, filled[k]:filled[k] + len(t)] = t
        nu_hat[k, filled[k]:filled[k] + len(t)] = np.where(good[:, None], res[:, 2:], np.nan)
        filled[k] += len(t)
    n_failed = np.sum(np.isnan(stat), axis=1)
    crit = np.stack([_quantile(stat, c) for c in cls], axis=-1)
    coords = {name: axis for name, axis in zip(all_names, all_axes)}
    coords.update(cl=cls, parameter=list(likelihood.names))
    dims = tuple(all_names)
    data = {
        "statistic": ((*dims, "toy"), stat.reshape(*shape, n_toys)),
        "critical_value": ((*dims, "cl"), crit.reshape(*shape, len(cls))),
        "n_failed": (dims, n_failed.reshape(shape)),
        "generated_at": ((*dims, "parameter"), np.array([[g[n] for n in likelihood.names] for g in generating]).reshape(*shape, -1)),
    }
    if nuisances:
        data["profiled_nuisance"] = ((*dims, "toy", "nuisance"), nu_hat.reshape(*shape, n_toys, len(nuisances)))
        coords["nuisance"] = list(nuisances)
    return xr.Dataset(data, coords=coords,
                      attrs={"n_toys": n_toys, "seed": int(seed), "stream": stream, "tested": ",".join(names),
                             "nuisances": ",".join(nuisances), "method": "toys"})


def _exact_belt(likelihood, names, axes, nuisances, nuisance_axes, nodes, generating, cls, tail, max_points,
                n_workers, executor, client, progress, fit_kwargs):
    """The exact belt (see :mod:`sbihep.fit.neyman_exact`): one lattice per tested point."""
    import xarray as xr

    from sbihep.fit.neyman_exact import counting_lattice, lattice_statistics

    all_names = names + nuisances
    shape = tuple(a.size for a in axes + nuisance_axes)
    t_shape = tuple(a.size for a in axes)
    n_nu = int(np.prod([a.size for a in nuisance_axes])) if nuisances else 1
    lattices = []  # per tested point: counts, prob (n_nu, n), missing (n_nu,)
    for kk in range(int(np.prod(t_shape))):
        gens = generating[kk * n_nu:(kk + 1) * n_nu]
        lattices.append(counting_lattice(likelihood, gens, tail=tail, max_lattice_points=max_points))
    union, where = {}, []
    for counts, _, _ in lattices:
        idx = []
        for c in map(tuple, counts.astype(int).tolist()):
            idx.append(union.setdefault(c, len(union)))
        where.append(np.array(idx, dtype=int))
    all_counts = np.array(list(union), dtype=float)
    tested_points = [{n: nodes[kk * n_nu][n] for n in names} for kk in range(len(lattices))]
    mask = np.zeros((len(all_counts), len(lattices)), dtype=bool)
    for kk, idx in enumerate(where):
        mask[idx, kk] = True
    chunks = np.array_split(np.arange(len(all_counts)), max(1, min(len(all_counts), 8 * max(n_workers, 1))))
    jobs = [(likelihood, all_counts[c], tested_points, mask[c], nuisances, fit_kwargs) for c in chunks if c.size]
    res = np.concatenate(map_jobs(lattice_statistics, jobs, n_workers=n_workers, executor=executor, client=client,
                                  progress=progress, desc="exact lattice fits"))
    n_max = max(len(w) for w in where)
    n_count = all_counts.shape[1]
    stat = np.full((len(lattices), n_nu, n_max), np.nan)
    weight = np.zeros((len(lattices), n_nu, n_max))
    nu_hat = np.full((len(lattices), n_nu, n_max, len(nuisances)), np.nan)
    lattice_counts = np.full((len(lattices), n_max, n_count), np.nan)
    missing = np.zeros((len(lattices), n_nu))
    n_failed = np.zeros((len(lattices), n_nu), dtype=int)
    for kk, (idx, (counts, prob, miss)) in enumerate(zip(where, lattices)):
        r = res[idx, kk]
        good = r[:, 1] > 0
        n = len(idx)
        stat[kk, :, :n] = np.where(good, r[:, 0], np.nan)[None, :]
        weight[kk, :, :n] = prob
        nu_hat[kk, :, :n] = np.where(good[:, None], r[:, 2:], np.nan)[None]
        lattice_counts[kk, :n] = counts
        missing[kk] = miss
        n_failed[kk] = int((~good).sum())
    stat_nodes = stat.reshape(-1, n_max)
    w_nodes = np.where(np.isfinite(stat_nodes), weight.reshape(-1, n_max), 0.0)
    crit = np.stack([discrete_quantile(stat_nodes, c, axis=1, weights=w_nodes) for c in cls], axis=-1)
    coords = {name: axis for name, axis in zip(all_names, axes + nuisance_axes)}
    coords.update(cl=cls, parameter=list(likelihood.names))
    dims = tuple(all_names)
    data = {
        "statistic": ((*dims, "toy"), stat.reshape(*shape, n_max)),
        "weight": ((*dims, "toy"), weight.reshape(*shape, n_max)),
        "critical_value": ((*dims, "cl"), crit.reshape(*shape, len(cls))),
        "n_failed": (dims, n_failed.reshape(shape)),
        "missing_probability": (dims, missing.reshape(shape)),
        "generated_at": ((*dims, "parameter"), np.array([[g[n] for n in likelihood.names] for g in generating]).reshape(*shape, -1)),
        "lattice_counts": ((*names, "toy", "count"), lattice_counts.reshape(*t_shape, n_max, n_count)),
    }
    if nuisances:
        data["profiled_nuisance"] = ((*dims, "toy", "nuisance"), nu_hat.reshape(*shape, n_max, len(nuisances)))
        coords["nuisance"] = list(nuisances)
    return xr.Dataset(data, coords=coords,
                      attrs={"n_toys": int(n_max), "seed": -1, "stream": "none", "tested": ",".join(names),
                             "nuisances": ",".join(nuisances), "method": "exact", "exact_tail": float(tail)})


def _quantile(stat: np.ndarray, q: float) -> np.ndarray:
    """Row-wise conservative quantile of (points, toys) t, NaN (failed toys) ignored; NaN where no toy converged."""
    out = np.full(stat.shape[0], math.nan)
    ok = np.any(np.isfinite(stat), axis=1)
    if ok.any():
        out[ok] = discrete_quantile(stat[ok], q, axis=1)
    return out


def _belt_names(belt) -> tuple[list[str], list[str]]:
    tested = belt.attrs["tested"].split(",")
    nuisances = [n for n in str(belt.attrs.get("nuisances", "")).split(",") if n]
    return tested, nuisances


def _check_cl(belt, cl: float, who: str) -> None:
    if not any(abs(float(c) - cl) <= 1e-9 for c in np.atleast_1d(belt["cl"].values)):
        raise InvalidInputError(f"{who}: cl {cl} is not in the belt's {belt['cl'].values.tolist()}")


def critical_value(belt, point: Mapping[str, float], cl: float) -> float:
    """c_α at ``point`` (tested parameters, and the nuisances of a nuisance belt), multilinearly
    interpolated between grid nodes; ``cl`` must be one of the belt's.

    Raises:
        InvalidInputError: a cl not in the belt, a point lacking a belt parameter, or outside the grid
            (a critical value is never extrapolated).
    """
    _check_cl(belt, cl, "critical_value")
    return _fixed_table(belt, cl, "critical_value")(point)


def tie_tolerance(belt) -> float:
    """What a fixed belt adds to c_α in the rule t_obs ≤ c_α + tolerance: TIE_TOLERANCE on an exact
    belt (its quantile is the t of one lattice point, which the data's refit must not lose to fit
    noise), 0 on a toy belt."""
    return TIE_TOLERANCE if is_exact(belt) else 0.0


def _fixed_table(belt, cl: float, who: str) -> GridTable:
    tested, nuisances = _belt_names(belt)
    names = tested + nuisances
    crit = belt["critical_value"].sel(cl=cl, method="nearest").transpose(*names)
    try:
        return GridTable(names, [np.asarray(belt[n], dtype=float) for n in names], np.asarray(crit, dtype=float))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{who}: {exc}") from None


class _DataCritical:
    """c(θ; D) for one data set: a fixed belt's interpolated c_α, or a nuisance construction's."""

    def __init__(self, belt, cl: float, construction: str | None, gamma: float, margin, who: str) -> None:
        tested, nuisances = _belt_names(belt)
        self.tested, self.nuisances = tested, nuisances
        if nuisances:
            self.construction = NuisanceConstruction(belt, cl, construction or "calibrated", gamma=gamma, margin=margin)
            self.fixed = None
        else:
            if construction not in (None, "profile"):
                raise InvalidInputError(f"{who}: construction {construction!r} needs a nuisance belt "
                                        "(neyman_belt(..., nuisance_grid=...)); this belt is the profile construction")
            _check_cl(belt, cl, who)
            self.fixed = _fixed_table(belt, cl, who)
            self.construction = None
        self.tie = tie_tolerance(belt)

    def __call__(self, likelihood, point: Mapping[str, float], cond_values: Mapping[str, float], cond_nll: float,
                 fit_kwargs) -> float:
        if self.fixed is not None:
            return self.fixed(point) + self.tie
        return self.construction.critical(likelihood, point, cond_values, cond_nll, **fit_kwargs)


def neyman_interval(
    likelihood: Likelihood,
    belt,
    cl: float = ONE_SIGMA,
    *,
    scan=None,
    construction: str | None = None,
    gamma: float = 0.01,
    margin: float | None = None,
    xtol: float | None = None,
    **fit_kwargs: Any,
) -> ConfidenceSet:
    """The Neyman confidence set of one tested parameter on the data of ``likelihood``.

    The set is {θ : t_obs(θ) ≤ c(θ; D)}: d(θ) = t_obs(θ) − c(θ; D) is evaluated on the belt's grid
    and at the best fit θ̂ (where t_obs = 0), every maximal run of accepted points (d ≤ 0) is one
    piece of the set, and each end of a piece is found by Brent's method between its last accepted
    and the first rejected point, with a profile fit at every trial θ and c interpolated between
    grid nodes (for a nuisance belt, c(θ; D) of the chosen ``construction`` at the trial θ's own
    ν̂̂).  A piece that stays accepted up to the grid's edge ends there: ``"bound"`` when the edge
    is the parameter's bound, ``"open"`` otherwise (the set extends at least that far).  Where the
    Neyman set is not one interval (accepted grid points separated by rejected ones) every piece is
    returned; a gap narrower than the grid's spacing is not resolved.

    Args:
        likelihood: the observed data's likelihood.
        belt: from :func:`neyman_belt` over one tested parameter (and possibly a nuisance grid).
        cl: confidence level (one of the belt's cls for a fixed belt; any for a nuisance belt).
        scan: optional 1D :func:`~sbihep.fit.scan.profile_scan` on the belt's grid (checked to be
            on the same grid).
        construction, gamma, margin: for a nuisance belt, see :mod:`sbihep.fit.neyman_nuisance`
            (default ``"calibrated"``); a fixed belt accepts only None/``"profile"``.
        xtol: absolute tolerance on the ends (default 1e-7 × the grid's span).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.

    Returns:
        :class:`~sbihep.fit.confidence_set.ConfidenceSet` (method ``"neyman"``), the pieces lowest
        first; ``.low``/``.high`` (and ``.low_closed``/``.high_closed``) are those of the hull, as
        the single :class:`~sbihep.fit.confidence_set.Interval` returned before.  ``info`` holds
        the grid's d values (``grid``, ``margin``), the construction and ``n_profile_fits``.

    Raises:
        InvalidInputError: a belt over several parameters, a cl the fixed belt lacks, a scan on
            another grid, or no accepted point (no grid point nor the best fit).
        ConvergenceError: the free fit, or a profile fit at a trial point, failed.
    """
    tested, nuisances = _belt_names(belt)
    if len(tested) != 1:
        raise InvalidInputError(f"neyman_interval: the belt must test one parameter, tests {tested}")
    name = tested[0]
    crit = _DataCritical(belt, cl, construction, gamma, margin, "neyman_interval")
    x_grid = np.asarray(belt[name], dtype=float)
    free = minimize(likelihood, hesse=False, **{k: v for k, v in fit_kwargs.items() if k != "hesse"})
    fixed_all = dict(likelihood.fixed)
    n_fits = [0]

    def evaluate(x: float, start: Mapping[str, float]) -> tuple[float, float, dict]:
        cond = minimize(likelihood, start={**start, name: x}, fixed={name: x}, hesse=False, on_failure="flag", **fit_kwargs)
        n_fits[0] += 1
        if not cond.converged:
            raise ConvergenceError(f"neyman_interval: the profile fit at {name} = {x:.6g} failed: {cond.message}")
        t = max(2.0 * (cond.nll - min(free.nll, cond.nll)), 0.0)
        return t - crit(likelihood, {name: x}, cond.values, cond.nll, fit_kwargs), t, cond.values

    start = {k: v for k, v in free.values.items() if k not in fixed_all}
    points: dict[float, tuple[float, dict]] = {}
    if scan is not None:
        q = np.asarray(scan["twice_delta_nll"], dtype=float)
        if q.shape != x_grid.shape or not np.allclose(np.asarray(scan[name], dtype=float), x_grid):
            raise InvalidInputError("neyman_interval: scan and belt grids differ")
    lo_grid, hi_grid = float(x_grid.min()), float(x_grid.max())
    x_best = float(free.values[name])
    current = dict(start)
    for x in sorted({*x_grid.tolist()} | ({x_best} if lo_grid <= x_best <= hi_grid else set())):
        nearest_start = current if x != x_best else start
        try:
            d, _, values = evaluate(x, nearest_start)
        except ConvergenceError:
            points[x] = (math.inf, nearest_start)  # a failed fit is never accepted
            continue
        points[x] = (d, {k: v for k, v in values.items() if k not in fixed_all})
        current = points[x][1]
    xs = np.array(sorted(points))
    ds = np.array([points[x][0] for x in xs])
    accepted = ds <= 0
    if not accepted.any():
        raise InvalidInputError(
            f"neyman_interval: neither the best fit {name} = {x_best:.6g} nor any grid point is accepted at cl {cl} "
            f"(smallest t_obs − c = {np.min(ds):.3g}): the belt's grid does not reach the interval — extend it")
    tol = xtol if xtol is not None else 1e-7 * max(hi_grid - lo_grid, 1e-300)
    bound_low, bound_high = likelihood.parameters[name].bounds

    def d_between(a: float, b: float, seed_values: Mapping[str, float]):
        def f(x: float) -> float:
            if x in (a, b):
                return points[x][0] if math.isfinite(points[x][0]) else 1e300
            return evaluate(x, seed_values)[0]
        return f

    def end(i: int, direction: int) -> tuple[float, str]:
        """The end of the piece whose outermost accepted point (in ``direction``) is xs[i]."""
        if not 0 <= i + direction < len(xs):
            edge = float(xs[i])
            on_bound = math.isclose(edge, bound_low if direction < 0 else bound_high, rel_tol=0.0,
                                    abs_tol=1e-12 * max(1.0, abs(edge)))
            return edge, "bound" if on_bound else "open"
        a, b = float(xs[i]), float(xs[i + direction])
        root = optimize.brentq(d_between(a, b, points[xs[i]][1]), a, b, xtol=tol, rtol=4 * np.finfo(float).eps,
                               maxiter=200)
        return float(root), "closed"

    pieces = []
    i = 0
    while i < len(xs):
        if not accepted[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(xs) and accepted[j + 1]:
            j += 1
        low, low_end = end(i, -1)
        high, high_end = end(j, +1)
        best = x_best if low <= x_best <= high else float(xs[i + int(np.argmin(ds[i:j + 1]))])
        pieces.append(Interval(name, best, low, high, cl, method="neyman", low_end=low_end, high_end=high_end))
        i = j + 1
    info = {"grid": xs.tolist(), "margin": ds.tolist(), "n_profile_fits": n_fits[0],
            "construction": (construction or "calibrated") if nuisances else "profile"}
    return ConfidenceSet(name, x_best, tuple(merge_pieces(pieces)), cl, "neyman", (x_best,), info)


def neyman_region(likelihood: Likelihood, belt, cl: float = ONE_SIGMA, *, scan=None, construction: str | None = None,
                  gamma: float = 0.01, margin: float | None = None, **fit_kwargs: Any):
    """The Neyman confidence set of two (or more) tested parameters on the belt's grid.

    t_obs is profiled on the belt's grid (or taken from ``scan``, a :func:`~sbihep.fit.scan.profile_scan`
    on that grid).  For a nuisance belt, c(θ_k; D) is the ``construction``'s at each node
    (see :mod:`sbihep.fit.neyman_nuisance`), from the scan's profiled nuisances.

    Returns:
        ``xarray.Dataset`` on the belt's grid: ``accepted`` (bool: t_obs ≤ c_α and the fit converged),
        ``margin`` = t_obs − c_α (its zero level is the set's boundary), ``twice_delta_nll`` (t_obs),
        ``critical_value`` (c_α); attrs ``cl`` and the ``area`` of the accepted set for two parameters
        (the number of accepted cells × the cell area of a regular grid — a grid-resolution estimate).
    Raises:
        InvalidInputError: a ``cl`` the belt does not hold, or a scan on another grid.
    """
    import xarray as xr

    names, nuisances = _belt_names(belt)
    crit_of = _DataCritical(belt, cl, construction, gamma, margin, "neyman_region")
    if scan is None:
        scan = profile_scan(likelihood, {n: np.asarray(belt[n], dtype=float) for n in names}, **fit_kwargs)
    q = scan["twice_delta_nll"]
    if list(q.dims) != names or any(not np.allclose(np.asarray(scan[n]), np.asarray(belt[n])) for n in names):
        raise InvalidInputError(f"neyman_region: the scan's grid {list(q.dims)} differs from the belt's {names}")
    shape = tuple(q.shape)
    crit = np.empty(shape)
    profiled = np.asarray(scan["profiled"].transpose(*names, "parameter"), dtype=float)
    nll = np.asarray(scan["nll"], dtype=float)
    for idx in np.ndindex(*shape):
        point = {n: float(belt[n].values[i]) for n, i in zip(names, idx)}
        values = dict(zip(likelihood.names, profiled[idx].tolist()))
        crit[idx] = crit_of(likelihood, point, values, float(nll[idx]), fit_kwargs)
    converged = np.asarray(scan["converged"], dtype=bool)
    margin_ = np.where(converged, np.asarray(q, dtype=float) - crit, np.nan)
    coords = {n: np.asarray(belt[n]) for n in names}
    ds = xr.Dataset(
        {
            "accepted": (names, np.nan_to_num(margin_, nan=np.inf) <= 0),
            "margin": (names, margin_),
            "twice_delta_nll": (names, np.asarray(q, dtype=float)),
            "critical_value": (names, crit),
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


def _toy_interval(likelihood: Likelihood, belt, theta: Mapping[str, float], cl: float, seed: int, index: int,
                  stream: str, interval_kwargs: Mapping[str, Any], fit_kwargs: Mapping[str, Any]) -> tuple[float, float]:
    rng = toy_seed(seed, 1_000_003, index) if stream == "shared" else toy_stream(seed, "neyman_expected", theta, index)
    iv = neyman_interval(likelihood.toy(theta, rng), belt, cl, **interval_kwargs, **fit_kwargs)
    return iv.low, iv.high


def neyman_expected(
    likelihood: Likelihood,
    belt,
    theta: Mapping[str, float],
    cl: float = ONE_SIGMA,
    *,
    n_toys: int = 0,
    seed: int = 1,
    stream: str = "independent",
    construction: str | None = None,
    gamma: float = 0.01,
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool = False,
    **fit_kwargs: Any,
):
    """Expected Neyman intervals under the hypothesis ``theta`` (all parameters by name).

    Toys are drawn from streams of (seed, θ, toy index) (``stream="shared"``: the old (seed, index));
    ``construction``/``gamma`` are passed to :func:`neyman_interval`.

    Returns:
        ``xarray.Dataset``: ``asimov`` (``end`` = low, high) — the interval on the Asimov data set
        at θ; with ``n_toys`` > 0 also ``band`` (``quantile``, ``end``) — the −2σ…+2σ quantiles
        (:data:`BAND_QUANTILES`) of each end over toys drawn at θ, and ``toy_ends`` (``toy``, ``end``).
    """
    import xarray as xr

    check_stream(stream, "neyman_expected")
    full = likelihood.parameters.validate(theta)
    interval_kwargs = {"construction": construction, "gamma": gamma}
    asimov = neyman_interval(likelihood.asimov(full), belt, cl, **interval_kwargs, **fit_kwargs)
    ds = xr.Dataset({"asimov": (("end",), [asimov.low, asimov.high])}, coords={"end": ["low", "high"]},
                    attrs={"cl": cl, "parameter": asimov.parameter})
    if n_toys:
        jobs = [(likelihood, belt, full, cl, seed, i, stream, interval_kwargs, fit_kwargs) for i in range(int(n_toys))]
        ends = np.array(map_jobs(_toy_interval, jobs, n_workers=n_workers, executor=executor, client=client,
                                 progress=progress, desc="expected intervals"))
        ds["toy_ends"] = (("toy", "end"), ends)
        ds["band"] = (("quantile", "end"), np.quantile(ends, BAND_QUANTILES, axis=0))
        ds = ds.assign_coords(quantile=list(BAND_QUANTILES))
    return ds
