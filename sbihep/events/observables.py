"""Named kinematic observables computed on momentum tensors whose slots are addressed by role.

>>> compute(["pt(l)", "m(b,bbar)", "phi_helicity(l,v;b,bbar)"], momenta, roles=("q", "qbar", "l", "v", "b", "bbar"))
{"pt(l)": tensor(N,), "m(b,bbar)": tensor(N,), "phi_helicity(l,v;b,bbar)": tensor(N,)}

Momenta are (N, n, 4) float64 tensors, (E, px, py, pz) in GeV, beam along z; ``roles`` names each
of the n slots (see :meth:`sbihep.physics.processes.base.Process.roles`).  Every observable returns
an (N,) float64 tensor and never NaN (the edge cases are listed under each function).

Grammar of a name
-----------------
::

    name  := function "(" group (";" group)* ")"
    group := term ("," term)*
    term  := role ("+" role)*          a summed system, e.g. b+bbar
    role  := a role name from ``roles``, optionally "[k]" to pick the k-th (0-based) of repeated roles

Spaces are ignored.  Role names may themselves contain "+" or "-" (``mu+``): a term is read by
matching the longest known role first, so ``m(mu++mu-)`` is the mass of μ⁺ + μ⁻.  A role that
occurs in several slots (``g`` in g g → t t̄) must carry an index: ``pt(g[1])``.

Functions (``available()`` lists them with one line each):

* one system:  ``pt``, ``eta`` (pseudorapidity), ``phi``, ``y`` (rapidity), ``e``, ``m``
  (``m(b,bbar)`` and ``m(b+bbar)`` are both the invariant mass of the sum of all terms);
* two systems: ``mT`` (transverse mass), ``dR``, ``dphi`` (signed, in (−π, π]), ``deta``;
* decay angles of a pair (a, b):  ``cos_cs``, ``phi_cs`` (Collins–Soper frame), ``cos_helicity``,
  ``phi_helicity`` (helicity frame; optional second group = the recoil, see below);
* ``dphi_planes(a,b;c,d)``: signed angle between the (a, b) and (c, d) decay planes.

Frame conventions
-----------------
*Beam orientation.*  ``cos_cs``, ``phi_cs`` and ``phi_helicity(a,b;…)`` orient the beam axis along
the longitudinal momentum of their system (the pair for Collins–Soper, the whole a+b+… system for
``phi_helicity``), as Collins and Soper do: at a pp collider the quark more often comes from that
side.  When |p_z| ≤ 1e-9 E (e.g. events in the partonic centre-of-mass frame) the beam is +z.
``phi_helicity(a,b)`` without a recoil group always uses +z.

*Helicity frame* of the pair P = a + b: in the rest frame of P, z′ is the direction of P seen from
the reference frame (the rest frame of the a+b+… system, or the frame of the given momenta when
there is no second group), y′ = unit(beam × z′) is the normal of the (beam, P) plane, and
x′ = y′ × z′.  ``cos_helicity`` = cos θ of a along z′; ``phi_helicity`` = atan2(a·y′, a·x′) ∈ (−π, π].
For q q̄′ → W h in the partonic frame (quark along +z) this is the azimuth φ of the charged lepton
whose sin φ carries the CP-odd cHWtil interference (sign +1 for W⁺, −1 for W⁻; pass ``charge``).

*Collins–Soper frame* of P = a + b: with beams B₁ = (1, 0, 0, s), B₂ = (1, 0, 0, −s), s the beam
orientation above, boosted to the rest frame of P: z = unit(B̂₁ − B̂₂), x = unit(−(B̂₁ + B̂₂)) (in the
plane of the beams, along the transverse momentum of P; the lab x axis when P has none),
y = z × x; cos θ_CS = â·z, φ_CS = atan2(a·y, a·x).

*Decay planes.*  ``dphi_planes(a,b;c,d)``: in the rest frame of a+b+c+d, n₁ = unit(â × b̂),
n₂ = unit(ĉ × d̂); the angle is atan2((n₁ × n₂)·P̂₁, n₁·n₂) ∈ (−π, π], P̂₁ the direction of a + b.
(n₁ and n₂ are both orthogonal to P̂₁ there, so this is the full signed angle between the planes.)
Note: for W h → ℓ ν b b̄ the h is a scalar, so the b b̄ plane is isotropic and carries no CP
information; the CP-odd angle of that process is ``phi_helicity``.

*Parity.*  ``phi``-type signed angles flip sign when all momenta are reflected (p⃗ → −p⃗):
``phi_cs``, ``phi_helicity(a,b;…)`` (whose beam orientation follows the system) and ``dphi_planes``.
``phi_helicity(a,b)`` has a fixed +z beam, so it flips only when the beam is reflected as well.

*Charge.*  ``compute(..., charge=q)`` multiplies the charge-odd observables (``phi_helicity``,
``dphi_planes``) by q ∈ {+1, −1} per event (an angle −π is mapped to π), so that W⁺ and W⁻ samples
share the sign of their CP-odd asymmetry.

Edge cases (no NaN is ever returned):

* a zero-pT particle: η and y use pT (resp. transverse mass) clamped at 1e-12 GeV, i.e. a large
  finite value (|η| ≈ 28 at 1 TeV), and 0 for a particle at rest; φ = 0.
* a pair with p² ≤ 0 (e.g. two collinear massless particles) has no rest frame: its decay angles are 0.
* undefined directions (a particle at rest in a frame, a degenerate plane) fall back to the lab x
  axis (or +z) as stated in each function; the angles are then those of that fallback.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.physics.lorentz import boost_to_rest_frame_of, mass2

__all__ = [
    "Observable",
    "available",
    "compute",
    "parse",
    "ParsedName",
    "wrap_angle",
    "pseudorapidity",
    "rapidity",
    "azimuth",
    "transverse_mass",
    "collins_soper_angles",
    "helicity_angles",
    "plane_angle",
]

_PT_FLOOR = 1e-12  # GeV: transverse momentum below which η and y stop growing
_LONGITUDINAL_TOL = 1e-9  # |p_z| ≤ tol × E: "no longitudinal direction", beam = +z
_DIRECTION_TOL = 1e-12  # norm below which a (unit-scaled) vector has no direction


# --------------------------------------------------------------------------------------
# Elementary quantities on (..., 4) tensors
# --------------------------------------------------------------------------------------
def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Map angles (radians) into (−π, π]."""
    wrapped = torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi
    return torch.where(wrapped <= -math.pi, wrapped + 2.0 * math.pi, wrapped)


