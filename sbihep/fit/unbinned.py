"""Extended unbinned likelihood from any log-likelihood ratio log r̂(x|θ) and a cross section σ(θ).

With p(x|θ) = r(x|θ) p(x|θ_ref), expected events λ(θ) = 1000 · lumi_ifb · σ_pb(θ) · κ and data
events x_i with weights n_i (1 for real data; counts for compressed toys; expected counts for
Asimov data), the extended likelihood gives

    −ln L(θ) = λ(θ) − N ln λ(θ) − Σ_i n_i ln r̂(x_i|θ)        N = Σ_i n_i,

dropping the θ-independent Σ n_i ln p(x_i|θ_ref) and ln N!.  An optional luminosity nuisance
ν_L (unit Gaussian constraint) scales κ = (1 + δ_L)^ν_L — a log-normal normalisation
uncertainty δ_L.  Every other nuisance reaches the term through log r̂ and σ, which receive all
of the term's parameters except ν_L by name.

Toys (:meth:`UnbinnedTerm.toy`) need a :class:`EventSetToys` pool: toy data *reuse the simulated
events*, drawing N ~ Poisson(λ(θ, ν)) of them with replacement with probability ∝ w_i(θ, ν).
A toy's events are stored once each, with their multiplicity as weight.

A finite pool carries a Monte Carlo uncertainty.  Toys reuse its events, and every toy (and the
Asimov data set) follows the pool's empirical distribution, not the true one; when the pool also
provides σ(θ) (the exact term), the model itself fluctuates with the pool.  The scale of both is the
ratio of the pool's relative MC error on a yield, 1/√N_eff (N_eff = (Σw)²/Σw², Kish's effective
size), to the data's Poisson error 1/√λ: :meth:`EventSetToys.mc_ratio` = √(λ/N_eff).  ``toy`` and
``asimov`` warn (:class:`~sbihep.errors.ToyPoolWarning`, once per pool) when it exceeds
:data:`POOL_MC_THRESHOLD` and record it on the new term (``pool_mc_ratio``).
:meth:`UnbinnedTerm.pool_uncertainty` propagates the pool's fluctuations (a Poisson bootstrap of its
events, to first order) to each fitted parameter: the MC error of θ̂ against its statistical error.

A *learned* r̂ is only approximately normalised, E_ref[r̂(x|θ)] ≠ 1, and a normalisation error
that depends on θ biases the fit directly.  :class:`NormalisedLogRatio` divides it out with an
independent reference sample: ln r̂ − ln Ê_ref[r̂(x|θ)].
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

import warnings

from sbihep._checks import check_real
from sbihep.errors import InvalidInputError, ShapeError, ToyPoolWarning
from sbihep.fit.morphing import EventSetMorphing
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

__all__ = ["UnbinnedTerm", "EventSetToys", "NormalisedLogRatio", "lumi_parameter", "POOL_MC_THRESHOLD"]

#: Largest tolerated ratio of a pool's Monte Carlo error to the statistical error (yield, or a fitted
#: parameter) before :class:`~sbihep.errors.ToyPoolWarning`: at 0.2 the MC error adds 2% to the total
#: error in quadrature, and a bias of that size (in σ) moves a 68% interval's coverage by < 1%.
POOL_MC_THRESHOLD = 0.2

#: 1 pb × 1 fb⁻¹ = 1000 events.
_EVENTS_PER_PB_IFB = 1000.0


def lumi_parameter(name: str = "lumi") -> Parameter:
    """The luminosity nuisance: unit Gaussian constraint, bounds ±5."""
    return Parameter(name, 0.0, (-5.0, 5.0), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0),
                     description="log-normal luminosity nuisance: yield × (1 + δ_L)^ν")


class EventSetToys:
    """A pool of simulated events to draw toy data sets (and the Asimov data set) from.

    Args:
        morphing: the pool's weights w_i(θ, ν) (an :class:`EventSetMorphing` or an EventSet).
        x: (N_pool, d) features of the pool's events, in the form the term's ``log_ratio`` reads.
    """

    def __init__(self, morphing, x) -> None:
        self.morphing = morphing if isinstance(morphing, EventSetMorphing) else EventSetMorphing.from_eventset(morphing)
        self.x = np.asarray(x)
        if self.x.shape[0] != len(self.morphing):
            raise ShapeError(f"EventSetToys: x has {self.x.shape[0]} rows for {len(self.morphing)} pool events")

    def _weights(self, theta: Mapping[str, float]) -> np.ndarray:
        return self.morphing.weights({k: v for k, v in theta.items() if k in self.morphing.operators or k in self.morphing.nuisances})

    def probabilities(self, theta: Mapping[str, float]) -> np.ndarray:
        """w_i(θ, ν)/Σ w, (N_pool,)."""
        w = self._weights(theta)
        return w / w.sum()

    def n_effective(self, theta: Mapping[str, float]) -> float:
        """Kish's effective number of pool events at θ, (Σw)²/Σw² (= N_pool for equal weights)."""
        w = self._weights(theta)
        return float(w.sum() ** 2 / np.sum(w * w))

    def mc_ratio(self, theta: Mapping[str, float], expected: float) -> float:
        """√(λ/N_eff): the pool's relative MC error on a yield over the Poisson error of λ expected
        events — the size of the pool's MC uncertainty against the statistical one (≪ 1 wanted)."""
        return math.sqrt(max(float(expected), 0.0) / self.n_effective(theta))

    def check(self, theta: Mapping[str, float], expected: float, *, threshold: float = POOL_MC_THRESHOLD,
              what: str = "toy data") -> float:
        """:meth:`mc_ratio`, warning with :class:`~sbihep.errors.ToyPoolWarning` (once per pool) above
        ``threshold``."""
        ratio = self.mc_ratio(theta, expected)
        if ratio > threshold and not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(
                f"EventSetToys: {what} drawn from a pool of {len(self.morphing)} events (N_eff = "
                f"{self.n_effective(theta):.0f}) for {expected:.0f} expected events: the pool's MC error is "
                f"{ratio:.2f} of the statistical one (threshold {threshold}); fits on these data can be biased "
                "by a sizeable fraction of σ. Use a larger pool (N_eff ≫ λ), or see UnbinnedTerm.pool_uncertainty.",
                ToyPoolWarning, stacklevel=3)
        return ratio

    def sample(self, theta: Mapping[str, float], expected: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A toy: (x of the distinct drawn events (n, d), their multiplicities (n,))."""
        n = rng.poisson(expected)
        index = rng.choice(len(self.morphing), size=n, p=self.probabilities(theta))
        unique, counts = np.unique(index, return_counts=True)
        return self.x[unique], counts.astype(np.float64)

    def asimov(self, theta: Mapping[str, float], expected: float) -> tuple[np.ndarray, np.ndarray]:
        """The Asimov data set: every pool event with its expected count λ·p_i."""
        return self.x, expected * self.probabilities(theta)


class NormalisedLogRatio:
    """ln r̂(x|θ) − ln( Σ_j v_j r̂(x_j|θ) / Σ_j v_j ): a learned ratio normalised on a reference sample.

    Args:
        log_ratio: ``log_ratio(x, theta) -> (n,)`` as for :class:`UnbinnedTerm`.
        reference_x: (m, d) features of events drawn at the reference hypothesis of r̂ (e.g. the SM),
            independent of the data and ideally of the training sample.
        reference_weights: (m,) their weights (default 1; weighted samples are fine).
    Raises:
        ShapeError / InvalidInputError: an empty reference sample, weights of the wrong shape, negative
            or all zero.
    """

    def __init__(self, log_ratio: Callable[[np.ndarray, Mapping[str, float]], np.ndarray], reference_x,
                 reference_weights=None) -> None:
        self.log_ratio = log_ratio
        self.reference_x = np.asarray(reference_x)
        m = self.reference_x.shape[0] if self.reference_x.ndim else 0
        if m == 0:
            raise ShapeError("NormalisedLogRatio: reference_x is empty")
        v = np.ones(m) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
        if v.shape != (m,):
            raise ShapeError(f"NormalisedLogRatio: reference_weights must have shape ({m},), got {v.shape}")
        if np.any(v < 0) or not np.all(np.isfinite(v)) or not v.sum() > 0:
            raise InvalidInputError("NormalisedLogRatio: reference_weights must be finite, ≥ 0 and not all 0")
        self.reference_weights = v / v.sum()
        self._last: tuple = (None, 0.0)

    def log_normalisation(self, theta: Mapping[str, float]) -> float:
        """ln Ê_ref[r̂(x|θ)] (cached for the last θ)."""
        key = tuple(sorted((k, float(v)) for k, v in theta.items()))
        if key != self._last[0]:
            log_r = np.asarray(self.log_ratio(self.reference_x, theta), dtype=np.float64)
            peak = float(np.max(log_r))
            self._last = (key, peak + math.log(float(self.reference_weights @ np.exp(log_r - peak))))
        return self._last[1]

    def __call__(self, x, theta: Mapping[str, float]) -> np.ndarray:
        return np.asarray(self.log_ratio(x, theta), dtype=np.float64) - self.log_normalisation(theta)


class UnbinnedTerm:
    """Extended unbinned likelihood term (see the module docstring).

    Args:
        log_ratio: ``log_ratio(x, theta) -> (n,)`` ln r̂(x_i|θ) for data features ``x`` (n, d) and
            θ by name (every term parameter except the luminosity nuisance).  Any estimator fits;
            :class:`~sbihep.fit.exact.ExactLogRatio` is the exact one for parton-level data.  A
            ratio may also offer ``weighted_sum(x, weights, theta) -> float`` (= weights · log_ratio),
            which the term then uses.
        x: (n, d) data features.
        sigma_pb: ``sigma_pb(theta) -> float``, σ(θ) in pb (e.g. an
            :class:`~sbihep.fit.morphing.EventSetSigma`).
        lumi_ifb: integrated luminosity (fb⁻¹).
        parameters: the POIs and nuisances that ``log_ratio`` and ``sigma_pb`` depend on.
        weights: (n,) event multiplicities (default 1).
        lumi_uncertainty: relative luminosity uncertainty δ_L; adds the nuisance ``lumi_name``.
        lumi_name: name of the luminosity nuisance.
        toys: an :class:`EventSetToys` pool, needed for :meth:`toy` and :meth:`asimov`.

    Raises:
        InvalidInputError / ShapeError: non-positive luminosity or uncertainty, weights of the wrong
            shape or negative, a parameters argument that is not a ParameterSpace.
    """

    def __init__(
        self,
        log_ratio: Callable[[np.ndarray, Mapping[str, float]], np.ndarray],
        x,
        *,
        sigma_pb: Callable[[Mapping[str, float]], float],
        lumi_ifb: float,
        parameters: ParameterSpace,
        weights=None,
        lumi_uncertainty: float | None = None,
        lumi_name: str = "lumi",
        toys: EventSetToys | None = None,
    ) -> None:
        if not isinstance(parameters, ParameterSpace):
            raise InvalidInputError(f"UnbinnedTerm: parameters must be a ParameterSpace, got {type(parameters).__name__}")
        check_real("UnbinnedTerm: lumi_ifb", lumi_ifb, positive=True)
        if lumi_uncertainty is not None:
            check_real("UnbinnedTerm: lumi_uncertainty", lumi_uncertainty)
        if lumi_uncertainty is not None and not (math.isfinite(lumi_uncertainty) and 0 < lumi_uncertainty < 1):
            raise InvalidInputError(f"UnbinnedTerm: lumi_uncertainty must lie in (0, 1), got {lumi_uncertainty!r}")
        self.log_ratio, self.sigma_pb, self.toys = log_ratio, sigma_pb, toys
        self.lumi_ifb, self.lumi_uncertainty, self.lumi_name = float(lumi_ifb), lumi_uncertainty, lumi_name
        self.model_parameters = parameters
        self.parameters = parameters if lumi_uncertainty is None else parameters.merge(ParameterSpace([lumi_parameter(lumi_name)]))
        self.x = np.asarray(x)
        n = self.x.shape[0]
        self.weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (n,):
            raise ShapeError(f"UnbinnedTerm: weights must have shape ({n},), got {self.weights.shape}")
        if np.any(self.weights < 0) or not np.all(np.isfinite(self.weights)):
            raise InvalidInputError("UnbinnedTerm: weights must be finite and ≥ 0")
        self.n_observed = float(self.weights.sum())

    def _split(self, theta: Mapping[str, float]) -> tuple[dict[str, float], float]:
        model = {n: theta[n] for n in self.model_parameters.names}
        kappa = 1.0 if self.lumi_uncertainty is None else (1.0 + self.lumi_uncertainty) ** theta[self.lumi_name]
        return model, kappa

    def expected_events(self, theta: Mapping[str, float]) -> float:
        """λ(θ) = 1000 · lumi_ifb · σ_pb(θ) · κ."""
        model, kappa = self._split(theta)
        return _EVENTS_PER_PB_IFB * self.lumi_ifb * float(self.sigma_pb(model)) * kappa

    def nll(self, theta: Mapping[str, float]) -> float:
        """−ln L = λ − N ln λ − Σ n_i ln r̂(x_i|θ) (θ-independent constants dropped)."""
        model, kappa = self._split(theta)
        lam = _EVENTS_PER_PB_IFB * self.lumi_ifb * float(self.sigma_pb(model)) * kappa
        if not lam > 0:
            raise InvalidInputError(f"UnbinnedTerm: expected events {lam} are not positive at {dict(theta)}")
        if hasattr(self.log_ratio, "weighted_sum"):  # optional fast path of a ratio that can sum itself
            shape = float(self.log_ratio.weighted_sum(self.x, self.weights, model))
        else:
            shape = float(self.weights @ np.asarray(self.log_ratio(self.x, model), dtype=np.float64))
        return lam - self.n_observed * math.log(lam) - shape

    @property
    def nll_grad(self) -> Callable[[Mapping[str, float]], dict[str, float]] | None:
        """∂(−ln L)/∂θ by name, analytic — available (not None) when the ratio provides
        ``weighted_sum_gradient`` and σ provides ``value_and_gradient`` (the exact parton-level term);
        otherwise None and :class:`~sbihep.fit.likelihood.Likelihood` falls back to finite differences.
        """
        if hasattr(self.log_ratio, "weighted_sum_gradient") and hasattr(self.sigma_pb, "value_and_gradient"):
            return self._nll_grad
        return None

    def _nll_grad(self, theta: Mapping[str, float], wrt=None) -> dict[str, float]:
        model, kappa = self._split(theta)
        want_operators = wrt is None or any(n in wrt for n in getattr(self.log_ratio, "operators", model))
        sigma, d_sigma = self.sigma_pb.value_and_gradient(model, operators=want_operators)
        lam = _EVENTS_PER_PB_IFB * self.lumi_ifb * sigma * kappa
        if not lam > 0:
            raise InvalidInputError(f"UnbinnedTerm: expected events {lam} are not positive at {dict(theta)}")
        d_shape = self.log_ratio.weighted_sum_gradient(self.x, self.weights, model, operators=want_operators)
        factor = 1.0 - self.n_observed / lam  # ∂(λ − N ln λ)/∂λ
        gradient = {n: factor * lam * d_sigma[n] / sigma - d_shape[n] for n in model if n in d_shape}
        if self.lumi_uncertainty is not None:
            gradient[self.lumi_name] = factor * lam * math.log1p(self.lumi_uncertainty)
        return gradient

    def with_data(self, x, weights=None) -> "UnbinnedTerm":
        """The same model with other data."""
        return UnbinnedTerm(self.log_ratio, x, sigma_pb=self.sigma_pb, lumi_ifb=self.lumi_ifb,
                            parameters=self.model_parameters, weights=weights,
                            lumi_uncertainty=self.lumi_uncertainty, lumi_name=self.lumi_name, toys=self.toys)

    def _pool(self, what: str) -> EventSetToys:
        if self.toys is None:
            raise InvalidInputError(f"UnbinnedTerm.{what}: the term has no toy pool (pass toys=EventSetToys(...))")
        return self.toys

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "UnbinnedTerm":
        """A toy data set drawn at θ from the pool (events reused, see the module docstring)."""
        model, _ = self._split(theta)
        pool, expected = self._pool("toy"), self.expected_events(theta)
        ratio = pool.check(model, expected, what="toy data")
        x, counts = pool.sample(model, expected, rng)
        new = self.with_data(x, counts)
        new.pool_mc_ratio = ratio
        return new

    def asimov(self, theta: Mapping[str, float]) -> "UnbinnedTerm":
        """The Asimov data set at θ: all pool events weighted by their expected counts."""
        model, _ = self._split(theta)
        pool, lam = self._pool("asimov"), self.expected_events(theta)
        ratio = pool.check(model, lam, what="Asimov data")
        x, expected = pool.asimov(model, lam)
        new = self.with_data(x, expected)
        new.pool_mc_ratio = ratio
        return new

    def pool_uncertainty(self, theta: Mapping[str, float] | None = None, *, data_from_pool: bool = True,
                         threshold: float = POOL_MC_THRESHOLD, warn: bool = True):
        """The toy pool's Monte Carlo uncertainty on the fitted parameters, against the statistical one.

        First-order propagation of a Poisson bootstrap of the pool (each pool event's multiplicity
        m_j ~ Pois(1)): the gradient of −ln L at θ moves by δg = Σ_j δm_j v_j, with

        - data drawn from the pool (``data_from_pool``: toys, Asimov): v_j = −(λ/W) w_j (s_j − s̄),
          s_j = ∂ ln(λ r(x_j|θ)) the per-event score, s̄ its pool mean, W = Σ w (s̄ → 0 when λ is
          made from the pool too: then the data move in yield as well);
        - σ(θ) taken from the pool (the term's ``sigma_pb`` morphs the pool's own weights):
          v_j = λ/W ∂w_j(θ) when the ratio is normalised by the same σ (the exact term, where −ln L
          depends on the pool only through λ), else v_j = λ/W w_j ∂ ln λ;

        (the two cancel for the exact term on its own pool's toys: the pool's model and its toys agree,
        and only real data see the pool's MC error), so that Cov_MC(θ̂) = I⁻¹ (Σ_j v_j v_jᵀ) I⁻¹, with I = Σ_j n_j s_j s_jᵀ (+ the declared Gaussian
        constraints) the expected Fisher information of the pool's Asimov data at θ (n_j = λ w_j/W).
        Derivatives by central differences (a learned ratio is evaluated 2k times on the pool).

        Args:
            theta: the point (default: the term's SM point); nuisances included by name.
            data_from_pool: whether the data are pool toys / Asimov (False: real data, where only a
                pool-made σ(θ) contributes).
            threshold: ratio above which to warn.
            warn: emit :class:`~sbihep.errors.ToyPoolWarning` when a ratio exceeds ``threshold``.

        Returns:
            ``xarray.Dataset`` over ``parameter``: ``stat_error``, ``mc_error`` and ``mc_over_stat``;
            attrs ``n_pool``, ``n_effective``, ``expected_events``, ``yield_mc_ratio`` (√(λ/N_eff)),
            ``sigma_from_pool``, ``data_from_pool``, ``max_mc_over_stat``, ``threshold``.
        """
        import xarray as xr

        pool = self._pool("pool_uncertainty")
        full = self.parameters.validate(theta)
        model, kappa = self._split(full)
        names = list(self.parameters.names)
        lam = self.expected_events(full)
        w = np.array(pool._weights(model), dtype=np.float64)
        total = float(w.sum())
        n = lam * w / total
        sigma_from_pool = getattr(self.sigma_pb, "morphing", None) is pool.morphing
        self_normalised = sigma_from_pool and getattr(self.log_ratio, "sigma", None) is self.sigma_pb

        def log_lambda_r(point):
            m, _ = self._split(point)
            return math.log(self.expected_events(point)) + np.asarray(self.log_ratio(pool.x, m), dtype=np.float64)

        scores = np.zeros((len(w), len(names)))
        d_weights = np.zeros((len(w), len(names)))
        d_log_lambda = np.zeros(len(names))
        for k, name in enumerate(names):
            if name == self.lumi_name and self.lumi_uncertainty is not None:
                scores[:, k] = d_log_lambda[k] = math.log1p(self.lumi_uncertainty)
                d_weights[:, k] = w * math.log1p(self.lumi_uncertainty)
                continue
            low, high = self.parameters[name].bounds
            h = 1e-4 * max(1.0, abs(full[name]))
            up, down = min(full[name] + h, high), max(full[name] - h, low)
            plus, minus = {**full, name: up}, {**full, name: down}
            scores[:, k] = (log_lambda_r(plus) - log_lambda_r(minus)) / (up - down)
            d_log_lambda[k] = (math.log(self.expected_events(plus)) - math.log(self.expected_events(minus))) / (up - down)
            if name in pool.morphing.operators or name in pool.morphing.nuisances:
                d_weights[:, k] = (pool._weights(self._split(plus)[0]) - pool._weights(self._split(minus)[0])) / (up - down)
        fisher = (scores * n[:, None]).T @ scores
        for k, name in enumerate(names):
            constraint = self.parameters[name].constraint
            if constraint is not None:
                fisher[k, k] += 1.0 / constraint.sigma**2
        v = np.zeros_like(scores)
        if data_from_pool:  # δn_j: with λ fixed the data only move in shape; with a pool-made λ also in yield
            centred = scores if sigma_from_pool else scores - (w / total) @ scores
            v -= (lam / total) * w[:, None] * centred
        if sigma_from_pool:
            v += (lam / total) * (d_weights if self_normalised else w[:, None] * d_log_lambda)
        inverse = np.linalg.pinv(fisher)
        stat = np.sqrt(np.clip(np.diag(inverse), 0.0, None))
        mc = np.sqrt(np.clip(np.diag(inverse @ (v.T @ v) @ inverse), 0.0, None))
        ratio = np.divide(mc, stat, out=np.full_like(mc, np.nan), where=stat > 0)
        n_eff = float(total**2 / np.sum(w * w))
        ds = xr.Dataset({"stat_error": ("parameter", stat), "mc_error": ("parameter", mc), "mc_over_stat": ("parameter", ratio)},
                        coords={"parameter": names})
        worst = float(np.nanmax(ratio)) if np.any(np.isfinite(ratio)) else math.nan
        ds.attrs.update(n_pool=len(w), n_effective=n_eff, expected_events=lam, yield_mc_ratio=math.sqrt(lam / n_eff),
                        sigma_from_pool=int(sigma_from_pool), data_from_pool=int(data_from_pool),
                        max_mc_over_stat=worst, threshold=threshold)
        if warn and worst > threshold:
            which = [f"{nm} {r:.2f}" for nm, r in zip(names, ratio.tolist()) if r > threshold]
            warnings.warn(f"UnbinnedTerm.pool_uncertainty: the toy pool's MC error on the fitted parameters is not small "
                          f"against the statistical one (MC/stat: {', '.join(which)}; threshold {threshold}); "
                          f"pool of {len(w)} events, N_eff = {n_eff:.0f}, λ = {lam:.0f}", ToyPoolWarning, stacklevel=2)
        return ds

    def __repr__(self) -> str:
        held = self.fixed_operators
        return (f"UnbinnedTerm({self.x.shape[0]} events, N={self.n_observed:g}, parameters={list(self.parameters.names)}"
                f"{f', fixed={held}' if held else ''})")

    @property
    def fixed_operators(self) -> dict[str, float]:
        """Operators held at fixed values by the model's events (:meth:`~sbihep.events.eventset.EventSet.restrict`),
        as the log-ratio reports them ({} when it does not say)."""
        return dict(getattr(self.log_ratio, "fixed_operators", {}) or {})
