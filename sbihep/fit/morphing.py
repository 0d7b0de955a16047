"""An EventSet's exact weights as numpy arrays, for fast repeated evaluation inside fits.

For event i with EFT coefficients c_i (M,) and, per nuisance k, the coefficients of its +1σ and
−1σ variations u_ik, d_ik (M,), the weight at Wilson coefficients θ and nuisances ν is (pb)

    w_i(θ, ν) = w_i(θ) · exp(Σ_k a_ik(θ) ν_k + b_ik(θ) ν_k²),
    w_i(θ) = c_i·m(θ),  a_ik = ½ ln(u_ik·m / d_ik·m),  b_ik = ½ ln((u_ik·m)(d_ik·m) / w_i(θ)²),

the exponential-quadratic morphing of :meth:`sbihep.events.eventset.EventSet.weights`, reproduced
here in numpy so that a fit evaluating many ν at the same θ (a profile fit at one scan point)
pays the (N, M) products once per θ and only O(N·K) per ν.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events import eft as eft_math

__all__ = ["EventSetMorphing", "EventSetSigma"]


class EventSetMorphing:
    """Weights w_i(θ, ν) of N events as exact polynomials in θ, morphed in ν.

    Args:
        coefficients: (N, M) EFT coefficients (pb) over the monomials of ``operators``/``order``.
        operators: Wilson-coefficient names, in the monomial order.
        order: ``"linear"`` or ``"quadratic"``.
        variations: (N, 2K, M) coefficients of the ±1σ variations, or None.
        nuisances: name → (index of the +1σ, index of the −1σ variation) in ``variations``.

    Use :meth:`from_eventset` to build one from an EventSet.
    """

    def __init__(self, coefficients, operators, order: str, variations=None, nuisances: Mapping[str, tuple[int, int]] | None = None):
        self.coefficients = np.ascontiguousarray(coefficients, dtype=np.float64)
        self.operators = tuple(operators)
        self.order = order
        n, m = self.coefficients.shape
        if m != eft_math.n_monomials(len(self.operators), order):
            raise ShapeError(f"EventSetMorphing: coefficients have {m} columns, not the monomial count of {self.operators} at {order} order")
        self.nuisances = tuple((nuisances or {}).keys())
        if self.nuisances:
            v = np.asarray(variations, dtype=np.float64)
            if v.ndim != 3 or v.shape[0] != n or v.shape[2] != m:
                raise ShapeError(f"EventSetMorphing: variations must have shape ({n}, V, {m}), got {v.shape}")
            idx = [nuisances[k] for k in self.nuisances]
            self._up = np.ascontiguousarray(np.stack([v[:, i, :] for i, _ in idx], axis=1))  # (N, K, M)
            self._down = np.ascontiguousarray(np.stack([v[:, j, :] for _, j in idx], axis=1))
        self._cache_key: tuple | None = None
        self._cache: tuple | None = None
        self._dcache_key: tuple | None = None
        self._dcache: tuple | None = None
        self._weights_key: tuple | None = None
        self._weights_value: np.ndarray | None = None

    @classmethod
    def from_eventset(cls, eventset) -> "EventSetMorphing":
        """The weights of an :class:`~sbihep.events.eventset.EventSet` (its nuisances included)."""
        declared = eventset.nuisances
        variations, index = None, {}
        if declared:
            names = [str(v) for v in eventset.data["variation"].values]
            variations = np.asarray(eventset.data["eft_variations"].values)
            index = {k: (names.index(up), names.index(down)) for k, (up, down) in declared.items()}
        return cls(np.asarray(eventset.data["eft"].values), eventset.operators, eventset.order, variations, index)

    def __len__(self) -> int:
        return self.coefficients.shape[0]

    def subset(self, index: np.ndarray) -> "EventSetMorphing":
        """The weights of events ``index`` (an integer array into the N events)."""
        new = object.__new__(EventSetMorphing)
        new.coefficients, new.operators, new.order, new.nuisances = self.coefficients[index], self.operators, self.order, self.nuisances
        if self.nuisances:
            new._up, new._down = self._up[index], self._down[index]
        new._cache_key = new._cache = None
        new._dcache_key = new._dcache = None
        new._weights_key = new._weights_value = None
        return new

    def split(self, theta: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """θ by name → (operator vector (n,), nuisance vector (K,)); missing names are 0."""
        unknown = sorted(set(theta) - set(self.operators) - set(self.nuisances))
        if unknown:
            raise InvalidInputError(f"EventSetMorphing: unknown parameter(s) {unknown}; operators {list(self.operators)}, nuisances {list(self.nuisances)}")
        ops = np.array([float(theta.get(o, 0.0)) for o in self.operators])
        nus = np.array([float(theta.get(k, 0.0)) for k in self.nuisances])
        return ops, nus

    def parts(self, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ln w_i(θ) (N,), a (K, N), b (K, N)) at operator values ``ops`` (n,); cached for the last θ.

        Raises:
            InvalidInputError: a non-positive weight (possible at linear order far from the SM).
        """
        return self._parts(ops)[:3]

    def _parts(self, ops: np.ndarray) -> tuple:
        key = tuple(ops.tolist())
        if key != self._cache_key:
            m = eft_math.monomials(ops, self.order).numpy()
            w = self.coefficients @ m
            if not np.all(w > 0):
                raise InvalidInputError(f"EventSetMorphing: {int(np.sum(w <= 0))} event weights are not positive at {dict(zip(self.operators, key))}")
            log_w = np.log(w)
            k = len(self.nuisances)
            a = b = np.zeros((k, len(w)))
            if k:
                log_up = (np.log(self._up @ m) - log_w[:, None]).T  # (K, N): one contiguous row per nuisance
                log_down = (np.log(self._down @ m) - log_w[:, None]).T
                a, b = np.ascontiguousarray(0.5 * (log_up - log_down)), np.ascontiguousarray(0.5 * (log_up + log_down))
            self._cache_key, self._cache = key, (log_w, a, b, w)
        return self._cache

    def _derivative_parts(self, ops: np.ndarray) -> tuple:
        """θ-derivatives at operator values ``ops`` (n,), cached for the last θ:
        (∂ ln w_i(θ)/∂θ_j (N, n), ∂a_ki/∂θ_j (K, N, n), ∂b_ki/∂θ_j (K, N, n)).
        """
        key = tuple(ops.tolist())
        if key != self._dcache_key:
            _, _, _, w = self._parts(ops)
            m = eft_math.monomials(ops, self.order).numpy()
            jac = eft_math.monomial_jacobian(ops, self.order).numpy()  # (M, n)
            dlog_w = (self.coefficients @ jac) / w[:, None]
            n_events, k = len(w), len(self.nuisances)
            da = db = np.zeros((k, n_events, len(ops)))
            if k:
                def dlog(c: np.ndarray) -> np.ndarray:  # (N, K, M) → ∂ ln(c·m)/∂θ as (K, N, n); 2D products for BLAS
                    flat = c.reshape(n_events * k, -1)
                    return ((flat @ jac) / (flat @ m)[:, None]).reshape(n_events, k, -1).transpose(1, 0, 2)
                dlog_up, dlog_down = dlog(self._up), dlog(self._down)
                da = np.ascontiguousarray(0.5 * (dlog_up - dlog_down))
                db = np.ascontiguousarray(0.5 * (dlog_up + dlog_down) - dlog_w[None])
            self._dcache_key, self._dcache = key, (dlog_w, da, db)
        return self._dcache

    def weighted_log_weight_gradients(self, weights: np.ndarray, ops: np.ndarray, nus: np.ndarray, *,
                                      operators: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """(Σ_i v_i ∂ ln w_i(θ, ν)/∂θ (n,) or None when ``operators=False``, Σ_i v_i ∂ ln w_i(θ, ν)/∂ν (K,))
        for per-event factors v (N,), formed as vector–matrix products (no (N, n) temporaries per call).
        """
        _, a, b, _ = self._parts(ops)
        d_ops = None
        if operators:
            dlog_w, da, db = self._derivative_parts(ops)
            d_ops = weights @ dlog_w
            for k, nu in enumerate(nus.tolist()):
                if nu:
                    d_ops = d_ops + nu * (weights @ da[k]) + (nu * nu) * (weights @ db[k])
        d_nus = a @ weights + 2.0 * nus * (b @ weights)
        return d_ops, d_nus

    def total_and_gradient(self, theta: Mapping[str, float], *, operators: bool = True) -> tuple[float, np.ndarray | None, np.ndarray]:
        """(Σ_i w_i(θ, ν) in pb, its gradient in the operators (n,) (None when ``operators=False``),
        in the nuisances (K,))."""
        ops, nus = self.split(theta)
        w_nu = self._weights_at(ops, nus)
        d_ops, d_nus = self.weighted_log_weight_gradients(w_nu, ops, nus, operators=operators)
        return float(w_nu.sum()), d_ops, d_nus

    def _weights_at(self, ops: np.ndarray, nus: np.ndarray) -> np.ndarray:
        """w_i(θ, ν) (N,), remembered for the last (θ, ν): a minimiser asks for value and gradient in turn."""
        key = (*ops.tolist(), *nus.tolist())
        if key != self._weights_key:
            _, a, b, w = self._parts(ops)
            self._weights_key, self._weights_value = key, (w * np.exp(self._exponent(a, b, nus)) if np.any(nus) else w)
        return self._weights_value

    def _exponent(self, a: np.ndarray, b: np.ndarray, nus: np.ndarray) -> np.ndarray:
        """Σ_k a_k ν_k + b_k ν_k², (N,)."""
        out = np.zeros(a.shape[1])
        for k, nu in enumerate(nus.tolist()):
            if nu:
                out += a[k] * nu
                out += b[k] * (nu * nu)
        return out

    def log_weights(self, theta: Mapping[str, float]) -> np.ndarray:
        """ln w_i(θ, ν), (N,), θ and ν by name."""
        ops, nus = self.split(theta)
        log_w, a, b, _ = self._parts(ops)
        if not np.any(nus):
            return log_w
        return log_w + self._exponent(a, b, nus)

    def weights(self, theta: Mapping[str, float]) -> np.ndarray:
        """w_i(θ, ν) in pb, (N,) (read-only: the array is cached)."""
        ops, nus = self.split(theta)
        return self._weights_at(ops, nus)

    def total(self, theta: Mapping[str, float]) -> float:
        """Σ_i w_i(θ, ν) in pb."""
        ops, nus = self.split(theta)
        return float(self._weights_at(ops, nus).sum())

    def __getstate__(self):  # the cache is large and cheap to rebuild
        state = dict(self.__dict__)
        state["_cache_key"] = state["_cache"] = None
        state["_dcache_key"] = state["_dcache"] = None
        state["_weights_key"] = state["_weights_value"] = None
        return state


class EventSetSigma:
    """σ(θ, ν) = Σ_i w_i(θ, ν) (pb) of an EventSet: at ν = 0 the sample's exact polynomial in θ.

    A callable ``sigma(theta) -> float`` over θ and ν by name.
    """

    def __init__(self, eventset_or_morphing) -> None:
        m = eventset_or_morphing
        self.morphing = m if isinstance(m, EventSetMorphing) else EventSetMorphing.from_eventset(m)
        self._sigma_coefficients = self.morphing.coefficients.sum(axis=0)
        self._last: tuple = ((), 0.0)
        self._last_gradient: tuple = ((), None)

    def __call__(self, theta: Mapping[str, float]) -> float:
        ops, nus = self.morphing.split(theta)
        key = (*ops.tolist(), *nus.tolist())
        if key == self._last[0]:  # a term and its log-ratio often ask for the same point in turn
            return self._last[1]
        if not np.any(nus):  # the polynomial: no per-event work
            value = float(self._sigma_coefficients @ eft_math.monomials(ops, self.morphing.order).numpy())
        else:
            value = self.morphing.total(theta)
        self._last = (key, value)
        return value

    def value_and_gradient(self, theta: Mapping[str, float], *, operators: bool = True) -> tuple[float, dict[str, float]]:
        """(σ(θ, ν) in pb, ∂σ/∂θ_i by name over the nuisances and, unless ``operators=False``, the operators)."""
        morph = self.morphing
        ops, nus = morph.split(theta)
        key = (operators, *ops.tolist(), *nus.tolist())
        if key == self._last_gradient[0]:
            return self._last_gradient[1]
        if not np.any(nus):  # the polynomial in θ; ∂σ/∂ν_k = Σ_i w_i a_ik
            value = float(self._sigma_coefficients @ eft_math.monomials(ops, morph.order).numpy())
            d_ops = self._sigma_coefficients @ eft_math.monomial_jacobian(ops, morph.order).numpy() if operators else None
            _, a, _, w = morph._parts(ops)
            d_nus = a @ w
        else:
            value, d_ops, d_nus = morph.total_and_gradient(theta, operators=operators)
        gradient = dict(zip(morph.nuisances, np.atleast_1d(d_nus).tolist()))
        if operators:
            gradient.update(zip(morph.operators, np.atleast_1d(d_ops).tolist()))
        self._last_gradient = (key, (value, gradient))
        self._last = (key[1:], value)
        return value, gradient
