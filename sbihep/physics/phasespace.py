"""Phase-space mappings: uniform random numbers → momenta and exact phase-space weights.

Every mapping takes uniform random numbers ``r`` in [0, 1)^d as a float tensor of shape (N, d)
(cast to float64), so that an adaptive integrator such as VEGAS can reshape them, and returns
momenta in GeV together with a weight of shape (N,) such that

    mean over events of  weight · f(momenta)   estimates   ∫ dΦ_n f

with the Lorentz-invariant phase space in its standard normalisation

    dΦ_n(P; p_1 … p_n) = (2π)⁴ δ⁴(P − Σ p_i) Π_i d³p_i / ((2π)³ 2E_i),

so that e.g. Φ_2 = |p*| / (4π √s) and, for n massless particles (Kleiss, Stirling, Ellis,
Comput. Phys. Commun. 40 (1986) 359),

    Φ_n = (2π)^(4−3n) (π/2)^(n−1) s^(n−2) / ((n−1)! (n−2)!).

Weights carry units GeV^(2n−4).  Four-vectors are the last axis, (E, px, py, pz), with the metric
(+, −, −, −) of :mod:`sbihep.physics.lorentz`.  All computations are batched over events, float64,
deterministic, and differentiable by autograd from ``r`` (and from tensor-valued energies and masses)
to momenta and weights wherever the map is smooth.

Factorised (recursive) phase space uses the identity

    dΦ_n(P; p_1 … p_n) = dΦ_{n−j+1}(P; q, p_{j+1} … p_n) · (ds_q / 2π) · dΦ_j(q; p_1 … p_j),

so the mass samplers (:func:`breit_wigner_mass2`, :func:`uniform_mass2`) return weights that
include the factor 1/(2π).

Contents:

* :func:`rambo` — n bodies, massless or massive, in the centre-of-mass frame.
* :func:`two_body_decay`, :func:`two_body_decay_from_random`, :func:`inverse_two_body_decay` —
  one two-body decay with angles in the parent rest frame.
* :func:`breit_wigner_mass2`, :func:`uniform_mass2` and their inverses — invariant-mass sampling.
* :func:`two_to_two` and :func:`inverse_two_to_two` — 2 → 2 in the partonic centre-of-mass frame.
* :func:`hadronic_momentum_fractions`, its inverse, and :func:`boost_partonic_to_lab`.
* :class:`Resonance`, :func:`two_resonance_four_body`, :func:`inverse_two_resonance_four_body` —
  P → A(→ a1 a2) B(→ b1 b2), e.g. q q̄′ → W*(→ ℓν) H(→ b b̄).
* :func:`massless_phase_space_volume`, :func:`two_body_phase_space_volume` — analytic volumes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from sbihep.errors import ConvergenceError, InvalidInputError, ShapeError, ThresholdError
from sbihep.physics.lorentz import boost_from_rest_frame_of, boost_to_rest_frame_of, mass2

__all__ = [
    "massless_phase_space_volume",
    "two_body_phase_space_volume",
    "rambo",
    "two_body_decay",
    "two_body_decay_from_random",
    "inverse_two_body_decay",
    "breit_wigner_mass2",
    "inverse_breit_wigner_mass2",
    "uniform_mass2",
    "inverse_uniform_mass2",
    "two_to_two",
    "inverse_two_to_two",
    "hadronic_momentum_fractions",
    "inverse_hadronic_momentum_fractions",
    "boost_partonic_to_lab",
    "Resonance",
    "RESONANCE_MODES",
    "two_resonance_four_body",
    "inverse_two_resonance_four_body",
]

_DTYPE = torch.float64
_TWO_PI = 2.0 * math.pi
# Largest float64 below 1: keeps −log(1 − r) finite at r = 1.
_ONE_BELOW = 1.0 - 2.0**-53
# Relative tolerance below which an invariant mass at a two-body threshold counts as "at threshold"
# (rounding), not "below threshold".
_THRESHOLD_RTOL = 1e-12
_NEWTON_MAX_ITERATIONS = 50

ScalarOrTensor = float | torch.Tensor


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _random_numbers(r: torch.Tensor, width: int, name: str = "r", layout: str = "") -> torch.Tensor:
    """Check r has shape (N, width), finite values in [0, 1]; return it as float64."""
    if not isinstance(r, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (N, {width}), got {type(r).__name__}")
    if r.is_complex() or not r.is_floating_point():
        raise ShapeError(f"{name} must be a real floating-point tensor, got dtype {r.dtype}")
    if r.ndim != 2 or r.shape[1] != width:
        detail = f" ({layout})" if layout else ""
        raise ShapeError(f"{name} must have shape (N, {width}){detail}, got {tuple(r.shape)}")
    r = r.to(_DTYPE)
    if torch.isnan(r).any():
        bad = torch.isnan(r).any(-1).nonzero()[:5, 0].tolist()
        raise InvalidInputError(f"{name} contains NaN (first bad events: {bad})")
    if ((r < 0) | (r > 1)).any():
        raise InvalidInputError(
            f"{name} must hold uniform random numbers in [0, 1], found values in "
            f"[{r.min().item():.6g}, {r.max().item():.6g}]"
        )
    return r


def _per_event(
    x: ScalarOrTensor,
    name: str,
    n_events: int,
    device: torch.device,
    *,
    minimum: float | None = None,
    strictly_positive: bool = False,
) -> torch.Tensor:
    """A float or a tensor of shape () or (N,) as a float64 tensor broadcastable to (N,)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise ShapeError(f"{name} must be a real tensor, got dtype {x.dtype}")
        if x.ndim > 1 or (x.ndim == 1 and x.shape[0] != n_events):
            raise ShapeError(f"{name} must be a number or a tensor of shape ({n_events},), got {tuple(x.shape)}")
        value = x.to(device=device, dtype=_DTYPE)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        value = torch.tensor(float(x), dtype=_DTYPE, device=device)
    else:
        raise InvalidInputError(f"{name} must be a number or a torch.Tensor, got {type(x).__name__}")
    if not torch.isfinite(value).all():
        raise InvalidInputError(f"{name} must be finite, got {_describe(value)}")
    if strictly_positive and (value <= 0).any():
        raise InvalidInputError(f"{name} must be positive, got {_describe(value)}")
    if minimum is not None and (value < minimum).any():
        raise InvalidInputError(f"{name} must be ≥ {minimum:g}, got {_describe(value)}")
    return value


