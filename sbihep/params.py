"""Named parameters: Wilson coefficients, signal strengths and nuisance parameters.

θ is passed around by name, as a mapping ``{"cHW": 0.1, "cHWtil": -0.2}``.  A
:class:`ParameterSpace` knows every parameter's bounds, SM value, kind (parameter of interest or
nuisance) and optional Gaussian constraint, fills in SM values for names that were left out, and
turns named θ into the ordered vectors that numerical code needs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Literal, Mapping

import numpy as np

from sbihep.errors import InvalidInputError, OutOfBoundsError, UnknownParameterError

__all__ = ["GaussianConstraint", "Parameter", "ParameterSpace"]

ParameterKind = Literal["poi", "nuisance"]


@dataclass(frozen=True)
class GaussianConstraint:
    """An auxiliary Gaussian measurement of a parameter: N(value | mean, sigma)."""

    mean: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InvalidInputError(f"GaussianConstraint: sigma must be finite and > 0, got {self.sigma!r}")
        if not math.isfinite(self.mean):
            raise InvalidInputError(f"GaussianConstraint: mean must be finite, got {self.mean!r}")

    def log_pdf(self, value: float | np.ndarray) -> float | np.ndarray:
        """log N(value | mean, sigma), normalised."""
        z = (np.asarray(value, dtype=float) - self.mean) / self.sigma
        return -0.5 * z * z - math.log(self.sigma * math.sqrt(2.0 * math.pi))


@dataclass(frozen=True)
class Parameter:
    """One named parameter.

    Args:
        name: identifier, e.g. a Warsaw-basis operator name as SMEFTsim spells it (``"cHW"``).
        sm_value: the value at which the model is the Standard Model (0 for Wilson coefficients,
            1 for a signal strength).
        bounds: inclusive (low, high); values outside are rejected.
        kind: ``"poi"`` (parameter of interest) or ``"nuisance"``.
        constraint: optional Gaussian constraint (usually for nuisances).
        unit: free text, e.g. ``"TeV^-2"`` for c_i/Λ².
        description: free text.
    """

    name: str
    sm_value: float = 0.0
    bounds: tuple[float, float] = (-math.inf, math.inf)
    kind: ParameterKind = "poi"
    constraint: GaussianConstraint | None = None
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidInputError(f"Parameter: name must be a Python identifier, got {self.name!r}")
        try:
            low, high = (float(b) for b in self.bounds)
        except (TypeError, ValueError):
            raise InvalidInputError(f"Parameter {self.name!r}: bounds must be a pair of numbers (low, high), got {self.bounds!r}") from None
        if isinstance(self.sm_value, bool) or not isinstance(self.sm_value, numbers.Real) or math.isnan(self.sm_value):
            raise InvalidInputError(f"Parameter {self.name!r}: sm_value must be a number, got {self.sm_value!r}")
        object.__setattr__(self, "bounds", (low, high))
        if math.isnan(low) or math.isnan(high) or not low < high:
            raise InvalidInputError(f"Parameter {self.name!r}: bounds must satisfy low < high, got {self.bounds}")
        if self.kind not in ("poi", "nuisance"):
            raise InvalidInputError(f"Parameter {self.name!r}: kind must be 'poi' or 'nuisance', got {self.kind!r}")
        if not low <= self.sm_value <= high:
            raise OutOfBoundsError(
                f"Parameter {self.name!r}: SM value {self.sm_value} lies outside its bounds {self.bounds}"
            )

    def check(self, value: float) -> float:
        """Return ``value`` as float, or raise if it is not finite or out of bounds."""
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"parameter {self.name!r}: value {value!r} is not a number") from exc
        if not math.isfinite(v):
            raise InvalidInputError(f"parameter {self.name!r}: value {v} is not finite")
        low, high = self.bounds
        if not low <= v <= high:
            raise OutOfBoundsError(f"parameter {self.name!r}: value {v} lies outside its bounds [{low}, {high}]")
        return v

    def same_physics(self, other: "Parameter") -> bool:
        """Same name, SM value, bounds, kind and constraint (unit and description are free text)."""
        keys = ("name", "sm_value", "bounds", "kind", "constraint")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bounds"] = list(self.bounds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Parameter":
        d = dict(d)
        if d.get("constraint") is not None:
            d["constraint"] = GaussianConstraint(**d["constraint"])
        if "bounds" in d:
            d["bounds"] = tuple(d["bounds"])
        return cls(**d)


@dataclass(frozen=True)
class ParameterSpace:
    """An ordered collection of uniquely named :class:`Parameter` objects."""

    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    def __init__(self, parameters: Iterable[Parameter] = ()) -> None:
        params = tuple(parameters)
        for p in params:
            if not isinstance(p, Parameter):
                raise InvalidInputError(f"ParameterSpace: expected Parameter objects, got {type(p).__name__}")
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError(f"ParameterSpace: duplicate parameter names {dupes}")
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "_by_name", {p.name: p for p in params})

    # --- container protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownParameterError(f"unknown parameter {name!r}; known: {list(self.names)}") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def pois(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters if p.kind == "poi")

    @property
    def nuisances(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters if p.kind == "nuisance")

    # --- θ handling ---------------------------------------------------------------------
    def sm_point(self) -> dict[str, float]:
        """θ at the Standard Model: every parameter at its SM value."""
        return {p.name: p.sm_value for p in self.parameters}

    def validate(self, theta: Mapping[str, float] | None = None) -> dict[str, float]:
        """Check named θ and complete it with SM values.

        Raises:
            UnknownParameterError: a name not in this space.
            OutOfBoundsError / InvalidInputError: a value out of bounds or not finite.
        """
        theta = {} if theta is None else theta
        if not isinstance(theta, Mapping):
            raise InvalidInputError(f"theta must be a mapping of parameter name to value, got {type(theta).__name__}")
        unknown = [k for k in theta if k not in self._by_name]
        if unknown:
            raise UnknownParameterError(f"unknown parameter(s) {unknown}; known: {list(self.names)}")
        out = self.sm_point()
        for name, value in theta.items():
            out[name] = self._by_name[name].check(value)
        return out

    def to_vector(self, theta: Mapping[str, float] | None = None) -> np.ndarray:
        """Named θ → float64 vector of shape (len(self),) in this space's order (SM values filled in)."""
        full = self.validate(theta)
        return np.array([full[n] for n in self.names], dtype=np.float64)

    def from_vector(self, vector: Iterable[float]) -> dict[str, float]:
        """Vector of shape (len(self),) → named θ (validated)."""
        values = np.asarray(list(vector), dtype=np.float64)
        if values.shape != (len(self),):
            raise InvalidInputError(f"vector has shape {values.shape}, expected ({len(self)},) for {list(self.names)}")
        return self.validate(dict(zip(self.names, values.tolist())))

    def log_constraint(self, theta: Mapping[str, float]) -> float:
        """Σ log N(θ_i | mean_i, σ_i) over the constrained parameters."""
        full = self.validate(theta)
        return float(sum(p.constraint.log_pdf(full[p.name]) for p in self.parameters if p.constraint is not None))

    # --- combination --------------------------------------------------------------------
    def subset(self, names: Iterable[str]) -> "ParameterSpace":
        return ParameterSpace(self[n] for n in names)

    def merge(self, other: "ParameterSpace") -> "ParameterSpace":
        """Union sharing parameters by name; a name declared with different bounds, kind, SM value or
        constraint in both is an error (unit and description text may differ)."""
        merged = list(self.parameters)
        for p in other:
            if p.name in self:
                if not self[p.name].same_physics(p):
                    raise InvalidInputError(
                        f"parameter {p.name!r} is declared differently in the two spaces: {self[p.name]} vs {p}"
                    )
            else:
                merged.append(p)
        return ParameterSpace(merged)

    def to_dict(self) -> dict:
        return {"parameters": [p.to_dict() for p in self.parameters]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ParameterSpace":
        return cls(Parameter.from_dict(p) for p in d["parameters"])

    def __repr__(self) -> str:
        inner = ", ".join(f"{p.name}∈[{p.bounds[0]:g},{p.bounds[1]:g}]" for p in self.parameters)
        return f"ParameterSpace({inner})"
