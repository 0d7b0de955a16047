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
Background: a background sample (normalised to the data) is unfolded with the same flow and its
samples enter with negative weights.  Fakes are not modelled: subtract them as background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError, ShapeError
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
)

__all__ = ["GenerativeUnfolding", "GenerativeUnfoldingResult", "iterative_generative_unfolding"]


class GenerativeUnfolding:
    """A conditional flow p(z | x) of the D_z truth features given the D_x reco features.

    Args:
        n_truth: D_z; n_reco: D_x.
        kind, transforms, hidden, bins, seed: the :class:`~sbihep.flows.conditional.ConditionalFlow`.
    """

    def __init__(
        self, n_truth: int, n_reco: int, *, kind: str = "nsf", transforms: int = 3, hidden: Sequence[int] = (64, 64), bins: int = 8, seed: int = 0
    ) -> None:
        self.flow = ConditionalFlow(n_truth, n_reco, kind=kind, transforms=transforms, hidden=hidden, bins=bins, seed=seed)

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
        return self.flow.fit(truth[use], reco[use], weights=w[use], **train_options)

    def unfold(self, data, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """(n_samples, M, D_z) truth-level samples for the (M, D_x) data events."""
        data = as_events(data, "data", self.n_reco)
        return self.flow.sample(data, n_samples=n_samples, seed=seed)

    def save(self, path):
        """The flow's directory (config.json + state_dict.pt)."""
        return self.flow.save(path)

    @classmethod
    def load(cls, path) -> "GenerativeUnfolding":
        obj = cls.__new__(cls)
        obj.flow = ConditionalFlow.load(path)
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
    """

    samples: np.ndarray
    sample_weights: np.ndarray
    prior_weights: np.ndarray
    unfolder: GenerativeUnfolding
    histories: list[dict[str, TrainingHistory]] = field(default_factory=list)
    efficiency: DensityRatio | None = None

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
    n_samples: int = 1,
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
        n_samples: flow samples per data event.
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
    samples, sample_weights, priors = [], [], []
    unfolder = None
    bar = _progress(iterations, quiet, "generative unfolding")
    try:
        for it in range(iterations):
            hist: dict[str, TrainingHistory] = {}
            priors.append(nu.copy())
            unfolder = GenerativeUnfolding(truth.shape[1], reco.shape[1], seed=seed + 100 * it, **flow)
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
            if it + 1 < iterations:
                # the new prior makes the simulated truth look like the unfolded one: of all events when the
                # efficiency is corrected, else of the selected events (the flow only sees those)
                ref = np.ones(n, dtype=bool) if efficiency_ratio is not None else passed
                prior = fit_ratio(
                    z.reshape(-1, z.shape[-1]), truth[ref], w.reshape(-1), w0[ref], seed=seed + 100 * it + 2,
                    train_options=classifier_training, **classifier,
                )
                hist["prior"] = prior.history
                nu = prior.ratio(truth, normalized=True, max_ratio=max_ratio)
            histories.append(hist)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return GenerativeUnfoldingResult(np.stack(samples), np.stack(sample_weights), np.stack(priors), unfolder, histories, efficiency_ratio)
