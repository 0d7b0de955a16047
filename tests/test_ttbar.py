"""p p → t t̄ with the chromomagnetic operator ctG (sbihep.physics.processes.ttbar).

The amplitudes are checked against

* textbook closed forms of the SM |M|² (Combridge 1979; Nason, Dawson, Ellis 1988) and of the
  partonic cross sections σ̂(ŝ), which are themselves checked against each other (massless limit,
  angular integration);
* closed forms of the linear ctG interference (derived below by traces);
* an independent evaluation of A₀, A_ctG and A_ctG² by explicit numerical Dirac traces with numpy
  (Dirac representation of the γ matrices, spin sums p̸ ± m, explicit transverse gluon
  polarisation vectors, colour sums over explicit Gell-Mann matrices), which uses nothing from
  sbihep;
* gauge invariance (ε → k) of each colour-flow amplitude of the SM and of the ctG component.

Conventions (as in the module): D_μ = ∂_μ + i g_s T^A G^A_μ, L ⊃ C t̄ σ^{μν} T^A t G^A_μν with
C = ctG v/(√2 Λ²), Λ = 1 TeV.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sbihep.errors import InvalidInputError, ShapeError, ThresholdError, UnknownParameterError, UnphysicalMomentaError
from sbihep.physics import helas
from sbihep.physics.lorentz import boost, dot
from sbihep.physics.processes.ttbar import (
    GG_COLOUR_MATRIX,
    QQ_COLOUR_MATRIX,
    TTbar,
    gg_to_ttbar_amplitudes,
    gluon_polarisations,
    qqbar_to_ttbar_amplitudes,
)

torch.set_num_threads(1)

F64 = torch.float64
PROC = TTbar()
M_T = PROC.m_t
G_S = PROC.g_s
ALPHA_S = PROC.alpha_s
C_UNIT = PROC.dipole_coefficient  # C for ctG = 1 (GeV⁻¹)
ENERGIES = (346.0, 360.0, 500.0, 1000.0, 3000.0)  # √ŝ from just above 2 m_t = 345.14 GeV


def events(sqrt_s, n_events, seed, process=PROC):
    generator = torch.Generator().manual_seed(seed)
    r = torch.rand(n_events, 2, generator=generator, dtype=F64)
    return process.phase_space(r, sqrt_s)[0]


def mandelstam(momenta):
    """s, t = (p₁ − p₃)², u = (p₁ − p₄)² as float64 tensors."""
    p1, p2, p3, p4 = momenta.unbind(1)
    return dot(p1 + p2, p1 + p2), dot(p1 - p3, p1 - p3), dot(p1 - p4, p1 - p4)


def taus(s, t, u, m=M_T):
    """τ₁ = (m² − t)/s, τ₂ = (m² − u)/s, ρ = 4m²/s (τ₁ + τ₂ = 1)."""
    return (m * m - t) / s, (m * m - u) / s, 4 * m * m / s


# --------------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------------
def qq_sm(s, t, u, g=G_S, m=M_T):
    """Spin/colour-averaged |M|²(q q̄ → Q Q̄) = (4g⁴/9)[(m² − t)² + (m² − u)² + 2m² s]/s².

    Combridge, Nucl. Phys. B151 (1979) 429; Ellis, Stirling, Webber, "QCD and collider physics",
    eq. (10.12): (4g⁴/9)(τ₁² + τ₂² + ρ/2).
    """
    return 4 * g**4 / 9 * ((m * m - t) ** 2 + (m * m - u) ** 2 + 2 * m * m * s) / s**2


def gg_sm_combridge(s, t, u, g=G_S, m=M_T):
    """Spin/colour-averaged |M|²(g g → Q Q̄), Combridge, Nucl. Phys. B151 (1979) 429.

    (g⁴/8) [ 6 T U/s² − m²(s − 4m²)/(3 T U) + (4/3)(T U − 2m²(m² + t))/T² + (4/3)(T U − 2m²(m² + u))/U²
             − 3 (T U + m²(u − t))/(s T) − 3 (T U + m²(t − u))/(s U) ],   T = m² − t, U = m² − u.

    Quotations of this formula differ in where the 1/256 average sits; the overall g⁴/8 is fixed by
    the m → 0 limit (test_gg_closed_form_massless_limit) and confirmed by the σ̂ integral.
    """
    tt, uu, m2 = m * m - t, m * m - u, m * m
    bracket = (
        6 * tt * uu / s**2
        - m2 * (s - 4 * m2) / (3 * tt * uu)
        + 4 / 3 * (tt * uu - 2 * m2 * (m2 + t)) / tt**2
        + 4 / 3 * (tt * uu - 2 * m2 * (m2 + u)) / uu**2
        - 3 * (tt * uu + m2 * (u - t)) / (s * tt)
        - 3 * (tt * uu + m2 * (t - u)) / (s * uu)
    )
    return g**4 / 8 * bracket


def gg_sm_compact(s, t, u, g=G_S, m=M_T):
    """The same, ESW eq. (10.12) / Nason, Dawson, Ellis: g⁴ (1/(6τ₁τ₂) − 3/8)(τ₁² + τ₂² + ρ − ρ²/(4τ₁τ₂))."""
    t1, t2, rho = taus(s, t, u, m)
    return g**4 * (1 / (6 * t1 * t2) - 3 / 8) * (t1**2 + t2**2 + rho - rho**2 / (4 * t1 * t2))


def gg_massless(s, t, u, g=G_S):
    """|M|²(g g → q q̄), massless: g⁴[(1/6)(t² + u²)/(t u) − (3/8)(t² + u²)/s²] (ESW Table 7.1)."""
    return g**4 * ((t * t + u * u) / (6 * t * u) - 3 / 8 * (t * t + u * u) / s**2)


def qq_interference(g=G_S, c=C_UNIT, m=M_T):
    """Linear ctG term of the averaged |M|²(q q̄ → t t̄): −(32/9) g_s³ C m_t, independent of the angle.

    Derivation (this convention): M_SM = (g_s²/s) J_μ K^μ and M_ctG = (2iC g_s/s) J_ν D^ν with
    J^μ = v̄₂γ^μu₁, K^μ = ū₃γ^μv₄, D^ν = ū₃σ^{ρν}q_ρv₄, q = p₁ + p₂.  Spin sums:
    Σ J^μ J^{ν*} = 4(p₁^μp₂^ν + p₁^νp₂^μ − g^{μν} p₁·p₂) and
    Σ K_μ D_ν* = Tr[(p̸₃ + m)γ_μ(p̸₄ − m)σ_{ρν}] q^ρ = 4im (q² g_μν − q_μ q_ν),
    using Tr[γ^αγ^βσ^{ρν}] = 4i(g^{αν}g^{βρ} − g^{αρ}g^{βν}).  Contracting, 2 Re Σ M_SM M_ctG* = −64 g_s³ C m;
    times the colour sum 2 and the average 1/36.  (With Zhang & Willenbrock's O_hg, which uses
    λ^A = 2T^A, C = √2 v Re C_hg/Λ², i.e. ctG = 2 Re C_hg up to the sign convention of D.)
    """
    return -32 / 9 * g**3 * c * m


def gg_interference(s, t, u, g=G_S, c=C_UNIT, m=M_T):
    """Linear ctG term of the averaged |M|²(g g → t t̄): −8 g_s³ C m_t (1/(6τ₁τ₂) − 3/8).

    The interference factorises like the SM result with the bracket of gg_sm_compact replaced by a
    constant, the structure known for a chromomagnetic moment (e.g. Haberl, Nachtmann, Wilch,
    PRD 53 (1996) 4875); the q q̄ result above has the same property, (4/9)(τ₁² + τ₂² + ρ/2) →
    (4/9)(−8 C m/g_s).  The normalisation −8 g_s³ C m_t was not taken from the literature (the text of
    Zhang & Willenbrock could not be retrieved here); it is established by the independent trace
    evaluation in test_components_match_dirac_traces.
    """
    t1, t2, _ = taus(s, t, u, m)
    return -8 * g**3 * c * m * (1 / (6 * t1 * t2) - 3 / 8)


def sigma_qq(s, alpha=ALPHA_S, m=M_T):
    """σ̂(q q̄ → Q Q̄) = (8π α_s²/(27 s)) β (1 + ρ/2) (Nason, Dawson, Ellis, Nucl. Phys. B303 (1988) 607; ESW (10.13))."""
    rho = 4 * m * m / s
    return 8 * math.pi * alpha**2 / (27 * s) * math.sqrt(1 - rho) * (1 + rho / 2)


def sigma_gg(s, alpha=ALPHA_S, m=M_T):
    """σ̂(g g → Q Q̄) = (π α_s²/(3s)) [(1 + ρ + ρ²/16) ln((1 + β)/(1 − β)) − β(7/4 + 31ρ/16)] (same sources)."""
    rho = 4 * m * m / s
    beta = math.sqrt(1 - rho)
    log = math.log((1 + beta) / (1 - beta))
    return math.pi * alpha**2 / (3 * s) * ((1 + rho + rho**2 / 16) * log - beta * (7 / 4 + 31 * rho / 16))


def sigma_interference(s, channel, g=G_S, c=C_UNIT, m=M_T):
    """σ̂ of the linear ctG term: (1/2s) ∫ A_ctG dΦ₂ with dΦ₂ = β/(16π) dcosθ and τ₁τ₂ = (1 − β²cos²θ)/4,
    ∫ dcosθ/(τ₁τ₂) = (4/β) ln((1 + β)/(1 − β))."""
    beta = math.sqrt(1 - 4 * m * m / s)
    if channel == "qq":
        angular = 2 * qq_interference(g, c, m)
    else:
        log = math.log((1 + beta) / (1 - beta))
        angular = -8 * g**3 * c * m * (2 * log / (3 * beta) - 3 / 4)
    return angular * beta / (16 * math.pi) / (2 * s)


# --------------------------------------------------------------------------------------------------
# Independent reference: explicit Dirac traces in numpy (Dirac representation), nothing from sbihep
# --------------------------------------------------------------------------------------------------
_PAULI = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
_I2, _Z2 = np.eye(2), np.zeros((2, 2))
GAMMA_D = np.array(
    [np.block([[_I2, _Z2], [_Z2, -_I2]])] + [np.block([[_Z2, p], [-p, _Z2]]) for p in _PAULI], dtype=complex
)
SIGMA_D = 0.5j * (np.einsum("mab,nbc->mnac", GAMMA_D, GAMMA_D) - np.einsum("nab,mbc->mnac", GAMMA_D, GAMMA_D))
G_METRIC = np.diag([1.0, -1.0, -1.0, -1.0])
I4 = np.eye(4)


def mdot(a, b):
    return a @ G_METRIC @ b


def pslash(p):
    return np.einsum("m,mab->ab", G_METRIC @ p, GAMMA_D)


def sigma_ab(a, b):
    """σ^{μν} a_μ b_ν."""
    return np.einsum("mnab,m,n->ab", SIGMA_D, G_METRIC @ a, G_METRIC @ b)


def dirac_bar(matrix):
    """Γ̄ = γ⁰ Γ† γ⁰."""
    return GAMMA_D[0] @ matrix.conj().T @ GAMMA_D[0]


def gell_mann_generators():
    """T^a = λ^a/2, shape (8, 3, 3)."""
    lam = np.zeros((8, 3, 3), dtype=complex)
    lam[0][0, 1] = lam[0][1, 0] = 1
    lam[1][0, 1], lam[1][1, 0] = -1j, 1j
    lam[2][0, 0], lam[2][1, 1] = 1, -1
    lam[3][0, 2] = lam[3][2, 0] = 1
    lam[4][0, 2], lam[4][2, 0] = -1j, 1j
    lam[5][1, 2] = lam[5][2, 1] = 1
    lam[6][1, 2], lam[6][2, 1] = -1j, 1j
    lam[7] = np.diag([1, 1, -2]) / math.sqrt(3)
    return lam / 2


T_GEN = gell_mann_generators()
# f^{abc} = −2i Tr([T^a, T^b] T^c)
F_ABC = np.real(
    -2j * np.einsum("aij,bjk,cki->abc", T_GEN, T_GEN, T_GEN) + 2j * np.einsum("bij,ajk,cki->abc", T_GEN, T_GEN, T_GEN)
)
# Colour tensors c[a, b, i, j] of the gg diagrams: t-channel, u-channel, s-channel, contact.
COLOUR_T = np.einsum("aik,bkj->abij", T_GEN, T_GEN)
COLOUR_U = np.einsum("bik,akj->abij", T_GEN, T_GEN)
COLOUR_S = np.einsum("abc,cij->abij", F_ABC, T_GEN)
COLOUR_X = COLOUR_T - COLOUR_U


def transverse_basis(k):
    """Two real unit polarisation vectors (0, ê) with ê ⊥ k⃗."""
    n = k[1:] / np.linalg.norm(k[1:])
    trial = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = trial - (trial @ n) * n
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    return [np.concatenate([[0.0], e]) for e in (e1, e2)]


def reference_gg(p, m, g, c):
    """(A₀, A_ctG, A_ctG²) of g g → t t̄ for one event p (4, 4), by traces."""
    p1, p2, p3, p4 = p
    q = p1 + p2
    k3 = -q
    s = mdot(q, q)

    def propagator(k):
        return 1j * (pslash(k) + m * I4) / (mdot(k, k) - m * m)

    def vertex(e):  # −i g γ^μ ε_μ
        return -1j * g * pslash(e)

    def dipole(e, k):  # 2C σ^{μν} k_μ ε_ν
        return 2 * c * sigma_ab(k, e)

    s_t, s_u = propagator(p3 - p1), propagator(p3 - p2)
    spin_top, spin_anti = pslash(p3) + m * I4, pslash(p4) - m * I4
    result = np.zeros(3)
    for e1, e2 in itertools.product(transverse_basis(p1), transverse_basis(p2)):
        # Three-gluon vertex −g f^{abc}[g^{μν}(k₁−k₂)^ρ + g^{νρ}(k₂−k₃)^μ + g^{ρμ}(k₃−k₁)^ν], then −i g_ρσ/s.
        v3 = -g * (mdot(e1, e2) * (p1 - p2) + e2 * mdot(p2 - k3, e1) + e1 * mdot(k3 - p1, e2))
        gluon = -1j * v3 / s
        sm = [
            (COLOUR_T, vertex(e1) @ s_t @ vertex(e2)),
            (COLOUR_U, vertex(e2) @ s_u @ vertex(e1)),
            (COLOUR_S, -1j * g * pslash(gluon)),
        ]
        eft = [
            (COLOUR_T, dipole(e1, p1) @ s_t @ vertex(e2) + vertex(e1) @ s_t @ dipole(e2, p2)),
            (COLOUR_U, dipole(e2, p2) @ s_u @ vertex(e1) + vertex(e2) @ s_u @ dipole(e1, p1)),
            (COLOUR_S, 2 * c * sigma_ab(q, gluon)),
            (COLOUR_X, -2 * c * g * sigma_ab(e1, e2)),
        ]

        def spin_colour_sum(xs, ys):
            return sum(
                np.sum(cx * cy.conj()) * np.trace(spin_top @ dx @ spin_anti @ dirac_bar(dy))
                for cx, dx in xs
                for cy, dy in ys
            )

        result += [spin_colour_sum(sm, sm).real, 2 * spin_colour_sum(sm, eft).real, spin_colour_sum(eft, eft).real]
    return result / 256


def reference_qq(p, m, g, c):
    """(A₀, A_ctG, A_ctG²) of q q̄ → t t̄ (massless q) for one event p (4, 4), by traces."""
    p1, p2, p3, p4 = p
    q = p1 + p2
    s = mdot(q, q)
    quark_vertex = [-1j * g * GAMMA_D[mu] for mu in range(4)]
    # Top vertices with the gluon index ν open (upper): −i g γ^ν, and 2C σ^{αν} q_α.
    top_vertices = {
        "sm": [-1j * g * GAMMA_D[nu] for nu in range(4)],
        "eft": [2 * c * np.einsum("a,aij->ij", G_METRIC @ q, SIGMA_D[:, nu]) for nu in range(4)],
    }
    light = np.array(
        [
            [np.trace(quark_vertex[mu] @ pslash(p1) @ dirac_bar(quark_vertex[rho]) @ pslash(p2)) for rho in range(4)]
            for mu in range(4)
        ]
    )
    spin_top, spin_anti = pslash(p3) + m * I4, pslash(p4) - m * I4

    def heavy(x, y):
        return np.array(
            [
                [
                    np.trace(spin_top @ top_vertices[x][nu] @ spin_anti @ dirac_bar(top_vertices[y][sg]))
                    for sg in range(4)
                ]
                for nu in range(4)
            ]
        )

    def spin_sum(x, y):  # propagators −i g_μν/s and (−i g_ρσ/s)*
        metric = np.diag(G_METRIC)
        return np.einsum("m,r,mr,mr->", metric, metric, light, heavy(x, y)) / s**2

    colour_flow = np.einsum("akl,aij->klij", T_GEN, T_GEN)
    colour = np.sum(np.abs(colour_flow) ** 2)
    return (
        np.array([spin_sum("sm", "sm").real, 2 * spin_sum("sm", "eft").real, spin_sum("eft", "eft").real]) * colour / 36
    )


# --------------------------------------------------------------------------------------------------
# Checks of the closed forms themselves
# --------------------------------------------------------------------------------------------------
def test_gg_closed_form_massless_limit():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = rng.uniform(1e4, 1e7)
        t = -s * rng.uniform(0.01, 0.99)
        u = -s - t
        assert gg_sm_combridge(s, t, u, m=0.0) == pytest.approx(gg_massless(s, t, u), rel=1e-12)
        assert gg_sm_compact(s, t, u, m=0.0) == pytest.approx(gg_massless(s, t, u), rel=1e-12)


@pytest.mark.parametrize("sqrt_s", ENERGIES)
def test_closed_forms_integrate_to_sigma_hat(sqrt_s):
    s = sqrt_s**2
    beta = math.sqrt(1 - 4 * M_T**2 / s)

    def integrate(matrix_element2):
        def integrand(cos_theta):
            t = M_T**2 - s / 2 * (1 - beta * cos_theta)
            return matrix_element2(s, t, 2 * M_T**2 - s - t)

        value = quad(integrand, -1, 1, epsabs=0, epsrel=1e-13, limit=200)[0]
        return value * beta / (16 * math.pi) / (2 * s)

    assert integrate(gg_sm_combridge) == pytest.approx(sigma_gg(s), rel=1e-10)
    assert integrate(gg_sm_compact) == pytest.approx(sigma_gg(s), rel=1e-10)
    assert integrate(qq_sm) == pytest.approx(sigma_qq(s), rel=1e-10)
    assert integrate(gg_interference) == pytest.approx(sigma_interference(s, "gg"), rel=1e-10)
    assert integrate(lambda s, t, u: qq_interference()) == pytest.approx(sigma_interference(s, "qq"), rel=1e-10)


def test_reference_colour_algebra():
    """The reference's Gell-Mann algebra, and the module's colour matrices from it."""
    assert np.allclose(np.einsum("aij,bji->ab", T_GEN, T_GEN), np.eye(8) / 2)
    commutator = np.einsum("aik,bkj->abij", T_GEN, T_GEN) - np.einsum("bik,akj->abij", T_GEN, T_GEN)
    assert np.allclose(commutator, 1j * np.einsum("abc,cij->abij", F_ABC, T_GEN))
    flows = [COLOUR_T, COLOUR_U]
    gram = np.array([[np.sum(x * y.conj()) for y in flows] for x in flows])
    assert np.allclose(gram, GG_COLOUR_MATRIX.numpy(), atol=1e-13)
    assert np.allclose(np.sum(np.abs(np.einsum("akl,aij->klij", T_GEN, T_GEN)) ** 2), QQ_COLOUR_MATRIX.item())


# --------------------------------------------------------------------------------------------------
# The process against the closed forms and the traces
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sqrt_s", ENERGIES)
def test_sm_matches_closed_forms(sqrt_s):
    momenta = events(sqrt_s, 16, seed=int(sqrt_s))
    s, t, u = mandelstam(momenta)
    gg = PROC.matrix_element2(momenta, subprocess="gg")
    qq = PROC.matrix_element2(momenta, subprocess="qq")
    assert torch.allclose(gg, gg_sm_combridge(s, t, u), rtol=1e-10, atol=0)
    assert torch.allclose(qq, qq_sm(s, t, u), rtol=1e-10, atol=0)


@pytest.mark.parametrize("sqrt_s", ENERGIES)
def test_linear_interference_matches_closed_forms(sqrt_s):
    momenta = events(sqrt_s, 16, seed=int(sqrt_s) + 1)
    s, t, u = mandelstam(momenta)
    gg = PROC.eft_decomposition(momenta, "linear", subprocess="gg").linear[:, 0]
    qq = PROC.eft_decomposition(momenta, "linear", subprocess="qq").linear[:, 0]
    assert torch.allclose(gg, gg_interference(s, t, u), rtol=1e-10, atol=0)
    assert torch.allclose(qq, torch.full_like(qq, qq_interference()), rtol=1e-10, atol=0)


@pytest.mark.parametrize("subprocess", ["gg", "qq"])
def test_components_match_dirac_traces(subprocess):
    reference = reference_gg if subprocess == "gg" else reference_qq
    for sqrt_s in (346.0, 400.0, 1000.0, 3000.0):
        momenta = events(sqrt_s, 3, seed=7 + int(sqrt_s))
        decomposition = PROC.eft_decomposition(momenta, "quadratic", subprocess=subprocess)
        ours = torch.stack([decomposition.constant, decomposition.linear[:, 0], decomposition.quadratic[:, 0, 0]], -1)
        expected = np.array([reference(p, M_T, G_S, C_UNIT) for p in momenta.numpy()])
        assert np.allclose(ours.numpy(), expected, rtol=1e-10, atol=0), (ours.numpy(), expected)


def test_frame_independence_and_beam_swap():
    """|M|² components are Lorentz invariant (boosts, rotations) and symmetric under p₁ ↔ p₂."""
    momenta = events(800.0, 8, seed=11)
    rotation = torch.tensor([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]], dtype=F64)
    rotated = torch.cat([momenta[..., :1], momenta[..., 1:] @ rotation.T], -1)
    boosted = boost(rotated, torch.tensor([0.3, -0.2, 0.7], dtype=F64))
    swapped = momenta[:, [1, 0, 2, 3]]
    for subprocess in ("gg", "qq"):
        reference = PROC.eft_decomposition(momenta, subprocess=subprocess).packed()
        for other in (boosted, swapped):
            assert torch.allclose(
                PROC.eft_decomposition(other, subprocess=subprocess).packed(), reference, rtol=1e-9, atol=0
            )


# --------------------------------------------------------------------------------------------------
# Gauge invariance
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sqrt_s", [360.0, 1000.0, 3000.0])
@pytest.mark.parametrize("gluon", [0, 1])
def test_gauge_invariance(sqrt_s, gluon):
    """ε → k/k⁰ for one gluon (the other physical) annihilates every colour-flow amplitude, SM and ctG."""
    momenta = events(sqrt_s, 10, seed=3 + gluon)
    args = (momenta, M_T, G_S, C_UNIT)
    physical = gg_to_ttbar_amplitudes(*args)
    k = momenta[:, gluon]
    longitudinal = (k / k[:, :1])[:, None].to(torch.complex128)
    polarisations = [gluon_polarisations(momenta[:, 0]), gluon_polarisations(momenta[:, 1])]
    polarisations[gluon] = longitudinal
    unphysical = gg_to_ttbar_amplitudes(*args, polarisations=tuple(polarisations))
    for component in range(2):
        typical = physical[component].abs().max()
        assert unphysical[component].abs().max() <= 1e-12 * typical, (
            component,
            unphysical[component].abs().max() / typical,
        )


def test_gauge_check_detects_a_missing_contact_term():
    """The gauge check is sensitive to the t t̄ g g contact term (it would fail without it)."""
    momenta = events(1000.0, 4, seed=5)
    p1 = momenta[:, 0]
    longitudinal = (p1 / p1[:, :1])[:, None].to(torch.complex128)
    e2 = gluon_polarisations(momenta[:, 1])
    with_contact = gg_to_ttbar_amplitudes(momenta, M_T, G_S, C_UNIT, polarisations=(longitudinal, e2))[1]
    # The contact vertex alone: −2 C g_s ū σ^{μν} ε₁_μ ε₂_ν v (colour flow 1), via helas.
    contact = torch.zeros(4, 2, 4, dtype=torch.complex128)
    for j, (h3, h4) in enumerate(itertools.product((-1, 1), repeat=2)):
        ubar = helas.outgoing_fermion(momenta[:, 2], h3, M_T)
        v = helas.outgoing_antifermion(momenta[:, 3], h4, M_T)
        for i in range(2):
            contact[:, i, j] = -2 * C_UNIT * G_S * dot(helas.dipole_current(ubar, v, longitudinal[:, 0]), e2[:, i])
    typical = gg_to_ttbar_amplitudes(momenta, M_T, G_S, C_UNIT)[1].abs().max()
    assert with_contact.abs().max() < 1e-12 * typical
    assert contact.abs().max() > 0.1 * typical


def test_gluon_polarisations():
    """Helicity states: transverse, normalised, k̂ × ε(λ) = −iλ ε(λ), equal to helas on the beam axis."""
    generator = torch.Generator().manual_seed(61)
    space = torch.randn(64, 3, generator=generator, dtype=F64) * 100.0
    space[:4] = torch.tensor([[0, 0, 300.0], [0, 0, -300.0], [200.0, 0, 0], [-1e-9, 0, 50.0]], dtype=F64)
    k = torch.cat([space.norm(dim=-1, keepdim=True), space], -1)
    eps = gluon_polarisations(k)
    k_hat = (space / space.norm(dim=-1, keepdim=True)).to(torch.complex128)
    for i, helicity in enumerate((-1, 1)):
        e = eps[:, i]
        assert e[:, 0].abs().max() == 0
        assert (e[:, 1:] * k_hat).sum(-1).abs().max() < 1e-14
        assert torch.allclose(dot(e, e.conj()).real, torch.full((64,), -1.0, dtype=F64), atol=1e-14)
        assert (torch.linalg.cross(k_hat, e[:, 1:], dim=-1) + 1j * helicity * e[:, 1:]).abs().max() < 1e-14
        assert (e[:2] - helas.vector_polarisation(k[:2], helicity)).abs().max() < 1e-15


def test_gradients_with_respect_to_momenta():
    """g g → t t̄ is differentiable in the momenta with the gluons on the beam axis: d|M|²/dα at a
    rotation angle α = 0 about the x axis is finite and zero (rotation invariance).

    (q q̄ is not tested here: helas's helicity spinors are not differentiable on the −z axis, where the
    antiquark from beam 2 travels, so its momentum gradients are finite but not exact.)
    """
    momenta = events(600.0, 5, seed=71)
    angle = torch.zeros((), dtype=F64, requires_grad=True)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rotation = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, c, -s]), torch.stack([zero, s, c])])
    rotated = torch.cat([momenta[..., :1], momenta[..., 1:] @ rotation.T], -1)
    value = PROC.matrix_element2(rotated, {"ctG": 0.8}, subprocess="gg").sum()
    (gradient,) = torch.autograd.grad(value, angle)
    assert torch.isfinite(gradient) and gradient.abs() < 1e-12 * value.detach()
    leaf = momenta.clone().requires_grad_(True)
    PROC.matrix_element2(leaf, {"ctG": 0.8}, subprocess="gg").sum().backward()
    assert torch.isfinite(leaf.grad).all()


# --------------------------------------------------------------------------------------------------
# Consistency with the helas building blocks (conventions and phases of every helicity amplitude)
# --------------------------------------------------------------------------------------------------
def helas_gg_amplitudes(momenta):
    """Per-helicity colour-flow amplitudes of g g → t t̄ built from helas vertex functions, (2, N, 2, 2, 2, 2, 2)."""
    p1, p2, p3, p4 = momenta.unbind(1)
    gq, c = -G_S, C_UNIT
    out = torch.zeros(2, momenta.shape[0], 2, 2, 2, 2, 2, dtype=torch.complex128)
    for idx in itertools.product(range(2), repeat=4):
        h1, h2, h3, h4 = ((-1, 1)[i] for i in idx)
        e1, e2 = helas.vector_polarisation(p1, h1), helas.vector_polarisation(p2, h2)
        ubar, v = helas.outgoing_fermion(p3, h3, M_T), helas.outgoing_antifermion(p4, h4, M_T)
        # t-channel: propagate the antitop line (ffv_offshell_fermion_in, q = p₂ − p₄).
        v2 = helas.ffv_offshell_fermion_in(v, e2, p2 - p4, gq, gq, M_T)
        v2_dip = helas.dipole_offshell_fermion_in(v, e2, p2, p2 - p4, c, M_T)
        t_sm = helas.ffv_amplitude(ubar, v2, e1, gq, gq)
        t_eft = helas.ffv_dipole_amplitude(ubar, v2, e1, p1, c) + helas.ffv_amplitude(ubar, v2_dip, e1, gq, gq)
        # u-channel: propagate the top line (ffv_offshell_fermion_out, q = p₃ − p₂).
        u2 = helas.ffv_offshell_fermion_out(ubar, e2, p3 - p2, gq, gq, M_T)
        u2_dip = helas.dipole_offshell_fermion_out(ubar, e2, p2, p3 - p2, c, M_T)
        u_sm = helas.ffv_amplitude(u2, v, e1, gq, gq)
        u_eft = helas.ffv_amplitude(u2_dip, v, e1, gq, gq) + helas.ffv_dipole_amplitude(u2, v, e1, p1, c)
        gluon = helas.vvv_current(e1, p1, e2, p2, 1j * G_S)
        s_sm = helas.ffv_amplitude(ubar, v, gluon, gq, gq)
        s_eft = helas.ffv_dipole_amplitude(ubar, v, gluon, p1 + p2, c)
        contact = -2 * c * G_S * dot(helas.dipole_current(ubar, v, e1), e2)
        out[(0, slice(None), *idx, 0)] = t_sm - 1j * s_sm
        out[(0, slice(None), *idx, 1)] = u_sm + 1j * s_sm
        out[(1, slice(None), *idx, 0)] = t_eft - 1j * s_eft + contact
        out[(1, slice(None), *idx, 1)] = u_eft + 1j * s_eft - contact
    return helas.amplitude_from_diagram(out)


def helas_qq_amplitudes(momenta):
    """Per-helicity amplitudes of q q̄ → t t̄ from helas vertex functions, (2, N, 2, 2, 2, 1)."""
    p1, p2, p3, p4 = momenta.unbind(1)
    gq, q = -G_S, p1 + p2
    out = torch.zeros(2, momenta.shape[0], 2, 2, 2, 1, dtype=torch.complex128)
    for idx in itertools.product(range(2), repeat=3):
        h1, h3, h4 = ((-1, 1)[i] for i in idx)
        current = helas.fermion_current(helas.incoming_antifermion(p2, -h1), helas.incoming_fermion(p1, h1), gq, gq)
        gluon = helas.vector_propagator(1j * current, q, 0.0)
        ubar, v = helas.outgoing_fermion(p3, h3, M_T), helas.outgoing_antifermion(p4, h4, M_T)
        out[(0, slice(None), *idx, 0)] = helas.ffv_amplitude(ubar, v, gluon, gq, gq)
        out[(1, slice(None), *idx, 0)] = helas.ffv_dipole_amplitude(ubar, v, gluon, q, C_UNIT)
    return helas.amplitude_from_diagram(out)


def test_amplitudes_equal_helas_vertex_functions():
    momenta = torch.cat([events(400.0, 4, seed=21), events(2000.0, 4, seed=22)])
    for ours, theirs in (
        (gg_to_ttbar_amplitudes(momenta, M_T, G_S, C_UNIT), helas_gg_amplitudes(momenta)),
        (qqbar_to_ttbar_amplitudes(momenta, M_T, G_S, C_UNIT), helas_qq_amplitudes(momenta)),
    ):
        for component in range(2):
            scale = theirs[component].abs().max()
            assert (ours[component] - theirs[component]).abs().max() <= 1e-12 * scale


# --------------------------------------------------------------------------------------------------
# Partonic cross sections and the sign of the ctG effect
# --------------------------------------------------------------------------------------------------
def sigma_hat(sqrt_s, subprocess, n_nodes=200):
    """(σ̂_SM, σ̂_ctG-linear, σ̂_ctG²) by Gauss–Legendre integration over cosθ of the process's |M|²."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    r = torch.stack([torch.as_tensor((nodes + 1) / 2), torch.full((n_nodes,), 0.3, dtype=F64)], -1)
    momenta, phase_space_weight = PROC.phase_space(r, sqrt_s)
    packed = PROC.eft_decomposition(momenta, subprocess=subprocess).packed()
    # mean over uniform r of weight·f = ∫ dΦ f; Gauss–Legendre in cosθ = 2r₀ − 1 has weights w/2.
    integral = (torch.as_tensor(weights / 2)[:, None] * phase_space_weight[:, None] * packed).sum(0)
    return integral / (2 * sqrt_s**2)