def _atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """atan2 in (−π, π]: atan2(−0.0, x < 0) = −π is mapped to π."""
    angle = torch.atan2(y, x)
    return torch.where(angle <= -math.pi, angle + 2.0 * math.pi, angle)


def _pt(p: torch.Tensor) -> torch.Tensor:
    return torch.hypot(p[..., 1], p[..., 2])


def pseudorapidity(p: torch.Tensor) -> torch.Tensor:
    """η = asinh(pz / pT), pT clamped at 1e-12 GeV (finite along the beam, 0 at rest).  (..., 4) → (...)."""
    return torch.asinh(p[..., 3] / _pt(p).clamp(min=_PT_FLOOR))


def rapidity(p: torch.Tensor) -> torch.Tensor:
    """y = asinh(pz / mT) = ½ ln((E + pz)/(E − pz)), mT = √(E² − pz²) clamped at 1e-12 GeV.  (..., 4) → (...)."""
    mt2 = (p[..., 0] ** 2 - p[..., 3] ** 2).clamp(min=_PT_FLOOR**2)
    return torch.asinh(p[..., 3] / torch.sqrt(mt2))


def azimuth(p: torch.Tensor) -> torch.Tensor:
    """φ = atan2(py, px) ∈ (−π, π]; 0 for zero pT.  (..., 4) → (...)."""
    return _atan2(p[..., 2], p[..., 1])


