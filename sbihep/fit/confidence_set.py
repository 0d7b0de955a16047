"""Confidence intervals and confidence *sets* (unions of disjoint intervals) of one parameter.

A likelihood with several basins (e.g. a quadratic EFT term against its interference) has a Wilks
region that is not one interval: ``{θ : −2ΔlnL(θ) < χ²₁⁻¹(cl)}`` can be two or more disjoint pieces.
:class:`ConfidenceSet` holds them, each an :class:`Interval`, lowest first.

Each end of each interval says how it was found (:data:`END_KINDS`):

- ``"closed"``: −2ΔlnL crosses the threshold there (found by root finding, or resolved on a grid);
- ``"open"``: the scan or search stopped before the threshold was reached, so the set extends *at
  least* to that value (the true end lies further out);
- ``"bound"``: the set reaches the parameter's bound; the end is the bound itself.

Backward compatibility: a ConfidenceSet also answers ``.parameter``, ``.best``, ``.cl``, ``.method``
and the hull ``.low``/``.high`` with ``.low_closed``/``.high_closed`` (the flags of the hull's
ends), so code written for a single :class:`Interval` keeps working; test membership with
:meth:`ConfidenceSet.contains`, not with ``low <= x <= high``, which ignores the gaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from sbihep.errors import InvalidInputError

__all__ = ["END_KINDS", "Interval", "ConfidenceSet", "merge_pieces"]

#: How an interval end was found: crossing found, search stopped short, or parameter bound.
END_KINDS = ("closed", "open", "bound")


@dataclass(frozen=True)
class Interval:
    """A 1D confidence interval [low, high] around ``best``.

    ``low_closed``/``high_closed`` are False when −2ΔlnL did not reach the threshold before the
    parameter's bound (or the end of the scan): the interval then extends at least to that value.
    ``low_end``/``high_end`` say which (one of :data:`END_KINDS`); when not given they follow the
    closed flags (``"closed"`` or ``"open"``).
    """

    parameter: str
    best: float
    low: float
    high: float
    cl: float
    low_closed: bool = True
    high_closed: bool = True
    method: str = "wilks"
    low_end: str = ""
    high_end: str = ""

    def __post_init__(self) -> None:
        for side in ("low", "high"):
            kind = getattr(self, f"{side}_end")
            closed = getattr(self, f"{side}_closed")
            if not kind:
                object.__setattr__(self, f"{side}_end", "closed" if closed else "open")
            elif kind not in END_KINDS:
                raise InvalidInputError(f"Interval: {side}_end must be one of {END_KINDS}, got {kind!r}")
            elif closed != (kind == "closed"):
                object.__setattr__(self, f"{side}_closed", kind == "closed")
        if not (self.low <= self.high):
            raise InvalidInputError(f"Interval: low {self.low!r} must not exceed high {self.high!r}")

    @property
    def length(self) -> float:
        """high − low."""
        return float(self.high - self.low)

    def contains(self, x: float | np.ndarray) -> bool | np.ndarray:
        """Whether ``x`` lies in [low, high] (ends included)."""
        out = (np.asarray(x) >= self.low) & (np.asarray(x) <= self.high)
        return bool(out) if np.ndim(out) == 0 else out

    @property
    def intervals(self) -> tuple["Interval", ...]:
        """(self,): an interval is a connected set."""
        return (self,)

    @property
    def is_connected(self) -> bool:
        return True

    def describe(self, fmt: str = ".4g") -> str:
        """``[low, high]`` with ``(`` / ``)`` for open ends and ``|`` for ends on a bound."""
        return _describe(self, fmt)


def _describe(iv: Interval, fmt: str) -> str:
    left = {"closed": "[", "open": "(≤", "bound": "|["}[iv.low_end]
    right = {"closed": "]", "open": "≥)", "bound": "]|"}[iv.high_end]
    return f"{left}{iv.low:{fmt}}, {iv.high:{fmt}}{right}"


@dataclass(frozen=True)
class ConfidenceSet:
    """A confidence set of one parameter: disjoint :class:`Interval` pieces, lowest first.

    Attributes:
        parameter: the parameter.
        best: the global best fit.
        intervals: the pieces, sorted and disjoint (a single piece for a connected set).
        cl: confidence level.
        method: how it was computed (``"wilks-profile"``, ``"wilks-scan"``, ...).
        minima: the local minima of the profile inside the set (parameter values, lowest −2ΔlnL first).
        info: free-form diagnostics (e.g. the interpolation error estimate of a scan-read set).
    """

    parameter: str
    best: float
    intervals: tuple[Interval, ...]
    cl: float
    method: str = "wilks"
    minima: tuple[float, ...] = ()
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.intervals:
            raise InvalidInputError("ConfidenceSet: intervals must not be empty")
        ivs = tuple(sorted(self.intervals, key=lambda iv: iv.low))
        for a, b in zip(ivs[:-1], ivs[1:]):
            if not a.high < b.low:
                raise InvalidInputError(f"ConfidenceSet: intervals {a.describe()} and {b.describe()} overlap")
        object.__setattr__(self, "intervals", ivs)

    # --- the hull, for code written for a single Interval ---
    @property
    def low(self) -> float:
        return self.intervals[0].low

    @property
    def high(self) -> float:
        return self.intervals[-1].high

    @property
    def low_closed(self) -> bool:
        return self.intervals[0].low_closed

    @property
    def high_closed(self) -> bool:
        return self.intervals[-1].high_closed

    @property
    def low_end(self) -> str:
        return self.intervals[0].low_end

    @property
    def high_end(self) -> str:
        return self.intervals[-1].high_end

    @property
    def is_connected(self) -> bool:
        """True when the set is one interval."""
        return len(self.intervals) == 1

    @property
    def length(self) -> float:
        """Total length of the pieces (not of the hull)."""
        return float(sum(iv.length for iv in self.intervals))

    @property
    def hull(self) -> Interval:
        """The smallest interval containing the set."""
        return Interval(self.parameter, self.best, self.low, self.high, self.cl, method=self.method,
                        low_end=self.low_end, high_end=self.high_end)

    def contains(self, x: float | np.ndarray) -> bool | np.ndarray:
        """Whether ``x`` lies in one of the pieces."""
        out = np.zeros(np.shape(x), dtype=bool)
        for iv in self.intervals:
            out |= np.asarray(iv.contains(x))
        return bool(out) if out.ndim == 0 else out

    def describe(self, fmt: str = ".4g") -> str:
        """The pieces joined by ``∪``, e.g. ``[-0.179, -0.145] ∪ [-0.013, 0.022]``."""
        return " ∪ ".join(_describe(iv, fmt) for iv in self.intervals)

    def __len__(self) -> int:
        return len(self.intervals)

    def __iter__(self):
        return iter(self.intervals)


def merge_pieces(pieces: Sequence[Interval]) -> list[Interval]:
    """Sort pieces and join overlapping or touching ones (keeping the outer ends' kinds), e.g. two
    runs of accepted grid points whose root-found ends met within the root tolerance."""
    out: list[Interval] = []
    for iv in sorted(pieces, key=lambda p: p.low):
        if out and iv.low <= out[-1].high:
            prev = out[-1]
            if iv.high > prev.high:
                out[-1] = Interval(prev.parameter, prev.best, prev.low, iv.high, prev.cl, method=prev.method,
                                   low_end=prev.low_end, high_end=iv.high_end)
        else:
            out.append(iv)
    return out


def _finite_or(x: float, default: float) -> float:
    return x if math.isfinite(x) else default
