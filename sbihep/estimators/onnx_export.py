"""Export ratio and score estimators (single networks or ensembles) to self-contained ONNX files.

The graph is written directly from the weights (:mod:`sbihep._onnx_graph`, no tracing) and contains
the input standardisation, so it reads physical features and parameter values.  Every axis named
``batch`` is dynamic.

Ratio estimators (:class:`~sbihep.estimators.ratio.RatioEstimator`, log r̂ = g(x,θ₀) − g(x,θ₁))
    inputs   ``x`` float32 (batch, n_features), ``theta0`` float32 (batch, n_parameters), and
             ``theta1`` float32 (batch, n_parameters) when exported doubly parametrised; otherwise θ₁
             is fixed inside the graph (metadata ``sbihep.theta1``).
    output   ``log_r`` float32 (batch,) — ln r̂(x|θ₀, θ₁) = ln p(x|θ₀)/p(x|θ₁).
Score estimators (:class:`~sbihep.estimators.score.ScoreEstimator`)
    input    ``x`` float32 (batch, n_features)
    output   ``score`` float32 (batch, n_parameters) — t̂(x|θ_ref).
Ensembles (:class:`~sbihep.estimators.ensemble.Ensemble`) output the member mean under the names
above and the members' sample standard deviation (ddof = 1) as ``log_r_std`` / ``score_std``.

On export the graph is evaluated with onnxruntime on random batches of several sizes and compared
with the torch networks; a difference above 1e-5 (absolute and relative) raises
:class:`OnnxMismatchError` and nothing is written.  The metadata (``metadata_props``, JSON strings,
keys :data:`METADATA_KEYS`) record the observables, the parameter space with its training bounds,
the method, the sbihep version and test vectors; :func:`load_onnx` reads a file back into an
evaluator with the same input checks as the torch estimators.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from sbihep._onnx_graph import GraphBuilder, read_metadata, run_model, write_model
from sbihep._version import __version__
from sbihep.errors import DataFormatError, ExtrapolationWarning, InvalidInputError, SbihepError
from sbihep.estimators.base import as_features, as_theta
from sbihep.params import ParameterSpace

__all__ = ["FORMAT", "METADATA_KEYS", "OnnxEstimator", "OnnxMismatchError", "export_onnx", "load_onnx"]

FORMAT = "sbihep-estimator/1"
METADATA_KEYS = (
    "sbihep.format",        # FORMAT
    "sbihep.kind",          # "ratio" or "score"
    "sbihep.method",        # carl, rolr, rascal, alice, alices, cascal, sally, ...
    "sbihep.observables",   # feature names in the column order of x
    "sbihep.parameters",    # ParameterSpace.to_dict(): names, SM values, training bounds, units
    "sbihep.inputs",        # [{name, shape, meaning}] in graph order
    "sbihep.outputs",       # [{name, shape, meaning}] in graph order
    "sbihep.theta1",        # fixed θ₁ by name (singly parametrised ratio), else null
    "sbihep.theta_ref",     # score estimators: the reference point, else null
    "sbihep.n_members",     # 1 for a single network
    "sbihep.preprocessing", # what the graph applies to its inputs
    "sbihep.training",      # the estimator's training record
    "sbihep.version",       # sbihep version that wrote the file
    "sbihep.provenance",    # onnx version, creation time, extra entries
    "sbihep.test_vectors",  # inputs and torch outputs, checked by load_onnx
)  # fmt: skip
TOLERANCE = 1e-5
_CHECK_SIZES = (1, 7, 256)


class OnnxMismatchError(SbihepError, RuntimeError):
    """The exported graph does not reproduce the torch network within the tolerance."""


# ---- graph ---------------------------------------------------------------------------------------
def _linears(mlp: nn.Module) -> list[nn.Linear]:
    return [m for m in mlp.modules() if isinstance(m, nn.Linear)]


def _buffers(norm) -> tuple[np.ndarray, np.ndarray]:
    return norm.mean.detach().cpu().numpy(), norm.std.detach().cpu().numpy()


def _ratio_member(b: GraphBuilder, est, theta1_fixed: np.ndarray | None, k: int) -> str:
    """Nodes for one ratio network; returns the (B,) log r̂ tensor."""
    net = est.network
    n_features = len(est.observables)
    layers = _linears(net.g)
    w0 = layers[0].weight.detach().cpu().numpy().astype(np.float64)
    bias0 = layers[0].bias.detach().cpu().numpy().astype(np.float64)
    w_x, w_t = w0[:, :n_features], w0[:, n_features:]
    t_mean, t_std = _buffers(net.theta_norm)
    xs = b.standardise("x", *_buffers(net.x_norm), f"m{k}_x")
    a_x = b.dense(xs, w_x, None, f"m{k}_first_x")

    def potential(first: str) -> str:
        return b.mlp("", layers, est.activation, f"m{k}_g", first=first)

    bias = b.const(bias0, f"m{k}_b0")
    t0 = b.standardise("theta0", t_mean, t_std, f"m{k}_t0")
    g0 = potential(b.op("Add", [b.op("Add", [a_x, b.dense(t0, w_t, None, f"m{k}_first_t0")]), bias]))
    if theta1_fixed is None:
        t1 = b.standardise("theta1", t_mean, t_std, f"m{k}_t1")
        pre1 = b.op("Add", [b.op("Add", [a_x, b.dense(t1, w_t, None, f"m{k}_first_t1")]), bias])
    else:  # θ₁'s part of the first layer is a constant row
        t1s = (theta1_fixed - t_mean.astype(np.float64)) / t_std.astype(np.float64)
        pre1 = b.op("Add", [a_x, b.const((t1s @ w_t.T + bias0)[None, :], f"m{k}_theta1_row")])
    g1 = potential(pre1)
    diff = b.op("Sub", [g0, g1])
    return b.op("Squeeze", [diff, b.const(np.array([1]), "axis1", dtype=np.int64)], f"m{k}_log_r")


def _morphing_ratio_member(b: GraphBuilder, est, theta1_fixed: np.ndarray | None, k: int) -> str:
    """Nodes for one morphing-aware ratio network (see :class:`sbihep.estimators.ratio.MorphingLogRatioNetwork`).

    With m̃ = (1, θ/scale) and the unit lower-triangular L filled at (rows, cols) — rows ≥ 1 there —
    (Lᵀm̃)_j = δ_j0 + Σ_k [cols_k = j] raw_k θ̃_{rows_k − 1}: a Gather, a product and a constant
    selection matrix.  Linear order: ρ = 1 + raw·θ̃.  Returns the (B,) log r̂ tensor.
    """
    net = est.network
    rho = net.rho
    raw_x = b.mlp(b.standardise("x", *_buffers(rho.x_norm), f"m{k}_x"), _linears(rho.net), est.activation, f"m{k}_rho")
    raw_z = b.const(net.log_sigma_raw.detach().cpu().numpy()[None, :], f"m{k}_sigma_raw")
    inv_scale = b.const(1.0 / rho.theta_scale.detach().cpu().numpy().astype(np.float64), f"m{k}_inv_scale")
    floor = b.const(np.array(net._FLOOR), f"m{k}_floor")
    if rho.order == "quadratic":
        rows = rho.tril_rows.cpu().numpy()
        cols = rho.tril_cols.cpu().numpy()
        select = np.zeros((len(rows), rho.n + 1))
        select[np.arange(len(rows)), cols] = 1.0
        select_c, unit_c = b.const(select, f"m{k}_select"), b.const(np.eye(1, rho.n + 1), f"m{k}_e0")
        gather_c = b.const(rows - 1, f"m{k}_rows", dtype=np.int64)
        sum_c = b.const(np.ones((rho.n + 1, 1)), f"m{k}_sum")
    else:
        sum_c = b.const(np.ones((rho.n, 1)), f"m{k}_sum")

    def polynomial(raw: str, scaled: str) -> str:
        if rho.order == "linear":
            return b.op("Add", [b.op("MatMul", [b.op("Mul", [raw, scaled]), sum_c]), b.const(np.ones((1, 1)), f"m{k}_one")])
        v = b.op("Add", [b.op("MatMul", [b.op("Mul", [raw, b.op("Gather", [scaled, gather_c], axis=1)]), select_c]), unit_c])
        return b.op("MatMul", [b.op("Mul", [v, v]), sum_c])  # (B, 1)

    def potential(theta: str) -> str:
        scaled = b.op("Mul", [theta, inv_scale])
        log_rho = b.op("Log", [b.op("Max", [polynomial(raw_x, scaled), floor])])
        log_z = b.op("Log", [b.op("Max", [polynomial(raw_z, scaled), floor])])
        return b.op("Sub", [log_rho, log_z])

    theta1 = "theta1" if theta1_fixed is None else b.const(np.asarray(theta1_fixed)[None, :], f"m{k}_theta1")
    diff = b.op("Sub", [potential("theta0"), potential(theta1)])
    return b.op("Squeeze", [diff, b.const(np.array([1]), "axis1", dtype=np.int64)], f"m{k}_log_r")


def _score_member(b: GraphBuilder, est, k: int) -> str:
    """Nodes for one score network; returns the (B, n_parameters) score tensor."""
    net = est.network
    xs = b.standardise("x", *_buffers(net.x_norm), f"m{k}_x")
    h = b.mlp(xs, _linears(net.net), est.activation, f"m{k}_net")
    t_mean, t_std = _buffers(net.t_norm)
    return b.op("Add", [b.op("Mul", [h, b.const(t_std, f"m{k}_t_std")]), b.const(t_mean, f"m{k}_t_mean")], f"m{k}_score")


def _members(estimator) -> list:
    from sbihep.estimators.ensemble import Ensemble

    members = list(estimator.members) if isinstance(estimator, Ensemble) else [estimator]
    kinds = {getattr(m, "kind", None) for m in members}
    if len(kinds) != 1 or not kinds <= {"ratio", "score"}:
        raise InvalidInputError(f"estimator: ONNX export handles ratio and score estimators (and ensembles of them), got kinds {sorted(map(str, kinds))}")
    for m in members:
        if getattr(m, "method", None) is None and m.kind == "ratio":
            raise InvalidInputError("estimator: the ratio estimator is untrained (no method recorded); train or load it before exporting")
    return members


def _build(estimator, members, doubly: bool, theta1: np.ndarray | None, metadata: Mapping):
    kind = members[0].kind
    n_features, n_params = len(members[0].observables), len(members[0].space)
    b = GraphBuilder()
    if kind == "ratio":
        outs = [
            (_morphing_ratio_member if getattr(m, "architecture", "mlp") == "morphing" else _ratio_member)(b, m, None if doubly else theta1, k)
            for k, m in enumerate(members)
        ]
        name, out_shape = "log_r", ["batch"]
        inputs = {"x": ["batch", n_features], "theta0": ["batch", n_params]}
        if doubly:
            inputs["theta1"] = ["batch", n_params]
    else:
        outs = [_score_member(b, m, k) for k, m in enumerate(members)]
        name, out_shape = "score", ["batch", n_params]
        inputs = {"x": ["batch", n_features]}
    outputs = {name: out_shape}
    if len(members) == 1:
        b.identity(outs[0], name)
    else:
        mean, std = b.mean_and_std(outs, ddof=1)
        b.identity(mean, name)
        b.identity(std, name + "_std")
        outputs[name + "_std"] = out_shape
    return b.model(f"sbihep_{kind}_estimator", inputs, outputs, metadata)


# ---- torch reference -------------------------------------------------------------------------
def _torch_outputs(members, feeds: Mapping[str, np.ndarray], theta1: np.ndarray | None) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        if members[0].kind == "ratio":
            th1 = feeds.get("theta1", theta1)
            values = np.stack([m.log_ratio(feeds["x"], feeds["theta0"], th1) for m in members])
            name = "log_r"
        else:
            values = np.stack([m.score(feeds["x"]) for m in members])
            name = "score"
    out = {name: values.mean(0)}
    if len(members) > 1:
        out[name + "_std"] = values.std(0, ddof=1)
    return out


def _random_feeds(members, n: int, doubly: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    net = members[0].network
    mean, std = (a.astype(np.float64) for a in _buffers(net.x_norm))
    feeds = {"x": (mean + std * rng.standard_normal((n, mean.size))).astype(np.float32)}
    if members[0].kind == "ratio":
        space = members[0].space
        lo = np.array([p.bounds[0] for p in space])
        hi = np.array([p.bounds[1] for p in space])
        if hasattr(net, "theta_norm"):
            t_mean, t_std = (a.astype(np.float64) for a in _buffers(net.theta_norm))
        else:  # morphing-aware: θ enters in units of theta_scale around the SM (0)
            t_mean, t_std = np.zeros(len(space)), net.rho.theta_scale.detach().cpu().numpy().astype(np.float64)
        finite = np.isfinite(lo) & np.isfinite(hi)
        lo, hi = np.where(finite, lo, t_mean - 2 * t_std), np.where(finite, hi, t_mean + 2 * t_std)
        names = ("theta0", "theta1") if doubly else ("theta0",)
        for key in names:
            feeds[key] = (lo + (hi - lo) * rng.random((n, lo.size))).astype(np.float32)
    return feeds


def _compare(model, members, doubly: bool, theta1, seed: int) -> tuple[float, dict]:
    rng = np.random.default_rng(seed)
    worst, vectors = 0.0, {}
    for n in _CHECK_SIZES:
        feeds = _random_feeds(members, n, doubly, rng)
        got = run_model(model, feeds)
        want = _torch_outputs(members, feeds, theta1)
        for key, ref in want.items():
            if got[key].shape != ref.shape:
                raise OnnxMismatchError(f"ONNX output {key!r} has shape {got[key].shape}, torch gives {ref.shape} (batch {n})")
            excess = np.abs(got[key] - ref) - TOLERANCE * (1 + np.abs(ref))
            if (excess > 0).any():
                raise OnnxMismatchError(
                    f"ONNX output {key!r} differs from torch by up to {np.max(np.abs(got[key] - ref)):.3g} at batch size {n} "
                    f"(tolerance {TOLERANCE} absolute + relative); the graph was not written"
                )
            worst = max(worst, float(np.max(np.abs(got[key] - ref))))
        if n == _CHECK_SIZES[1]:
            vectors = {"inputs": {k: v.tolist() for k, v in feeds.items()}, "outputs": {k: v.tolist() for k, v in want.items()}}
    return worst, vectors


# ---- export ------------------------------------------------------------------------------------
def export_onnx(
    estimator,
    path: str | os.PathLike,
    *,
    doubly: bool | None = None,
    theta1: Mapping[str, float] | None = None,
    seed: int = 0,
    extra: Mapping | None = None,
) -> Path:
    """Write ``estimator`` (ratio or score estimator, or an Ensemble of them) as one ONNX file, atomically.

    Args:
        estimator: a trained :class:`RatioEstimator`, :class:`ScoreEstimator` or :class:`Ensemble`.
        path: output file (``.onnx``).
        doubly: ratio estimators only — give θ₁ as a graph input (default: as trained).
        theta1: ratio estimators exported singly parametrised — the fixed θ₁ by name
            (default: the SM point of the parameter space).
        seed: seeds the random check batches.
        extra: further JSON-able provenance entries.
    Returns:
        the path written.
    Raises:
        OnnxMismatchError: the graph's outputs differ from torch's by more than 1e-5 (nothing written).
    """
    import onnx

    members = _members(estimator)
    first = members[0]
    kind = first.kind
    if kind == "score" and (doubly or theta1 is not None):
        raise InvalidInputError("doubly/theta1: only ratio estimators have a θ₁ input")
    if doubly is None:
        doubly = kind == "ratio" and bool(first.training.get("doubly", False))
    theta1_vec = None
    theta1_named = None
    if kind == "ratio" and not doubly:
        theta1_named = first.space.validate(theta1)
        theta1_vec = np.array([theta1_named[n] for n in first.space.names], dtype=np.float64)
    n_features, n_params = len(first.observables), len(first.space)
    if kind == "ratio":
        inputs = [{"name": "x", "shape": ["batch", n_features], "meaning": "features in the order of sbihep.observables"},
                  {"name": "theta0", "shape": ["batch", n_params], "meaning": "numerator hypothesis, parameters in the order of sbihep.parameters"}]
        if doubly:
            inputs.append({"name": "theta1", "shape": ["batch", n_params], "meaning": "denominator hypothesis"})
        outputs = [{"name": "log_r", "shape": ["batch"], "meaning": "ln r(x|theta0, theta1) = ln p(x|theta0) / p(x|theta1)"}]
    else:
        inputs = [{"name": "x", "shape": ["batch", n_features], "meaning": "features in the order of sbihep.observables"}]
        outputs = [{"name": "score", "shape": ["batch", n_params], "meaning": "t(x|theta_ref) = grad_theta ln p(x|theta) at theta_ref"}]
    if len(members) > 1:
        outputs.append({"name": outputs[0]["name"] + "_std", "shape": outputs[0]["shape"], "meaning": "standard deviation over the ensemble members"})
    meta = {
        "sbihep.format": FORMAT,
        "sbihep.kind": kind,
        "sbihep.method": getattr(first, "method", None) or first.config().get("method"),
        "sbihep.observables": list(first.observables),
        "sbihep.parameters": first.space.to_dict(),
        "sbihep.inputs": inputs,
        "sbihep.outputs": outputs,
        "sbihep.theta1": theta1_named,
        "sbihep.theta_ref": getattr(first, "theta_ref", None),
        "sbihep.n_members": len(members),
        "sbihep.preprocessing": {"applied_inside_graph": True, "inputs": "standardised with the training mean/std",
                                 "architecture": {"hidden": first.hidden, "activation": first.activation, "dtype": "float32"}},
        "sbihep.training": [m.training for m in members],
        "sbihep.version": __version__,
        "sbihep.provenance": {"onnx_version": onnx.__version__, "torch_version": torch.__version__,
                              "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **dict(extra or {})},
    }  # fmt: skip
    model = _build(estimator, members, doubly, theta1_vec, meta)
    worst, vectors = _compare(model, members, doubly, theta1_vec, seed)
    meta["sbihep.test_vectors"] = {**vectors, "max_abs_difference": worst, "rtol": 1e-4, "atol": 1e-4}
    model = _build(estimator, members, doubly, theta1_vec, meta)
    return write_model(model, path)


# ---- loading -----------------------------------------------------------------------------------
class OnnxEstimator:
    """An exported estimator evaluated with onnxruntime, with the torch estimators' input checks.

    Attributes: ``metadata`` (decoded), ``observables``, ``space`` (:class:`ParameterSpace`), ``kind``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        if self.metadata.get("sbihep.format") != FORMAT:
            raise DataFormatError(f"path: {str(self.path)!r} is not an sbihep estimator file (format {self.metadata.get('sbihep.format')!r}, expected {FORMAT!r})")
        self.kind = self.metadata["sbihep.kind"]
        self.observables = list(self.metadata["sbihep.observables"])
        self.space = ParameterSpace.from_dict(self.metadata["sbihep.parameters"])
        self.input_names = [i["name"] for i in self.metadata["sbihep.inputs"]]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        vectors = self.metadata.get("sbihep.test_vectors", {})
        if vectors:
            got = self._run({k: np.asarray(v, np.float32) for k, v in vectors["inputs"].items()})
            for key, want in vectors["outputs"].items():
                if not np.allclose(got[key], np.asarray(want), rtol=vectors["rtol"], atol=vectors["atol"]):
                    raise DataFormatError(f"path: {str(self.path)!r} fails its own test vectors (output {key!r}); the file is corrupt or was edited")

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(None, dict(feeds))))

    def predict(self, x, theta0=None, theta1=None) -> dict[str, np.ndarray]:
        """All graph outputs (float64 arrays) for features x (N, n_features) and, for ratios, θ₀ (and θ₁)."""
        xt = as_features(x, len(self.observables)).numpy()
        feeds = {"x": xt}
        if self.kind == "ratio":
            if theta0 is None:
                raise InvalidInputError("theta0: a ratio estimator needs the numerator hypothesis")
            feeds["theta0"] = as_theta(theta0, self.space, len(xt), "theta0").numpy()
            if "theta1" in self.input_names:
                feeds["theta1"] = as_theta(self.space.sm_point() if theta1 is None else theta1, self.space, len(xt), "theta1").numpy()
            elif theta1 is not None:
                fixed = self.metadata["sbihep.theta1"]
                given = as_theta(theta1, self.space, 1, "theta1").numpy()[0]
                if not np.allclose(given, [fixed[n] for n in self.space.names], rtol=1e-6, atol=1e-6):
                    raise InvalidInputError(f"theta1: this file was exported with θ₁ fixed at {fixed}; export it doubly parametrised for other θ₁")
        elif theta0 is not None or theta1 is not None:
            raise InvalidInputError("theta0/theta1: a score estimator takes only x")
        if len(xt) == 0:
            raise InvalidInputError("x: no events given")
        return {k: v.astype(np.float64) for k, v in self._run(feeds).items()}

    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """ln r̂(x|θ₀, θ₁), (N,) (the ensemble mean for an ensemble); θ as for RatioEstimator.log_ratio."""
        if self.kind != "ratio":
            raise InvalidInputError(f"log_ratio: this file holds a {self.kind!r} estimator")
        return self.predict(x, theta0, theta1)["log_r"]

    def score(self, x) -> np.ndarray:
        """t̂(x|θ_ref), (N, n_parameters) (the ensemble mean for an ensemble)."""
        if self.kind != "score":
            raise InvalidInputError(f"score: this file holds a {self.kind!r} estimator")
        return self.predict(x)["score"]

    def __repr__(self) -> str:
        return f"OnnxEstimator({self.kind}, method={self.metadata.get('sbihep.method')!r}, members={self.metadata.get('sbihep.n_members')}, file={str(self.path)!r})"


def load_onnx(path: str | os.PathLike) -> OnnxEstimator:
    """Open a file written by :func:`export_onnx` (checks its format and test vectors)."""
    return OnnxEstimator(path)
