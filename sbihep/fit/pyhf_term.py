"""A binned likelihood term from a pyhf workspace (HistFactory JSON), optionally patched.

−ln L(θ) = −pyhf.Model.logpdf(θ, data): the full HistFactory likelihood, main (Poisson) and
auxiliary (constraint) terms, with pyhf's normalisation constants kept.  The constraints of the
pyhf modifiers live inside this term, so its parameters are declared without a
:class:`~sbihep.params.GaussianConstraint`.

Parameter names come from the pyhf model: a scalar parameter keeps its name, the components of a
vector parameter (e.g. ``staterror_SR`` with 3 bins) become ``staterror_SR_0`` … ``_2``; characters
that are not valid in a Python identifier become ``_``.  The POI is declared ``kind="poi"``,
everything else ``"nuisance"``; bounds are pyhf's suggested bounds; the measurement's fixed
parameters are offered as :attr:`PyhfTerm.fixed` and pyhf's suggested initial values as
:attr:`PyhfTerm.init`.  The SM value of the POI (a signal strength) is 0, the no-signal hypothesis.

Requires pyhf's numpy backend (the default).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sbihep.errors import DataFormatError, InvalidInputError
from sbihep.params import Parameter, ParameterSpace

__all__ = ["PyhfTerm"]


def _load_json(obj: Any, argument: str) -> Any:
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.is_file():
            raise InvalidInputError(f"PyhfTerm: {argument} file {path} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"PyhfTerm: {argument} file {path} is not valid JSON: {exc}") from None
    return obj


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"p_{ident}"


class PyhfTerm:
    """A pyhf workspace as a likelihood term.

    Args:
        workspace: a workspace spec (dict), a path to its JSON file, or a ``pyhf.Workspace``.
        patch: the name of a patch in ``patchset``, or a JSON patch (list of operations) to apply.
        patchset: a pyhf PatchSet (dict, path or ``pyhf.PatchSet``), needed when ``patch`` is a name.
        measurement: name of the measurement (default: the workspace's first).

    Raises:
        DataFormatError: a workspace or patchset that fails pyhf's schema, or a model pyhf cannot build.
        InvalidInputError: a patch name not in the patchset, or pyhf not on its numpy backend.
    """

    def __init__(self, workspace: Any, patch: Any = None, *, patchset: Any = None, measurement: str | None = None):
        import pyhf

        if pyhf.tensorlib.name != "numpy":
            raise InvalidInputError(f"PyhfTerm needs pyhf's numpy backend; the current one is {pyhf.tensorlib.name!r}")
        spec = _load_json(workspace, "workspace")
        if isinstance(spec, pyhf.Workspace):
            spec = dict(spec)
        if not isinstance(spec, Mapping):
            raise InvalidInputError(f"PyhfTerm: workspace must be a spec dict, a JSON path or a pyhf.Workspace, got {type(spec).__name__}")
        spec = self._patched(spec, patch, patchset)
        try:
            ws = pyhf.Workspace(spec)
        except pyhf.exceptions.InvalidSpecification as exc:
            raise DataFormatError(f"PyhfTerm: workspace fails pyhf's schema: {exc}") from None
        try:
            model = ws.model(measurement_name=measurement)
            data = ws.data(model)
        except pyhf.exceptions.InvalidMeasurement as exc:
            raise InvalidInputError(f"PyhfTerm: measurement {measurement!r}: {exc}") from None
        except (pyhf.exceptions.InvalidModel, pyhf.exceptions.InvalidSpecification, KeyError) as exc:
            raise DataFormatError(f"PyhfTerm: pyhf cannot build a model from the workspace: {exc}") from None
        self._setup(model, data)

    @staticmethod
    def _patched(spec: Mapping, patch: Any, patchset: Any) -> dict:
        import jsonpatch
        import pyhf

        if patch is None:
            if patchset is not None:
                raise InvalidInputError("PyhfTerm: patchset given without a patch name")
            return dict(spec)
        if isinstance(patch, str):
            if patchset is None:
                raise InvalidInputError(f"PyhfTerm: patch {patch!r} is a name, so a patchset is needed")
            ps = _load_json(patchset, "patchset")
            if not isinstance(ps, pyhf.PatchSet):
                try:
                    ps = pyhf.PatchSet(ps)
                except pyhf.exceptions.InvalidSpecification as exc:
                    raise DataFormatError(f"PyhfTerm: patchset fails pyhf's schema: {exc}") from None
            names = [p.name for p in ps.patches]
            if patch not in names:
                raise InvalidInputError(f"PyhfTerm: patch {patch!r} not in the patchset ({len(names)} patches, e.g. {names[:3]})")
            return dict(ps[patch].apply(spec))
        try:
            return jsonpatch.apply_patch(dict(spec), patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
            raise DataFormatError(f"PyhfTerm: patch cannot be applied: {exc}") from None

    @classmethod
    def from_model(cls, model: Any, data: Any) -> "PyhfTerm":
        """Wrap a built ``pyhf.Model`` and its data (main + auxiliary, shape (n_main + n_aux,))."""
        term = cls.__new__(cls)
        term._setup(model, data)
        return term

    def _setup(self, model: Any, data: Any) -> None:
        config = model.config
        data = np.asarray(data, dtype=np.float64)
        expected = config.nmaindata + config.nauxdata
        if data.shape != (expected,):
            raise InvalidInputError(f"PyhfTerm: data has shape {data.shape}, expected ({expected},) (main + aux)")
        bounds, init, fixed = config.suggested_bounds(), config.suggested_init(), config.suggested_fixed()
        names: list[str] = [""] * config.npars
        pyhf_names: list[str] = [""] * config.npars
        for pname in config.par_order:
            sl = config.par_slice(pname)
            n = sl.stop - sl.start
            for k, idx in enumerate(range(sl.start, sl.stop)):
                names[idx] = _identifier(pname if n == 1 else f"{pname}_{k}")
                pyhf_names[idx] = pname if n == 1 else f"{pname}[{k}]"
        if len(set(names)) != len(names):
            raise DataFormatError("PyhfTerm: pyhf parameter names collide after conversion to identifiers")
        params = []
        for idx, name in enumerate(names):
            low, high = (float(b) for b in bounds[idx])
            is_poi = config.poi_index is not None and idx == config.poi_index
            sm = 0.0 if is_poi and low <= 0.0 <= high else min(max(float(init[idx]), low), high)
            if not low < high:
                raise DataFormatError(f"PyhfTerm: parameter {pyhf_names[idx]!r} has empty bounds {bounds[idx]}")
            params.append(
                Parameter(name, sm_value=sm, bounds=(low, high), kind="poi" if is_poi else "nuisance",
                          description=f"pyhf parameter {pyhf_names[idx]}")
            )
        self.model = model
        self.data = data
        self.parameters = ParameterSpace(params)
        self.pyhf_names: dict[str, str] = dict(zip(names, pyhf_names))
        self.init: dict[str, float] = {n: float(v) for n, v in zip(names, init)}
        self.fixed: dict[str, float] = {n: float(v) for n, v, f in zip(names, init, fixed) if f}
        self.poi: str | None = names[config.poi_index] if config.poi_index is not None else None

    def _vector(self, theta: Mapping[str, float]) -> np.ndarray:
        return np.fromiter((theta[n] for n in self.parameters.names), dtype=np.float64, count=len(self.parameters))

    def nll(self, theta: Mapping[str, float]) -> float:
        """−ln L = −logpdf (main Poisson + auxiliary constraint terms, constants kept)."""
        return -float(self.model.logpdf(self._vector(theta), self.data)[0])

    def expected_data(self, theta: Mapping[str, float], include_auxdata: bool = True) -> np.ndarray:
        """Expected main (and auxiliary) data at θ, shape (n_main [+ n_aux],)."""
        return np.asarray(self.model.expected_data(self._vector(theta), include_auxdata=include_auxdata))

    def asimov(self, theta: Mapping[str, float]) -> "PyhfTerm":
        """The Asimov data set at θ: main data and auxiliary data at their expectation."""
        return PyhfTerm.from_model(self.model, self.expected_data(theta))

    def __repr__(self) -> str:
        return f"PyhfTerm(poi={self.poi!r}, {len(self.parameters)} parameters, {self.model.config.nmaindata} bins)"
