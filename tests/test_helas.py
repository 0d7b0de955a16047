"""HELAS building blocks against exact identities of the Dirac and Lorentz algebra."""

import math

import pytest
import torch

from sbihep.physics import helas
from sbihep.physics.lorentz import dot, levi_civita

torch.set_num_threads(1)
CD = torch.complex128


def random_momenta(n, mass, seed, along_axis=False):
    g = torch.Generator().manual_seed(seed)
    p3 = torch.randn(n, 3, generator=g, dtype=torch.float64) * 50.0
    if along_axis:  # exercise the special cases p ∥ ±z
        p3[: n // 2, :2] = 0.0
        p3[: n // 4, 2] = -p3[: n // 4, 2].abs()
    energy = torch.sqrt((p3**2).sum(-1) + mass**2)
    return torch.cat([energy[:, None], p3], -1)


@pytest.mark.parametrize("mass", [0.0, 4.7, 172.5])
@pytest.mark.parametrize("along_axis", [False, True])
def test_dirac_equation(mass, along_axis):
    p = random_momenta(64, mass, seed=1, along_axis=along_axis)
    pslash = helas.slash(p)
    eye = torch.eye(4, dtype=CD)
    for lam in (+1, -1):
        u = helas.incoming_fermion(p, lam, mass)
        v = helas.outgoing_antifermion(p, lam, mass)
        ubar = helas.outgoing_fermion(p, lam, mass)
        vbar = helas.incoming_antifermion(p, lam, mass)
        scale = p[:, 0].max()
        assert ((pslash - mass * eye) @ u[..., None]).abs().max() < 1e-12 * scale
        assert ((pslash + mass * eye) @ v[..., None]).abs().max() < 1e-12 * scale
        assert (ubar[:, None, :] @ (pslash - mass * eye)).abs().max() < 1e-12 * scale
        assert (vbar[:, None, :] @ (pslash + mass * eye)).abs().max() < 1e-12 * scale
        # normalisation ū u = 2m, v̄ v = −2m
        assert torch.allclose((ubar * u).sum(-1).real, torch.full((64,), 2 * mass, dtype=torch.float64), atol=1e-9)
        assert torch.allclose((vbar * v).sum(-1).real, torch.full((64,), -2 * mass, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("mass", [0.0, 172.5])
def test_spin_sums_are_completeness_relations(mass):
    p = random_momenta(32, mass, seed=2, along_axis=True)
    eye = torch.eye(4, dtype=CD)
    sum_u = sum(helas.incoming_fermion(p, l, mass)[:, :, None] * helas.outgoing_fermion(p, l, mass)[:, None, :] for l in (1, -1))
    sum_v = sum(helas.outgoing_antifermion(p, l, mass)[:, :, None] * helas.incoming_antifermion(p, l, mass)[:, None, :] for l in (1, -1))
    assert torch.allclose(sum_u, helas.slash(p) + mass * eye, atol=1e-10)
    assert torch.allclose(sum_v, helas.slash(p) - mass * eye, atol=1e-10)


def test_massless_helicity_is_chirality():
    p = random_momenta(16, 0.0, seed=3)
    u_plus, u_minus = helas.incoming_fermion(p, 1), helas.incoming_fermion(p, -1)
    assert u_plus[:, :2].abs().max() < 1e-12  # right-handed: lower (ψ_R) components only
    assert u_minus[:, 2:].abs().max() < 1e-12
    v_plus = helas.outgoing_antifermion(p, 1)  # right-handed antifermion is a left-chiral v
    assert v_plus[:, 2:].abs().max() < 1e-12


@pytest.mark.parametrize("mass", [0.0, 80.4])
def test_polarisation_sum_and_transversality(mass):
    k = random_momenta(32, mass, seed=4, along_axis=True)
    helicities = (1, -1, 0) if mass > 0 else (1, -1)
    eps = {h: helas.vector_polarisation(k, h, mass) for h in helicities}
    for h, e in eps.items():
        assert dot(k.to(CD), e).abs().max() < 1e-10 * k[:, 0].max()  # k·ε = 0
        assert torch.allclose(dot(e, e.conj()).real, torch.full((32,), -1.0, dtype=torch.float64), atol=1e-10)
        assert torch.allclose(helas.vector_polarisation(k, h, mass, outgoing=True), e.conj())
    g = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64))
    total = sum(e[:, :, None] * e.conj()[:, None, :] for e in eps.values())
    if mass > 0:
        expected = -g + k[:, :, None] * k[:, None, :] / mass**2
        assert torch.allclose(total.real, expected, atol=1e-8) and total.imag.abs().max() < 1e-10
    else:  # transverse sum: -g + (k n + n k)/(k·n) with n = (1, -k̂)
        n = torch.cat([torch.ones(32, 1, dtype=torch.float64), -k[:, 1:] / k[:, :1]], -1)
        kn = dot(k, n)[:, None, None]
        expected = -g + (k[:, :, None] * n[:, None, :] + n[:, :, None] * k[:, None, :]) / kn
        assert torch.allclose(total.real, expected, atol=1e-10)


def test_levi_civita_convention_and_antisymmetry():
    basis = torch.eye(4, dtype=torch.float64)[:, None, :]
    assert levi_civita(basis[0], basis[1], basis[2], basis[3]).item() == 1.0  # ε_{0123} = +1
    g = torch.Generator().manual_seed(5)
    a, b, c, d = torch.randn(4, 10, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(levi_civita(a, b, c, d), -levi_civita(b, a, c, d))
    assert torch.allclose(levi_civita(a, b, c, d), levi_civita(c, d, a, b))
    assert levi_civita(a, b, a, d).abs().max() < 1e-12
    # Tr[γ5 γ^μ γ^ν γ^ρ γ^σ] a_μ b_ν c_ρ d_σ = 4i ε^{μνρσ} a_μ b_ν c_ρ d_σ with ε^{0123} = −1
    sa, sb, sc, sd = (helas.slash(x) for x in (a, b, c, d))
    trace = torch.einsum("ab,nbc,ncd,nde,nea->n", helas.GAMMA5, sa, sb, sc, sd)
    lower = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    eps_upper = -levi_civita(a * lower, b * lower, c * lower, d * lower)  # ε^{μνρσ}a_μ… = −det(lower comps)
    assert torch.allclose(trace, 4j * eps_upper.to(CD), atol=1e-9)


def test_vvs_dual_vanishes_for_equal_helicity_reflection_symmetric():
    """ε(k1,ε1,k2,ε2) is real for real polarisations and vanishes when k1 ∥ k2."""
    k = random_momenta(8, 80.4, seed=6)
    e = helas.vector_polarisation(k, 0, 80.4)
    assert helas.vvs_dual_field_strength_amplitude(e, k, e, 2 * k, 1.0, 1.0).abs().max() < 1e-8


def test_fermion_propagator_is_inverse_of_dirac_operator():
    q = random_momenta(8, 0.0, seed=7) * torch.tensor([1.3, 1, 1, 1], dtype=torch.float64)  # off shell
    m = 172.5
    s = helas.fermion_propagator(q, m)
    dirac = helas.slash(q) - m * torch.eye(4, dtype=CD)
    assert torch.allclose(s @ dirac, 1j * torch.eye(4, dtype=CD).expand(8, 4, 4), atol=1e-10)


def test_sigma_munu_is_commutator():
    sig = helas.sigma_munu()
    g0, g1 = helas.GAMMA[0], helas.GAMMA[1]
    assert torch.allclose(sig[0, 1], 0.5j * (g0 @ g1 - g1 @ g0))
    assert torch.allclose(sig[1, 0], -sig[0, 1])
    assert sig[2, 2].abs().max() == 0


def test_autograd_through_spinor_current():
    p1 = random_momenta(4, 0.0, seed=8).requires_grad_(True)
    p2 = random_momenta(4, 0.0, seed=9)
    j = helas.fermion_current(helas.incoming_antifermion(p2, 1), helas.incoming_fermion(p1, -1), 1.0, 0.0)
    value = (j.abs() ** 2).sum()
    (grad,) = torch.autograd.grad(value, p1)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not math.isnan(value.item())


def test_fermion_current_equals_explicit_dirac_matrices():
    g = torch.Generator().manual_seed(10)
    f_out = torch.randn(20, 4, generator=g, dtype=torch.float64) + 1j * torch.randn(20, 4, generator=g, dtype=torch.float64)
    f_in = torch.randn(20, 4, generator=g, dtype=torch.float64) + 1j * torch.randn(20, 4, generator=g, dtype=torch.float64)
    gl, gr = 0.37, -1.2
    chiral = gl * helas.PROJ_L + gr * helas.PROJ_R
    reference = torch.einsum("na,mab,bc,nc->nm", f_out, helas.GAMMA, chiral, f_in)
    assert torch.allclose(helas.fermion_current(f_out, f_in, gl, gr), reference, atol=1e-13)
    per_event = torch.linspace(0.1, 2.0, 20, dtype=torch.float64)
    reference = torch.einsum("na,mab,nbc,nc->nm", f_out, helas.GAMMA, per_event[:, None, None] * helas.PROJ_L, f_in)
    assert torch.allclose(helas.fermion_current(f_out, f_in, per_event, 0.0), reference, atol=1e-13)


def test_dipole_current_equals_sigma_munu_contraction():
    g = torch.Generator().manual_seed(12)
    f_out = torch.randn(10, 4, generator=g, dtype=torch.float64) + 1j * torch.randn(10, 4, generator=g, dtype=torch.float64)
    f_in = torch.randn(10, 4, generator=g, dtype=torch.float64) + 1j * torch.randn(10, 4, generator=g, dtype=torch.float64)
    k = torch.randn(10, 4, generator=g, dtype=torch.float64)
    k_lower = (k * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)).to(CD)
    reference = torch.einsum("na,nm,mvab,nb->nv", f_out, k_lower, helas.sigma_munu(), f_in)
    assert torch.allclose(helas.dipole_current(f_out, f_in, k), reference, atol=1e-12)


def test_spinors_are_continuous_near_the_backward_axis():
    """Near p⃗ ∥ −z the spinor must follow the exact formula, not snap to the on-axis limit."""
    theta = torch.tensor([math.pi - 1e-7, math.pi - 1e-4], dtype=torch.float64)
    e = 100.0
    p = torch.stack([torch.full_like(theta, e), e * torch.sin(theta), torch.zeros_like(theta), e * torch.cos(theta)], -1)
    for lam in (1, -1):
        u = helas.incoming_fermion(p, lam)
        # Dirac equation holds to machine precision only if the spinor matches p exactly
        assert (helas.slash(p) @ u[..., None]).abs().max() < 1e-12 * e
