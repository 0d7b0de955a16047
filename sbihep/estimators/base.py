"""Building blocks shared by the estimators: the MLP, input standardisation, input checks and file IO.

An estimator is a small torch module plus a JSON-serialisable config.  It saves as a directory with
``config.json`` (kind, sbihep version, parameter space, observables, network shape, preprocessing
summary, training options) and ``state_dict.pt`` (tensors only, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, ExtrapolationWarning, InvalidInputError, ShapeError
from sbihep.params import ParameterSpace

__all__ = [
    "ExtrapolationWarning",
    "PersistentEstimator",
    "MLP",
    "Standardize",
    "as_features",
    "as_theta",
    "check_sample_labels",
    "save_estimator",
    "read_estimator",
    "seeded_init",
]

_ACTIVATIONS = {"tanh": nn.Tanh, "silu": nn.SiLU, "relu": nn.ReLU, "softplus": nn.Softplus}


class Standardize(nn.Module):
    """y = (x − mean)/std with the statistics stored as buffers (so they save with the weights).

    Columns with zero spread (e.g. a beam's transverse momentum) keep std = 1.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    def fit(self, values: torch.Tensor) -> "Standardize":
        values = values.to(torch.float64)
        std = values.std(0)
        self.mean.copy_(values.mean(0).float())
        self.std.copy_(torch.where(std > 1e-12 * (1 + values.abs().mean(0)), std, torch.ones_like(std)).float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Sequential):
    """Fully connected network (n_in) → hidden… → (n_out), float32."""

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> None:
        if activation not in _ACTIVATIONS:
            raise InvalidInputError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise InvalidInputError(f"hidden must be a non-empty list of positive layer widths, got {hidden!r}")
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, int(h)), _ACTIVATIONS[activation]()]
            width = int(h)
        layers.append(nn.Linear(width, n_out))
        super().__init__(*layers)


