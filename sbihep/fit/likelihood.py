"""A likelihood as a sum of terms that share parameters by name.

A *term* is any object with

- ``parameters``: a :class:`~sbihep.params.ParameterSpace` naming what it depends on;
- ``nll(theta) -> float``: −ln L at named θ (a mapping name → value over ``parameters``);

and optionally

- ``nll_grad(theta) -> dict[str, float]``: ∂(−ln L)/∂θ_i by name (otherwise finite differences);
  a term whose ``nll_grad`` also takes ``wrt`` (a collection of names) may skip the other
  derivatives — minimisers pass the free parameters, so a profile fit at fixed POIs does not pay
  for their derivatives;
- ``asimov(theta) -> term``: the same term with its observed data replaced by the expectation at θ
  (needed for asymptotic CLs);
- ``toy(theta, rng) -> term``: the same term with data drawn at θ from its model, auxiliary
  measurements included (needed for Neyman constructions and coverage);
- ``fixed: dict[str, float]``: parameters the term wants fixed by default (e.g. a pyhf
  measurement's ``fixed`` parameters);
- ``init: dict[str, float]``: suggested starting values for fits (default: the SM values).

Whether a term drops θ-independent constants from −ln L is documented by the term; only
differences of −ln L enter fits, scans and intervals.

Parameters that carry a :class:`~sbihep.params.GaussianConstraint` are constrained automatically:
:class:`Likelihood` adds a :class:`~sbihep.fit.constraint.ConstraintTerm` for every such parameter
not already covered by a ``ConstraintTerm`` passed explicitly, so a declared constraint is never
silently ignored.
"""

from __future__ import annotations

import functools
import inspect
from typing import Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from sbihep.errors import InvalidInputError
from sbihep.fit.constraint import ConstraintTerm
from sbihep.params import ParameterSpace

__all__ = ["LikelihoodTerm", "Likelihood"]


@runtime_checkable
class LikelihoodTerm(Protocol):
    """The minimal interface of a likelihood term (see the module docstring for optional methods)."""

    parameters: ParameterSpace

    def nll(self, theta: Mapping[str, float]) -> float: ...


