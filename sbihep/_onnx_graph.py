"""Low-level ONNX graph building shared by the ONNX exporters (estimators, likelihood surrogates).

Graphs are written directly with ``onnx.helper`` from a network's weights (no tracing), so a graph
contains exactly the operations listed by the exporter.  :class:`GraphBuilder` hands out unique
tensor names, stores float32 initializers and knows the few building blocks sbihep's networks need
(standardisation, dense layers, activations, the ensemble mean and spread).  :func:`write_model`
writes a model file atomically; :func:`run_model` evaluates one with onnxruntime on the CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, InvalidInputError

__all__ = ["OPSET", "IR_VERSION", "GraphBuilder", "write_model", "run_model", "read_metadata"]

#: ONNX opset of sbihep's graphs (ReduceMean with an ``axes`` attribute: opset ≤ 17)
OPSET = 17
#: IR version readable by onnxruntime ≥ 1.10
IR_VERSION = 8
ACTIVATIONS = ("tanh", "silu", "relu", "softplus", "sigmoid")


class GraphBuilder:
    """Collects nodes and initializers; every method returns the name of the tensor it produced."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "c", dtype=np.float32) -> str:
        """A constant tensor (float32 unless ``dtype`` says otherwise)."""
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(array, dtype=dtype)), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, output: str | None = None, **attributes) -> str:
        """Append one node ``op_type(inputs)``; its output gets the name ``output`` or a fresh one."""
        from onnx import helper

        out = output or self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def standardise(self, x: str, mean, std, hint: str = "std") -> str:
        """(x − mean)/std with per-column constants."""
        return self.op("Div", [self.op("Sub", [x, self.const(mean, hint + "_mean")]), self.const(std, hint + "_std")], hint)

    def dense(self, h: str, weight, bias=None, hint: str = "dense") -> str:
        """h·Wᵀ (+ b) for a torch ``nn.Linear`` weight W of shape (out, in); h is (B, in)."""
        out = self.op("MatMul", [h, self.const(np.asarray(weight).T, hint + "_W")])
        return out if bias is None else self.op("Add", [out, self.const(bias, hint + "_b")], hint)

    def activation(self, h: str, name: str) -> str:
        """One of :data:`ACTIVATIONS` applied elementwise (SiLU as h·sigmoid(h))."""
        if name == "tanh":
            return self.op("Tanh", [h])
        if name == "relu":
            return self.op("Relu", [h])
        if name == "softplus":
            return self.op("Softplus", [h])
        if name == "sigmoid":
            return self.op("Sigmoid", [h])
        if name == "silu":
            return self.op("Mul", [h, self.op("Sigmoid", [h])], "silu")
        raise InvalidInputError(f"activation: no ONNX form for {name!r} (have {ACTIVATIONS})")

    def mlp(self, h: str, linears: Sequence, activation: str, hint: str = "mlp", first: str | None = None) -> str:
        """A stack of torch ``nn.Linear`` layers with ``activation`` between them (none after the last).

        ``first``: the pre-activation of the first layer when the caller built it (e.g. from split
        inputs); then ``linears[0]`` is skipped and ``h`` is ignored.
        """
        for i, layer in enumerate(linears):
            if i == 0 and first is not None:
                h = first
            else:
                h = self.dense(h, _numpy(layer.weight), _numpy(layer.bias), f"{hint}_l{i}")
            if i < len(linears) - 1:
                h = self.activation(h, activation)
        return h

    def mean_and_std(self, members: Sequence[str], hint: str = "ensemble", ddof: int = 0) -> tuple[str, str]:
        """Mean and standard deviation (divisor n − ddof) over n member outputs of equal shape."""
        axis0 = self.const(np.array([0]), "axis0", dtype=np.int64)
        stacked = self.op("Concat", [self.op("Unsqueeze", [m, axis0]) for m in members], hint, axis=0)
        mean = self.op("ReduceMean", [stacked], hint + "_mean", axes=[0], keepdims=0)
        dev = self.op("Sub", [stacked, mean])
        var = self.op("ReduceMean", [self.op("Mul", [dev, dev])], hint + "_var", axes=[0], keepdims=0)
        if ddof:
            var = self.op("Mul", [var, self.const(np.array(len(members) / (len(members) - ddof)), "ddof")])
        return mean, self.op("Sqrt", [var], hint + "_std")

    def identity(self, h: str, output: str) -> str:
        """Give tensor ``h`` the graph-output name ``output``."""
        return self.op("Identity", [h], output=output)

    def model(self, name: str, inputs: Mapping[str, Sequence], outputs: Mapping[str, Sequence], metadata: Mapping | None = None):
        """The checked ``onnx.ModelProto``; ``inputs``/``outputs`` map names to shapes (str = dynamic axis).

        ``metadata`` values are stored as JSON strings in ``metadata_props``.
        """
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in inputs.items()],
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in outputs.items()],
            self.initializers,
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sbihep", producer_version=__version__)
        model.ir_version = IR_VERSION
        if metadata:
            helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
        onnx.checker.check_model(model)
        return model


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def run_model(model, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate a ModelProto, serialised bytes or file path with onnxruntime (CPU, one thread)."""
    import onnxruntime as ort

    source = model.SerializeToString() if hasattr(model, "SerializeToString") else (str(model) if isinstance(model, (str, os.PathLike)) else model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {k: np.asarray(v, np.float32) for k, v in feeds.items()})
    return dict(zip(names, values))


def write_model(model, path: str | os.PathLike) -> Path:
    """Write a ModelProto (initializers inline: one self-contained file) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_destination(path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    return path


def read_metadata(path: str | os.PathLike, prefix: str = "sbihep.") -> dict:
    """The JSON-decoded ``metadata_props`` of an ONNX file whose keys start with ``prefix``."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"path: no such ONNX file {str(path)!r}")
    try:
        model = onnx.load(str(path), load_external_data=False)
        return {p.key: json.loads(p.value) for p in model.metadata_props if p.key.startswith(prefix)}
    except (OSError, ValueError) as exc:  # DecodeError and JSONDecodeError are ValueErrors
        raise DataFormatError(f"path: cannot read the metadata of {str(path)!r} ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # protobuf's DecodeError is not a ValueError in every version
        raise DataFormatError(f"path: {str(path)!r} is not an ONNX file ({type(exc).__name__}: {exc})") from exc
