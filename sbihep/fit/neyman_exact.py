"""Exact Neyman belts for counting models: the distribution of t from the Poisson lattice, not from toys.

For a likelihood made of :class:`~sbihep.fit.counting.CountingTerm` s only, the data are integer
counts n = (n_1 … n_K) with n_i ~ Poisson(λ_i(θ)).  Instead of drawing toys at a belt node, the
belt enumerates every count vector of non-negligible probability (a lattice), fits each one once
(t and ν̂̂ at the tested point depend only on the counts, not on the node they are weighed at)
and gives each the exact probability P(n | node) = Π_i Pois(n_i; λ_i(node)).  Quantiles and the
calibrated construction of :mod:`sbihep.fit.neyman_nuisance` then use these probabilities, so
critical values carry no toy noise — which matters where t has point masses (a tested point on
a bound: t = 0 for a whole region of counts), where toy quantiles are noisy.

The lattice at one tested point θ_k is the union over its nodes (θ_k, ν_j) of the count vectors
inside each count's central 1 − tail/(2K) Poisson range, from which the least probable vectors
are dropped as long as the probability dropped at every node stays ≤ tail/2.  The probability
left out at each node (≤ tail) is stored and counted as *rejected* (conservative): no node's
acceptance probability is overstated.  Cost: one free fit per distinct count vector and one
conditional fit per (tested point, count vector); the lattice grows like Π_i √λ_i, so the
method suits a few counts (``max_lattice_points`` guards against a lattice too large to fit).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import InvalidInputError
from sbihep.fit.counting import CountingTerm
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.statistic import profile_fit

__all__ = ["counting_lattice", "with_counts", "lattice_statistics"]


def _counting_terms(likelihood: Likelihood, who: str) -> list[CountingTerm]:
    terms = list(likelihood.terms)
    bad = [type(t).__name__ for t in terms if not isinstance(t, CountingTerm)]
    if bad:
        raise InvalidInputError(f"{who}: method='exact' needs a likelihood of CountingTerms only (its data are the "
                                f"counts it enumerates); it also has {bad} — use method='toys'")
    return terms


def with_counts(likelihood: Likelihood, counts: np.ndarray) -> Likelihood:
    """The likelihood with every CountingTerm's counts replaced by a slice of ``counts`` (shape (K,),
    the terms' counts concatenated in term order)."""
    terms, new, start = list(likelihood.terms), [], 0
    for term in terms:
        k = term.n_counts
        new.append(term.with_counts(np.asarray(counts[start:start + k], dtype=float)))
        start += k
    return Likelihood(new, fixed=likelihood.fixed, auto_constraints=False)


def counting_lattice(likelihood: Likelihood, points: Sequence[Mapping[str, float]], *, tail: float = 1e-6,
                     max_lattice_points: int = 200_000, who: str = "neyman_belt") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The count vectors of non-negligible probability at any of ``points`` and their probabilities.

    Args:
        likelihood: a likelihood of CountingTerms.
        points: full parameter points (name → value) to weigh the lattice at.
        tail: the probability each point may leave out of the lattice (0 < tail < 0.01).
        max_lattice_points: refuse (InvalidInputError) a candidate box larger than 5× this, or a
            lattice larger than this.

    Returns:
        counts (n, K) float (integers), prob (len(points), n) = P(counts | point), and missing
        (len(points),) = 1 − Σ prob, each ≤ ``tail``.
    """
    if not (isinstance(tail, (int, float)) and 0 < tail < 0.01):
        raise InvalidInputError(f"{who}: exact_tail must lie in (0, 0.01), got {tail!r}")
    if int(max_lattice_points) != max_lattice_points or max_lattice_points < 1:
        raise InvalidInputError(f"{who}: max_lattice_points must be a positive integer, got {max_lattice_points!r}")
    terms = _counting_terms(likelihood, who)
    lam = []
    for p in points:
        full = likelihood.parameters.validate(p)
        lam.append(np.concatenate([t._checked_expected({n: full[n] for n in t.parameters.names}, "expected")
                                   for t in terms]))
    lam = np.array(lam)  # (n_points, K)
    n_points, k = lam.shape
    eps = tail / (4 * k)
    lo = np.min(stats.poisson.ppf(eps, lam), axis=0)
    hi = np.max(stats.poisson.isf(eps, lam), axis=0)
    lo = np.where(np.isfinite(lo), np.maximum(lo, 0), 0).astype(int)
    hi = np.where(np.isfinite(hi), hi, 0).astype(int)
    ranges = [np.arange(a, b + 1) for a, b in zip(lo, hi)]
    box = math.prod(r.size for r in ranges)
    if box > 5 * max_lattice_points:
        raise InvalidInputError(f"{who}: the exact lattice would hold {box} count vectors (> 5 × max_lattice_points = "
                                f"{5 * max_lattice_points}); raise max_lattice_points or use method='toys'")
    grids = np.meshgrid(*ranges, indexing="ij")
    counts = np.stack([g.ravel() for g in grids], axis=1).astype(float)
    prob = np.ones((n_points, counts.shape[0]))
    for i, r in enumerate(ranges):
        pmf = stats.poisson.pmf(r[None, :], lam[:, i:i + 1])  # (n_points, |r|)
        prob *= pmf[:, np.searchsorted(r, counts[:, i].astype(int))]
    droppable = np.ones(counts.shape[0], dtype=bool)
    for j in range(n_points):
        order = np.argsort(prob[j], kind="stable")
        cum = np.cumsum(prob[j, order])
        small = np.zeros(counts.shape[0], dtype=bool)
        small[order[cum <= tail / 2]] = True
        droppable &= small
    keep = ~droppable
    if keep.sum() > max_lattice_points:
        raise InvalidInputError(f"{who}: the exact lattice holds {int(keep.sum())} count vectors (> max_lattice_points = "
                                f"{max_lattice_points}); raise it or use method='toys'")
    counts, prob = counts[keep], prob[:, keep]
    return counts, prob, np.maximum(1.0 - prob.sum(axis=1), 0.0)


def lattice_statistics(likelihood: Likelihood, counts: np.ndarray, tested: Sequence[Mapping[str, float]],
                       mask: np.ndarray, record: Sequence[str], fit_kwargs: Mapping[str, Any]) -> np.ndarray:
    """t at every tested point (where ``mask`` says) for each count vector (a job for map_jobs):
    one free fit per count vector, one conditional fit per tested point, started at the free fit.
    Fits polish in external coordinates unless ``fit_kwargs`` says ``polish=False``: MIGRAD alone
    can stop on a bound with the gradient pointing inwards (counts (21, 9) of a b = 12 OnOff at
    μ = 0: ν̂̂ = 1.4 instead of 1.25) and each lattice point's t enters with its full probability.

    Returns:
        (len(counts), len(tested), 2 + len(record)): t, converged (0/1), the recorded ν̂̂; NaN where masked out.
    """
    out = np.full((len(counts), len(tested), 2 + len(record)), np.nan)
    fit_kwargs = {"polish": True, **fit_kwargs}
    for i, c in enumerate(counts):
        lik = with_counts(likelihood, c)
        free = minimize(lik, hesse=False, on_failure="flag", **fit_kwargs)
        start = {n: v for n, v in free.values.items() if n not in lik.fixed}
        for j, point in enumerate(tested):
            if not mask[i, j]:
                continue
            t, ok, _, cond = profile_fit(lik, point, start=start, free_fit=free, **fit_kwargs)
            out[i, j, 0], out[i, j, 1] = t, float(ok)
            out[i, j, 2:] = [cond.values[n] for n in record]
    return out
