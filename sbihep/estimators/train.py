"""The one trainer of sbihep: minibatch Adam with early stopping, LR schedule and resumable checkpoints.

Every estimator in :mod:`sbihep.estimators` hands its network, its loss and its training tensors to
:func:`train`.  Networks train in float32.  The run is deterministic for a given ``seed`` on CPU: the
train/validation split and the batch order come from one seeded ``torch.Generator`` whose state is
checkpointed, so a run that is interrupted and resumed ends with the same weights as one that was not.

A checkpoint records a fingerprint of the configuration (model, loss, data shapes, a sha256 of the
training tensors' contents and every training option); resuming from a checkpoint written for
another configuration or for other data of the same shape raises
:class:`~sbihep.errors.InvalidInputError` naming what differs, instead of silently mixing two runs.
A truncated or foreign checkpoint file raises :class:`~sbihep.errors.DataFormatError`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from sbihep._adam import Adam
from sbihep._atomic import atomic_destination
from sbihep.errors import DataFormatError, InvalidInputError, ShapeError

__all__ = ["TrainingHistory", "resolve_device", "train"]

#: loss(model, batch) → scalar tensor; ``batch`` maps the names of ``data`` to (B, ...) tensors.
LossFunction = Callable[[nn.Module, Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass
class TrainingHistory:
    """What a training run did.  Losses are per-sample means, one entry per epoch."""

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    samples_seen: int = 0

    @property
    def samples_per_second(self) -> float:
        """Training throughput (training samples processed per wall-clock second, optimiser steps included)."""
        return self.samples_seen / self.seconds if self.seconds > 0 else math.nan

    def to_xarray(self) -> xr.Dataset:
        """The losses and learning rate with dim ``epoch``."""
        n = len(self.train_loss)
        return xr.Dataset(
            {
                "train_loss": ("epoch", self.train_loss),
                "validation_loss": ("epoch", self.validation_loss[:n]),
                "learning_rate": ("epoch", self.learning_rate[:n]),
            },
            coords={"epoch": list(range(n))},
            attrs={"best_epoch": self.best_epoch, "stopped_early": int(self.stopped_early)},
        )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``.

    Raises:
        InvalidInputError: not a device name, or a CUDA / MPS device that this machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"device: {device!r} is not a torch device ({exc})") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device: {device!r} asks for CUDA, but torch sees no CUDA device here; use device='cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInputError(f"device: {device!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InvalidInputError(f"device: {device!r} asks for Apple MPS, which is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"device: {device!r} is not supported; use 'auto', 'cpu' or 'cuda[:N]'")
    return dev


def _check_data(data: Mapping[str, torch.Tensor]) -> int:
    if not data:
        raise InvalidInputError("data: no training tensors given")
    lengths = {name: int(t.shape[0]) for name, t in data.items()}
    if len(set(lengths.values())) != 1:
        raise ShapeError(f"data: all tensors need the same first dimension, got {lengths}")
    for name, t in data.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise InvalidInputError(f"data[{name!r}] contains NaN or infinite values")
    return next(iter(lengths.values()))


def _fingerprint(model: nn.Module, data: Mapping[str, torch.Tensor], options: Mapping, extra: Mapping | None, groups=None) -> str:
    from sbihep.estimators.base import tensor_sha256

    shapes = {name: [list(t.shape), str(t.dtype)] for name, t in sorted(data.items())}
    params = {name: list(p.shape) for name, p in model.state_dict().items()}
    contents = tensor_sha256({**dict(data), **({"__groups__": torch.as_tensor(groups)} if groups is not None else {})})
    return json.dumps({"model": params, "data": shapes, "data_sha256": contents, "options": dict(options), "extra": dict(extra or {})},
                      sort_keys=True, default=str)


def _fingerprint_difference(saved, now: str) -> str:
    """Which parts of two fingerprints differ, in words."""
    try:
        old, new = json.loads(saved), json.loads(now)
    except (TypeError, ValueError):
        return "the checkpoint's fingerprint is unreadable (written by another sbihep version?)"
    labels = {"model": "the model's tensor shapes", "data": "the data's names, shapes or dtypes",
              "data_sha256": "the training data's contents (same shapes, other values)", "extra": "the estimator's configuration"}
    parts = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "options" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            a, b = old[key], new[key]
            parts += [f"option {k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            parts.append(labels.get(key, key))
    return "; ".join(parts) or "unknown"


def _save_atomic(obj, path: Path) -> None:
    with atomic_destination(path) as tmp:
        torch.save(obj, tmp)


def _progress(total: int, quiet: bool):
    if quiet:
        return None
    from sbihep._progress import tqdm

    return tqdm(total=total, desc="training", unit="epoch", leave=False)


def _split_by_group(groups: torch.Tensor, n: int, validation_fraction: float, generator: torch.Generator):
    """Validation and training indices with whole groups on one side; about ``validation_fraction`` of the groups held out."""
    groups = torch.as_tensor(groups)
    if groups.shape != (n,) or groups.is_floating_point():
        raise InvalidInputError(f"groups: expected {n} integer labels, got shape {tuple(groups.shape)} of {groups.dtype}")
    labels, inverse = torch.unique(groups, return_inverse=True)
    if len(labels) < 2:
        raise InvalidInputError("groups: at least two groups are needed to split off a validation set")
    n_val_groups = min(len(labels) - 1, max(1, int(round(len(labels) * validation_fraction))))
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    held_out[torch.randperm(len(labels), generator=generator)[:n_val_groups]] = True
    is_val = held_out[inverse]
    index = torch.arange(n)
    return index[is_val], index[~is_val]


def train(
    model: nn.Module,
    loss: LossFunction,
    data: Mapping[str, torch.Tensor],
    *,
    epochs: int = 50,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    final_learning_rate: float = 1e-5,
    weight_decay: float = 0.0,
    validation_fraction: float = 0.25,
    early_stopping_patience: int | None = 10,
    clip_grad_norm: float | None = 10.0,
    seed: int = 0,
    device: str | torch.device = "auto",
    quiet: bool = False,
    checkpoint: str | os.PathLike | None = None,
    fingerprint: Mapping | None = None,
    callback: Callable[[int, TrainingHistory], bool] | None = None,
    groups: torch.Tensor | None = None,
) -> TrainingHistory:
    """Minimise ``loss`` over ``data`` with Adam; restore the weights of the best validation epoch.

    Args:
        model: the network (moved to ``device``, trained in float32, left on CPU afterwards).
        loss: ``loss(model, batch)`` → scalar mean loss; ``batch`` holds (B, ...) slices of ``data``.
        data: named float tensors sharing their first (sample) dimension.
        epochs: maximum number of passes over the training part.
        learning_rate, final_learning_rate: the LR decays exponentially per epoch from the first to the
            second over ``epochs``.
        validation_fraction: fraction of samples held out (0 < f < 1) for early stopping.
        early_stopping_patience: stop after this many epochs without a new best validation loss
            (None: never stop early).
        clip_grad_norm: clip the gradient norm per step (None: no clipping).
        seed: seeds the split and the batch order (the model's initial weights are the caller's).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:0"``, …
        quiet: no tqdm progress bar.
        checkpoint: file written atomically after every epoch; when it exists at the start, training
            resumes from it (its fingerprint must match this configuration).
        fingerprint: further configuration (e.g. the estimator's JSON config) that a resumed
            checkpoint must match.
        callback: ``callback(epoch, history)`` after every epoch; returning True stops the run
            (the checkpoint keeps the state, so a later call resumes).
        groups: (N,) integer labels; samples with one label fall on the same side of the validation
            split (e.g. the rows of one event paired with several θ), so validation stays independent.
    Returns:
        the :class:`TrainingHistory`.
    """
    n = _check_data(data)
    if not (isinstance(epochs, int) and epochs >= 1):
        raise InvalidInputError(f"epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 < validation_fraction < 1.0:
        raise InvalidInputError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
    if not (learning_rate > 0 and final_learning_rate > 0):
        raise InvalidInputError(f"learning rates must be positive, got {learning_rate!r} and {final_learning_rate!r}")
    n_val = max(1, int(round(n * validation_fraction)))
    if n - n_val < 1:
        raise InvalidInputError(f"data: {n} samples are too few to split off a validation fraction of {validation_fraction}")

    options = dict(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, final_learning_rate=final_learning_rate,
        weight_decay=weight_decay, validation_fraction=validation_fraction, patience=early_stopping_patience,
        clip_grad_norm=clip_grad_norm, seed=seed, grouped_split=groups is not None,
    )
    dev = resolve_device(device)
    if groups is not None:
        try:
            groups = torch.as_tensor(groups)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"groups: expected {n} integer labels ({exc})") from exc
    print_key = _fingerprint(model, data, options, fingerprint, groups)
    model.to(dev).float()
    data = {k: (v.float() if v.is_floating_point() else v) for k, v in data.items()}

    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        order = torch.randperm(n, generator=generator)
        val_idx, train_idx = order[:n_val], order[n_val:]
    else:
        val_idx, train_idx = _split_by_group(groups, n, validation_fraction, generator)
    # sbihep's Adam: the update of torch.optim.Adam without importing torch._dynamo (seconds) on first use
    optimizer = Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    gamma = (final_learning_rate / learning_rate) ** (1.0 / max(epochs - 1, 1))
    epochs_done = 0  # the exponential schedule: lr ← lr·γ after every epoch (ExponentialLR's chained form)
    history = TrainingHistory()
    best_val, best_state, start_epoch, since_best = math.inf, None, 0, 0

    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        if not path.is_file():
            raise InvalidInputError(f"checkpoint: {str(path)!r} exists but is not a file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, … for broken files
            raise DataFormatError(f"checkpoint: {str(path)!r} is truncated or not an sbihep checkpoint ({type(exc).__name__}: {exc}); "
                                  "delete it to start afresh") from exc
        if not isinstance(state, dict) or "fingerprint" not in state:
            raise DataFormatError(f"checkpoint: {str(path)!r} is not an sbihep training checkpoint (no fingerprint)")
        if state["fingerprint"] != print_key:
            raise InvalidInputError(
                f"checkpoint: {str(path)!r} was written for another configuration ({_fingerprint_difference(state['fingerprint'], print_key)}); "
                "delete it or pass another checkpoint path"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            epochs_done = int(state["scheduler"]["last_epoch"])
            generator.set_state(state["generator"])
            history = TrainingHistory(**json.loads(state["history"]))
            best_val, best_state = float(state["best_val"]), state["best_state"]
            start_epoch, since_best = int(state["epoch"]), int(state["since_best"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DataFormatError(f"checkpoint: {str(path)!r} is damaged ({type(exc).__name__}: {exc}); delete it to start afresh") from exc

    bar = _progress(epochs, quiet)
    if bar is not None:
        bar.update(start_epoch)
    t_start = time.perf_counter()
    seconds_before = history.seconds
    try:
        for epoch in range(start_epoch, epochs):
            if history.stopped_early:
                break
            model.train()
            perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
            total, count = 0.0, 0
            for start in range(0, len(perm), batch_size):
                idx = perm[start : start + batch_size]
                batch = {k: v[idx].to(dev) for k, v in data.items()}
                optimizer.zero_grad()
                value = loss(model, batch)
                if not torch.isfinite(value):
                    raise InvalidInputError(f"the training loss became {float(value)} in epoch {epoch}: lower learning_rate or check the data")
                value.backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                optimizer.step()
                total += float(value.detach()) * len(idx)
                count += len(idx)
            history.samples_seen += count
            history.train_loss.append(total / count)
            history.learning_rate.append(optimizer.lr)
            history.validation_loss.append(_evaluate(model, loss, data, val_idx, batch_size * 8, dev))
            optimizer.lr *= gamma
            epochs_done += 1
            if history.validation_loss[-1] < best_val:
                best_val, since_best, history.best_epoch = history.validation_loss[-1], 0, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if early_stopping_patience is not None and since_best >= early_stopping_patience:
                    history.stopped_early = True
            history.seconds = seconds_before + time.perf_counter() - t_start
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{history.train_loss[-1]:.4g}", val=f"{history.validation_loss[-1]:.4g}")
            if path is not None:
                _save_atomic(
                    {
                        "fingerprint": print_key,
                        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "scheduler": {"gamma": gamma, "last_epoch": epochs_done, "_last_lr": [optimizer.lr]},
                        "generator": generator.get_state(),
                        "history": json.dumps(asdict(history)),
                        "best_val": best_val,
                        "best_state": best_state,
                        "epoch": epoch + 1,
                        "since_best": since_best,
                    },
                    path,
                )
            if callback is not None and callback(epoch, history):
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu()
    return history


def _evaluate(model, loss, data, idx, batch_size, dev) -> float:
    """Mean validation loss.  Gradients stay enabled: score losses differentiate the output in θ."""
    model.eval()
    total = 0.0
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        batch = {k: v[part].to(dev) for k, v in data.items()}
        total += float(loss(model, batch).detach()) * len(part)
    return total / len(idx)

