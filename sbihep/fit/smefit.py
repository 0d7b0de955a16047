"""Read datasets in the SMEFiT format into a :class:`~sbihep.fit.gaussian.GaussianTerm`.

A dataset ``NAME`` is two files:

- ``commondata/NAME.yaml``: ``data_central`` (n,), ``statistical_error`` (n,), ``systematics``
  (num_sys, n) in the units of the data, ``sys_type`` (``ADD`` or ``MULT`` per systematic),
  ``sys_names`` (``UNCORR``/``THEORYUNCORR``: added to the diagonal; ``CORR``/``THEORYCORR``:
  fully correlated within the dataset; any other name: fully correlated across the datasets
  that share it), ``units``, ``luminosity``;
- ``theory/NAME.json``: ``best_sm`` (n,), ``theory_cov`` (n, n), and per perturbative order
  (``LO``, ``NLO_QCD``) a dict ``{"SM": …, "Oi": …, "Oi*Oj": …}`` of (n,) predictions.

The covariance follows SMEFiT's construction (its ``loader.py``/``covmat.py`` were read for the
conventions): C = diag(stat² + Σ uncorr²) + S Sᵀ (+ theory_cov).  The t0 prescription replaces
each MULT systematic s (given in absolute units relative to the measured value d) by
s · best_sm / d, so that multiplicative errors scale with the theory rather than with the data
(Ball et al., arXiv:0912.2276); it is the default of :func:`smefit_term` and
:func:`smefit_covariance`, as in SMEFiT's runcards (``use_t0: True``).
The prediction is best_sm + Σ θ_i t_i (+ Σ θ_iθ_j t_ij), with
t_i, t_ij taken from the chosen order; the order's own "SM" entry is not used.

Coefficients are named as SMEFiT names them (``OpWB``, ``OtZ``, ``OpqMi``) or, with
``operator_names="smeftsim"``, as SMEFTsim does (``cHWB``, ``ctW``/``ctB``, ``cHq1``/``cHq3``), through
the linear map of :mod:`sbihep.fit.operator_names` (some SMEFiT coefficients are combinations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from sbihep.errors import DataFormatError, InvalidInputError, UnknownParameterError
from sbihep.fit.gaussian import GaussianTerm
from sbihep.params import ParameterSpace

__all__ = ["SmefitDataset", "read_smefit_dataset", "smefit_term", "smefit_covariance"]

_INTRA_DATASET = ("UNCORR", "CORR", "THEORYUNCORR", "THEORYCORR")
_UNCORRELATED = ("UNCORR", "THEORYUNCORR")


@dataclass(frozen=True)
class SmefitDataset:
    """One SMEFiT dataset as read from disk (n data points, k systematics).

    Attributes:
        name: dataset name.
        data: measured central values, (n,).
        stat: statistical errors, (n,).
        sys: systematic errors in the units of the data, (k, n).
        sys_type: ``"ADD"`` or ``"MULT"`` per systematic, (k,).
        sys_names: correlation name per systematic, (k,).
        best_sm: best SM prediction, (n,).
        theory_cov: theory covariance, (n, n).
        linear: operator → (n,) linear correction at the chosen order.
        quadratic: ``"Oi*Oj"`` → (n,) quadratic correction at the chosen order.
        units: unit of the data (e.g. ``"fb"``).
        order: perturbative order read (``"LO"``, ``"NLO_QCD"``).
    """

    name: str
    data: np.ndarray
    stat: np.ndarray
    sys: np.ndarray
    sys_type: tuple[str, ...]
    sys_names: tuple[str, ...]
    best_sm: np.ndarray
    theory_cov: np.ndarray
    linear: dict
    quadratic: dict
    units: str
    order: str

    @property
    def n_data(self) -> int:
        return self.data.shape[0]

    def systematics(self, t0: bool = False) -> np.ndarray:
        """Systematics (k, n), with MULT ones rescaled to best_sm under the t0 prescription."""
        sys = self.sys.copy()
        if t0:
            for k, kind in enumerate(self.sys_type):
                if kind == "MULT":
                    sys[k] = sys[k] / self.data * self.best_sm
        return sys


def _as_list(value, length: int, field: str, path: Path) -> list:
    """SMEFiT writes a single systematic's name/type as a bare string."""
    values = [value] if isinstance(value, str) else list(value)
    if len(values) != length:
        raise DataFormatError(f"{path}: {field} has {len(values)} entries, expected num_sys = {length}")
    return values


