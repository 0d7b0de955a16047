"""Neyman constructions with nuisance parameters: which critical value a data set is tested against.

A *nuisance belt* (:func:`~sbihep.fit.neyman.neyman_belt` with ``nuisance_grid``) holds, for every
node (θ_k, ν_j) of a grid over the tested parameters θ *and* the nuisances ν, toys drawn at
(θ_k, ν_j) with their t(θ_k) and their profiled ν̂̂(θ_k).  From it three constructions give the
critical value c(θ; D) a data set D is tested against (θ accepted iff t_D(θ) ≤ c(θ; D)):

- ``"profile"`` — c = Q_cl(θ, ν̂̂(θ; D)), the toy quantile at the nuisances profiled on D
  (interpolated in the belt): the usual profile ("hybrid") construction, evaluated at each data
  set's own ν̂̂ — which is what it is in use, so coverage tests it honestly.  It covers only
  approximately: exactly in the asymptotic limit, and wrongly where Q_cl(θ, ν) changes fast in ν —
  at the corners where θ and ν sit on their bounds (LF2I OnOff: −2.9% at 68% at (μ, ν) = (0, 1.4)).
- ``"calibrated"`` (default) — c = h(θ, ν̂̂(θ; D)), with the function h(θ_k, ·) chosen on the belt's
  toys so that at *every* nuisance node the fraction of toys accepted, P_{θ_k, ν_j}[t ≤ h(θ_k,
  ν̂̂)], is at least cl (+ a margin for the toys' binomial noise).  This is a Neyman construction
  of the two-dimensional statistic (t, ν̂̂) whose acceptance region {t ≤ h(ν̂̂)} does not depend on
  the unknown ν and whose size is controlled at every node: coverage ≥ cl pointwise on the
  nuisance grid, up to toy error (and, between nodes, up to the smoothness of the coverage in ν).
  It starts from the profile construction (h = Q_cl) and moves each node's h until that node's
  coverage reaches the target (Gauss–Seidel sweeps, then raising-only passes, which never lower
  any node's coverage), then lowers each h_j as far as every node's target allows (lowering
  passes, which keep every node covered).  On an *exact* belt (``neyman_belt(...,
  method="exact")``, counting models: lattice probabilities instead of toys, see
  :mod:`sbihep.fit.neyman_exact`) node coverages are exact, no toy margin is added, and the
  overcoverage left is mostly what the point masses of t force: LF2I OnOff, 33 ν nodes, worst
  +2.7% at 68% at (μ, ν) = (0, 0.6), where even the test that knows ν overcovers by +2.2% (both
  parameters on their lower bounds: for n_off below its mean both fits put ν on 0.6 and t
  depends on n_on alone, t = 0 for n_on ≤ 42 — 65.6% — and the 68.27% quantile falls in the
  atom n_on = 43, t = 0.0236, which holds 2.9%); see benchmarks/results (``onoff_*``).
  Coverage between nodes is not controlled (only through the smoothness in ν).  It is the
  Berger–Boos idea taken to its limit: instead of the worst critical value over a nuisance
  confidence set it calibrates the plug-in threshold itself, which keeps the overcoverage near
  what the discreteness of t forces.
- ``"berger_boos"`` — c = sup_{ν ∈ C_γ(θ; D)} Q_{cl+γ}(θ, ν) (Berger & Boos, JASA 89 (1994) 1012),
  C_γ = {ν : 2[nll_D(θ, ν) − nll_D(θ, ν̂̂)] ≤ χ²_m⁻¹(1 − γ)} the likelihood-ratio 1 − γ set for the
  m nuisances at the tested θ.  P(reject θ_true) ≤ P(ν ∉ C_γ) + P(t > Q_{cl+γ}(θ, ν_true)) ≤ γ + (1 −
  cl − γ), so coverage ≥ cl pointwise, as long as C_γ covers at 1 − γ (its Wilks threshold is
  asymptotic; an error δ in its coverage moves the bound by δ, e.g. 0.002 for γ = 0.01).  γ = 0.01
  (default) keeps the level shift small at 68% and 95%, and the set about ±2.6σ_ν wide.  It
  overcovers wherever Q(θ, ν) varies across C_γ (at the OnOff corners by up to ~13% at 68%).
  The sup is taken over the belt's nuisance grid refined ``refine`` times, the set dilated by one
  refined step (conservative), with ν̂̂ itself always included.

Without a nuisance grid (toys at ν̂̂ of the *observed* data, the belt's default) a belt is the
profile construction for one data set; testing it on other data sets (``coverage`` with a fixed
belt) measures a fixed test, not the construction as used.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import ConvergenceError, CoverageWarning, InvalidInputError

#: Resolution of t: fitted t carry errors of this order (MINUIT's EDM at the default tolerance), so
#: data and toys whose exact t tie (e.g. t = 0 when the tested point is the bounded best fit) must
#: not be split by fit noise; thresholds are compared as t ≤ c + TIE_TOLERANCE.
TIE_TOLERANCE = 1e-3

__all__ = ["TIE_TOLERANCE", "CONSTRUCTIONS", "NuisanceConstruction", "calibrated_thresholds", "belt_quantiles", "belt_weights",
           "discrete_quantile", "is_exact", "GridTable"]

#: Constructions a nuisance belt offers (see the module docstring).
CONSTRUCTIONS = ("calibrated", "profile", "berger_boos")


def discrete_quantile(values: np.ndarray, q: float, axis: int = -1, weights: np.ndarray | None = None) -> np.ndarray:
    """The smallest sample value v with F̂(v) ≥ q (NaN ignored): accepting t ≤ v keeps a fraction
    ≥ q of the sample, also when t is discrete (ties, point masses) — the conservative side.

    With ``weights`` (same shape as ``values``, probabilities of an exact belt's lattice points),
    F̂(v) = Σ_{t_i ≤ v} w_i: the weights are *not* renormalised, so probability left out of the
    lattice (and NaN values) counts as rejected — conservative.  NaN where no v reaches q.
    """
    if weights is None:
        return np.nanquantile(values, q, axis=axis, method="inverted_cdf")
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    w = np.moveaxis(np.asarray(weights, dtype=float), axis, -1)
    w = np.where(np.isfinite(v), w, 0.0)
    order = np.argsort(np.where(np.isfinite(v), v, np.inf), axis=-1, kind="stable")
    vs = np.take_along_axis(v, order, axis=-1)
    cum = np.cumsum(np.take_along_axis(w, order, axis=-1), axis=-1)
    hit = cum >= q * (1.0 - 1e-12)
    first = np.argmax(hit, axis=-1)
    out = np.take_along_axis(vs, first[..., None], axis=-1)[..., 0]
    return np.where(hit.any(axis=-1), out, np.nan)


def belt_weights(belt) -> np.ndarray:
    """The probability of every belt entry, array shaped like ``belt["statistic"]``: an exact belt's
    lattice-point probabilities (its ``weight``), or 1/n over a toy belt's n converged toys at each
    node; 0 where t is NaN (a failed fit)."""
    stat = np.asarray(belt["statistic"], dtype=float)
    valid = np.isfinite(stat)
    if "weight" in belt:
        return np.where(valid, np.asarray(belt["weight"], dtype=float), 0.0)
    n = valid.sum(axis=-1, keepdims=True)
    return np.where(valid, 1.0 / np.maximum(n, 1), 0.0)


def is_exact(belt) -> bool:
    """Whether the belt holds exact lattice probabilities (``neyman_belt(..., method="exact")``)."""
    return "weight" in belt


class GridTable:
    """Multilinear interpolation of a table on a rectilinear grid.

    Args:
        names: the dimensions; axes: their increasing node values; values: array over the axes.

    A point outside the grid raises (a critical value is never extrapolated); a size-1 axis
    accepts only its node value.
    """

    def __init__(self, names: Sequence[str], axes: Sequence[np.ndarray], values: np.ndarray) -> None:
        self.names = list(names)
        self.axes = [np.asarray(a, dtype=float) for a in axes]
        self.values = np.asarray(values, dtype=float)
        for name, a in zip(self.names, self.axes):
            if a.size > 1 and not np.all(np.diff(a) > 0):
                raise InvalidInputError(f"GridTable: the grid of {name!r} must be strictly increasing")

    def weights(self, point: Sequence[float], *, clip: bool = False) -> tuple[list[tuple[int, ...]], list[float]]:
        """The nodes (index tuples) and weights of the interpolation at ``point`` (in ``names`` order)."""
        per_dim = []
        for name, a, x in zip(self.names, self.axes, point):
            x = float(x)
            scale = 1e-9 * max(1.0, abs(a[0]), abs(a[-1]))
            if clip:
                x = min(max(x, a[0]), a[-1])
            if not a[0] - scale <= x <= a[-1] + scale:
                raise InvalidInputError(f"{name} = {x:.6g} lies outside the belt's grid [{a[0]:.6g}, {a[-1]:.6g}]")
            if a.size == 1:
                per_dim.append([(0, 1.0)])
                continue
            i = int(np.clip(np.searchsorted(a, x, side="right") - 1, 0, a.size - 2))
            f = min(max((x - a[i]) / (a[i + 1] - a[i]), 0.0), 1.0)
            per_dim.append([(i, 1.0 - f), (i + 1, f)])
        nodes, weights = [], []
        for combo in np.ndindex(*[len(d) for d in per_dim]):
            w = 1.0
            idx = []
            for d, c in enumerate(combo):
                i, wi = per_dim[d][c]
                idx.append(i)
                w *= wi
            if w > 0:
                nodes.append(tuple(idx))
                weights.append(w)
        return nodes, weights

    def __call__(self, point: Mapping[str, float] | Sequence[float], *, clip: bool = False) -> float:
        if isinstance(point, Mapping):
            missing = [n for n in self.names if n not in point]
            if missing:
                raise InvalidInputError(f"the point lacks the belt's parameter(s) {missing}")
            point = [point[n] for n in self.names]
        nodes, weights = self.weights(point, clip=clip)
        return float(sum(w * self.values[idx] for idx, w in zip(nodes, weights)))


def belt_quantiles(belt, cl: float) -> np.ndarray:
    """Q_cl at every belt node (the stored ``critical_value`` when ``cl`` is one of the belt's cls,
    else recomputed from the stored toys), array over the belt's node dims."""
    if not 0 < cl < 1:
        raise InvalidInputError(f"cl must lie in (0, 1), got {cl!r}")
    stored = np.asarray(belt["cl"], dtype=float)
    hit = np.flatnonzero(np.abs(stored - cl) < 1e-12)
    if hit.size:
        return np.asarray(belt["critical_value"].isel(cl=int(hit[0])), dtype=float)
    stat = np.asarray(belt["statistic"], dtype=float)
    return discrete_quantile(stat, cl, weights=belt_weights(belt) if is_exact(belt) else None)


def _split(belt) -> tuple[list[str], list[str]]:
    tested = belt.attrs["tested"].split(",")
    nuisances = [n for n in str(belt.attrs.get("nuisances", "")).split(",") if n]
    return tested, nuisances


def calibrated_thresholds(belt, cl: float, *, margin: float | None = None, max_sweeps: int = 50) -> np.ndarray:
    """The calibrated construction's h at every node of a nuisance belt (see the module docstring).

    Args:
        belt: a nuisance belt (toys, or exact lattice probabilities).
        cl: the confidence level.
        margin: coverage added to ``cl`` as each node's target (default: for a toy belt one
            binomial standard error √(cl(1 − cl)/n) of that node's n converged toys, so that the
            toy noise of the calibration rarely turns into undercoverage; 0 for an exact belt,
            whose node coverages are exact).

    Returns:
        h, array over the belt's node dims (tested, then nuisance dims).  At every node the
        probability (toy fraction, or exact lattice probability) of t ≤ h(ν̂̂) + TIE_TOLERANCE is
        ≥ cl + margin unless that is impossible (then everything the node holds is accepted).
    """
    tested, nuisances = _split(belt)
    if not nuisances:
        raise InvalidInputError("calibrated_thresholds: the belt has no nuisance grid (neyman_belt(..., nuisance_grid=...))")
    if margin is not None and not (math.isfinite(margin) and 0 <= margin < 1 - cl):
        raise InvalidInputError(f"margin must lie in [0, 1 − cl), got {margin!r}")
    stat = np.asarray(belt["statistic"], dtype=float)
    nu_hat = np.asarray(belt["profiled_nuisance"], dtype=float)
    prob = belt_weights(belt)
    exact = is_exact(belt)
    q0 = belt_quantiles(belt, cl)
    t_shape = tuple(belt.sizes[n] for n in tested)
    n_shape = tuple(belt.sizes[n] for n in nuisances)
    n_nodes = int(np.prod(n_shape))
    axes = [np.asarray(belt[n], dtype=float) for n in nuisances]
    table = GridTable(nuisances, axes, np.zeros(n_shape))
    n_corner = 2 ** sum(a.size > 1 for a in axes)
    h_out = np.empty(t_shape + n_shape)
    for k in np.ndindex(*t_shape):
        T = stat[k].reshape(n_nodes, -1) - TIE_TOLERANCE  # the rule is t ≤ h(ν̂̂) + TIE_TOLERANCE
        P = prob[k].reshape(n_nodes, -1)
        V = nu_hat[k].reshape(n_nodes, T.shape[1], len(nuisances))
        valid = np.isfinite(T) & (P > 0)
        # sparse interpolation weights: entry (j, i) reads h at nodes IDX[j, i, :] with weights WT[j, i, :]
        IDX = np.zeros((n_nodes, T.shape[1], n_corner), dtype=int)
        WT = np.zeros((n_nodes, T.shape[1], n_corner))
        cache: dict[tuple, tuple[list[int], list[float]]] = {}
        for j, i in zip(*np.nonzero(valid)):
            key = tuple(V[j, i].tolist())
            if key not in cache:
                nodes, weights = table.weights(V[j, i], clip=True)
                cache[key] = ([int(np.ravel_multi_index(idx, n_shape)) for idx in nodes], weights)
            nodes, weights = cache[key]
            IDX[j, i, :len(nodes)] = nodes
            WT[j, i, :len(nodes)] = weights
        if exact:
            total = np.ones(n_nodes)
            default_margin = np.zeros(n_nodes)
        else:
            total = P.sum(axis=1)
            n_valid = valid.sum(axis=1)
            default_margin = np.sqrt(cl * (1 - cl) / np.maximum(n_valid, 1))
        target = cl + (default_margin if margin is None else float(margin))
        need = np.minimum(target, 1.0) * total - 1e-12
        reachable = np.array([P[j, valid[j]].sum() for j in range(n_nodes)])
        short = reachable < cl * total - 1e-12
        if short.any():
            point = ", ".join(f"{n}={float(belt[n].values[i]):.4g}" for n, i in zip(tested, k))
            where = ", ".join(f"{n}={float(np.ravel(axes[d])[np.unravel_index(j, n_shape)[d]]):.4g}"
                              for j in np.flatnonzero(short)[:1] for d, n in enumerate(nuisances))
            warnings.warn(f"calibrated_thresholds: at {int(short.sum())} node(s) of tested point {point} (first: {where}) "
                          f"failed fits and left-out lattice probability leave only {float(reachable[short].min()):.4g} "
                          f"< cl = {cl:.4g} to accept: coverage there is below cl", CoverageWarning, stacklevel=2)
        need = np.minimum(need, reachable * (1 - 1e-12))
        start = np.asarray(q0[k], dtype=float).reshape(n_nodes)
        cal = _Calibrator(T, P, valid, IDX, WT, need, np.where(np.isfinite(start), start, 0.0))
        cal.run(max_sweeps)
        h_out[k] = cal.h.reshape(n_shape)
    return h_out


class _Calibrator:
    """The calibration of one tested point θ_k: node l's coverage is Σ_i P[l, i] 1[T[l, i] ≤
    Σ_c WT[l, i, c] h[IDX[l, i, c]]], and h is moved until every node reaches ``need``."""

    def __init__(self, T, P, valid, IDX, WT, need, h) -> None:
        self.T, self.P, self.valid, self.IDX, self.WT, self.need = T, P, valid, IDX, WT, need
        self.h = np.array(h, dtype=float)
        self.n = len(need)

    def threshold(self, l: int) -> np.ndarray:
        return np.sum(self.WT[l] * self.h[self.IDX[l]], axis=-1)

    def coverage(self, l: int) -> float:
        ok = self.valid[l]
        return float(np.sum(self.P[l, ok][self.T[l, ok] <= self.threshold(l)[ok]]))

    def excess(self) -> np.ndarray:
        return np.array([self.coverage(l) for l in range(self.n)]) - self.need

    def solve(self, l: int, j: int) -> float:
        """The smallest h_j ≥ 0 that keeps node l's coverage ≥ its target, the other h fixed."""
        ok = self.valid[l]
        w = np.sum(np.where(self.IDX[l, ok] == j, self.WT[l, ok], 0.0), axis=-1)
        rest = self.threshold(l)[ok] - w * self.h[j]
        t, p = self.T[l, ok], self.P[l, ok]
        free = w > 0
        fixed_prob = float(np.sum(p[~free & (t <= rest)]))
        missing = self.need[l] - fixed_prob
        if missing <= 0 or not free.any():
            return 0.0
        req = (t[free] - rest[free]) / w[free]
        order = np.argsort(req, kind="stable")
        cum = np.cumsum(p[free][order])
        m = int(np.searchsorted(cum, missing, side="left"))
        value = req[order][min(m, order.size - 1)]
        return max(0.0, value + 1e-12 * max(1.0, abs(value)))

    def lower(self, max_sweeps: int) -> None:
        """Each h_j down to the smallest value that keeps every node at its target (feasible h stays feasible)."""
        for _ in range(max_sweeps):
            old = self.h.copy()
            for j in np.argsort(-self.excess(), kind="stable"):
                self.h[j] = min(self.h[j], max(self.solve(l, j) for l in range(self.n)))
            if np.max(np.abs(self.h - old)) < 1e-10:
                break

    def raise_to_targets(self) -> None:
        """Raise h until every node reaches its target; raising any h_j never lowers a node's coverage.

        Raising-only passes first (each short node's own h_j to its target); a node that its own
        h_j cannot bring to its target (its data sets' ν̂̂ read other nodes' h) then gets every h its
        data sets read raised to above its largest t, which accepts all it holds (≥ its target,
        which is capped at that).  Ends with every node at its target, up to rounding.
        """
        for _ in range(10 * self.n + 10):
            short = [j for j in range(self.n) if self.coverage(j) < self.need[j]]
            if not short:
                return
            for j in short:
                self.h[j] = max(self.h[j], self.solve(j, j))
        for l in range(self.n):
            if self.coverage(l) < self.need[l]:
                ok = self.valid[l]
                top = float(np.max(self.T[l, ok]))
                top += 1e-9 * max(1.0, abs(top))
                read = np.unique(self.IDX[l, ok][self.WT[l, ok] > 0])
                self.h[read] = np.maximum(self.h[read], top)

    def run(self, max_sweeps: int) -> None:
        for _ in range(max_sweeps):  # Gauss–Seidel: each node's own h to its target
            old = self.h.copy()
            for j in range(self.n):
                self.h[j] = self.solve(j, j)
            if np.max(np.abs(self.h - old)) < 1e-10:
                break
        self.raise_to_targets()
        # lowering passes: no single threshold higher than the targets force (removes the
        # overcoverage the sweeps leave where neighbouring nodes share data sets); each step keeps
        # every node at its target
        self.lower(max_sweeps)
        self.raise_to_targets()  # repairs what rounding in the lowering may have cost (raises only)
        bad = self.excess() < -1e-9
        if bad.any():  # cannot happen: raise_to_targets accepts all of a short node
            raise ConvergenceError(f"calibrated construction: nodes {np.flatnonzero(bad).tolist()} below their targets")


class NuisanceConstruction:
    """c(θ; D) of one construction on a nuisance belt (see the module docstring).

    Args:
        belt: a nuisance belt; cl: the confidence level.
        construction: one of :data:`CONSTRUCTIONS`.
        gamma: the Berger–Boos γ (default 0.01): the nuisance set's 1 − γ and the level cl + γ.
        margin: the calibrated construction's coverage margin (see :func:`calibrated_thresholds`).
        refine: Berger–Boos: refinement of the nuisance grid for the supremum.
    """

    def __init__(self, belt, cl: float, construction: str = "calibrated", *, gamma: float = 0.01,
                 margin: float | None = None, refine: int = 4) -> None:
        if construction not in CONSTRUCTIONS:
            raise InvalidInputError(f"construction must be one of {CONSTRUCTIONS}, got {construction!r}")
        self.tested, self.nuisances = _split(belt)
        if not self.nuisances:
            raise InvalidInputError("a nuisance construction needs a belt with a nuisance grid (neyman_belt(..., nuisance_grid=...))")
        if not 0 < cl < 1:
            raise InvalidInputError(f"cl must lie in (0, 1), got {cl!r}")
        if construction == "berger_boos" and not 0 < gamma < 1 - cl:
            raise InvalidInputError(f"gamma must lie in (0, 1 − cl) = (0, {1 - cl:.4g}), got {gamma!r}")
        if int(refine) != refine or refine < 1:
            raise InvalidInputError(f"refine must be a positive integer, got {refine!r}")
        self.cl, self.construction, self.gamma, self.refine = float(cl), construction, float(gamma), int(refine)
        names = self.tested + self.nuisances
        axes = [np.asarray(belt[n], dtype=float) for n in names]
        if construction == "calibrated":
            values = calibrated_thresholds(belt, cl, margin=margin)
        elif construction == "profile":
            values = belt_quantiles(belt, cl)
        else:
            values = belt_quantiles(belt, cl + gamma)
        if np.any(~np.isfinite(values)):
            raise InvalidInputError("the belt has nodes without any converged toy (critical value NaN)")
        self.table = GridTable(names, axes, values)
        self.nuisance_axes = axes[len(self.tested):]
        self._warned = False

    def critical(self, likelihood, point: Mapping[str, float], nuisance_hat: Mapping[str, float], nll_conditional: float,
                 **fit_kwargs) -> float:
        """c(θ; D) at the tested ``point`` for the data of ``likelihood``, given the conditional fit
        at ``point`` (its values ``nuisance_hat`` and −ln L ``nll_conditional``); it includes
        :data:`TIE_TOLERANCE`, so θ is accepted iff t_D(θ) ≤ c."""
        theta = [float(point[n]) for n in self.tested]
        hat = [float(nuisance_hat[n]) for n in self.nuisances]
        if self.construction != "berger_boos":
            return self.table([*theta, *hat], clip=True) + TIE_TOLERANCE
        return self._berger_boos(likelihood, point, theta, hat, nll_conditional, fit_kwargs) + TIE_TOLERANCE

    def _berger_boos(self, likelihood, point, theta, hat, nll_cond, fit_kwargs) -> float:
        from sbihep.fit.minimize import minimize

        fine = [np.unique(np.concatenate([np.linspace(a[i], a[i + 1], self.refine + 1) for i in range(a.size - 1)]))
                if a.size > 1 else a for a in self.nuisance_axes]
        level = float(stats.chi2.ppf(1 - self.gamma, len(self.nuisances)))
        names = list(likelihood.names)
        others_free = [n for n in names if n not in self.tested and n not in self.nuisances and n not in likelihood.fixed]
        base = likelihood.parameters.validate({**dict(point), **dict(zip(self.nuisances, hat))})
        x = np.array([base[n] for n in names], dtype=float)
        index = [names.index(n) for n in self.nuisances]
        shape = tuple(f.size for f in fine)
        inside = np.zeros(shape, dtype=bool)
        for idx in np.ndindex(*shape):
            values = [f[i] for f, i in zip(fine, idx)]
            if others_free:
                fit = minimize(likelihood, start=base, fixed={**dict(point), **dict(zip(self.nuisances, values))},
                               hesse=False, on_failure="flag", **fit_kwargs)
                nll = fit.nll
            else:
                x[index] = values
                nll = likelihood.nll_vector(x)
            inside[idx] = 2.0 * (nll - nll_cond) <= level
        grown = inside.copy()  # dilate by one refined step in every direction (conservative)
        for d in range(len(shape)):
            for shift in (1, -1):
                rolled = np.roll(inside, shift, axis=d)
                edge = [slice(None)] * len(shape)
                edge[d] = 0 if shift == 1 else -1
                rolled[tuple(edge)] = False
                grown |= rolled
        if not self._warned:
            for d, (name, f) in enumerate(zip(self.nuisances, fine)):
                low, high = likelihood.parameters[name].bounds
                lo_edge = np.take(inside, 0, axis=d).any() and f[0] > low
                hi_edge = np.take(inside, -1, axis=d).any() and f[-1] < high
                if lo_edge or hi_edge:
                    warnings.warn(f"berger_boos: the nuisance set for {name!r} reaches the edge of the belt's grid "
                                  f"[{f[0]:.4g}, {f[-1]:.4g}] inside its bounds [{low:.4g}, {high:.4g}]: the supremum "
                                  "misses the part outside the grid (widen nuisance_grid)", stacklevel=3)
                    self._warned = True
        best = self.table([*theta, *hat], clip=True)
        for idx in zip(*np.nonzero(grown)):
            best = max(best, self.table([*theta, *[f[i] for f, i in zip(fine, idx)]]))
        return best


def check_gamma(gamma: float, cl: float) -> float:
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and 0 < gamma < 1 - cl):
        raise InvalidInputError(f"gamma must lie in (0, 1 − cl), got {gamma!r}")
    return float(gamma)
