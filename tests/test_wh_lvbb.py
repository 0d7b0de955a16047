"""q q̄′ → W h (on shell) and q q̄′ → W(→ e ν) h(→ b b̄) with cHW, cHWtil, cHq3.

Independent references used here (none calls the HELAS spinors or vertices):

1. Closed forms, derived by hand from the Dirac traces (g_w = g/√2, D(p²) = p² − m_W² + i m_W Γ_W,
   κ = g_w/D(ŝ), V−A traces with P_L = (1 − γ⁵)/2, γ⁵ = iγ⁰γ¹γ²γ³):

   * Σ_spins J^μ J^ν* = Q^{μν} = Tr[p̸2 γ^μ P_L p̸1 γ^ν] for J = v̄(p2) γ^μ P_L u(p1); q_μ Q^{μν} = 0,
     Q^μ_μ = −2ŝ, k_μ k_ν Q^{μν} = 4(p1·k)(p2·k) − k² ŝ.
   * On-shell W (Σ ε*_μ ε_ν = −g_μν + k_μ k_ν/m_W²), with M_SM = κ g m_W J·ε*,
     M_HW = κ G [−(q·k) J·ε* + (k·J)(q·ε*)], G = −4v/Λ², M_Hq3 = r M_SM, r = v²/Λ² + 2v D(ŝ)/(g m_W Λ²):

         Σ|M_SM|²        = |κ|² (g m_W)² [ŝ + 4(p1·k)(p2·k)/m_W²]
         Σ M_SM M_HW*    = |κ|² g m_W (8v/Λ²) ŝ (q·k)
         Σ|M_HW|²        = |κ|² G² ŝ [2(q·k)² + m_W² ŝ − 4(p1·k)(p2·k)]
         Σ M_SM M_HWtil* = 0  (no absorptive phase between them; a 2 → 2 rate has no T-odd invariant)

     times N_c = 3 (colour sum) and the average 1/(4·9).
   * With W → e ν, the lepton current replaces ε*, and the massless V−A traces contract through g:
     Tr[p̸2 γ^μ P_L p̸1 γ^ν] Tr[p̸_f γ_μ P_L p̸_f̄ γ_ν] = 16 (p1·p_f̄)(p2·p_f) (the identity behind the
     muon-decay rate), f the outgoing fermion (ν for W⁺, e⁻ for W⁻), f̄ the outgoing antifermion.
     The h → b b̄ line gives (m̄_b/v)² Tr[(p̸5 + m_b)(p̸6 − m_b)]/|p_h² − m_h² + i m_h Γ_h|² × N_c.

2. σ̂(q q̄′ → W h) at LO in closed form: M. Spira, Fortsch. Phys. 46 (1998) 203 [hep-ph/9705337] and
   A. Djouadi, Phys. Rept. 457 (2008) 1 [hep-ph/0503172] (after S.L. Glashow, D.V. Nanopoulos,
   A. Yildiz, PRD 18 (1978) 1724):
       σ̂ = G_F² m_V⁴/(288 π ŝ) (v_q² + a_q²) λ^{1/2} (λ + 12 m_V²/ŝ)/(1 − m_V²/ŝ)²,
   v_q = a_q = √2 V_qq′ for V = W, λ = (1 − m_W²/ŝ − m_h²/ŝ)² − 4 m_W² m_h²/ŝ²; integrating the first
   closed form above over the angle gives the same (here written with Γ_W = 0).

3. Explicit numerical Dirac traces: numpy gamma matrices in the Dirac representation, spin sums
   through projectors (p̸ ± m), the propagators with their full unitary-gauge numerators, and the h W W
   vertex tensors written out from the Lagrangian (module docstring of wh_lvbb), for every A₀, A_i, A_ij.

4. Partial widths (LO): Γ(W → e ν) = G_F m_W³/(6√2 π), Γ(h → b b̄) = 3 G_F m_h m̄_b² β³/(4√2 π), β² = 1 − 4m_b²/m_h² (m̄_b the MS-bar
   Yukawa mass, m_b the kinematic mass)
   (e.g. Djouadi, Phys. Rept. 457 (2008) 1); narrow-width factorisation σ̂ = σ̂(W h) BR BR.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError, ThresholdError, UnknownParameterError
from sbihep.physics import helas
from sbihep.physics.couplings import DEFAULT_SM, LAMBDA_GEV
from sbihep.physics.lorentz import dot, levi_civita
from sbihep.physics.processes.wh_lvbb import (
    LINESHAPES,
    QQbarToWH,
    WHToLNuBB,
    epsilon_contraction,
    left_current,
)

torch.set_num_threads(1)
SM = DEFAULT_SM
N_C = 3
AVERAGE = 1.0 / 36.0
G_FIELD_STRENGTH = -4.0 * SM.vev / LAMBDA_GEV**2


def mdot(a, b):
    """Minkowski product of (..., 4) real tensors (test-local)."""
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def swap_partons(momenta):
    """What the event generator does for a ``swap=True`` channel: quark from −z."""
    return momenta[:, [1, 0, *range(2, momenta.shape[1])]]


def random_points(proc, n, sqrt_s, seed):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(n, proc.n_random, generator=gen, dtype=torch.float64)
    momenta, _ = proc.phase_space(r, sqrt_s)
    return momenta


# ----------------------------------------------------------------------------------------------
# Independent Dirac algebra (numpy, Dirac representation)
# ----------------------------------------------------------------------------------------------
def _dirac_gammas():
    one, zero = np.eye(2), np.zeros((2, 2))
    pauli = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
    gamma0 = np.block([[one, zero], [zero, -one]]).astype(complex)
    gammas = np.stack([gamma0] + [np.block([[zero, s], [-s, zero]]).astype(complex) for s in pauli])
    gamma5 = 1j * gammas[0] @ gammas[1] @ gammas[2] @ gammas[3]
    return gammas, gamma5


GAMMA, GAMMA5 = _dirac_gammas()
PROJ_LEFT = 0.5 * (np.eye(4) - GAMMA5)
METRIC = np.diag([1.0, -1.0, -1.0, -1.0])


def _levi_civita_lower():
    eps = np.zeros((4, 4, 4, 4))
    for perm in itertools.permutations(range(4)):
        inversions = sum(perm[i] > perm[j] for i in range(4) for j in range(i + 1, 4))
        eps[perm] = (-1) ** inversions  # ε_{0123} = +1
    return eps


EPS_LOWER = _levi_civita_lower()


def pslash(p):
    """γ^μ p_μ for p (N, 4) contravariant → (N, 4, 4)."""
    return np.einsum("mab,nm->nab", GAMMA, p @ METRIC)


def va_tensor(p_row, p_col):
    """Σ_spins (ψ̄_row γ^μ P_L ψ_col)(ψ̄_row γ^ν P_L ψ_col)* = Tr[p̸_row γ^μ P_L p̸_col γ^ν], (N, 4, 4)."""
    return np.einsum("nab,mbc,cd,nde,vea->nmv", pslash(p_row), GAMMA, PROJ_LEFT, pslash(p_col), GAMMA)


def w_propagator(p, width):
    """i(−g^{μν} + p^μ p^ν/m_W²)/(p² − m_W² + i m_W Γ), upper indices, (N, 4, 4)."""
    p2 = np.einsum("nm,mv,nv->n", p, METRIC, p)
    numerator = -METRIC[None] + p[:, :, None] * p[:, None, :] / SM.m_W**2
    return 1j * numerator / (p2 - SM.m_W**2 + 1j * SM.m_W * width)[:, None, None]


def hww_vertices(q, k, g_field_strength=G_FIELD_STRENGTH, k_minus_sign=-1.0):
    """Vertex tensors V_{βγ} (lower indices, β the s-channel line, γ the outgoing W) of SM, cHW, cHWtil.

    From L ⊃ g m_W h W⁺W⁻ + (2v/Λ²) h W⁺_μν W^{−μν} + (v/Λ²) ε_μνρσ h W^{+μν} W^{−ρσ}: k₊ = q (the
    incoming s-channel momentum) and k₋ = −k (the outgoing W counted as incoming).  ``k_minus_sign``
    = +1 gives the wrong choice k₋ = +k, used to show that the tests would notice it.
    """
    k_plus, k_minus = q, k_minus_sign * k
    kp_low, km_low = k_plus @ METRIC, k_minus @ METRIC
    kk = np.einsum("nm,nm->n", k_plus, km_low)
    v_sm = 1j * SM.g * SM.m_W * np.broadcast_to(METRIC, (len(q), 4, 4))
    v_hw = 1j * g_field_strength * (kk[:, None, None] * METRIC - km_low[:, :, None] * kp_low[:, None, :])
    v_hwtil = 1j * g_field_strength * np.einsum("mbrg,nm,nr->nbg", EPS_LOWER, k_plus, k_minus)
    return v_sm, v_hw, v_hwtil


def production_kernels(q, k, width, k_minus_sign=-1.0):
    """T^c_{αγ} such that iM^c = J^α T^c_{αγ} Y^γ, Y the upper-index vector at the outgoing W vertex.

    Components SM, cHW, cHWtil, cHq3; quark vertex −i g_w γ^α P_L (coupling included in T).
    """
    g_w = -SM.g / math.sqrt(2.0)
    quark_side = (1j * g_w) * np.einsum("ab,nbc->nac", METRIC, w_propagator(q, width))  # lower α, upper β
    kernels = [quark_side @ v for v in hww_vertices(q, k, k_minus_sign=k_minus_sign)]
    contact = (1j * g_w * 2.0 * SM.vev / LAMBDA_GEV**2) * np.broadcast_to(METRIC, kernels[0].shape)
    kernels.append(SM.vev**2 / LAMBDA_GEV**2 * kernels[0] + contact)
    return kernels


def gram_from_traces(kernels, quark_tensor, w_side_tensor):
    """Σ_spins M^c M^d* = T^c_{αγ} T^d*_{βδ} Q^{αβ} W^{γδ} → (K, K, N) complex."""
    k = len(kernels)
    n = quark_tensor.shape[0]
    out = np.zeros((k, k, n), dtype=complex)
    for c in range(k):
        for d in range(k):
            out[c, d] = np.einsum("nag,nbd,nab,ngd->n", kernels[c], kernels[d].conj(), quark_tensor, w_side_tensor)
    return out


def full_process_gram(momenta, subprocess, k_minus_sign=-1.0):
    """(K, K, N) Re Σ M^c M^d* (averaged) of q q̄′ → e ν b b̄ in "breit-wigner" mode, from traces."""
    p = momenta.numpy()
    q, k = p[:, 0] + p[:, 1], p[:, 2] + p[:, 3]
    g_w = -SM.g / math.sqrt(2.0)
    lepton_vertex = (1j * g_w) * np.einsum("nab,bc->nac", w_propagator(k, SM.width_W), METRIC)  # upper γ, lower δ
    kernels = [t @ lepton_vertex for t in production_kernels(q, k, SM.width_W, k_minus_sign)]
    fermion, antifermion = (p[:, 3], p[:, 2]) if subprocess == "W+" else (p[:, 2], p[:, 3])
    quark_tensor = va_tensor(p[:, 1], p[:, 0])
    lepton_tensor = va_tensor(fermion, antifermion)
    eye = np.eye(4)
    hbb_trace = np.einsum("naa->n", (pslash(p[:, 4]) + SM.m_b * eye) @ (pslash(p[:, 5]) - SM.m_b * eye))
    p_h = p[:, 4] + p[:, 5]
    m_h2 = np.einsum("nm,mv,nv->n", p_h, METRIC, p_h)
    higgs = N_C * (SM.m_b_yukawa / SM.vev) ** 2 * hbb_trace / np.abs(m_h2 - SM.m_H**2 + 1j * SM.m_H * SM.width_H) ** 2
    return (gram_from_traces(kernels, quark_tensor, lepton_tensor) * higgs).real * N_C * AVERAGE


def onshell_gram(momenta, width):
    """(K, K, N) Re Σ M^c M^d* (averaged) of q q̄′ → W h with the W polarisation sum, from traces."""
    p = momenta.numpy()
    q, k = p[:, 0] + p[:, 1], p[:, 2]
    polarisation_sum = -METRIC[None] + k[:, :, None] * k[:, None, :] / SM.m_W**2
    kernels = production_kernels(q, k, width)
    return gram_from_traces(kernels, va_tensor(p[:, 1], p[:, 0]), polarisation_sum).real * N_C * AVERAGE


def higgs_rounding(momenta):
    """Relative error of |p_h² − m_h² + i m_h Γ_h|² from rounding p_h² = E² − p⃗² (≈ ε E_h²), (N,).

    Near the very narrow Higgs peak of a boosted Higgs this exceeds 1e-10 (e.g. 7e-10 at √ŝ = 2.5 TeV):
    two exact evaluations that round p_h² differently may disagree by this much.
    """
    p_h = momenta[:, 4] + momenta[:, 5]
    distance = torch.sqrt((mdot(p_h, p_h) - SM.m_H**2) ** 2 + (SM.m_H * SM.width_H) ** 2)
    return torch.finfo(torch.float64).eps * p_h[:, 0] ** 2 / distance


def assert_gram_matches(decomposition, gram, rtol=1e-10):
    """Compare A₀, A_i = 2 G_0i, A_ij = G_ij relative to the Cauchy–Schwarz scale √(G_ii G_jj).

    ``rtol`` is a number or a per-event tensor (N,).
    """
    gram = torch.as_tensor(gram)
    diag = torch.stack([gram[i, i] for i in range(gram.shape[0])])
    computed = torch.zeros_like(gram)
    computed[0, 0] = decomposition.constant
    computed[0, 1:] = decomposition.linear.T / 2
    computed[1:, 0] = decomposition.linear.T / 2
    computed[1:, 1:] = decomposition.quadratic.permute(1, 2, 0)
    scale = torch.sqrt(diag[:, None] * diag[None, :])
    deviation = (computed - gram).abs() / scale
    assert (deviation < rtol).all(), f"max deviation {deviation.max().item():.3g} relative to sqrt(G_ii G_jj)"


# ----------------------------------------------------------------------------------------------
# Building blocks of the fast path against HELAS
# ----------------------------------------------------------------------------------------------
def test_fast_currents_equal_helas_currents_up_to_a_phase():
    gen = torch.Generator().manual_seed(1)
    p3 = torch.randn(40, 3, generator=gen, dtype=torch.float64) * 100.0
    p3[:10, :2] = 0.0  # along ±z: both branches of the Weyl spinor and HELAS's special cases
    p3[:5, 2] = -p3[:5, 2].abs()
    p = torch.cat([p3.norm(dim=-1, keepdim=True), p3], -1)
    a, b = p, p.roll(7, 0)
    fast = left_current(a, b)
    # incoming antifermion a, fermion b, and outgoing fermion a, antifermion b: both one current
    helas_in = helas.fermion_current(helas.incoming_antifermion(a, 1), helas.incoming_fermion(b, -1), 1.0, 0.0)
    helas_out = helas.fermion_current(helas.outgoing_fermion(a, -1), helas.outgoing_antifermion(b, 1), 1.0, 0.0)
    outer = fast[:, :, None] * fast[:, None, :].conj()
    for reference in (helas_in, helas_out):
        assert torch.allclose(outer, reference[:, :, None] * reference[:, None, :].conj(), rtol=0, atol=1e-9 * 4e4)
    k = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    b, d = torch.randn(2, 40, 4, generator=gen, dtype=torch.complex128)
    expected = levi_civita(p.to(b.dtype), b, k.to(b.dtype), d)
    tolerance = 1e-12 * expected.abs().max().item()
    assert torch.allclose(epsilon_contraction(p, b, k, d), expected, rtol=1e-12, atol=tolerance)


def test_invariant_vertices_equal_helas_vertex_functions():
    """hww_diagrams (written in invariants) against the literal HELAS chain for the on-shell process."""
    proc = QQbarToWH()
    momenta = random_points(proc, 32, 700.0, seed=2)
    q, k = momenta[:, 0] + momenta[:, 1], momenta[:, 2]
    current = proc.quark_current(momenta)
    g_w = -SM.g / math.sqrt(2.0)
    s_channel = helas.vector_propagator(1j * g_w * current, q, SM.m_W, SM.width_W)
    for lam in (-1, 0, 1):
        eps = helas.vector_polarisation(k, lam, SM.m_W, outgoing=True)
        sm_diagram = helas.vvs_amplitude(s_channel, eps, 1.0, SM.g * SM.m_W)
        contact = 1j * (g_w * 2 * SM.vev / LAMBDA_GEV**2) * dot(current, eps)  # ffv rule i C J·ε*
        literal = torch.stack(
            [
                sm_diagram,
                helas.vvs_field_strength_amplitude(s_channel, q, eps, -k, 1.0, G_FIELD_STRENGTH),
                helas.vvs_dual_field_strength_amplitude(s_channel, q, eps, -k, 1.0, G_FIELD_STRENGTH),
                SM.vev**2 / LAMBDA_GEV**2 * sm_diagram + contact,
            ]
        )
        fast = proc.hww_diagrams(current, q, eps[:, None, :], k)[:, :, 0]
        assert torch.allclose(fast, literal, rtol=1e-10, atol=1e-12 * literal.abs().max().item())


# ----------------------------------------------------------------------------------------------
# On-shell q q̄′ → W h
# ----------------------------------------------------------------------------------------------
def onshell_invariants(momenta):
    p1, p2, k = momenta[:, 0], momenta[:, 1], momenta[:, 2]
    q = p1 + p2
    return mdot(q, q), mdot(p1, k), mdot(p2, k), mdot(q, k)


@pytest.mark.parametrize("charge", [1, -1])
def test_onshell_sm_and_eft_closed_forms(charge):
    proc = QQbarToWH(charge=charge)
    momenta = torch.cat([random_points(proc, 64, rs, seed=3) for rs in (220.0, 600.0, 3000.0)])
    momenta = torch.cat([momenta, swap_partons(momenta[:16])])
    dec = proc.eft_decomposition(momenta, subprocess="W+" if charge == 1 else "W-")
    s, p1k, p2k, qk = onshell_invariants(momenta)
    kappa2 = (SM.g**2 / 2) / ((s - SM.m_W**2) ** 2 + (SM.m_W * SM.width_W) ** 2)
    norm = N_C * AVERAGE * kappa2
    a0 = norm * (SM.g * SM.m_W) ** 2 * (s + 4 * p1k * p2k / SM.m_W**2)
    a_hw = 2 * norm * SM.g * SM.m_W * (8 * SM.vev / LAMBDA_GEV**2) * s * qk
    a_hw_hw = norm * G_FIELD_STRENGTH**2 * s * (2 * qk**2 + SM.m_W**2 * s - 4 * p1k * p2k)
    denominator = s - SM.m_W**2 + 1j * SM.m_W * SM.width_W
    ratio = SM.vev**2 / LAMBDA_GEV**2 + 2 * SM.vev * denominator / (SM.g * SM.m_W * LAMBDA_GEV**2)
    checks = {
        "A0": (dec.constant, a0),
        "A_cHW": (dec.linear[:, 0], a_hw),
        "A_cHW,cHW": (dec.quadratic[:, 0, 0], a_hw_hw),
        "A_cHq3": (dec.linear[:, 2], 2 * a0 * ratio.real),
        "A_cHq3,cHq3": (dec.quadratic[:, 2, 2], a0 * ratio.abs() ** 2),
    }
    for name, (computed, expected) in checks.items():
        deviation = ((computed - expected).abs() / expected.abs()).max().item()
        assert deviation < 1e-10, f"{name}: {deviation:.3g}"
    # CP-odd: no interference with the SM in a 2 → 2 rate
    assert (dec.linear[:, 1].abs() < 1e-10 * torch.sqrt(dec.constant * dec.quadratic[:, 1, 1])).all()


def test_onshell_components_against_dirac_traces():
    proc = QQbarToWH()
    momenta = random_points(proc, 24, 900.0, seed=4)
    momenta = torch.cat([momenta, swap_partons(random_points(proc, 8, 400.0, seed=5))])
    assert_gram_matches(proc.eft_decomposition(momenta), onshell_gram(momenta, SM.width_W))


@pytest.mark.parametrize("sqrt_s", [230.0, 500.0, 1000.0, 3000.0])
def test_onshell_partonic_cross_section(sqrt_s):
    """σ̂ from Gauss–Legendre in cosθ (exact: Σ|M|² is quadratic in cosθ) vs Spira/Djouadi, Γ_W = 0."""
    sm = SM.with_changes(width_W=0.0)
    proc = QQbarToWH(sm)
    nodes, weights = np.polynomial.legendre.leggauss(4)
    r = torch.tensor([[(x + 1) / 2, 0.3] for x in nodes], dtype=torch.float64)
    momenta, phase_space_weight = proc.phase_space(r, sqrt_s)
    me2 = proc.matrix_element2(momenta)
    s = sqrt_s**2
    sigma = (me2 * phase_space_weight * torch.as_tensor(weights / 2)).sum().item() / (2 * s)
    lam = (1 - sm.m_W**2 / s - sm.m_H**2 / s) ** 2 - 4 * sm.m_W**2 * sm.m_H**2 / s**2
    v2_plus_a2 = 4.0  # v_q = a_q = √2 (|V| = 1 in the partonic amplitude; |V|² is the channel factor)
    literature = (
        sm.G_F**2 * sm.m_W**4 / (288 * math.pi * s) * v2_plus_a2 * math.sqrt(lam) * (lam + 12 * sm.m_W**2 / s)
        / (1 - sm.m_W**2 / s) ** 2
    )
    assert abs(sigma / literature - 1) < 1e-8


# ----------------------------------------------------------------------------------------------
# q q̄′ → e ν b b̄
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lvbb_points():
    proc = WHToLNuBB()
    momenta = torch.cat([random_points(proc, 40, rs, seed=6) for rs in (250.0, 800.0, 2500.0)])
    return torch.cat([momenta, swap_partons(momenta[::4])])


@pytest.mark.parametrize("charge", [1, -1])
def test_full_sm_closed_form(charge, lvbb_points):
    proc = WHToLNuBB(charge=charge)
    subprocess = "W+" if charge == 1 else "W-"
    p = lvbb_points
    p1, p2, p3, p4, p5, p6 = p.unbind(1)
    q, k, p_h = p1 + p2, p3 + p4, p5 + p6
    fermion, antifermion = (p4, p3) if charge == 1 else (p3, p4)
    traces = 16 * mdot(p1, antifermion) * mdot(p2, fermion)
    def breit_wigner2(p, mass, width):
        return (mdot(p, p) - mass**2) ** 2 + (mass * width) ** 2

    w_props = 1 / (breit_wigner2(q, SM.m_W, SM.width_W) * breit_wigner2(k, SM.m_W, SM.width_W))
    higgs = (SM.m_b_yukawa / SM.vev) ** 2 * 4 * (mdot(p5, p6) - SM.m_b**2) / breit_wigner2(p_h, SM.m_H, SM.width_H)
    expected = AVERAGE * N_C * N_C * (SM.g**2 / 2) ** 2 * (SM.g * SM.m_W) ** 2 * traces * w_props * higgs
    computed = proc.matrix_element2(p, subprocess=subprocess)
    assert ((computed - expected).abs() / expected < 1e-10 + 4 * higgs_rounding(p)).all()


@pytest.mark.parametrize("subprocess", ["W+", "W-"])
def test_full_components_against_dirac_traces(subprocess, lvbb_points):
    """A₀, A_i, A_ij of all three operators, including the contact term and the k₋ = −k rule."""
    proc = WHToLNuBB()
    points = lvbb_points[::3]
    dec = proc.eft_decomposition(points, subprocess=subprocess)
    assert_gram_matches(dec, full_process_gram(points, subprocess), rtol=1e-10 + 4 * higgs_rounding(points))
    # The wrong momentum direction at the h W W vertex (k₋ = +k) flips the field-strength
    # interference: the trace reference is sensitive to it.
    wrong = torch.as_tensor(full_process_gram(points, subprocess, k_minus_sign=+1.0))
    assert not torch.allclose(dec.linear[:, 0], 2 * wrong[0, 1], rtol=1e-3)


@pytest.mark.parametrize("subprocess", ["W+", "W-"])
def test_narrow_mode_drops_only_the_resonance_propagators(subprocess):
    narrow, breit_wigner = WHToLNuBB(lineshape="narrow"), WHToLNuBB(lineshape="breit-wigner")
    momenta = random_points(narrow, 64, 900.0, seed=7)
    k, p_h = momenta[:, 2] + momenta[:, 3], momenta[:, 4] + momenta[:, 5]
    assert torch.allclose(mdot(k, k), torch.full((64,), SM.m_W**2, dtype=torch.float64), rtol=1e-10)
    assert torch.allclose(mdot(p_h, p_h), torch.full((64,), SM.m_H**2, dtype=torch.float64), rtol=1e-10)
    propagators2 = (SM.m_W * SM.width_W) ** 2 * (SM.m_H * SM.width_H) ** 2  # |D_W|² |D_h|² on shell
    a = narrow.eft_decomposition(momenta, subprocess=subprocess)
    b = breit_wigner.eft_decomposition(momenta, subprocess=subprocess)
    for x, y in ((a.constant, b.constant), (a.linear, b.linear), (a.quadratic, b.quadratic)):
        assert torch.allclose(x, y * propagators2, rtol=1e-9, atol=1e-12 * a.constant.max().item())


def rqmc_mean(function, dim, n, replicas):
    """Randomised quasi-Monte Carlo (scrambled Sobol, fixed seeds): mean and its standard error."""
    engines = [torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed) for seed in range(replicas)]
    values = torch.stack([function(engine.draw(n, dtype=torch.float64)) for engine in engines])
    return values.mean(0), values.std(0) / math.sqrt(replicas)


def lepton_azimuth(momenta):
    """φ of the charged lepton about the W direction, from the (beam, W) plane.

    Axes: z′ = k̂ (W direction in the partonic frame), y′ = ẑ × k̂ (normal to the plane of the beam
    and the W), x′ = y′ × z′.  φ is unchanged by the boost along k̂ into the W rest frame.
    """
    k = momenta[:, 2, 1:] + momenta[:, 3, 1:]
    z = k / k.norm(dim=-1, keepdim=True)
    beam = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(z)
    y = torch.linalg.cross(beam, z)
    y = y / y.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(y, z)
    lepton = momenta[:, 2, 1:]
    return torch.atan2((lepton * y).sum(-1), (lepton * x).sum(-1))


def test_cp_odd_interference_integrates_to_zero_but_not_its_azimuthal_asymmetry():
    """At √ŝ = 1 TeV: ∫A_cHWtil dΦ = 0 (CP-odd), while its sign(sin φ)-weighted integral is not.

    The SM is dominated by the longitudinal W at high energy and the CP-odd vertex produces
    transverse W's with a relative phase ±i, so their interference goes as sin φ (the 0/±1
    interference; the ±1/∓1 one gives the smaller sin 2φ term).  The sign is opposite for W⁻ (CP).
    """
    proc = WHToLNuBB()
    for subprocess, sign in (("W+", 1.0), ("W-", -1.0)):

        def moments(r):
            momenta, weight = proc.phase_space(r, 1000.0)
            dec = proc.eft_decomposition(momenta, order="linear", subprocess=subprocess)
            odd = torch.sign(torch.sin(lepton_azimuth(momenta)))
            a_tilde, a0 = dec.linear[:, 1] * weight, dec.constant * weight
            moments = [a_tilde, a_tilde.abs(), a_tilde * odd, a0 * odd, a0]
            return torch.stack([m.mean() for m in moments])

        # 32 replicas: with only 8, the replica spread (a t-distribution with 7 dof) makes a 3σ cut
        # fail a few % of the time even when the mean is zero
        mean, error = rqmc_mean(moments, 8, 2**13, 32)
        integral, absolute, asymmetry, sm_asymmetry, sm_total = mean.tolist()
        assert abs(integral) < 3 * error[0] + 1e-300 and abs(integral) < 0.01 * absolute
        assert sign * asymmetry > 5 * error[2] and sign * asymmetry > 0.5 * absolute
        assert abs(sm_asymmetry) < max(3 * error[3].item(), 1e-3 * sm_total)  # the SM is CP-even


def test_narrow_width_factorisation_and_breit_wigner_lineshape():
    sqrt_s = 500.0
    s = sqrt_s**2
    sigma = {}
    for lineshape in LINESHAPES:
        proc = WHToLNuBB(lineshape=lineshape)

        def integrand(r):
            momenta, weight = proc.phase_space(r, sqrt_s)
            return (proc.matrix_element2(momenta, subprocess="W+") * weight).mean() / (2 * s)

        sigma[lineshape] = rqmc_mean(integrand, 8, 2**13, 8)
    lam = (1 - SM.m_W**2 / s - SM.m_H**2 / s) ** 2 - 4 * SM.m_W**2 * SM.m_H**2 / s**2
    sigma_wh = (  # Spira/Djouadi with the width kept as in the process's s-channel propagator
        SM.G_F**2 * SM.m_W**4 / (72 * math.pi * s) * math.sqrt(lam) * (lam + 12 * SM.m_W**2 / s)
        * s**2 / ((s - SM.m_W**2) ** 2 + (SM.m_W * SM.width_W) ** 2)
    )
    width_w_enu = SM.G_F * SM.m_W**3 / (6 * math.sqrt(2) * math.pi)
    beta = math.sqrt(1 - 4 * SM.m_b**2 / SM.m_H**2)
    width_h_bb = 3 * SM.G_F * SM.m_H * SM.m_b_yukawa**2 * beta**3 / (4 * math.sqrt(2) * math.pi)
    expected = sigma_wh * (width_w_enu / SM.width_W) * (width_h_bb / SM.width_H)
    narrow, narrow_error = sigma["narrow"]
    assert abs(narrow.item() / expected - 1) < 2e-3 and narrow_error.item() < 1e-3 * expected
    breit_wigner = sigma["breit-wigner"][0].item()
    assert abs(breit_wigner / narrow.item() - 1) < 2 * SM.width_W / SM.m_W


# ----------------------------------------------------------------------------------------------
# Kinematics, channels, errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lineshape", LINESHAPES)
def test_phase_space_and_threshold(lineshape):
    proc = WHToLNuBB(lineshape=lineshape)
    assert proc.n_random == 8
    assert proc.threshold() == pytest.approx(SM.m_W + SM.m_H if lineshape == "narrow" else 2 * SM.m_b)
    momenta = random_points(proc, 100, 400.0, seed=8)
    proc.check_momenta(momenta)
    assert torch.allclose(momenta[:, 0], torch.tensor([200.0, 0, 0, 200.0], dtype=torch.float64).expand(100, 4))
    total = momenta[:, 2:].sum(1)
    assert torch.allclose(total, torch.tensor([400.0, 0, 0, 0], dtype=torch.float64).expand(100, 4), atol=1e-9)


def test_channels():
    both = WHToLNuBB(charge=0).channels()
    assert len(both) == 16 and {c.subprocess for c in both} == {"W+", "W-"}
    plus = WHToLNuBB(charge=1).channels()
    assert {(c.pid_a, c.pid_b) for c in plus if not c.swap} == {(2, -1), (2, -3), (4, -1), (4, -3)}
    assert all(c.subprocess == "W+" for c in plus)
    assert sum(c.factor for c in plus if not c.swap) == pytest.approx(2.0)  # unitarity of the Cabibbo block
    ud = next(c for c in plus if (c.pid_a, c.pid_b) == (-1, 2))
    assert ud.swap and ud.factor == pytest.approx(SM.ckm("u", "d") ** 2)
    minus = WHToLNuBB(charge=-1)
    assert minus.default_subprocess() == "W-" and minus.particles[:4] == ("d", "u~", "e-", "ve~")
    assert {(c.pid_a, c.pid_b) for c in minus.channels() if not c.swap} == {(1, -2), (3, -2), (1, -4), (3, -4)}
    assert QQbarToWH(charge=-1).default_subprocess() == "W-"


def test_bad_input_raises_clear_errors():
    with pytest.raises(InvalidInputError, match="lineshape"):
        WHToLNuBB(lineshape="bw")
    with pytest.raises(InvalidInputError, match="charge"):
        WHToLNuBB(charge=2)
    with pytest.raises(InvalidInputError, match="charge"):
        QQbarToWH(charge=True)
    proc = WHToLNuBB(charge=1)
    momenta = random_points(proc, 4, 500.0, seed=9)
    with pytest.raises(ShapeError):
        proc.matrix_element2(momenta[:, :4])
    with pytest.raises(UnknownParameterError, match="cHB"):
        proc.matrix_element2(momenta, {"cHB": 1.0})
    with pytest.raises(UnknownParameterError, match="subprocess"):
        proc.eft_decomposition(momenta, subprocess="W-")
    with pytest.raises(UnknownParameterError, match="subprocess"):
        proc.amplitudes(momenta, "Z")
    with pytest.raises(ShapeError):
        proc.phase_space(torch.rand(4, 7, dtype=torch.float64), 500.0)
    with pytest.raises(ThresholdError):
        WHToLNuBB(lineshape="narrow").phase_space(torch.rand(4, 8, dtype=torch.float64), 150.0)
