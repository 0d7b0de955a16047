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

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbihep._toml import check_table, did_you_mean, read_toml
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
#: smallest allowed value of each [generation] field (VEGAS needs a few points per iteration)
_GENERATION_MIN = {"n_adapt": 1, "n_per_iteration": 100, "chunk_size": 1, "n_workers": 1}
_SEED_MAX = 2**32  # numpy's SeedSequence and vegas take any non-negative int; 32 bits keep every backend happy

#: kept for callers that imported the checker from here
_check_table = check_table


def _check_seed(value, where: str) -> None:
    if not 0 <= value < _SEED_MAX:
        raise InvalidInputError(f"{where} must lie in [0, 2**32), got {value!r}")


def _strings(value: list, where: str) -> None:
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise InvalidInputError(f"{where} must be a list of strings, got {bad[:3]!r} in it")


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
        """Read a card from a file path or from TOML text (see :func:`sbihep._toml.read_toml`), checking
        every key, type and range; :meth:`check` then validates the names against the process."""
        data, where = read_toml(source, "simulation card")
        check_table(data, _TOP, where)
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise InvalidInputError(f"{where}: missing required field(s) {missing}")
        if not (math.isfinite(data["sqrt_s_gev"]) and data["sqrt_s_gev"] > 0):
            raise InvalidInputError(f"{where}: 'sqrt_s_gev' must be a positive collider energy in GeV, got {data['sqrt_s_gev']!r}")
        if data["n_events"] < 1:
            raise InvalidInputError(f"{where}: 'n_events' must be ≥ 1, got {data['n_events']!r}")
        _check_seed(data.get("seed", 0), f"{where}: 'seed'")
        if data.get("order", "quadratic") not in ("linear", "quadratic"):
            raise InvalidInputError(f"{where}: 'order' must be \"linear\" or \"quadratic\", got {data['order']!r}"
                                    f"{did_you_mean(data['order'], ('linear', 'quadratic'))}")
        for key in ("systematics", "observables"):
            _strings(data.get(key, []), f"{where}: {key!r}")
        detector = data.get("detector", {})
        check_table(detector, _DETECTOR, f"{where} [detector]")
        if detector and "card" not in detector:
            raise InvalidInputError(f"{where} [detector]: missing required field 'card'")
        if "seed" in detector:
            _check_seed(detector["seed"], f"{where} [detector]: 'seed'")
        generation = data.get("generation", {})
        check_table(generation, _GENERATION, f"{where} [generation]")
        for key, value in generation.items():
            if value < _GENERATION_MIN[key]:
                raise InvalidInputError(f"{where} [generation]: {key!r} must be ≥ {_GENERATION_MIN[key]}, got {value!r}")
        check_table(data.get("process_options", {}), {k: (str, int, float, bool) for k in data.get("process_options", {})},
                    f"{where} [process_options]")
        for name, value in data.get("theta", {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInputError(f"{where}: theta.{name} must be a finite number, got {value!r}")
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

    def _process(self):
        from sbihep.physics.processes import PROCESSES, get_process

        if self.process not in PROCESSES:
            raise InvalidInputError(f"simulation card: unknown process {self.process!r}{did_you_mean(self.process, PROCESSES)}; "
                                    f"available: {sorted(PROCESSES)}")
        try:
            return get_process(self.process, **self.process_options)
        except (TypeError, InvalidInputError) as exc:  # an option the constructor does not take, or a bad value
            raise InvalidInputError(f"simulation card [process_options]: {exc}") from exc

    def check(self):
        """Validate the card against the process before any work: process name and options, θ names
        and bounds, systematics, detector card.  Returns the process.

        Raises:
            InvalidInputError: naming the field (with a did-you-mean for names).
        """
        from sbihep.events.generate import SYSTEMATICS

        process = self._process()
        unknown = [k for k in self.theta if k not in process.operators]
        if unknown:
            raise InvalidInputError(f"simulation card: theta.{unknown[0]} is not an operator of {self.process!r}"
                                    f"{did_you_mean(unknown[0], process.operators)}; it has {list(process.operators)}")
        process.parameter_space().to_vector(self.theta)  # bounds
        bad = [k for k in self.systematics if k not in SYSTEMATICS]
        if bad:
            raise InvalidInputError(f"simulation card: unknown systematics {bad[0]!r}{did_you_mean(bad[0], SYSTEMATICS)}; "
                                    f"available: {sorted(SYSTEMATICS)}")
        if self.detector_card is not None:
            from sbihep.events.detector import Detector

            Detector(self.detector_card)
        return process

    def run(self, *, progress: bool = True):
        """Generate the EventSet this card describes."""
        from sbihep.events.generate import generate

        process = self.check()
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
