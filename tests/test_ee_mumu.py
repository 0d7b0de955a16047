"""e⁺e⁻ → μ⁺μ⁻ with γ, Z and contact terms against the helicity-amplitude formula.

Independent formula (Eichten, Lane, Peskin, PRL 50 (1983) 811, written for massless leptons): for
helicities i, j ∈ {L, R} of the e⁻ and μ⁻,

    A_ij(s) = e² Q_e Q_μ / s + g_Z² g_i^e g_j^μ / (s − m_Z² + i m_Z Γ_Z) + c_ij / Λ²,
    g_L = T³ − Q s_W²,  g_R = −Q s_W²,  c_LL = cll, c_LR = c_RL = cle, c_RR = cee,

    Σ_spins |M|² = s² [ (|A_LL|² + |A_RR|²)(1 + cos θ)² + (|A_LR|² + |A_RL|²)(1 − cos θ)² ],

θ the angle between e⁻ and μ⁻; the spin average is 1/4 and dσ/dcosθ = ⟨|M|²⟩ / (32π s).
"""

import math

import numpy as np
import pytest
import torch

from sbihep.errors import ShapeError, UnknownParameterError, UnphysicalMomentaError
from sbihep.physics import helas
from sbihep.physics.lorentz import dot
from sbihep.physics.processes import EEToMuMu

torch.set_num_threads(1)


