"""Gaussian measurements with a covariance and a polynomial (linear or quadratic) EFT prediction.

    t(θ) = t_SM + Σ_i θ_i t_i + Σ_{i≤j} θ_i θ_j t_ij                   shape (n,)
    −ln L(θ) = ½ (d − t(θ))ᵀ C⁻¹ (d − t(θ))   [+ ½ ln det(2π C) if include_constant]

C is fixed (it does not follow θ).  The term whitens once with the Cholesky factor of C, so each
evaluation is a few (n,)-vector operations; the gradient is analytic.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.params import ParameterSpace

__all__ = ["GaussianTerm"]

#: Smallest accepted ratio of the smallest to the largest eigenvalue of the covariance.
_MIN_EIGEN_RATIO = 1e-13


class GaussianTerm:
    """A multivariate Gaussian measurement of n quantities predicted as a polynomial in θ.

    Args:
        data: measured values d, shape (n,).
        covariance: covariance C of the measurement, shape (n, n), symmetric positive definite,
            in the units of ``data`` squared.
        sm: the prediction at θ = 0, shape (n,).
        parameters: the parameters (bounds, kinds) the prediction depends on.
        linear: name → t_i, shape (n,) each.
        quadratic: ``"a*b"`` or ``(a, b)`` → t_ab, shape (n,) each (a == b for squares).
        include_constant: keep ½ ln det(2πC) in −ln L (default: dropped).
        labels: optional names of the n measurements.

    Raises:
        ShapeError: arrays of inconsistent shapes.
        UnknownParameterError: a coefficient for a name not in ``parameters``.
        InvalidInputError: a covariance that is not symmetric positive definite (e.g. singular),
            or non-finite values.
    """

    def __init__(
        self,
        data,
        covariance,
        sm,
        parameters: ParameterSpace,
        linear: Mapping[str, np.ndarray] | None = None,
        quadratic: Mapping[str | tuple[str, str], np.ndarray] | None = None,
        *,
        include_constant: bool = False,
        labels: list[str] | None = None,
    ) -> None:
        if not isinstance(parameters, ParameterSpace):
            raise InvalidInputError(f"GaussianTerm: parameters must be a ParameterSpace, got {type(parameters).__name__}")
        self.parameters = parameters
        self.data = _vector(data, "data")
        n = self.data.shape[0]
        self.sm = _vector(sm, "sm", n)
        self.covariance = np.array(covariance, dtype=np.float64)
        if self.covariance.shape != (n, n):
            raise ShapeError(f"GaussianTerm: covariance has shape {self.covariance.shape}, expected ({n}, {n})")
        self._chol = _cholesky(self.covariance)
        self.linear = {}
        for name, t in (linear or {}).items():
            self._check_name(name, "linear")
            self.linear[name] = _vector(t, f"linear[{name!r}]", n)
        self.quadratic: dict[tuple[str, str], np.ndarray] = {}
        for key, t in (quadratic or {}).items():
            a, b = key.split("*") if isinstance(key, str) else key
            self._check_name(a, "quadratic")
            self._check_name(b, "quadratic")
            pair = (a, b) if parameters.names.index(a) <= parameters.names.index(b) else (b, a)
            self.quadratic[pair] = self.quadratic.get(pair, 0.0) + _vector(t, f"quadratic[{key!r}]", n)
        self.include_constant = bool(include_constant)
        self.labels = list(labels) if labels is not None else [str(i) for i in range(n)]
        # whitened quantities: C⁻¹ = L⁻ᵀ L⁻¹, so ½ rᵀC⁻¹r = ½ |L⁻¹ r|².
        self._d_w = self._whiten(self.data - self.sm)
        self._lin_w = {k: self._whiten(v) for k, v in self.linear.items()}
        self._quad_w = {k: self._whiten(v) for k, v in self.quadratic.items()}
        self._constant = 0.5 * n * math.log(2 * math.pi) + float(np.sum(np.log(np.diag(self._chol))))

    def _check_name(self, name: str, argument: str) -> None:
        if name not in self.parameters:
            raise UnknownParameterError(
                f"GaussianTerm: {argument} has a coefficient for {name!r}, which is not in parameters "
                f"{list(self.parameters.names)}"
            )

    def _whiten(self, v: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        return solve_triangular(self._chol, v, lower=True)

    @property
    def order(self) -> str:
        """``"quadratic"`` if any quadratic coefficient is present, else ``"linear"``."""
        return "quadratic" if self.quadratic else "linear"

    @property
    def n_data(self) -> int:
        return self.data.shape[0]

    def prediction(self, theta: Mapping[str, float]) -> np.ndarray:
        """t(θ), shape (n,), in the units of ``data``."""
        out = self.sm.copy()
        for name, t in self.linear.items():
            out += theta.get(name, 0.0) * t
        for (a, b), t in self.quadratic.items():
            out += theta.get(a, 0.0) * theta.get(b, 0.0) * t
        return out

    def _residual_w(self, theta: Mapping[str, float]) -> np.ndarray:
        r = self._d_w.copy()
        for name, t in self._lin_w.items():
            r -= theta[name] * t
        for (a, b), t in self._quad_w.items():
            r -= theta[a] * theta[b] * t
        return r

    def chi2(self, theta: Mapping[str, float]) -> float:
        """(d − t)ᵀ C⁻¹ (d − t) at θ."""
        r = self._residual_w(self.parameters.validate(theta))
        return float(r @ r)

    def nll(self, theta: Mapping[str, float]) -> float:
        """−ln L = χ²/2 (+ ½ ln det(2πC) if ``include_constant``)."""
        r = self._residual_w(theta)
        return 0.5 * float(r @ r) + (self._constant if self.include_constant else 0.0)

    def nll_grad(self, theta: Mapping[str, float]) -> dict[str, float]:
        """Analytic gradient: −(∂t_w/∂θ_k) · r_w."""
        r = self._residual_w(theta)
        grad = {name: 0.0 for name in self.parameters.names}
        for name, t in self._lin_w.items():
            grad[name] -= float(t @ r)
        for (a, b), t in self._quad_w.items():
            tr = float(t @ r)
            grad[a] -= theta[b] * tr
            grad[b] -= theta[a] * tr
        return grad

    def asimov(self, theta: Mapping[str, float]) -> "GaussianTerm":
        """The same measurement with data replaced by the prediction at θ."""
        return GaussianTerm(
            self.prediction(theta),
            self.covariance,
            self.sm,
            self.parameters,
            self.linear,
            self.quadratic,
            include_constant=self.include_constant,
            labels=self.labels,
        )

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "GaussianTerm":
        """The same measurement with data drawn from N(t(θ), C)."""
        data = self.prediction(theta) + self._chol @ rng.standard_normal(self.n_data)
        return GaussianTerm(data, self.covariance, self.sm, self.parameters, self.linear, self.quadratic,
                            include_constant=self.include_constant, labels=self.labels)

    @classmethod
    def from_cross_section(
        cls,
        xsec,
        measured_pb: float,
        uncertainty_pb: float,
        parameters: ParameterSpace,
        *,
        include_mc_uncertainty: bool = True,
    ) -> "GaussianTerm":
        """One measured cross section against a :class:`~sbihep.physics.xsec.CrossSection` σ(θ).

        Args:
            xsec: the predicted σ(θ) (pb), linear or quadratic in θ.
            measured_pb: measured cross section (pb).
            uncertainty_pb: its total uncertainty (pb).
            parameters: parameters covering ``xsec.operators`` that the fit varies.
            include_mc_uncertainty: add the MC variance of σ_SM to the measurement variance
                (the θ-dependent part of the MC error is neglected).
        """
        if not (math.isfinite(uncertainty_pb) and uncertainty_pb > 0):
            raise InvalidInputError(f"from_cross_section: uncertainty_pb must be finite and > 0, got {uncertainty_pb!r}")
        variance = uncertainty_pb**2 + (float(xsec.covariance_pb2[0, 0]) if include_mc_uncertainty else 0.0)
        sm, linear, quadratic = None, {}, {}
        for monomial, c in zip(xsec.monomials, np.asarray(xsec.coefficients_pb, dtype=float)):
            if monomial == "1":
                sm = [c]
            elif "*" in monomial:
                quadratic[monomial] = [c]
            else:
                linear[monomial] = [c]
        return cls([measured_pb], [[variance]], sm, parameters, linear, quadratic, labels=[xsec.process])

    def __repr__(self) -> str:
        return f"GaussianTerm(n={self.n_data}, {self.order}, parameters={list(self.parameters.names)})"


def _vector(values, argument: str, n: int | None = None) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    if v.ndim != 1 or (n is not None and v.shape[0] != n):
        expected = "(n,)" if n is None else f"({n},)"
        raise ShapeError(f"GaussianTerm: {argument} has shape {v.shape}, expected {expected}")
    if not np.all(np.isfinite(v)):
        raise InvalidInputError(f"GaussianTerm: {argument} contains non-finite values")
    return v


def _cholesky(cov: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(cov)):
        raise InvalidInputError("GaussianTerm: covariance contains non-finite values")
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=0.0):
        raise InvalidInputError("GaussianTerm: covariance is not symmetric")
    eig = np.linalg.eigvalsh(cov)
    if eig[0] <= _MIN_EIGEN_RATIO * max(eig[-1], 0.0) or eig[-1] <= 0:
        raise InvalidInputError(
            f"GaussianTerm: covariance is singular or not positive definite "
            f"(eigenvalues from {eig[0]:.3g} to {eig[-1]:.3g})"
        )
    return np.linalg.cholesky(cov)
