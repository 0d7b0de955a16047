"""External wavefunctions batched over events × helicities, for the UFO evaluation engine.

Each function returns a tensor with a helicity axis right after the event axis: momenta p of shape
(N, 4) and H helicity values give (N, H, 4) complex128 (scalars: (N, H) = ones).  The spinors and
polarisation vectors are exactly those of :mod:`sbihep.physics.helas` (chiral basis, HELAS phase
conventions, ε(k, ±1) = (∓ε₁ − iε₂)/√2, ε(k, 0) = (|k⃗|, E k̂)/m), so amplitudes built with the engine
and with the hand-written processes agree to rounding; they are differentiable in the momenta
(including the massless leg along −z, where helas uses the exact limits).

How a spin-½ leg enters a UFO Lorentz structure (see :mod:`sbihep.physics.ufo.lorentz_compile`):
a leg whose Dirac index is a *column* index of the structure (the ψ slot, e.g. leg 1 of
``Gamma(3,2,1)``) takes a column spinor, ``"u"`` (incoming fermion) or ``"v"`` (outgoing
antifermion); a leg whose index is a *row* index (the ψ̄ slot, leg 2 of ``Gamma(3,2,1)``) takes a
row spinor, ``"ubar"`` (outgoing fermion) or ``"vbar"`` (incoming antifermion).  Row spinors are
stored with ψ̄ = ψ†γ⁰ already applied.
"""

from __future__ import annotations

from typing import Sequence

import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.physics import helas

__all__ = [
    "FERMION_KINDS",
    "helicity_values",
    "scalar_wavefunctions",
    "fermion_wavefunctions",
    "vector_wavefunctions",
    "external_wavefunctions",
]

CDTYPE = torch.complex128

#: spinor kind → (helas function, is a row spinor)
FERMION_KINDS = {
    "u": (helas.incoming_fermion, False),
    "v": (helas.outgoing_antifermion, False),
    "ubar": (helas.outgoing_fermion, True),
    "vbar": (helas.incoming_antifermion, True),
}


def _check_p(p: torch.Tensor, name: str) -> None:
    if not isinstance(p, torch.Tensor) or p.ndim != 2 or p.shape[-1] != 4:
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        raise ShapeError(f"{name}: momenta must be a (N, 4) tensor, got {shape}")
    if p.is_complex() or not p.is_floating_point():
        raise ShapeError(f"{name}: momenta must be real floating point, got {p.dtype}")


def helicity_values(spin: int, mass: float = 0.0) -> tuple[int, ...]:
    """Helicities of an external leg of UFO spin 2s+1: (0,) scalar, (−1, +1) fermion and massless
    vector, (−1, 0, +1) massive vector."""
    if spin == 1:
        return (0,)
    if spin == 2:
        return (-1, 1)
    if spin == 3:
        return (-1, 0, 1) if mass > 0 else (-1, 1)
    raise InvalidInputError(f"helicity_values: spin must be 1, 2 or 3 (UFO 2s+1), got {spin}")


def scalar_wavefunctions(p: torch.Tensor, helicities: Sequence[int] = (0,)) -> torch.Tensor:
    """Ones of shape (N, H): an external scalar.  p (N, 4)."""
    _check_p(p, "scalar_wavefunctions")
    if any(h != 0 for h in helicities):
        raise InvalidInputError(f"scalar_wavefunctions: helicities must be 0, got {tuple(helicities)}")
    return torch.ones(p.shape[0], len(helicities), dtype=CDTYPE, device=p.device)


def fermion_wavefunctions(p: torch.Tensor, helicities: Sequence[int] = (-1, 1), mass: float = 0.0, kind: str = "u") -> torch.Tensor:
    """Spinors u, v (columns) or ū, v̄ (rows) for every helicity: p (N, 4) → (N, H, 4).

    Args:
        p: (N, 4) on-shell momentum (GeV), physical (positive energy) for both incoming and outgoing.
        helicities: values of λ (±1), one slice each along axis 1.
        mass: the fermion mass (GeV).
        kind: "u" incoming fermion, "v" outgoing antifermion, "ubar" outgoing fermion, "vbar" incoming antifermion.
    """
    _check_p(p, "fermion_wavefunctions")
    if kind not in FERMION_KINDS:
        raise InvalidInputError(f"fermion_wavefunctions: kind must be one of {sorted(FERMION_KINDS)}, got {kind!r}")
    if not helicities or any(h not in (-1, 1) for h in helicities):
        raise InvalidInputError(f"fermion_wavefunctions: helicities must be ±1, got {tuple(helicities)}")
    if not mass >= 0:
        raise InvalidInputError(f"fermion_wavefunctions: mass must be ≥ 0 GeV, got {mass}")
    fn = FERMION_KINDS[kind][0]
    return torch.stack([fn(p, int(h), float(mass)) for h in helicities], dim=1)


def vector_wavefunctions(k: torch.Tensor, helicities: Sequence[int] = (-1, 1), mass: float = 0.0, outgoing: bool = False) -> torch.Tensor:
    """Polarisation vectors ε^μ(k, λ) (ε* for ``outgoing``), contravariant: k (N, 4) → (N, H, 4).

    Helicity 0 (longitudinal) needs mass > 0.
    """
    _check_p(k, "vector_wavefunctions")
    if not helicities or any(h not in (-1, 0, 1) for h in helicities):
        raise InvalidInputError(f"vector_wavefunctions: helicities must be −1, 0 or +1, got {tuple(helicities)}")
    if 0 in helicities and not mass > 0:
        raise InvalidInputError(f"vector_wavefunctions: helicity 0 needs mass > 0, got mass={mass}")
    return torch.stack([helas.vector_polarisation(k, int(h), float(mass), outgoing) for h in helicities], dim=1)


def external_wavefunctions(p: torch.Tensor, spin: int, kind: str, mass: float = 0.0, helicities: Sequence[int] | None = None) -> torch.Tensor:
    """One dispatcher for all external legs: (N, 4) → (N, H) (scalar) or (N, H, 4).

    Args:
        p: (N, 4) physical momentum of the particle (GeV).
        spin: UFO spin 2s+1 (1, 2 or 3).
        kind: for spin 2 one of "u", "v", "ubar", "vbar"; for spin 1 and 3 "in" or "out".
        mass: particle mass (GeV).
        helicities: default :func:`helicity_values` (spin, mass).
    """
    hel = tuple(helicity_values(spin, mass) if helicities is None else helicities)
    if spin == 1:
        if kind not in ("in", "out"):
            raise InvalidInputError(f"external_wavefunctions: kind for a scalar must be 'in' or 'out', got {kind!r}")
        return scalar_wavefunctions(p, hel)
    if spin == 2:
        return fermion_wavefunctions(p, hel, mass, kind)
    if spin == 3:
        if kind not in ("in", "out"):
            raise InvalidInputError(f"external_wavefunctions: kind for a vector must be 'in' or 'out', got {kind!r}")
        return vector_wavefunctions(p, hel, mass, outgoing=(kind == "out"))
    raise InvalidInputError(f"external_wavefunctions: spin must be 1, 2 or 3 (UFO 2s+1), got {spin}")
