"""DCTR: deep neural network using classification for tuning and reweighting (Andreassen, Nachman, arXiv:1907.08209).

A classifier f(x, θ) is trained to tell events of a θ-dependent ("varied") sample, label 1, from events
of one nominal sample, label 0.  The nominal events are paired with θ values drawn from the varied
sample's θ distribution, so that at every θ the two classes are balanced and the optimal classifier is

    f*(x, θ) = p(x|θ) / (p(x|θ) + p_nominal(x))    ⇒    w(x|θ) = f/(1 − f) = p(x|θ)/p_nominal(x),

the per-event weight that morphs the nominal sample into the sample at θ.  The network outputs the
logit, so log w(x|θ) = logit f(x, θ) exactly.  Event weights of either sample are supported (each class
is normalised to the same total weight).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP, PersistentEstimator, Standardize, as_features, as_theta, seeded_init
from sbihep.estimators.train import TrainingHistory, train
from sbihep.params import ParameterSpace

__all__ = ["DCTRReweighter", "dctr_loss"]

_EVAL_BATCH = 65536


class ParametrizedClassifier(nn.Module):
    """logit f(x, θ): x (B, n_features), θ (B, n_parameters) → (B,), an MLP on standardised (x, θ)."""

    def __init__(self, n_features: int, n_parameters: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.x_norm = Standardize(n_features)
        self.theta_norm = Standardize(n_parameters)
        self.net = MLP(n_features + n_parameters, 1, hidden, activation)

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.x_norm(x), self.theta_norm(theta)], dim=-1)).squeeze(-1)


def dctr_loss(model: ParametrizedClassifier, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Weighted binary cross-entropy of logit f(x, θ) against y (1 = varied, 0 = nominal)."""
    value = F.binary_cross_entropy_with_logits(model(batch["x"], batch["theta"]), batch["y"], weight=batch["weight"], reduction="sum")
    return value / batch["weight"].sum()


def _array(values, argument: str, ndim: int) -> np.ndarray:
    a = np.asarray(getattr(values, "values", values), dtype=np.float64)
    if a.ndim == ndim - 1 and ndim == 2:
        a = a[:, None]
    if a.ndim != ndim:
        raise ShapeError(f"{argument}: expected a {ndim}-dimensional array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{argument}: contains NaN or infinite values")
    return a


