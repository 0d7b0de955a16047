"""Building blocks shared by the estimators: the MLP, input standardisation, input checks and file IO.

An estimator is a small torch module plus a JSON-serialisable config.  It saves as a directory with
``config.json`` (kind, sbihep version, parameter space, observables, network shape, preprocessing
summary, training options) and ``state_dict.pt`` (tensors only, loaded with ``weights_only=True``).

Integrity: ``config.json`` carries an ``integrity`` entry with the sha256 of every tensor of
``state_dict.pt`` (names, dtypes, shapes and bytes) and a sha256 of every config field (and of every
sub-field of a table such as ``network.activation``).  :func:`read_estimator` recomputes both and
raises :class:`~sbihep.errors.IntegrityError` naming the edited field or file; a directory written
by an sbihep without the entry loads with an :class:`~sbihep.errors.IntegrityWarning`.  On top
of the hashes, :meth:`PersistentEstimator.load` checks the config field by field against the weights
(tensor names and shapes implied by ``observables``, ``space`` and ``network``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sbihep._atomic import atomic_destination
from sbihep._checks import check_counts
from sbihep._version import __version__
from sbihep.errors import (
    DataFormatError,
    ExtrapolationWarning,
    IntegrityError,
    InvalidInputError,
    ShapeError,
    IntegrityWarning,
)
from sbihep.params import ParameterSpace

__all__ = [
    "ExtrapolationWarning",
    "PersistentEstimator",
    "MLP",
    "Standardize",
    "as_features",
    "as_theta",
    "check_sample_labels",
    "sample_fixed_parameters",
    "save_estimator",
    "read_estimator",
    "load_weights",
    "seeded_init",
    "tensor_sha256",
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
        extra = [p for p in params if p not in space.names]
        hint = (f"; to train on {list(space.names)} alone, draw the sample from a prior over the estimator's space "
                f"(the other operators {extra} are then held at 0, or at values given with fixed=...)") if extra and set(space.names) <= set(params) else ""
        raise ShapeError(f"data: parameters {params} differ from the estimator's {list(space.names)}{hint}")


def sample_fixed_parameters(data) -> dict[str, float]:
    """The held operators of a training sample (attrs ``fixed_parameters``, JSON {name: value}; {} if none)."""
    raw = getattr(data, "attrs", {}).get("fixed_parameters")
    if raw is None:
        return {}
    try:
        held = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return {str(k): float(v) for k, v in held.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"data: attrs['fixed_parameters'] must be a JSON object {{name: value}}, got {raw!r}") from exc


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


def tensor_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 (hex) of named tensors: every name, dtype, shape and the raw bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise DataFormatError(f"state: entry {name!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _field_digests(config: Mapping) -> dict[str, str]:
    """sha256 (16 hex) of every config field and of every sub-field of a table (``network.activation``)."""
    out = {}
    for key, value in config.items():
        if key == "integrity":
            continue
        out[key] = _digest(value)
        if isinstance(value, dict):
            out.update({f"{key}.{sub}": _digest(v) for sub, v in value.items()})
    return out


def save_estimator(path: str | os.PathLike, config: Mapping, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write ``config.json`` (with its ``integrity`` entry) + ``state_dict.pt`` into directory ``path`` atomically."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in state_dict.items()}
    full = json.loads(json.dumps({"sbihep_version": __version__, **config}))  # exactly what loads back
    full["integrity"] = {"algorithm": "sha256", "state_dict_sha256": tensor_sha256(state), "fields_sha256": _field_digests(full)}
    with atomic_destination(path) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        torch.save(state, tmp / "state_dict.pt")
    return path


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], path, fields: str = "observables, space, network") -> None:
    """``module.load_state_dict(state)`` after checking tensor names and shapes one by one.

    Raises:
        DataFormatError: naming the tensors that are missing, unexpected or of another shape, and
            the config fields (``fields``) that determine them.
    """
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"{k!r} missing from state_dict.pt" for k in want if k not in have]
    problems += [f"{k!r} in state_dict.pt is not part of the configured network" for k in have if k not in want]
    problems += [f"{k!r} has shape {have[k]} in state_dict.pt but the config implies {want[k]}" for k in want if k in have and have[k] != want[k]]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; … ({len(problems)} in all)" if len(problems) > 4 else "")
        raise DataFormatError(f"path: config.json fields ({fields}) of {str(path)!r} do not describe its weights: {shown}")
    module.load_state_dict(state)
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
        check_counts(("seed", seed, 0))
        self.seed = int(seed)

    def config(self) -> dict:
        raise NotImplementedError

    @property
    def fixed_parameters(self) -> dict[str, float]:
        """Operators of the training events that are not parameters of this estimator, with the values
        (TeV⁻²) they were held at in training — the slice of the EFT the estimator describes ({} when
        its parameters were all the events' operators, or for estimators saved before this was recorded)."""
        return {str(k): float(v) for k, v in getattr(self, "training", {}).get("fixed_parameters", {}).items()}

    def save(self, path) -> Path:
        """Directory with config.json and state_dict.pt (see :func:`save_estimator`)."""
        return save_estimator(path, self.config(), self.network.state_dict())

    @classmethod
    def _init_options(cls, config: Mapping) -> dict:
        return {}

    def _restore(self, config: Mapping) -> None:
        self.training = config.get("training", {})

    @classmethod
    def load(cls, path, *, verify: bool = True):
        """Rebuild an estimator written by :meth:`save` (the kind must match).

        Args:
            verify: check the content hashes of config.json and state_dict.pt (see the module
                docstring); False skips them (the field-by-field check against the weights stays).
        Raises:
            IntegrityError: config.json or state_dict.pt changed after saving (names the field).
            DataFormatError: missing or unusable config fields, or weights of another shape.
        """
        config, state = read_estimator(path, cls.kind, verify=verify)
        try:
            net = config["network"]
            est = cls(
                config["observables"], ParameterSpace.from_dict(config["space"]),
                hidden=net["hidden"], activation=net["activation"], seed=net["seed"], **cls._init_options(config),
            )
            est._restore(config)
        except KeyError as exc:
            raise DataFormatError(f"path: config.json of {str(path)!r} lacks the field {exc.args[0]!r}") from exc
        except (InvalidInputError, TypeError, ValueError, AttributeError) as exc:
            raise DataFormatError(f"path: config.json of {str(path)!r} is not a usable {cls.kind!r} config ({exc})") from exc
        load_weights(est.network, state, path)
        return est


def read_estimator(path: str | os.PathLike, kind: str, *, verify: bool = True) -> tuple[dict, dict]:
    """(config, state_dict) from a directory written by :func:`save_estimator`; checks the kind and,
    with ``verify``, the content hashes of the ``integrity`` entry (the entry is removed from the
    returned config).

    Raises:
        InvalidInputError: ``path`` is not an estimator directory.
        DataFormatError: unreadable, truncated or foreign files, or another kind.
        IntegrityError: a config field or the weights changed after saving.
    """
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "state_dict.pt").is_file():
        raise InvalidInputError(f"path: {str(path)!r} is not a saved estimator (needs config.json and state_dict.pt)")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"path: {str(path / 'config.json')!r} is not readable JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(config, dict):
        raise DataFormatError(f"path: {str(path / 'config.json')!r} holds a JSON {type(config).__name__}, not an object")
    if config.get("kind") != kind:
        raise DataFormatError(f"path: {str(path)!r} holds a {config.get('kind')!r} estimator, not a {kind!r} one")
    try:
        state = torch.load(path / "state_dict.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors… for broken files
        raise DataFormatError(f"path: {str(path / 'state_dict.pt')!r} is truncated or not a torch state_dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(f"path: {str(path / 'state_dict.pt')!r} does not hold a dict of tensors")
    record = config.pop("integrity", None)
    if verify:
        _verify(path, config, state, record)
    return config, state


def _verify(path: Path, config: dict, state: dict, record) -> None:
    if record is None:
        warnings.warn(f"path: {str(path)!r} carries no content hash (written by an sbihep without integrity records); "
                      "its config cannot be checked against edits", IntegrityWarning, stacklevel=4)
        return
    if not isinstance(record, dict) or not isinstance(record.get("fields_sha256"), dict) or "state_dict_sha256" not in record:
        raise IntegrityError(f"path: the integrity entry of {str(path / 'config.json')!r} is damaged")
    stored, now = record["fields_sha256"], _field_digests(config)
    changed = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
    if changed:
        leaves = [k for k in changed if not any(other.startswith(k + ".") for other in changed)]
        raise IntegrityError(
            f"path: config.json of {str(path)!r} was edited after saving: field(s) {leaves} differ from the recorded "
            "hash; a changed config no longer describes the weights (re-create and save the estimator instead)")
    if tensor_sha256(state) != record["state_dict_sha256"]:
        raise IntegrityError(f"path: {str(path / 'state_dict.pt')!r} differs from the weights recorded in config.json "
                             "(content hash mismatch: edited, replaced or corrupted)")

