"""EventSet: events with their exact EFT dependence, as an ``xarray.Dataset`` with named dims.

Variables (dims):

* ``z`` (event, latent) — parton-level momenta in the lab frame, flattened; ``latent`` labels are
  ``"<role>_<E|px|py|pz>"`` with the incoming partons as roles ``beam1`` (along +z) and ``beam2``
  and the final state in the process's role order (:meth:`~sbihep.physics.processes.base.Process.roles`).
* ``eft`` (event, component) — coefficients c_i over the monomials m(θ) (``component`` labels
  "1", "cHW", "cHW*cHWtil", …): the weight of event i at θ is w_i(θ) = c_i·m(θ) in pb, so
  Σ_i w_i(θ) estimates σ(θ) (see :mod:`sbihep.events.eft`).
* ``subprocess`` (event) — integer index into the ``subprocesses`` attribute.
* ``x1``, ``x2`` (event) — parton momentum fractions (hadronic processes).
* ``x`` (event, observable) — reco- or parton-level observables, when computed.
* ``passed`` (event) — whether the event passed the detector selection, when a detector was applied.

Attributes record the provenance: ``sbihep_kind = "EventSet"``, ``sbihep_version``, ``process``,
``sqrt_s_gev``, ``pdf``, ``operators`` and ``theta_gen`` (JSON), ``order``, ``seed``,
``unweighted``, ``detector_card`` (TOML text or ""), ``sigma_pb`` (JSON: the generation-time σ(θ)
polynomial and its MC covariance).  Files are netCDF (``.nc``, h5netcdf engine) or zarr
(``.zarr``), written atomically; loading can be lazy (dask) for sets larger than memory.

Integrity: :meth:`EventSet.save` records a SHA-256 digest of every variable's and coordinate's
values and of the other attributes in the attribute ``sbihep_content_hash`` (JSON
``{"algorithm": "sha256", "variables": {name: hex}, "coords": {…}, "attrs": hex}``);
:meth:`EventSet.load` recomputes it and raises :class:`~sbihep.errors.IntegrityError` naming the
variables that changed (bytes corrupted on disk, a zarr chunk lost, an edited file).  The same load
runs the physics checks of :meth:`EventSet.from_arrays` on the content (finite momenta with E ≥ 0,
finite coefficients, subprocess indices in range, a positive total weight at θ_gen), so a file holds
nothing that ``from_arrays`` would refuse.  Files written before content hashes existed (or by other
programs) load with an :class:`~sbihep.errors.IntegrityWarning` after the physics checks.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from sbihep._atomic import atomic_destination, check_output_path
from sbihep._version import __version__
from sbihep.errors import (
    DataFormatError,
    IntegrityError,
    IntegrityWarning,
    InvalidInputError,
    OutputPathError,
    SbihepError,
    ShapeError,
    UnphysicalMomentaError,
)
from sbihep.events import eft as eft_math
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

__all__ = ["EventSet", "LORENTZ", "HASH_ATTR", "content_hash", "verify_content_hash"]

LORENTZ = ("E", "px", "py", "pz")
_REQUIRED_VARS = ("z", "eft", "subprocess")
_ZARR_CHUNK_EVENTS = 100_000
_REQUIRED_ATTRS = ("sbihep_kind", "sbihep_version", "process", "operators", "order", "subprocesses", "roles")
#: attribute holding the content digest written by :meth:`EventSet.save`.
HASH_ATTR = "sbihep_content_hash"
_HASH_ALGORITHM = "sha256"


class EventSet:
    """A set of events with exact per-event EFT weights (see the module docstring).

    Construct with :meth:`from_arrays`, :func:`sbihep.events.generate.generate` or :meth:`load`.
    The underlying dataset is :attr:`data`; methods return new EventSets and never modify in place.
    """

    def __init__(self, data: xr.Dataset) -> None:
        _validate(data)
        self.data = data

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        momenta: torch.Tensor | np.ndarray,
        roles: Sequence[str],
        coefficients: torch.Tensor | np.ndarray,
        operators: Sequence[str],
        order: str,
        subprocess_index: torch.Tensor | np.ndarray | None = None,
        subprocesses: Sequence[str] = ("default",),
        x1=None,
        x2=None,
        attrs: Mapping | None = None,
        variations=None,
        variation_names: Sequence[str] = (),
    ) -> "EventSet":
        """Build from arrays.

        Args:
            momenta: (N, n_particles, 4) lab-frame momenta (GeV) in ``roles`` order.
            roles: the role of each particle slot, e.g. ("beam1", "beam2", "l", "v", "b", "bbar").
            coefficients: (N, M) per-event coefficients (pb) over the monomials of ``operators``/``order``.
            subprocess_index: (N,) integers into ``subprocesses`` (default all 0).
            x1, x2: (N,) momentum fractions, or None for a lepton collider.
            attrs: further provenance attributes (JSON-serialisable values).
            variations: (N, V, M) coefficients of systematically varied weights (e.g. μ_F up/down),
                named by ``variation_names``; nuisance parameters morph between them (see :meth:`weights`).
        """
        p = _float_array(momenta, "momenta")
        c = _float_array(coefficients, "coefficients")
        if p.ndim != 3 or p.shape[2] != 4 or p.shape[1] != len(roles):
            raise ShapeError(f"momenta must have shape (N, {len(roles)}, 4) for roles {list(roles)}, got {p.shape}")
        names = eft_math.monomial_names(list(operators), order)
        if c.shape != (p.shape[0], len(names)):
            raise ShapeError(f"coefficients must have shape ({p.shape[0]}, {len(names)}) for monomials {names}, got {c.shape}")
        n = p.shape[0]
        if subprocess_index is None:
            index = np.zeros(n, dtype=np.int16)
        else:
            raw_index = _numpy(subprocess_index)
            if raw_index.shape != (n,) or not (np.issubdtype(raw_index.dtype, np.integer) or raw_index.dtype == bool):
                raise ShapeError(f"subprocess_index must be ({n},) integers, got shape {raw_index.shape}, dtype {raw_index.dtype}")
            if n and (raw_index.min() < 0 or raw_index.max() >= len(subprocesses)):
                raise InvalidInputError(
                    f"subprocess_index must lie in [0, {len(subprocesses)}) for subprocesses {list(subprocesses)}, "
                    f"got values {int(raw_index.min())}…{int(raw_index.max())}"
                )
            index = raw_index.astype(np.int16)
        latent = [f"{role}_{c}" for role in roles for c in LORENTZ]
        variables = {
            "z": (("event", "latent"), p.reshape(n, -1)),
            "eft": (("event", "component"), c),
            "subprocess": (("event",), index),
        }
        if variations is not None:
            v = _float_array(variations, "variations")
            if v.shape != (n, len(variation_names), len(names)):
                raise ShapeError(f"variations must have shape ({n}, {len(variation_names)}, {len(names)}), got {v.shape}")
            variables["eft_variations"] = (("event", "variation", "component"), v)
        if x1 is not None:
            for name, value in (("x1", x1), ("x2", x2)):
                arr = _float_array(value, name)
                if arr.shape != (n,):
                    raise ShapeError(f"{name} must have shape ({n},), got {arr.shape}")
                variables[name] = (("event",), arr)
        base_attrs = {
            "sbihep_kind": "EventSet",
            "sbihep_version": __version__,
            "process": "",
            "operators": json.dumps(list(operators)),
            "order": order,
            "subprocesses": json.dumps(list(subprocesses)),
            "roles": json.dumps(list(roles)),
            "unweighted": 0,
            "detector_card": "",
        }
        base_attrs.update(attrs or {})
        base_attrs.pop(HASH_ATTR, None)
        coords = {"latent": latent, "component": names}
        if variations is not None:
            coords["variation"] = list(variation_names)
        data = xr.Dataset(variables, coords=coords, attrs=base_attrs)
        _validate(data)
        _scan(data, where="")
        return cls(data)

    # ---- basic properties --------------------------------------------------------------
    @property
    def n_events(self) -> int:
        return int(self.data.sizes["event"])

    def __len__(self) -> int:
        return self.n_events

    @property
    def operators(self) -> list[str]:
        return json.loads(self.data.attrs["operators"])

    @property
    def order(self) -> str:
        return str(self.data.attrs["order"])

    @property
    def roles(self) -> list[str]:
        return json.loads(self.data.attrs["roles"])

    @property
    def subprocesses(self) -> list[str]:
        return json.loads(self.data.attrs["subprocesses"])

    @property
    def process(self) -> str:
        return str(self.data.attrs["process"])

    def __repr__(self) -> str:
        held = self.fixed_operators
        held_text = f" ({', '.join(f'{k} = {v:g}' for k, v in held.items())} held fixed)" if held else ""
        return (
            f"EventSet({self.process or 'unnamed'}: {self.n_events} events, operators {self.operators}{held_text}, "
            f"{self.order} order, {'unweighted' if self.data.attrs.get('unweighted') else 'weighted'})"
        )

    # ---- physics views -----------------------------------------------------------------
    def momenta(self) -> torch.Tensor:
        """(N, n_particles, 4) float64 lab-frame momenta in role order."""
        return torch.from_numpy(np.asarray(self.data["z"].values).reshape(self.n_events, len(self.roles), 4).copy())

    def coefficients(self) -> torch.Tensor:
        """(N, M) per-event coefficients over the monomials (pb)."""
        return torch.from_numpy(np.asarray(self.data["eft"].values).copy())

    def theta_vector(self, theta: Mapping[str, float] | None) -> torch.Tensor:
        """(n_operators,) float64 θ in operator order; names not given are 0 (SM).

        Raises:
            InvalidInputError: ``theta`` is not a mapping, names an unknown operator, or holds a value
                that is not a finite real number (NaN, inf, a string, a bool).
        """
        theta = _parameter_mapping(theta, "theta")
        unknown = sorted(set(theta) - set(self.operators))
        if unknown:
            held = {k: v for k, v in self.fixed_operators.items() if k in unknown}
            note = f" ({held} are held fixed by restrict(): the events live on that slice)" if held else ""
            raise InvalidInputError(f"theta: unknown operator(s) {unknown}; this EventSet has {self.operators}{note}")
        return torch.tensor([theta.get(op, 0.0) for op in self.operators], dtype=torch.float64)

    def weights(self, theta: Mapping[str, float] | None = None, nuisances: Mapping[str, float] | None = None) -> torch.Tensor:
        """Event weights w_i(θ, ν) in pb, (N,); Σ estimates σ(θ, ν).  θ by name, missing ones at 0 (SM).

        Nuisance parameters ν (see :meth:`nuisance_space`) morph each weight exponential-
        quadratically between its −1σ, nominal and +1σ variations at the same θ:
        w(θ, ν) = w(θ) exp(a ν + b ν²), a = ½ ln(w₊/w₋), b = ½ ln(w₊ w₋ / w²), exact at ν = 0, ±1
        and positive everywhere.
        """
        theta_vec = self.theta_vector(theta)
        nuisances = _parameter_mapping(nuisances, "nuisances")
        declared = self.nuisances
        unknown = sorted(set(nuisances) - set(declared))
        if unknown:
            raise InvalidInputError(f"nuisances: unknown nuisance parameter(s) {unknown}; this EventSet has {sorted(declared)}")
        nominal = eft_math.weights_at(self.coefficients(), theta_vec)
        if not nuisances:
            return nominal
        variations = self.data["eft_variations"]
        log_factor = torch.zeros_like(nominal)
        for name, nu in nuisances.items():
            up_name, down_name = declared[name]
            up = eft_math.weights_at(torch.from_numpy(np.asarray(variations.sel(variation=up_name).values)), theta_vec)
            down = eft_math.weights_at(torch.from_numpy(np.asarray(variations.sel(variation=down_name).values)), theta_vec)
            empty = (nominal == 0) & (up == 0) & (down == 0)  # events without weight at θ: nothing to morph
            bad = ~empty & ((nominal <= 0) | (up <= 0) | (down <= 0))
            if bool(bad.any()):
                raise InvalidInputError(
                    f"nuisances: morphing {name!r} needs positive nominal, up and down weights at theta, but "
                    f"{int(bad.sum())} events have a weight ≤ 0 there (first: event {int(torch.nonzero(bad)[0])})"
                )
            safe = torch.where(empty, torch.ones_like(nominal), nominal)
            log_up = torch.where(empty, torch.zeros_like(nominal), torch.log(torch.where(empty, safe, up) / safe))
            log_down = torch.where(empty, torch.zeros_like(nominal), torch.log(torch.where(empty, safe, down) / safe))
            a, b = 0.5 * (log_up - log_down), 0.5 * (log_up + log_down)
            log_factor = log_factor + a * nu + b * nu * nu
        return nominal * torch.exp(log_factor)

    @property
    def nuisances(self) -> dict[str, list[str]]:
        """Nuisance name → [up variation, down variation] names."""
        return json.loads(self.data.attrs.get("nuisances", "{}"))

    def nuisance_space(self, bounds: tuple[float, float] = (-5.0, 5.0)) -> ParameterSpace:
        """The nuisance parameters, each with a unit Gaussian constraint N(0, 1) (±1 = the stored variations)."""
        return ParameterSpace(
            Parameter(name, 0.0, bounds, kind="nuisance", constraint=GaussianConstraint(0.0, 1.0)) for name in self.nuisances
        )

    def sigma_coefficients(self) -> torch.Tensor:
        """(M,) coefficients of the sample's σ(θ) = Σ_i w_i(θ) estimate (pb)."""
        return self.coefficients().sum(0)

    def sigma(self, theta: Mapping[str, float] | None = None) -> float:
        """σ(θ) estimated by this sample (pb)."""
        return float(self.weights(theta).sum())

    def log_joint_ratio(self, theta0: Mapping[str, float], theta1: Mapping[str, float]) -> torch.Tensor:
        """log r(z|θ₀, θ₁) for every event, (N,), with σ(θ) from this sample."""
        return eft_math.log_joint_ratio(
            self.coefficients(), self.sigma_coefficients(), self.theta_vector(theta0), self.theta_vector(theta1)
        )

    def joint_score(self, theta: Mapping[str, float] | None = None) -> torch.Tensor:
        """t(z|θ) for every event, (N, n_operators), with σ(θ) from this sample."""
        return eft_math.joint_score(self.coefficients(), self.sigma_coefficients(), self.theta_vector(theta))

    def observables(self) -> xr.DataArray:
        """The ``x`` (event, observable) array; raises if none were computed."""
        if "x" not in self.data:
            raise InvalidInputError("this EventSet has no observables yet: use with_observables(...)")
        return self.data["x"]

    def with_observables(self, values: Mapping[str, torch.Tensor | np.ndarray]) -> "EventSet":
        """A copy with ``x`` extended by named (N,) observables (existing names are replaced)."""
        new = {name: _numpy(v).astype(np.float64) for name, v in values.items()}
        for name, v in new.items():
            if v.shape != (self.n_events,):
                raise ShapeError(f"observable {name!r} must have shape ({self.n_events},), got {v.shape}")
        old = {}
        if "x" in self.data:
            old = {str(k): self.data["x"].sel(observable=k).values for k in self.data["observable"].values}
        old.update(new)
        names = list(old)
        x = xr.DataArray(np.stack([old[k] for k in names], axis=1), dims=("event", "observable"), coords={"observable": names})
        return EventSet(self.data.drop_vars(["x", "observable"], errors="ignore").assign(x=x))

    # ---- selection, splitting, combination ------------------------------------------
    def select(self, mask: torch.Tensor | np.ndarray | Sequence[bool]) -> "EventSet":
        """Events where ``mask`` (N,) is true.  Weights are kept: a cut removes cross section."""
        m = _numpy(mask).astype(bool)
        if m.shape != (self.n_events,):
            raise ShapeError(f"mask must have shape ({self.n_events},), got {m.shape}")
        return EventSet(self.data.isel(event=np.flatnonzero(m)))

    def split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple["EventSet", ...]:
        """Random disjoint parts (e.g. train/validation/test); each part's weights are rescaled by
        1/fraction so that every part alone still estimates σ(θ)."""
        fractions = [float(f) for f in fractions]
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
            raise InvalidInputError(f"fractions must be positive and sum to 1, got {fractions}")
        order = np.random.default_rng(seed).permutation(self.n_events)
        edges = np.round(np.cumsum([0.0, *fractions]) * self.n_events).astype(int)
        parts = []
        for k in range(len(fractions)):
            idx = np.sort(order[edges[k] : edges[k + 1]])
            scale = self.n_events / max(len(idx), 1)
            part = self.data.isel(event=idx)
            part = part.assign(eft=part["eft"] * scale)
            if "eft_variations" in part:
                part = part.assign(eft_variations=part["eft_variations"] * scale)
            parts.append(EventSet(part))
        return tuple(parts)

    @staticmethod
    def concatenate(sets: Iterable["EventSet"]) -> "EventSet":
        """Join EventSets of the same process, operators, order and roles (weights are kept as they are:
        joining two independent estimates of the same σ doubles it — rescale first if that is not meant)."""
        sets = list(sets)
        if not sets:
            raise InvalidInputError("concatenate needs at least one EventSet")
        first = sets[0]
        for other in sets[1:]:
            for key in ("process", "operators", "order", "roles", "subprocesses"):
                if other.data.attrs.get(key) != first.data.attrs.get(key):
                    raise InvalidInputError(
                        f"cannot concatenate EventSets with different {key}: "
                        f"{first.data.attrs.get(key)!r} vs {other.data.attrs.get(key)!r}"
                    )
            if other.fixed_operators != first.fixed_operators:
                raise InvalidInputError(f"cannot concatenate EventSets on different slices of the EFT: held operators "
                                        f"{first.fixed_operators} vs {other.fixed_operators}")
        return EventSet(xr.concat([s.data for s in sets], dim="event", combine_attrs="override"))

    @property
    def fixed_operators(self) -> dict[str, float]:
        """Operators removed by :meth:`restrict`, with the values they are held at (empty for a full set)."""
        return {str(k): float(v) for k, v in json.loads(self.data.attrs.get("fixed_operators", "{}")).items()}

    def restrict(self, operators: Sequence[str], fixed: Mapping[str, float] | None = None) -> "EventSet":
        """The same events on a subset of the operators, the others held at 0 (SM) or at ``fixed`` values.

        The coefficients are re-expressed over the monomials of ``operators`` (in the order given) with
        :func:`sbihep.events.eft.fix_coefficients`, so that ``restricted.weights(θ)`` equals
        ``self.weights({**θ, **fixed})`` for every θ over ``operators``; σ(θ), joint ratios and scores,
        training samples, estimators and fit terms built from the result all live on that slice.  The
        held operators and values are recorded in the attribute ``fixed_operators`` (JSON, see
        :attr:`fixed_operators`; restricting twice accumulates them).

        Args:
            operators: the operators to keep (a non-empty subset of :attr:`operators`, any order).
            fixed: value of each operator left out (c_i/Λ² in TeV⁻²); operators not named are held at 0.

        Returns:
            a new EventSet with ``operators`` as its operators.

        Raises:
            InvalidInputError: an empty or repeated ``operators``, a name that is not an operator, or a
                ``fixed`` entry for a kept or unknown operator or with a non-finite value.

        Example:
            >>> cp = events.restrict(["cHW", "cHWtil"], fixed={"cHq3": 0.02})  # doctest: +SKIP
            >>> cp.operators, cp.fixed_operators  # doctest: +SKIP
            (['cHW', 'cHWtil'], {'cHq3': 0.02})
        """
        if isinstance(operators, str):
            operators = [operators]
        keep = [str(o) for o in operators]
        if not keep:
            raise InvalidInputError("operators: name at least one operator to keep")
        unknown = [o for o in keep if o not in self.operators]
        if unknown or len(set(keep)) != len(keep):
            raise InvalidInputError(f"operators: {unknown or keep} — keep distinct operators among {self.operators}")
        fixed = _parameter_mapping(fixed, "fixed")
        bad = sorted(set(fixed) - (set(self.operators) - set(keep)))
        if bad:
            raise InvalidInputError(f"fixed: {bad} are not operators left out by the restriction (left out: "
                                    f"{[o for o in self.operators if o not in keep]})")
        held = {**{o: float(fixed.get(o, 0.0)) for o in self.operators if o not in keep}}
        args = (self.operators, self.order, keep, held)
        data = self.data.drop_vars(["eft", "component"] + (["eft_variations"] if "eft_variations" in self.data else []))
        names = eft_math.monomial_names(keep, self.order)
        new = {"eft": (("event", "component"), eft_math.fix_coefficients(self.coefficients(), *args).numpy())}
        if "eft_variations" in self.data:
            v = torch.from_numpy(np.asarray(self.data["eft_variations"].values))
            new["eft_variations"] = (("event", "variation", "component"), eft_math.fix_coefficients(v, *args).numpy())
        data = data.assign(new).assign_coords(component=names)
        attrs = dict(self.data.attrs)
        attrs.pop(HASH_ATTR, None)
        attrs["operators"] = json.dumps(keep)
        attrs["fixed_operators"] = json.dumps({**self.fixed_operators, **held})
        if "theta_gen" in attrs:
            gen = json.loads(attrs["theta_gen"])
            attrs["theta_gen"] = json.dumps({o: float(gen.get(o, 0.0)) for o in keep})
        if "sigma_pb" in attrs:  # the generation-time σ(θ) polynomial, on the same slice
            try:
                poly = json.loads(attrs["sigma_pb"])
                old = eft_math.monomial_names(self.operators, self.order)
                values = torch.tensor([float(poly[n]) for n in old], dtype=torch.float64)
                attrs["sigma_pb"] = json.dumps(dict(zip(names, eft_math.fix_coefficients(values, *args).tolist())))
            except (KeyError, TypeError, ValueError, AttributeError):
                attrs.pop("sigma_pb")  # not in the monomial layout this restriction understands
        data.attrs = attrs
        return EventSet(data)

    # ---- IO --------------------------------------------------------------------------
    @staticmethod
    def check_save_path(path: str | os.PathLike, what: str = "path") -> Path:
        """Check before any work that :meth:`save` can write ``path``; returns it as a Path.

        Raises:
            OutputPathError: a suffix other than ``.nc``/``.zarr``, a missing or read-only parent
                folder, a directory where a ``.nc`` file goes or a file where a ``.zarr`` store goes,
                or an existing entry that sbihep did not write (only sbihep's own files and stores,
                and empty folders, are ever replaced).
        """
        path = Path(path)
        try:
            fmt = _format_of(path, what)
        except InvalidInputError as exc:
            raise OutputPathError(str(exc)) from None
        return check_output_path(
            path, kind="file" if fmt == "netcdf" else "directory", suffixes=(".nc", ".zarr"), is_own=_is_own_output, what=what
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``.nc`` (netCDF via h5netcdf) or ``.zarr``; an interrupted write
        leaves no partial file at ``path`` (its temporary is removed by the next write to ``path``).

        The file carries a SHA-256 digest of its content (attribute ``sbihep_content_hash``), checked by
        :meth:`load`.  Hashing reads every array once more: 1.2 GB/s of arrays on one core of the
        development machine (SHA-256 with SHA-NI), a small cost next to writing.

        Raises:
            OutputPathError: see :meth:`check_save_path` (checked before anything is written).
        """
        path = self.check_save_path(path)
        fmt = _format_of(path)
        data = self.data.copy(deep=False)
        data.attrs = {k: v for k, v in self.data.attrs.items() if k != HASH_ATTR}
        data.attrs[HASH_ATTR] = json.dumps(_content_hash(data, _ZARR_CHUNK_EVENTS))
        with atomic_destination(path, is_own=_is_own_output) as tmp:
            if fmt == "netcdf":
                data.to_netcdf(tmp, engine="h5netcdf")
            else:
                chunked = data.chunk({"event": min(max(self.n_events, 1), _ZARR_CHUNK_EVENTS)})
                chunked.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)  # v3 has no string dtype spec
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, lazy: bool = False, chunk_events: int = 100_000, verify: bool = True) -> "EventSet":
        """Read an EventSet; ``lazy=True`` keeps the arrays on disk as dask chunks (netCDF: of
        ``chunk_events`` events; zarr: the chunks it was written with, 100 000 events).

        Args:
            path: a ``.nc`` file or ``.zarr`` store written by :meth:`save`.
            lazy: keep the arrays on disk (dask).
            chunk_events: events per chunk for lazy netCDF reads and for the verification pass.
            verify: recompute the content hash and run the physics checks (finite momenta with E ≥ 0,
                finite coefficients, subprocess indices in range, positive total weight at θ_gen).
                This reads every array once: measured on one core of the development machine,
                0.19 s for 39 MB of arrays (400 000 toy events; hashing alone runs at 1.2 GB/s, the
                physics checks take the rest), i.e. ≈ 5 s per GB plus the disk's read time.  For a
                lazy load that is one full pass over the file, after which the data stay on disk.
                ``verify=False`` skips both — only the structure (attributes, variables, labels) is
                checked; use it only for files you trust.

        Raises:
            InvalidInputError: no such file, or a suffix other than ``.nc``/``.zarr``.
            DataFormatError: not a readable EventSet file (truncated, foreign, broken structure).
            IntegrityError: the content differs from the hash recorded at save time (names the variables).
            UnphysicalMomentaError / InvalidInputError: the content fails the checks that
                :meth:`from_arrays` applies (the message names the file, the variable and an event).

        Warns:
            IntegrityWarning: the file has no content hash (written before sbihep recorded one, or by
                another program); it loads after the physics checks.  Re-save it to add the hash.
        """
        path = Path(path)
        if not path.exists():
            raise InvalidInputError(f"path: no such EventSet file: {path}")
        fmt = _format_of(path)
        if isinstance(chunk_events, bool) or not isinstance(chunk_events, numbers.Integral) or chunk_events < 1:
            raise InvalidInputError(f"chunk_events must be a positive integer, got {chunk_events!r}")
        chunks = {"event": int(chunk_events)} if lazy else None
        try:
            if fmt == "netcdf":
                if not path.is_file():
                    raise DataFormatError(f"{path} is a directory, not a netCDF file")
                data = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
                if not lazy:
                    data = data.load()
                    data.close()
            else:
                if not path.is_dir():
                    raise DataFormatError(f"{path} is a file, not a zarr store (a directory)")
                # lazily: the chunks the file was written with (100 000 events), not chunk_events
                data = xr.open_zarr(path, chunks={}) if lazy else xr.open_zarr(path, chunks=None).load()
        except SbihepError:
            raise
        except Exception as exc:  # any parser failure on a damaged or foreign file
            raise DataFormatError(f"{path} is not a readable EventSet file ({type(exc).__name__}: {exc})") from exc
        where = f"{path}: "
        try:
            _validate(data)
        except DataFormatError as exc:
            raise DataFormatError(f"{where}{exc}") from None
        recorded = data.attrs.get(HASH_ATTR)
        data.attrs = {k: v for k, v in data.attrs.items() if k != HASH_ATTR}
        if verify:
            expected = None
            if recorded is not None:
                try:
                    expected = json.loads(str(recorded))
                    if expected.get("algorithm") != _HASH_ALGORITHM or not isinstance(expected.get("variables"), dict):
                        raise ValueError(expected.get("algorithm"))
                except (ValueError, AttributeError, TypeError):
                    raise IntegrityError(f"{where}the content hash attribute {HASH_ATTR!r} is unreadable or of an unknown algorithm") from None
            try:
                actual = _scan(data, where=where, chunk_events=int(chunk_events), hashing=expected is not None)
            except SbihepError:
                raise
            except Exception as exc:  # a chunk that cannot be read back (lazy loads read here)
                raise DataFormatError(f"{where}an array cannot be read ({type(exc).__name__}: {exc})") from exc
            if expected is None:
                warnings.warn(
                    f"{path} has no content hash (written by an earlier sbihep or another program): corruption "
                    "cannot be detected; the physics checks passed. Save it again to add a hash.",
                    IntegrityWarning,
                    stacklevel=2,
                )
            else:
                _compare_hash(expected, actual, where)
            if actual is not None and actual.get("deferred_error") is not None:
                raise actual["deferred_error"]
        return cls(data)


def _format_of(path: Path, what: str = "path") -> str:
    if path.suffix == ".nc":
        return "netcdf"
    if path.suffix == ".zarr":
        return "zarr"
    raise InvalidInputError(f"{what}: EventSet files end in .nc (netCDF) or .zarr, got {path.name!r}")


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _float_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 array (float32 and integer inputs are converted); ShapeError for other dtypes."""
    try:
        arr = _numpy(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ShapeError(f"{name} must be a real numeric array, got {type(value).__name__}: {exc}") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ShapeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _parameter_mapping(values, name: str) -> dict[str, float]:
    """{name: finite float} from a mapping of parameter values; InvalidInputError naming the bad entry."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{name} must be a mapping {{parameter: value}}, got {type(values).__name__}")
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        elif isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise InvalidInputError(f"{name}[{key!r}] must be a real number, got {value!r}")
        value = float(value)
        if not np.isfinite(value):
            raise InvalidInputError(f"{name}[{key!r}] must be finite, got {value}")
        out[str(key)] = value
    return out


def _json_attr(data: xr.Dataset, key: str):
    try:
        return json.loads(str(data.attrs[key]))
    except (ValueError, TypeError):
        raise DataFormatError(f"EventSet: attribute {key!r} is not valid JSON: {str(data.attrs[key])[:80]!r}") from None


def _is_own_output(path: Path) -> bool:
    """Whether ``path`` is a netCDF file / zarr store written by sbihep (or an empty folder)."""
    if path.is_symlink():
        return False
    if path.is_dir():
        if not any(path.iterdir()):
            return True
        for name in (".zattrs", "zarr.json"):
            meta = path / name
            if meta.is_file():
                try:
                    attrs = json.loads(meta.read_text())
                except (OSError, ValueError):
                    return False
                attrs = attrs.get("attributes", attrs) if isinstance(attrs, dict) else {}
                return isinstance(attrs, dict) and "sbihep_kind" in attrs
        return False
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            return "sbihep_kind" in handle.attrs or "sbihep_version" in handle.attrs
    except Exception:  # not HDF5 / unreadable: not ours
        return False


# ---- content checks and hashing -------------------------------------------------------------


def _canonical(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _attrs_digest(attrs: Mapping) -> str:
    items = {str(k): _canonical(v) for k, v in attrs.items() if k != HASH_ATTR}
    text = json.dumps(items, sort_keys=True, default=str)
    return hashlib.new(_HASH_ALGORITHM, text.encode()).hexdigest()


def _is_text(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "USO"


def _update(hasher, arr: np.ndarray) -> None:
    if _is_text(arr):
        hasher.update("\x1f".join(map(str, arr.reshape(-1).tolist())).encode() + b"\x1e")
    else:
        arr = np.ascontiguousarray(arr)
        hasher.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())


def content_hash(data: xr.Dataset) -> str:
    """The content digest :meth:`EventSet.save` records under :data:`HASH_ATTR` (JSON text: SHA-256 of
    every variable, every coordinate and of the other attributes), for any dataset sbihep writes
    (e.g. the demo's constraint file).  Store it with ``ds.attrs[HASH_ATTR] = content_hash(ds)``."""
    return json.dumps(_content_hash(data.assign_attrs({k: v for k, v in data.attrs.items() if k != HASH_ATTR}), _ZARR_CHUNK_EVENTS))


def verify_content_hash(data: xr.Dataset, where: str = "") -> None:
    """Check a loaded dataset against the digest in its :data:`HASH_ATTR` attribute (see :func:`content_hash`).

    Raises:
        IntegrityError: no readable digest, or the content no longer matches it (names what changed).
    """
    prefix = f"{where}: " if where else ""
    try:
        expected = json.loads(data.attrs[HASH_ATTR])
        if expected.get("algorithm") != _HASH_ALGORITHM or not isinstance(expected.get("variables"), dict):
            raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError(f"{prefix}no readable content hash in the attribute {HASH_ATTR!r}") from None
    stripped = data.copy(deep=False)
    stripped.attrs = {k: v for k, v in data.attrs.items() if k != HASH_ATTR}
    _compare_hash(expected, _content_hash(stripped, _ZARR_CHUNK_EVENTS), prefix)


def _content_hash(data: xr.Dataset, chunk_events: int) -> dict:
    digest = _scan(data, where="", chunk_events=chunk_events, hashing=True, checks=False)
    digest.pop("deferred_error")
    return digest


def _scan(data: xr.Dataset, *, where: str, chunk_events: int = 1_000_000, hashing: bool = False, checks: bool = True) -> dict | None:
    """One pass over the events in blocks: the physics checks of :meth:`EventSet.from_arrays` and,
    with ``hashing``, the SHA-256 digest of every variable and coordinate (returned)."""
    n = int(data.sizes.get("event", 0))
    names = sorted(str(k) for k in data.data_vars)
    hashers = {}
    if hashing:
        for name in names:
            var = data[name]
            h = hashlib.new(_HASH_ALGORITHM)
            kind = "text" if var.dtype.kind in "USO" else var.dtype.newbyteorder("<").str
            h.update(f"{kind}|{tuple(var.dims)}|{tuple(int(x) for x in var.shape)}|".encode())
            hashers[name] = h
    if checks:
        operators = _json_attr(data, "operators")
        n_roles = len(_json_attr(data, "roles"))
        n_subs = len(_json_attr(data, "subprocesses"))
        theta_gen = _json_attr(data, "theta_gen") if "theta_gen" in data.attrs else {}
        if not isinstance(theta_gen, dict):
            raise DataFormatError(f"{where}attribute 'theta_gen' must be a JSON object, got {theta_gen!r}")
        try:
            theta_vec = torch.tensor([float(theta_gen.get(op, 0.0)) for op in operators], dtype=torch.float64)
        except (TypeError, ValueError):
            raise DataFormatError(f"{where}attribute 'theta_gen' holds a value that is not a number: {theta_gen!r}") from None
        if not bool(torch.isfinite(theta_vec).all()):
            raise DataFormatError(f"{where}attribute 'theta_gen' is not finite: {theta_gen!r}")
    total = 0.0
    deferred: SbihepError | None = None
    step = max(int(chunk_events), 1)
    starts = range(0, n, step) if n else [0]
    for start in starts:
        block = data.isel(event=slice(start, start + step)) if "event" in data.dims else data
        arrays = {}
        for name in names:
            var = block[name]
            if hashing and "event" in var.dims and var.dims[0] != "event":
                raise DataFormatError(f"{where}variable {name!r} must have 'event' as its first dimension, has {var.dims}")
            if hashing and "event" not in var.dims and start > 0:
                continue
            arrays[name] = np.asarray(var.values)
            if hashing:
                _update(hashers[name], arrays[name])
        if checks and deferred is None:
            try:
                total += _check_block(arrays, start, where, n_roles, n_subs, theta_vec)
            except SbihepError as exc:
                if not hashing:
                    raise
                deferred = exc  # finish the hash first: corruption is the likelier cause, and says more
    if checks and deferred is None and n and not total > 0:
        deferred = InvalidInputError(f"{where}the total weight of the events at the generation point is {total:g} pb, not positive")
        if not hashing:
            raise deferred
    if not hashing:
        return None
    coords = {}
    for name in sorted(str(k) for k in data.coords):
        h = hashlib.new(_HASH_ALGORITHM)
        _update(h, np.asarray(data[name].values))
        coords[name] = h.hexdigest()
    return {
        "algorithm": _HASH_ALGORITHM,
        "variables": {name: h.hexdigest() for name, h in hashers.items()},
        "coords": coords,
        "attrs": _attrs_digest(data.attrs),
        "deferred_error": deferred,
    }


def _first(mask: np.ndarray, start: int) -> str:
    bad = np.flatnonzero(mask)
    return f"{bad.size} of events {start}–{start + mask.size - 1} (first: event {start + int(bad[0])})"


def _check_block(arrays: dict, start: int, where: str, n_roles: int, n_subs: int, theta_vec: torch.Tensor) -> float:
    """Physics checks of one block of events; returns its total weight at θ_gen (pb)."""
    for name in ("z", "eft", "eft_variations", "x1", "x2"):
        if name in arrays and not np.issubdtype(arrays[name].dtype, np.number):
            raise DataFormatError(f"{where}variable {name!r} must be numeric, got dtype {arrays[name].dtype}")
    z = arrays["z"].astype(np.float64, copy=False)
    n = z.shape[0]
    finite_z = np.isfinite(z).reshape(n, -1).all(1)
    if not finite_z.all():
        raise UnphysicalMomentaError(f"{where}momenta (z) must be finite: NaN or inf in {_first(~finite_z, start)}")
    energies = z.reshape(n, n_roles, 4)[..., 0]
    negative = (energies < 0).any(1)
    if negative.any():
        raise UnphysicalMomentaError(f"{where}momenta (z) have negative energies in {_first(negative, start)}")
    c = arrays["eft"].astype(np.float64, copy=False)
    for name in ("eft", "eft_variations", "x1", "x2"):
        if name in arrays:
            arr = arrays[name]
            good = np.isfinite(arr).reshape(arr.shape[0], -1).all(1)
            if not good.all():
                label = "coefficients (eft)" if name == "eft" else name
                raise InvalidInputError(f"{where}{label} must be finite: NaN or inf in {_first(~good, start)}")
    sub = arrays["subprocess"]
    if not np.issubdtype(sub.dtype, np.integer):
        raise DataFormatError(f"{where}variable 'subprocess' must hold integers, got dtype {sub.dtype}")
    outside = (sub < 0) | (sub >= n_subs)
    if outside.any():
        raise InvalidInputError(f"{where}subprocess indices must lie in [0, {n_subs}): out of range in {_first(outside, start)}")
    if theta_vec.numel() + 1 > c.shape[1] and c.shape[1] != 1:
        raise DataFormatError(f"{where}variable 'eft' has {c.shape[1]} components, too few for the operators")
    return float(eft_math.weights_at(torch.from_numpy(np.ascontiguousarray(c)), theta_vec).sum()) if n else 0.0


def _compare_hash(expected: dict, actual: dict, where: str) -> None:
    changed = sorted(name for name in set(expected["variables"]) | set(actual["variables"])
                     if expected["variables"].get(name) != actual["variables"].get(name))
    exp_coords, act_coords = expected.get("coords", {}), actual["coords"]
    changed_coords = sorted(name for name in set(exp_coords) | set(act_coords) if exp_coords.get(name) != act_coords.get(name))
    attrs_changed = expected.get("attrs") not in (None, actual["attrs"])
    if changed or changed_coords or attrs_changed:
        parts = []
        if changed:
            parts.append(f"variables {changed}")
        if changed_coords:
            parts.append(f"labels {changed_coords}")
        if attrs_changed:
            parts.append("attributes")
        raise IntegrityError(
            f"{where}the content does not match the hash recorded when sbihep wrote it ({', '.join(parts)} changed): "
            "the file is corrupted or was edited; regenerate it (or load with verify=False at your own risk)"
        )


def _validate(data: xr.Dataset) -> None:
    """Structural checks (cheap, no data read): kind, attributes, variables, labels."""
    if not isinstance(data, xr.Dataset):
        raise InvalidInputError(f"EventSet wraps an xarray.Dataset, got {type(data).__name__}")
    missing_attrs = [a for a in _REQUIRED_ATTRS if a not in data.attrs]
    if data.attrs.get("sbihep_kind") != "EventSet" or missing_attrs:
        raise DataFormatError(
            "not an EventSet: " + (f"missing attributes {missing_attrs}" if missing_attrs else "sbihep_kind is not 'EventSet'")
        )
    missing_vars = [v for v in _REQUIRED_VARS if v not in data]
    if missing_vars:
        raise DataFormatError(f"not an EventSet: missing variables {missing_vars}")
    roles = _json_attr(data, "roles")
    operators = _json_attr(data, "operators")
    subprocesses = _json_attr(data, "subprocesses")
    for key, value in (("roles", roles), ("operators", operators), ("subprocesses", subprocesses)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataFormatError(f"EventSet: attribute {key!r} must be a JSON list of names, got {value!r}")
    if data.attrs["order"] not in ("linear", "quadratic"):
        raise DataFormatError(f"EventSet: attribute 'order' must be 'linear' or 'quadratic', got {data.attrs['order']!r}")
    if data["z"].dims != ("event", "latent") or data["eft"].dims != ("event", "component") or data["subprocess"].dims != ("event",):
        raise DataFormatError(
            f"EventSet: variables must have dims z (event, latent), eft (event, component), subprocess (event); got "
            f"{data['z'].dims}, {data['eft'].dims}, {data['subprocess'].dims}"
        )
    if data.sizes.get("latent") != 4 * len(roles):
        raise DataFormatError(f"EventSet: z has {data.sizes.get('latent')} latent entries, expected 4 × {len(roles)} roles")
    expected = eft_math.monomial_names(operators, data.attrs["order"])
    if "component" not in data.coords or list(map(str, data["component"].values)) != expected:
        found = list(map(str, data["component"].values)) if "component" in data.coords else None
        raise DataFormatError(f"EventSet: eft components {found} do not match {expected}")
