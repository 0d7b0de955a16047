"""Propagators for off-shell currents: spin 0, ½ and 1 with fixed widths, batched and broadcasting.

Every function takes an amputated vertex current (what a vertex gives with one leg left open, see
:meth:`sbihep.physics.ufo.lorentz_compile.CompiledLorentz.vertex_current`) and the momentum q
carried by the line, and returns the propagated off-shell wavefunction.  Shapes broadcast: a
current of shape (*b, 4) (or (*b,) for a scalar) and q of shape (*bq, 4) give (*broadcast, 4).
complex128 throughout; differentiable in q and in the current.

Conventions (same as :mod:`sbihep.physics.helas`; metric (+,−,−,−); factors of i included):

* denominator D(q) = q² − M² + i M Γ (fixed width; Γ = 0 allowed);
* spin 0: i/D;
* spin 1, massive (unitary gauge): i(−g^{μν} + q^μ q^ν/M²)/D;  massless: −i g^{μν}/q²
  (Feynman-gauge numerator; the −q^μq^ν terms drop out of gauge-invariant sums);
* spin ½: S(q) = i(q̸ + M)/D with q along the fermion-number arrow.  A column current (the open
  leg was a ψ̄ slot of the vertex) becomes S(q)·V; a row current (open leg was a ψ slot) becomes
  V·S(q).  The Dirac matrices are in the chiral basis of :mod:`sbihep.physics.helas`.
"""

from __future__ import annotations

import torch

from sbihep.errors import InvalidInputError
from sbihep.physics import helas
from sbihep.physics.helas import denominator

__all__ = [
    "denominator",
    "scalar_propagator",
    "vector_propagator",
    "fermion_propagator_column",
    "fermion_propagator_row",
    "slash_column",
    "slash_row",
]

CDTYPE = torch.complex128


def _check(mass: float, width: float, where: str) -> None:
    if not (mass >= 0 and width >= 0):
        raise InvalidInputError(f"{where}: mass and width must be ≥ 0 GeV, got mass={mass}, width={width}")


def scalar_propagator(current: torch.Tensor, q: torch.Tensor, mass: float, width: float = 0.0) -> torch.Tensor:
    """i·V/D for a scalar line.  current (*b,), q (*bq, 4) → (*b ⊔ bq,)."""
    _check(mass, width, "scalar_propagator")
    return current * helas.scalar_propagator(q, mass, width)


def vector_propagator(current: torch.Tensor, q: torch.Tensor, mass: float, width: float = 0.0) -> torch.Tensor:
    """P^{μν}(q) V_ν for a vector line; V contravariant (*b, 4), q (*bq, 4) → (*b ⊔ bq, 4) contravariant.

    Massive: i(−V^μ + q^μ (q·V)/M²)/D (unitary gauge); massless: −i V^μ/q²
    (:func:`sbihep.physics.helas.vector_propagator`, with the mass and width checked).
    """
    _check(mass, width, "vector_propagator")
    return helas.vector_propagator(current, q, mass, width)


def slash_column(q: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """q̸ ψ for a column spinor ψ (*b, 4) and real q (*bq, 4), chiral basis, in 2×2 blocks.

    q̸ = [[0, q⁰ − q⃗·σ⃗], [q⁰ + q⃗·σ⃗, 0]] acting on (ψ_L, ψ_R).
    """
    q0, qx, qy, qz = (x.to(CDTYPE) for x in q.unbind(-1))
    a1, a2, b1, b2 = psi.unbind(-1)  # (ψ_L, ψ_R)
    qxy_m, qxy_p = qx - 1j * qy, qx + 1j * qy
    # (q⁰ − q⃗σ⃗) ψ_R and (q⁰ + q⃗σ⃗) ψ_L
    up1 = (q0 - qz) * b1 - qxy_m * b2
    up2 = -qxy_p * b1 + (q0 + qz) * b2
    lo1 = (q0 + qz) * a1 + qxy_m * a2
    lo2 = qxy_p * a1 + (q0 - qz) * a2
    return torch.stack([up1, up2, lo1, lo2], -1)


def slash_row(psibar: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """ψ̄ q̸ for a row spinor ψ̄ (*b, 4) (components (ψ̄_1..ψ̄_4)) and real q (*bq, 4)."""
    q0, qx, qy, qz = (x.to(CDTYPE) for x in q.unbind(-1))
    x1, x2, u1, u2 = psibar.unbind(-1)
    qxy_m, qxy_p = qx - 1j * qy, qx + 1j * qy
    # first two components: (u1, u2)·(q⁰ + q⃗σ⃗); last two: (x1, x2)·(q⁰ − q⃗σ⃗)
    r1 = u1 * (q0 + qz) + u2 * qxy_p
    r2 = u1 * qxy_m + u2 * (q0 - qz)
    r3 = x1 * (q0 - qz) - x2 * qxy_p
    r4 = -x1 * qxy_m + x2 * (q0 + qz)
    return torch.stack([r1, r2, r3, r4], -1)


def fermion_propagator_column(current: torch.Tensor, q: torch.Tensor, mass: float, width: float = 0.0) -> torch.Tensor:
    """S(q)·V = i(q̸ + M)V/D for a column current V (*b, 4); q along the fermion arrow. → (*b ⊔ bq, 4)."""
    _check(mass, width, "fermion_propagator_column")
    num = slash_column(q, current) + mass * current if mass else slash_column(q, current)
    return 1j * num / denominator(q, mass, width)[..., None]


def fermion_propagator_row(current: torch.Tensor, q: torch.Tensor, mass: float, width: float = 0.0) -> torch.Tensor:
    """V·S(q) = i V(q̸ + M)/D for a row current V (*b, 4); q along the fermion arrow. → (*b ⊔ bq, 4)."""
    _check(mass, width, "fermion_propagator_row")
    num = slash_row(current, q) + mass * current if mass else slash_row(current, q)
    return 1j * num / denominator(q, mass, width)[..., None]
