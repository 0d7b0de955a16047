"""q q̄′ → W± → e ν with cHl3 and clq3, against closed forms and explicit Dirac traces.

Independent reference (derived by hand from the Lagrangian written in sbihep/physics/processes/
w_lv.py; it does not use the HELAS code):

* Feynman rules (vertex i·C·structure for L ⊃ C·fields, propagator i(−g^{μν} + …)/(ŝ − m_W² + i m_W Γ_W)):
  W–quark and W–lepton vertices i(−g/√2)γ^μ P_L (times (1 + c_Hl3 v²/Λ²) for the lepton vertex),
  contact vertex i(2 c_lq3/Λ²) γ_μ P_L ⊗ γ^μ P_L.  The diagram is iM, so

      iM = (i)(−g/√2)² (i)(−1)(i) J_q·J_ℓ/D + i (2 c_lq3/Λ²) J_q·J_ℓ
      ⇒ M = A(ŝ) J_q·J_ℓ,   A(ŝ) = (g²/2)(1 − c_Hl3 v²/Λ²)/(ŝ − m_W² + i m_W Γ_W) + 2 c_lq3/Λ²,

  where the factor (1 − c_Hl3 v²/Λ²) = (1 + c_Hl3 v²/Λ²) × (1 − 2 c_Hl3 v²/Λ²) at linear order (the
  second factor is g² at fixed G_F, since muon decay has two W–lepton vertices).  Low-energy check of
  the relative sign: at ŝ → 0 the exchange gives −(g²/2m_W²) = −2√2 G_F, so the effective Fermi
  coefficient is ∝ (1 − c_lq3 v²/Λ² + …), the known (C_Hq3 − C_lq3) combination of CKM-unitarity
  analyses.
* Spin sum of two V−A currents (the muon-decay contraction, e.g. Halzen & Martin, "Quarks and
  Leptons", ch. 12): Σ_spins |v̄₂γ^μP_Lu₁ · ū₃γ_μP_Lv₄|² = 16 (p1·p4)(p2·p3); verified here by explicit
  numerical traces of Dirac-representation γ matrices (test_vminusa_spin_sum_by_explicit_traces).
* Colour: Σ|δ_ij|² = 3 over 9 initial colour states; spin average 1/4.  Hence

      \\overline{|M|²} = (1/3)(1/4)·16 (p1·p4)(p2·p3)|A|² = (4/3)(p1·p4)(p2·p3)|A|².

* In the partonic CM frame with θ the angle between particle 3 and parton 1,
  (p1·p4) = (p2·p3) = (ŝ/4)(1 + cosθ), so \\overline{|M|²} = (ŝ²/12)(1 + cosθ)²|A|², and with
  dΦ₂ = dcosθ dφ/(32π²) and ∫(1 + cosθ)² dcosθ = 8/3:

      σ̂ = (1/2ŝ)(ŝ²/12)|A|²(8/3)(2π)/(32π²) = ŝ|A|²/(144π).

  In the SM this is π α² ŝ/(36 s_W⁴ ((ŝ − m_W²)² + m_W²Γ_W²)), the textbook q q̄′ → W → ℓν result; at
  the pole it must equal the Breit–Wigner resonance formula (PDG review "Kinematics", σ_BW with spin
  factor 3/4 and k = m_W/2) times the colour average 1/9: σ̂ = (4π/(3m_W²)) Γ(W→ud̄)Γ(W→eν)/Γ_W²
  with Γ(W→eν) = g² m_W/(48π), Γ(W→ud̄) = 3Γ(W→eν) (|V_ud| = 1 in the channel-free amplitude).
"""

import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.physics.couplings import DEFAULT_SM, LAMBDA_GEV
from sbihep.physics.lorentz import dot
from sbihep.physics.phasespace import boost_partonic_to_lab
from sbihep.physics.processes.w_lv import SUBPROCESS_PARTICLES, WToLNu

torch.set_num_threads(1)

SM = DEFAULT_SM
ENERGIES = [20.0, 60.0, SM.m_W, 85.0, 200.0, 1000.0, 5000.0]
SUBPROCESSES = ["W+", "W-"]


