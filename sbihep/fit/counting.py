"""Independent Poisson counts whose expectations are functions of named parameters.

    n_i ~ Poisson(λ_i(θ)),  i = 1…k
    −ln L(θ) = Σ_i [λ_i(θ) − n_i ln λ_i(θ)]        [+ Σ_i ln Γ(n_i + 1) if include_constant]

The expectations are given either

- *declaratively*: one mapping per count from monomials to coefficients, a monomial being ``"1"``
  (a constant), a parameter name, or a product of names joined by ``*`` (``"mu*nu"``, ``"nu*nu"``).
  The LF2I OnOff model (Dalmasso et al., arXiv:2107.03920), N_on ~ Pois(ν b + μ s),
  N_off ~ Pois(ν τ b), reads ``[{"nu": b, "mu": s}, {"nu": tau * b}]``.  The gradient is exact.
- or as a callable ``expected(theta) -> array (k,)``, with an optional ``gradient(theta) ->
  {name: array (k,)}`` giving ∂λ_i/∂θ_name; without it the likelihood falls back to finite differences.

Conventions: a count with λ_i = 0 and n_i = 0 contributes 0; λ_i < 0, or λ_i = 0 with n_i > 0,
makes −ln L = +inf (the point is impossible, so minimisers step back from it) while
:meth:`CountingTerm.asimov` and :meth:`CountingTerm.toy` refuse it with an error.  Counts may be
non-integer (Asimov data); toys are integers.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.special import gammaln

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.params import ParameterSpace

__all__ = ["CountingTerm"]


class CountingTerm:
    """k independent Poisson counts (see the module docstring).

    Args:
        counts: observed counts n_i ≥ 0, shape (k,).
        expected: the declarative form (a sequence of k mappings monomial → coefficient) or a
            callable θ → λ(θ), shape (k,).
        parameters: the parameters λ depends on.
        gradient: with a callable ``expected`` only: θ → {name: ∂λ/∂θ_name, shape (k,)}.
        include_constant: keep Σ ln n_i! in −ln L (default: dropped).
        labels: optional names of the k counts.

    Raises:
        ShapeError: counts not 1D, or a declarative form of another length.
        InvalidInputError: negative, NaN or infinite counts; a malformed monomial or coefficient;
            ``gradient`` given with a declarative form.
        UnknownParameterError: a monomial naming a parameter not in ``parameters``.
    """

    def __init__(
        self,
        counts,
        expected: Sequence[Mapping[str, float]] | Callable[[Mapping[str, float]], np.ndarray],
        parameters: ParameterSpace,
        *,
        gradient: Callable[[Mapping[str, float]], Mapping[str, np.ndarray]] | None = None,
        include_constant: bool = False,
        labels: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(parameters, ParameterSpace):
            raise InvalidInputError(f"CountingTerm: parameters must be a ParameterSpace, got {type(parameters).__name__}")
        self.parameters = parameters
        self.counts = _counts(counts)
        k = self.counts.shape[0]
        self.include_constant = bool(include_constant)
        self.labels = [str(i) for i in range(k)] if labels is None else [str(x) for x in labels]
        if len(self.labels) != k:
            raise ShapeError(f"CountingTerm: labels has {len(self.labels)} entries for {k} counts")
        self._constant = float(np.sum(gammaln(self.counts + 1.0)))
        self.expected_spec = expected
        self._gradient = gradient
        if callable(expected):
            self._declarative = None
            if gradient is not None and not callable(gradient):
                raise InvalidInputError("CountingTerm: gradient must be a callable θ → {name: ∂λ/∂θ}")
        else:
            if gradient is not None:
                raise InvalidInputError("CountingTerm: gradient is only for a callable expected (the declarative form's is exact)")
            self._declarative = _Polynomial(expected, parameters, k)

    # --- the model ------------------------------------------------------------------------
    @property
    def n_counts(self) -> int:
        return self.counts.shape[0]

    def expected(self, theta: Mapping[str, float]) -> np.ndarray:
        """λ(θ), shape (k,), in events.

        Raises:
            InvalidInputError: a callable ``expected`` returning the wrong shape or NaN.
        """
        if self._declarative is not None:
            return self._declarative.value(theta)
        lam = np.asarray(self.expected_spec(theta), dtype=np.float64)
        if lam.shape != (self.n_counts,):
            raise ShapeError(f"CountingTerm: expected(θ) returned shape {lam.shape}, expected ({self.n_counts},)")
        if np.any(np.isnan(lam)):
            bad = [self.labels[i] for i in np.flatnonzero(np.isnan(lam))]
            raise InvalidInputError(f"CountingTerm: expected(θ) is NaN for count(s) {bad} at θ = {dict(theta)}")
        return lam

    def nll(self, theta: Mapping[str, float]) -> float:
        """Σ λ_i − n_i ln λ_i (+ Σ ln n_i! with ``include_constant``); +inf where the counts are impossible."""
        lam = self.expected(theta)
        value = _poisson_nll(lam, self.counts)
        return value + self._constant if self.include_constant else value

    def _dlam(self, theta: Mapping[str, float], wrt: Iterable[str] | None) -> dict[str, np.ndarray]:
        if self._declarative is not None:
            return self._declarative.gradient(theta, wrt)
        raw = self._gradient(theta)
        out = {}
        for name, d in raw.items():
            if name not in self.parameters:
                raise UnknownParameterError(f"CountingTerm: gradient returned unknown parameter {name!r}; known: {list(self.parameters.names)}")
            d = np.asarray(d, dtype=np.float64)
            if d.shape != (self.n_counts,):
                raise ShapeError(f"CountingTerm: gradient[{name!r}] has shape {d.shape}, expected ({self.n_counts},)")
            out[name] = d
        return out

    @property
    def nll_grad(self):
        """∂(−ln L)/∂θ = Σ_i (1 − n_i/λ_i) ∂λ_i/∂θ: exact for the declarative form, the user's
        ``gradient`` for a callable form, None (finite differences) for a callable without one."""
        if self._declarative is None and self._gradient is None:
            return None
        return self._nll_grad

    def _nll_grad(self, theta: Mapping[str, float], wrt: Iterable[str] | None = None) -> dict[str, float]:
        lam = self.expected(theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(self.counts > 0, 1.0 - self.counts / lam, 1.0)
        names = self.parameters.names if wrt is None else [n for n in self.parameters.names if n in set(wrt)]
        dlam = self._dlam(theta, names)
        return {n: float(factor @ dlam[n]) if n in dlam else 0.0 for n in names}

    # --- data -----------------------------------------------------------------------------
    def with_counts(self, counts) -> "CountingTerm":
        """The same model with other observed counts (shape (k,))."""
        return CountingTerm(counts, self.expected_spec, self.parameters, gradient=self._gradient,
                            include_constant=self.include_constant, labels=self.labels)

    def _checked_expected(self, theta: Mapping[str, float], who: str) -> np.ndarray:
        lam = self.expected(self.parameters.validate(theta))
        if np.any(lam < 0) or not np.all(np.isfinite(lam)):
            bad = [self.labels[i] for i in np.flatnonzero(~(np.isfinite(lam) & (lam >= 0)))]
            raise InvalidInputError(f"CountingTerm.{who}: expectation negative or infinite for count(s) {bad} at θ = {dict(theta)}")
        return lam

    def asimov(self, theta: Mapping[str, float]) -> "CountingTerm":
        """The same term with counts n_i = λ_i(θ) (non-integer)."""
        return self.with_counts(self._checked_expected(theta, "asimov"))

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "CountingTerm":
        """The same term with counts drawn from Poisson(λ_i(θ)) with ``rng``."""
        return self.with_counts(rng.poisson(self._checked_expected(theta, "toy")).astype(np.float64))

    def __repr__(self) -> str:
        form = "declarative" if self._declarative is not None else "callable"
        return f"CountingTerm({self.n_counts} counts, {form}, parameters={list(self.parameters.names)})"


def _counts(counts) -> np.ndarray:
    n = np.array(counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ShapeError(f"CountingTerm: counts must be a non-empty 1D array, got shape {n.shape}")
    if not np.all(np.isfinite(n)):
        raise InvalidInputError(f"CountingTerm: counts must be finite, got {n.tolist()}")
    if np.any(n < 0):
        raise InvalidInputError(f"CountingTerm: counts must be ≥ 0, got {n.tolist()}")
    return n


def _poisson_nll(lam: np.ndarray, n: np.ndarray) -> float:
    if np.any(lam < 0) or np.any((lam == 0) & (n > 0)):
        return math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(n > 0, n * np.log(np.where(lam > 0, lam, 1.0)), 0.0)
    return float(np.sum(lam) - np.sum(log_term))


class _Polynomial:
    """λ = A · m(θ): A (k, M) coefficients, m the M monomials (tuples of parameter indices)."""

    def __init__(self, spec, parameters: ParameterSpace, k: int) -> None:
        if isinstance(spec, Mapping) or not isinstance(spec, Sequence):
            raise InvalidInputError("CountingTerm: expected must be a callable or a sequence of one mapping per count")
        if len(spec) != k:
            raise ShapeError(f"CountingTerm: expected has {len(spec)} entries for {k} counts")
        self.names = parameters.names
        monomials: dict[tuple[str, ...], int] = {}
        rows = []
        for i, entry in enumerate(spec):
            if not isinstance(entry, Mapping):
                raise InvalidInputError(f"CountingTerm: expected[{i}] must be a mapping monomial → coefficient")
            row = {}
            for key, coef in entry.items():
                mono = _monomial(key, parameters, i)
                try:
                    c = float(coef)
                except (TypeError, ValueError):
                    raise InvalidInputError(f"CountingTerm: expected[{i}][{key!r}] = {coef!r} is not a number") from None
                if not math.isfinite(c):
                    raise InvalidInputError(f"CountingTerm: expected[{i}][{key!r}] must be finite, got {c}")
                index = monomials.setdefault(mono, len(monomials))
                row[index] = row.get(index, 0.0) + c
            rows.append(row)
        self.monomials = list(monomials)
        self._index = [tuple(self.names.index(n) for n in mono) for mono in self.monomials]
        self.matrix = np.zeros((k, len(self.monomials)))
        for i, row in enumerate(rows):
            for j, c in row.items():
                self.matrix[i, j] = c

    def _m(self, theta) -> np.ndarray:
        x = [theta[n] for n in self.names]
        return np.array([math.prod([x[i] for i in mono]) for mono in self._index])

    def value(self, theta) -> np.ndarray:
        return self.matrix @ self._m(theta)

    def gradient(self, theta, wrt) -> dict[str, np.ndarray]:
        names = self.names if wrt is None else list(wrt)
        out = {}
        for name in names:
            dm = np.zeros(len(self.monomials))
            for j, mono in enumerate(self.monomials):
                power = mono.count(name)
                if power:
                    rest = list(mono)
                    rest.remove(name)
                    dm[j] = power * math.prod(theta[n] for n in rest)
            out[name] = self.matrix @ dm
        return out


def _monomial(key, parameters: ParameterSpace, i: int) -> tuple[str, ...]:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInputError(f"CountingTerm: expected[{i}] has monomial {key!r}; use '1', a name, or names joined by '*'")
    if key.strip() == "1":
        return ()
    parts = tuple(sorted(p.strip() for p in key.split("*")))
    for p in parts:
        if p not in parameters:
            raise UnknownParameterError(
                f"CountingTerm: expected[{i}] monomial {key!r} names unknown parameter {p!r}; known: {list(parameters.names)}")
    return parts
