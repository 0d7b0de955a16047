"""TOML run cards for the command line.  Parsing is strict: unknown keys and missing fields are errors.

A simulation card (``sbihep simulate CARD.toml -o events.nc``)::

    process = "wh_lvbb"          # required: see `sbihep processes`
    sqrt_s_gev = 13000.0         # required
    n_events = 10000             # required
    seed = 1
    order = "quadratic"          # or "linear"
    unweighted = true
    systematics = ["mu_f"]       # nuisance parameters stored as weight variations
    theta = { cHW = 0.0 }        # generation point (weights are exact at every θ anyway)
    observables = ["pt(l)", "mT(l,met)"]   # reco level with a detector, parton level without

    [process_options]            # passed to the process constructor, e.g. charge = 1
    [detector]
    card = "default"             # a built-in card name or a TOML file path
    seed = 7                     # optional, default: the run seed
    [generation]                 # all optional
    n_adapt = 8
    n_per_iteration = 20000
    chunk_size = 50000
    n_workers = 1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbihep._toml import read_toml
from sbihep.errors import InvalidInputError

__all__ = ["SimulationCard"]

_TOP = {
    "process": str, "sqrt_s_gev": (int, float), "n_events": int, "seed": int, "order": str, "unweighted": bool,
    "systematics": list, "theta": dict, "observables": list, "process_options": dict, "detector": dict,
    "generation": dict,
}  # fmt: skip
_REQUIRED = ("process", "sqrt_s_gev", "n_events")
_DETECTOR = {"card": str, "seed": int}
_GENERATION = {"n_adapt": int, "n_per_iteration": int, "chunk_size": int, "n_workers": int}


def _check_table(table: dict, schema: dict, where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            raise InvalidInputError(f"{where}: unknown key {key!r}; allowed: {sorted(schema)}")
        expected = schema[key]
        if isinstance(value, bool) and expected is not bool:
            raise InvalidInputError(f"{where}: {key!r} must be {_type_name(expected)}, got a boolean")
        if not isinstance(value, expected):
            raise InvalidInputError(f"{where}: {key!r} must be {_type_name(expected)}, got {type(value).__name__} {value!r}")


def _type_name(expected) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return expected.__name__


@dataclass(frozen=True)
class SimulationCard:
    """What ``sbihep simulate`` generates; see the module docstring for the TOML form."""

    process: str
    sqrt_s_gev: float
    n_events: int
    seed: int = 0
    order: str = "quadratic"
    unweighted: bool = True
    systematics: tuple[str, ...] = ()
    theta: dict[str, float] = field(default_factory=dict)
    observables: tuple[str, ...] = ()
    process_options: dict[str, Any] = field(default_factory=dict)
    detector_card: str | None = None
    detector_seed: int | None = None
    generation: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, source: str | Path) -> "SimulationCard":
        """Read a card from a file path or from TOML text."""
        data, where = read_toml(source, "simulation card")
        _check_table(data, _TOP, where)
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise InvalidInputError(f"{where}: missing required field(s) {missing}")
        detector = data.get("detector", {})
        _check_table(detector, _DETECTOR, f"{where} [detector]")
        if detector and "card" not in detector:
            raise InvalidInputError(f"{where} [detector]: missing required field 'card'")
        generation = data.get("generation", {})
        _check_table(generation, _GENERATION, f"{where} [generation]")
        for key in ("theta",):
            for name, value in data.get(key, {}).items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InvalidInputError(f"{where}: theta.{name} must be a number, got {value!r}")
        return cls(
            process=data["process"],
            sqrt_s_gev=float(data["sqrt_s_gev"]),
            n_events=data["n_events"],
            seed=data.get("seed", 0),
            order=data.get("order", "quadratic"),
            unweighted=data.get("unweighted", True),
            systematics=tuple(data.get("systematics", ())),
            theta={k: float(v) for k, v in data.get("theta", {}).items()},
            observables=tuple(data.get("observables", ())),
            process_options=dict(data.get("process_options", {})),
            detector_card=detector.get("card"),
            detector_seed=detector.get("seed"),
            generation=dict(generation),
        )

    def run(self, *, progress: bool = True):
        """Generate the EventSet this card describes."""
        from sbihep.events.generate import generate
        from sbihep.physics.processes import get_process

        process = get_process(self.process, **self.process_options)
        return generate(
            process,
            self.sqrt_s_gev,
            self.n_events,
            theta=self.theta,
            order=self.order,  # type: ignore[arg-type]
            unweighted=self.unweighted,
            seed=self.seed,
            systematics=self.systematics,
            detector=self.detector_card,
            observables=list(self.observables) or None,
            detector_seed=self.detector_seed,
            progress=progress,
            **self.generation,
        )