class DCTRReweighter(PersistentEstimator):
    """Parametrised reweighting w(x|θ) = p(x|θ)/p_nominal(x) learned by classification (DCTR).

    Args:
        observables: names of the features x, in column order.
        space: the parameters θ of the varied sample (their bounds are the training bounds).
        hidden, activation, seed: network shape and initial-weight seed.
    """

    kind = "dctr"

    def __init__(
        self,
        observables: Sequence[str],
        space: ParameterSpace,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "silu",
        seed: int = 0,
    ) -> None:
        self._init_common(observables, space, hidden, activation, seed)
        self.training: dict = {}
        self.network = seeded_init(lambda: ParametrizedClassifier(len(self.observables), len(space), self.hidden, activation), self.seed)

    def fit(
        self,
        nominal_x,
        varied_x,
        varied_theta,
        *,
        nominal_weights=None,
        varied_weights=None,
        **train_options,
    ) -> TrainingHistory:
        """Train the classifier.

        Args:
            nominal_x: (N₀, n_features) events of the nominal sample.
            varied_x: (N₁, n_features) events, each generated at its own θ.
            varied_theta: (N₁, n_parameters) the θ of each varied event (columns in ``space`` order).
            nominal_weights, varied_weights: optional (N₀,), (N₁,) event weights (default 1).
            train_options: passed to :func:`sbihep.estimators.train.train` (epochs, batch_size,
                learning_rate, seed — which also draws the θ assigned to nominal events —,
                device="auto", quiet, checkpoint, …).
        """
        n_feat, n_par = len(self.observables), len(self.space)
        x0 = _array(nominal_x, "nominal_x", 2)
        x1 = _array(varied_x, "varied_x", 2)
        th1 = _array(varied_theta, "varied_theta", 2)
        for name, a, width in (("nominal_x", x0, n_feat), ("varied_x", x1, n_feat), ("varied_theta", th1, n_par)):
            if a.shape[1] != width:
                raise ShapeError(f"{name}: expected {width} columns, got shape {a.shape}")
        if th1.shape[0] != x1.shape[0]:
            raise ShapeError(f"varied_theta: needs one row per varied event ({x1.shape[0]}), got {th1.shape[0]}")
        if len(x0) < 2 or len(x1) < 2:
            raise InvalidInputError(f"need at least 2 nominal and 2 varied events, got {len(x0)} and {len(x1)}")
        w0 = np.ones(len(x0)) if nominal_weights is None else _array(nominal_weights, "nominal_weights", 1)
        w1 = np.ones(len(x1)) if varied_weights is None else _array(varied_weights, "varied_weights", 1)
        if w0.shape != (len(x0),) or w1.shape != (len(x1),):
            raise ShapeError(f"nominal_weights/varied_weights: expected shapes ({len(x0)},) and ({len(x1)},), got {w0.shape} and {w1.shape}")
        if (w0 < 0).any() or (w1 < 0).any() or w0.sum() <= 0 or w1.sum() <= 0:
            raise InvalidInputError("nominal_weights/varied_weights: must be non-negative with a positive sum")
        # nominal events take θ drawn (weighted) from the varied θ distribution: balanced classes at every θ
        rng = np.random.default_rng(int(train_options.get("seed", 0)))
        th0 = th1[rng.choice(len(th1), size=len(x0), p=w1 / w1.sum())]
        # both classes to the same total weight, mean weight 1
        n = len(x0) + len(x1)
        weight = np.concatenate([w0 / w0.sum(), w1 / w1.sum()]) * n / 2
        tensors = {
            "x": torch.as_tensor(np.concatenate([x0, x1])),
            "theta": torch.as_tensor(np.concatenate([th0, th1])),
            "y": torch.as_tensor(np.concatenate([np.zeros(len(x0)), np.ones(len(x1))])),
            "weight": torch.as_tensor(weight),
        }
        self.network.x_norm.fit(tensors["x"])
        self.network.theta_norm.fit(tensors["theta"])
        self.training = {"n_nominal": int(len(x0)), "n_varied": int(len(x1))}
        self.training.update({k: v for k, v in train_options.items() if isinstance(v, (int, float, str, bool))})
        return train(self.network, dctr_loss, tensors, fingerprint=self.config(), **train_options)

    def log_weights(self, x, theta) -> np.ndarray:
        """log w(x|θ) = log p(x|θ)/p_nominal(x), (N,).  x (N, n_features); θ a name→value mapping, (n,) or (N, n)."""
        xt = as_features(x, len(self.observables))
        th = as_theta(theta, self.space, len(xt))
        with torch.no_grad():
            out = [self.network(xt[s : s + _EVAL_BATCH], th[s : s + _EVAL_BATCH]) for s in range(0, len(xt), _EVAL_BATCH)]
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def weights(self, x, theta) -> np.ndarray:
        """w(x|θ) = f/(1 − f): multiply nominal events' weights by this to obtain the sample at θ, (N,)."""
        return np.exp(self.log_weights(x, theta))

    def log_weights_grid(self, x, thetas) -> xr.DataArray:
        """log w(x_i|θ_k) on a grid: thetas (K, n) → DataArray (theta, event) with one coordinate per parameter."""
        grid = np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.shape[1] != len(self.space):
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}), got {grid.shape}")
        values = np.stack([self.log_weights(x, row) for row in grid])
        coords = {name: ("theta", grid[:, j]) for j, name in enumerate(self.space.names)}
        return xr.DataArray(values, dims=("theta", "event"), coords=coords, name="log_w")

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "method": "dctr",
            "observables": self.observables,
            "space": self.space.to_dict(),
            "network": {"hidden": self.hidden, "activation": self.activation, "seed": self.seed},
            "preprocessing": "standardise x and theta (mean/std buffers in the state_dict)",
            "training": self.training,
        }

    def __repr__(self) -> str:
        return f"DCTRReweighter(observables={len(self.observables)}, parameters={list(self.space.names)}, hidden={self.hidden})"
