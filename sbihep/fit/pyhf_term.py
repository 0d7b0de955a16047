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

Pseudo-data: :meth:`PyhfTerm.asimov` replaces main and auxiliary data by their expectation at θ
(``pyhf.Model.expected_data``, the Asimov data set of pyhf's ``AsymptoticCalculator``);
:meth:`PyhfTerm.toy` draws them from pyhf's own pdf at θ — main data Poisson around
``expected_actualdata(θ)``, each auxiliary measurement from its constraint: Normal(θ_i, σ_i) for
Gaussian-constrained modifiers (normsys, histosys, lumi, staterror; σ_i = 1, the lumi
uncertainty or the staterror's relative uncertainty), Poisson(τ_i θ_i) for Poisson-constrained ones
(shapesys, τ_i the effective count) — as ``model.make_pdf(θ).sample()`` does, but from the
Generator given instead of numpy's global random state.

Requires pyhf's numpy backend (the default).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sbihep._toml import did_you_mean
from sbihep.errors import DataFormatError, InvalidInputError, UnknownParameterError
from sbihep.params import Parameter, ParameterSpace

__all__ = ["PyhfTerm", "PYHF_MIN_VERSION"]

#: the oldest pyhf whose model internals (constraint layout, suggested_fixed) PyhfTerm is written against
PYHF_MIN_VERSION = (0, 7, 6)


def _check_pyhf_version(version: str) -> None:
    """Raise InvalidInputError for a pyhf older than :data:`PYHF_MIN_VERSION` or a version string it cannot read."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    wanted = ".".join(map(str, PYHF_MIN_VERSION))
    if match is None:
        raise InvalidInputError(f"PyhfTerm: cannot read the pyhf version {version!r}; sbihep needs pyhf ≥ {wanted}")
    found = tuple(int(g or 0) for g in match.groups())
    if found < PYHF_MIN_VERSION:
        raise InvalidInputError(f"PyhfTerm: pyhf {version} is not supported; sbihep needs pyhf ≥ {wanted} (pip install -U pyhf)")


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
        InvalidInputError: a patch name not in the patchset, a measurement the workspace does not have,
            observed data that are not finite or negative (naming the channel and bin), pyhf not on its
            numpy backend, or a pyhf older than :data:`PYHF_MIN_VERSION`.
    """

    def __init__(self, workspace: Any, patch: Any = None, *, patchset: Any = None, measurement: str | None = None):
        import pyhf

        _check_pyhf_version(getattr(pyhf, "__version__", "unknown"))
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
        missing = sorted({c["name"] for c in spec.get("channels", [])} - {o.get("name") for o in spec.get("observations", [])})
        if missing:
            raise DataFormatError(f"PyhfTerm: the workspace has no observations for channel(s) {missing}; "
                                  f"observations are given for {sorted(o.get('name') for o in spec.get('observations', []))}")
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
        self._check_data(config, data)
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

    @staticmethod
    def _check_data(config: Any, data: np.ndarray) -> None:
        """Main data must be finite counts ≥ 0 (named by channel and bin); auxiliary data finite."""
        offset = 0
        for channel in config.channels:
            n = int(config.channel_nbins[channel])
            counts = data[offset:offset + n]
            bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0))
            if bad.size:
                k = int(bad[0])
                raise InvalidInputError(f"PyhfTerm: observed data of channel {channel!r} bin {k} is {counts[k]!r}; "
                                        f"observed counts must be finite and ≥ 0 ({bad.size} bad bin(s) in this channel)")
            offset += n
        aux = data[config.nmaindata:]
        bad = np.flatnonzero(~np.isfinite(aux))
        if bad.size:
            raise InvalidInputError(f"PyhfTerm: auxiliary data entry {int(bad[0])} is {aux[bad[0]]!r}; auxiliary data must be finite")

    def _vector(self, theta: Mapping[str, float]) -> np.ndarray:
        # on every −ln L evaluation of a fit: one pass over the names; the diagnosis only on failure
        if not isinstance(theta, Mapping):
            raise InvalidInputError(f"PyhfTerm: theta must be a mapping of parameter name to value, got {type(theta).__name__}")
        names = self.parameters.names
        try:
            out = np.fromiter((theta[n] for n in names), dtype=np.float64, count=len(names))
        except KeyError:
            missing = [n for n in names if n not in theta]
            unknown = [n for n in theta if n not in self.parameters]
            hint = f"; unknown {unknown[:3]}{did_you_mean(unknown[0], names)}" if unknown else ""
            raise UnknownParameterError(f"PyhfTerm: theta must give every parameter of the model by name; missing {missing[:5]}"
                                        f"{' …' if len(missing) > 5 else ''}{hint}") from None
        except (TypeError, ValueError):
            raise InvalidInputError(f"PyhfTerm: theta values must be numbers, got {dict(theta)!r}") from None
        if not np.isfinite(out).all():
            bad = [n for n, v in zip(names, out) if not np.isfinite(v)]
            raise InvalidInputError(f"PyhfTerm: theta[{bad[0]!r}] must be finite, got {theta[bad[0]]!r}")
        return out

    def nll(self, theta: Mapping[str, float]) -> float:
        """−ln L = −logpdf (main Poisson + auxiliary constraint terms, constants kept)."""
        return -float(self.model.logpdf(self._vector(theta), self.data)[0])

    def expected_data(self, theta: Mapping[str, float], include_auxdata: bool = True) -> np.ndarray:
        """Expected main (and auxiliary) data at θ, shape (n_main [+ n_aux],)."""
        return np.asarray(self.model.expected_data(self._vector(theta), include_auxdata=include_auxdata))

    def asimov(self, theta: Mapping[str, float]) -> "PyhfTerm":
        """The Asimov data set at θ: main data and auxiliary data at their expectation."""
        return PyhfTerm.from_model(self.model, self.expected_data(theta))

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "PyhfTerm":
        """A pseudo-data set drawn at θ from pyhf's pdf: main data ~ Poisson(expected_actualdata(θ)),
        auxiliary data ~ the constraint pdfs at θ (Normal for Gaussian constraints, Poisson for
        Poisson ones), all from ``rng``.

        Args:
            theta: every parameter of the term by name (fixed ones at their fixed values).
            rng: a ``numpy.random.Generator`` (the only source of randomness).

        Returns:
            a PyhfTerm on the same model with the drawn data, shape (n_main + n_aux,).

        Raises:
            InvalidInputError: ``rng`` not a Generator, or θ giving a negative or non-finite expectation.
        """
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(f"PyhfTerm.toy: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        pars = self._vector(theta)
        main = np.asarray(self.model.expected_actualdata(pars), dtype=np.float64)
        if not np.all(np.isfinite(main)) or np.any(main < 0):
            raise InvalidInputError(f"PyhfTerm.toy: the expected main data at theta are negative or not finite: {main}")
        aux = np.asarray(self.data[self.model.config.nmaindata:], dtype=np.float64).copy()
        for index, kind, loc, scale in self._constraint_layout(pars):
            if kind == "normal":
                aux[index] = rng.normal(loc, scale)
            else:
                if np.any(loc < 0) or not np.all(np.isfinite(loc)):
                    raise InvalidInputError(f"PyhfTerm.toy: negative Poisson constraint rates at theta: {loc}")
                aux[index] = rng.poisson(loc)
        return PyhfTerm.from_model(self.model, np.concatenate([rng.poisson(main).astype(np.float64), aux]))

    def _constraint_layout(self, pars: np.ndarray) -> list[tuple[np.ndarray, str, np.ndarray, np.ndarray | None]]:
        """(aux-data indices, "normal"/"poisson", mean or rate, σ or None) of pyhf's combined constraints at ``pars``."""
        out = []
        constraints = self.model.constraint_model
        gauss = constraints.constraints_gaussian
        if gauss.has_pdf():
            means = np.asarray(pars)[np.asarray(gauss.access_field)][0]
            out.append((np.asarray(gauss.normal_data, dtype=int), "normal", means, np.asarray(gauss.sigmas, dtype=float)))
        pois = constraints.constraints_poisson
        if pois.has_pdf():
            nuis = np.asarray(pars)[np.asarray(pois.access_field)][0]
            rates = nuis * np.asarray(pois.batched_factors, dtype=float)[0]
            out.append((np.asarray(pois.poisson_data, dtype=int), "poisson", rates, None))
        return out

    def __repr__(self) -> str:
        return f"PyhfTerm(poi={self.poi!r}, {len(self.parameters)} parameters, {self.model.config.nmaindata} bins)"
