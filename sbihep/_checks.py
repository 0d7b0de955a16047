"""Small argument checks shared across stages (counts, seeds)."""

from __future__ import annotations

import math
import numbers

from sbihep.errors import InvalidInputError

__all__ = ["check_counts", "check_real"]


def check_counts(*items: tuple[str, object, int]) -> None:
    """Each (name, value, low): ``value`` must be an integer (an integral float counts) ≥ ``low``.

    Raises:
        InvalidInputError: naming the first argument that is not (bools are rejected).
    """
    for name, value, low in items:
        integral = isinstance(value, numbers.Integral) or (
            isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
        )
        if isinstance(value, bool) or not integral or value < low:
            raise InvalidInputError(f"{name} must be an integer ≥ {low}, got {value!r}")


def check_real(name: str, value: object, *, positive: bool = False, finite: bool = True) -> float:
    """``value`` as a float: a real number (not a bool, not a string), finite unless ``finite=False``,
    and > 0 with ``positive``.

    Raises:
        InvalidInputError: naming ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    out = float(value)
    if math.isnan(out) or (finite and not math.isfinite(out)):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if positive and not out > 0:
        raise InvalidInputError(f"{name} must be > 0, got {value!r}")
    return out
