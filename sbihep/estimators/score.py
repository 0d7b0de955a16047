"""Local score estimators: SALLY (Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013, 1805.00020).

SALLY regresses the joint score t(x,z|θ_ref) = ∇_θ log p(x,z|θ)|θ_ref on x with a squared error;
its minimiser is t̂(x) = E[t(x,z|θ_ref) | x] = t(x|θ_ref), the score of the observed data, which is
the sufficient statistic of the local (linearised) model around θ_ref.  Its Fisher information is
:func:`sbihep.estimators.information.sally_information`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP, PersistentEstimator, Standardize, as_features, seeded_init
from sbihep.estimators.train import TrainingHistory, train
from sbihep.params import ParameterSpace

__all__ = ["ScoreEstimator", "sally_loss"]

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
    """Mean over samples of |t̂(x) − t(x,z|θ_ref)|², each component in units of its spread, summed."""
    return ((model.standardised(batch["x"]) - model.t_norm(batch["t_xz0"])) ** 2).sum(-1).mean()


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
        obs = [str(o) for o in data["observable"].values]
        if obs != self.observables:
            raise ShapeError(f"data: observables {obs} differ from the estimator's {self.observables}")
        params = [str(p) for p in data["parameter"].values]
        if params != list(self.space.names):
            raise ShapeError(f"data: parameters {params} differ from the estimator's {list(self.space.names)}")
        ref = np.array([self.theta_ref[n] for n in self.space.names])
        if not np.allclose(data["theta0"].values, ref):
            raise InvalidInputError(f"data: the sample was not drawn at the estimator's theta_ref {self.theta_ref}")
        tensors = {k: torch.as_tensor(np.asarray(data[k].values, dtype=np.float64)) for k in ("x", "t_xz0")}
        for k, t in tensors.items():
            if not torch.isfinite(t).all():
                raise InvalidInputError(f"data[{k!r}] contains NaN or infinite values")
        self.network.x_norm.fit(tensors["x"])
        self.network.t_norm.fit(tensors["t_xz0"])
        self.training = {"n_samples": int(len(tensors["x"]))}
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
