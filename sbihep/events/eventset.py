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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.events import eft as eft_math
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

__all__ = ["EventSet", "LORENTZ"]

LORENTZ = ("E", "px", "py", "pz")
_REQUIRED_VARS = ("z", "eft", "subprocess")
_ZARR_CHUNK_EVENTS = 100_000
_REQUIRED_ATTRS = ("sbihep_kind", "sbihep_version", "process", "operators", "order", "subprocesses", "roles")


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
        p = _numpy(momenta)
        c = _numpy(coefficients)
        if p.ndim != 3 or p.shape[2] != 4 or p.shape[1] != len(roles):
            raise ShapeError(f"momenta must have shape (N, {len(roles)}, 4) for roles {list(roles)}, got {p.shape}")
        names = eft_math.monomial_names(list(operators), order)
        if c.shape != (p.shape[0], len(names)):
            raise ShapeError(f"coefficients must have shape ({p.shape[0]}, {len(names)}) for monomials {names}, got {c.shape}")
        if not (np.isfinite(p).all() and np.isfinite(c).all()):
            raise InvalidInputError("momenta and coefficients must be finite (found NaN or inf)")
        if (p[..., 0] < 0).any():
            raise InvalidInputError(f"momenta have negative energies in {int((p[..., 0] < 0).any(1).sum())} events")
        n = p.shape[0]
        index = np.zeros(n, dtype=np.int16) if subprocess_index is None else _numpy(subprocess_index).astype(np.int16)
        latent = [f"{role}_{c}" for role in roles for c in LORENTZ]
        variables = {
            "z": (("event", "latent"), p.reshape(n, -1)),
            "eft": (("event", "component"), c),
            "subprocess": (("event",), index),
        }
        if variations is not None:
            v = _numpy(variations)
            if v.shape != (n, len(variation_names), len(names)):
                raise ShapeError(f"variations must have shape ({n}, {len(variation_names)}, {len(names)}), got {v.shape}")
            variables["eft_variations"] = (("event", "variation", "component"), v)
        if x1 is not None:
            variables["x1"] = (("event",), _numpy(x1))
            variables["x2"] = (("event",), _numpy(x2))
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
        theta_gen = json.loads(base_attrs.get("theta_gen", "{}"))
        theta_vec = torch.tensor([float(theta_gen.get(op, 0.0)) for op in operators], dtype=torch.float64)
        total = float(eft_math.weights_at(torch.from_numpy(np.ascontiguousarray(c, dtype=np.float64)), theta_vec).sum())
        if not total > 0:
            raise InvalidInputError(f"the total weight of the events at the generation point is {total:g} pb, not positive")
        coords = {"latent": latent, "component": names}
        if variations is not None:
            coords["variation"] = list(variation_names)
        data = xr.Dataset(variables, coords=coords, attrs=base_attrs)
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
        return (
            f"EventSet({self.process or 'unnamed'}: {self.n_events} events, operators {self.operators}, "
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
        theta = dict(theta or {})
        unknown = sorted(set(theta) - set(self.operators))
        if unknown:
            raise InvalidInputError(f"unknown operator(s) {unknown}; this EventSet has {self.operators}")
        return torch.tensor([float(theta.get(op, 0.0)) for op in self.operators], dtype=torch.float64)

    def weights(self, theta: Mapping[str, float] | None = None, nuisances: Mapping[str, float] | None = None) -> torch.Tensor:
        """Event weights w_i(θ, ν) in pb, (N,); Σ estimates σ(θ, ν).  θ by name, missing ones at 0 (SM).

        Nuisance parameters ν (see :meth:`nuisance_space`) morph each weight exponential-
        quadratically between its −1σ, nominal and +1σ variations at the same θ:
        w(θ, ν) = w(θ) exp(a ν + b ν²), a = ½ ln(w₊/w₋), b = ½ ln(w₊ w₋ / w²), exact at ν = 0, ±1
        and positive everywhere.
        """
        nominal = eft_math.weights_at(self.coefficients(), self.theta_vector(theta))
        nuisances = dict(nuisances or {})
        if not nuisances:
            return nominal
        declared = self.nuisances
        unknown = sorted(set(nuisances) - set(declared))
        if unknown:
            raise InvalidInputError(f"unknown nuisance parameter(s) {unknown}; this EventSet has {sorted(declared)}")
        variations = self.data["eft_variations"]
        log_factor = torch.zeros_like(nominal)
        theta_vec = self.theta_vector(theta)
        for name, nu in nuisances.items():
            up_name, down_name = declared[name]
            up = eft_math.weights_at(torch.from_numpy(np.asarray(variations.sel(variation=up_name).values)), theta_vec)
            down = eft_math.weights_at(torch.from_numpy(np.asarray(variations.sel(variation=down_name).values)), theta_vec)
            log_up, log_down = torch.log(up / nominal), torch.log(down / nominal)
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
        return EventSet(xr.concat([s.data for s in sets], dim="event", combine_attrs="override"))

    # ---- IO --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``.nc`` (netCDF via h5netcdf) or ``.zarr``; an interrupted write
        leaves no partial file at ``path``."""
        path = Path(path)
        fmt = _format_of(path)
        with atomic_destination(path) as tmp:
            if fmt == "netcdf":
                self.data.to_netcdf(tmp, engine="h5netcdf")
            else:
                chunked = self.data.chunk({"event": min(max(self.n_events, 1), _ZARR_CHUNK_EVENTS)})
                chunked.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)  # v3 has no string dtype spec
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, lazy: bool = False, chunk_events: int = 100_000) -> "EventSet":
        """Read an EventSet; ``lazy=True`` keeps the arrays on disk as dask chunks (netCDF: of
        ``chunk_events`` events; zarr: the chunks it was written with, 100 000 events)."""
        path = Path(path)
        if not path.exists():
            raise InvalidInputError(f"no such EventSet file: {path}")
        fmt = _format_of(path)
        chunks = {"event": chunk_events} if lazy else None
        try:
            if fmt == "netcdf":
                data = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
                if not lazy:
                    data = data.load()
                    data.close()
            else:
                # lazily: the chunks the file was written with (100 000 events), not chunk_events
                data = xr.open_zarr(path, chunks={}) if lazy else xr.open_zarr(path, chunks=None).load()
        except (OSError, ValueError, KeyError) as exc:
            raise DataFormatError(f"{path} is not a readable EventSet file ({type(exc).__name__}: {exc})") from exc
        return cls(data)


def _format_of(path: Path) -> str:
    if path.suffix == ".nc":
        return "netcdf"
    if path.suffix == ".zarr":
        return "zarr"
    raise InvalidInputError(f"EventSet files end in .nc (netCDF) or .zarr, got {path.name!r}")


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _validate(data: xr.Dataset) -> None:
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
    roles = json.loads(data.attrs["roles"])
    if data.sizes.get("latent") != 4 * len(roles):
        raise DataFormatError(f"EventSet: z has {data.sizes.get('latent')} latent entries, expected 4 × {len(roles)} roles")
    expected = eft_math.monomial_names(json.loads(data.attrs["operators"]), data.attrs["order"])
    if list(data["component"].values) != expected:
        raise DataFormatError(f"EventSet: eft components {list(data['component'].values)} do not match {expected}")