class Likelihood:
    """Sum of likelihood terms, with parameters shared by name.

    Args:
        terms: likelihood terms (at least one).
        fixed: parameters fixed by default in fits, name → value; merged over the terms' own
            ``fixed`` (a name fixed to two different values by two terms is an error).
        auto_constraints: add the Gaussian constraints declared on parameters (default True).

    Raises:
        InvalidInputError: no terms, an object that is not a term, a parameter declared differently
            by two terms (e.g. different bounds), or a conflicting fixed value.
        UnknownParameterError / OutOfBoundsError: a ``fixed`` name or value the space rejects.
    """

    def __init__(
        self,
        terms: Iterable[LikelihoodTerm],
        *,
        fixed: Mapping[str, float] | None = None,
        auto_constraints: bool = True,
    ) -> None:
        terms = list(terms)
        if not terms:
            raise InvalidInputError("Likelihood: terms must contain at least one likelihood term")
        space = ParameterSpace()
        for i, term in enumerate(terms):
            if not isinstance(term, LikelihoodTerm):
                raise InvalidInputError(
                    f"Likelihood: terms[{i}] ({type(term).__name__}) is not a likelihood term "
                    "(needs a `parameters` ParameterSpace and an `nll(theta)` method)"
                )
            try:
                space = space.merge(term.parameters)
            except InvalidInputError as exc:
                raise InvalidInputError(f"Likelihood: terms[{i}] ({type(term).__name__}): {exc}") from None
        if auto_constraints:
            covered = {n for t in terms if isinstance(t, ConstraintTerm) for n in t.parameters.names}
            missing = [p for p in space if p.constraint is not None and p.name not in covered]
            if missing:
                terms.append(ConstraintTerm(ParameterSpace(missing)))
        self.terms: tuple[LikelihoodTerm, ...] = tuple(terms)
        self.parameters: ParameterSpace = space
        self.fixed: dict[str, float] = self._merge_fixed(fixed)
        self._term_names = [term.parameters.names for term in self.terms]

    def _merge_fixed(self, fixed: Mapping[str, float] | None) -> dict[str, float]:
        merged: dict[str, float] = {}
        for term in self.terms:
            for name, value in (getattr(term, "fixed", None) or {}).items():
                if name in merged and merged[name] != value:
                    raise InvalidInputError(
                        f"Likelihood: parameter {name!r} is fixed to {merged[name]} and to {value} by two terms"
                    )
                merged[name] = float(value)
        merged.update({k: float(v) for k, v in (fixed or {}).items()})
        if merged:
            self.parameters.validate(merged)
        return merged

    @property
    def has_analytic_grad(self) -> bool:
        """Whether every term provides ``nll_grad`` (else :meth:`grad` uses finite differences)."""
        return all(getattr(t, "nll_grad", None) is not None for t in self.terms)

    def start_point(self) -> dict[str, float]:
        """Default start of a fit: SM values, overridden by the terms' ``init``, then by :attr:`fixed`."""
        start = self.parameters.sm_point()
        for term in self.terms:
            start.update(getattr(term, "init", None) or {})
        start.update(self.fixed)
        return start

    # --- evaluation -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """All parameter names, in the order of :meth:`nll_vector`'s argument."""
        return self.parameters.names

    def nll(self, theta: Mapping[str, float] | None = None) -> float:
        """−ln L at named θ; names left out take their SM value.

        Raises:
            UnknownParameterError / OutOfBoundsError: a name not in any term, or a value out of bounds.
        """
        return self._nll_full(self.parameters.validate(theta))

    def _nll_full(self, full: Mapping[str, float]) -> float:
        total = 0.0
        for term, names in zip(self.terms, self._term_names):
            total += float(term.nll({n: full[n] for n in names}))
        return total

    def nll_vector(self, x: np.ndarray) -> float:
        """−ln L at θ given as a vector in the order of :attr:`names`, shape (len(names),).

        No bounds check: this is the minimiser's objective, which keeps x within bounds itself.
        """
        return self._nll_full(dict(zip(self.names, np.asarray(x, dtype=float).tolist())))

    def grad(self, theta: Mapping[str, float] | None = None) -> dict[str, float]:
        """∂(−ln L)/∂θ_i by name: analytic where a term provides ``nll_grad``, else finite differences."""
        full = self.parameters.validate(theta)
        return dict(zip(self.names, self._grad_full(full).tolist()))

    def grad_vector(self, x: np.ndarray, wrt: Iterable[str] | None = None) -> np.ndarray:
        """Gradient of :meth:`nll_vector`, shape (len(names),); with ``wrt`` only those entries are
        computed (the others are 0)."""
        return self._grad_full(dict(zip(self.names, np.asarray(x, dtype=float).tolist())), wrt)

    def _grad_full(self, full: Mapping[str, float], wrt: Iterable[str] | None = None) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        wanted = None if wrt is None else frozenset(wrt)
        out = np.zeros(len(index))
        for term, names in zip(self.terms, self._term_names):
            if wanted is not None and wanted.isdisjoint(names):
                continue
            sub = {n: full[n] for n in names}
            analytic = getattr(term, "nll_grad", None)
            if analytic is None:
                values = _finite_difference_grad(term, sub, wanted)
            elif wanted is not None and _takes_wrt(analytic):
                values = analytic(sub, wrt=wanted)
            else:
                values = analytic(sub)
            for name, value in values.items():
                if wanted is None or name in wanted:
                    out[index[name]] += value
        return out

    # --- derived likelihoods --------------------------------------------------------------
    def asimov(self, theta: Mapping[str, float]) -> "Likelihood":
        """The likelihood of the Asimov data set generated at θ (every term's data → its expectation).

        Raises:
            InvalidInputError: a term that cannot produce Asimov data.
        """
        full = self.parameters.validate(theta)
        new_terms = []
        for term, names in zip(self.terms, self._term_names):
            if not hasattr(term, "asimov"):
                raise InvalidInputError(f"Likelihood.asimov: term {type(term).__name__} has no Asimov data set")
            new_terms.append(term.asimov({n: full[n] for n in names}))
        return Likelihood(new_terms, fixed=self.fixed, auto_constraints=False)

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "Likelihood":
        """The likelihood of a pseudo-data set drawn at θ: every term's data (and each constraint's
        auxiliary measurement) replaced by a random draw from the model at θ.

        Raises:
            InvalidInputError: a term that cannot draw toys.
        """
        full = self.parameters.validate(theta)
        new_terms = []
        for term, names in zip(self.terms, self._term_names):
            if not hasattr(term, "toy"):
                raise InvalidInputError(f"Likelihood.toy: term {type(term).__name__} cannot draw toy data")
            new_terms.append(term.toy({n: full[n] for n in names}, rng))
        return Likelihood(new_terms, fixed=self.fixed, auto_constraints=False)

    def __repr__(self) -> str:
        kinds = ", ".join(type(t).__name__ for t in self.terms)
        return f"Likelihood([{kinds}], {len(self.parameters)} parameters)"


def _takes_wrt(function) -> bool:
    """Whether a term's ``nll_grad`` accepts ``wrt`` (cached per underlying function: minimisers ask
    on every gradient call, and ``inspect.signature`` costs more than a small term's gradient)."""
    return _signature_takes_wrt(getattr(function, "__func__", function))


@functools.lru_cache(maxsize=1024)
def _signature_takes_wrt(function) -> bool:
    try:
        return "wrt" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _finite_difference_grad(term: LikelihoodTerm, theta: Mapping[str, float], wanted: frozenset | None = None) -> dict[str, float]:
    """Central differences, one-sided at a bound; step ~ 1e-6 relative (1e-6 absolute near 0)."""
    out = {}
    for p in term.parameters:
        if wanted is not None and p.name not in wanted:
            continue
        x = theta[p.name]
        h = 1e-6 * max(abs(x), 1.0)
        low, high = p.bounds
        up, down = min(x + h, high), max(x - h, low)
        if up == down:
            out[p.name] = 0.0
            continue
        f_up = term.nll({**theta, p.name: up})
        f_down = term.nll({**theta, p.name: down})
        out[p.name] = (f_up - f_down) / (up - down)
    return out
