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
from sbihep.errors import InvalidInputError
from sbihep.events.eventset import EventSet

__all__ = ["lepton_charges", "parton_observables", "parton_features", "reconstruct", "COMPLETE_PARTON_FEATURES"]


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


#: A complete parton-level description per process — all kinematic degrees of freedom up to the
#: irrelevant overall azimuth (angles as cos/sin pairs) plus the lepton charge — for estimators
#: trained "at parton level", where x carries the same information as z.
COMPLETE_PARTON_FEATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "wh_lvbb": (
        ("m(l+v+b+bbar)", "y(l+v+b+bbar)", "cos_cs(l+v,b+bbar)", "cos_helicity(l,v;b,bbar)", "m(l,v)", "m(b,bbar)",
         "cos_helicity(b,bbar;l,v)"),
        ("phi_helicity(l,v;b,bbar)", "phi_helicity(b,bbar;l,v)"),
    ),
}  # fmt: skip


def parton_features(events: EventSet, process) -> tuple[EventSet, list[str]]:
    """Add the complete parton-level feature set of ``process`` to ``x``; returns (events, feature names).

    Raw four-momenta make poor network inputs (SALLY recovered 2–14% of the WH information from
    them); these invariant masses, rapidities and decay angles are the physics coordinates.
    """
    if process.name not in COMPLETE_PARTON_FEATURES:
        raise InvalidInputError(
            f"no complete parton-level feature set is defined for {process.name!r} (have {sorted(COMPLETE_PARTON_FEATURES)})"
        )
    plain, angles = COMPLETE_PARTON_FEATURES[process.name]
    with_x = parton_observables(events, list(plain + angles), process)
    x = with_x.observables()
    extra = {"charge(l)": lepton_charges(events, process).numpy()}
    for name in angles:
        phi = x.sel(observable=name).values
        extra[f"cos {name}"], extra[f"sin {name}"] = np.cos(phi), np.sin(phi)
    return with_x.with_observables(extra), list(plain) + list(extra)
