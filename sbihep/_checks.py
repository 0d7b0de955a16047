"""Small argument checks shared across stages (counts, seeds)."""

from __future__ import annotations

import math
import numbers

from sbihep.errors import InvalidInputError

__all__ = ["check_counts"]


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
