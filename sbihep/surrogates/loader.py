"""Load an sbihep ONNX likelihood surrogate with numpy + onnxruntime only (no torch, no pyhf).

>>> s = SurrogateLikelihood("model.onnx")            # verifies metadata and test vectors  # doctest: +SKIP
>>> s.evaluate([[1.0]])                              # (t, t_std), each (1, 2)            # doctest: +SKIP
>>> s.upper_limit()                                  # 95% CLs upper limit on μ           # doctest: +SKIP

What the outputs mean is in the file's ``sbihep.description`` and ``sbihep.outputs``: −2ΔlnL for
the observed data, the post-fit Asimov (μ = 0) data and, in files written since sbihep issue 24, the
pre-fit Asimov data (``expected="apriori"`` in :meth:`SurrogateLikelihood.cls` and
:meth:`SurrogateLikelihood.upper_limit`: the a priori median expected CLs and limit).
CLs uses the asymptotic q̃_μ formulae (:mod:`sbihep.surrogates.asymptotics`) along the ray x(μ) = μ · direction (direction = 1 for a signal-strength surrogate, the signal
yields per bin for a yields surrogate).

Checks on load: the metadata fields the loader uses are validated one by one (types, finite
bounds with low < high, ``mode`` against the number of inputs, the graph's input width), then the
``sbihep.integrity`` record (written by :func:`sbihep.surrogates.onnx.export_onnx`) is verified: a
sha256 of every metadata field (an edit names the field, e.g. ``inputs`` for widened bounds) and a
sha256 of the whole file with the hash itself zeroed (any other change of bytes, e.g. the graph).
Files written before the record existed load with an :class:`~sbihep.errors.IntegrityWarning`.
Inputs must be finite; μ, levels and tolerances are checked before any evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from sbihep.errors import (
    DataFormatError,
    ExtrapolationWarning,
    IntegrityError,
    InvalidInputError,
    OutOfBoundsError,
    ShapeError,
    IntegrityWarning,
)
from sbihep.surrogates.asymptotics import cls_from_q, qtilde_from_t

__all__ = ["SurrogateLikelihood", "OutsideTrainingBoundsWarning", "read_metadata", "INTEGRITY_KEY", "metadata_digest"]

FORMAT = "sbihep-likelihood-surrogate/1"  # kept equal to sbihep.surrogates.onnx.FORMAT (no torch import here)


INTEGRITY_KEY = "sbihep.integrity"
_FILE_HASH_FIELD = b'"file_sha256": "'
_ZEROS = "0" * 64


class OutsideTrainingBoundsWarning(ExtrapolationWarning):
    """An input lies outside the box the surrogate was trained on."""


def metadata_digest(value: str) -> str:
    """sha256 (16 hex) of one metadata value as stored (its JSON text)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def _file_digest(blob: bytes, recorded: str) -> str:
    """sha256 of the file bytes with the recorded file hash replaced by 64 zeros."""
    marker = _FILE_HASH_FIELD + recorded.encode("ascii")
    if blob.count(marker) != 1:
        raise IntegrityError("path: the file's integrity record is missing from its bytes or appears twice")
    return hashlib.sha256(blob.replace(marker, _FILE_HASH_FIELD + _ZEROS.encode("ascii"))).hexdigest()