def read_smefit_dataset(
    name: str, commondata_path: str | Path, theory_path: str | Path, *, order: str = "NLO_QCD"
) -> SmefitDataset:
    """Read ``commondata_path/NAME.yaml`` and ``theory_path/NAME.json``.

    Raises:
        DataFormatError: a missing file or key, or arrays of inconsistent lengths.
        InvalidInputError: an ``order`` the theory file does not have.
    """
    import yaml

    data_file = Path(commondata_path) / f"{name}.yaml"
    theory_file = Path(theory_path) / f"{name}.json"
    for f in (data_file, theory_file):
        if not f.is_file():
            raise DataFormatError(f"SMEFiT dataset {name!r}: file {f} does not exist")
    with open(data_file, encoding="utf-8") as fh:
        cd = yaml.safe_load(fh)
    with open(theory_file, encoding="utf-8") as fh:
        th = json.load(fh)
    try:
        data = np.asarray(cd["data_central"], dtype=float).reshape(-1)
        n = data.shape[0]
        stat = np.asarray(cd["statistical_error"], dtype=float).reshape(-1)
        num_sys = int(cd["num_sys"])
        if int(cd["num_data"]) != n or stat.shape != (n,):
            raise DataFormatError(f"{data_file}: num_data, data_central and statistical_error disagree in length")
        if num_sys > 0:
            sys = np.asarray(cd["systematics"], dtype=float).reshape(num_sys, n)
            sys_type = _as_list(cd["sys_type"], num_sys, "sys_type", data_file)
            sys_names = _as_list(cd["sys_names"], num_sys, "sys_names", data_file)
        else:
            sys, sys_type, sys_names = np.zeros((0, n)), [], []
        best_sm = np.asarray(th["best_sm"], dtype=float)
        theory_cov = np.asarray(th.get("theory_cov", np.zeros((n, n))), dtype=float)
    except KeyError as exc:
        raise DataFormatError(f"SMEFiT dataset {name!r}: missing key {exc}") from None
    except ValueError as exc:
        raise DataFormatError(f"SMEFiT dataset {name!r}: {exc}") from None
    bad = sorted(set(sys_type) - {"ADD", "MULT"})
    if bad:
        raise DataFormatError(f"{data_file}: sys_type must be ADD or MULT, got {bad}")
    if np.any(data == 0) and "MULT" in sys_type:
        raise DataFormatError(f"{data_file}: MULT systematics need non-zero data_central")
    if best_sm.shape != (n,) or theory_cov.shape != (n, n):
        raise DataFormatError(f"{theory_file}: best_sm / theory_cov do not match the {n} data points")
    if order not in th:
        orders = [k for k, v in th.items() if isinstance(v, dict)]
        raise InvalidInputError(f"read_smefit_dataset: order {order!r} not in {theory_file}; available: {orders}")
    linear, quadratic = {}, {}
    for key, values in th[order].items():
        if key == "SM":
            continue
        v = np.asarray(values, dtype=float)
        if v.shape != (n,):
            raise DataFormatError(f"{theory_file}: {order}[{key!r}] has shape {v.shape}, expected ({n},)")
        (quadratic if "*" in key else linear)[key] = v
    return SmefitDataset(
        name=name,
        data=data,
        stat=stat,
        sys=sys,
        sys_type=tuple(sys_type),
        sys_names=tuple(sys_names),
        best_sm=best_sm,
        theory_cov=theory_cov,
        linear=linear,
        quadratic=quadratic,
        units=str(cd.get("units", "")),
        order=order,
    )


