"""Likelihood surrogates: pyhf workspace → profiled −2ΔlnL network → self-contained ONNX file.

Modules (one concept each):

* :mod:`~sbihep.surrogates.labels` — training labels from MINUIT fits with convergence checks
* :mod:`~sbihep.surrogates.network` — MLP ensemble with standardisation, trainer (torch)
* :mod:`~sbihep.surrogates.onnx` — export with metadata and test vectors (torch, onnx)
* :mod:`~sbihep.surrogates.loader` — :class:`SurrogateLikelihood`, numpy + onnxruntime only
* :mod:`~sbihep.surrogates.asymptotics` — CLs from q̃_μ (numpy only)
* :mod:`~sbihep.surrogates.likelihood` — ``train_surrogate``: the whole chain in one call
* :mod:`~sbihep.surrogates.cli` — ``sbihep surrogate train|check``
* :mod:`~sbihep.surrogates.matrix_element` — |M|² surrogates and exactly unbiased two-stage unweighting
* :mod:`~sbihep.surrogates.spey` — a spey backend (``spey.get_backend("sbihep.onnx")``) for ONNX surrogates

Names are imported lazily so ``from sbihep.surrogates import SurrogateLikelihood`` pulls in neither
torch nor pyhf.
"""

from __future__ import annotations

import importlib

__all__ = [
    "SurrogateLikelihood",
    "OutsideTrainingBoundsWarning",
    "read_metadata",
    "load_problem",
    "generate_labels",
    "LabelSet",
    "SurrogateProblem",
    "MLPConfig",
    "SurrogateEnsemble",
    "train_ensemble",
    "export_onnx",
    "train_surrogate",
    "validate",
    "IntegrandProblem",
    "MESurrogate",
    "train_me_surrogate",
    "unweight_two_stage",
    "unweight_direct",
    "SbihepOnnxBackend",
    "weights_sha256",
    "validation_report",
    "anchor_inputs",
    "check_grid",
    "default_yield_box",
]

_WHERE = {
    "SurrogateLikelihood": "loader", "OutsideTrainingBoundsWarning": "loader", "read_metadata": "loader",
    "load_problem": "labels", "generate_labels": "labels", "LabelSet": "labels", "SurrogateProblem": "labels",
    "MLPConfig": "network", "SurrogateEnsemble": "network", "train_ensemble": "network",
    "export_onnx": "onnx", "train_surrogate": "likelihood", "validate": "likelihood",
    "IntegrandProblem": "matrix_element", "MESurrogate": "matrix_element", "train_me_surrogate": "matrix_element",
    "unweight_two_stage": "matrix_element", "unweight_direct": "matrix_element", "SbihepOnnxBackend": "spey",
    "weights_sha256": "onnx", "validation_report": "likelihood", "anchor_inputs": "labels", "check_grid": "labels",
    "default_yield_box": "labels",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"sbihep.surrogates.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'sbihep.surrogates' has no attribute {name!r}")