def seeded_init(module_factory, seed: int):
    """Build a module with weights drawn from ``seed`` without touching torch's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_factory()


def as_features(x, n_features: int, argument: str = "x") -> torch.Tensor:
    """(N, n_features) float32 tensor from an array / tensor / xarray; clear errors for wrong width or NaN."""
    values = x if isinstance(x, torch.Tensor) else getattr(x, "values", x)  # Tensor.values is a method
    t = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).to(torch.float32)
    if t.ndim == 1 and n_features == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[1] != n_features:
        raise ShapeError(f"{argument}: expected shape (N, {n_features}) — the estimator was trained on {n_features} features — got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(1).sum())
        raise InvalidInputError(f"{argument}: {bad} rows contain NaN or infinite values")
    return t


def check_sample_labels(data, observables, space: ParameterSpace) -> None:
    """A training/calibration sample's ``observable`` and ``parameter`` labels must be the estimator's, in order.

    Raises:
        ShapeError: naming the labels that differ.
    """
    obs = [str(o) for o in data["observable"].values]
    if obs != list(observables):
        raise ShapeError(f"data: observables {obs} differ from the estimator's {list(observables)}")
    params = [str(p) for p in data["parameter"].values]
    if params != list(space.names):
        raise ShapeError(f"data: parameters {params} differ from the estimator's {list(space.names)}")


def as_theta(theta, space: ParameterSpace, n_rows: int, argument: str = "theta") -> torch.Tensor:
    """(n_rows, n_parameters) float32 θ from a name→value mapping, a (n,) vector or an (N, n) array.

    Warns with :class:`ExtrapolationWarning` when θ leaves the training bounds.
    """
    n = len(space)
    if isinstance(theta, Mapping):
        unknown = sorted(set(theta) - set(space.names))
        if unknown:
            raise InvalidInputError(f"{argument}: unknown parameter(s) {unknown}; the estimator knows {list(space.names)}")
        full = {**space.sm_point(), **{k: float(v) for k, v in theta.items()}}
        theta = np.array([full[name] for name in space.names])
    values = getattr(theta, "values", theta)
    t = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor) else values).to(torch.float64)
    if t.ndim == 1:
        t = t[None].expand(n_rows, -1)
    if t.ndim != 2 or t.shape[1] != n or t.shape[0] not in (n_rows, 1):
        raise ShapeError(f"{argument}: expected shape ({n},) or ({n_rows}, {n}) for parameters {list(space.names)}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InvalidInputError(f"{argument}: contains NaN or infinite values")
    lo = torch.tensor([p.bounds[0] for p in space], dtype=torch.float64)
    hi = torch.tensor([p.bounds[1] for p in space], dtype=torch.float64)
    outside = ((t < lo) | (t > hi)).any(0)
    if outside.any():
        names = [space.names[i] for i in np.flatnonzero(outside.numpy())]
        warnings.warn(f"{argument}: values of {names} lie outside the training bounds; the estimator extrapolates", ExtrapolationWarning, stacklevel=3)
    return t.expand(n_rows, -1).to(torch.float32)


def save_estimator(path: str | os.PathLike, config: Mapping, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write ``config.json`` + ``state_dict.pt`` into directory ``path`` atomically."""
    path = Path(path)
    with atomic_destination(path) as tmp:
        tmp.mkdir(parents=True)
        full = {"sbihep_version": __version__, **config}
        (tmp / "config.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "state_dict.pt")
    return path


class PersistentEstimator:
    """``save``/``load`` for estimators built as ``cls(observables, space, hidden=, activation=, seed=, ...)``
    with a ``network`` module, a ``kind`` and a JSON-able :meth:`config`.

    Subclasses add constructor arguments from the config with :meth:`_init_options` and restore
    training state with :meth:`_restore`.
    """

    kind: str

    def _init_common(self, observables: Sequence[str], space: ParameterSpace, hidden: Sequence[int], activation: str, seed: int) -> None:
        """Validate and store what every estimator has: feature names, parameter space, network shape, seed."""
        if not isinstance(space, ParameterSpace) or len(space) == 0:
            raise InvalidInputError(f"space must be a non-empty ParameterSpace, got {space!r}")
        self.observables = [str(o) for o in observables]
        if not self.observables:
            raise InvalidInputError("observables: need at least one feature name")
        self.space = space
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.seed = int(seed)

    def config(self) -> dict:
        raise NotImplementedError

    def save(self, path) -> Path:
        """Directory with config.json and state_dict.pt (see :func:`save_estimator`)."""
        return save_estimator(path, self.config(), self.network.state_dict())

    @classmethod
    def _init_options(cls, config: Mapping) -> dict:
        return {}

    def _restore(self, config: Mapping) -> None:
        self.training = config.get("training", {})

    @classmethod
    def load(cls, path):
        """Rebuild an estimator written by :meth:`save` (the kind must match)."""
        config, state = read_estimator(path, cls.kind)
        net = config["network"]
        est = cls(
            config["observables"], ParameterSpace.from_dict(config["space"]),
            hidden=net["hidden"], activation=net["activation"], seed=net["seed"], **cls._init_options(config),
        )
        est._restore(config)
        est.network.load_state_dict(state)
        return est


def read_estimator(path: str | os.PathLike, kind: str) -> tuple[dict, dict]:
    """(config, state_dict) from a directory written by :func:`save_estimator`; checks the kind."""
    path = Path(path)
    if not (path / "config.json").exists() or not (path / "state_dict.pt").exists():
        raise InvalidInputError(f"path: {str(path)!r} is not a saved estimator (needs config.json and state_dict.pt)")
    try:
        config = json.loads((path / "config.json").read_text())
        state = torch.load(path / "state_dict.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataFormatError(f"path: cannot read the estimator in {str(path)!r} ({type(exc).__name__}: {exc})") from exc
    if config.get("kind") != kind:
        raise DataFormatError(f"path: {str(path)!r} holds a {config.get('kind')!r} estimator, not a {kind!r} one")
    return config, state

