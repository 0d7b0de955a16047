"""Conditional normalising flows q(x | c) built on zuko, trained by weighted maximum likelihood.

:class:`ConditionalFlow` wraps a zuko neural spline flow (``kind="nsf"``, Durkan et al.,
arXiv:1906.04032) or masked affine autoregressive flow (``kind="maf"``, Papamakarios et al.,
arXiv:1705.07057) with

* standardisation of x and of the flat context c (statistics fitted on the training data and stored
  as buffers in the state_dict); :meth:`ConditionalFlow.log_prob` is returned in the ORIGINAL units
  of x: log q(x|c) = log q_std((x − μ)/σ | c) − Σ_d log σ_d;
* an optional set embedding (:mod:`sbihep.estimators.embedding`) that turns a variable-length list
  of objects into conditioning features, concatenated with the flat context;
* per-event weights: the loss is the weighted NLL −Σ w log q / Σ w (weights are rescaled once to mean
  one over the training set, so every minibatch loss −⟨w log q⟩ is an unbiased estimate of it;
  negative weights are allowed as long as Σ w > 0);
* training through :func:`sbihep.estimators.train.train` (early stopping, checkpoints, progress,
  ``device="auto"``); chunked evaluation so millions of events fit in memory;
* save/load as ``config.json`` + ``state_dict.pt`` and ONNX export of the log-density and of the
  embedding (:meth:`ConditionalFlow.export_onnx`).

Context formats (``context`` arguments)
---------------------------------------
* no embedding: an (N, n_context) array (or None when ``n_context == 0``);
* with an embedding: a mapping ``{"objects": (N, N_max, F), "mask": (N, N_max) bool (True = real
  object, optional), "context": (N, n_context) (required iff n_context > 0)}``, a tuple
  ``(objects, mask)`` / ``(objects, mask, context)``, or — when ``n_context == 0`` — a list of N
  per-event (N_i, F) arrays (padded with :func:`~sbihep.estimators.embedding.pad_objects`).

With an embedding, ``n_context`` counts only the flat features; the flow is conditioned on
[standardised flat context, embedding] of width n_context + n_out.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import Standardize, as_features, read_estimator, save_estimator, seeded_init
from sbihep.estimators.embedding import as_objects, build_embedding, pad_objects
from sbihep.estimators.train import TrainingHistory, resolve_device, train

__all__ = ["ConditionalFlow", "ConditionalFlowNetwork", "weighted_nll_loss", "FLOW_KINDS"]

#: kind → zuko flow class name.
FLOW_KINDS = ("nsf", "maf")
_EVAL_ROWS = 65_536  # rows per chunk when evaluating log_prob
_SAMPLE_VALUES = 1 << 20  # n_samples × rows per chunk when sampling


class ConditionalFlowNetwork(nn.Module):
    """The torch module: standardisation buffers, optional set embedding and the zuko flow.

    ``forward(x, context, objects, mask)`` returns log q(x|c) in the original units of x, (B,).
    """

    def __init__(
        self, n_features: int, n_context: int, kind: str, transforms: int, hidden: Sequence[int], bins: int, embedding: Mapping | None
    ) -> None:
        super().__init__()
        import zuko

        self.n_features, self.n_context = int(n_features), int(n_context)
        self.x_norm = Standardize(self.n_features)
        self.c_norm = Standardize(max(self.n_context, 1))
        self.embedding = build_embedding(embedding) if embedding else None
        width = self.n_context + (self.embedding.n_out if self.embedding is not None else 0)
        self.n_condition = width
        hidden = tuple(int(h) for h in hidden)
        if kind == "nsf":
            self.flow = zuko.flows.NSF(self.n_features, width, transforms=int(transforms), hidden_features=hidden, bins=int(bins))
        else:
            self.flow = zuko.flows.MAF(self.n_features, width, transforms=int(transforms), hidden_features=hidden)

    def condition(self, context: Tensor | None = None, objects: Tensor | None = None, mask: Tensor | None = None) -> Tensor | None:
        """(B, n_condition) conditioning vector: [standardised context, embedding(objects, mask)]."""
        parts = []
        if self.n_context:
            parts.append(self.c_norm(context))
        if self.embedding is not None:
            parts.append(self.embedding(objects, mask))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)

    def log_jacobian(self) -> Tensor:
        """Σ_d log σ_d of the x standardisation (scalar)."""
        return self.x_norm.std.log().sum()

    def forward(self, x: Tensor, context: Tensor | None = None, objects: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        cond = self.condition(context, objects, mask)
        return self.flow(cond).log_prob(self.x_norm(x)) - self.log_jacobian()

    def sample_standardised(self, n: int, cond: Tensor | None, n_rows: int) -> Tensor:
        """(n, B, D) samples in standardised units (uses torch's global RNG: wrap in a fork)."""
        if cond is None:
            return self.flow(None).sample((n, n_rows))
        return self.flow(cond).sample((n,))


def weighted_nll_loss(model: ConditionalFlowNetwork, batch: Mapping[str, Tensor]) -> Tensor:
    """−⟨w log q(x|c)⟩ over the batch (weights pre-normalised to mean one over the training set)."""
    log_q = model(batch["x"], batch.get("context"), batch.get("objects"), batch.get("mask"))
    return -(batch["w"] * log_q).mean()


def _plain(value):
    """numpy view of a tensor / the values of an xarray object / the value itself."""
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return getattr(value, "values", value)


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class ConditionalFlow:
    """A conditional density q(x|c) of D features given C context features (and/or a set of objects).

    Args:
        n_features: D, width of x (≥ 1).
        n_context: C, width of the flat context (≥ 0; with an embedding, the flat features only).
        kind: ``"nsf"`` (rational-quadratic splines on [−5, 5] in standardised units, identity
            outside) or ``"maf"`` (affine).
        transforms: number of autoregressive transformations.
        hidden: hidden widths of each transformation's conditioner network.
        bins: spline bins (NSF).
        embedding: set-encoder config, e.g. ``{"type": "deepset", "n_object_features": 4, "n_out": 16}``
            (see :func:`sbihep.estimators.embedding.build_embedding`), or None.
        seed: initial weights and default sampling seed.
    """

    kind = "conditional_flow"

    def __init__(
        self,
        n_features: int,
        n_context: int,
        *,
        kind: str = "nsf",
        transforms: int = 3,
        hidden: Sequence[int] = (64, 64),
        bins: int = 8,
        embedding: dict | None = None,
        seed: int = 0,
    ) -> None:
        self.n_features = _check_positive_int("n_features", n_features)
        self.n_context = _check_positive_int("n_context", n_context, 0)
        if kind not in FLOW_KINDS:
            raise InvalidInputError(f"kind must be one of {FLOW_KINDS}, got {kind!r}")
        self.flow_kind = kind
        self.transforms = _check_positive_int("transforms", transforms)
        if isinstance(hidden, (int, str)) or not hidden or any(int(h) < 1 for h in hidden):
            raise InvalidInputError(f"hidden must be a non-empty sequence of positive widths, got {hidden!r}")
        self.hidden = [int(h) for h in hidden]
        self.bins = _check_positive_int("bins", bins, 2)
        self.embedding = None if embedding is None else json.loads(json.dumps(dict(embedding)))
        self.seed = int(seed)
        self.training: dict = {}
        self.network = seeded_init(
            lambda: ConditionalFlowNetwork(self.n_features, self.n_context, kind, self.transforms, self.hidden, self.bins, self.embedding),
            self.seed,
        )

    # ---- inputs ---------------------------------------------------------------------------
    def _context(self, context, n_rows: int | None, argument: str = "context") -> dict[str, Tensor]:
        """Validated conditioning tensors (see the module docstring for the accepted formats)."""
        out: dict[str, Tensor] = {}
        flat = context
        if self.embedding is not None:
            n_obj = int(self.embedding["n_object_features"])
            if isinstance(context, Mapping):
                if "objects" not in context:
                    raise InvalidInputError(f"{argument}: a mapping needs 'objects' (and optionally 'mask', 'context')")
                objects, mask, flat = context["objects"], context.get("mask"), context.get("context", context.get("features"))
            elif isinstance(context, tuple) and len(context) in (2, 3):
                objects, mask = context[0], context[1]
                flat = context[2] if len(context) == 3 else None
            elif isinstance(context, list) and self.n_context == 0:
                objects, mask = pad_objects(context)
                flat = None
            else:
                raise InvalidInputError(
                    f"{argument}: with an embedding pass {{'objects', 'mask', 'context'}}, (objects, mask[, context]) or a list of "
                    f"per-event (N_i, {n_obj}) arrays; got {type(context).__name__}"
                )
            out["objects"], out["mask"] = as_objects(objects, mask, n_obj, f"{argument}['objects']")
            if n_rows is not None and len(out["objects"]) != n_rows:
                raise ShapeError(f"{argument}: objects have {len(out['objects'])} events, x has {n_rows}")
            n_rows = len(out["objects"])
        if self.n_context:
            if flat is None:
                raise InvalidInputError(f"{argument}: the flow needs {self.n_context} flat context features, got none")
            t = as_features(_plain(flat), self.n_context, argument)
            if n_rows is not None and len(t) != n_rows:
                raise ShapeError(f"{argument}: has {len(t)} rows, x has {n_rows}")
            out["context"] = t
        elif flat is not None and self.embedding is None:
            raise InvalidInputError(f"{argument}: the flow has no context (n_context=0), got an array")
        rows = len(next(iter(out.values()))) if out else n_rows
        if rows == 0:
            raise InvalidInputError(f"{argument}: empty (0 events)")
        return out

    def _x(self, x) -> Tensor:
        t = as_features(_plain(x), self.n_features, "x")
        if len(t) == 0:
            raise InvalidInputError("x: empty (0 events)")
        return t

    # ---- training -------------------------------------------------------------------------
    def fit(self, x, context=None, weights=None, **train_options) -> TrainingHistory:
        """Maximise the (weighted) likelihood of x (N, D) given context.

        Args:
            x: (N, D) targets in their physical units.
            context: the conditioning (module docstring), N rows.
            weights: (N,) per-event weights (None: all one); Σ w must be positive.
            train_options: passed to :func:`sbihep.estimators.train.train` (epochs, batch_size,
                learning_rate, seed, device="auto", quiet, checkpoint, early_stopping_patience, …).
        Returns:
            the :class:`~sbihep.estimators.train.TrainingHistory` (losses are −⟨w log q⟩ in the
            original units of x).
        """
        xt = self._x(x)
        data = {"x": xt, **self._context(context, len(xt))}
        if weights is None:
            w = torch.ones(len(xt), dtype=torch.float64)
        else:
            w = torch.as_tensor(np.asarray(_plain(weights), dtype=np.float64))
            if w.ndim != 1 or len(w) != len(xt):
                raise ShapeError(f"weights: expected shape ({len(xt)},), got {tuple(w.shape)}")
            if not torch.isfinite(w).all():
                raise InvalidInputError("weights: contain NaN or infinite values")
            if not float(w.sum()) > 0:
                raise InvalidInputError(f"weights: their sum must be positive, got {float(w.sum())}")
        data["w"] = (w * (len(w) / w.sum())).float()
        net = self.network
        net.x_norm.fit(xt)
        if "context" in data:
            net.c_norm.fit(data["context"])
        if net.embedding is not None:
            net.embedding.fit_normalisation(data["objects"], data["mask"])
        self.training = {"n_samples": int(len(xt)), "weighted": weights is not None}
        self.training.update({k: v for k, v in train_options.items() if isinstance(v, (int, float, str, bool))})
        return train(net, weighted_nll_loss, data, fingerprint=self.config(), **train_options)

    # ---- evaluation -----------------------------------------------------------------------
    @staticmethod
    def _slice(tensors: Mapping[str, Tensor], start: int, stop: int, device) -> dict[str, Tensor]:
        return {k: v[start:stop].to(device) for k, v in tensors.items()}

    def log_prob(self, x, context=None, *, device: str = "cpu") -> np.ndarray:
        """log q(x|c) in the original units of x (density per unit of each x column), (N,) float64."""
        xt = self._x(x)
        cond = self._context(context, len(xt))
        dev = resolve_device(device)
        net = self.network.to(dev).eval()
        out = []
        try:
            with torch.no_grad():
                for s in range(0, len(xt), _EVAL_ROWS):
                    part = self._slice(cond, s, s + _EVAL_ROWS, dev)
                    out.append(net(xt[s : s + _EVAL_ROWS].to(dev), part.get("context"), part.get("objects"), part.get("mask")).cpu())
        finally:
            net.cpu()
        return torch.cat(out).double().numpy()

    def transform(self, x, context=None, *, device: str = "cpu") -> np.ndarray:
        """The flow's bijection to its base space: u = T_c(x) (N, D), for x (N, D) in original units.

        u ~ N(0, 1) when x ~ q(x|c); :meth:`inverse` maps back.  What a latent-space morphing (simulation
        correction) or a PIT-style calibration check needs.
        """
        return self._bijection(self._x(x), context, inverse=False, device=device)

    def inverse(self, u, context=None, *, device: str = "cpu") -> np.ndarray:
        """x = T_c⁻¹(u) (N, D) in the original units, for base-space points u (N, D)."""
        return self._bijection(self._x(u), context, inverse=True, device=device)

    def _bijection(self, values: Tensor, context, *, inverse: bool, device: str) -> np.ndarray:
        cond = self._context(context, len(values))
        dev = resolve_device(device)
        net = self.network.to(dev).eval()
        out = []
        try:
            with torch.no_grad():
                for s in range(0, len(values), _EVAL_ROWS):
                    part = self._slice(cond, s, s + _EVAL_ROWS, dev)
                    c = net.condition(part.get("context"), part.get("objects"), part.get("mask"))
                    bijection = net.flow(c).transform
                    v = values[s : s + _EVAL_ROWS].to(dev)
                    mapped = bijection.inv(v) * net.x_norm.std + net.x_norm.mean if inverse else bijection(net.x_norm(v))
                    out.append(mapped.cpu())
        finally:
            net.cpu()
        return torch.cat(out).double().numpy()

    def sample(self, context=None, n_samples: int = 1, seed: int | None = None, *, n_events: int | None = None, device: str = "cpu") -> np.ndarray:
        """Draw x ~ q(x|c) for every context row.

        Args:
            context: N conditioning rows (module docstring); None only when the flow has no context
                (then give ``n_events``).
            n_samples: draws per row.
            seed: the seed (default: the flow's ``seed``); the same seed gives the same samples.
            n_events: number of rows for an unconditional flow.
        Returns:
            (n_samples, N, D) float64 in the original units of x.
        """
        n_samples = _check_positive_int("n_samples", n_samples)
        if context is None and self.n_context == 0 and self.embedding is None:
            n_rows = _check_positive_int("n_events", n_events if n_events is not None else 0)
            cond: dict[str, Tensor] = {}
        else:
            cond = self._context(context, None)
            n_rows = len(next(iter(cond.values())))
        dev = resolve_device(device)
        net = self.network.to(dev).eval()
        step = max(1, _SAMPLE_VALUES // n_samples)
        out = []
        try:
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
                torch.manual_seed(self.seed if seed is None else int(seed))
                for s in range(0, n_rows, step):
                    part = self._slice(cond, s, s + step, dev)
                    c = net.condition(part.get("context"), part.get("objects"), part.get("mask"))
                    z = net.sample_standardised(n_samples, c, min(step, n_rows - s))
                    out.append((z * net.x_norm.std + net.x_norm.mean).cpu())
        finally:
            net.cpu()
        return torch.cat(out, 1).double().numpy()

    # ---- persistence ----------------------------------------------------------------------
    def config(self) -> dict:
        """JSON-able description (everything needed to rebuild the network before loading weights)."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "n_context": self.n_context,
            "flow": {"kind": self.flow_kind, "transforms": self.transforms, "hidden": self.hidden, "bins": self.bins, "seed": self.seed},
            "embedding": self.embedding,
            "preprocessing": "standardise x, the flat context and the object features (buffers in the state_dict)",
            "training": self.training,
        }

    def save(self, path) -> Path:
        """Directory with config.json (records the sbihep version) and state_dict.pt."""
        return save_estimator(path, self.config(), self.network.state_dict())

    @classmethod
    def _from_config(cls, config: Mapping) -> "ConditionalFlow":
        f = config["flow"]
        return cls(
            config["n_features"], config["n_context"], kind=f["kind"], transforms=f["transforms"], hidden=f["hidden"],
            bins=f["bins"], embedding=config.get("embedding"), seed=f["seed"],
        )

    @classmethod
    def load(cls, path) -> "ConditionalFlow":
        """Rebuild a flow written by :meth:`save`."""
        config, state = read_estimator(path, cls.kind)
        flow = cls._from_config(config)
        flow.training = config.get("training", {})
        flow.network.load_state_dict(state)
        return flow

    # ---- ONNX -----------------------------------------------------------------------------
    def export_onnx(self, path, part: str = "log_prob", opset: int = 17) -> Path:
        """Export a part of the flow to ONNX with a dynamic batch axis (and dynamic N_max for objects).

        Args:
            path: the ``.onnx`` file to write (atomically).
            part: ``"log_prob"`` — inputs ``x`` (B, D) float32 [, ``context`` (B, C) float32]
                [, ``objects`` (B, N_max, F) float32, ``mask`` (B, N_max) bool], output ``log_prob``
                (B,) float32 in the original units (standardisation and embedding inside the graph);
                ``"embedding"`` — inputs ``objects``, ``mask``, output ``embedding`` (B, n_out).
            opset: ONNX opset.
        Both parts export completely, the rational-quadratic splines included (the bin search
        is traced into GreaterOrEqual + ReduceSum + GatherElements in opset 17; outside [−5, 5]
        the identity branch is kept); tests/test_flows_conditional.py checks onnxruntime against torch.
        Sampling is not exported: it inverts the autoregressive transforms (D sequential passes of
        the conditioner and the spline inverse per transform) and needs the base draws as an input;
        use :meth:`sample` in Python.  The graph is traced with the TorchScript exporter
        (``dynamo=False``: the torch.export-based exporter needs ``onnxscript``, not installed).
        """
        import warnings

        net = self.network.cpu().eval()
        b, n_obj = 3, 2
        if part == "embedding":
            if net.embedding is None:
                raise InvalidInputError("part: this flow has no embedding to export")
            module, names = _EmbeddingGraph(net.embedding), ["objects", "mask"]
            args = (torch.zeros(b, n_obj, net.embedding.n_object_features), torch.ones(b, n_obj, dtype=torch.bool))
            outputs = ["embedding"]
        elif part == "log_prob":
            module, names, args = _LogProbGraph(net), ["x"], [torch.zeros(b, self.n_features)]
            if self.n_context:
                names.append("context")
                args.append(torch.zeros(b, self.n_context))
            if net.embedding is not None:
                names += ["objects", "mask"]
                args += [torch.zeros(b, n_obj, net.embedding.n_object_features), torch.ones(b, n_obj, dtype=torch.bool)]
            args, outputs = tuple(args), ["log_prob"]
        else:
            raise InvalidInputError(f"part must be 'log_prob' or 'embedding', got {part!r}")
        axes = {name: ({0: "batch", 1: "n_objects"} if name in ("objects", "mask") else {0: "batch"}) for name in names}
        axes[outputs[0]] = {0: "batch"}
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, dynamo=False, input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=opset)
        import onnx

        model = onnx.load_from_string(buffer.getvalue())
        meta = {"sbihep.format": f"sbihep-conditional-flow-{part}/1", "sbihep.version": __version__, "sbihep.config": json.dumps(self.config())}
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        path = Path(path)
        with atomic_destination(path) as tmp:
            tmp.write_bytes(model.SerializeToString())
        return path


class _LogProbGraph(nn.Module):
    def __init__(self, net: ConditionalFlowNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, *rest):
        rest = list(rest)
        context = rest.pop(0) if self.net.n_context else None
        objects, mask = (rest[0], rest[1]) if self.net.embedding is not None else (None, None)
        return self.net(x, context, objects, mask)


class _EmbeddingGraph(nn.Module):
    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, objects, mask):
        return self.embedding(objects, mask)
