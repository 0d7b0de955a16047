"""Morphing: per-event EFT coefficients from weights at benchmark points, and a benchmark basis to ask for.

Every event's weight is a polynomial in the Wilson coefficients θ (see :mod:`sbihep.events.eft`),

    w_i(θ) = c_i · m(θ),     m(θ) = (1, θ_1 … θ_n, θ_iθ_j for i ≤ j)     (quadratic order),

so the weights of one event at K benchmark points θ_1 … θ_K (e.g. MadGraph's reweighting
weights) satisfy W = C Aᵀ with the (K, M) *morphing matrix* A_kl = m_l(θ_k).  With K = M
linearly independent benchmarks the coefficients follow exactly, C = W A⁻ᵀ; with K > M they
follow by least squares (and the residual tells whether the weights really are a polynomial of
that order).  How well the benchmarks separate the monomials is measured by the condition
number κ(A): weights with relative precision ε give coefficients good to about κ ε.

:func:`propose_basis` picks benchmarks before running the reweighting, as MadMiner's basis
optimisation does (Brehmer, Kling, Espejo, Cranmer, arXiv:1907.10621): it minimises the
expected sum of squared *morphing weights* a_k(θ) (w(θ) = Σ_k a_k(θ) w(θ_k), a(θ) = A⁻ᵀ m(θ))
over the parameter range, which keeps the statistical fluctuations of the benchmark samples
from being amplified when morphing to any θ in the range, and keeps κ(A) small.

Units: weights in pb (any unit works, coefficients come out in the same unit); θ is c/Λ² with
Λ = 1 TeV, as everywhere in sbihep.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events import eft as eft_math
from sbihep.physics.processes.base import EFTOrder, check_order

__all__ = [
    "BasisConditionWarning",
    "MorphingSolution",
    "MorphingBasis",
    "morphing_matrix",
    "condition_number",
    "solve_coefficients",
    "propose_basis",
]

#: κ(A) above which :func:`solve_coefficients` warns that the basis is badly chosen.
WARN_CONDITION = 1e6
#: κ(A) above which the basis counts as singular (the monomials cannot be separated).
SINGULAR_CONDITION = 1e12


class BasisConditionWarning(UserWarning):
    """The benchmark basis is badly conditioned: morphed coefficients lose precision."""


def _benchmark_array(benchmarks, name: str = "benchmarks") -> np.ndarray:
    b = benchmarks.detach().cpu().numpy() if isinstance(benchmarks, torch.Tensor) else np.asarray(benchmarks, dtype=np.float64)
    if b.ndim != 2:
        raise ShapeError(f"{name} must have shape (K, n_operators), got {b.shape}")
    if not np.isfinite(b).all():
        raise InvalidInputError(f"{name} contain NaN or inf")
    return b.astype(np.float64)


def morphing_matrix(benchmarks, order: EFTOrder = "quadratic") -> torch.Tensor:
    """A_kl = m_l(θ_k): (K, n) benchmark points → (K, M) float64, columns as :func:`~sbihep.events.eft.monomial_names`."""
    b = _benchmark_array(benchmarks)
    return eft_math.monomials(torch.from_numpy(b), check_order(order))


def condition_number(benchmarks, order: EFTOrder = "quadratic") -> float:
    """κ(A) = σ_max/σ_min of the morphing matrix (2-norm); ``inf`` when A has fewer rows than columns
    or is rank deficient."""
    a = morphing_matrix(benchmarks, order).numpy()
    if a.shape[0] < a.shape[1]:
        return math.inf
    s = np.linalg.svd(a, compute_uv=False)
    return math.inf if s[-1] == 0 else float(s[0] / s[-1])


@dataclass
class MorphingSolution:
    """Per-event coefficients solved from benchmark weights.

    Attributes:
        coefficients: (N, M) float64 coefficients over the monomials (unit of the weights).
        operators: the operator names (order of the θ columns).
        order: ``"linear"`` or ``"quadratic"``.
        benchmarks: (K, n) the benchmark points used.
        condition_number: κ of the (K, M) morphing matrix.
        max_relative_residual: max over events of ‖W − C Aᵀ‖ / ‖W‖ (0 up to rounding when K = M).
    """

    coefficients: torch.Tensor
    operators: tuple[str, ...]
    order: EFTOrder
    benchmarks: torch.Tensor
    condition_number: float
    max_relative_residual: float

    def monomial_names(self) -> list[str]:
        return eft_math.monomial_names(list(self.operators), self.order)


def solve_coefficients(
    weights,
    benchmarks,
    order: EFTOrder = "quadratic",
    *,
    operators: Sequence[str] | None = None,
    warn_condition: float = WARN_CONDITION,
    singular_condition: float = SINGULAR_CONDITION,
    residual_tolerance: float = 1e-6,
) -> MorphingSolution:
    """Solve w_i(θ_k) = c_i · m(θ_k) for the coefficients c_i of every event.

    Args:
        weights: (N, K) weights of N events at the K benchmarks (pb, or any unit).
        benchmarks: (K, n) benchmark points θ_k (c/Λ², Λ = 1 TeV).
        order: ``"linear"`` (M = 1 + n) or ``"quadratic"`` (M = 1 + n + n(n+1)/2).
        operators: names of the n operators (default ``theta0`` … ``theta{n-1}``).
        warn_condition: warn (:class:`BasisConditionWarning`) when κ(A) exceeds this.
        singular_condition: raise when κ(A) exceeds this (numerically singular basis).
        residual_tolerance: over-determined case: warn when some event's relative least-squares
            residual exceeds this (the weights are not a polynomial of this order).

    Returns:
        :class:`MorphingSolution` with coefficients (N, M) float64.

    Raises:
        ShapeError: inconsistent shapes.
        InvalidInputError: fewer benchmarks than monomials, or a singular basis (the message names
            the monomials that cannot be separated and suggests :func:`propose_basis`).
    """
    order = check_order(order)
    b = _benchmark_array(benchmarks)
    w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, dtype=np.float64)
    w = w.astype(np.float64)
    if w.ndim != 2 or w.shape[1] != b.shape[0]:
        raise ShapeError(f"weights must have shape (N, K) with K = {b.shape[0]} benchmarks, got {w.shape}")
    if not np.isfinite(w).all():
        bad = np.flatnonzero(~np.isfinite(w).all(1))
        raise InvalidInputError(f"weights contain NaN or inf (events {bad[:5].tolist()}…)")
    n = b.shape[1]
    ops = tuple(operators) if operators is not None else tuple(f"theta{i}" for i in range(n))
    if len(ops) != n:
        raise ShapeError(f"operators has {len(ops)} names but benchmarks have {n} columns")
    names = eft_math.monomial_names(list(ops), order)
    a = morphing_matrix(b, order).numpy()
    k, m = a.shape
    if k < m:
        raise InvalidInputError(
            f"benchmarks: {k} points cannot determine the {m} {order} coefficients {names}; "
            f"at least {m} are needed (see sbihep.events.morphing.propose_basis)"
        )
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    kappa = math.inf if s[-1] == 0 else float(s[0] / s[-1])
    if not kappa <= singular_condition:
        null = vt[-1]
        involved = [names[j] for j in np.flatnonzero(np.abs(null) > 1e-3 * np.abs(null).max())]
        raise InvalidInputError(
            f"benchmarks: the basis is singular (condition number {kappa:.3g}): the monomials {involved} "
            "cannot be separated by these points; choose other benchmarks (sbihep.events.morphing.propose_basis)"
        )
    if kappa > warn_condition:
        warnings.warn(
            f"the benchmark basis is badly conditioned (condition number {kappa:.3g} > {warn_condition:.3g}): "
            f"coefficients lose about {math.log10(kappa):.0f} digits; consider sbihep.events.morphing.propose_basis",
            BasisConditionWarning,
            stacklevel=2,
        )
    # least squares through the SVD: C = W U diag(1/s) Vᵀ  (exact inverse when K = M)
    coefficients = ((w @ u) / s) @ vt
    residual = w - coefficients @ a.T
    scale = np.linalg.norm(w, axis=1)
    rel = np.linalg.norm(residual, axis=1) / np.where(scale > 0, scale, 1.0)
    max_rel = float(rel.max()) if len(rel) else 0.0
    if k > m and max_rel > residual_tolerance:
        worst = int(np.argmax(rel))
        warnings.warn(
            f"the weights are not a {order} polynomial in θ to {residual_tolerance:g}: event {worst} has relative "
            f"least-squares residual {max_rel:.3g} (wrong order, or operators missing from the list {list(ops)}?)",
            UserWarning,
            stacklevel=2,
        )
    return MorphingSolution(torch.from_numpy(coefficients), ops, order, torch.from_numpy(b), kappa, max_rel)


@dataclass
class MorphingBasis:
    """Benchmark points proposed by :func:`propose_basis`.

    Attributes:
        operators: operator names.
        order: EFT order the basis resolves.
        points: (K, n) float64 benchmark points.
        condition_number: κ of the morphing matrix.
        expected_squared_weight: E_θ[Σ_k a_k(θ)²] over the parameter range (the objective; ≥ 1/K since Σ_k a_k = 1).
    """

    operators: tuple[str, ...]
    order: EFTOrder
    points: np.ndarray
    condition_number: float
    expected_squared_weight: float

    def as_dicts(self) -> list[dict[str, float]]:
        """The points as [{operator: value}, …]."""
        return [{op: float(v) for op, v in zip(self.operators, row)} for row in self.points]

    def reweight_card(self, param_map: Mapping[str, tuple[str, int]] | None = None, prefix: str = "sbihep_b") -> str:
        """A MadGraph ``reweight_card.dat`` that computes the weights at these points.

        Args:
            param_map: operator → (param_card block, entry), e.g. {"cHW": ("smeft", 7)}; without it the
                operators are set by name (``set cHW 1.0``), which MadGraph accepts for named parameters.
            prefix: weight ids are ``{prefix}{k}``.
        """
        param_map = dict(param_map or {})
        unknown = sorted(set(param_map) - set(self.operators))
        if unknown:
            raise InvalidInputError(f"param_map names operators {unknown} that are not in the basis {list(self.operators)}")
        lines = ["change rwgt_dir rwgt", ""]
        for k, row in enumerate(self.points):
            lines.append(f"launch --rwgt_name={prefix}{k}")
            for op, value in zip(self.operators, row):
                target = f"{param_map[op][0]} {int(param_map[op][1])}" if op in param_map else op
                lines.append(f"    set {target} {float(value)!r}")
            lines.append("")
        return "\n".join(lines)


def _bounds_array(operators: Sequence[str], bounds) -> np.ndarray:
    if isinstance(bounds, Mapping):
        missing = [op for op in operators if op not in bounds]
        unknown = sorted(set(bounds) - set(operators))
        if missing or unknown:
            raise InvalidInputError(f"bounds must give (low, high) for exactly the operators {list(operators)}; missing {missing}, unknown {unknown}")
        arr = np.array([[float(bounds[op][0]), float(bounds[op][1])] for op in operators])
    else:
        value = float(bounds)
        arr = np.array([[-value, value]] * len(operators))
    if not (np.isfinite(arr).all() and (arr[:, 1] > arr[:, 0]).all()):
        raise InvalidInputError(f"bounds must be finite with low < high, got {arr.tolist()}")
    return arr


def _objective(a: np.ndarray, m_eval: np.ndarray) -> float:
    """E_θ Σ_k a_k(θ)², a(θ) = A⁺ᵀ m(θ) (the minimum-norm morphing weights)."""
    try:
        pinv = np.linalg.pinv(a)
    except np.linalg.LinAlgError:
        return math.inf
    if np.linalg.matrix_rank(a) < a.shape[1]:
        return math.inf
    weights = m_eval @ pinv  # (T, K)
    return float((weights**2).sum(1).mean())


def propose_basis(
    operators: Sequence[str],
    order: EFTOrder = "quadratic",
    *,
    bounds: float | Mapping[str, tuple[float, float]] = 1.0,
    n_benchmarks: int | None = None,
    include_sm: bool = True,
    n_iterations: int = 30,
    n_trials: int = 20,
    n_evaluation: int = 500,
    seed: int = 0,
) -> MorphingBasis:
    """Propose well-conditioned benchmark points for a reweighting run.

    Coordinate exchange: start from random points in the box ``bounds``, then repeatedly try
    ``n_trials`` random replacements for each point and keep those that lower the expected squared
    morphing weight E_θ[Σ_k a_k(θ)²] (θ uniform in the box, ``n_evaluation`` points).

    Args:
        operators: the operator names (n of them).
        order: ``"linear"`` or ``"quadratic"``.
        bounds: half-width of a symmetric box for every operator, or {operator: (low, high)}.
        n_benchmarks: number of points K (default M, the number of monomials; more gives least squares).
        include_sm: keep θ = 0 as the first point (the SM sample is usually wanted anyway).
        n_iterations, n_trials: exchange sweeps and random replacements tried per point and sweep.
        n_evaluation: θ points over which the objective is averaged.
        seed: the seed (same seed, same basis).

    Returns:
        :class:`MorphingBasis` with points (K, n).
    """
    order = check_order(order)
    operators = tuple(operators)
    if not operators or len(set(operators)) != len(operators):
        raise InvalidInputError(f"operators must be a non-empty list of distinct names, got {list(operators)}")
    box = _bounds_array(operators, bounds)
    n = len(operators)
    m = eft_math.n_monomials(n, order)
    k = m if n_benchmarks is None else int(n_benchmarks)
    if k < m:
        raise InvalidInputError(f"n_benchmarks must be at least the number of {order} monomials, {m}; got {n_benchmarks}")
    for name, value in (("n_iterations", n_iterations), ("n_trials", n_trials), ("n_evaluation", n_evaluation)):
        if int(value) != value or value < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    low, high = box[:, 0], box[:, 1]

    def draw(size: int) -> np.ndarray:
        return low + (high - low) * rng.random((size, n))

    def mono(points: np.ndarray) -> np.ndarray:
        return eft_math.monomials(torch.from_numpy(points), order).numpy()

    m_eval = mono(draw(n_evaluation))
    points = draw(k)
    if include_sm:
        points[0] = 0.0
    best = _objective(mono(points), m_eval)
    for _ in range(50):  # a random start can be singular: redraw until it is not
        if math.isfinite(best):
            break
        points[int(include_sm):] = draw(k - int(include_sm))
        best = _objective(mono(points), m_eval)
    first = 1 if include_sm else 0
    for _ in range(n_iterations):
        improved = False
        for j in range(first, k):
            candidates = draw(n_trials)
            for cand in candidates:
                trial = points.copy()
                trial[j] = cand
                value = _objective(mono(trial), m_eval)
                if value < best:
                    best, points, improved = value, trial, True
        if not improved:
            break
    return MorphingBasis(operators, order, points, condition_number(points, order), best)
