"""Local score estimators: SALLY and SALLINO (Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013, 1805.00020).

SALLY regresses the joint score t(x,z|θ_ref) = ∇_θ log p(x,z|θ)|θ_ref on x with a squared error;
its minimiser is t̂(x) = E[t(x,z|θ_ref) | x] = t(x|θ_ref), the score of the observed data, which is
the sufficient statistic of the local (linearised) model around θ_ref.  Its Fisher information is
:func:`sbihep.estimators.information.sally_information`.

SALLINO turns the score into a likelihood ratio along any direction: with the scalar
h(x|θ₀, θ₁) = t̂(x)·(θ₀ − θ₁), the one-dimensional densities of h at θ₀ and at θ₁ are histogrammed
(from samples or reweighted events at each θ) and r̂(x|θ₀, θ₁) = p̂(h(x)|θ₀)/p̂(h(x)|θ₁).  Near θ_ref,
h is the locally sufficient statistic for the direction θ₀ − θ₁, so nothing is lost; far from it,
SALLINO is still a valid (calibrated) but possibly less powerful ratio.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP, PersistentEstimator, Standardize, as_features, check_sample_labels, sample_fixed_parameters, seeded_init
from sbihep.estimators.train import TrainingHistory, train
from sbihep.params import ParameterSpace

__all__ = ["Sallino", "ScoreEstimator", "sally_loss"]

_EVAL_BATCH = 65536


class ScoreNetwork(nn.Module):
    """t̂(x): (B, n_features) → (B, n_parameters), an MLP on standardised x with standardised outputs.

    The output scale matters: score components of different operators differ by orders of magnitude
    (energy-growing operators have heavy tails), so each is learned in units of its own spread.
    """

    def __init__(self, n_features: int, n_parameters: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.x_norm = Standardize(n_features)
        self.t_norm = Standardize(n_parameters)
        self.net = MLP(n_features, n_parameters, hidden, activation)

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.x_norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x) * self.t_norm.std + self.t_norm.mean


def sally_loss(model: ScoreNetwork, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean over samples of |t̂(x) − t(x,z|θ_ref)|², each component in units of its spread, summed.

    With a ``"weight"`` entry (B,) in the batch (event weights at θ_ref, normalised to mean 1) the mean
    is weighted: the loss is then an unbiased estimate of E_θref[|t̂ − t|²] from weighted events.
    """
    per_sample = ((model.standardised(batch["x"]) - model.t_norm(batch["t_xz0"])) ** 2).sum(-1)
    if "weight" in batch:
        return (batch["weight"] * per_sample).mean()
    return per_sample.mean()