def _verify_fields(path: Path, raw: dict[str, str]) -> str | None:
    """Check the metadata field hashes; returns the recorded file hash (None for a file without a record)."""
    if INTEGRITY_KEY not in raw:
        warnings.warn(f"path: {path.name} carries no sbihep.integrity record (written by an older sbihep); its metadata "
                      "(bounds, mode, …) cannot be checked against edits — only the test vectors are", IntegrityWarning, stacklevel=4)
        return None
    try:
        record = json.loads(raw[INTEGRITY_KEY])
        fields, recorded = dict(record["fields_sha256"]), str(record["file_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"path: the sbihep.integrity record of {path.name} is damaged ({exc})") from exc
    now = {k.removeprefix("sbihep."): metadata_digest(v) for k, v in raw.items() if k.startswith("sbihep.") and k != INTEGRITY_KEY}
    changed = sorted(k for k in set(fields) | set(now) if fields.get(k) != now.get(k))
    if changed:
        raise IntegrityError(f"path: metadata field(s) {changed} of {path.name} were edited after export (hash mismatch); "
                             "the file no longer describes what the network was trained on")
    return recorded


def _verify_file(path: Path, recorded: str) -> None:
    if _file_digest(path.read_bytes(), recorded) != recorded:
        raise IntegrityError(f"path: {path.name} was modified after export (file hash mismatch: the graph, its weights "
                             "or other bytes changed)")


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"path: metadata {where} must be a finite number, got {value!r}")
    return float(value)


def _check_metadata(meta: dict) -> None:
    """The fields the loader and the spey backend use, one by one (DataFormatError naming the field)."""
    for key in ("mode", "inputs", "nll"):
        if key not in meta:
            raise DataFormatError(f"path: metadata field sbihep.{key} is missing")
    if meta["mode"] not in ("mu", "yields"):
        raise DataFormatError(f"path: metadata sbihep.mode must be 'mu' or 'yields', got {meta['mode']!r}")
    inputs = meta["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise DataFormatError(f"path: metadata sbihep.inputs must be a non-empty list, got {inputs!r}")
    for k, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise DataFormatError(f"path: metadata sbihep.inputs[{k}] must be an object, got {item!r}")
        for key in ("name", "unit", "train_low", "train_high"):
            if key not in item:
                raise DataFormatError(f"path: metadata sbihep.inputs[{k}] lacks {key!r}")
        if not isinstance(item["name"], str) or not isinstance(item["unit"], str):
            raise DataFormatError(f"path: metadata sbihep.inputs[{k}] name and unit must be strings")
        lo, hi = _number(item["train_low"], f"sbihep.inputs[{k}].train_low"), _number(item["train_high"], f"sbihep.inputs[{k}].train_high")
        if not lo < hi:
            raise DataFormatError(f"path: metadata sbihep.inputs[{k}] needs train_low < train_high, got {lo} and {hi}")
    ref = meta["nll"].get("reference_nll") if isinstance(meta["nll"], dict) else None
    if not isinstance(ref, dict) or not all(k in ref for k in ("observed", "asimov")):
        raise DataFormatError("path: metadata sbihep.nll.reference_nll must hold 'observed' and 'asimov'")
    for k in ("observed", "asimov"):
        _number(ref[k], f"sbihep.nll.reference_nll.{k}")


def read_metadata(session_or_path) -> dict:
    """The decoded ``sbihep.*`` metadata of an ONNX file or an onnxruntime session.

    Raises:
        DataFormatError: no sbihep metadata, or a value that is not JSON.
    """
    import onnxruntime as ort

    sess = session_or_path
    if not isinstance(sess, ort.InferenceSession):
        sess = ort.InferenceSession(str(session_or_path), providers=["CPUExecutionProvider"])
    raw = sess.get_modelmeta().custom_metadata_map
    if "sbihep.format" not in raw:
        raise DataFormatError("path: the ONNX file carries no sbihep metadata (sbihep.format missing); "
                              "it is not an sbihep likelihood surrogate")
    try:
        return {k.removeprefix("sbihep."): json.loads(v) for k, v in raw.items() if k.startswith("sbihep.")}
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"path: sbihep metadata is not valid JSON ({exc})") from exc


class SurrogateLikelihood:
    """An ONNX −2ΔlnL surrogate, checked on load.

    Args:
        path: the ``.onnx`` file.
        out_of_bounds: ``"warn"`` (default), ``"raise"`` (:class:`OutOfBoundsError`) or ``"ignore"``
            for inputs outside the training box.
        verify: check the integrity record and run the stored test vectors (refuse the file when
            either fails); False skips both (the metadata's structure is still checked).
    Raises:
        DataFormatError: missing or malformed metadata (names the field), wrong format version, a
            graph whose input count differs from the metadata, or failing test vectors (e.g. edited weights).
        IntegrityError: a metadata field (named) or the file's bytes changed after export.
    """

    def __init__(self, path: str | Path, *, out_of_bounds: Literal["warn", "raise", "ignore"] = "warn",
                 verify: bool = True):
        import onnxruntime as ort

        if out_of_bounds not in ("warn", "raise", "ignore"):
            raise InvalidInputError(f"out_of_bounds: must be 'warn', 'raise' or 'ignore', got {out_of_bounds!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"path: no such file {str(self.path)!r}")
        try:
            self._sess = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataFormatError(f"path: {self.path.name} is not a loadable ONNX model ({exc})") from exc
        self.metadata = read_metadata(self._sess)
        if self.metadata.get("format") != FORMAT:
            raise DataFormatError(f"path: unsupported surrogate format {self.metadata.get('format')!r}, expected {FORMAT!r}")
        _check_metadata(self.metadata)
        self.out_of_bounds = out_of_bounds
        inputs = self.metadata["inputs"]
        self.input_names = [i["name"] for i in inputs]
        self.input_units = [i["unit"] for i in inputs]
        self.bounds = np.array([[i["train_low"], i["train_high"]] for i in inputs], float)
        self.mode = self.metadata["mode"]
        outputs = self.metadata.get("outputs", [])
        self.output_names = [o.get("name") for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []
        graph_inputs = self._sess.get_inputs()
        shape = graph_inputs[0].shape if len(graph_inputs) == 1 else None
        if shape is None or len(shape) != 2 or shape[1] != len(inputs):
            raise DataFormatError(
                f"path: the graph takes input shape {shape} but the metadata declares {len(inputs)} inputs "
                f"({self.input_names}); file and metadata do not belong together")
        if self.mode == "mu" and self.n_inputs != 1:
            raise DataFormatError(f"path: metadata sbihep.mode is 'mu' (one signal strength) but sbihep.inputs has {self.n_inputs} entries")
        if verify:
            recorded = _verify_fields(self.path, dict(self._sess.get_modelmeta().custom_metadata_map))
            self.verify()
            if recorded is not None:
                _verify_file(self.path, recorded)

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    def verify(self) -> None:
        """Re-run the stored test vectors; raise :class:`DataFormatError` when any differs."""
        tv = self.metadata.get("test_vectors")
        if not tv or not tv.get("inputs"):
            raise DataFormatError("path: the file has no test vectors to verify")
        t, s = self._raw(np.array(tv["inputs"], np.float32))
        for name, got, want in (("t", t, tv["t"]), ("t_std", s, tv["t_std"])):
            want = np.array(want)
            if got.shape != want.shape or not np.allclose(got, want, rtol=tv["rtol"], atol=tv["atol"]):
                worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
                raise DataFormatError(
                    f"path: {self.path.name} fails its test vectors ({name} differs by up to {worst:.3g}); "
                    "the weights were edited or the file is corrupted")

    def _raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, s = self._sess.run(None, {"x": np.ascontiguousarray(x, np.float32)})
        return t.astype(float), s.astype(float)

    def _check_bounds(self, x: np.ndarray) -> None:
        if self.out_of_bounds == "ignore":
            return
        outside = np.any((x < self.bounds[:, 0]) | (x > self.bounds[:, 1]), axis=1)
        if outside.any():
            msg = (f"x: {int(outside.sum())} of {len(x)} points lie outside the training bounds "
                   f"{dict(zip(self.input_names, self.bounds.tolist()))}")
            if self.out_of_bounds == "raise":
                raise OutOfBoundsError(msg)
            warnings.warn(msg, OutsideTrainingBoundsWarning, stacklevel=3)

    def evaluate(self, x: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: (B, d) or (d,) inputs → (t, t_std), each (B, k): −2ΔlnL and uncertainty per output
        (``output_names``: observed, post-fit Asimov and, when present, pre-fit Asimov)."""
        try:
            x = np.asarray(x, float)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"x: need numbers of shape (B, {self.n_inputs}), got {type(x).__name__} ({exc})") from exc
        if x.ndim == 1:
            x = x.reshape(1, -1) if self.n_inputs > 1 or x.size == 1 else x.reshape(-1, 1)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ShapeError(f"x: need shape (B, {self.n_inputs}) in the order {self.input_names}, got {x.shape}")
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise InvalidInputError(f"x: {int(bad.sum())} of {len(x)} points contain NaN or infinite values (first at row {int(np.argmax(bad))})")
        self._check_bounds(x)
        return self._raw(x)

    # --- statistics along x(μ) = μ · direction -------------------------------------------------

    def _direction(self, direction) -> np.ndarray:
        if direction is None:
            if self.mode != "mu":
                raise InvalidInputError("direction: a yields surrogate needs the signal yields per bin")
            return np.ones(self.n_inputs)
        try:
            d = np.asarray(direction, float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"direction: need {self.n_inputs} non-negative numbers ({exc})") from exc
        if d.shape != (self.n_inputs,) or not np.all(np.isfinite(d)) or not np.any(d > 0) or np.any(d < 0):
            raise InvalidInputError(f"direction: need {self.n_inputs} non-negative values, not all 0, got {d}")
        return d

    def mu_range(self, direction=None) -> tuple[float, float]:
        """The μ interval (μ ≥ 0) along which μ · direction stays inside the training box."""
        d = self._direction(direction)
        pos = d > 0
        hi = float(np.min(self.bounds[pos, 1] / d[pos]))
        lo = float(max(0.0, np.max(np.where(pos, self.bounds[:, 0] / np.where(pos, d, 1), 0.0))))
        return lo, hi

    @staticmethod
    def _mu(mu) -> np.ndarray:
        try:
            mu = np.atleast_1d(np.asarray(mu, float))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"mu: need numbers, got {mu!r}") from exc
        if mu.ndim != 1:
            raise ShapeError(f"mu: need a number or a 1-d array, got shape {mu.shape}")
        if not np.all(np.isfinite(mu)):
            raise InvalidInputError(f"mu: must be finite, got {mu[~np.isfinite(mu)][:3].tolist()}")
        return mu

    def _columns(self, expected: str) -> tuple[int, int]:
        """(data column, Asimov column) for ``expected`` ("observed" or "apriori")."""
        if expected == "observed":
            return 0, 1
        if expected == "apriori":
            if "t_asimov_prefit" not in self.output_names:
                raise InvalidInputError(f"expected: 'apriori' needs the pre-fit Asimov output t_asimov_prefit, which "
                                        f"{self.path.name} lacks (outputs {self.output_names})")
            j = self.output_names.index("t_asimov_prefit")
            return j, j
        raise InvalidInputError(f"expected: must be 'observed' or 'apriori', got {expected!r}")

    def profile(self, mu, direction=None) -> np.ndarray:
        """(n,) μ values → (n, k) [t_observed, t_asimov, …] at x = μ · direction."""
        mu = self._mu(mu)
        return self.evaluate(mu[:, None] * self._direction(direction))[0]

    def _minimum(self, column: int, direction, n_grid: int = 2001) -> tuple[float, float]:
        lo, hi = self.mu_range(direction)
        grid = np.linspace(lo, hi, n_grid)
        t = self.profile(grid, direction)[:, column]
        i = int(np.argmin(t))
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]
        fine = np.linspace(a, b, 201)
        tf = self.profile(fine, direction)[:, column]
        j = int(np.argmin(tf))
        return float(fine[j]), float(tf[j])

    def mu_hat(self, direction=None) -> float:
        """Best-fit μ ≥ 0 on the observed data from the surrogate (grid + refinement)."""
        return self._minimum(0, direction)[0]

    def cls(self, mu, direction=None, *, expected: str = "observed") -> dict[str, np.ndarray]:
        """Asymptotic CL_s+b, CL_b, CL_s (q̃_μ) at the given μ values, each (n,).

        ``expected="apriori"`` uses the pre-fit Asimov data as data and as Asimov data: the a
        priori median expected values.

        Raises:
            InvalidInputError: a μ that is NaN or infinite (CL_s would read 1.0); ``apriori`` on a
                file without the pre-fit output.
        """
        mu = self._mu(mu)
        self._direction(direction)
        c_obs, c_asimov = self._columns(expected)
        mu_hat, t_min = self._minimum(c_obs, direction)
        _, ta_min = self._minimum(c_asimov, direction)
        t = self.profile(mu, direction)
        return cls_from_q(qtilde_from_t(t[:, c_obs], mu, t_min, mu_hat), np.clip(t[:, c_asimov] - ta_min, 0.0, None))

    def upper_limit(self, level: float = 0.05, direction=None, *, rtol: float = 1e-4, expected: str = "observed") -> float:
        """The μ where CL_s = ``level`` (first crossing on a grid, then bisection).

        Raises:
            OutOfBoundsError: CL_s stays above ``level`` within the training range.
            InvalidInputError: ``level`` outside (0, 1) or ``rtol`` not a small positive number.
        """
        if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 < float(level) < 1.0:
            raise InvalidInputError(f"level: the CLs level must lie in (0, 1) (0.05 for 95% CL), got {level!r}")
        if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating)) or not 0.0 < float(rtol) < 1.0:
            raise InvalidInputError(f"rtol: must lie in (0, 1), got {rtol!r}")
        level = float(level)
        self._columns(expected)
        lo, hi = self.mu_range(direction)
        grid = np.linspace(lo, hi, 1001)
        cls = self.cls(grid, direction, expected=expected)["CLs"]
        above = np.nonzero(cls < level)[0]
        if len(above) == 0:
            raise OutOfBoundsError(f"level: CLs stays above {level} for mu in [{lo}, {hi}] (the training range)")
        i = int(above[0])
        if i == 0:
            return float(grid[0])
        a, b = grid[i - 1], grid[i]
        while b - a > rtol * max(abs(b), 1e-12):
            m = 0.5 * (a + b)
            if self.cls([m], direction, expected=expected)["CLs"][0] < level:
                b = m
            else:
                a = m
        return float(0.5 * (a + b))
