"""A parametrised detector described by a strict TOML card, acting on parton-level momenta.

>>> card = DetectorCard.builtin("default")          # or DetectorCard.from_toml(path_or_text)
>>> reco = Detector(card).apply(momenta[:, 2:], roles[2:], generator=torch.Generator().manual_seed(1))
>>> reco.momenta, reco.btagged, reco.met, reco.passed

Card format (every field required unless stated; units in brackets)
--------------------------------------------------------------------
::

    name = "default"                       # required string
    description = "…"                      # optional string

    [leptons]                              # e, μ: σ(pT)/pT = c ⊕ s·pT
    pt_resolution_constant = 0.01          # c  [1]
    pt_resolution_slope = 1e-4             # s  [GeV⁻¹]
    eta_max = 2.5                          # |η| acceptance [1] (inf: everywhere)
    pt_min = 25.0                          # object threshold [GeV]

    [jets]                                 # quarks and gluons: σ(E)/E = a/√(E/GeV) ⊕ b
    energy_resolution_stochastic = 1.0     # a  [√GeV / √GeV, i.e. "100 %/√E"]
    energy_resolution_constant = 0.05      # b  [1]
    eta_max = 4.5
    pt_min = 20.0                          # [GeV]

    [btag]                                 # probability that a jet within |η| ≤ eta_max is tagged
    efficiency = 0.70                      # b jets
    mistag_c = 0.10                        # c jets
    mistag_light = 0.01                    # u, d, s, g jets
    eta_max = 2.5

    [met]                                  # extra noise per MET component: σ = a·√(ΣET/GeV) ⊕ b
    resolution_stochastic = 0.5            # a  [√GeV]
    resolution_constant = 0.0              # b  [GeV]

    [trigger]                              # fires if any trigger fires (inf disables one)
    single_lepton_pt = 27.0                # an accepted lepton with pT ≥ this [GeV]
    met = 200.0                            # |MET| ≥ this [GeV]

    [selection]
    n_btag_min = 0                         # accepted b-tagged jets required (integer)
    met_min = 0.0                          # |MET| required [GeV]

Unknown sections or keys, missing fields, wrong types (a string for a number, a float for an
integer, a boolean for anything), NaN, negative or infinite resolutions, and probabilities outside
[0, 1] raise :class:`~sbihep.errors.InvalidInputError` naming the section and the key.  Cards
shipped with sbihep: ``default`` (typical LHC-detector numbers, not those of a specific
experiment) and ``perfect`` (no smearing, full acceptance, ideal tagging).

What the detector does
----------------------
Particles are classified by role (see :func:`classify_role`): charged leptons (``l``, ``e``,
``mu`` with optional ``+``/``-``/``bar``/``~``/digits), neutrinos (roles starting with ``v`` or
``nu``: invisible), and jets from quarks and gluons (``b``, ``c``, ``q``, ``u``, ``d``, ``s``,
``g``, ``j``; flavour from the first letter).  Tops, W, Z, h, photons and taus are not final-state
objects of this detector: decay them first (a clear error says so).

1. Smearing: each visible four-vector is multiplied by f = 1 + σ_rel ξ, ξ ~ N(0, 1), clamped at
   f ≥ 0 (leptons: σ_rel of pT; jets: σ_rel of E), so its direction and m/E are kept.
2. Acceptance per object: |η| ≤ eta_max and pT ≥ pt_min of its type (after smearing).
3. b-tagging: a jet within the b-tag |η| range is tagged with the card's probability for its flavour.
4. MET = −Σ p⃗_T of the smeared visible objects within their |η| acceptance (whatever their pT),
   plus Gaussian noise per component of width a√ΣET ⊕ b with ΣET the scalar sum of those p_T.  For
   parton-level events with no initial-state p_T this is the neutrinos' p⃗_T up to the smearing.
5. ``passed``: every visible object accepted (the reco record keeps a fixed list of objects in role
   order), a trigger fired, at least ``n_btag_min`` accepted b-tagged jets, and |MET| ≥ ``met_min``.

Random numbers come only from the ``generator`` argument, drawn in a fixed order (smearing
(N, n_visible), tagging (N, n_visible), MET noise (N, 2)) whatever the card, so a seed gives the
same result on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from sbihep._toml import did_you_mean, read_toml
from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events.observables import pseudorapidity

__all__ = [
    "LeptonResponse",
    "JetResponse",
    "BTagging",
    "MissingET",
    "Trigger",
    "Selection",
    "DetectorCard",
    "RecoLevel",
    "Detector",
    "classify_role",
    "builtin_cards",
]

CARD_DIRECTORY = Path(__file__).with_name("cards")

# Field metadata: unit (for to_toml comments) and the allowed range.
_RESOLUTION = "resolution"  # finite, ≥ 0
_PROBABILITY = "probability"  # in [0, 1]
_ACCEPTANCE = "acceptance"  # > 0, may be inf
_THRESHOLD = "threshold"  # ≥ 0, may be inf
_COUNT = "count"  # integer ≥ 0


def _field(kind: str, unit: str, doc: str):
    return field(metadata={"kind": kind, "unit": unit, "doc": doc})


@dataclass(frozen=True)
class LeptonResponse:
    """Charged leptons (e, μ): σ(pT)/pT = c ⊕ s·pT."""

    pt_resolution_constant: float = _field(_RESOLUTION, "1", "c in σ(pT)/pT = c ⊕ s·pT")
    pt_resolution_slope: float = _field(_RESOLUTION, "1/GeV", "s in σ(pT)/pT = c ⊕ s·pT")
    eta_max: float = _field(_ACCEPTANCE, "1", "|η| acceptance")
    pt_min: float = _field(_THRESHOLD, "GeV", "object pT threshold")


@dataclass(frozen=True)
class JetResponse:
    """Jets from quarks and gluons: σ(E)/E = a/√(E/GeV) ⊕ b."""

    energy_resolution_stochastic: float = _field(_RESOLUTION, "sqrt(GeV)", "a in σ(E)/E = a/√E ⊕ b")
    energy_resolution_constant: float = _field(_RESOLUTION, "1", "b in σ(E)/E = a/√E ⊕ b")
    eta_max: float = _field(_ACCEPTANCE, "1", "|η| acceptance")
    pt_min: float = _field(_THRESHOLD, "GeV", "object pT threshold")


@dataclass(frozen=True)
class BTagging:
    """Per-jet tagging probabilities within |η| ≤ eta_max (0 outside)."""

    efficiency: float = _field(_PROBABILITY, "1", "tag probability of b jets")
    mistag_c: float = _field(_PROBABILITY, "1", "tag probability of c jets")
    mistag_light: float = _field(_PROBABILITY, "1", "tag probability of u, d, s, g jets")
    eta_max: float = _field(_ACCEPTANCE, "1", "|η| range of the tagger")


@dataclass(frozen=True)
class MissingET:
    """Extra Gaussian noise per MET component: σ = a·√(ΣET/GeV) ⊕ b."""

    resolution_stochastic: float = _field(_RESOLUTION, "sqrt(GeV)", "a in σ = a√ΣET ⊕ b")
    resolution_constant: float = _field(_RESOLUTION, "GeV", "b in σ = a√ΣET ⊕ b")


@dataclass(frozen=True)
class Trigger:
    """An event is triggered when any trigger fires; inf disables a trigger."""

    single_lepton_pt: float = _field(_THRESHOLD, "GeV", "fires on an accepted lepton with pT at least this")
    met: float = _field(_THRESHOLD, "GeV", "fires on |MET| at least this")


@dataclass(frozen=True)
class Selection:
    """Event selection beyond object acceptance and trigger."""

    n_btag_min: int = _field(_COUNT, "1", "accepted b-tagged jets required")
    met_min: float = _field(_THRESHOLD, "GeV", "|MET| required")


_SECTIONS: dict[str, type] = {
    "leptons": LeptonResponse,
    "jets": JetResponse,
    "btag": BTagging,
    "met": MissingET,
    "trigger": Trigger,
    "selection": Selection,
}


def _check_value(section: str, f: dataclasses.Field, value: Any) -> float | int:
    """Type and range check of one card entry; returns it as float (or int for counts)."""
    where = f"detector card [{section}] {f.name}"
    kind = f.metadata["kind"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        wanted = "an integer" if kind == _COUNT else "a number"
        raise InvalidInputError(f"{where} must be {wanted}, got {value!r} ({type(value).__name__})")
    if kind == _COUNT:
        if not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{where} must be a non-negative integer, got {value!r}")
        return value
    value = float(value)
    if math.isnan(value):
        raise InvalidInputError(f"{where} is NaN")
    if kind == _RESOLUTION and not (0.0 <= value < math.inf):
        raise InvalidInputError(f"{where} must be a finite resolution ≥ 0, got {value!r}")
    if kind == _PROBABILITY and not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{where} must be a probability in [0, 1], got {value!r}")
    if kind == _ACCEPTANCE and not value > 0.0:
        raise InvalidInputError(f"{where} must be > 0 (inf for no limit), got {value!r}")
    if kind == _THRESHOLD and not value >= 0.0:
        raise InvalidInputError(f"{where} must be ≥ 0 (inf to disable), got {value!r}")
    return value


def _section_from_table(section: str, table: Any):
    cls = _SECTIONS[section]
    if not isinstance(table, dict):
        raise InvalidInputError(f"detector card: [{section}] must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise InvalidInputError(f"detector card: unknown key(s) {unknown} in [{section}]{did_you_mean(unknown[0], fields)}; "
                                f"allowed: {sorted(fields)}")
    missing = [name for name in fields if name not in table]
    if missing:
        raise InvalidInputError(f"detector card: [{section}] is missing required field(s) {missing}")
    return cls(**{name: _check_value(section, f, table[name]) for name, f in fields.items()})


@dataclass(frozen=True)
class DetectorCard:
    """A detector description; see the module docstring for the TOML format and units."""

    name: str
    leptons: LeptonResponse
    jets: JetResponse
    btag: BTagging
    met: MissingET
    trigger: Trigger
    selection: Selection
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorCard":
        """Build from the parsed TOML table (strict: see the module docstring)."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"detector card must be a table, got {type(data).__name__}")
        allowed = {"name", "description", *_SECTIONS}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InvalidInputError(f"detector card: unknown top-level key(s) or section(s) {unknown}{did_you_mean(unknown[0], allowed)}; "
                                    f"allowed: {sorted(allowed)}")
        missing = [key for key in ("name", *_SECTIONS) if key not in data]
        if missing:
            raise InvalidInputError(f"detector card: missing required section(s) or field(s) {missing}")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                raise InvalidInputError(f"detector card: {key} must be a string, got {data[key]!r}")
        sections = {section: _section_from_table(section, data[section]) for section in _SECTIONS}
        return cls(name=data["name"], description=data.get("description", ""), **sections)

    @classmethod
    def from_toml(cls, source: str | Path) -> "DetectorCard":
        """Load from a TOML file path or TOML text."""
        data, _ = read_toml(source, "detector card")
        return cls.from_dict(data)

    @classmethod
    def builtin(cls, name: str) -> "DetectorCard":
        """A card shipped with sbihep (``builtin_cards()`` lists them)."""
        path = CARD_DIRECTORY / f"{name}.toml"
        if not isinstance(name, str) or not path.is_file():
            raise InvalidInputError(f"no built-in detector card {name!r}{did_you_mean(name, builtin_cards())}; available: {builtin_cards()}")
        return cls.from_toml(path)

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml` reads back to an equal card; units in comments."""
        lines = [f"name = {json.dumps(self.name, ensure_ascii=False)}"]
        if self.description:
            lines.append(f"description = {json.dumps(self.description, ensure_ascii=False)}")
        for section in _SECTIONS:
            lines += ["", f"[{section}]"]
            values = getattr(self, section)
            for f in dataclasses.fields(values):
                value = getattr(values, f.name)
                text = str(value) if isinstance(value, int) else repr(float(value))
                lines.append(f"{f.name} = {text}  # [{f.metadata['unit']}] {f.metadata['doc']}")
        return "\n".join(lines) + "\n"

    def replace(self, **sections: dict) -> "DetectorCard":
        """A copy with fields of some sections changed, e.g. ``card.replace(met={"resolution_constant": 0.0})``."""
        data = tomllib.loads(self.to_toml())
        for section, changes in sections.items():
            if section not in _SECTIONS:
                raise InvalidInputError(f"detector card has no section {section!r}{did_you_mean(section, _SECTIONS)}; sections: {list(_SECTIONS)}")
            data[section].update(changes)
        return DetectorCard.from_dict(data)


def builtin_cards() -> list[str]:
    """Names of the cards shipped in ``sbihep/events/cards``."""
    return sorted(p.stem for p in CARD_DIRECTORY.glob("*.toml"))


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------
_SUFFIX = re.compile(r"(\+|-|~|bar|\d+|_)$")
_NOT_FINAL = {"t": "top quark", "w": "W boson", "z": "Z boson", "h": "Higgs boson", "a": "photon", "gamma": "photon",
              "ta": "tau lepton", "tau": "tau lepton"}


def classify_role(role: str) -> tuple[str, str]:
    """(kind, flavour) of a final-state role: kind ∈ {"lepton", "neutrino", "jet"}; flavour of jets
    ∈ {"b", "c", "light"} ("" otherwise).

    Raises:
        InvalidInputError: a role that is not a final-state object of this detector (tops, W, Z, h,
            photons, taus) or that cannot be classified.
    """
    if not isinstance(role, str) or not role:
        raise InvalidInputError(f"roles must be non-empty strings, got {role!r}")
    base = role.lower()
    while _SUFFIX.search(base) and _SUFFIX.sub("", base):
        base = _SUFFIX.sub("", base)
    if base.startswith("nu") or base.startswith("v"):
        return "neutrino", ""
    if base in ("l", "e", "mu", "lep"):
        return "lepton", ""
    if base in ("b", "c"):
        return "jet", base
    if base in ("q", "u", "d", "s", "g", "j"):
        return "jet", "light"
    if base in _NOT_FINAL:
        raise InvalidInputError(
            f"role {role!r} is a {_NOT_FINAL[base]}, not a final-state object of the parametrised detector; "
            "decay it to leptons, neutrinos and quarks first"
        )
    raise InvalidInputError(
        f"cannot classify role {role!r}: expected a lepton (l, e, mu), a neutrino (v…, nu…) or a jet (b, c, q, u, d, s, g, j)"
    )


# --------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------
@dataclass
class RecoLevel:
    """Reconstructed events.

    Attributes:
        momenta: (N, n_visible, 4) float64 smeared visible four-momenta (GeV), in role order.
        roles: the n_visible roles (the input roles without the neutrinos and initial slots).
        slots: for each visible object, its slot index in the input momenta.
        accepted: (N, n_visible) bool, within |η| acceptance and above the object pT threshold.
        btagged: (N, n_visible) bool.
        met: (N, 2) float64 missing transverse momentum (x, y) in GeV.
        triggered: (N,) bool.
        passed: (N,) bool, the full selection (module docstring, step 5).
    """

    momenta: torch.Tensor
    roles: tuple[str, ...]
    slots: tuple[int, ...]
    accepted: torch.Tensor
    btagged: torch.Tensor
    met: torch.Tensor
    triggered: torch.Tensor
    passed: torch.Tensor

    @property
    def met_pt(self) -> torch.Tensor:
        """|MET| (N,) in GeV."""
        return torch.hypot(self.met[:, 0], self.met[:, 1])


def _check_apply_inputs(momenta, roles, generator, n_initial) -> None:
    if not isinstance(momenta, torch.Tensor) or momenta.ndim != 3 or momenta.shape[-1] != 4:
        shape = tuple(momenta.shape) if isinstance(momenta, torch.Tensor) else type(momenta).__name__
        raise ShapeError(f"momenta must be a tensor of shape (N, n, 4), got {shape}")
    if momenta.dtype != torch.float64:
        raise ShapeError(f"momenta must be float64, got {momenta.dtype}")
    if not torch.isfinite(momenta).all():
        raise InvalidInputError("momenta contain NaN or inf")
    if isinstance(roles, str) or len(roles) != momenta.shape[1]:
        raise InvalidInputError(f"roles must name each of the {momenta.shape[1]} slots of momenta, got {roles!r}")
    if not isinstance(generator, torch.Generator):
        raise InvalidInputError(f"generator must be a torch.Generator (randomness only from an explicit generator), got {type(generator).__name__}")
    if isinstance(n_initial, bool) or not isinstance(n_initial, int) or not 0 <= n_initial <= momenta.shape[1]:
        raise InvalidInputError(f"n_initial must be an integer in [0, {momenta.shape[1]}], got {n_initial!r}")


class Detector:
    """The parametrised detector of a :class:`DetectorCard` (module docstring).

    Args:
        card: a :class:`DetectorCard`, a built-in card name, or a path / TOML text.
    """

    def __init__(self, card: DetectorCard | str | Path) -> None:
        if isinstance(card, DetectorCard):
            self.card = card
        elif isinstance(card, str) and card in builtin_cards():
            self.card = DetectorCard.builtin(card)
        elif isinstance(card, str) and "\n" not in card and not card.lower().endswith(".toml") and not Path(card).is_file():
            raise InvalidInputError(f"detector card {card!r}: no built-in card of that name{did_you_mean(card, builtin_cards())} "
                                    f"(built-in: {builtin_cards()}) and no such file")
        elif isinstance(card, (str, Path)):
            self.card = DetectorCard.from_toml(card)
        else:
            raise InvalidInputError(f"card must be a DetectorCard, a built-in card name or a TOML path/text, got {type(card).__name__}")

    def __repr__(self) -> str:
        return f"Detector(card={self.card.name!r})"

    def _relative_resolution(self, p: torch.Tensor, is_lepton: torch.Tensor) -> torch.Tensor:
        """σ_rel per object: of pT for leptons, of E for jets.  (N, n, 4) → (N, n)."""
        lep, jet = self.card.leptons, self.card.jets
        pt = torch.hypot(p[..., 1], p[..., 2])
        lepton = torch.hypot(torch.full_like(pt, lep.pt_resolution_constant), lep.pt_resolution_slope * pt)
        energy = p[..., 0].clamp(min=1e-12)
        jet_rel = torch.hypot(jet.energy_resolution_stochastic / torch.sqrt(energy), torch.full_like(energy, jet.energy_resolution_constant))
        return torch.where(is_lepton, lepton, jet_rel)

    @staticmethod
    def _per_object(is_lepton: torch.Tensor, lepton: float, jet: float, like: torch.Tensor) -> torch.Tensor:
        """(n_visible,) float64: the lepton or jet value of a card entry for each object."""
        values = torch.tensor([lepton, jet], dtype=like.dtype, device=like.device)
        return torch.where(is_lepton, values[0], values[1])

    def _tag_probability(self, flavours: Sequence[str], like: torch.Tensor) -> torch.Tensor:
        table = {"b": self.card.btag.efficiency, "c": self.card.btag.mistag_c, "light": self.card.btag.mistag_light, "": 0.0}
        return torch.tensor([table[f] for f in flavours], dtype=like.dtype, device=like.device)

    def apply(
        self,
        momenta: torch.Tensor,
        roles: Sequence[str],
        generator: torch.Generator,
        *,
        n_initial: int = 0,
    ) -> RecoLevel:
        """Smear, tag, compute MET and select.

        Args:
            momenta: (N, n, 4) float64 parton-level momenta (GeV).
            roles: the role of each of the n slots.
            generator: the only source of randomness.
            n_initial: the first ``n_initial`` slots are incoming partons and are ignored (pass
                2 with a process's full momenta and roles).

        Returns:
            A :class:`RecoLevel`.
        Raises:
            InvalidInputError: unusable roles (tops, …), bad generator or n_initial.
            ShapeError: momenta not (N, n, 4) float64.
        """
        _check_apply_inputs(momenta, roles, generator, n_initial)
        kinds = {i: classify_role(roles[i]) for i in range(n_initial, len(roles))}
        slots = tuple(i for i, (kind, _) in kinds.items() if kind != "neutrino")
        visible = momenta[:, list(slots)]
        n_events, n_visible = visible.shape[:2]
        is_lepton = torch.tensor([kinds[i][0] == "lepton" for i in slots], dtype=torch.bool, device=momenta.device)
        is_jet = ~is_lepton

        smear = torch.randn(n_events, n_visible, dtype=momenta.dtype, device=momenta.device, generator=generator)
        uniform = torch.rand(n_events, n_visible, dtype=momenta.dtype, device=momenta.device, generator=generator)
        met_noise = torch.randn(n_events, 2, dtype=momenta.dtype, device=momenta.device, generator=generator)

        factor = (1.0 + self._relative_resolution(visible, is_lepton.expand(n_events, -1)) * smear).clamp(min=0.0)
        reco = visible * factor[..., None]

        card = self.card
        abs_eta = pseudorapidity(reco).abs()
        pt = torch.hypot(reco[..., 1], reco[..., 2])
        eta_max = self._per_object(is_lepton, card.leptons.eta_max, card.jets.eta_max, reco)
        pt_min = self._per_object(is_lepton, card.leptons.pt_min, card.jets.pt_min, reco)
        in_eta = abs_eta <= eta_max
        accepted = in_eta & (pt >= pt_min)

        probability = self._tag_probability([kinds[i][1] for i in slots], reco)
        btagged = is_jet & (abs_eta <= card.btag.eta_max) & (uniform < probability)

        measured = torch.where(in_eta[..., None], reco[..., 1:3], torch.zeros_like(reco[..., 1:3]))
        sum_et = torch.where(in_eta, pt, torch.zeros_like(pt)).sum(1)
        sigma = torch.hypot(card.met.resolution_stochastic * torch.sqrt(sum_et), torch.full_like(sum_et, card.met.resolution_constant))
        met = -measured.sum(1) + sigma[:, None] * met_noise
        met_pt = torch.hypot(met[:, 0], met[:, 1])

        lepton_fires = (is_lepton & accepted & (pt >= card.trigger.single_lepton_pt)).any(1)
        triggered = lepton_fires | (met_pt >= card.trigger.met)
        n_btag = (btagged & accepted).sum(1)
        passed = accepted.all(1) & triggered & (n_btag >= card.selection.n_btag_min) & (met_pt >= card.selection.met_min)
        return RecoLevel(
            momenta=reco,
            roles=tuple(roles[i] for i in slots),
            slots=slots,
            accepted=accepted,
            btagged=btagged,
            met=met,
            triggered=triggered,
            passed=passed,
        )
