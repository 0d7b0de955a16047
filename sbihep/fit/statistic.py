"""The profile-likelihood-ratio test statistic and its evaluation on toys.

    t(θ₀) = −2 ln [L(θ₀, ν̂̂(θ₀)) / L(θ̂, ν̂)] = 2 [nll(θ₀, ν̂̂) − nll(θ̂, ν̂)]  ≥ 0,

θ₀ the tested values of some parameters, ν̂̂ the others profiled.  With a learned likelihood
(ratio) it is a *learned* statistic; Neyman constructions calibrate it by toys instead of trusting
its asymptotic χ² law (Dalmasso et al., LF2I, arXiv:2107.03920).

Random streams: :func:`toy_stream` derives each toy's Generator from (seed, purpose tag, the
values of the point the toy is drawn at, toy index), hashed with BLAKE2b, so that no two truth
points, belt points or purposes (belt / coverage / expected intervals) share toys unless asked:
``stream="shared"`` in the callers reproduces the old derivation :func:`toy_seed` (seed, grid index,
toy index), whose streams repeat at every truth point and in every belt with the same seed.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError

from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize

__all__ = ["profile_statistic", "profile_fit", "toy_statistics", "toy_seed", "toy_stream", "STREAMS"]

#: Accepted values of the ``stream`` option of belts and coverage.
STREAMS = ("independent", "shared")


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
    t, ok, message, _ = profile_fit(likelihood, point, start=start, free_fit=free_fit, **fit_kwargs)
    return t, ok, message


def profile_fit(
    likelihood: Likelihood,
    point: Mapping[str, float],
    *,
    start: Mapping[str, float] | None = None,
    free_fit: FitResult | None = None,
    **fit_kwargs: Any,
) -> tuple[float, bool, str, FitResult]:
    """As :func:`profile_statistic`, also returning the conditional fit (ν̂̂ at ``point`` is its
    ``values``), which data-dependent Neyman constructions need."""
    start = dict(start or {})
    free = free_fit or minimize(likelihood, start=start, hesse=False, on_failure="flag", **fit_kwargs)
    cond = minimize(likelihood, start={**start, **point}, fixed=dict(point), hesse=False, on_failure="flag", **fit_kwargs)
    message = "; ".join(f"{what}: {fit.message}" for what, fit in (("free fit", free), ("conditional fit", cond)) if not fit.converged)
    return max(2.0 * (cond.nll - min(free.nll, cond.nll)), 0.0), free.converged and cond.converged, message, cond


def toy_seed(seed: int, *keys: int) -> np.random.Generator:
    """The Generator of one toy: a function of (seed, keys) only, so results do not depend on how
    toys are split between workers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def toy_stream(seed: int, purpose: str, point: Mapping[str, float] | None, index: int) -> np.random.Generator:
    """The Generator of one toy, a function of (seed, purpose, point values, index) only.

    Args:
        seed: the user's seed (integer ≥ 0).
        purpose: a tag such as ``"neyman_belt"`` or ``"coverage"``: different purposes never share toys.
        point: parameter name → value of the point the toy is drawn at (order does not matter;
            −0.0 and 0.0 are the same point); None for no point.
        index: the toy's index at that point.

    The point is hashed (BLAKE2b over the sorted names and the float64 bits of the values), so the
    stream does not depend on how toys are split between workers, nor on a grid's ordering.
    """
    if int(seed) != seed or seed < 0:
        raise InvalidInputError(f"toy_stream: seed must be an integer ≥ 0, got {seed!r}")
    h = hashlib.blake2b(purpose.encode(), digest_size=16)
    for name in sorted(point or {}):
        h.update(name.encode() + b"=" + struct.pack("<d", float(point[name]) + 0.0) + b";")
    words = np.frombuffer(h.digest(), dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words, int(index)]))


def check_stream(stream: str, who: str) -> str:
    if stream not in STREAMS:
        raise InvalidInputError(f"{who}: stream must be one of {STREAMS}, got {stream!r}")
    return stream


def toy_profile_statistics(
    likelihood: Likelihood,
    generate_at: Mapping[str, float],
    point: Mapping[str, float],
    record: Sequence[str],
    streams: Sequence[tuple],
    fit_kwargs: Mapping[str, Any],
) -> np.ndarray:
    """Toys at ``generate_at``, t at ``point`` and the conditional fit's values of ``record`` (a job
    for map_jobs).  ``streams``: one entry per toy, ``("shared", seed, *keys)`` for :func:`toy_seed`
    or ``("independent", seed, purpose, index)`` for :func:`toy_stream` at ``generate_at``.

    Returns:
        (n_toys, 2 + len(record)): t, converged (0/1), then the recorded ν̂̂ values.
    """
    out = np.empty((len(streams), 2 + len(record)))
    start = {k: v for k, v in generate_at.items() if k not in likelihood.fixed}
    for i, spec in enumerate(streams):
        if spec[0] == "shared":
            rng = toy_seed(*spec[1:])
        else:
            rng = toy_stream(spec[1], spec[2], generate_at, spec[3])
        toy = likelihood.toy(generate_at, rng)
        t, ok, _, cond = profile_fit(toy, point, start=start, **fit_kwargs)
        out[i, 0], out[i, 1] = t, float(ok)
        out[i, 2:] = [cond.values[n] for n in record]
    return out


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
