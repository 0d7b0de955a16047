"""The exact likelihood ratio of parton-level data, from the events' own EFT coefficients.

At parton level an event z determines its coefficients c_z (and those of its systematic
variations), and p(z|θ, ν) = w_z(θ, ν)/σ(θ, ν) up to θ-independent factors, so

    ln r(z|θ, ν) = ln w_z(θ, ν) − ln σ(θ, ν) − [ln w_z(θ_ref) − ln σ(θ_ref)]

exactly (θ_ref the SM with ν = 0 unless stated; w and σ morph in ν as in
:mod:`sbihep.fit.morphing`).  This is the truth that learned estimators of r(x|θ) are compared
with.  The features the ratio reads are the coefficients, laid out by :func:`exact_features`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.fit.morphing import EventSetMorphing, EventSetSigma
from sbihep.fit.unbinned import EventSetToys, UnbinnedTerm
from sbihep.params import Parameter, ParameterSpace

__all__ = ["ExactLogRatio", "exact_features", "exact_unbinned_term"]


def exact_features(eventset, nuisances: Sequence[str] | None = None) -> np.ndarray:
    """(N, M·(1 + 2K)) features: each event's coefficients c, then (+1σ, −1σ) coefficients of each
    nuisance in ``nuisances`` order (default: the EventSet's own nuisances).

    Raises:
        InvalidInputError: a nuisance the EventSet does not carry.
    """
    declared = eventset.nuisances
    nuisances = list(declared) if nuisances is None else list(nuisances)
    missing = [k for k in nuisances if k not in declared]
    if missing:
        raise InvalidInputError(f"exact_features: the EventSet has no variations for nuisance(s) {missing}; it has {sorted(declared)}")
    parts = [np.asarray(eventset.data["eft"].values, dtype=np.float64)]
    if nuisances:
        variations = eventset.data["eft_variations"]
        for k in nuisances:
            up, down = declared[k]
            parts += [np.asarray(variations.sel(variation=up).values), np.asarray(variations.sel(variation=down).values)]
    return np.concatenate(parts, axis=1)


class ExactLogRatio:
    """Callable ``(x, theta) -> (n,)`` exact ln r(z|θ, ν) for features ``x`` from :func:`exact_features`.

    Args:
        reference: the EventSet whose Σ w(θ, ν) defines σ(θ, ν) (the density's normalisation).
        theta_ref: the reference hypothesis (operators by name; ν = 0), default the SM.
    """

    def __init__(self, reference, theta_ref: Mapping[str, float] | None = None) -> None:
        self.sigma = EventSetSigma(reference)
        #: operators of the reference events held at these values (EventSet.restrict); not parameters
        self.fixed_operators = dict(getattr(reference, "fixed_operators", {}))
        morph = self.sigma.morphing
        self.operators, self.order, self.nuisances = morph.operators, morph.order, morph.nuisances
        self.theta_ref = {k: float(v) for k, v in (theta_ref or {}).items()}
        unknown = sorted(set(self.theta_ref) - set(self.operators))
        if unknown:
            raise InvalidInputError(f"ExactLogRatio: theta_ref names {unknown}, which are not operators {list(self.operators)}")
        self._x = None
        self._morph: EventSetMorphing | None = None
        self._ref: np.ndarray | None = None
        self._sums_key: tuple | None = None
        self._sums = self._sums_weights = None
        self._pool = None  # features of the reference events themselves: share its morphing and cache

    def _morphing(self, x: np.ndarray) -> tuple[EventSetMorphing, np.ndarray]:
        if x is not self._x:  # identity: a fit calls us many times with the same data array
            m = self.sigma.morphing.coefficients.shape[1]
            k = len(self.nuisances)
            if x.ndim != 2 or x.shape[1] != m * (1 + 2 * k):
                raise ShapeError(f"ExactLogRatio: x must have shape (n, {m * (1 + 2 * k)}) (see exact_features), got {x.shape}")
            variations = x[:, m:].reshape(len(x), 2 * k, m) if k else None
            index = {name: (2 * i, 2 * i + 1) for i, name in enumerate(self.nuisances)}
            if x is self._pool:
                morph = self.sigma.morphing
            else:
                morph = EventSetMorphing(x[:, :m], self.operators, self.order, variations, index)
            ref = morph.log_weights(self.theta_ref) - np.log(self.sigma(self.theta_ref))
            self._x, self._morph, self._ref = x, morph, ref
            self._sums_key = None
        return self._morph, self._ref

    def __call__(self, x: np.ndarray, theta: Mapping[str, float]) -> np.ndarray:
        morph, ref = self._morphing(np.asarray(x))
        return morph.log_weights(theta) - np.log(self.sigma(theta)) - ref

    def weighted_sum(self, x: np.ndarray, weights: np.ndarray, theta: Mapping[str, float]) -> float:
        """Σ_i n_i ln r(z_i|θ, ν) without per-event work at a repeated θ.

        At fixed θ the sum is S₀ + Σ_k (A_k ν_k + B_k ν_k²) − N ln σ(θ, ν), with S₀, A, B sums over
        the events computed once per θ — what makes profiling the nuisances cheap.
        """
        morph, ref = self._morphing(np.asarray(x))
        ops, nus = morph.split(theta)
        key = (id(weights), *ops.tolist())
        if key != self._sums_key:
            log_w, a, b = morph.parts(ops)
            self._sums = (float(weights @ (log_w - ref)), a @ weights, b @ weights)
            self._sums_key, self._sums_weights = key, weights  # holding weights keeps id() unique
        s0, a_sum, b_sum = self._sums
        total = s0 + float(a_sum @ nus + b_sum @ (nus * nus)) if len(nus) else s0
        return total - float(np.sum(weights)) * float(np.log(self.sigma(theta)))

    def weighted_sum_gradient(self, x: np.ndarray, weights: np.ndarray, theta: Mapping[str, float], *,
                              operators: bool = True) -> dict[str, float]:
        """∂/∂θ of :meth:`weighted_sum` by name, analytic: the nuisances always, the operators unless
        ``operators=False`` (a profile fit at fixed operators does not need them).

        Σ_i n_i ∂ ln w_i(θ, ν) − N ∂σ/σ, with the event sums of ∂ ln w_i(θ)/∂θ, ∂a/∂θ, ∂b/∂θ, a and b
        formed once per θ, so that profiling ν at fixed θ costs O(K) per call beyond σ.
        """
        morph, _ = self._morphing(np.asarray(x))
        ops, nus = morph.split(theta)
        key = (id(weights), operators, *ops.tolist())
        if key != getattr(self, "_grad_sums_key", None):
            _, a, b, _ = morph._parts(ops)
            sums = {"a": a @ weights, "b": b @ weights}
            if operators:
                dlog_w, da, db = morph._derivative_parts(ops)
                sums.update(dlog_w=weights @ dlog_w, da=np.einsum("i,kij->kj", weights, da), db=np.einsum("i,kij->kj", weights, db))
            self._grad_sums, self._grad_sums_key, self._grad_sums_weights = sums, key, weights
        sums = self._grad_sums
        sigma, d_sigma = self.sigma.value_and_gradient(theta, operators=operators)
        n_total = float(np.sum(weights))
        gradient = {}
        if operators:
            d_ops = sums["dlog_w"] + (sums["da"].T @ nus + sums["db"].T @ (nus * nus) if len(nus) else 0.0)
            for name, value in zip(morph.operators, np.atleast_1d(d_ops).tolist()):
                gradient[name] = value - n_total * d_sigma[name] / sigma
        d_nus = sums["a"] + 2.0 * sums["b"] * nus
        for name, value in zip(morph.nuisances, np.atleast_1d(d_nus).tolist()):
            gradient[name] = value - n_total * d_sigma[name] / sigma
        return gradient

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_x"] = state["_morph"] = state["_ref"] = None
        state["_sums_key"] = state["_sums"] = state["_sums_weights"] = None
        state["_grad_sums_key"] = state["_grad_sums"] = state["_grad_sums_weights"] = None
        # _pool is kept: pickling preserves identity within one object graph, so the term's x still `is` it
        return state


def exact_unbinned_term(
    eventset,
    lumi_ifb: float,
    *,
    pois: Mapping[str, tuple[float, float]] | Sequence[str] | None = None,
    data=None,
    data_weights=None,
    lumi_uncertainty: float | None = None,
    nuisance_bounds: tuple[float, float] = (-5.0, 5.0),
    theta_ref: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> UnbinnedTerm:
    """The exact extended unbinned term of an EventSet's parton-level events.

    The EventSet is at once the model (σ(θ, ν) and the normalisation of p(z|θ, ν)) and the toy pool.

    Args:
        eventset: the simulated events (their nuisances become nuisance parameters with unit
            Gaussian constraints).
        lumi_ifb: integrated luminosity (fb⁻¹).
        pois: operator → bounds, or operator names (bounds (−10, 10)); default every operator.
            Operators left out are held at 0 (SM) by the term.
        data: (n, d) features of the observed events from :func:`exact_features` (e.g. of another
            EventSet); default: the Asimov data set at the SM.
        data_weights: (n,) multiplicities of ``data``.
        lumi_uncertainty: relative luminosity uncertainty (adds the nuisance ``lumi``).
        nuisance_bounds: bounds of the EventSet's nuisance parameters.
        theta_ref: reference hypothesis of the ratio (default SM).
        fixed: operators held at given values (TeV⁻²) instead of 0: the term is built on that slice
            (:meth:`~sbihep.events.eventset.EventSet.restrict`) and these operators are no parameters.
    """
    if fixed:
        eventset = eventset.restrict([op for op in eventset.operators if op not in fixed], fixed)
    ratio = ExactLogRatio(eventset, theta_ref)
    if pois is None:
        pois = {op: (-10.0, 10.0) for op in ratio.operators}
    elif not isinstance(pois, Mapping):
        pois = {op: (-10.0, 10.0) for op in pois}
    unknown = sorted(set(pois) - set(ratio.operators))
    if unknown:
        raise InvalidInputError(f"exact_unbinned_term: pois {unknown} are not operators of the EventSet {list(ratio.operators)}")
    space = ParameterSpace([Parameter(op, 0.0, tuple(b), unit="TeV^-2") for op, b in pois.items()])
    space = space.merge(eventset.nuisance_space(nuisance_bounds))
    toys = EventSetToys(ratio.sigma.morphing, exact_features(eventset))
    ratio._pool = toys.x
    term = UnbinnedTerm(ratio, toys.x, sigma_pb=ratio.sigma, lumi_ifb=lumi_ifb, parameters=space,
                        lumi_uncertainty=lumi_uncertainty, toys=toys)
    if data is None:
        return term.asimov(term.parameters.sm_point())
    return term.with_data(data, data_weights)
