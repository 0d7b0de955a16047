"""From parton level to analysis level: detector response and observables on an EventSet.

The parton-level record z stays in the EventSet; the detector adds ``passed`` and the observables
``x`` (event, observable).  At reco level the neutrinos are invisible and the missing transverse
momentum is available as the massless pseudo-particle ``met`` = (|p̸_T|, p̸_x, p̸_y, 0), so that
e.g. ``mT(l,met)`` and ``pt(met)`` can be requested.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from sbihep.events import observables as obs
from sbihep.events.detector import Detector, DetectorCard
from sbihep.events.eventset import EventSet

__all__ = ["lepton_charges", "parton_observables", "reconstruct"]


def lepton_charges(events: EventSet, process) -> torch.Tensor:
    """(N,) charge of each event's charged lepton (±1), from its subprocess."""
    per_subprocess = torch.tensor([float(process.lepton_charge(s)) for s in events.subprocesses], dtype=torch.float64)
    return per_subprocess[torch.from_numpy(events.data["subprocess"].values.astype(np.int64))]


def parton_observables(events: EventSet, names: Sequence[str], process=None) -> EventSet:
    """Observables of the parton-level momenta (roles as in ``events.roles``) added to ``x``."""
    charge = lepton_charges(events, process) if process is not None else None
    values = obs.compute(list(names), events.momenta(), events.roles, charge=charge)
    return events.with_observables(values)


def reconstruct(
    events: EventSet,
    detector: Detector | DetectorCard | str,
    names: Sequence[str],
    *,
    seed: int = 0,
    process=None,
) -> EventSet:
    """Apply ``detector`` to the final state and compute reco-level observables ``names``.

    Args:
        events: parton-level EventSet (incoming partons in the first two roles).
        detector: a Detector, a DetectorCard, a built-in card name ("default", "perfect") or a TOML path.
        names: observables in the grammar of :mod:`sbihep.events.observables`, over the visible
            roles and ``met``.
        seed: seed of the detector's random numbers.
        process: the process (for the lepton charge of charge-odd observables), optional.
    Returns:
        a new EventSet with ``x``, ``passed`` and the card in the ``detector_card`` attribute.
    """
    det = detector if isinstance(detector, Detector) else Detector(detector)
    generator = torch.Generator().manual_seed(int(seed))
    reco = det.apply(events.momenta(), events.roles, generator, n_initial=2)
    met = reco.met
    met_vector = torch.stack([torch.linalg.vector_norm(met, dim=-1), met[:, 0], met[:, 1], torch.zeros_like(met[:, 0])], -1)
    momenta = torch.cat([reco.momenta, met_vector[:, None, :]], dim=1)
    roles = [*reco.roles, "met"]
    charge = lepton_charges(events, process) if process is not None else None
    values = obs.compute(list(names), momenta, roles, charge=charge)
    out = events.with_observables(values)
    data = out.data.assign(passed=(("event",), reco.passed.numpy()))
    data.attrs["detector_card"] = det.card.to_toml()
    data.attrs["detector_seed"] = int(seed)
    return EventSet(data)