# --------------------------------------------------------------------------------------------------
# The independent reference
# --------------------------------------------------------------------------------------------------
def reduced_amplitudes(s_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A(ŝ) = a0 + c_Hl3·a_hl3 + c_lq3·a_lq3 (see the module docstring), each (N,) complex."""
    denominator = s_hat.to(torch.complex128) - SM.m_W**2 + 1j * SM.m_W * SM.width_W
    a0 = (SM.g**2 / 2.0) / denominator
    a_hl3 = -(SM.vev**2 / LAMBDA_GEV**2) * a0
    a_lq3 = torch.full_like(a0, 2.0 / LAMBDA_GEV**2)
    return a0, a_hl3, a_lq3


def kinematic_factor(momenta: torch.Tensor) -> torch.Tensor:
    """(1/3)(1/4)·16 (p1·p4)(p2·p3): the averaged |J_q·J_ℓ|² with colour, (N,)."""
    p1, p2, p3, p4 = momenta.unbind(1)
    return (16.0 / 12.0) * dot(p1, p4) * dot(p2, p3)


def closed_form_me2(momenta: torch.Tensor, theta: torch.Tensor, order: str) -> torch.Tensor:
    a0, a_hl3, a_lq3 = reduced_amplitudes(dot(momenta[:, 0] + momenta[:, 1], momenta[:, 0] + momenta[:, 1]))
    delta = theta[..., 0] * a_hl3 + theta[..., 1] * a_lq3
    if order == "quadratic":
        a2 = (a0 + delta).abs() ** 2
    else:
        a2 = a0.abs() ** 2 + 2.0 * (a0.conj() * delta).real
    return kinematic_factor(momenta) * a2


def me2_scale(momenta: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """An upper bound of |M|² used as the tolerance scale (guards against accidental cancellations)."""
    s_hat = dot(momenta[:, 0] + momenta[:, 1], momenta[:, 0] + momenta[:, 1])
    a0, a_hl3, a_lq3 = reduced_amplitudes(s_hat)
    bound = a0.abs() + (theta[..., 0] * a_hl3).abs() + (theta[..., 1] * a_lq3).abs()
    return (16.0 / 12.0) * (s_hat / 2.0) ** 2 * bound**2


def partonic_momenta(process, n, sqrt_s_hat, seed, boost=False):
    """CM momenta from the process's phase space, optionally boosted along z to a lab frame."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 2, generator=g, dtype=torch.float64)
    r[:2, 0] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # particle 3 exactly along ∓z
    momenta, _ = process.phase_space(r, sqrt_s_hat)
    if boost:
        x1 = torch.rand(n, generator=g, dtype=torch.float64) * 0.9 + 0.05
        x2 = torch.rand(n, generator=g, dtype=torch.float64) * 0.9 + 0.05
        momenta = boost_partonic_to_lab(momenta, x1, x2)
    return momenta


# --------------------------------------------------------------------------------------------------
# Independent spin sum by explicit Dirac traces (numpy, Dirac representation)
# --------------------------------------------------------------------------------------------------
def _dirac_representation():
    one, zero = np.eye(2), np.zeros((2, 2))
    pauli = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
    gamma = [np.block([[one, zero], [zero, -one]])] + [np.block([[zero, s], [-s, zero]]) for s in pauli]
    gamma5 = np.block([[zero, one], [one, zero]])
    return np.array(gamma, dtype=complex), gamma5.astype(complex)


def _traced_vminusa_square(p1, p2, p3, p4):
    """Σ_spins |v̄₂γ^μP_Lu₁ · ū₃γ_μP_Lv₄|² = Q^{μν} L_{μν} with
    Q^{μν} = Tr[γ^μ P_L p̸1 P_R γ^ν p̸2] and L^{μν} = Tr[γ^μ P_L p̸4 P_R γ^ν p̸3] (massless spin sums)."""
    gamma, gamma5 = _dirac_representation()
    metric = np.diag([1.0, -1.0, -1.0, -1.0])
    p_left, p_right = (np.eye(4) - gamma5) / 2, (np.eye(4) + gamma5) / 2
    gamma_lower = np.einsum("mn,nab->mab", metric, gamma)

    def pslash(p):
        return np.einsum("m,mab->ab", p, gamma_lower)

    def tensor(p_in, p_out):
        return np.einsum("mab,bc,cd,de,nef,fa->mn", gamma, p_left, pslash(p_in), p_right, gamma, pslash(p_out))

    quark, lepton = tensor(p1, p2), tensor(p4, p3)
    return np.einsum("mn,mr,ns,rs->", quark, metric, metric, lepton).real


def test_vminusa_spin_sum_by_explicit_traces():
    process = WToLNu()
    momenta = partonic_momenta(process, 12, 250.0, seed=11, boost=True)
    traced = np.array([_traced_vminusa_square(*(p.numpy() for p in event)) for event in momenta])
    p1, p2, p3, p4 = momenta.unbind(1)
    formula = (16.0 * dot(p1, p4) * dot(p2, p3)).numpy()
    scale = 16.0 * (250.0**2 / 2) ** 2
    assert np.abs(traced - formula).max() < 1e-12 * scale
    # The process keeps one helicity configuration; it must carry the whole spin sum.
    quark_current, lepton_current = process.currents(momenta)
    single_helicity = (dot(quark_current, lepton_current).abs() ** 2).numpy()
    assert np.abs(single_helicity - traced).max() < 1e-12 * scale


# --------------------------------------------------------------------------------------------------
# |M|² and its EFT decomposition against the closed form
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subprocess", SUBPROCESSES)
@pytest.mark.parametrize("sqrt_s_hat", ENERGIES)
@pytest.mark.parametrize("order", ["linear", "quadratic"])
def test_matrix_element_matches_closed_form(subprocess, sqrt_s_hat, order):
    process = WToLNu()
    momenta = partonic_momenta(process, 64, sqrt_s_hat, seed=int(sqrt_s_hat) + len(subprocess), boost=True)
    g = torch.Generator().manual_seed(3)
    theta = (torch.rand(64, 2, generator=g, dtype=torch.float64) - 0.5) * 6.0
    value = process.matrix_element2(momenta, theta, order=order, subprocess=subprocess)
    expected = closed_form_me2(momenta, theta, order)
    assert ((value - expected).abs() / me2_scale(momenta, theta)).max() < 1e-10
    # A single named θ as a mapping, broadcast over events.
    named = process.matrix_element2(momenta, {"cHl3": 1.3, "clq3": -0.4}, order=order, subprocess=subprocess)
    theta_fixed = torch.tensor([1.3, -0.4], dtype=torch.float64).expand(64, 2)
    deviation = (named - closed_form_me2(momenta, theta_fixed, order)).abs() / me2_scale(momenta, theta_fixed)
    assert deviation.max() < 1e-10


@pytest.mark.parametrize("subprocess", SUBPROCESSES)
@pytest.mark.parametrize("sqrt_s_hat", ENERGIES)
def test_eft_decomposition_matches_closed_form(subprocess, sqrt_s_hat):
    process = WToLNu()
    momenta = partonic_momenta(process, 32, sqrt_s_hat, seed=7, boost=True)
    decomposition = process.eft_decomposition(momenta, order="quadratic", subprocess=subprocess)
    s_hat = torch.full((32,), sqrt_s_hat**2, dtype=torch.float64)
    amplitudes = reduced_amplitudes(s_hat)
    k = kinematic_factor(momenta)
    scale = (16.0 / 12.0) * (sqrt_s_hat**2 / 2) ** 2

    def check(actual, x, y, factor):
        expected = factor * k * (x * y.conj()).real
        assert ((actual - expected).abs() / (abs(factor) * scale * x.abs() * y.abs())).max() < 1e-10

    a0 = amplitudes[0]
    check(decomposition.constant, a0, a0, 1.0)
    for i in range(2):
        check(decomposition.linear[:, i], amplitudes[i + 1], a0, 2.0)
        for j in range(2):
            check(decomposition.quadratic[:, i, j], amplitudes[i + 1], amplitudes[j + 1], 1.0)
    assert decomposition.operators == ("cHl3", "clq3")
    # The decomposition reproduces matrix_element2 at any θ.
    theta = torch.tensor([0.8, 2.5], dtype=torch.float64)
    direct = process.matrix_element2(momenta, theta, subprocess=subprocess)
    assert torch.allclose(decomposition.evaluate(theta), direct, rtol=1e-12, atol=0.0)


def test_chl3_component_is_minus_v2_over_lambda2_times_sm():
    process = WToLNu()
    momenta = partonic_momenta(process, 16, 300.0, seed=5)
    components = process.amplitudes(momenta, "W+").components
    assert components.shape == (3, 16, 1, 1)
    assert torch.allclose(components[1], -(SM.vev**2 / LAMBDA_GEV**2) * components[0], rtol=1e-14, atol=0.0)


def test_autograd_in_theta_gives_the_interference():
    """d|M|²/dθ at θ = 0 is the linear coefficient A_i; the second derivative is 2A_ij."""
    process = WToLNu()
    momenta = partonic_momenta(process, 8, 700.0, seed=43)
    decomposition = process.eft_decomposition(momenta)
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    gradient = torch.autograd.grad(process.matrix_element2(momenta, theta).sum(), theta, create_graph=True)[0]
    assert torch.allclose(gradient, decomposition.linear.sum(0), rtol=1e-12)
    hessian = torch.stack([torch.autograd.grad(gradient[i], theta, retain_graph=True)[0] for i in range(2)])
    assert torch.allclose(hessian, 2.0 * decomposition.quadratic.sum(0), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Channels and the beam-swapped orientation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("charge", [1, -1, 0])
def test_channels(charge):
    process = WToLNu(charge=charge)
    channels = process.channels()
    assert len(channels) == (16 if charge == 0 else 8)
    names = {1: "d", 2: "u", 3: "s", 4: "c"}
    for channel in channels:
        quark, antiquark = (channel.pid_b, channel.pid_a) if channel.swap else (channel.pid_a, channel.pid_b)
        assert quark > 0 > antiquark
        assert channel.swap == (channel.pid_a < 0)
        if channel.subprocess == "W+":  # up-type quark and down-type antiquark
            up, down = names[quark], names[-antiquark]
            assert quark in (2, 4)
        else:
            up, down = names[-antiquark], names[quark]
            assert quark in (1, 3)
        assert channel.factor == pytest.approx(SM.ckm(up, down) ** 2, rel=1e-15)
    expected_subprocesses = {1: {"W+"}, -1: {"W-"}, 0: {"W+", "W-"}}[charge]
    assert {c.subprocess for c in channels} == expected_subprocesses
    assert process.default_subprocess() == ("W-" if charge == -1 else "W+")
    # Σ over the four flavour pairs of |V|² is 2 (Cabibbo unitarity) for each order and charge.
    assert sum(c.factor for c in channels) == pytest.approx(2.0 * len(channels) / 4.0, rel=1e-14)


@pytest.mark.parametrize("subprocess", SUBPROCESSES)
def test_swapped_beams(subprocess):
    """Antiquark from beam 1 (along +z): the amplitude gets p1 ↔ p2, so the quark runs along −z.

    Then (p_q·p4)(p_q̄·p3) = (ŝ/4)²(1 − cosθ)² with θ the angle of particle 3 to +z.
    """
    process = WToLNu()
    sqrt_s_hat = 150.0
    cos_theta = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)
    r = torch.stack([(cos_theta + 1) / 2, torch.full_like(cos_theta, 0.3)], -1)
    momenta, _ = process.phase_space(r, sqrt_s_hat)
    swapped = momenta[:, [1, 0, 2, 3]]
    theta = torch.tensor([0.4, -1.1], dtype=torch.float64)
    value = process.matrix_element2(swapped, theta, subprocess=subprocess)
    s_hat = torch.full((21,), sqrt_s_hat**2, dtype=torch.float64)
    a0, a_hl3, a_lq3 = reduced_amplitudes(s_hat)
    amplitude2 = (a0 + theta[0] * a_hl3 + theta[1] * a_lq3).abs() ** 2
    expected = (16.0 / 12.0) * (sqrt_s_hat**2 / 4) ** 2 * (1 - cos_theta) ** 2 * amplitude2
    assert ((value - expected).abs() / expected.max()).max() < 1e-12
    generic = closed_form_me2(swapped, theta.expand(21, 2), "quadratic")
    assert torch.allclose(value, generic, rtol=1e-10, atol=1e-14 * expected.max())


# --------------------------------------------------------------------------------------------------
# Angular shape, energy growth, current conservation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subprocess", SUBPROCESSES)
@pytest.mark.parametrize("sqrt_s_hat", [50.0, SM.m_W, 3000.0])
def test_forward_backward_shape(subprocess, sqrt_s_hat):
    """\\overline{|M|²} ∝ (1 + cosθ*)² for every θ, θ* the angle of particle 3 to parton 1; A_FB = 3/4."""
    process = WToLNu()
    x, w = np.polynomial.legendre.leggauss(6)
    nodes = torch.tensor(np.concatenate([(x - 1) / 2, (x + 1) / 2]), dtype=torch.float64)  # cosθ in each half
    weights = torch.tensor(np.concatenate([w, w]) / 2, dtype=torch.float64)
    cos_theta = torch.cat([nodes, torch.tensor([0.0])])
    g = torch.Generator().manual_seed(19)
    r = torch.stack([(cos_theta + 1) / 2, torch.rand(len(cos_theta), generator=g, dtype=torch.float64)], -1)
    momenta, _ = process.phase_space(r, sqrt_s_hat)
    for theta in ({}, {"cHl3": 2.0}, {"clq3": -3.0}, {"cHl3": -1.0, "clq3": 0.5}):
        value = process.matrix_element2(momenta, theta, subprocess=subprocess)
        shape = value[:-1] / value[-1]
        assert torch.allclose(shape, (1 + nodes) ** 2, rtol=1e-12, atol=1e-15)
        forward = (weights[6:] * value[6:12]).sum()
        backward = (weights[:6] * value[:6]).sum()
        assert ((forward - backward) / (forward + backward)).item() == pytest.approx(0.75, rel=1e-12)


def test_clq3_interference_grows_with_energy():
    """A_lq3/A_0 = 2Re(δA/A0) = (4/Λ²)Re(1/A0) = 8(ŝ − m_W²)/(g²Λ²); A_Hl3/A_0 = −2v²/Λ²."""
    process = WToLNu()
    energies = torch.tensor([30.0, 60.0, 79.0, SM.m_W, 82.0, 200.0, 1000.0, 2000.0, 4000.0], dtype=torch.float64)
    ratios_lq3, ratios_hl3 = [], []
    for sqrt_s_hat in energies.tolist():
        momenta = partonic_momenta(process, 10, sqrt_s_hat, seed=23)[2:]  # skip cosθ = ±1 (|M|² = 0 at −1)
        decomposition = process.eft_decomposition(momenta, order="linear")
        ratio = decomposition.linear / decomposition.constant[:, None]
        assert torch.allclose(ratio[:, 0], ratio[0, 0].expand(8), rtol=1e-12)  # angle independent
        ratios_hl3.append(ratio[0, 0].item())
        ratios_lq3.append(ratio[0, 1].item())
        expected = 8.0 * (sqrt_s_hat**2 - SM.m_W**2) / (SM.g**2 * LAMBDA_GEV**2)
        assert ratio[0, 1].item() == pytest.approx(expected, rel=1e-10, abs=1e-14)
        assert ratio[0, 0].item() == pytest.approx(-2.0 * SM.vev**2 / LAMBDA_GEV**2, rel=1e-12)
    ratios_lq3 = torch.tensor(ratios_lq3)
    assert (ratios_lq3[energies < SM.m_W - 0.5] < 0).all() and (ratios_lq3[energies > SM.m_W + 0.5] > 0).all()
    # ∝ ŝ far above the pole: doubling √ŝ multiplies the relative interference by 4(1 + O(m_W²/ŝ)).
    assert ratios_lq3[-1] / ratios_lq3[-2] == pytest.approx(4.0, rel=2.0 * SM.m_W**2 / 2000.0**2)
    assert ratios_lq3[-2] / ratios_lq3[-3] == pytest.approx(4.0, rel=2.0 * SM.m_W**2 / 1000.0**2)


@pytest.mark.parametrize("sqrt_s_hat", [20.0, SM.m_W, 5000.0])
def test_currents_are_conserved(sqrt_s_hat):
    process = WToLNu()
    momenta = partonic_momenta(process, 64, sqrt_s_hat, seed=29, boost=True)
    quark_current, lepton_current = process.currents(momenta)
    q_in = (momenta[:, 0] + momenta[:, 1]).to(torch.complex128)
    q_out = (momenta[:, 2] + momenta[:, 3]).to(torch.complex128)
    energy = momenta[:, :2, 0].sum(1)
    assert (dot(q_in, quark_current).abs() / energy**2).max() < 1e-13
    assert (dot(q_out, lepton_current).abs() / energy**2).max() < 1e-13
    assert (quark_current.abs().amax(-1) / energy).min() > 1e-3  # not trivially zero


# --------------------------------------------------------------------------------------------------
# Partonic cross section through the process's phase space
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subprocess", SUBPROCESSES)
@pytest.mark.parametrize("sqrt_s_hat", [40.0, SM.m_W, 300.0, 2000.0])
@pytest.mark.parametrize("theta", [(0.0, 0.0), (1.5, -0.7)])
def test_partonic_cross_section(subprocess, sqrt_s_hat, theta):
    """σ̂ = (1/2ŝ)∫dΦ₂ |M|² by Gauss–Legendre in cosθ (exact for the quadratic integrand) = ŝ|A|²/(144π)."""
    process = WToLNu()
    x, w = np.polynomial.legendre.leggauss(4)
    g = torch.Generator().manual_seed(31)
    r = torch.stack([torch.tensor((x + 1) / 2), torch.rand(4, generator=g, dtype=torch.float64)], -1)
    momenta, weight = process.phase_space(r, sqrt_s_hat)
    s_hat = sqrt_s_hat**2
    a0, a_hl3, a_lq3 = (a[0] for a in reduced_amplitudes(torch.tensor([s_hat], dtype=torch.float64)))
    for order in ("linear", "quadratic"):
        me2 = process.matrix_element2(momenta, {"cHl3": theta[0], "clq3": theta[1]}, order=order, subprocess=subprocess)
        sigma = (torch.tensor(w / 2) * weight * me2).sum().item() / (2.0 * s_hat)
        delta = theta[0] * a_hl3 + theta[1] * a_lq3
        if order == "quadratic":
            a2 = abs(a0 + delta) ** 2
        else:
            a2 = abs(a0) ** 2 + 2.0 * (a0.conj() * delta).real
        assert sigma == pytest.approx(s_hat * float(a2) / (144.0 * math.pi), rel=1e-8)
    if sqrt_s_hat == SM.m_W and theta == (0.0, 0.0):
        width_enu = SM.g**2 * SM.m_W / (48.0 * math.pi)
        peak = 4.0 * math.pi / (3.0 * SM.m_W**2) * (3.0 * width_enu) * width_enu / SM.width_W**2
        assert sigma == pytest.approx(peak, rel=1e-8)


# --------------------------------------------------------------------------------------------------
# Phase space, threshold and input checks
# --------------------------------------------------------------------------------------------------
def test_phase_space_and_threshold():
    process = WToLNu(m_ll_min=25.0)
    assert process.threshold() == 25.0 and WToLNu().threshold() == 10.0
    assert process.n_random == 2 and process.collider == "pp"
    g = torch.Generator().manual_seed(37)
    r = torch.rand(50, 2, generator=g, dtype=torch.float64)
    sqrt_s_hat = torch.linspace(30.0, 3000.0, 50, dtype=torch.float64)
    momenta, weight = process.phase_space(r, sqrt_s_hat)
    assert momenta.shape == (50, 4, 4)
    process.check_momenta(momenta)
    assert torch.allclose(weight, torch.full((50,), 1.0 / (8.0 * math.pi), dtype=torch.float64), rtol=1e-14)
    assert torch.allclose(momenta[:, :2].sum(1)[:, 0], sqrt_s_hat, rtol=1e-14)
    with pytest.raises(ShapeError):
        process.phase_space(torch.rand(5, 3, dtype=torch.float64), 100.0)
    assert SUBPROCESS_PARTICLES["W+"] == process.particles == ("u", "d~", "ve", "e+")
    assert SUBPROCESS_PARTICLES["W-"] == ("d", "u~", "e-", "ve~")


@pytest.mark.parametrize("charge", [2, -2, True, 0.5, "+", None])
def test_bad_charge(charge):
    with pytest.raises(InvalidInputError, match="charge"):
        WToLNu(charge=charge)


@pytest.mark.parametrize("m_ll_min", [0.0, -5.0, float("nan"), float("inf"), "10", None])
def test_bad_m_ll_min(m_ll_min):
    with pytest.raises(InvalidInputError, match="m_ll_min"):
        WToLNu(m_ll_min=m_ll_min)


def test_bad_subprocess_and_theta():
    process = WToLNu(charge=1)
    momenta = partonic_momenta(process, 4, 100.0, seed=41)
    with pytest.raises(UnknownParameterError, match="subprocess"):
        process.matrix_element2(momenta, subprocess="W-")  # W⁻ not selected by charge=+1
    with pytest.raises(UnknownParameterError, match="subprocess"):
        process.amplitudes(momenta, "Z")
    with pytest.raises(UnknownParameterError, match="cHq3"):
        process.matrix_element2(momenta, {"cHq3": 1.0})
    with pytest.raises(ShapeError):
        process.matrix_element2(momenta[:, :3])
    assert WToLNu(charge=-1).matrix_element2(momenta, subprocess="W-").shape == (4,)
