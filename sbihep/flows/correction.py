"""Simulation correction by a conditional flow: morph simulated events into data-like events.

One :class:`~sbihep.flows.conditional.ConditionalFlow` q(x | c, y) is trained on simulation (c = 0)
and data (c = 1) together, optionally with further conditions y (e.g. a generator-level quantity or a
run period) that both samples share.  Its bijection T_{c,y}: x → u (u ~ N(0, 1) for either c) gives
the correction

    x' = T_{1,y}⁻¹( T_{0,y}(x) ),

a map that pushes the simulated distribution p_sim(x | y) onto the data distribution p_data(x | y)
(for one feature it is the quantile morphing F_data⁻¹ ∘ F_sim; with several features it is the
flow's triangular transport, which keeps the simulated events' order structure).  Because both
conditional densities share one network, the morphing of nearby events is smooth.

The bijection is the flow's own, :meth:`ConditionalFlow.transform` / :meth:`ConditionalFlow.inverse`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.estimators.train import TrainingHistory
from sbihep.flows.conditional import ConditionalFlow
from sbihep.flows.omnifold import as_events, as_weights

__all__ = ["SimulationCorrection"]



class SimulationCorrection:
    """A flow q(x | c, y) with c ∈ {0 = simulation, 1 = data} and optional conditions y.

    Args:
        n_features: D, the width of x.
        n_conditions: width of the optional shared conditions y (0: none).
        kind, transforms, hidden, bins, seed: the :class:`~sbihep.flows.conditional.ConditionalFlow`.
    """

    kind = "simulation_correction"

    def __init__(
        self, n_features: int, n_conditions: int = 0, *, kind: str = "nsf", transforms: int = 3, hidden: Sequence[int] = (64, 64),
        bins: int = 8, seed: int = 0,
    ) -> None:
        if isinstance(n_conditions, bool) or not isinstance(n_conditions, (int, np.integer)) or n_conditions < 0:
            raise InvalidInputError(f"n_conditions must be a non-negative integer, got {n_conditions!r}")
        self.n_conditions = int(n_conditions)
        self.flow = ConditionalFlow(n_features, 1 + self.n_conditions, kind=kind, transforms=transforms, hidden=hidden, bins=bins, seed=seed)

    @property
    def n_features(self) -> int:
        return self.flow.n_features

    # ---- inputs ------------------------------------------------------------------------
    def _context(self, n: int, label: float, conditions, argument: str) -> np.ndarray:
        c = np.full((n, 1), float(label))
        if self.n_conditions == 0:
            if conditions is not None:
                raise InvalidInputError(f"{argument}: this correction has no conditions (n_conditions=0), got an array")
            return c
        if conditions is None:
            raise InvalidInputError(f"{argument}: the correction needs {self.n_conditions} condition column(s), got none")
        y = as_events(conditions, argument, self.n_conditions)
        if len(y) != n:
            raise ShapeError(f"{argument}: has {len(y)} rows, the events have {n}")
        return np.concatenate([c, y], axis=1)

    # ---- training ----------------------------------------------------------------------
    def fit(
        self, simulation, data, *, simulation_weights=None, data_weights=None, simulation_conditions=None, data_conditions=None,
        **train_options,
    ) -> TrainingHistory:
        """Train the one flow on both samples.

        Args:
            simulation: (N, D) simulated events; data: (M, D) data events.
            simulation_weights, data_weights: (N,), (M,) event weights (default 1).  Each sample's weights
                are rescaled to sum to its number of events, so both densities are learned with the
                weight their statistics deserve whatever the normalisation of the inputs.
            simulation_conditions, data_conditions: (N, n_conditions), (M, n_conditions) shared conditions.
            train_options: passed to :meth:`ConditionalFlow.fit` (epochs, batch_size, quiet, device, …).
        """
        xs = as_events(simulation, "simulation", self.n_features)
        xd = as_events(data, "data", self.n_features)
        ws = as_weights(simulation_weights, len(xs), "simulation_weights")
        wd = as_weights(data_weights, len(xd), "data_weights")
        if not (ws.sum() > 0 and wd.sum() > 0):
            raise InvalidInputError("simulation_weights and data_weights must each have a positive sum")
        cs = self._context(len(xs), 0.0, simulation_conditions, "simulation_conditions")
        cd = self._context(len(xd), 1.0, data_conditions, "data_conditions")
        x = np.concatenate([xs, xd])
        context = np.concatenate([cs, cd])
        w = np.concatenate([ws * len(xs) / ws.sum(), wd * len(xd) / wd.sum()])
        return self.flow.fit(x, context, weights=w, **train_options)

    # ---- the bijection -----------------------------------------------------------------
    def _map(self, values: np.ndarray, context: np.ndarray, inverse: bool) -> np.ndarray:
        return self.flow.inverse(values, context) if inverse else self.flow.transform(values, context)

    def to_latent(self, x, label: int, conditions=None) -> np.ndarray:
        """(N, D) base-space u = T_{label,y}(x) of the events x (N, D); label 0 = simulation, 1 = data."""
        x = as_events(x, "x", self.n_features)
        return self._map(x, self._context(len(x), _label(label), conditions, "conditions"), inverse=False)

    def from_latent(self, u, label: int, conditions=None) -> np.ndarray:
        """(N, D) events x = T_{label,y}⁻¹(u) in the original units."""
        u = as_events(u, "u", self.n_features)
        return self._map(u, self._context(len(u), _label(label), conditions, "conditions"), inverse=True)

    def correct(self, simulation, conditions=None) -> np.ndarray:
        """(N, D) corrected events x' = T_{1,y}⁻¹(T_{0,y}(x)) for the simulated events x (N, D)."""
        return self.from_latent(self.to_latent(simulation, 0, conditions), 1, conditions)

    # ---- persistence -------------------------------------------------------------------
    def save(self, path) -> Path:
        """Directory with ``correction.json`` (kind, sbihep version, n_conditions) and ``flow/`` (the flow)."""
        path = Path(path)
        with atomic_destination(path) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "correction.json").write_text(
                json.dumps({"kind": self.kind, "sbihep_version": __version__, "n_conditions": self.n_conditions}, indent=2)
            )
            self.flow.save(tmp / "flow")
        return path

    @classmethod
    def load(cls, path) -> "SimulationCorrection":
        path = Path(path)
        try:
            config = json.loads((path / "correction.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"path: {str(path)!r} is not a saved SimulationCorrection ({exc})") from exc
        if config.get("kind") != cls.kind:
            raise DataFormatError(f"path: {str(path)!r} holds a {config.get('kind')!r}, not a {cls.kind!r}")
        obj = cls.__new__(cls)
        obj.n_conditions = int(config["n_conditions"])
        obj.flow = ConditionalFlow.load(path / "flow")
        if obj.flow.n_context != 1 + obj.n_conditions:
            raise DataFormatError(f"path: the flow in {str(path)!r} has {obj.flow.n_context} context columns, expected {1 + obj.n_conditions}")
        return obj


def _label(label) -> float:
    if label not in (0, 1) or isinstance(label, float) and label not in (0.0, 1.0):
        raise InvalidInputError(f"label must be 0 (simulation) or 1 (data), got {label!r}")
    return float(label)