class ScoreEstimator(PersistentEstimator):
    """SALLY: the score t̂(x) at one reference point θ_ref.

    Args:
        observables: names of the features x, in column order.
        space: the parameters θ (their order is the order of the score components).
        theta_ref: the reference point by name (default: the SM point of ``space``).
        hidden, activation, seed: network shape and initial-weight seed.
    """

    kind = "score"

    def __init__(
        self,
        observables: Sequence[str],
        space: ParameterSpace,
        *,
        theta_ref: Mapping[str, float] | None = None,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        seed: int = 0,
    ) -> None:
        self._init_common(observables, space, hidden, activation, seed)
        self.theta_ref = {k: float(v) for k, v in space.validate(theta_ref).items()}
        self.training: dict = {}
        self.network = seeded_init(lambda: ScoreNetwork(len(self.observables), len(space), self.hidden, activation), self.seed)

    def fit(self, data: xr.Dataset, **train_options) -> TrainingHistory:
        """Train on a score training sample (:func:`sbihep.events.augment.score_training_sample`) drawn at θ_ref.

        ``train_options`` go to :func:`sbihep.estimators.train.train` (epochs, batch_size, seed,
        device="auto", quiet, checkpoint, …).
        """
        for k in ("x", "t_xz0", "theta0"):
            if k not in data:
                raise InvalidInputError(f"data: missing variable {k!r} (expected a score training sample)")
        check_sample_labels(data, self.observables, self.space)
        ref = np.array([self.theta_ref[n] for n in self.space.names])
        if not np.allclose(data["theta0"].values, ref):
            raise InvalidInputError(f"data: the sample was not drawn at the estimator's theta_ref {self.theta_ref}")
        tensors = {k: torch.as_tensor(np.asarray(data[k].values, dtype=np.float64)) for k in ("x", "t_xz0")}
        return self._fit_tensors(tensors, {"sample": "resampled", "fixed_parameters": sample_fixed_parameters(data)}, train_options)

    def fit_events(self, events, *, fixed: Mapping[str, float] | None = None, **train_options) -> TrainingHistory:
        """Train on every event of a weighted :class:`~sbihep.events.eventset.EventSet`, without resampling.

        The features are the EventSet's observables named ``self.observables``; the targets are the
        joint scores t(x,z|θ_ref) (N, n_parameters) and each event's squared error is weighted by
        w_i(θ_ref)/mean(w).  Unlike :meth:`fit` on a resampled training sample (draws with
        replacement: ≈ 37% of the events of a sample as large as the EventSet are never used, others
        appear several times and leak between the training and validation splits), every event is
        used exactly once.  This matters for EFT scores, whose information sits in rare tail events
        (in WH → ℓνbb̄ the 1% largest |t| carry 50–75% of the Fisher information).
        Operators of ``events`` that are not parameters of this estimator are held at 0 or at their
        ``fixed`` values (TeV⁻²; :meth:`~sbihep.events.eventset.EventSet.restrict`), recorded in
        :attr:`fixed_parameters`.  ``train_options`` as in :meth:`fit`.
        """
        from sbihep.events.augment import on_slice
        from sbihep.events.eventset import EventSet

        if not isinstance(events, EventSet):
            raise InvalidInputError(f"events must be an EventSet, got {type(events).__name__}")
        missing_ops = [p for p in self.space.names if p not in events.operators]
        if missing_ops:
            raise InvalidInputError(f"events: operators {list(events.operators)} lack the estimator's parameters {missing_ops}")
        events = on_slice(events, list(self.space.names), fixed)
        have = [str(o) for o in events.observables()["observable"].values]
        missing = [o for o in self.observables if o not in have]
        if missing:
            raise InvalidInputError(f"events: observables {missing} are missing (have {have})")
        x = events.observables().sel(observable=self.observables).values
        w = events.weights(self.theta_ref).double()
        if not (torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise InvalidInputError(f"events: the weights at theta_ref {self.theta_ref} must be finite and non-negative with a positive sum")
        tensors = {
            "x": torch.as_tensor(np.asarray(x, dtype=np.float64)),
            "t_xz0": events.joint_score(self.theta_ref).double(),
            "weight": w / w.mean(),
        }
        return self._fit_tensors(tensors, {"sample": "weighted events", "fixed_parameters": events.fixed_operators}, train_options)

    def _fit_tensors(self, tensors: dict, info: dict, train_options: Mapping) -> TrainingHistory:
        """Check for NaN, fit the (weighted) standardisations, record the training summary, train."""
        for k, t in tensors.items():
            if not torch.isfinite(t).all():
                raise InvalidInputError(f"data[{k!r}] contains NaN or infinite values")
        weight = tensors.get("weight")
        _fit_weighted(self.network.x_norm, tensors["x"], weight)
        _fit_weighted(self.network.t_norm, tensors["t_xz0"], weight)
        self.training = {"n_samples": int(len(tensors["x"])), **info}
        self.training.update({k: v for k, v in train_options.items() if isinstance(v, (int, float, str, bool))})
        return train(self.network, sally_loss, tensors, fingerprint=self.config(), **train_options)

    def score(self, x) -> np.ndarray:
        """t̂(x|θ_ref), (N, n_parameters)."""
        xt = as_features(x, len(self.observables))
        with torch.no_grad():
            out = [self.network(xt[s : s + _EVAL_BATCH]) for s in range(0, len(xt), _EVAL_BATCH)]
        return torch.cat(out).double().numpy() if out else np.zeros((0, len(self.space)))

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "method": "sally",
            "observables": self.observables,
            "space": self.space.to_dict(),
            "theta_ref": self.theta_ref,
            "network": {"hidden": self.hidden, "activation": self.activation, "seed": self.seed},
            "preprocessing": "standardise x and the score targets (mean/std buffers in the state_dict)",
            "training": self.training,
        }

    @classmethod
    def _init_options(cls, config) -> dict:
        return {"theta_ref": config["theta_ref"]}


def _fit_weighted(norm: Standardize, values: torch.Tensor, weight: torch.Tensor | None) -> None:
    """Standardisation statistics of ``values`` (N, k), weighted by ``weight`` (N,) when given."""
    if weight is None:
        norm.fit(values)
        return
    p = (weight / weight.sum()).double()[:, None]
    values = values.double()
    mean = (p * values).sum(0)
    std = ((p * (values - mean) ** 2).sum(0)).sqrt()
    norm.mean.copy_(mean.float())
    norm.std.copy_(torch.where(std > 1e-12 * (1 + values.abs().mean(0)), std, torch.ones_like(std)).float())


#: θ (by name) → x (N, n_features), or (x, weights (N,)): samples distributed as p(x|θ).
SampleSource = Callable[[Mapping[str, float]], "np.ndarray | tuple[np.ndarray, np.ndarray]"]


