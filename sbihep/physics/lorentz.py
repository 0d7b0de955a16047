"""Four-vectors in torch: products, kinematic quantities, boosts and validation.

Conventions: a four-vector is the last axis of a tensor, ordered (E, px, py, pz) in GeV; the metric
is g = diag(+1, −1, −1, −1); the Levi-Civita symbol has ε^{0123} = −1, i.e. ε_{0123} = +1 (as in
FeynRules / UFO, hence SMEFTsim).  Every function broadcasts over leading axes and is
differentiable by autograd.
"""

from __future__ import annotations

import torch

from sbihep.errors import ShapeError, UnphysicalMomentaError

__all__ = [
    "METRIC",
    "dot",
    "mass2",
    "mass",
    "pt",
    "eta",
    "rapidity",
    "phi",
    "three_momentum",
    "levi_civita",
    "boost",
    "boost_to_rest_frame_of",
    "boost_from_rest_frame_of",
    "check_momenta",
]

METRIC = (1.0, -1.0, -1.0, -1.0)


def _require_four_vector(p: torch.Tensor, name: str = "p") -> None:
    if not isinstance(p, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
    if p.ndim == 0 or p.shape[-1] != 4:
        raise ShapeError(f"{name} must have a last axis of length 4 (E, px, py, pz), got shape {tuple(p.shape)}")


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minkowski product a·b = a⁰b⁰ − a⃗·b⃗.  Shapes (..., 4) → (...). Complex inputs are not conjugated."""
    return a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1] - a[..., 2] * b[..., 2] - a[..., 3] * b[..., 3]


def mass2(p: torch.Tensor) -> torch.Tensor:
    """Invariant mass squared p² (GeV²), shape (...)."""
    return dot(p, p)


def mass(p: torch.Tensor) -> torch.Tensor:
    """Invariant mass √max(p², 0) (GeV), shape (...)."""
    return torch.sqrt(torch.clamp(mass2(p), min=0.0))


def three_momentum(p: torch.Tensor) -> torch.Tensor:
    """|p⃗| (GeV), shape (...)."""
    return torch.sqrt(p[..., 1] ** 2 + p[..., 2] ** 2 + p[..., 3] ** 2)


def pt(p: torch.Tensor) -> torch.Tensor:
    """Transverse momentum √(px² + py²) (GeV), shape (...)."""
    return torch.sqrt(p[..., 1] ** 2 + p[..., 2] ** 2)


def eta(p: torch.Tensor) -> torch.Tensor:
    """Pseudorapidity asinh(pz / pT), shape (...)."""
    return torch.asinh(p[..., 3] / pt(p))


def rapidity(p: torch.Tensor) -> torch.Tensor:
    """Rapidity ½ ln((E + pz)/(E − pz)), shape (...)."""
    return 0.5 * torch.log((p[..., 0] + p[..., 3]) / (p[..., 0] - p[..., 3]))


def phi(p: torch.Tensor) -> torch.Tensor:
    """Azimuth atan2(py, px) in (−π, π], shape (...)."""
    return torch.atan2(p[..., 2], p[..., 1])


def levi_civita(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """ε_{μνρσ} a^μ b^ν c^ρ d^σ with ε_{0123} = +1 (ε^{0123} = −1).

    Equals the determinant of the 4×4 matrix whose rows are the contravariant components of a, b,
    c, d.  Shapes (..., 4) each → (...); works for complex tensors.
    """
    m = torch.stack(torch.broadcast_tensors(a, b, c, d), dim=-2)
    return _det4(m)


def _det4(m: torch.Tensor) -> torch.Tensor:
    # Explicit Laplace expansion along the first row: torch.linalg.det has no complex autograd on
    # every backend and is slower for tiny matrices in large batches.
    def minor3(rows: torch.Tensor, cols: tuple[int, int, int]) -> torch.Tensor:
        i, j, k = cols
        r0, r1, r2 = rows[..., 0, :], rows[..., 1, :], rows[..., 2, :]
        return (
            r0[..., i] * (r1[..., j] * r2[..., k] - r1[..., k] * r2[..., j])
            - r0[..., j] * (r1[..., i] * r2[..., k] - r1[..., k] * r2[..., i])
            + r0[..., k] * (r1[..., i] * r2[..., j] - r1[..., j] * r2[..., i])
        )

    rest = m[..., 1:, :]
    return (
        m[..., 0, 0] * minor3(rest, (1, 2, 3))
        - m[..., 0, 1] * minor3(rest, (0, 2, 3))
        + m[..., 0, 2] * minor3(rest, (0, 1, 3))
        - m[..., 0, 3] * minor3(rest, (0, 1, 2))
    )


def boost(p: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Active Lorentz boost of p by velocity β⃗ (|β| < 1).

    A particle at rest is given momentum γm(1, β⃗).  Shapes: p (..., 4), beta (..., 3) → (..., 4).
    """
    b2 = (beta * beta).sum(-1, keepdim=True)
    gamma = 1.0 / torch.sqrt(1.0 - b2)
    bp = (beta * p[..., 1:]).sum(-1, keepdim=True)
    # (γ − 1)/β² written as γ²/(γ + 1) so that β → 0 is regular.
    coef = gamma * gamma / (gamma + 1.0)
    energy = gamma * (p[..., :1] + bp)
    space = p[..., 1:] + (coef * bp + gamma * p[..., :1]) * beta
    return torch.cat([energy, space], dim=-1)


def boost_from_rest_frame_of(p: torch.Tensor, q: torch.Tensor, q_mass: torch.Tensor | None = None) -> torch.Tensor:
    """Take p, given in the rest frame of q, to the frame in which q has momentum q.

    Uses q's mass explicitly (γ = E_q/M, γβ⃗ = q⃗/M) rather than β⃗ = q⃗/E_q, which keeps full precision
    for strongly boosted q.  Shapes: p (..., 4), q (..., 4), q_mass (...) (default √(q²)).
    """
    m = mass(q) if q_mass is None else q_mass
    energy, space = p[..., 0], p[..., 1:]
    q_energy, q_space = q[..., 0], q[..., 1:]
    q_dot = (q_space * space).sum(-1)
    boosted_energy = (q_energy * energy + q_dot) / m
    factor = (q_dot / (q_energy + m) + energy) / m
    return torch.cat([boosted_energy.unsqueeze(-1), space + factor.unsqueeze(-1) * q_space], dim=-1)


def boost_to_rest_frame_of(p: torch.Tensor, q: torch.Tensor, q_mass: torch.Tensor | None = None) -> torch.Tensor:
    """Take p to the rest frame of the time-like q (same precision and shapes as :func:`boost_from_rest_frame_of`)."""
    reversed_q = torch.cat([q[..., :1], -q[..., 1:]], dim=-1)
    return boost_from_rest_frame_of(p, reversed_q, mass(q) if q_mass is None else q_mass)


def check_momenta(
    p: torch.Tensor,
    masses: torch.Tensor | list[float] | tuple[float, ...] | None = None,
    *,
    name: str = "momenta",
    n_particles: int | None = None,
    rtol: float = 1e-6,
) -> None:
    """Raise a clear error unless p holds physical momenta.

    Args:
        p: (N, n_particles, 4) float tensor.
        masses: (n_particles,) on-shell masses to check p² against (relative tolerance ``rtol`` of E²);
            None skips the mass-shell check.
        n_particles: the expected number of particles, if known.
    Raises:
        ShapeError: wrong rank, last axis ≠ 4, wrong particle count, or complex dtype.
        UnphysicalMomentaError: non-finite entries, negative energy, or off the mass shell.
    """
    _require_four_vector(p, name)
    if p.ndim != 3:
        raise ShapeError(f"{name} must have shape (n_events, n_particles, 4), got {tuple(p.shape)}")
    if n_particles is not None and p.shape[1] != n_particles:
        raise ShapeError(f"{name} must hold {n_particles} particles per event, got shape {tuple(p.shape)}")
    if p.is_complex() or not p.is_floating_point():
        raise ShapeError(f"{name} must be a real floating-point tensor, got dtype {p.dtype}")
    if not torch.isfinite(p).all():
        bad = (~torch.isfinite(p)).any(-1).any(-1).nonzero()[:5, 0].tolist()
        raise UnphysicalMomentaError(f"{name} contain NaN or inf (first bad events: {bad})")
    if (p[..., 0] < 0).any():
        bad = (p[..., 0] < 0).any(-1).nonzero()[:5, 0].tolist()
        raise UnphysicalMomentaError(f"{name} have negative energies (first bad events: {bad})")
    if masses is not None:
        m = torch.as_tensor(masses, dtype=p.dtype, device=p.device)
        if m.shape != (p.shape[1],):
            raise ShapeError(f"masses must have shape ({p.shape[1]},), got {tuple(m.shape)}")
        off = (mass2(p) - m * m).abs() > rtol * p[..., 0] ** 2 + 1e-12
        if off.any():
            ev, part = off.nonzero()[0].tolist()
            raise UnphysicalMomentaError(
                f"{name}: particle {part} of event {ev} has p² = {mass2(p)[ev, part].item():.6g} GeV², "
                f"expected m² = {float(m[part]) ** 2:.6g} GeV² (off the mass shell)"
            )