def smefit_covariance(datasets: Iterable[SmefitDataset], *, t0: bool = True, theory_cov: bool = True) -> np.ndarray:
    """The combined covariance of several datasets, shape (Σn, Σn), in the data's units squared.

    ``t0`` (default True, as SMEFiT's runcards) rescales MULT systematics to the SM prediction; see the
    module docstring."""
    datasets = list(datasets)
    sizes = [d.n_data for d in datasets]
    total = sum(sizes)
    cov = np.zeros((total, total))
    shared: dict[str, np.ndarray] = {}  # cross-dataset systematic name → (total,) column
    start = 0
    for d, n in zip(datasets, sizes):
        block = slice(start, start + n)
        sys = d.systematics(t0=t0)
        diag = d.stat**2
        for s, sys_name in zip(sys, d.sys_names):
            if sys_name in _UNCORRELATED:
                diag = diag + s**2
            elif sys_name in _INTRA_DATASET:
                cov[block, block] += np.outer(s, s)
            else:
                col = shared.setdefault(sys_name, np.zeros(total))
                col[block] += s
        cov[block, block] += np.diag(diag)
        if theory_cov:
            cov[block, block] += d.theory_cov
        start += n
    for col in shared.values():
        cov += np.outer(col, col)
    return cov


def smefit_term(
    names: Iterable[str],
    commondata_path: str | Path,
    theory_path: str | Path,
    parameters: ParameterSpace,
    *,
    order: str = "NLO_QCD",
    eft_order: Literal["linear", "quadratic"] = "linear",
    theory_cov: bool = True,
    t0: bool = True,
    operator_names: Literal["smefit", "smeftsim"] = "smefit",
) -> GaussianTerm:
    """One :class:`GaussianTerm` for the combination of SMEFiT datasets.

    Args:
        names: dataset names.
        commondata_path, theory_path: the two folders.
        parameters: the coefficients to fit with their bounds, named as ``operator_names`` says;
            coefficients of the theory files that ``parameters`` does not reach are held at 0.
        order: perturbative order of the predictions (``"LO"``, ``"NLO_QCD"``).
        eft_order: ``"linear"`` (interference only) or ``"quadratic"``.
        theory_cov: add each dataset's theory covariance.
        t0: use the t0 prescription for MULT systematics (default True, as SMEFiT's runcards do with
            ``use_t0: True``; pass ``t0=False`` for the experimental covariance as published).
        operator_names: ``"smefit"``: ``parameters`` are SMEFiT coefficients as the theory files name
            them (``OpWB``, ``OtZ``, ``OpqMi``; the runcard spelling ``cpWB`` is not accepted here);
            ``"smeftsim"``: SMEFTsim (Warsaw) coefficients (``cHWB``, ``ctW``, ``cHq1``, ``cHq3``),
            translated by the linear map of :mod:`sbihep.fit.operator_names` — e.g. with ``cHq1`` and
            ``cHq3`` the predictions of ``OpqMi`` enter as (cHq1 − cHq3)·t and those of ``O3pq`` as
            cHq3·t.  SMEFTsim coefficients left out are 0.

    Raises:
        InvalidInputError: a bad ``eft_order`` or ``operator_names``, no datasets.
        UnknownParameterError: a parameter no dataset depends on (the message lists the operators the
            datasets have), or a SMEFTsim name the map does not know.
        DataFormatError: see :func:`read_smefit_dataset`.
    """
    if eft_order not in ("linear", "quadratic"):
        raise InvalidInputError(f"smefit_term: eft_order must be 'linear' or 'quadratic', got {eft_order!r}")
    if operator_names not in ("smefit", "smeftsim"):
        raise InvalidInputError(f"smefit_term: operator_names must be 'smefit' or 'smeftsim', got {operator_names!r}")
    datasets = [read_smefit_dataset(n, commondata_path, theory_path, order=order) for n in names]
    if not datasets:
        raise InvalidInputError("smefit_term: names must contain at least one dataset")
    sizes = [d.n_data for d in datasets]
    offsets = np.cumsum([0, *sizes])
    total = int(offsets[-1])

    def stack(attr: str, keep) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for d, lo, hi in zip(datasets, offsets[:-1], offsets[1:]):
            for key, v in getattr(d, attr).items():
                if keep(key):
                    out.setdefault(key, np.zeros(total))[lo:hi] = v
        return out

    if operator_names == "smefit":
        wanted = set(parameters.names)
        linear = stack("linear", lambda k: k in wanted)
        quadratic = {}
        if eft_order == "quadratic":
            quadratic = stack("quadratic", lambda k: set(k.split("*")) <= wanted)
        unused = sorted(wanted - set(linear) - {op for k in quadratic for op in k.split("*")})
    else:
        linear, quadratic, unused = _translated_predictions(stack, parameters.names, eft_order)
    if unused:
        raise UnknownParameterError(_missing_operator_message(unused, datasets, operator_names))
    labels = [f"{d.name}[{i}]" for d in datasets for i in range(d.n_data)]
    return GaussianTerm(
        np.concatenate([d.data for d in datasets]),
        smefit_covariance(datasets, t0=t0, theory_cov=theory_cov),
        np.concatenate([d.best_sm for d in datasets]),
        parameters,
        linear,
        quadratic,
        labels=labels,
    )


