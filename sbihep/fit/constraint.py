"""Gaussian constraint terms for nuisance parameters.

−ln L = Σ_i [ (θ_i − m_i)² / (2 σ_i²) + ln(σ_i √(2π)) ]   (the normalisation constant is kept).

The constraint of a parameter is declared on the parameter itself
(:class:`~sbihep.params.GaussianConstraint`); :class:`~sbihep.fit.likelihood.Likelihood` adds a
:class:`ConstraintTerm` for every constrained parameter automatically.
"""

from __future__ import annotations

import math
from typing import Mapping

from sbihep.errors import InvalidInputError
from sbihep.params import GaussianConstraint, ParameterSpace

__all__ = ["ConstraintTerm"]


class ConstraintTerm:
    """Product of independent Gaussian constraints on named parameters.

    Args:
        parameters: the constrained parameters, declared exactly as the other terms declare them.
        constraints: name → constraint; default: each parameter's own ``constraint``.

    Raises:
        InvalidInputError: a parameter with no constraint given or declared, or a constraint for a
            name not in ``parameters``.
    """

    def __init__(
        self, parameters: ParameterSpace, constraints: Mapping[str, GaussianConstraint] | None = None
    ) -> None:
        if not isinstance(parameters, ParameterSpace):
            raise InvalidInputError(f"ConstraintTerm: parameters must be a ParameterSpace, got {type(parameters).__name__}")
        given = dict(constraints or {})
        unknown = sorted(set(given) - set(parameters.names))
        if unknown:
            raise InvalidInputError(f"ConstraintTerm: constraints given for parameters {unknown} not in `parameters`")
        self.constraints: dict[str, GaussianConstraint] = {}
        for p in parameters:
            c = given.get(p.name, p.constraint)
            if c is None:
                raise InvalidInputError(f"ConstraintTerm: parameter {p.name!r} has no Gaussian constraint")
            self.constraints[p.name] = c
        self.parameters = parameters

    def nll(self, theta: Mapping[str, float]) -> float:
        """−ln L (normalised Gaussians)."""
        total = 0.0
        for name, c in self.constraints.items():
            z = (theta[name] - c.mean) / c.sigma
            total += 0.5 * z * z + math.log(c.sigma * math.sqrt(2.0 * math.pi))
        return total

    def nll_grad(self, theta: Mapping[str, float]) -> dict[str, float]:
        """∂(−ln L)/∂θ_i = (θ_i − m_i)/σ_i²."""
        return {name: (theta[name] - c.mean) / c.sigma**2 for name, c in self.constraints.items()}

    def asimov(self, theta: Mapping[str, float]) -> "ConstraintTerm":
        """The auxiliary measurements set to θ (the Asimov convention of Cowan et al., arXiv:1007.1727)."""
        shifted = {name: GaussianConstraint(float(theta[name]), c.sigma) for name, c in self.constraints.items()}
        return ConstraintTerm(self.parameters, shifted)

    def toy(self, theta: Mapping[str, float], rng) -> "ConstraintTerm":
        """Auxiliary measurements drawn at θ: each mean ~ N(θ_i, σ_i) (the global observables of a toy)."""
        drawn = {name: GaussianConstraint(float(rng.normal(theta[name], c.sigma)), c.sigma) for name, c in self.constraints.items()}
        return ConstraintTerm(self.parameters, drawn)

    def __repr__(self) -> str:
        return f"ConstraintTerm({list(self.constraints)})"
