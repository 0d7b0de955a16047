"""Export a trained surrogate ensemble to one self-contained ONNX file with sbihep metadata.

The graph is written directly with ``onnx.helper`` from the ensemble's weights (no tracing), so it
contains exactly: standardise inputs → MLP (Gemm + SiLU) → de-standardise, per member; then the
ensemble mean and standard deviation.

Graph
    input  ``x``      float32 (batch, d)   inputs in the order and units of ``sbihep.inputs``
    output ``t``      float32 (batch, k)   ensemble mean of [t_observed, t_asimov(, t_asimov_prefit)]
                                           (−2ΔlnL; k and the names in ``sbihep.outputs``)
    output ``t_std``  float32 (batch, k)   ensemble standard deviation (uncertainty per point)

With ``MLPConfig.nonnegative`` every member's output is clamped at 0 (a ``Relu`` node) before the
ensemble mean, so t ≥ 0 everywhere.

Metadata (``metadata_props``; every value a JSON string; read back with
:func:`sbihep.surrogates.loader.read_metadata`): see :data:`METADATA_KEYS`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sbihep._version import __version__
from sbihep.errors import InvalidInputError
from sbihep.surrogates.loader import INTEGRITY_KEY, metadata_digest

__all__ = ["export_onnx", "add_integrity_record", "weights_sha256", "METADATA_KEYS", "FORMAT", "OPSET"]

FORMAT = "sbihep-likelihood-surrogate/1"
OPSET = 17
METADATA_KEYS = (
    "sbihep.format",        # FORMAT
    "sbihep.description",   # what the outputs are, in words
    "sbihep.mode",          # "mu" or "yields"
    "sbihep.inputs",        # [{name, unit, train_low, train_high}] in graph order
    "sbihep.outputs",       # [{name, meaning}] in graph order
    "sbihep.regions",       # signal-region (channel) names
    "sbihep.preprocessing", # standardisation constants (applied inside the graph)
    "sbihep.nll",           # reference, best-fit and background-only −2 lnL per data set; best-fit inputs
    "sbihep.labels",        # points requested / used / dropped (failed convergence)
    "sbihep.validation",    # held-out labels, check grid over the box, min t, targets and passed
    "sbihep.weights",       # sha256 of the network weights (weights_sha256)
    "sbihep.nuisances",     # names of the profiled parameters
    "sbihep.backgrounds",   # per-bin observed counts, pre-/post-fit backgrounds and uncertainties
    "sbihep.provenance",    # sha256 of workspace and patch, versions, licence, creation time
    "sbihep.test_vectors",  # inputs and expected outputs checked on load
    "sbihep.integrity",     # sha256 of every other field and of the file bytes (this hash zeroed)
)


def _initializer(name: str, array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def _build_graph(ensemble) -> Any:
    """onnx.ModelProto computing (t, t_std) from x for a :class:`SurrogateEnsemble`."""
    import onnx
    from onnx import TensorProto, helper

    d, n_out = ensemble.config.n_inputs, ensemble.config.n_outputs
    nodes, inits, stacked = [], [], []
    for k, member in enumerate(ensemble.members):
        p = f"m{k}_"
        buf = {n: b.detach().cpu().numpy() for n, b in member.named_buffers()}
        for n in ("in_shift", "in_scale", "out_shift", "out_scale"):
            inits.append(_initializer(p + n, buf[n]))
        nodes += [helper.make_node("Sub", ["x", p + "in_shift"], [p + "xc"]),
                  helper.make_node("Div", [p + "xc", p + "in_scale"], [p + "h0"])]
        h = p + "h0"
        n_layers = len(member.linears)
        for i, layer in enumerate(member.linears):
            inits += [_initializer(f"{p}W{i}", layer.weight.detach().cpu().numpy()),
                      _initializer(f"{p}b{i}", layer.bias.detach().cpu().numpy())]
            nodes.append(helper.make_node("Gemm", [h, f"{p}W{i}", f"{p}b{i}"], [f"{p}g{i}"], transB=1))
            if i < n_layers - 1:
                nodes += [helper.make_node("Sigmoid", [f"{p}g{i}"], [f"{p}s{i}"]),
                          helper.make_node("Mul", [f"{p}g{i}", f"{p}s{i}"], [f"{p}h{i + 1}"])]
                h = f"{p}h{i + 1}"
        y = p + "y"
        nodes += [helper.make_node("Mul", [f"{p}g{n_layers - 1}", p + "out_scale"], [p + "ys"]),
                  helper.make_node("Add", [p + "ys", p + "out_shift"], [y])]
        if getattr(member, "nonnegative", False):  # t = max(y, 0): see MLPConfig.nonnegative
            nodes.append(helper.make_node("Relu", [y], [p + "yr"]))
            y = p + "yr"
        nodes.append(helper.make_node("Unsqueeze", [y, "axis0"], [p + "y3"]))
        stacked.append(p + "y3")
    inits.append(onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"))
    nodes += [
        helper.make_node("Concat", stacked, ["ys"], axis=0),
        helper.make_node("ReduceMean", ["ys"], ["t"], axes=[0], keepdims=0),
        helper.make_node("Sub", ["ys", "t"], ["dev"]),
        helper.make_node("Mul", ["dev", "dev"], ["dev2"]),
        helper.make_node("ReduceMean", ["dev2"], ["var"], axes=[0], keepdims=0),
        helper.make_node("Sqrt", ["var"], ["t_std"]),
    ]
    graph = helper.make_graph(
        nodes, "sbihep_likelihood_surrogate",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", d])],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch", n_out]),
         helper.make_tensor_value_info("t_std", TensorProto.FLOAT, ["batch", n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sbihep", producer_version=__version__)
    model.ir_version = 8  # readable by onnxruntime ≥ 1.10
    onnx.checker.check_model(model)
    return model


_OUTPUT_MEANING = {
    "t_observed": "-2 Delta lnL, observed data",
    "t_asimov": "-2 Delta lnL, Asimov data of the background-only fit to the observed data (post-fit, "
                "spey's aposteriori; pyhf's q~_mu Asimov)",
    "t_asimov_prefit": "-2 Delta lnL, pre-fit Asimov data (zero signal, parameters at their initial values; "
                       "spey's apriori)",
}
_WEIGHTS_ALGORITHM = ("sha256 over the graph's initializers in name order: for each, the UTF-8 bytes of "
                      "'name|dtype|shape|' followed by its raw little-endian bytes")


def weights_sha256(model) -> str:
    """sha256 (hex) of the network weights of an ONNX model (``onnx.ModelProto`` or a file path).

    Every initializer (weights, biases, standardisation constants) in name order: the bytes of
    ``f"{name}|{dtype}|{shape}|"`` then the array's raw little-endian bytes.  Independent of the
    metadata, so two files with the same network have the same hash.
    """
    import onnx
    from onnx import numpy_helper

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    h = hashlib.sha256()
    for init in sorted(model.graph.initializer, key=lambda i: i.name):
        arr = np.ascontiguousarray(numpy_helper.to_array(init))
        h.update(f"{init.name}|{arr.dtype.str}|{tuple(arr.shape)}|".encode())
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def _run(model_bytes: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    t, s = sess.run(None, {"x": np.asarray(x, np.float32)})
    return t, s


def export_onnx(
    ensemble,
    labels,
    path: str | Path,
    *,
    validation: dict | None = None,
    licence: str = "CC-BY-4.0 (derived from the HEPData workspace); network weights under the sbihep licence",
    test_inputs: np.ndarray | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``ensemble`` as a self-contained ONNX file with metadata, atomically.

    Args:
        ensemble: a trained :class:`sbihep.surrogates.network.SurrogateEnsemble`.
        labels: the :class:`sbihep.surrogates.labels.LabelSet` it was trained on (for bounds,
            reference NLLs, region names, provenance).
        path: output file (``.onnx``).
        validation: metrics to record (e.g. from :func:`sbihep.surrogates.likelihood.validate`).
        licence: licence statement recorded in the metadata.
        test_inputs: (k, d) inputs for the test vectors; default 5 points across the box and the best fit.
        extra: further JSON-able provenance entries.
    Returns:
        the path written.
    """
    import onnx

    import pyhf

    prob = labels.problem
    d = len(prob.input_names)
    if ensemble.config.n_inputs != d:
        raise InvalidInputError(f"ensemble: has {ensemble.config.n_inputs} inputs but the labels have {d}")
    model = _build_graph(ensemble)
    lo, hi = prob.bounds[:, 0], prob.bounds[:, 1]
    if test_inputs is None:
        frac = np.array([0.02, 0.25, 0.5, 0.8])[:, None]
        test_inputs = np.concatenate([lo + frac * (hi - lo), np.clip(np.array([labels.best_fit["observed"]]), lo, hi)])
    test_inputs = np.asarray(test_inputs, np.float32).reshape(-1, d)
    t_ref, s_ref = _run(model.SerializeToString(), test_inputs)

    m0 = ensemble.members[0]
    n_out = ensemble.config.n_outputs
    out_names = list(getattr(labels, "output_names", ("t_observed", "t_asimov")))
    if len(out_names) != n_out:
        raise InvalidInputError(f"ensemble: has {n_out} outputs but the labels name {len(out_names)} ({out_names})")
    nonneg = bool(getattr(ensemble.config, "nonnegative", False))
    meta = {
        "sbihep.format": FORMAT,
        "sbihep.description": (
            "t_D(x) = -2 ln L(x, profiled nuisances | D) - NLL_ref,D for D = observed data and the "
            "Asimov data generated from the background-only fit to the observed data (pyhf's q~_mu "
            "convention)" + (", and D = the pre-fit Asimov data (zero signal, every parameter at its initial "
                             "value)" if "t_asimov_prefit" in out_names else "") + ". NLL_ref = the global "
            "minimum over the inputs (within the model bounds and the training box) and the nuisances, so "
            "t >= 0 and t(best fit) = 0 (files written before sbihep issue 24 in mode=yields: the zero-signal "
            "value). mode=mu: x = signal strength of one signal hypothesis. mode=yields: x = signal yields "
            "(events) per bin of the signal regions."
        ),
        "sbihep.mode": prob.mode,
        "sbihep.inputs": [{"name": n, "unit": u, "train_low": float(a), "train_high": float(b)}
                          for n, u, a, b in zip(prob.input_names, prob.input_units, lo, hi)],
        "sbihep.outputs": [{"name": n, "meaning": _OUTPUT_MEANING.get(n, n)} for n in out_names],
        "sbihep.regions": list(prob.regions),
        "sbihep.preprocessing": {
            "applied_inside_graph": True,
            "input": "z = (x - in_shift) / in_scale",
            "output": "t = max(y * out_scale + out_shift, 0)" if nonneg else "t = y * out_scale + out_shift",
            "nonnegative": nonneg,
            "in_shift": m0.in_shift.tolist(), "in_scale": m0.in_scale.tolist(),
            "out_shift": m0.out_shift.tolist(), "out_scale": m0.out_scale.tolist(),
            "architecture": {"hidden": ensemble.config.hidden, "activation": "SiLU",
                             "n_members": ensemble.config.n_members, "dtype": "float32"},
        },
        "sbihep.nll": {"reference_nll": labels.reference_nll, "best_fit_nll": labels.best_fit_nll,
                       "best_fit_inputs": labels.best_fit, "zero_signal_nll": getattr(labels, "zero_signal_nll", {}),
                       "unit": "-2 ln L"},
        "sbihep.labels": {"n_requested": labels.n_requested, "n_used": int(len(labels.x)),
                          "n_dropped": labels.n_dropped, "n_disagree": labels.n_disagree,
                          "n_neighbour": labels.n_neighbour, "fitter": "MINUIT via pyhf (numpy backend)",
                          **_label_extras(labels)},
        "sbihep.validation": validation or {},
        "sbihep.weights": {"sha256": weights_sha256(model), "algorithm": _WEIGHTS_ALGORITHM},
        "sbihep.nuisances": list(getattr(labels, "nuisance_names", [])),
        "sbihep.backgrounds": dict(getattr(labels, "backgrounds", {})),
        "sbihep.provenance": {
            **prob.provenance, "sbihep_version": __version__, "pyhf_version": pyhf.__version__,
            "onnx_version": onnx.__version__, "licence": licence,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **(extra or {}),
        },
        "sbihep.test_vectors": {"inputs": test_inputs.tolist(), "t": t_ref.tolist(), "t_std": s_ref.tolist(),
                                "rtol": 1e-4, "atol": 1e-4},
    }
    blob = _serialise_with_integrity(model, {k: json.dumps(v) for k, v in meta.items()})
    _write_atomic(blob, Path(path))
    return Path(path)