def transverse_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mT² = (E_T,a + E_T,b)² − |p⃗_T,a + p⃗_T,b|², E_T = √(m² + pT²) (m² clamped at 0).

    For massless a, b: mT² = 2 pT,a pT,b (1 − cos Δφ).  Invariant under boosts along z.  (..., 4) → (...) GeV.
    """

    def et(p):
        return torch.sqrt(mass2(p).clamp(min=0.0) + _pt(p) ** 2)

    total = a + b
    return torch.sqrt(((et(a) + et(b)) ** 2 - _pt(total) ** 2).clamp(min=0.0))


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------
def _unit(v: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """v/|v| for (..., 3); ``fallback`` (a unit vector, broadcastable) where |v| ≤ 1e-12 (absolute)."""
    norm = v.norm(dim=-1, keepdim=True)
    ok = norm > _DIRECTION_TOL
    return torch.where(ok, v / torch.where(ok, norm, torch.ones_like(norm)), fallback.expand_as(v))


def _axis(index: int, like: torch.Tensor) -> torch.Tensor:
    """The unit 3-vector along lab axis ``index`` (0 = x, 1 = y, 2 = z), broadcast to ``like[..., :3]``."""
    e = torch.zeros(3, dtype=like.dtype, device=like.device)
    e[index] = 1.0
    return e.expand(like.shape[:-1] + (3,))


def _beam_orientation(system: torch.Tensor) -> torch.Tensor:
    """+1 / −1: the sign of the system's p_z, +1 when |p_z| ≤ 1e-9 E.  (..., 4) → (...)."""
    pz, energy = system[..., 3], system[..., 0]
    sign = torch.sign(pz)
    return torch.where(pz.abs() <= _LONGITUDINAL_TOL * energy.abs(), torch.ones_like(pz), sign)


def _beam(orientation: torch.Tensor) -> torch.Tensor:
    """Massless unit-energy four-vector along orientation × ẑ.  (...) → (..., 4)."""
    one, zero = torch.ones_like(orientation), torch.zeros_like(orientation)
    return torch.stack([one, zero, zero, orientation], -1)


def _timelike(pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ok, safe pair): ok where p² > 0; elsewhere the pair is replaced by (1, 0, 0, 0) so boosts stay finite."""
    ok = mass2(pair) > (_DIRECTION_TOL * pair[..., 0]) ** 2
    ok = ok & (pair[..., 0] > 0)
    rest = torch.zeros_like(pair)
    rest[..., 0] = 1.0
    return ok, torch.where(ok[..., None], pair, rest)


def _angles_in_frame(p: torch.Tensor, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos θ and φ of the 3-vector p (..., 3) in the orthonormal frame (x, y, z); (0, 0) for p = 0."""
    p_hat = _unit(p, torch.zeros_like(p))
    cos_theta = (p_hat * z).sum(-1).clamp(-1.0, 1.0)
    phi = _atan2((p * y).sum(-1), (p * x).sum(-1))
    return cos_theta, phi


def collins_soper_angles(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos θ_CS, φ_CS) of a in the Collins–Soper frame of a + b (module docstring).  (..., 4) each → (...), (...).

    The beam is oriented along the pair's p_z (+z when it has none); φ_CS is measured from the
    pair's transverse-momentum direction (the lab x axis when it has none).  0, 0 when p² ≤ 0.
    """
    ok, pair = _timelike(a + b)
    orientation = _beam_orientation(pair)
    b1 = boost_to_rest_frame_of(_beam(orientation), pair)[..., 1:]
    b2 = boost_to_rest_frame_of(_beam(-orientation), pair)[..., 1:]
    b1, b2 = _unit(b1, _axis(2, b1)), _unit(b2, -_axis(2, b2))
    z = _unit(b1 - b2, _axis(2, b1))
    x = _unit(-(b1 + b2), _axis(0, b1))
    y = torch.linalg.cross(z, x)
    cos_theta, phi = _angles_in_frame(boost_to_rest_frame_of(a, pair)[..., 1:], x, y, z)
    zero = torch.zeros_like(cos_theta)
    return torch.where(ok, cos_theta, zero), torch.where(ok, phi, zero)


def helicity_angles(
    a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos θ, φ) of a in the helicity frame of P = a + b (module docstring).  (..., 4) each → (...), (...).

    Args:
        a, b: the pair's daughters; the angles are those of a.
        reference: four-momentum of the system in whose rest frame the direction of P is taken
            (and whose p_z orients the beam); None: the frame of the given momenta, beam +z.

    Fallbacks: P at rest in the reference frame → z′ = beam; P along the beam → the plane is
    (lab x, P); p² ≤ 0 → (0, 0).
    """
    ok, pair = _timelike(a + b)
    if reference is None:
        orientation = torch.ones_like(pair[..., 0])
        reference = torch.zeros_like(pair)
        reference[..., 0] = 1.0
    else:
        orientation = _beam_orientation(reference)
    beam = boost_to_rest_frame_of(_beam(orientation), pair)[..., 1:]
    beam = _unit(beam, _axis(2, beam))
    # The reference system moves along −z′ in the rest frame of P.
    z = _unit(-boost_to_rest_frame_of(reference, pair)[..., 1:], beam)
    x_lab = boost_to_rest_frame_of(torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=a.dtype, device=a.device).expand_as(pair), pair)
    y_fallback = _unit(torch.linalg.cross(x_lab[..., 1:], z), _axis(1, z))
    y = _unit(torch.linalg.cross(beam, z), y_fallback)
    x = torch.linalg.cross(y, z)
    cos_theta, phi = _angles_in_frame(boost_to_rest_frame_of(a, pair)[..., 1:], x, y, z)
    zero = torch.zeros_like(cos_theta)
    return torch.where(ok, cos_theta, zero), torch.where(ok, phi, zero)