@pytest.mark.parametrize("sqrt_s", ENERGIES)
def test_partonic_cross_sections(sqrt_s):
    s = sqrt_s**2
    gg = sigma_hat(sqrt_s, "gg")
    qq = sigma_hat(sqrt_s, "qq")
    assert gg[0].item() == pytest.approx(sigma_gg(s), rel=1e-10)
    assert qq[0].item() == pytest.approx(sigma_qq(s), rel=1e-10)
    assert gg[1].item() == pytest.approx(sigma_interference(s, "gg"), rel=1e-10)
    assert qq[1].item() == pytest.approx(sigma_interference(s, "qq"), rel=1e-10)


def test_ctg_sign_near_threshold():
    """ctG > 0 lowers σ̂ in this convention (Warsaw basis with D = ∂ + i g_s T G, as SMEFTsim).

    The interference is −(32/9) g_s³ C m_t (q q̄) and −8 g_s³ C m_t (1/(6τ₁τ₂) − 3/8) (g g), both
    negative for C > 0.  SMEFT@NLO / dim6top use D = ∂ − i g_s T G and normalise the operator with
    g_s; the SMEFTsim UFO-validation parameter cards translate ctG(SMEFT@NLO) = 1 into
    ctGRe(SMEFTsim) = −g_s, so the positive shift of σ(t t̄) reported there for ctG > 0 is a negative
    one here.
    """
    for sqrt_s in (350.0, 400.0):
        for subprocess in ("gg", "qq"):
            sm, linear, quadratic = sigma_hat(sqrt_s, subprocess).tolist()
            assert linear < 0
            for ctg in (0.5, 1.0):
                assert sm + ctg * linear + ctg**2 * quadratic < sm < sm - ctg * linear + ctg**2 * quadratic