def _label_extras(labels) -> dict:
    """Anchors, check grid, reference refits and timing of a LabelSet (absent on older label objects)."""
    out: dict[str, Any] = {}
    anchor = getattr(labels, "is_anchor", None)
    if anchor is not None:
        out["anchors"] = np.asarray(labels.x)[np.asarray(anchor, bool)].tolist()
    x_check = getattr(labels, "x_check", None)
    if x_check is not None:
        out["n_check"] = int(len(x_check))
        out["n_dropped_check"] = getattr(labels, "n_dropped_check", {})
    for key in ("n_reference_refits", "timing"):
        if getattr(labels, key, None):
            out[key] = getattr(labels, key)
    return out


def _serialise_with_integrity(model, props: dict[str, str]) -> bytes:
    """Set ``props`` (sbihep.* → JSON text) plus the integrity record on ``model``; the file's bytes."""
    import onnx

    props = {k: v for k, v in props.items() if k != INTEGRITY_KEY}
    props[INTEGRITY_KEY] = json.dumps({
        "algorithm": "sha256; fields: of each sbihep.* value's JSON text (first 16 hex); file: of the whole file "
                     "with file_sha256 written as 64 zeros",
        "fields_sha256": {k.removeprefix("sbihep."): metadata_digest(v) for k, v in props.items() if k.startswith("sbihep.")},
        "file_sha256": "0" * 64,
    })
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    blob = model.SerializeToString()  # initializers inline: one self-contained file
    digest = hashlib.sha256(blob).hexdigest()
    marker = b'"file_sha256": "' + b"0" * 64
    if blob.count(marker) != 1:
        raise RuntimeError("export_onnx: the integrity placeholder is not unique in the serialised model")
    return blob.replace(marker, b'"file_sha256": "' + digest.encode("ascii"))


def add_integrity_record(path: str | Path, output: str | Path | None = None) -> Path:
    """Give a surrogate written before integrity records existed its ``sbihep.integrity`` record.

    The file must first pass its own test vectors (so an edited file is not blessed); its metadata
    fields are kept as they are.  Writes ``output`` (default: ``path`` itself) atomically.

    Raises:
        DataFormatError: the file is not a loadable sbihep surrogate or fails its test vectors.
    """
    import warnings

    import onnx

    from sbihep.surrogates.loader import SurrogateLikelihood

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SurrogateLikelihood(path)  # structure + test vectors (+ an existing record)
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    out = Path(output) if output is not None else Path(path)
    _write_atomic(_serialise_with_integrity(model, props), out)
    return out


def _write_atomic(blob: bytes, path: Path) -> None:
    """Write ``blob`` to ``path`` through :func:`sbihep._atomic.atomic_destination` (a killed export leaves
    no partial file, and its hidden temporary is removed by the next write to ``path``)."""
    from sbihep._atomic import atomic_destination

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_destination(path) as tmp:
        tmp.write_bytes(blob)