def plane_angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Signed angle between the (a, b) and (c, d) planes in the a+b+c+d rest frame, (−π, π].

    atan2((n₁ × n₂)·P̂₁, n₁·n₂) with n₁ = unit(â × b̂), n₂ = unit(ĉ × d̂), P̂₁ the direction of a + b.
    A degenerate plane (collinear daughters) or a system without rest frame gives 0.  (..., 4) each → (...).
    """
    ok, total = _timelike(a + b + c + d)
    a3, b3, c3, d3 = (boost_to_rest_frame_of(p, total)[..., 1:] for p in (a, b, c, d))
    zero3 = torch.zeros_like(a3)
    a3, b3, c3, d3 = (_unit(v, zero3) for v in (a3, b3, c3, d3))
    n1 = _unit(torch.linalg.cross(a3, b3), zero3)
    n2 = _unit(torch.linalg.cross(c3, d3), zero3)
    direction = _unit(a3 + b3, zero3)
    sin_part = (torch.linalg.cross(n1, n2) * direction).sum(-1)
    cos_part = (n1 * n2).sum(-1)
    angle = _atan2(sin_part, cos_part)
    degenerate = (n1.abs().sum(-1) == 0) | (n2.abs().sum(-1) == 0) | ~ok
    return torch.where(degenerate, torch.zeros_like(angle), angle)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------
#: An arity per group: an int (exactly that many terms) or "+" (one or more).
Signature = tuple[int | str, ...]


@dataclass(frozen=True)
class Observable:
    """One registered function.

    Attributes:
        name: the function name used in the grammar.
        description: one line.
        signatures: the allowed group arities, e.g. ((2,), (2, "+")).
        function: maps the groups (each a list of (N, 4) summed terms) to an (N,) tensor.
        charge_odd: multiplied by the lepton charge when ``compute`` is given one.
    """

    name: str
    description: str
    signatures: tuple[Signature, ...]
    function: Callable[[list[list[torch.Tensor]]], torch.Tensor]
    charge_odd: bool = False


def _sum(group: list[torch.Tensor]) -> torch.Tensor:
    total = group[0]
    for p in group[1:]:
        total = total + p
    return total


def _helicity(groups, which):
    reference = _sum(groups[0] + groups[1]) if len(groups) > 1 else None
    return helicity_angles(groups[0][0], groups[0][1], reference)[which]


_REGISTRY: dict[str, Observable] = {}


def _register(name, description, signatures, function, charge_odd=False):
    _REGISTRY[name] = Observable(name, description, signatures, function, charge_odd)


_ONE: tuple[Signature, ...] = ((1,),)
_TWO: tuple[Signature, ...] = ((2,),)
_register("pt", "transverse momentum of a system (GeV)", _ONE, lambda g: _pt(g[0][0]))
_register("eta", "pseudorapidity of a system", _ONE, lambda g: pseudorapidity(g[0][0]))
_register("phi", "azimuth of a system in (−π, π]", _ONE, lambda g: azimuth(g[0][0]))
_register("y", "rapidity of a system", _ONE, lambda g: rapidity(g[0][0]))
_register("e", "energy of a system (GeV)", _ONE, lambda g: g[0][0][..., 0])
_register("m", "invariant mass of the sum of all terms (GeV)", (("+",),), lambda g: torch.sqrt(mass2(_sum(g[0])).clamp(min=0.0)))
_register("mT", "transverse mass of two systems (GeV)", _TWO, lambda g: transverse_mass(g[0][0], g[0][1]))
_register(
    "dR",
    "ΔR = √(Δη² + Δφ²) between two systems",
    _TWO,
    lambda g: torch.hypot(
        pseudorapidity(g[0][0]) - pseudorapidity(g[0][1]), wrap_angle(azimuth(g[0][0]) - azimuth(g[0][1]))
    ),
)
_register("dphi", "signed φ₁ − φ₂ in (−π, π]", _TWO, lambda g: wrap_angle(azimuth(g[0][0]) - azimuth(g[0][1])))
_register("deta", "η₁ − η₂", _TWO, lambda g: pseudorapidity(g[0][0]) - pseudorapidity(g[0][1]))
_register("cos_cs", "cos θ of the first particle in the Collins–Soper frame of the pair", _TWO, lambda g: collins_soper_angles(*g[0])[0])
_register("phi_cs", "φ of the first particle in the Collins–Soper frame of the pair, (−π, π]", _TWO, lambda g: collins_soper_angles(*g[0])[1])
_register(
    "cos_helicity",
    "cos θ of the first particle about the pair direction in the pair rest frame [; recoil system]",
    ((2,), (2, "+")),
    lambda g: _helicity(g, 0),
)
_register(
    "phi_helicity",
    "azimuth of the first particle about the pair direction from the (beam, pair) plane [; recoil system]",
    ((2,), (2, "+")),
    lambda g: _helicity(g, 1),
    charge_odd=True,
)
_register(
    "dphi_planes",
    "signed angle between the (a,b) and (c,d) planes in the a+b+c+d rest frame",
    ((2, 2),),
    lambda g: plane_angle(g[0][0], g[0][1], g[1][0], g[1][1]),
    charge_odd=True,
)


def available() -> dict[str, str]:
    """Function name → one-line description, for every registered observable."""
    return {name: obs.description for name, obs in _REGISTRY.items()}


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class ParsedName:
    """A parsed observable name: the function and, per group, per term, the slot indices summed."""

    function: str
    groups: tuple[tuple[tuple[int, ...], ...], ...]


def _slot(name: str, role: str, index: int | None, roles: Sequence[str]) -> int:
    slots = [i for i, r in enumerate(roles) if r == role]
    if index is None:
        if len(slots) > 1:
            raise InvalidInputError(
                f"observable {name!r}: role {role!r} occurs in slots {slots}; write {role}[0] … {role}[{len(slots) - 1}]"
            )
        return slots[0]
    if index >= len(slots):
        raise InvalidInputError(f"observable {name!r}: role {role}[{index}] does not exist ({len(slots)} slot(s) have role {role!r})")
    return slots[index]


def _parse_term(name: str, term: str, roles: Sequence[str]) -> tuple[int, ...]:
    """'b+bbar' → slot indices, matching the longest role at each position."""
    known = sorted(set(roles), key=len, reverse=True)
    slots, pos = [], 0
    while True:
        match = next((r for r in known if term.startswith(r, pos)), None)
        end = pos + len(match) if match else -1
        # A role must be followed by the end, an index, or the '+' separator.
        if match is not None and end < len(term) and term[end] not in "+[":
            match = None
        if match is None:
            bad = term[pos:].split("+")[0] or term[pos:]
            raise InvalidInputError(f"observable {name!r}: unknown role {bad!r}; roles are {list(roles)}")
        index = None
        found = _INDEX.match(term, end)
        if found:
            index, end = int(found.group(1)), found.end()
        slots.append(_slot(name, match, index, roles))
        if end == len(term):
            return tuple(slots)
        if term[end] != "+" or end + 1 == len(term):
            raise InvalidInputError(f"observable {name!r}: cannot read {term!r} (expected role+role+…)")
        pos = end + 1


def _signature_matches(signature: Signature, arities: tuple[int, ...]) -> bool:
    return len(signature) == len(arities) and all(s == "+" or s == a for s, a in zip(signature, arities))


def parse(name: str, roles: Sequence[str]) -> ParsedName:
    """Parse an observable name against ``roles``; raises :class:`InvalidInputError` naming the problem."""
    if not isinstance(name, str):
        raise InvalidInputError(f"observable names must be strings, got {type(name).__name__}")
    compact = "".join(name.split())
    call = _CALL.match(compact)
    if call is None:
        raise InvalidInputError(f"observable {name!r} is not of the form function(role, …); see sbihep.events.observables")
    function, body = call.groups()
    if function not in _REGISTRY:
        raise InvalidInputError(f"observable {name!r}: unknown function {function!r}; available: {sorted(_REGISTRY)}")
    if not body:
        raise InvalidInputError(f"observable {name!r}: no roles given")
    groups = tuple(tuple(_parse_term(name, term, roles) for term in group.split(",")) for group in body.split(";"))
    arities = tuple(len(g) for g in groups)
    signatures = _REGISTRY[function].signatures
    if not any(_signature_matches(s, arities) for s in signatures):
        wanted = " or ".join(";".join("1+" if a == "+" else str(a) for a in s) for s in signatures)
        raise InvalidInputError(f"observable {name!r}: {function} takes {wanted} comma-separated term(s) per ';' group, got {arities}")
    return ParsedName(function, groups)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------
def _check_inputs(momenta: torch.Tensor, roles: Sequence[str]) -> None:
    if not isinstance(momenta, torch.Tensor) or momenta.ndim != 3 or momenta.shape[-1] != 4:
        shape = tuple(momenta.shape) if isinstance(momenta, torch.Tensor) else type(momenta).__name__
        raise ShapeError(f"momenta must be a tensor of shape (N, n, 4), got {shape}")
    if momenta.dtype != torch.float64:
        raise ShapeError(f"momenta must be float64, got {momenta.dtype}")
    if isinstance(roles, str) or len(roles) != momenta.shape[1]:
        raise InvalidInputError(f"roles must name each of the {momenta.shape[1]} slots of momenta, got {roles!r}")


def _charge_tensor(charge, n_events: int) -> torch.Tensor:
    q = torch.as_tensor(charge, dtype=torch.float64)
    if q.ndim == 0:
        q = q.expand(n_events)
    if q.shape != (n_events,) or not bool(((q == 1) | (q == -1)).all()):
        raise InvalidInputError(f"charge must be +1 or −1, a scalar or of shape ({n_events},), got {charge!r}")
    return q


def compute(
    names: Sequence[str],
    momenta: torch.Tensor,
    roles: Sequence[str],
    *,
    charge: torch.Tensor | float | None = None,
) -> dict[str, torch.Tensor]:
    """Evaluate named observables.

    Args:
        names: observable names in the grammar of the module docstring (all parsed before any is computed).
        momenta: (N, n, 4) float64, GeV.
        roles: the role of each of the n slots.
        charge: optional lepton charge ±1, scalar or (N,): multiplies the charge-odd observables
            (``phi_helicity``, ``dphi_planes``; angles stay in (−π, π]).

    Returns:
        name → (N,) float64 tensor, in the order of ``names``.
    Raises:
        InvalidInputError: unknown function or role, wrong number of terms, bad charge.
        ShapeError: momenta not (N, n, 4) float64.
    """
    if isinstance(names, str):
        raise InvalidInputError(f"names must be a sequence of observable names, got the string {names!r}")
    _check_inputs(momenta, roles)
    parsed = [parse(name, roles) for name in names]
    q = None if charge is None else _charge_tensor(charge, momenta.shape[0]).to(momenta.device)
    results = {}
    for name, p in zip(names, parsed):
        groups = [[momenta[:, list(term)].sum(1) for term in group] for group in p.groups]
        value = _REGISTRY[p.function].function(groups)
        if q is not None and _REGISTRY[p.function].charge_odd:
            value = q * value
            value = torch.where(value <= -math.pi, value + 2.0 * math.pi, value)
        results[name] = value
    return results