def cm_momenta(sqrt_s: torch.Tensor, cos_theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    e = sqrt_s / 2
    sin_theta = torch.sqrt(1 - cos_theta**2)
    zero = torch.zeros_like(e)
    p1 = torch.stack([e, zero, zero, e], -1)
    p2 = torch.stack([e, zero, zero, -e], -1)
    p3 = torch.stack([e, e * sin_theta * torch.cos(phi), e * sin_theta * torch.sin(phi), e * cos_theta], -1)
    p4 = torch.stack([e, -p3[:, 1], -p3[:, 2], -p3[:, 3]], -1)
    return torch.stack([p1, p2, p3, p4], 1)


def elp_matrix_element2(proc: EEToMuMu, sqrt_s, cos_theta, theta: dict, order="quadratic"):
    sm = proc.sm
    s = sqrt_s**2
    g = {"L": -0.5 + sm.sin2_w, "R": sm.sin2_w}  # charge Q = −1, T³ = −1/2
    contact = {"LL": theta["cll"], "LR": theta["cle"], "RL": theta["cle"], "RR": theta["cee"]}
    total = torch.zeros_like(s)
    for i in "LR":
        for j in "LR":
            standard = sm.e**2 / s + sm.g_z**2 * g[i] * g[j] / (s - sm.m_Z**2 + 1j * sm.m_Z * sm.width_Z)
            new = contact[i + j] * 1e-6
            if order == "quadratic":
                a2 = (standard + new).abs() ** 2
            else:
                a2 = standard.abs() ** 2 + 2 * (standard.conj() * new).real
            angular = (1 + cos_theta) ** 2 if i == j else (1 - cos_theta) ** 2
            total = total + s**2 * a2 * angular
    return total / 4


@pytest.fixture(scope="module")
def points():
    gen = torch.Generator().manual_seed(11)
    n = 400
    sqrt_s = torch.cat([torch.tensor([10.0, 91.1876, 90.0, 92.5, 250.0, 3000.0], dtype=torch.float64),
                        10 ** (1 + 2.5 * torch.rand(n - 6, generator=gen, dtype=torch.float64))])
    cos_theta = 2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1
    phi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    return sqrt_s, cos_theta, cm_momenta(sqrt_s, cos_theta, phi)


@pytest.mark.parametrize("order", ["linear", "quadratic"])
@pytest.mark.parametrize("theta", [{"cll": 0.0, "cle": 0.0, "cee": 0.0}, {"cll": 0.7, "cle": -1.3, "cee": 2.1}, {"cll": -4.0, "cle": 0.0, "cee": 0.5}])
def test_matches_eichten_lane_peskin(points, theta, order):
    sqrt_s, cos_theta, momenta = points
    proc = EEToMuMu()
    helas_value = proc.matrix_element2(momenta, theta, order=order)
    analytic = elp_matrix_element2(proc, sqrt_s, cos_theta, theta, order)
    assert ((helas_value / analytic) - 1).abs().max() < 1e-10


def test_decomposition_matches_direct_evaluation(points):
    _, _, momenta = points
    proc = EEToMuMu()
    decomposition = proc.eft_decomposition(momenta)
    theta = torch.tensor([0.3, -2.0, 1.1], dtype=torch.float64)
    direct = proc.matrix_element2(momenta, theta)
    assert torch.allclose(decomposition.evaluate(theta), direct, rtol=1e-12, atol=0)
    # the LL contact only interferes with LL amplitudes: its square ∝ (1 + cos θ)²
    assert decomposition.quadratic[:, 0, 2].abs().max() == 0  # cll × cee: different helicities


def test_contact_interference_grows_with_energy():
    proc = EEToMuMu()
    sqrt_s = torch.tensor([500.0, 1000.0, 2000.0], dtype=torch.float64)
    momenta = cm_momenta(sqrt_s, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    dec = proc.eft_decomposition(momenta)
    ratio = dec.linear[:, 0] / dec.constant  # relative interference of cll ∝ s far above the Z
    assert torch.allclose(ratio[1:] / ratio[:-1], torch.full((2,), 4.0, dtype=torch.float64), rtol=0.02)


def test_wrong_helicities_vanish_and_currents_are_conserved(points):
    _, _, momenta = points
    p1, p2, p3, p4 = momenta.unbind(1)
    for h in (1, -1):
        same = helas.fermion_current(helas.incoming_antifermion(p2, h), helas.incoming_fermion(p1, h), 0.3, 0.7)
        assert same.abs().max() < 1e-12 * p1[:, 0].max()  # massless e⁻ e⁺ of equal helicity do not couple to a vector
        j_e = helas.fermion_current(helas.incoming_antifermion(p2, -h), helas.incoming_fermion(p1, h), 0.3, 0.7)
        j_mu = helas.fermion_current(helas.outgoing_fermion(p3, h), helas.outgoing_antifermion(p4, -h), 0.3, 0.7)
        scale = j_e.abs().amax(-1) * (p1 + p2)[:, 0]
        assert (dot((p1 + p2).to(j_e.dtype), j_e).abs() / scale).max() < 1e-12
        assert (dot((p3 + p4).to(j_mu.dtype), j_mu).abs() / scale).max() < 1e-12


def test_total_cross_section_qed_limit():
    """At √s = 10 GeV, σ ≈ 4πα²/(3s) (Z and contact negligible to < 1%)."""
    proc = EEToMuMu()
    nodes, weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(40))
    sqrt_s = torch.full((40,), 10.0, dtype=torch.float64)
    momenta = cm_momenta(sqrt_s, nodes, torch.zeros(40, dtype=torch.float64))
    dsigma = proc.matrix_element2(momenta) / (32 * math.pi * 100.0)  # GeV⁻² per unit cos θ
    sigma = (dsigma * weights).sum().item()
    qed = 4 * math.pi * proc.sm.alpha**2 / (3 * 100.0)
    assert abs(sigma / qed - 1) < 0.01


def test_bad_input_is_rejected(points):
    _, _, momenta = points
    proc = EEToMuMu()
    with pytest.raises(UnknownParameterError, match="cHW"):
        proc.matrix_element2(momenta, {"cHW": 1.0})
    with pytest.raises(ShapeError, match="4 particles|shape"):
        proc.matrix_element2(momenta[:, :3])
    bad = momenta.clone()
    bad[3, 2, 0] = float("nan")
    with pytest.raises(UnphysicalMomentaError, match="NaN"):
        proc.matrix_element2(bad)
    off_shell = momenta.clone()
    off_shell[0, 2, 0] *= 1.5
    with pytest.raises(UnphysicalMomentaError, match="mass shell"):
        proc.matrix_element2(off_shell)
    with pytest.raises(ValueError, match="order"):
        proc.matrix_element2(momenta, order="cubic")
