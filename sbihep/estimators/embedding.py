"""Set encoders: fixed-width summaries of variable-length lists of reconstructed objects (jets, leptons).

An event with N_i objects of F features each is stored padded: ``objects`` (B, N_max, F) float32 and
``mask`` (B, N_max) bool, **True for a real object** and False for padding (:func:`pad_objects`
builds both from a list of per-event arrays).  Both encoders are

* permutation invariant — the output does not depend on the order of the objects; and
* blind to padding — padded entries are zeroed on input, excluded from the pooling and (in the
  transformer) masked out as attention keys, so neither their values nor N_max change the output.

:class:`DeepSetEmbedding` is φ per object → masked sum/mean → ρ (Zaheer et al., arXiv:1703.06114);
:class:`SetTransformerEmbedding` is a small pre-norm transformer encoder without positional
encoding followed by masked mean pooling (Lee et al., arXiv:1810.00825).  An event without any
object maps to ρ(0) (deep set) or the output layer's bias (transformer).

Each encoder carries its own object standardisation (buffers ``object_mean``/``object_std``, saved
with the state_dict); call :meth:`fit_normalisation` on training objects before training.
:func:`build_embedding` rebuilds an encoder from a JSON-able config such as
``{"type": "deepset", "n_object_features": 4, "n_out": 16}``.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP

__all__ = ["DeepSetEmbedding", "SetTransformerEmbedding", "pad_objects", "build_embedding", "EMBEDDINGS", "as_objects"]

_MASK_FILL = -1.0e9  # attention logit of a padded key (finite: an event with no objects stays NaN-free)


def pad_objects(lists: Sequence) -> tuple[Tensor, Tensor]:
    """Pad per-event object arrays to one tensor.

    Args:
        lists: B arrays (or tensors) of shape (N_i, F), N_i ≥ 0 objects of F features each
            (units as the caller's features, e.g. GeV).
    Returns:
        ``objects`` (B, N_max, F) float32 with zeros in padded slots and ``mask`` (B, N_max) bool,
        True for real objects; N_max = max(1, max_i N_i).
    Raises:
        InvalidInputError: an empty list or NaN/inf values; ShapeError: arrays that are not 2-D or
        whose feature counts differ.
    """
    if isinstance(lists, (np.ndarray, Tensor)) and getattr(lists, "ndim", 0) == 3:
        lists = list(lists)
    if not isinstance(lists, Sequence) or isinstance(lists, (str, bytes)) or len(lists) == 0:
        raise InvalidInputError(f"lists: need a non-empty sequence of (N_i, F) arrays, got {type(lists).__name__}")
    arrays = []
    n_features = None
    for i, item in enumerate(lists):
        a = np.asarray(item.detach().cpu() if isinstance(item, Tensor) else item, dtype=np.float64)
        if a.ndim == 1 and a.size == 0:
            a = a.reshape(0, n_features or 0)
        if a.ndim != 2:
            raise ShapeError(f"lists[{i}]: expected an (N_i, F) array, got shape {a.shape}")
        if n_features is None and a.shape[0] > 0:
            n_features = a.shape[1]
        if a.shape[0] > 0 and a.shape[1] != n_features:
            raise ShapeError(f"lists[{i}]: has {a.shape[1]} features per object, earlier events have {n_features}")
        if not np.isfinite(a).all():
            raise InvalidInputError(f"lists[{i}]: contains NaN or infinite values")
        arrays.append(a)
    if n_features is None:
        n_features = max(a.shape[1] for a in arrays)
    n_max = max(1, max(a.shape[0] for a in arrays))
    objects = np.zeros((len(arrays), n_max, n_features), dtype=np.float32)
    mask = np.zeros((len(arrays), n_max), dtype=bool)
    for i, a in enumerate(arrays):
        objects[i, : a.shape[0]] = a
        mask[i, : a.shape[0]] = True
    return torch.from_numpy(objects), torch.from_numpy(mask)


def as_objects(objects, mask, n_object_features: int, argument: str = "objects") -> tuple[Tensor, Tensor]:
    """Validate padded objects: (B, N_max, F) float32 and (B, N_max) bool (all True when ``mask`` is None)."""
    values = objects if isinstance(objects, Tensor) else getattr(objects, "values", objects)
    o = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float32))
    o = o.to(torch.float32)
    if o.ndim != 3 or o.shape[-1] != n_object_features:
        raise ShapeError(f"{argument}: expected shape (B, N_max, {n_object_features}), got {tuple(o.shape)}")
    if mask is None:
        m = torch.ones(o.shape[:2], dtype=torch.bool)
    else:
        mv = mask if isinstance(mask, Tensor) else getattr(mask, "values", mask)
        m = mv if isinstance(mv, Tensor) else torch.as_tensor(np.asarray(mv))
        if m.dtype != torch.bool:
            if m.is_floating_point() and not bool(((m == 0) | (m == 1)).all()):
                raise InvalidInputError(f"{argument} mask: must be boolean (True = real object), got values other than 0/1")
            m = m != 0
        if tuple(m.shape) != tuple(o.shape[:2]):
            raise ShapeError(f"{argument} mask: expected shape {tuple(o.shape[:2])} (B, N_max), got {tuple(m.shape)}")
    real = o[m]
    if not torch.isfinite(real).all():
        raise InvalidInputError(f"{argument}: real (unmasked) objects contain NaN or infinite values")
    return torch.where(m[..., None].to(o.device), torch.nan_to_num(o), torch.zeros((), dtype=o.dtype)), m


class _SetEncoder(nn.Module):
    """Shared pieces: object standardisation buffers and input masking."""

    def _init_norm(self, n_object_features: int, n_out: int) -> None:
        if int(n_object_features) < 1 or int(n_out) < 1:
            raise InvalidInputError(f"n_object_features and n_out must be positive, got {n_object_features} and {n_out}")
        self.n_object_features = int(n_object_features)
        self.n_out = int(n_out)
        self.register_buffer("object_mean", torch.zeros(self.n_object_features))
        self.register_buffer("object_std", torch.ones(self.n_object_features))

    @torch.no_grad()
    def fit_normalisation(self, objects: Tensor, mask: Tensor | None = None) -> "_SetEncoder":
        """Set the per-feature mean/std from the real objects of a training sample (B, N_max, F)."""
        o, m = as_objects(objects, mask, self.n_object_features)
        real = o[m].to(torch.float64)
        if len(real) >= 2:
            std = real.std(0)
            self.object_mean.copy_(real.mean(0).float())
            self.object_std.copy_(torch.where(std > 1e-12 * (1 + real.abs().mean(0)), std, torch.ones_like(std)).float())
        return self

    def _prepare(self, objects: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if objects.ndim != 3 or objects.shape[-1] != self.n_object_features:
            raise ShapeError(f"objects: expected shape (B, N_max, {self.n_object_features}), got {tuple(objects.shape)}")
        if mask is None:
            mask = torch.ones(objects.shape[:2], dtype=torch.bool, device=objects.device)
        elif tuple(mask.shape) != tuple(objects.shape[:2]):
            raise ShapeError(f"mask: expected shape {tuple(objects.shape[:2])}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        keep = mask.unsqueeze(-1)
        x = (objects.float() - self.object_mean) / self.object_std
        return torch.where(keep, x, torch.zeros_like(x)), mask


class DeepSetEmbedding(_SetEncoder):
    """ρ(pool_i φ(o_i)) over the real objects o_i.

    Args:
        n_object_features: F, features per object.
        n_out: width of the embedding.
        hidden: widths of the hidden layers of φ (per object) and of ρ (after pooling).
        pooling: ``"sum"`` (keeps the multiplicity information) or ``"mean"``.
        activation: of the MLPs (``"silu"``, ``"tanh"``, ``"relu"``, ``"softplus"``).
    """

    def __init__(self, n_object_features: int, n_out: int, hidden: Sequence[int] = (64, 64), pooling: str = "sum", activation: str = "silu") -> None:
        super().__init__()
        if pooling not in ("sum", "mean"):
            raise InvalidInputError(f"pooling must be 'sum' or 'mean', got {pooling!r}")
        self._init_norm(n_object_features, n_out)
        self.pooling = pooling
        hidden = [int(h) for h in hidden]
        self.phi = MLP(self.n_object_features, hidden[-1], hidden[:-1] or hidden, activation)
        self.rho = MLP(hidden[-1], self.n_out, hidden, activation)

    def forward(self, objects: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, N_max, F) objects, (B, N_max) bool mask (True = real) → (B, n_out)."""
        x, mask = self._prepare(objects, mask)
        h = self.phi(x) * mask.unsqueeze(-1).to(x.dtype)
        pooled = h.sum(1)
        if self.pooling == "mean":
            pooled = pooled / mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
        return self.rho(pooled)


class _AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention + feed-forward with residuals; padded keys get zero weight."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.SiLU(), nn.Linear(d_ff, d_model))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads)  # (B, H, N, N)
        logits = logits.masked_fill(~mask[:, None, None, :], _MASK_FILL)
        attended = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        h = h + self.out(attended)
        return h + self.ff(self.norm2(h))


class SetTransformerEmbedding(_SetEncoder):
    """Transformer encoder over the objects (no positional encoding) + masked mean pooling.

    Args:
        n_object_features: F, features per object.
        n_out: width of the embedding.
        d_model: width of the per-object representation (divisible by ``n_heads``).
        n_heads: attention heads.
        n_layers: attention blocks.
    """

    def __init__(self, n_object_features: int, n_out: int, d_model: int = 32, n_heads: int = 4, n_layers: int = 2) -> None:
        super().__init__()
        self._init_norm(n_object_features, n_out)
        if int(d_model) < 1 or int(n_heads) < 1 or int(d_model) % int(n_heads):
            raise InvalidInputError(f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})")
        if int(n_layers) < 0:
            raise InvalidInputError(f"n_layers must be ≥ 0, got {n_layers}")
        self.inp = nn.Linear(self.n_object_features, int(d_model))
        self.blocks = nn.ModuleList(_AttentionBlock(int(d_model), int(n_heads), 2 * int(d_model)) for _ in range(int(n_layers)))
        self.norm = nn.LayerNorm(int(d_model))
        self.head = nn.Linear(int(d_model), self.n_out)

    def forward(self, objects: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, N_max, F) objects, (B, N_max) bool mask (True = real) → (B, n_out)."""
        x, mask = self._prepare(objects, mask)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, mask)
        keep = mask.unsqueeze(-1).to(h.dtype)
        pooled = (self.norm(h) * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.head(pooled)


#: config "type" → encoder class.
EMBEDDINGS: dict[str, type[_SetEncoder]] = {"deepset": DeepSetEmbedding, "set_transformer": SetTransformerEmbedding}


def build_embedding(config: Mapping) -> _SetEncoder:
    """An encoder from ``{"type": "deepset" | "set_transformer", "n_object_features": F, "n_out": k, …}``
    (further keys are the constructor's keyword arguments)."""
    if not isinstance(config, Mapping) or "type" not in config:
        raise InvalidInputError(f"embedding: need a mapping with a 'type' key ({sorted(EMBEDDINGS)}), got {config!r}")
    kind = config["type"]
    if kind not in EMBEDDINGS:
        raise InvalidInputError(f"embedding type must be one of {sorted(EMBEDDINGS)}, got {kind!r}")
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k != "type"}
    for key in ("n_object_features", "n_out"):
        if key not in options:
            raise InvalidInputError(f"embedding: missing {key!r} in {dict(config)!r}")
    try:
        return EMBEDDINGS[kind](**options)
    except TypeError as exc:
        raise InvalidInputError(f"embedding: bad options for {kind!r}: {exc}") from exc
