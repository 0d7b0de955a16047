"""A likelihood term from an ONNX likelihood surrogate (:mod:`sbihep.surrogates`).

The surrogate returns −2ΔlnL of a published likelihood, profiled over its own nuisance parameters,
as a function of its inputs x (the signal strength μ, or the signal yields per region).  As a term,

    −ln L(θ) = ½ · t(x(θ)) (+ a θ-independent constant),

with x(θ) the inputs by name (default: one parameter per surrogate input, bounded by the training box)
or any map from physics parameters to inputs, e.g. Wilson coefficients → signal yields per region via
a cross-section polynomial.  The term's nuisances are already profiled inside the surrogate, so it adds
none; it has no toys or Asimov data of its own (the surrogate only knows its observed and μ = 0 Asimov
data sets), and its gradient is left to finite differences.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Literal, Mapping

import numpy as np

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.params import Parameter, ParameterSpace
from sbihep.surrogates.loader import SurrogateLikelihood

__all__ = ["SurrogateTerm"]

_COLUMNS = {"observed": 0, "asimov": 1}


class SurrogateTerm:
    """−ln L = ½ t(x(θ)) from an sbihep ONNX surrogate.

    Args:
        surrogate: a :class:`~sbihep.surrogates.loader.SurrogateLikelihood` or the path of its ``.onnx``
            file (loaded with ``out_of_bounds="raise"``: a fit must not wander outside the training box
            unnoticed).
        data: ``"observed"`` or ``"asimov"`` (the surrogate's μ = 0 Asimov column).
        parameters: the term's parameters.  Default: one parameter per surrogate input, named as the
            input, bounded by its training range, with SM value 0 (no signal).
        inputs: ``inputs(theta) -> (n_inputs,)`` surrogate inputs from named parameters; default: the
            parameters named as the inputs, in the surrogate's input order.
    Raises:
        InvalidInputError: unknown ``data``; default inputs whose names are not parameters.
    """

    def __init__(
        self,
        surrogate: SurrogateLikelihood | str | Path,
        *,
        data: Literal["observed", "asimov"] = "observed",
        parameters: ParameterSpace | None = None,
        inputs: Callable[[Mapping[str, float]], np.ndarray] | None = None,
    ) -> None:
        if data not in _COLUMNS:
            raise InvalidInputError(f"SurrogateTerm: data must be 'observed' or 'asimov', got {data!r}")
        if not isinstance(surrogate, SurrogateLikelihood):
            surrogate = SurrogateLikelihood(surrogate, out_of_bounds="raise")
        self.surrogate, self.data = surrogate, data
        self._column = _COLUMNS[data]
        if parameters is None:
            parameters = ParameterSpace([
                Parameter(name, min(max(0.0, low), high), (float(low), float(high)), unit=unit or "")
                for name, unit, (low, high) in zip(surrogate.input_names, surrogate.input_units, surrogate.bounds)
            ])
        if not isinstance(parameters, ParameterSpace):
            raise InvalidInputError(f"SurrogateTerm: parameters must be a ParameterSpace, got {type(parameters).__name__}")
        if inputs is None:
            missing = [n for n in surrogate.input_names if n not in parameters.names]
            if missing:
                raise InvalidInputError(
                    f"SurrogateTerm: surrogate inputs {missing} are not parameters {list(parameters.names)}; "
                    "pass inputs=callable(theta) mapping the parameters to the inputs")
            names = list(surrogate.input_names)
            inputs = lambda theta: np.array([theta[n] for n in names], dtype=float)  # noqa: E731
        self.parameters = parameters
        self.inputs = inputs

    def _x(self, theta: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(self.inputs(theta), dtype=float).reshape(-1)
        if x.shape != (self.surrogate.n_inputs,):
            raise ShapeError(f"SurrogateTerm: inputs(theta) returned shape {x.shape}, the surrogate takes "
                             f"({self.surrogate.n_inputs},) in the order {self.surrogate.input_names}")
        if not np.all(np.isfinite(x)):
            raise InvalidInputError(f"SurrogateTerm: inputs(theta) are not finite at {dict(theta)}: {x}")
        return x

    def nll(self, theta: Mapping[str, float]) -> float:
        """½ · (−2ΔlnL) of the surrogate at x(θ).

        Raises:
            OutOfBoundsError: x(θ) outside the surrogate's training box.
        """
        t, _ = self.surrogate.evaluate(self._x(theta)[None, :])
        value = 0.5 * float(t[0, self._column])
        if not math.isfinite(value):
            raise InvalidInputError(f"SurrogateTerm: the surrogate returned {value} at {dict(theta)}")
        return value

    def uncertainty(self, theta: Mapping[str, float]) -> float:
        """The surrogate's own uncertainty on −ln L at θ (half the ensemble spread of −2ΔlnL)."""
        _, s = self.surrogate.evaluate(self._x(theta)[None, :])
        return 0.5 * float(s[0, self._column])

    def __repr__(self) -> str:
        return f"SurrogateTerm({self.surrogate.path.name}, data={self.data!r}, parameters={list(self.parameters.names)})"