def test_matrix_element2_is_the_polynomial():
    momenta = events(700.0, 6, seed=31)
    for subprocess in ("gg", "qq"):
        decomposition = PROC.eft_decomposition(momenta, subprocess=subprocess)
        for ctg in (-1.5, 0.7):
            direct = PROC.matrix_element2(momenta, {"ctG": ctg}, subprocess=subprocess)
            assert torch.allclose(direct, decomposition.evaluate(torch.tensor([ctg], dtype=F64)), rtol=1e-12)
            linear = PROC.matrix_element2(momenta, {"ctG": ctg}, order="linear", subprocess=subprocess)
            expected = decomposition.constant + ctg * decomposition.linear[:, 0]
            assert torch.allclose(linear, expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Process interface and bad input
# --------------------------------------------------------------------------------------------------
def test_process_interface():
    assert PROC.name == "ttbar" and PROC.collider == "pp" and PROC.operators == ("ctG",)
    assert PROC.particles == ("g", "g", "t", "t~")
    assert PROC.n_random == 2
    assert PROC.threshold() == pytest.approx(2 * M_T)
    assert PROC.default_subprocess() == "gg"
    channels = PROC.channels()
    assert channels[0].pid_a == channels[0].pid_b == 21 and channels[0].subprocess == "gg"
    quark = {(c.pid_a, c.pid_b, c.swap) for c in channels if c.subprocess == "qq"}
    assert quark == {(q, -q, False) for q in range(1, 6)} | {(-q, q, True) for q in range(1, 6)}
    assert G_S == pytest.approx(math.sqrt(4 * math.pi * PROC.sm.alpha_s(M_T)))
    assert C_UNIT == pytest.approx(PROC.sm.vev / math.sqrt(2) * 1e-6)
    assert TTbar(alpha_s=0.1).g_s == pytest.approx(math.sqrt(0.4 * math.pi))

    momenta, weight = PROC.phase_space(torch.full((3, 2), 0.25, dtype=F64), 500.0)
    assert momenta.shape == (3, 4, 4)
    beta = math.sqrt(1 - 4 * M_T**2 / 500.0**2)
    assert torch.allclose(weight, torch.full((3,), beta / (8 * math.pi), dtype=F64), rtol=1e-12)
    PROC.check_momenta(momenta)

    gg = PROC.amplitudes(momenta, "gg")
    qq = PROC.amplitudes(momenta, "qq")
    assert gg.components.shape == (2, 3, 16, 2) and gg.average == pytest.approx(1 / 256)
    assert qq.components.shape == (2, 3, 8, 1) and qq.average == pytest.approx(1 / 36)


def test_amplitudes_in_several_event_blocks():
    momenta = events(900.0, 20, seed=41)
    whole = PROC.amplitudes(momenta, "gg").components
    from sbihep.physics.processes import ttbar

    block, ttbar._EVENT_BLOCK = ttbar._EVENT_BLOCK, 7
    try:
        split = PROC.amplitudes(momenta, "gg").components
    finally:
        ttbar._EVENT_BLOCK = block
    assert torch.allclose(split, whole, rtol=1e-13, atol=0)


def test_bad_input():
    momenta = events(500.0, 4, seed=51)
    with pytest.raises(ThresholdError):
        PROC.phase_space(torch.full((2, 2), 0.5, dtype=F64), 300.0)
    with pytest.raises(ThresholdError):
        PROC.phase_space(torch.full((2, 2), 0.5, dtype=F64), 2 * M_T)
    with pytest.raises(ShapeError):
        PROC.phase_space(torch.full((2, 3), 0.5, dtype=F64), 500.0)
    with pytest.raises(UnknownParameterError, match="subprocess"):
        PROC.matrix_element2(momenta, subprocess="ug")
    with pytest.raises(UnknownParameterError, match="subprocess"):
        PROC.amplitudes(momenta, "uu")
    with pytest.raises(UnknownParameterError, match="ctG"):
        PROC.matrix_element2(momenta, {"ctW": 1.0})
    for bad in (momenta[:, :3], momenta[..., :3], momenta[0]):
        with pytest.raises(ShapeError):
            PROC.matrix_element2(bad)
        with pytest.raises(ShapeError, match="momenta"):
            PROC.amplitudes(bad, "gg")
    off_shell = momenta.clone()
    off_shell[:, 2, 0] += 10.0
    off_shell[:, 0, 0] += 5.0
    off_shell[:, 1, 0] += 5.0
    with pytest.raises(UnphysicalMomentaError):
        PROC.eft_decomposition(off_shell)
    with pytest.raises(ShapeError, match="polarisations"):
        gg_to_ttbar_amplitudes(momenta, M_T, G_S, C_UNIT, polarisations=(torch.zeros(4, 2, 3), torch.zeros(4, 2, 4)))
    for alpha_s in (0.0, -0.1, float("nan"), "0.1"):
        with pytest.raises(InvalidInputError, match="alpha_s"):
            TTbar(alpha_s=alpha_s)
