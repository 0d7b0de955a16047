"""The profile-likelihood-ratio test statistic and its evaluation on toys.

    t(θ₀) = −2 ln [L(θ₀, ν̂̂(θ₀)) / L(θ̂, ν̂)] = 2 [nll(θ₀, ν̂̂) − nll(θ̂, ν̂)]  ≥ 0,

θ₀ the tested values of some parameters, ν̂̂ the others profiled.  With a learned likelihood
(ratio) it is a *learned* statistic; Neyman constructions calibrate it by toys instead of trusting
its asymptotic χ² law (Dalmasso et al., LF2I, arXiv:2107.03920).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize

__all__ = ["profile_statistic", "toy_statistics", "toy_seed"]


def profile_statistic(
    likelihood: Likelihood,
    point: Mapping[str, float],
    *,
    start: Mapping[str, float] | None = None,
    free_fit: FitResult | None = None,
    **fit_kwargs: Any,
) -> tuple[float, bool, str]:
    """t(θ₀) at ``point`` (tested parameter → value); every other free parameter is profiled.

    ``free_fit`` (the unconditional fit, flagged rather than raised on failure) is computed when not
    given; pass it to test several points on one data set.

    Returns:
        (t, converged, message): ``converged`` is False when either fit failed its checks (the
        message says which); t is clipped at 0 (the conditional fit can land a hair below the free
        one within the minimiser's tolerance).
    """
    start = dict(start or {})
    free = free_fit or minimize(likelihood, start=start, hesse=False, on_failure="flag", **fit_kwargs)
    cond = minimize(likelihood, start={**start, **point}, fixed=dict(point), hesse=False, on_failure="flag", **fit_kwargs)
    message = "; ".join(f"{what}: {fit.message}" for what, fit in (("free fit", free), ("conditional fit", cond)) if not fit.converged)
    return max(2.0 * (cond.nll - min(free.nll, cond.nll)), 0.0), free.converged and cond.converged, message


def toy_seed(seed: int, *keys: int) -> np.random.Generator:
    """The Generator of one toy: a function of (seed, keys) only, so results do not depend on how
    toys are split between workers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def toy_statistics(
    likelihood: Likelihood,
    generate_at: Mapping[str, float],
    tested: Sequence[Mapping[str, float]],
    seed: int,
    keys: Sequence[int],
    toy_indices: Sequence[int],
    fit_kwargs: Mapping[str, Any],
) -> np.ndarray:
    """Draw toys at ``generate_at`` and evaluate t at each point of ``tested`` (a job for map_jobs).

    Returns:
        (n_toys, len(tested), 2) float array: t and converged (0/1) per toy and tested point.
    """
    out = np.empty((len(toy_indices), len(tested), 2))
    for i, toy_index in enumerate(toy_indices):
        toy = likelihood.toy(generate_at, toy_seed(seed, *keys, toy_index))
        start = {k: v for k, v in generate_at.items() if k not in likelihood.fixed}
        free = minimize(toy, start=start, hesse=False, on_failure="flag", **fit_kwargs)
        for j, point in enumerate(tested):
            t, ok, _ = profile_statistic(toy, point, start=start, free_fit=free, **fit_kwargs)
            out[i, j] = (t, float(ok))
    return out