def _event_vector(x: torch.Tensor, name: str, n_events: int | None = None) -> torch.Tensor:
    """Check x is a finite real tensor of shape (N,) (N = n_events if given); return it as float64."""
    if not isinstance(x, torch.Tensor) or x.ndim != 1 or (n_events is not None and x.shape[0] != n_events):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        expected = f"({n_events},)" if n_events is not None else "(N,)"
        raise ShapeError(f"{name} must be a tensor of shape {expected}, got {shape}")
    if x.is_complex() or not x.is_floating_point():
        raise ShapeError(f"{name} must be a real floating-point tensor, got dtype {x.dtype}")
    x = x.to(_DTYPE)
    if not torch.isfinite(x).all():
        raise InvalidInputError(f"{name} contains NaN or inf")
    return x


def _describe(value: torch.Tensor) -> str:
    if value.ndim == 0:
        return f"{value.item():.6g}"
    return f"values in [{value.min().item():.6g}, {value.max().item():.6g}]"


def _mass(x: ScalarOrTensor, name: str, n_events: int, device: torch.device) -> torch.Tensor:
    return _per_event(x, name, n_events, device, minimum=0.0)


def _parent_momenta(parent: torch.Tensor, name: str = "parent") -> torch.Tensor:
    if not isinstance(parent, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (N, 4), got {type(parent).__name__}")
    if parent.ndim != 2 or parent.shape[1] != 4:
        raise ShapeError(f"{name} must have shape (N, 4) with (E, px, py, pz), got {tuple(parent.shape)}")
    if parent.is_complex() or not parent.is_floating_point():
        raise ShapeError(f"{name} must be a real floating-point tensor, got dtype {parent.dtype}")
    parent = parent.to(_DTYPE)
    if not torch.isfinite(parent).all():
        raise InvalidInputError(f"{name} contains NaN or inf")
    return parent


# --------------------------------------------------------------------------------------------------
# Generic kinematic helpers (private)
# --------------------------------------------------------------------------------------------------


def _kallen_sqrt(s: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    """√λ(s, m1², m2²), written as a product of threshold factors for precision; 0 below threshold."""
    lam = (s - (m1 + m2) ** 2) * (s - (m1 - m2) ** 2)
    return torch.sqrt(torch.clamp(lam, min=0.0))


def _boost_along_z(p: torch.Tensor, rapidity: torch.Tensor) -> torch.Tensor:
    """Boost p (..., 4) along +z by ``rapidity`` (...) using cosh/sinh (exact for any rapidity)."""
    ch, sh = torch.cosh(rapidity), torch.sinh(rapidity)
    energy = p[..., 0] * ch + p[..., 3] * sh
    pz = p[..., 3] * ch + p[..., 0] * sh
    return torch.stack([energy, p[..., 1], p[..., 2], pz], dim=-1)


def _unit_vector(cos_theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """(sinθ cosφ, sinθ sinφ, cosθ), shape (..., 3)."""
    sin_theta = torch.sqrt(torch.clamp(1.0 - cos_theta * cos_theta, min=0.0))
    return torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], dim=-1)


def _angles_of(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosθ, φ ∈ [0, 2π)) of the three-momentum of p (..., 4)."""
    length = torch.sqrt((p[..., 1:] ** 2).sum(-1))
    cos_theta = torch.clamp(p[..., 3] / length, -1.0, 1.0)
    phi = torch.remainder(torch.atan2(p[..., 2], p[..., 1]), _TWO_PI)
    phi = torch.where(phi >= _TWO_PI, torch.zeros_like(phi), phi)
    return cos_theta, phi


def _angles_to_random(cos_theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Inverse of cosθ = 2r₀ − 1, φ = 2π r₁; shape (N, 2)."""
    return torch.stack([(cos_theta + 1.0) / 2.0, phi / _TWO_PI], dim=-1)


def _random_to_angles(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cosθ = 2r₀ − 1 ∈ [−1, 1], φ = 2π r₁ ∈ [0, 2π) from r of shape (N, 2)."""
    return 2.0 * r[:, 0] - 1.0, _TWO_PI * r[:, 1]


# --------------------------------------------------------------------------------------------------
# Analytic volumes
# --------------------------------------------------------------------------------------------------


def massless_phase_space_volume(n: int, sqrt_s: ScalarOrTensor) -> ScalarOrTensor:
    """Φ_n for n massless particles at total energy √s (GeV).

    Φ_n = (2π)^(4−3n) (π/2)^(n−1) s^(n−2) / ((n−1)! (n−2)!)  (Kleiss, Stirling, Ellis 1986).

    Returns a float for a float ``sqrt_s`` and a tensor of the same shape otherwise; unit GeV^(2n−4).
    """
    if not isinstance(n, int) or n < 2:
        raise InvalidInputError(f"n must be an integer ≥ 2, got {n!r}")
    constant = (
        _TWO_PI ** (4 - 3 * n) * (math.pi / 2.0) ** (n - 1) / (math.factorial(n - 1) * math.factorial(n - 2))
    )
    return constant * (sqrt_s * sqrt_s) ** (n - 2)


def two_body_phase_space_volume(sqrt_s: ScalarOrTensor, m1: ScalarOrTensor, m2: ScalarOrTensor) -> torch.Tensor:
    """Φ_2 = |p*| / (4π √s) = √λ(s, m1², m2²) / (8π s) (dimensionless); 0 below threshold.

    Arguments are floats or tensors of broadcastable shapes (GeV); returns a float64 tensor.
    """
    sqrt_s, m1, m2 = (torch.as_tensor(x, dtype=_DTYPE) for x in (sqrt_s, m1, m2))
    s = sqrt_s * sqrt_s
    return _kallen_sqrt(s, m1, m2) / (8.0 * math.pi * s)


# --------------------------------------------------------------------------------------------------
# RAMBO
# --------------------------------------------------------------------------------------------------


def rambo(
    r: torch.Tensor, sqrt_s: ScalarOrTensor, masses: Sequence[float] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RAMBO: n-body phase space in the centre-of-mass frame (Kleiss, Stirling, Ellis 1986).

    Massless particles are generated with the KSE algorithm and carry the constant weight Φ_n
    (:func:`massless_phase_space_volume`).  With masses, the massless momenta are rescaled,
    p⃗_i → ξ p⃗_i and E_i → √(m_i² + ξ² E_i²), with ξ ∈ (0, 1] solving Σ_i E_i(ξ) = √s by a
    vectorised Newton iteration, and the weight becomes

        Φ_n^massless · (Σ|k⃗_i| / √s)^(2n−3) · Π_i (|k⃗_i| / k_i⁰) · √s / Σ_i (|k⃗_i|² / k_i⁰).

    The gradient with respect to r flows through ξ by the implicit-function theorem (one Newton
    step taken with autograd on after convergence).

    Args:
        r: (N, 4n) uniform random numbers; consumes 4 per particle.  For particle i, columns
            4i … 4i+3 give cosθ = 2r − 1, φ = 2πr and the energy −ln((1 − r)(1 − r′)) of the
            isotropic massless seed momentum.
        sqrt_s: total energy in the centre-of-mass frame (GeV); a float or an (N,) tensor.
        masses: the n masses (GeV), a sequence or a tensor of shape (n,); n ≥ 2.

    Returns:
        momenta (N, n, 4) in GeV, summing to (√s, 0, 0, 0), and the weight (N,) in GeV^(2n−4).

    Raises:
        InvalidInputError: n < 2, negative or non-finite masses, r outside [0, 1] or NaN.
        ShapeError: r not of shape (N, 4n).
        ThresholdError: √s ≤ Σ masses for some event.
        ConvergenceError: the Newton iteration for ξ did not converge.
    """
    masses_t = _rambo_masses(masses)
    n = masses_t.shape[0]
    r = _random_numbers(r, 4 * n, layout=f"4 random numbers for each of the n = {n} particles")
    n_events = r.shape[0]
    masses_t = masses_t.to(r.device)
    energy = _per_event(sqrt_s, "sqrt_s", n_events, r.device)
    _check_threshold(energy, masses_t.sum(), "sqrt_s", f"the sum of the masses {masses_t.sum().item():.6g} GeV")
    energy = energy.expand(n_events)

    momenta = _massless_rambo(r.reshape(n_events, n, 4), energy)
    weight = massless_phase_space_volume(n, energy)
    if bool((masses_t == 0).all()):
        return momenta, weight
    return _massive_rambo(momenta, energy, masses_t, weight)


def _rambo_masses(masses: Sequence[float] | torch.Tensor) -> torch.Tensor:
    if isinstance(masses, torch.Tensor):
        masses_t = masses.to(_DTYPE)
    else:
        try:
            masses_t = torch.tensor([float(m) for m in masses], dtype=_DTYPE)
        except TypeError as exc:
            raise InvalidInputError(f"masses must be a sequence of numbers or a 1-d tensor, got {masses!r}") from exc
    if masses_t.ndim != 1:
        raise ShapeError(f"masses must have shape (n,), got {tuple(masses_t.shape)}")
    if masses_t.shape[0] < 2:
        raise InvalidInputError(f"RAMBO needs at least 2 particles, got masses for n = {masses_t.shape[0]}")
    if not torch.isfinite(masses_t).all() or (masses_t < 0).any():
        raise InvalidInputError(f"masses must be finite and non-negative, got {masses_t.tolist()}")
    return masses_t


def _check_threshold(sqrt_s: torch.Tensor, threshold: torch.Tensor, name: str, what: str) -> None:
    below = sqrt_s <= threshold
    if below.any():
        raise ThresholdError(
            f"{name} must exceed {what}; got {_describe(sqrt_s)} GeV "
            f"({int(below.sum()) if below.ndim else 1} event(s) at or below threshold)"
        )


def _massless_rambo(u: torch.Tensor, sqrt_s: torch.Tensor) -> torch.Tensor:
    """KSE massless momenta from u (N, n, 4) at energies sqrt_s (N,); returns (N, n, 4)."""
    cos_theta, phi = 2.0 * u[..., 0] - 1.0, _TWO_PI * u[..., 1]
    seed_energy = -(torch.log1p(-u[..., 2].clamp(max=_ONE_BELOW)) + torch.log1p(-u[..., 3].clamp(max=_ONE_BELOW)))
    seed_space = seed_energy.unsqueeze(-1) * _unit_vector(cos_theta, phi)  # (N, n, 3)

    total_energy = seed_energy.sum(1)  # (N,)
    total_space = seed_space.sum(1)  # (N, 3)
    total_mass = torch.sqrt(total_energy**2 - (total_space**2).sum(-1))
    b = -total_space / total_mass.unsqueeze(-1)  # (N, 3)
    gamma = total_energy / total_mass
    a = 1.0 / (1.0 + gamma)
    x = sqrt_s / total_mass

    b_dot_q = (b.unsqueeze(1) * seed_space).sum(-1)  # (N, n)
    energy = x.unsqueeze(1) * (gamma.unsqueeze(1) * seed_energy + b_dot_q)
    space = x[:, None, None] * (
        seed_space
        + b.unsqueeze(1) * seed_energy.unsqueeze(-1)
        + (a.unsqueeze(1) * b_dot_q).unsqueeze(-1) * b.unsqueeze(1)
    )
    return torch.cat([energy.unsqueeze(-1), space], dim=-1)


def _massive_rambo(
    massless: torch.Tensor, sqrt_s: torch.Tensor, masses: torch.Tensor, massless_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale massless RAMBO momenta (N, n, 4) to masses (n,) and return (momenta, weight)."""
    n = masses.shape[0]
    massless_energy = massless[..., 0]  # (N, n) = |p⃗_i|
    xi = _solve_rescaling(massless_energy.detach(), sqrt_s.detach(), masses.detach())
    # One Newton step with autograd on: same value, exact first derivatives through ξ.
    residual, slope = _rescaling_equation(xi, massless_energy, sqrt_s, masses)
    xi = xi - residual / slope

    is_massless = masses == 0
    momentum = xi.unsqueeze(1) * massless_energy  # |k⃗_i|, (N, n)
    energy = torch.sqrt(masses**2 + momentum**2)  # k_i⁰
    safe_energy = torch.where(is_massless, torch.ones_like(energy), energy)
    velocity = torch.where(is_massless, torch.ones_like(energy), momentum / safe_energy)
    momentum_times_velocity = torch.where(is_massless, momentum, momentum**2 / safe_energy)

    weight = (
        massless_weight
        * (momentum.sum(1) / sqrt_s) ** (2 * n - 3)
        * velocity.prod(1)
        * sqrt_s
        / momentum_times_velocity.sum(1)
    )
    space = xi[:, None, None] * massless[..., 1:]
    return torch.cat([energy.unsqueeze(-1), space], dim=-1), weight


def _rescaling_equation(
    xi: torch.Tensor, massless_energy: torch.Tensor, sqrt_s: torch.Tensor, masses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """f(ξ) = Σ_i √(m_i² + ξ² E_i²) − √s and f′(ξ), each (N,)."""
    scaled = xi.unsqueeze(1) * massless_energy
    energy = torch.sqrt(masses**2 + scaled**2)
    safe_energy = torch.where(energy > 0, energy, torch.ones_like(energy))
    derivative_terms = torch.where(energy > 0, scaled * massless_energy / safe_energy, massless_energy)
    return energy.sum(1) - sqrt_s, derivative_terms.sum(1)


def _solve_rescaling(massless_energy: torch.Tensor, sqrt_s: torch.Tensor, masses: torch.Tensor) -> torch.Tensor:
    """Newton iteration for ξ (N,).  f is convex and increasing in ξ, so Newton converges monotonically."""
    n = masses.shape[0]
    tolerance = 8.0 * n * torch.finfo(_DTYPE).eps * sqrt_s
    xi = torch.sqrt(1.0 - (masses.sum() / sqrt_s) ** 2).expand(massless_energy.shape[0]).clone()
    for _ in range(_NEWTON_MAX_ITERATIONS):
        residual, slope = _rescaling_equation(xi, massless_energy, sqrt_s, masses)
        converged = residual.abs() <= tolerance
        if bool(converged.all()):
            return xi
        xi = torch.where(converged, xi, xi - residual / slope)
    n_bad = int((~converged).sum())
    raise ConvergenceError(
        f"RAMBO: the Newton iteration for the momentum rescaling ξ did not converge for {n_bad} event(s) "
        f"within {_NEWTON_MAX_ITERATIONS} iterations (largest residual {residual.abs().max().item():.3g} GeV)"
    )


# --------------------------------------------------------------------------------------------------
# Two-body decay
# --------------------------------------------------------------------------------------------------


def _decay_at_rest(
    parent_mass: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, cos_theta: torch.Tensor, phi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Daughter momenta (N, 4) each in the parent rest frame, and |p*| (N,)."""
    parent_mass2 = parent_mass * parent_mass
    p_star = _kallen_sqrt(parent_mass2, m1, m2) / (2.0 * parent_mass)
    energy_1 = (parent_mass2 + m1 * m1 - m2 * m2) / (2.0 * parent_mass)
    energy_2 = (parent_mass2 + m2 * m2 - m1 * m1) / (2.0 * parent_mass)
    momentum = p_star.unsqueeze(-1) * _unit_vector(cos_theta, phi)
    p1 = torch.cat([energy_1.expand_as(p_star).unsqueeze(-1), momentum], dim=-1)
    p2 = torch.cat([energy_2.expand_as(p_star).unsqueeze(-1), -momentum], dim=-1)
    return p1, p2, p_star


def _decay(
    parent: torch.Tensor,
    parent_mass: torch.Tensor,
    m1: torch.Tensor,
    m2: torch.Tensor,
    cos_theta: torch.Tensor,
    phi: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unchecked two-body decay: (p1, p2, weight) with weight = |p*| / (4π M).

    A massless parent (M = 0, reachable at the edge of a sampled mass range when both daughters are
    massless) has no rest frame: its daughters are returned collinear, p1 = p2 = parent/2, with
    weight 0 (|p*| = 0), instead of the 0/0 of the boost.
    """
    massless = parent_mass <= 0
    safe_mass = torch.where(massless, torch.ones_like(parent_mass), parent_mass)
    p1, p2, p_star = _decay_at_rest(safe_mass, m1, m2, cos_theta, phi)
    p1 = boost_from_rest_frame_of(p1, parent, safe_mass)
    p2 = boost_from_rest_frame_of(p2, parent, safe_mass)
    weight = p_star / (2.0 * _TWO_PI * safe_mass)
    if massless.any():
        half = 0.5 * parent
        p1 = torch.where(massless[..., None], half, p1)
        p2 = torch.where(massless[..., None], half, p2)
        weight = torch.where(massless, torch.zeros_like(weight), weight)
    return p1, p2, weight


def _parent_mass_above_threshold(parent: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    parent_mass2 = mass2(parent)
    threshold2 = (m1 + m2) ** 2
    below = parent_mass2 < threshold2 * (1.0 - _THRESHOLD_RTOL)
    if (parent[:, 0] <= 0).any():
        raise InvalidInputError("parent must have positive energy in every event")
    if below.any():
        raise ThresholdError(
            f"parent mass below the decay threshold m1 + m2 in {int(below.sum())} event(s) "
            f"(smallest parent mass² {parent_mass2.min().item():.6g} GeV²)"
        )
    return torch.sqrt(torch.clamp(parent_mass2, min=0.0))


def two_body_decay(
    parent: torch.Tensor,
    m1: ScalarOrTensor,
    m2: ScalarOrTensor,
    cos_theta: torch.Tensor,
    phi: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decay ``parent`` into two daughters of masses m1, m2 at given rest-frame angles.

    The angles give the direction of daughter 1 in the parent rest frame *relative to the fixed lab
    axes*: the rest frame is reached by a pure (rotation-free) boost along the parent's momentum,
    and no rotation to the parent's direction of flight is made (so cosθ is not the helicity angle).
    Consumes no random numbers; see :func:`two_body_decay_from_random`.

    Args:
        parent: (N, 4) parent four-momenta (GeV), time-like with positive energy.
        m1, m2: daughter masses (GeV), floats or (N,) tensors, ≥ 0.
        cos_theta: (N,) cosine of the polar angle of daughter 1, in [−1, 1].
        phi: (N,) azimuth of daughter 1 (radians).

    Returns:
        p1, p2: (N, 4) daughter momenta (GeV) with p1 + p2 = parent.
        weight: (N,) = |p*| / (16π² M) · 4π = |p*| / (4π M), the dΦ_2 weight for cosθ uniform in
            [−1, 1] and φ uniform in [0, 2π) (dimensionless).

    Raises:
        ThresholdError: the parent mass lies below m1 + m2 (beyond a relative rounding of 1e-12).
    """
    parent = _parent_momenta(parent)
    n_events = parent.shape[0]
    m1_t, m2_t = _mass(m1, "m1", n_events, parent.device), _mass(m2, "m2", n_events, parent.device)
    cos_theta = _event_vector(cos_theta, "cos_theta", n_events)
    phi = _event_vector(phi, "phi", n_events)
    if ((cos_theta < -1) | (cos_theta > 1)).any():
        raise InvalidInputError(f"cos_theta must lie in [-1, 1], got {_describe(cos_theta)}")
    parent_mass = _parent_mass_above_threshold(parent, m1_t, m2_t)
    return _decay(parent, parent_mass, m1_t, m2_t, cos_theta, phi)


def two_body_decay_from_random(
    parent: torch.Tensor, m1: ScalarOrTensor, m2: ScalarOrTensor, r: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`two_body_decay` with cosθ = 2r₀ − 1 and φ = 2π r₁.

    Args:
        parent: (N, 4) parent four-momenta (GeV).
        m1, m2: daughter masses (GeV), floats or (N,) tensors.
        r: (N, 2) uniform random numbers; consumes 2 (cosθ, φ of daughter 1 in the parent rest frame).

    Returns:
        p1, p2 (N, 4) in GeV and the weight (N,) = |p*| / (4π M).
    """
    r = _random_numbers(r, 2, layout="cosθ and φ of daughter 1")
    cos_theta, phi = _random_to_angles(r)
    return two_body_decay(parent, m1, m2, cos_theta, phi)


def inverse_two_body_decay(
    parent: torch.Tensor, p1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angles and random numbers that make :func:`two_body_decay_from_random` reproduce p1.

    Args:
        parent: (N, 4) parent four-momenta (GeV).
        p1: (N, 4) momentum of daughter 1 (GeV).

    Returns:
        cos_theta (N,), phi (N,) in [0, 2π), and r (N, 2) = ((cosθ + 1)/2, φ/2π), all measured
        in the parent rest frame relative to the lab axes (see :func:`two_body_decay`).
    """
    parent = _parent_momenta(parent)
    p1 = _parent_momenta(p1, "p1")
    if p1.shape != parent.shape:
        raise ShapeError(f"p1 must have the shape of parent {tuple(parent.shape)}, got {tuple(p1.shape)}")
    parent_mass2 = mass2(parent)
    if (parent_mass2 <= 0).any() or (parent[:, 0] <= 0).any():
        raise InvalidInputError("parent must be time-like with positive energy in every event")
    rest = boost_to_rest_frame_of(p1, parent, torch.sqrt(parent_mass2))
    cos_theta, phi = _angles_of(rest)
    return cos_theta, phi, _angles_to_random(cos_theta, phi)


# --------------------------------------------------------------------------------------------------
# Invariant-mass sampling
# --------------------------------------------------------------------------------------------------


def _mass2_bounds(
    m2_min: ScalarOrTensor, m2_max: ScalarOrTensor, n_events: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    lower = _per_event(m2_min, "m2_min", n_events, device)
    upper = _per_event(m2_max, "m2_max", n_events, device)
    if (upper <= lower).any():
        raise InvalidInputError(
            f"m2_max must exceed m2_min; got m2_min {_describe(lower)} GeV², m2_max {_describe(upper)} GeV²"
        )
    return lower, upper


def _breit_wigner_arctan_range(
    mass: torch.Tensor, width: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    mass_width = mass * width
    return torch.atan((lower - mass * mass) / mass_width), torch.atan((upper - mass * mass) / mass_width)


def _breit_wigner_mass2(
    r: torch.Tensor, mass: torch.Tensor, width: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unchecked Breit–Wigner sampling; r (N,) → (s, weight)."""
    mass_width = mass * width
    y_min, y_max = _breit_wigner_arctan_range(mass, width, lower, upper)
    s = mass * mass + mass_width * torch.tan(y_min + r * (y_max - y_min))
    s = torch.minimum(torch.maximum(s, lower), upper)  # rounding at the ends of the range
    jacobian = (y_max - y_min) * ((s - mass * mass) ** 2 + mass_width**2) / mass_width
    return s, jacobian / _TWO_PI


def _inverse_breit_wigner_mass2(
    s: torch.Tensor, mass: torch.Tensor, width: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> torch.Tensor:
    y_min, y_max = _breit_wigner_arctan_range(mass, width, lower, upper)
    y = torch.atan((s - mass * mass) / (mass * width))
    return (y - y_min) / (y_max - y_min)


def breit_wigner_mass2(
    r: torch.Tensor,
    mass: ScalarOrTensor,
    width: ScalarOrTensor,
    m2_min: ScalarOrTensor,
    m2_max: ScalarOrTensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample s = m² from a Breit–Wigner restricted to [m2_min, m2_max] by the arctan mapping.

    s = M² + MΓ tan(y) with y uniform between arctan((m2_min − M²)/MΓ) and arctan((m2_max − M²)/MΓ).
    The weight is the Jacobian over 2π,

        weight = (ds/dr) / (2π) = (y_max − y_min) ((s − M²)² + M²Γ²) / (2π MΓ),

    i.e. the factor ds/(2π) of the recursive phase-space factorisation
    dΦ_n = dΦ_{n−j+1}(P; q, …) (ds_q/2π) dΦ_j(q; …).  The caller multiplies by the full
    |1/(s − M² + iMΓ)|²; then weight · |propagator|² = (y_max − y_min)/(2π MΓ) for every event.

    Args:
        r: (N, 1) uniform random numbers; consumes 1.
        mass, width: M > 0 and Γ > 0 (GeV), floats or (N,) tensors.
        m2_min, m2_max: limits of s (GeV²), floats or (N,) tensors, m2_min < m2_max.

    Returns:
        s (N,) in GeV² and weight (N,) in GeV².
    """
    r = _random_numbers(r, 1, layout="one random number for s")
    n_events = r.shape[0]
    mass_t = _per_event(mass, "mass", n_events, r.device, strictly_positive=True)
    width_t = _per_event(width, "width", n_events, r.device, strictly_positive=True)
    lower, upper = _mass2_bounds(m2_min, m2_max, n_events, r.device)
    return _breit_wigner_mass2(r[:, 0], mass_t, width_t, lower, upper)


def inverse_breit_wigner_mass2(
    s: torch.Tensor,
    mass: ScalarOrTensor,
    width: ScalarOrTensor,
    m2_min: ScalarOrTensor,
    m2_max: ScalarOrTensor,
) -> torch.Tensor:
    """Random numbers r (N, 1) for which :func:`breit_wigner_mass2` returns s (N,) (GeV²)."""
    s = _event_vector(s, "s")
    n_events = s.shape[0]
    mass_t = _per_event(mass, "mass", n_events, s.device, strictly_positive=True)
    width_t = _per_event(width, "width", n_events, s.device, strictly_positive=True)
    lower, upper = _mass2_bounds(m2_min, m2_max, n_events, s.device)
    return _inverse_breit_wigner_mass2(s, mass_t, width_t, lower, upper).unsqueeze(-1)


def _uniform_mass2(r: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = lower + r * (upper - lower)
    return s, ((upper - lower) / _TWO_PI).expand_as(s)


def uniform_mass2(
    r: torch.Tensor, m2_min: ScalarOrTensor, m2_max: ScalarOrTensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample s = m² uniformly in [m2_min, m2_max], with the conventions of :func:`breit_wigner_mass2`.

    For non-resonant channels or zero width: weight = (m2_max − m2_min) / (2π) = (ds/dr) / (2π);
    any propagator is the caller's to multiply.

    Args:
        r: (N, 1) uniform random numbers; consumes 1.
        m2_min, m2_max: limits of s (GeV²), floats or (N,) tensors, m2_min < m2_max.

    Returns:
        s (N,) in GeV² and weight (N,) in GeV².
    """
    r = _random_numbers(r, 1, layout="one random number for s")
    lower, upper = _mass2_bounds(m2_min, m2_max, r.shape[0], r.device)
    return _uniform_mass2(r[:, 0], lower, upper)


def inverse_uniform_mass2(s: torch.Tensor, m2_min: ScalarOrTensor, m2_max: ScalarOrTensor) -> torch.Tensor:
    """Random numbers r (N, 1) for which :func:`uniform_mass2` returns s (N,) (GeV²)."""
    s = _event_vector(s, "s")
    lower, upper = _mass2_bounds(m2_min, m2_max, s.shape[0], s.device)
    return ((s - lower) / (upper - lower)).unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# 2 → 2 and hadronic kinematics
# --------------------------------------------------------------------------------------------------


def two_to_two(
    r: torch.Tensor, sqrt_s: ScalarOrTensor, m3: ScalarOrTensor, m4: ScalarOrTensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """2 → 2 phase space in the partonic centre-of-mass frame, beams along ±z.

    The incoming partons are massless, p1 = (√s/2)(1, 0, 0, 1) and p2 = (√s/2)(1, 0, 0, −1);
    particle 3 flies at polar angle θ to p1 (cosθ = 2r₀ − 1) and azimuth φ = 2π r₁.

    Args:
        r: (N, 2) uniform random numbers; consumes 2.
        sqrt_s: partonic centre-of-mass energy (GeV), float or (N,) tensor.
        m3, m4: final-state masses (GeV), floats or (N,) tensors.

    Returns:
        momenta (N, 4, 4) ordered (p1, p2, p3, p4) in GeV, and weight (N,) = Φ_2 = |p*|/(4π√s).

    Raises:
        ThresholdError: √s ≤ m3 + m4.
    """
    r = _random_numbers(r, 2, layout="cosθ and φ of particle 3")
    n_events = r.shape[0]
    energy = _per_event(sqrt_s, "sqrt_s", n_events, r.device).expand(n_events)
    m3_t, m4_t = _mass(m3, "m3", n_events, r.device), _mass(m4, "m4", n_events, r.device)
    _check_threshold(energy, m3_t + m4_t, "sqrt_s", "m3 + m4")
    cos_theta, phi = _random_to_angles(r)
    p3, p4, p_star = _decay_at_rest(energy, m3_t, m4_t, cos_theta, phi)
    return torch.stack([*_incoming_partons(energy), p3, p4], dim=1), p_star / (2.0 * _TWO_PI * energy)


def _incoming_partons(sqrt_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = sqrt_s / 2.0
    zero = torch.zeros_like(half)
    return torch.stack([half, zero, zero, half], -1), torch.stack([half, zero, zero, -half], -1)


def inverse_two_to_two(momenta: torch.Tensor) -> torch.Tensor:
    """Random numbers r (N, 2) for which :func:`two_to_two` gives these momenta (N, 4, 4).

    Only p3 and p4 are read; their rest frame is reached by a boost along their total momentum, so
    momenta boosted along z (lab frame) give the same r.
    """
    if not isinstance(momenta, torch.Tensor) or momenta.ndim != 3 or momenta.shape[1:] != (4, 4):
        shape = tuple(momenta.shape) if isinstance(momenta, torch.Tensor) else type(momenta).__name__
        raise ShapeError(f"momenta must have shape (N, 4, 4) ordered (p1, p2, p3, p4), got {shape}")
    momenta = momenta.to(_DTYPE)
    total = momenta[:, 2] + momenta[:, 3]
    rest = boost_to_rest_frame_of(momenta[:, 2], total, torch.sqrt(mass2(total)))
    return _angles_to_random(*_angles_of(rest))


def _hadronic_tau_range(
    sqrt_s_hadronic: ScalarOrTensor, s_hat_min: ScalarOrTensor, s_hat_max: ScalarOrTensor | None
) -> tuple[float, float]:
    for name, value in (("sqrt_s_hadronic", sqrt_s_hadronic), ("s_hat_min", s_hat_min), ("s_hat_max", s_hat_max)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    if sqrt_s_hadronic <= 0:
        raise InvalidInputError(f"sqrt_s_hadronic must be positive, got {sqrt_s_hadronic}")
    s_hadronic = float(sqrt_s_hadronic) ** 2
    if s_hat_max is None:
        s_hat_max = s_hadronic
    if s_hat_min <= 0:
        raise InvalidInputError(f"s_hat_min must be positive (the 1/τ mapping needs τ_min > 0), got {s_hat_min}")
    if s_hat_max > s_hadronic * (1.0 + 1e-15):
        raise InvalidInputError(
            f"s_hat_max must not exceed sqrt_s_hadronic² = {s_hadronic:.6g} GeV², got {s_hat_max}"
        )
    if s_hat_min >= s_hat_max:
        raise ThresholdError(f"s_hat_min = {s_hat_min} GeV² must be below s_hat_max = {s_hat_max} GeV²")
    return s_hat_min / s_hadronic, min(s_hat_max / s_hadronic, 1.0)


def hadronic_momentum_fractions(
    r: torch.Tensor,
    sqrt_s_hadronic: float,
    s_hat_min: float,
    s_hat_max: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map r to parton momentum fractions (x1, x2) with τ = x1 x2 ∝ 1/τ and uniform rapidity.

    τ = τ_min (τ_max/τ_min)^r₀ with τ_min = ŝ_min/S, τ_max = ŝ_max/S; the partonic rapidity
    y = ½ ln(x1/x2) is uniform in [½ ln τ, −½ ln τ], y = (r₁ − ½)(−ln τ); x1 = √τ e^y, x2 = √τ e^−y.
    Since dx1 dx2 = dτ dy, the weight is

        weight = τ ln(τ_max/τ_min) · (−ln τ),

    so that mean(weight · g(x1, x2)) estimates ∫dx1 dx2 g over {τ_min ≤ x1 x2 ≤ τ_max}.  The
    partonic energy is √ŝ = √(x1 x2) · sqrt_s_hadronic.

    Args:
        r: (N, 2) uniform random numbers; consumes 2 (τ, then y).
        sqrt_s_hadronic: collider energy √S (GeV).
        s_hat_min: smallest partonic ŝ (GeV²), > 0.
        s_hat_max: largest partonic ŝ (GeV²), default S.

    Returns:
        x1, x2, weight, each (N,) and dimensionless.
    """
    r = _random_numbers(r, 2, layout="τ and rapidity")
    tau_min, tau_max = _hadronic_tau_range(sqrt_s_hadronic, s_hat_min, s_hat_max)
    log_tau_range = math.log(tau_max / tau_min)
    log_tau = math.log(tau_min) + r[:, 0] * log_tau_range
    rapidity = (r[:, 1] - 0.5) * (-log_tau)
    x1, x2 = torch.exp(0.5 * log_tau + rapidity), torch.exp(0.5 * log_tau - rapidity)
    weight = torch.exp(log_tau) * log_tau_range * (-log_tau)
    return x1, x2, weight


def inverse_hadronic_momentum_fractions(
    x1: torch.Tensor,
    x2: torch.Tensor,
    sqrt_s_hadronic: float,
    s_hat_min: float,
    s_hat_max: float | None = None,
) -> torch.Tensor:
    """Random numbers r (N, 2) for which :func:`hadronic_momentum_fractions` returns (x1, x2) (N,) each."""
    x1 = _event_vector(x1, "x1")
    x2 = _event_vector(x2, "x2", x1.shape[0])
    if (x1 <= 0).any() or (x2 <= 0).any():
        raise InvalidInputError("x1 and x2 must be positive")
    tau_min, tau_max = _hadronic_tau_range(sqrt_s_hadronic, s_hat_min, s_hat_max)
    log_tau = torch.log(x1) + torch.log(x2)
    rapidity = 0.5 * (torch.log(x1) - torch.log(x2))
    r_tau = (log_tau - math.log(tau_min)) / math.log(tau_max / tau_min)
    r_rapidity = torch.where(log_tau < 0, rapidity / (-log_tau) + 0.5, torch.full_like(log_tau, 0.5))
    return torch.stack([r_tau, r_rapidity], dim=-1)


def boost_partonic_to_lab(momenta: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Boost partonic centre-of-mass momenta to the lab frame along z by rapidity ½ ln(x1/x2).

    Parton 1 (fraction x1) moves along +z, as p1 of :func:`two_to_two`.

    Args:
        momenta: (N, n, 4) momenta in the partonic centre-of-mass frame (GeV).
        x1, x2: (N,) momentum fractions.

    Returns:
        (N, n, 4) lab-frame momenta (GeV).
    """
    if not isinstance(momenta, torch.Tensor) or momenta.ndim != 3 or momenta.shape[-1] != 4:
        shape = tuple(momenta.shape) if isinstance(momenta, torch.Tensor) else type(momenta).__name__
        raise ShapeError(f"momenta must have shape (N, n, 4), got {shape}")
    n_events = momenta.shape[0]
    x1 = _event_vector(x1, "x1", n_events)
    x2 = _event_vector(x2, "x2", n_events)
    if (x1 <= 0).any() or (x2 <= 0).any():
        raise InvalidInputError("x1 and x2 must be positive")
    rapidity = 0.5 * (torch.log(x1) - torch.log(x2))
    return _boost_along_z(momenta.to(_DTYPE), rapidity.unsqueeze(1))


# --------------------------------------------------------------------------------------------------
# Two resonances, four bodies
# --------------------------------------------------------------------------------------------------

#: How the invariant mass of a :class:`Resonance` is generated.
RESONANCE_MODES = ("breit-wigner", "narrow", "flat")


class Resonance(NamedTuple):
    """An s-channel resonance decaying to two particles, for :func:`two_resonance_four_body`.

    Attributes:
        mass, width: pole mass M and width Γ (GeV); unused in mode "flat".
        daughter_mass_1, daughter_mass_2: masses of its decay products (GeV).
        mode: "breit-wigner" — s sampled by :func:`breit_wigner_mass2` within the kinematic
            limits; the caller multiplies by the full |1/(s − M² + iMΓ)|².
            "narrow" — s = M² exactly, and the weight carries π/(MΓ) · 1/(2π) = 1/(2MΓ), which *replaces*
            ∫ds/(2π) |1/(s − M² + iMΓ)|²: the caller must NOT multiply by |propagator|² for it.
            "flat" — s uniform within the kinematic limits (:func:`uniform_mass2`); any propagator
            is the caller's to multiply.
    """

    mass: float
    width: float
    daughter_mass_1: float
    daughter_mass_2: float
    mode: str = "breit-wigner"


def _resonance(spec: Resonance | Sequence, name: str) -> Resonance:
    try:
        resonance = Resonance(*spec)
    except TypeError as exc:
        raise InvalidInputError(
            f"{name} must be (mass, width, daughter_mass_1, daughter_mass_2, mode), got {spec!r}"
        ) from exc
    if resonance.mode not in RESONANCE_MODES:
        raise InvalidInputError(f"{name}.mode must be one of {RESONANCE_MODES}, got {resonance.mode!r}")
    for field in ("mass", "width", "daughter_mass_1", "daughter_mass_2"):
        value = getattr(resonance, field)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"{name}.{field} must be a finite non-negative number, got {value!r}")
    if resonance.mode != "flat" and (resonance.mass <= 0 or resonance.width <= 0):
        raise InvalidInputError(
            f"{name} in mode {resonance.mode!r} needs mass > 0 and width > 0, "
            f"got mass {resonance.mass}, width {resonance.width}"
        )
    daughters = resonance.daughter_mass_1 + resonance.daughter_mass_2
    if resonance.mode == "narrow" and resonance.mass <= daughters:
        raise ThresholdError(f"{name}: narrow resonance of mass {resonance.mass} GeV cannot decay to daughters "
                             f"of total mass {daughters} GeV")
    return resonance


def _lightest_mass(resonance: Resonance) -> float:
    """The smallest invariant mass the resonance can be given (GeV)."""
    if resonance.mode == "narrow":
        return resonance.mass
    return resonance.daughter_mass_1 + resonance.daughter_mass_2


def _sample_resonance_mass2(
    r: torch.Tensor, resonance: Resonance, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """s (N,) and its weight for one resonance, s ≤ upper (N,); r (N,) is ignored in narrow mode."""
    lower = torch.full_like(upper, (resonance.daughter_mass_1 + resonance.daughter_mass_2) ** 2)
    if resonance.mode == "narrow":
        s = torch.full_like(upper, resonance.mass**2)
        return s, torch.full_like(upper, 1.0 / (2.0 * resonance.mass * resonance.width))
    if resonance.mode == "flat":
        return _uniform_mass2(r, lower, upper)
    mass = torch.tensor(resonance.mass, dtype=_DTYPE, device=upper.device)
    width = torch.tensor(resonance.width, dtype=_DTYPE, device=upper.device)
    return _breit_wigner_mass2(r, mass, width, lower, upper)


def _resonance_mass2_to_random(s: torch.Tensor, resonance: Resonance, upper: torch.Tensor) -> torch.Tensor:
    lower = torch.full_like(upper, (resonance.daughter_mass_1 + resonance.daughter_mass_2) ** 2)
    if resonance.mode == "narrow":
        return torch.full_like(s, 0.5)
    if resonance.mode == "flat":
        return (s - lower) / (upper - lower)
    mass = torch.tensor(resonance.mass, dtype=_DTYPE, device=upper.device)
    width = torch.tensor(resonance.width, dtype=_DTYPE, device=upper.device)
    return _inverse_breit_wigner_mass2(s, mass, width, lower, upper)


def _two_resonance_energy(
    sqrt_s: ScalarOrTensor, n_events: int, device: torch.device, resonance_a: Resonance, resonance_b: Resonance
) -> torch.Tensor:
    energy = _per_event(sqrt_s, "sqrt_s", n_events, device).expand(n_events)
    threshold = _lightest_mass(resonance_a) + _lightest_mass(resonance_b)
    _check_threshold(
        energy, torch.tensor(threshold, dtype=_DTYPE), "sqrt_s", f"the lightest accessible mass {threshold:.6g} GeV"
    )
    return energy


def two_resonance_four_body(
    r: torch.Tensor,
    sqrt_s: ScalarOrTensor,
    resonance_a: Resonance | Sequence,
    resonance_b: Resonance | Sequence,
) -> tuple[torch.Tensor, torch.Tensor]:
    """P → A(→ a1 a2) B(→ b1 b2) in the centre-of-mass frame, e.g. q q̄′ → W*(→ ℓν) H(→ b b̄).

    Uses dΦ_4 = dΦ_2(P; q_A, q_B) (ds_A/2π) (ds_B/2π) dΦ_2(q_A; a1, a2) dΦ_2(q_B; b1, b2).
    s_A is generated first in [(m_a1 + m_a2)², (√s − m_B,min)²], where m_B,min is M_B in "narrow"
    mode and m_b1 + m_b2 otherwise; then s_B in [(m_b1 + m_b2)², (√s − √s_A)²].  Each resonance is
    sampled according to its ``mode`` (see :class:`Resonance`): with "breit-wigner" the caller
    multiplies by the full |1/(s − M² + iMΓ)|²; with "narrow" s = M² and the weight carries 1/(2MΓ),
    so the caller must NOT multiply by |propagator|² for that resonance; with "flat" s is uniform.

    Decay angles are measured in each resonance's rest frame relative to the lab axes (see
    :func:`two_body_decay`); the production angle is that of A relative to +z.

    Args:
        r: (N, 8) uniform random numbers; consumes 8: column 0 → s_A, 1 → s_B (each ignored in
            "narrow" mode), 2–3 → (cosθ, φ) of A in the centre-of-mass frame, 4–5 → (cosθ, φ) of a1
            in the A rest frame, 6–7 → (cosθ, φ) of b1 in the B rest frame.
        sqrt_s: centre-of-mass energy (GeV), float or (N,) tensor.
        resonance_a, resonance_b: :class:`Resonance` or tuples (mass, width, daughter_mass_1,
            daughter_mass_2, mode).

    Returns:
        momenta (N, 4, 4) ordered (a1, a2, b1, b2) in GeV, summing to (√s, 0, 0, 0), and the weight
        (N,) in GeV⁴, times GeV⁻⁴ for each narrow resonance (its factor 1/(2MΓ) already contains the
        integrated |propagator|²).

    Raises:
        ThresholdError: √s ≤ m_A,min + m_B,min, or a narrow resonance lighter than its daughters.
    """
    resonance_a, resonance_b = _resonance(resonance_a, "resonance_a"), _resonance(resonance_b, "resonance_b")
    r = _random_numbers(r, 8, layout="s_A, s_B, 2 production angles, 2 + 2 decay angles")
    n_events = r.shape[0]
    energy = _two_resonance_energy(sqrt_s, n_events, r.device, resonance_a, resonance_b)

    s_a, weight_a = _sample_resonance_mass2(r[:, 0], resonance_a, (energy - _lightest_mass(resonance_b)) ** 2)
    mass_a = torch.sqrt(s_a)
    s_b, weight_b = _sample_resonance_mass2(r[:, 1], resonance_b, (energy - mass_a) ** 2)
    mass_b = torch.sqrt(s_b)

    q_a, q_b, p_star = _decay_at_rest(energy, mass_a, mass_b, *_random_to_angles(r[:, 2:4]))
    production_weight = p_star / (2.0 * _TWO_PI * energy)
    a1, a2, decay_weight_a = _decay(
        q_a, mass_a, *_daughter_masses(resonance_a, r), *_random_to_angles(r[:, 4:6])
    )
    b1, b2, decay_weight_b = _decay(
        q_b, mass_b, *_daughter_masses(resonance_b, r), *_random_to_angles(r[:, 6:8])
    )
    weight = weight_a * weight_b * production_weight * decay_weight_a * decay_weight_b
    return torch.stack([a1, a2, b1, b2], dim=1), weight


def _daughter_masses(resonance: Resonance, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(resonance.daughter_mass_1, dtype=_DTYPE, device=like.device),
        torch.tensor(resonance.daughter_mass_2, dtype=_DTYPE, device=like.device),
    )


def inverse_two_resonance_four_body(
    momenta: torch.Tensor,
    sqrt_s: ScalarOrTensor,
    resonance_a: Resonance | Sequence,
    resonance_b: Resonance | Sequence,
) -> torch.Tensor:
    """Random numbers r (N, 8) for which :func:`two_resonance_four_body` returns these momenta.

    Args:
        momenta: (N, 4, 4) ordered (a1, a2, b1, b2) in GeV, in the centre-of-mass frame (or boosted
            from it along z: the production angle is read in the rest frame of the total momentum).
        sqrt_s, resonance_a, resonance_b: as for :func:`two_resonance_four_body`.

    Returns:
        r (N, 8); the columns of "narrow" resonances (which the forward map ignores) are set to 0.5.
    """
    resonance_a, resonance_b = _resonance(resonance_a, "resonance_a"), _resonance(resonance_b, "resonance_b")
    if not isinstance(momenta, torch.Tensor) or momenta.ndim != 3 or momenta.shape[1:] != (4, 4):
        shape = tuple(momenta.shape) if isinstance(momenta, torch.Tensor) else type(momenta).__name__
        raise ShapeError(f"momenta must have shape (N, 4, 4) ordered (a1, a2, b1, b2), got {shape}")
    momenta = momenta.to(_DTYPE)
    n_events = momenta.shape[0]
    energy = _two_resonance_energy(sqrt_s, n_events, momenta.device, resonance_a, resonance_b)

    q_a, q_b = momenta[:, 0] + momenta[:, 1], momenta[:, 2] + momenta[:, 3]
    mass_a, mass_b = torch.sqrt(mass2(q_a)), torch.sqrt(mass2(q_b))
    r_a = _resonance_mass2_to_random(mass_a**2, resonance_a, (energy - _lightest_mass(resonance_b)) ** 2)
    r_b = _resonance_mass2_to_random(mass_b**2, resonance_b, (energy - mass_a) ** 2)

    total = q_a + q_b
    q_a_rest = boost_to_rest_frame_of(q_a, total, torch.sqrt(mass2(total)))
    r_production = _angles_to_random(*_angles_of(q_a_rest))
    r_decay_a = _angles_to_random(*_angles_of(boost_to_rest_frame_of(momenta[:, 0], q_a, mass_a)))
    r_decay_b = _angles_to_random(*_angles_of(boost_to_rest_frame_of(momenta[:, 2], q_b, mass_b)))
    return torch.cat([r_a.unsqueeze(-1), r_b.unsqueeze(-1), r_production, r_decay_a, r_decay_b], dim=-1)
