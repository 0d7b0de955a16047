"""Generative unfolding: a conditional flow p(z | x) trained on simulation and sampled for the data,
with iterative removal of the simulation's prior (IcINN, Backes et al., arXiv:2212.08674).

Single pass: the flow learns p_sim(z | x) ∝ p(x | z) p_sim(z) from simulated (truth z, reco x) pairs;
sampling it for every data event gives the pushforward ∫ p_data(x) p_sim(z | x) dx, which still
depends on the simulation's truth distribution p_sim(z) (the prior).  Iteration n + 1 retrains the
flow on the simulation reweighted by ν_{n+1}(z) = p_unf,n(z)/p_sim(z), learned by a classifier
(:class:`~sbihep.flows.omnifold.DensityRatio`) between the unfolded sample of iteration n and the
simulated truth, i.e. it replaces the prior by the previous unfolded distribution.  With exact
networks iteration n equals iteration n of iterative Bayesian unfolding / OmniFold, and the fixed
point no longer depends on p_sim(z).

Efficiency: the flow is trained on simulated events that pass the selection, so the unfolded sample
describes the truth of the selected events; with ``correct_efficiency=True`` the samples carry the
weight 1/ε(z) with ε(z) = P(pass | z) from a classifier at generator level, so that they describe all
events (and the prior update compares with the truth of all simulated events instead of the selected ones).
Where ε(z) rises steeply (a selection threshold), 1/ε(z) amplifies every sample that lands near the
turn-on.  ``reweight_truth=True`` avoids the division: the classifier ν(z) = p_unf,sel(z)/p_sim,sel(z)
between the unfolded samples and the selected simulated truth equals p_unf(z)/p_sim(z) wherever
ε(z) > 0 (ε cancels), and weighting ALL simulated truth events by w₀ν gives the efficiency-corrected
spectrum, like OmniFold's weights (on W → ℓν m_T: Δ×10³ 0.05 against ≈ 5 with 1/ε(z);
benchmarks/bench_unfolding.py --physics).
Background: a background sample (normalised to the data) is unfolded with the same flow and its
samples enter with negative weights.  Fakes are not modelled: subtract them as background.

Bounded or heavy-tailed variables (``support``, ``reco_support``): the flow standardises its inputs and
its splines act on [−5, 5] standard deviations, so a variable with a hard edge (a transverse mass,
an energy ≥ 0) or a long tail is learned poorly in its own units, and samples may leak past the
physical bound.  Each feature can be given a support (low, high), either end None: the flow then
works with y = log((z − low)/(high − z)) (both ends), log(z − low) (low only), −log(high − z) (high
only) or y = z (neither), and its samples are mapped back, so they always lie inside the support.  The
map is monotone, so density ratios (the prior update, the efficiency) do not change; they are still
learned on z.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from pathlib import Path

import numpy as np
from scipy.special import expit

from sbihep.errors import InvalidInputError, OutOfBoundsError, ShapeError
from sbihep.estimators.base import read_estimator, save_estimator
from sbihep.estimators.train import TrainingHistory
from sbihep.flows.conditional import ConditionalFlow
from sbihep.flows.omnifold import (
    DensityRatio,
    _progress,
    as_events,
    as_mask,
    as_weights,
    binned_spectrum,
    data_minus_background,
    fit_ratio,
    replica_weights,
)

__all__ = ["GenerativeUnfolding", "GenerativeUnfoldingResult", "SupportTransform", "iterative_generative_unfolding"]

_MAX_LOG = 700.0  # |y| beyond which exp overflows float64


class SupportTransform:
    """Per-feature monotone map of bounded or half-bounded variables onto the real line.

    Args:
        support: D pairs (low, high) with ``None`` for an open end (default: D × (None, None)), or None.
        n_features: D.
        argument: the name used in error messages.

    :meth:`forward` maps (N, D) values in physical units to the unbounded y (module docstring);
    :meth:`inverse` maps back and returns values strictly inside the support (up to float rounding at
    |y| > 700, where they are clipped onto the bound).
    """

    def __init__(self, support, n_features: int, argument: str = "support") -> None:
        self.argument = argument
        if support is None:
            support = [(None, None)] * n_features
        try:
            pairs = [tuple(p) for p in support]
        except TypeError:
            raise InvalidInputError(f"{argument}: expected {n_features} (low, high) pairs, got {support!r}") from None
        if len(pairs) != n_features or any(len(p) != 2 for p in pairs):
            raise InvalidInputError(f"{argument}: expected {n_features} (low, high) pairs (None for an open end), got {support!r}")
        self.low, self.high = np.full(n_features, -np.inf), np.full(n_features, np.inf)
        for d, (lo, hi) in enumerate(pairs):
            for end, value, store in (("low", lo, self.low), ("high", hi, self.high)):
                if value is not None:
                    v = float(value)
                    if not np.isfinite(v):
                        raise InvalidInputError(f"{argument}: the {end} end of feature {d} must be finite or None, got {value!r}")
                    store[d] = v
            if not self.low[d] < self.high[d]:
                raise InvalidInputError(f"{argument}: feature {d} needs low < high, got ({lo!r}, {hi!r})")

    @property
    def identity(self) -> bool:
        return bool(np.isinf(self.low).all() and np.isinf(self.high).all())

    def pairs(self) -> list[list[float | None]]:
        """JSON-able [[low, high], …] (None for an open end)."""
        return [[None if np.isinf(lo) else float(lo), None if np.isinf(hi) else float(hi)] for lo, hi in zip(self.low, self.high)]

    def forward(self, z: np.ndarray, argument: str = "truth") -> np.ndarray:
        """(N, D) → (N, D): y in the unbounded space; raises OutOfBoundsError for values outside (low, high)."""
        z = np.asarray(z, dtype=np.float64)
        if self.identity:
            return z
        outside = (z <= self.low) | (z >= self.high)
        if outside.any():
            d = int(np.flatnonzero(outside.any(0))[0])
            raise OutOfBoundsError(
                f"{argument}: {int(outside.sum())} value(s) lie outside the open support {self.pairs()} "
                f"(feature {d}: min {z[:, d].min():g}, max {z[:, d].max():g}); widen {self.argument}"
            )
        y = z.copy()
        both = np.isfinite(self.low) & np.isfinite(self.high)
        lo_only = np.isfinite(self.low) & ~np.isfinite(self.high)
        hi_only = ~np.isfinite(self.low) & np.isfinite(self.high)
        y[:, both] = np.log(z[:, both] - self.low[both]) - np.log(self.high[both] - z[:, both])
        y[:, lo_only] = np.log(z[:, lo_only] - self.low[lo_only])
        y[:, hi_only] = -np.log(self.high[hi_only] - z[:, hi_only])
        return y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """(..., D) unbounded values → physical units inside the support."""
        y = np.asarray(y, dtype=np.float64)
        if self.identity:
            return y
        z = y.copy()
        both = np.isfinite(self.low) & np.isfinite(self.high)
        lo_only = np.isfinite(self.low) & ~np.isfinite(self.high)
        hi_only = ~np.isfinite(self.low) & np.isfinite(self.high)
        yc = np.clip(y, -_MAX_LOG, _MAX_LOG)
        z[..., both] = self.low[both] + (self.high[both] - self.low[both]) * expit(yc[..., both])
        z[..., lo_only] = self.low[lo_only] + np.exp(yc[..., lo_only])
        z[..., hi_only] = self.high[hi_only] - np.exp(-yc[..., hi_only])
        return z


class GenerativeUnfolding:
    """A conditional flow p(z | x) of the D_z truth features given the D_x reco features.

    Args:
        n_truth: D_z; n_reco: D_x.
        kind, transforms, hidden, bins, seed: the :class:`~sbihep.flows.conditional.ConditionalFlow`.
        support: D_z pairs (low, high) of the truth features (None for an open end; module docstring):
            the flow learns the mapped variable and its samples lie inside the support.
        reco_support: D_x pairs for the reco features (the flow's condition), same convention.
    """

    def __init__(
        self, n_truth: int, n_reco: int, *, kind: str = "nsf", transforms: int = 3, hidden: Sequence[int] = (64, 64), bins: int = 8,
        seed: int = 0, support=None, reco_support=None,
    ) -> None:
        self.flow = ConditionalFlow(n_truth, n_reco, kind=kind, transforms=transforms, hidden=hidden, bins=bins, seed=seed)
        self.support = SupportTransform(support, self.flow.n_features, "support")
        self.reco_support = SupportTransform(reco_support, self.flow.n_context, "reco_support")

    @property
    def n_truth(self) -> int:
        return self.flow.n_features

    @property
    def n_reco(self) -> int:
        return self.flow.n_context

    def fit(self, truth, reco, weights=None, *, passed=None, has_truth=None, **train_options) -> TrainingHistory:
        """Train on the simulated events that have both records.

        Args:
            truth: (N, D_z); reco: (N, D_x); weights: (N,) (e.g. generator weights × prior weights).
            passed, has_truth: (N,) bool masks (default all true); rows outside both are ignored.
            train_options: passed to :meth:`ConditionalFlow.fit` (epochs, batch_size, quiet, device, …).
        """
        n = len(np.asarray(getattr(truth, "values", truth)))
        use = as_mask(passed, n, "passed") & as_mask(has_truth, n, "has_truth")
        if len(np.asarray(getattr(reco, "values", reco))) != n:
            raise ShapeError(f"truth and reco must describe the same simulated events: {n} vs {len(reco)} rows")
        truth = as_events(truth, "truth", self.n_truth, rows=use)
        reco = as_events(reco, "reco", self.n_reco, rows=use)
        if not use.any():
            raise InvalidInputError("passed/has_truth: no simulated event with both a truth and a reco record")
        w = as_weights(weights, n, "weights")
        z = self.support.forward(truth[use], "truth")
        x = self.reco_support.forward(reco[use], "reco")
        return self.flow.fit(z, x, weights=w[use], **train_options)

    def unfold(self, data, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """(n_samples, M, D_z) truth-level samples (physical units, inside ``support``) for the (M, D_x) data events."""
        data = self.reco_support.forward(as_events(data, "data", self.n_reco), "data")
        return self.support.inverse(self.flow.sample(data, n_samples=n_samples, seed=seed))

    def save(self, path) -> Path:
        """The flow's directory (config.json + state_dict.pt); the config also records the supports."""
        config = {**self.flow.config(), "unfolding": {"support": self.support.pairs(), "reco_support": self.reco_support.pairs()}}
        return save_estimator(path, config, self.flow.network.state_dict())

    @classmethod
    def load(cls, path) -> "GenerativeUnfolding":
        obj = cls.__new__(cls)
        obj.flow = ConditionalFlow.load(path)
        config, _ = read_estimator(path, ConditionalFlow.kind)
        extra = config.get("unfolding", {})
        obj.support = SupportTransform(extra.get("support"), obj.flow.n_features, "support")
        obj.reco_support = SupportTransform(extra.get("reco_support"), obj.flow.n_context, "reco_support")
        return obj


@dataclass
class GenerativeUnfoldingResult:
    """What :func:`iterative_generative_unfolding` returns.

    Attributes:
        samples: (n_iterations, n_samples, M', D_z) unfolded samples of every iteration; M' = M data
            events followed by the background events (if any).
        sample_weights: (n_iterations, n_samples, M') their weights (data weight / n_samples, negative for
            background, divided by ε(z) when the efficiency is corrected); Σ estimates the number of events.
        prior_weights: (n_iterations, N) the prior weights ν_n(z) the flow of iteration n was trained with
            (row 0: ones).
        unfolder: the last :class:`GenerativeUnfolding`.
        histories: per iteration, {"flow": …, "prior": …, "efficiency": …} TrainingHistory objects.
        efficiency: the :class:`~sbihep.flows.omnifold.DensityRatio` whose ``ratio(z)`` is ε(z), or None.
        truth_weights: (n_iterations, N) with ``reweight_truth=True``, else None: the unfolded spectrum of
            every iteration as weights on ALL simulated truth events (selected or not), w₀(z)·ν(z)·c with
            ν = p_unf/p_sim learned between that iteration's samples and the simulated truth, and c such
            that the weights sum to the unfolded number of events (module docstring, "Efficiency").
    """

    samples: np.ndarray
    sample_weights: np.ndarray
    prior_weights: np.ndarray
    unfolder: GenerativeUnfolding
    histories: list[dict[str, TrainingHistory]] = field(default_factory=list)
    efficiency: DensityRatio | None = None
    truth_weights: np.ndarray | None = None

    @property
    def n_iterations(self) -> int:
        return self.samples.shape[0]

    def flat(self, iteration: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(n_samples·M', D_z) samples and (n_samples·M',) weights of one iteration."""
        s, w = self.samples[iteration], self.sample_weights[iteration]
        return s.reshape(-1, s.shape[-1]), w.reshape(-1)

    def spectrum(self, bins, feature: int = 0, iteration: int = -1):
        """Binned unfolded spectrum of truth feature ``feature`` (see :func:`~sbihep.flows.omnifold.binned_spectrum`)."""
        s, w = self.flat(iteration)
        if not 0 <= feature < s.shape[1]:
            raise InvalidInputError(f"feature must lie in [0, {s.shape[1]}), got {feature!r}")
        return binned_spectrum(s[:, feature], w, bins)

    def reweighted_spectrum(self, truth_values, bins, iteration: int = -1):
        """Binned spectrum of the simulated truth ``truth_values`` (N,) weighted by ``truth_weights[iteration]``."""
        if self.truth_weights is None:
            raise InvalidInputError("truth_weights: not computed; run iterative_generative_unfolding(..., reweight_truth=True)")
        return binned_spectrum(truth_values, self.truth_weights[iteration], bins)


def iterative_generative_unfolding(
    truth,
    reco,
    data,
    *,
    iterations: int = 3,
    passed=None,
    sim_weights=None,
    data_weights=None,
    background=None,
    background_weights=None,
    correct_efficiency: bool = False,
    reweight_truth: bool = False,
    n_samples: int = 1,
    support=None,
    reco_support=None,
    flow: Mapping | None = None,
    flow_training: Mapping | None = None,
    classifier: Mapping | None = None,
    classifier_training: Mapping | None = None,
    max_ratio: float | None = 100.0,
    seed: int = 0,
    quiet: bool = False,
) -> GenerativeUnfoldingResult:
    """Generative unfolding with iterative prior removal (see the module docstring).

    Args:
        truth: (N, D_z) simulated truth; reco: (N, D_x) simulated reco (rows with ``passed`` false ignored).
        data: (M, D_x) data; data_weights: (M,) (default 1).
        iterations: number of flow trainings (1 = the prior-dependent single pass).
        passed: (N,) bool (default all true).  sim_weights: (N,) generator weights (default 1).
        background: (B, D_x) background sample unfolded with negative weights ``background_weights``.
        correct_efficiency: weight the unfolded samples by 1/ε(z) (needs events with ``passed`` false).
        reweight_truth: also return ``truth_weights``: every iteration's unfolded distribution carried
            over to all simulated truth events by the prior-update classifier (one more classifier
            after the last iteration).  Without ``correct_efficiency`` this corrects the efficiency
            without dividing by ε(z): ν = p_unf,sel/p_sim,sel = p_unf/p_sim wherever ε(z) > 0, so a
            sharp turn-on of ε(z) (ε → 0 at a selection threshold) does not blow up sample weights;
            where ε(z) = 0 the ratio is the classifier's extrapolation, as in OmniFold.
        n_samples: flow samples per data event.
        support, reco_support: (low, high) per truth / reco feature, None for an open end (see
            :class:`GenerativeUnfolding`; e.g. ``support=[(0, None)]`` for a transverse mass).  The truth
            of every selected simulated event must lie inside ``support`` (the flow only sees those).
        flow: options of :class:`GenerativeUnfolding` (kind, transforms, hidden, bins).
        flow_training: options of :meth:`ConditionalFlow.fit` (epochs, batch_size, …; quiet by default).
        classifier: {"hidden": …, "activation": …} of the prior and efficiency classifiers.
        classifier_training: options of their training (see :data:`~sbihep.flows.omnifold.CLASSIFIER_TRAINING`).
        max_ratio: clipping of the learned prior ratio.
        seed: seeds of the flows, classifiers and samples are derived from it.
        quiet: no progress bar.
    """
    if not (isinstance(iterations, (int, np.integer)) and iterations >= 1):
        raise InvalidInputError(f"iterations must be a positive integer, got {iterations!r}")
    truth = as_events(truth, "truth")
    n = len(truth)
    passed = as_mask(passed, n, "passed")
    if len(np.asarray(getattr(reco, "values", reco))) != n:
        raise ShapeError(f"truth and reco must describe the same simulated events: {n} vs {len(reco)} rows")
    reco = as_events(reco, "reco", rows=passed)
    data = as_events(data, "data", reco.shape[1])
    w0 = as_weights(sim_weights, n, "sim_weights", positive=True)
    if not w0[passed].sum() > 0:
        raise InvalidInputError("passed/sim_weights: no simulated event with positive weight passes the selection")
    target, wd = data_minus_background(data, data_weights, background, background_weights)
    SupportTransform(support, truth.shape[1], "support").forward(truth[passed], "truth")  # fail early on a bad support
    SupportTransform(reco_support, reco.shape[1], "reco_support").forward(reco[passed], "reco")
    flow = dict(flow or {})
    flow_training = {"quiet": True, **dict(flow_training or {})}
    classifier = {"hidden": (64, 64), "activation": "silu", **dict(classifier or {})}
    classifier_training = dict(classifier_training or {})

    histories: list[dict] = []
    efficiency_ratio = None
    eff_history = None
    if correct_efficiency:
        if passed.all():
            raise InvalidInputError("correct_efficiency: every simulated event passes; the efficiency is 1 (pass passed= with failures)")
        efficiency_ratio = fit_ratio(  # ε(z) = ρ_passed(z)/ρ_all(z): the same events, weights w₀·passed vs w₀
            truth, None, w0 * passed, w0, seed=seed + 11, train_options=classifier_training, **classifier
        )
        eff_history = efficiency_ratio.history

    nu = np.ones(n)
    samples, sample_weights, priors, truth_weights = [], [], [], []
    unfolder = None
    bar = _progress(iterations, quiet, "generative unfolding")
    try:
        for it in range(iterations):
            hist: dict[str, TrainingHistory] = {}
            priors.append(nu.copy())
            unfolder = GenerativeUnfolding(
                truth.shape[1], reco.shape[1], seed=seed + 100 * it, support=support, reco_support=reco_support, **flow
            )
            hist["flow"] = unfolder.fit(truth, reco, w0 * nu, passed=passed, **{"seed": seed + 100 * it, **flow_training})
            z = unfolder.unfold(target, n_samples=n_samples, seed=seed + 100 * it + 1)
            w = np.broadcast_to(wd / n_samples, z.shape[:2]).copy()
            if efficiency_ratio is not None:
                flat = z.reshape(-1, z.shape[-1])
                eps = efficiency_ratio.ratio(flat, max_ratio=max_ratio).reshape(z.shape[:2])
                w = w / np.clip(eps, 1e-6, None)
                hist["efficiency"] = eff_history
            samples.append(z)
            sample_weights.append(w)
            if it + 1 < iterations or reweight_truth:
                # the new prior makes the simulated truth look like the unfolded one: of all events when the
                # efficiency is corrected, else of the selected events (the flow only sees those)
                ref = np.ones(n, dtype=bool) if efficiency_ratio is not None else passed
                prior = fit_ratio(
                    z.reshape(-1, z.shape[-1]), truth[ref], w.reshape(-1), w0[ref], seed=seed + 100 * it + 2,
                    train_options=classifier_training, **classifier,
                )
                hist["prior"] = prior.history
                nu = prior.ratio(truth, normalized=True, max_ratio=max_ratio)
                if reweight_truth:  # scaled so that the reference events' weights sum to the unfolded count
                    truth_weights.append(w0 * nu * (w.sum() / np.sum(w0[ref] * nu[ref])))
            histories.append(hist)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return GenerativeUnfoldingResult(
        np.stack(samples), np.stack(sample_weights), np.stack(priors), unfolder, histories, efficiency_ratio,
        np.stack(truth_weights) if reweight_truth else None,
    )


def _generative_replica(args: dict, data_weights, sim_weights, seed: int) -> GenerativeUnfoldingResult:
    return iterative_generative_unfolding(**{**args, "quiet": True}, data_weights=data_weights, sim_weights=sim_weights, seed=seed)


def generative_unfolding_replicas(
    truth,
    reco,
    data,
    *,
    n_replicas: int = 10,
    bootstrap: bool | str = True,
    data_weights=None,
    sim_weights=None,
    seed: int = 0,
    n_workers: int | None = 1,
    progress: bool = True,
    **options,
) -> list[GenerativeUnfoldingResult]:
    """Repeat :func:`iterative_generative_unfolding` to estimate its uncertainty.

    As :func:`~sbihep.flows.omnifold.omnifold_replicas`: ``bootstrap=True`` (or ``"both"``) multiplies the
    data and simulation weights by independent Poisson(1) counts in every replica (statistical
    uncertainty of both samples plus the training noise of the flows and classifiers), ``"data"`` only the
    data weights, ``False`` changes only the seeds.  ``options`` go to
    :func:`iterative_generative_unfolding`.  The spread of the replicas' spectra (e.g. of
    :meth:`GenerativeUnfoldingResult.reweighted_spectrum`) is the statistical uncertainty, not that of
    the method's bias.

    Returns:
        one :class:`GenerativeUnfoldingResult` per replica.
    """
    from sbihep.parallel import map_jobs

    args = dict(truth=truth, reco=reco, data=data, **options)
    jobs = [(args, *job) for job in replica_weights(reco, data, n_replicas, bootstrap, data_weights, sim_weights, seed)]
    return map_jobs(_generative_replica, jobs, n_workers=n_workers, progress=progress, desc="generative unfolding replicas")