class Sallino:
    """SALLINO: likelihood ratios from the 1D density of the projected SALLY score h = t̂(x)·(θ₀ − θ₁).

    Args:
        score: a trained :class:`ScoreEstimator`, or any callable x (N, n_features) → t̂ (N, n_parameters).
        space: the parameters (default: the estimator's).
        samples: θ → x (N, n_features) or (x, w), samples distributed as p(x|θ) (a simulator), or
            None with ``events`` given.
        events, features: instead of ``samples``: an :class:`~sbihep.events.eventset.EventSet` whose
            exactly reweighted events w_i(θ) give the sample at every θ (t̂ evaluated once), and the
            names of the observables the score takes (default: the estimator's).
        n_bins: histogram bins; their edges are weighted quantiles of h over the θ₀ and θ₁ samples
            together (so they adapt to every direction), and each bin gets a pseudo-count of half an
            average event so that r̂ stays finite.
    """

    def __init__(
        self,
        score: ScoreEstimator | Callable,
        *,
        space: ParameterSpace | None = None,
        samples: SampleSource | None = None,
        events=None,
        features: Sequence[str] | None = None,
        n_bins: int = 30,
    ) -> None:
        if isinstance(score, ScoreEstimator):
            self._score, space = score.score, space or score.space
            features = features or score.observables
        elif callable(score):
            self._score = score
        else:
            raise InvalidInputError(f"score must be a ScoreEstimator or a callable x → t̂(x), got {type(score).__name__}")
        if not isinstance(space, ParameterSpace):
            raise InvalidInputError("space: give the ParameterSpace when score is a plain callable")
        if (samples is None) == (events is None):
            raise InvalidInputError("give exactly one of samples (a θ → x sampler) or events (an EventSet to reweight)")
        if int(n_bins) != n_bins or n_bins < 2:
            raise InvalidInputError(f"n_bins must be an integer ≥ 2, got {n_bins!r}")
        self.space, self.n_bins, self._samples = space, int(n_bins), samples
        self._events = events
        if events is not None:
            if features is None:
                raise InvalidInputError("features: name the observables the score takes")
            unknown = sorted(set(space.names) - set(events.operators))
            if unknown:
                raise InvalidInputError(f"events: the EventSet has no operator(s) {unknown}")
            x = events.observables().sel(observable=list(features)).values
            self._event_scores = self._checked_score(x)

    def _checked_score(self, x) -> np.ndarray:
        t = np.asarray(self._score(x), dtype=np.float64)
        if t.ndim == 1 and len(self.space) == 1:
            t = t[:, None]
        if t.shape != (len(x), len(self.space)):
            raise ShapeError(f"score: expected t̂ of shape ({len(x)}, {len(self.space)}), got {t.shape}")
        return t

    def _projected_sample(self, theta: Mapping[str, float], direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) of the sample at θ."""
        if self._events is not None:
            w = self._events.weights({k: theta[k] for k in self.space.names}).numpy()
            if (w < 0).any():
                raise InvalidInputError(f"negative event weights at θ = {dict(theta)}: cannot histogram")
            return self._event_scores @ direction, w
        out = self._samples(dict(theta))
        x, w = out if isinstance(out, tuple) else (out, None)
        x = np.asarray(x, dtype=np.float64)
        w = np.ones(len(x)) if w is None else np.asarray(w, dtype=np.float64)
        if w.shape != (len(x),) or len(x) < self.n_bins:
            raise ShapeError(f"samples: need at least n_bins = {self.n_bins} samples with one weight each, got x {x.shape}, w {w.shape}")
        return self._checked_score(x) @ direction, w

    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """log r̂(x|θ₀, θ₁), (N,).  x (N, n_features); θ₀, θ₁ name → value (θ₁ default SM)."""
        th0 = self.space.validate(theta0)
        th1 = self.space.validate(theta1)
        direction = np.array([th0[n] - th1[n] for n in self.space.names])
        t = self._checked_score(as_features(x, _feature_width(x)).double().numpy())
        if not np.any(direction):
            return np.zeros(len(t))
        h0, w0 = self._projected_sample(th0, direction)
        h1, w1 = self._projected_sample(th1, direction)
        p0, p1 = w0 / w0.sum(), w1 / w1.sum()
        pooled_h, pooled_w = np.concatenate([h0, h1]), np.concatenate([p0, p1])
        order = np.argsort(pooled_h)
        cdf = np.cumsum(pooled_w[order]) / pooled_w.sum()
        inner = np.interp(np.linspace(0, 1, self.n_bins + 1)[1:-1], cdf, pooled_h[order])
        edges = np.unique(inner)
        hist = []
        for h, p in ((h0, p0), (h1, p1)):
            counts = np.bincount(np.searchsorted(edges, h), weights=p, minlength=len(edges) + 1)
            pseudo = 0.5 / len(h)  # half an average event per bin
            hist.append((counts + pseudo) / (1.0 + pseudo * len(counts)))
        bins = np.searchsorted(edges, t @ direction)
        return np.log(hist[0][bins]) - np.log(hist[1][bins])

    def log_ratio_grid(self, x, thetas, theta1=None) -> xr.DataArray:
        """log r̂(x_i|θ_k, θ₁): thetas (K, n) → DataArray (theta, event) with one coordinate per parameter."""
        grid = np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.shape[1] != len(self.space):
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}), got {grid.shape}")
        values = np.stack([self.log_ratio(x, self.space.from_vector(row), theta1) for row in grid])
        coords = {name: ("theta", grid[:, j]) for j, name in enumerate(self.space.names)}
        return xr.DataArray(values, dims=("theta", "event"), coords=coords, name="log_r_hat")


def _feature_width(x) -> int:
    """Number of columns of a feature array (1 for a 1D array)."""
    shape = np.shape(getattr(x, "values", x))
    return 1 if len(shape) == 1 else int(shape[-1])