def _translated_predictions(stack, smeftsim: tuple[str, ...], eft_order: str):
    """Linear and quadratic predictions in SMEFTsim coefficients: t_k = Σ_i M_ik t_i and, per pair,
    Σ_{i≤j} t_ij (M_ik M_jl + M_il M_jk) (k ≠ l) or Σ_{i≤j} t_ij M_ik M_jk (k = l)."""
    from sbihep.fit.operator_names import smefit_to_smeftsim_matrix

    smefit_linear = stack("linear", lambda k: True)
    smefit_ops = sorted(smefit_linear)
    m = smefit_to_smeftsim_matrix(smefit_ops, smeftsim)  # raises for SMEFTsim names the map lacks
    rows = {op: m[i] for i, op in enumerate(smefit_ops) if np.any(m[i])}
    linear: dict[str, np.ndarray] = {}
    for op, row in rows.items():
        for k, coefficient in zip(smeftsim, row):
            if coefficient:
                linear[k] = linear.get(k, 0.0) + coefficient * smefit_linear[op]
    quadratic: dict[tuple[str, str], np.ndarray] = {}
    if eft_order == "quadratic":
        def reached(key):
            a, b = key.split("*")
            return a in rows and b in rows
        for key, t in stack("quadratic", reached).items():
            a, b = key.split("*")
            for ka, ca in zip(smeftsim, rows[a]):
                for kb, cb in zip(smeftsim, rows[b]):
                    if ca and cb:
                        pair = (ka, kb) if smeftsim.index(ka) <= smeftsim.index(kb) else (kb, ka)
                        quadratic[pair] = quadratic.get(pair, 0.0) + ca * cb * t
    reached_names = set(linear) | {k for pair in quadratic for k in pair}
    unused = sorted(set(smeftsim) - reached_names)
    return linear, quadratic, unused


def _missing_operator_message(unused, datasets, operator_names: str) -> str:
    per_dataset = "; ".join(f"{d.name} ({d.order}): {', '.join(sorted(d.linear))}" for d in datasets)
    message = (f"smefit_term: parameters {unused} enter no prediction of datasets {[d.name for d in datasets]} "
               f"(operator_names={operator_names!r}). The datasets have the operators: {per_dataset}")
    if operator_names == "smefit":
        from sbihep.fit.operator_names import SMEFIT_TO_SMEFTSIM

        hints = [f"{name} ↔ {t.smefit}" for name in unused for t in SMEFIT_TO_SMEFTSIM.values() if name in t.smeftsim]
        if hints:
            message += f". {unused} look like SMEFTsim names: pass operator_names='smeftsim' ({', '.join(hints)})"
    return message
