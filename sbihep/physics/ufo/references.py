"""Closed-form |M|² from the literature, to check generated processes against (independent of the UFO engine).

Every function takes physical momenta (N, 4) in GeV (metric (+,−,−,−)) and the couplings / masses as
numbers (read them from the model the process was generated from, e.g.
``model.evaluate()["ee"]``), and returns the spin-summed and colour-summed |M|² *averaged* over the
initial spins and colours as :meth:`~sbihep.physics.processes.base.Process.matrix_element2` does
(identical final-state factors included where stated), shape (N,) float64.

* :func:`gluon_mhv_colour_summed`: n-gluon scattering, Parke–Taylor MHV amplitudes with the colour sum
  (n = 4, 5: every helicity configuration is MHV or anti-MHV and the leading-colour sum is exact);
* :func:`drell_yan_contact`: q q̄ → ℓ⁻ ℓ⁺ through γ, Z and four-fermion contact terms, per chirality;
* :func:`ee_to_ww_sm`: e⁺e⁻ → W⁺W⁻ in the SM (massless electron: ν t-channel, γ and Z s-channel),
  a Dirac trace with the massive polarisation sums, evaluated with explicit Dirac matrices in the
  Dirac (not the chiral) representation.
"""

from __future__ import annotations

import itertools
import math

import torch

from sbihep.errors import InvalidInputError, ShapeError

__all__ = ["minkowski_dot", "gluon_mhv_colour_summed", "drell_yan_contact", "ee_to_ww_sm"]

_METRIC = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)


def minkowski_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a·b = a⁰b⁰ − a⃗·b⃗ over the last axis (length 4)."""
    return (a * b * _METRIC.to(a.dtype)).sum(-1)


def _check(p: torch.Tensor, n: int, name: str) -> None:
    if not isinstance(p, torch.Tensor) or p.ndim != 3 or p.shape[1:] != (n, 4):
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        raise ShapeError(f"{name}: momenta must have shape (N, {n}, 4), got {shape}")


def gluon_mhv_colour_summed(momenta: torch.Tensor, g_s: float, n_colours: int = 3,
                            identical_final: bool = True) -> torch.Tensor:
    """Averaged Σ|M|² of g g → (n − 2) g from the Parke–Taylor formula, for n = 4 or 5 gluons.

    Parke & Taylor, Phys. Rev. Lett. 56 (1986) 2459; colour decomposition and colour sum as in
    Mangano & Parke, Phys. Rep. 200 (1991) 301, eqs. (3.3), (3.14), and Dixon, hep-ph/9601359, § 3:

        M = g^{n−2} Σ_{σ ∈ S_n/Z_n} Tr(T̃^{a_σ1} … T̃^{a_σn}) A(σ),   T̃^a = √2 T^a,  T^a = λ^a/2,
        |A_MHV(σ)|² = s_ij⁴ / |s_σ1σ2 s_σ2σ3 … s_σnσ1|   (i, j the two gluons of the other helicity),
        Σ_colours |M|² = g^{2n−4} N^{n−2} (N² − 1) Σ_{σ ∈ S_{n−1}} Σ_hel |A(1, σ)|²,

    exact for n ≤ 5 (the subleading colour terms vanish there); with s_ij = 2|p_i·p_j|.  For n = 4
    every non-vanishing helicity configuration is MHV (C(4, 2) = 6 of them); for n = 5 there are 10 MHV
    and 10 anti-MHV configurations with the same |A|², so Σ_hel = 2 Σ_{i<j} s_ij⁴ / |…|.  For n = 4 this
    is the textbook 9/2 g⁴ (3 − tu/s² − su/t² − st/u²) after the average 1/256 and 1/2! (checked in the
    tests).

    Args:
        momenta: (N, n, 4) physical momenta, two incoming gluons first (GeV).
        g_s: the strong coupling g (√(4π α_s)).
        n_colours: N of SU(N).
        identical_final: divide by (n − 2)! for the identical final-state gluons.

    Returns:
        (N,) averaged |M|² (1/4 helicities × 1/(N² − 1)² colours).
    """
    _check(momenta, momenta.shape[1] if momenta.ndim == 3 else 0, "gluon_mhv_colour_summed")
    n = momenta.shape[1]
    if n not in (4, 5):
        raise InvalidInputError(f"gluon_mhv_colour_summed: n must be 4 or 5 gluons, got {n}")
    s = 2.0 * minkowski_dot(momenta[:, :, None, :], momenta[:, None, :, :]).abs()  # (N, n, n)
    numerator = sum(s[:, i, j] ** 4 for i, j in itertools.combinations(range(n), 2))
    denominator = torch.zeros_like(numerator)
    for rest in itertools.permutations(range(1, n)):
        order = (0, *rest)
        prod = torch.ones_like(numerator)
        for a, b in zip(order, order[1:] + order[:1]):
            prod = prod * s[:, a, b]
        denominator = denominator + 1.0 / prod
    helicity_factor = 1.0 if n == 4 else 2.0
    nc = float(n_colours)
    total = g_s ** (2 * n - 4) * nc ** (n - 2) * (nc * nc - 1.0) * helicity_factor * numerator * denominator
    average = 1.0 / (4.0 * (nc * nc - 1.0) ** 2)
    if identical_final:
        average /= math.factorial(n - 2)
    return total * average


def drell_yan_contact(p_q: torch.Tensor, p_qbar: torch.Tensor, p_lminus: torch.Tensor, p_lplus: torch.Tensor, *,
                      e: float, sw: float, mz: float, wz: float, q_quark: float, t3_quark: float,
                      contact: dict[str, complex] | None = None, n_colours: int = 3) -> torch.Tensor:
    """Averaged |M|² of q q̄ → ℓ⁻ ℓ⁺ (massless) through γ, Z and four-fermion contact interactions.

    Per chirality pair (i of the quark, j of the lepton; L, R) the amplitude is one reduced amplitude
    times a spinor product (e.g. Eichten, Lane & Peskin, Phys. Rev. Lett. 50 (1983) 811;
    Peskin & Schroeder § 5.2 for the helicity structure):

        A_ij = e² Q_q Q_ℓ / s + g_i^q g_j^ℓ / (s − M_Z² + i M_Z Γ_Z) + C_ij,
        g_L^f = (g/c_w)(T³_f − Q_f s_w²),  g_R^f = −(g/c_w) Q_f s_w²,   g = e/s_w,
        Σ|M|² = 4 [ (|A_LL|² + |A_RR|²) u² + (|A_LR|² + |A_RL|²) t² ] × N_c,

    with t = (p_q − p_ℓ⁻)², u = (p_q − p_ℓ⁺)², and the average 1/4 (spins) × 1/N_c² (colours).
    The contact coefficient C_ij multiplies (q̄_i γ^μ q_i)(ℓ̄_j γ_μ ℓ_j) in the Lagrangian (GeV⁻²): for
    SMEFTsim's Warsaw-basis operators with L ⊃ (c/Λ²) Q and first-generation flavour indices,
    C_LL = (c_lq⁽¹⁾ ∓ c_lq⁽³⁾)/Λ² (− for up, + for down quarks: τ³ of the quark times τ³ = −1 of the
    charged lepton), C_RR = c_eu/Λ² (or c_ed), C_LR = c_qe/Λ², C_RL = c_lu/Λ² (or c_ld).

    Args:
        p_q, p_qbar, p_lminus, p_lplus: (N, 4) physical momenta (GeV).
        e, sw: the electromagnetic coupling and sin θ_w of the model.
        mz, wz: Z mass and width (GeV).
        q_quark, t3_quark: the quark's charge (2/3, −1/3) and weak isospin (±1/2).
        contact: {"LL": C_LL, "RR": C_RR, "LR": C_LR, "RL": C_RL} in GeV⁻² (missing entries 0).
        n_colours: N_c.

    Returns:
        (N,) averaged |M|².
    """
    contact = dict(contact or {})
    unknown = set(contact) - {"LL", "RR", "LR", "RL"}
    if unknown:
        raise InvalidInputError(f"contact: keys must be LL, RR, LR, RL, got {sorted(unknown)}")
    s = 2.0 * minkowski_dot(p_q, p_qbar)
    t = -2.0 * minkowski_dot(p_q, p_lminus)
    u = -2.0 * minkowski_dot(p_q, p_lplus)
    cw = math.sqrt(1.0 - sw * sw)
    g = e / sw
    q_l, t3_l = -1.0, -0.5
    coupling = {
        ("q", "L"): g / cw * (t3_quark - q_quark * sw * sw), ("q", "R"): -g / cw * q_quark * sw * sw,
        ("l", "L"): g / cw * (t3_l - q_l * sw * sw), ("l", "R"): -g / cw * q_l * sw * sw,
    }
    s_c = s.to(torch.complex128)
    dz = s_c - mz * mz + 1j * mz * wz
    total = torch.zeros_like(s)
    for i, j in itertools.product("LR", "LR"):
        amp = e * e * q_quark * q_l / s_c + coupling[("q", i)] * coupling[("l", j)] / dz + complex(contact.get(i + j, 0.0))
        kin = u * u if i == j else t * t
        total = total + 4.0 * amp.abs() ** 2 * kin
    return total * n_colours / (4.0 * n_colours * n_colours)


# ---- e+ e- → W+ W- ------------------------------------------------------------------------------------
def _dirac_matrices() -> tuple[torch.Tensor, torch.Tensor]:
    """γ^μ (4, 4, 4) and γ⁵ in the Dirac representation."""
    i2 = torch.eye(2, dtype=torch.complex128)
    z2 = torch.zeros(2, 2, dtype=torch.complex128)
    sig = [torch.tensor(m, dtype=torch.complex128) for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]])]
    g0 = torch.cat([torch.cat([i2, z2], 1), torch.cat([z2, -i2], 1)], 0)
    gs = [torch.cat([torch.cat([z2, s], 1), torch.cat([-s, z2], 1)], 0) for s in sig]
    gamma = torch.stack([g0, *gs])
    g5 = 1j * gamma[0] @ gamma[1] @ gamma[2] @ gamma[3]
    return gamma, g5


def _slash(p: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """p̸ = γ^μ p_μ: (N, 4) → (N, 4, 4)."""
    lower = (p * _METRIC).to(torch.complex128)
    return torch.einsum("nm,mab->nab", lower, gamma)


def ee_to_ww_sm(p_eminus: torch.Tensor, p_eplus: torch.Tensor, k_wminus: torch.Tensor, k_wplus: torch.Tensor, *,
                e: float, sw: float, mw: float, mz: float, wz: float) -> torch.Tensor:
    """Averaged |M|² of e⁻e⁺ → W⁻W⁺ in the SM at tree level (massless electron, unitary gauge).

    Three diagrams (e.g. Hagiwara, Peccei, Zeppenfeld & Hikasa, Nucl. Phys. B 282 (1987) 253, § 2, with
    their SM couplings g_WWγ = e, g_WWZ = e c_w/s_w):

        M = v̄(p₊) Γ^{μν} u(p₋) ε*_μ(k₋) ε*_ν(k₊),
        Γ^{μν} = (g²/2) γ^ν (p̸₋ − k̸₋) γ^μ P_L / t
                 + Σ_{V=γ,Z} g_V γ_α (c_L^V P_L + c_R^V P_R) V^{αμν} / D_V,
        V^{αμν} = g^{αμ}(2k₋ + k₊)^ν + g^{μν}(k₊ − k₋)^α − g^{να}(k₋ + 2k₊)^μ,

    t = (p₋ − k₋)², D_γ = s, D_Z = s − M_Z² + i M_Z Γ_Z, c^γ_{L,R} = −e, c^Z_L = (g/c_w)(−½ + s_w²),
    c^Z_R = (g/c_w) s_w², g = e/s_w.  The relative sign of the ν exchange is the one that cancels the
    growth with s of the longitudinal W amplitudes (checked in the tests: |M|² tends to a constant at
    high energy).  The spin sum is the trace Tr[p̸₊ Γ^{μν} p̸₋ Γ̄^{ρσ}] P_{μρ}(k₋) P_{νσ}(k₊) with
    Γ̄ = γ⁰Γ†γ⁰ and the polarisation sums P_{μρ}(k) = −g_{μρ} + k_μk_ρ/M_W², evaluated numerically with
    explicit Dirac matrices; the average is 1/4.

    Args:
        p_eminus, p_eplus, k_wminus, k_wplus: (N, 4) physical momenta (GeV).
        e, sw: electromagnetic coupling and sin θ_w of the model.
        mw, mz, wz: W mass, Z mass and Z width (GeV).

    Returns:
        (N,) averaged |M|².
    """
    gamma, g5 = _dirac_matrices()
    one = torch.eye(4, dtype=torch.complex128)
    pl, pr = (one - g5) / 2, (one + g5) / 2
    cw = math.sqrt(1.0 - sw * sw)
    g = e / sw
    metric = torch.diag(_METRIC).to(torch.complex128)
    km, kp = k_wminus.to(torch.complex128), k_wplus.to(torch.complex128)
    s = minkowski_dot(p_eminus + p_eplus, p_eminus + p_eplus).to(torch.complex128)
    q = p_eminus - k_wminus
    t = minkowski_dot(q, q).to(torch.complex128)
    # t-channel ν: Γ_t^{μν} = (g²/2) γ^ν q̸ γ^μ P_L / t
    qs = _slash(q, gamma)
    gam_t = (g * g / 2) * torch.einsum("vab,nbc,mcd,de->nmvae", gamma, qs, gamma, pl) / t[:, None, None, None, None]
    # s-channel: vertex tensor V^{αμν} (N, 4, 4, 4), contravariant
    a_mu = 2 * km + kp
    v = (torch.einsum("am,nv->namv", metric, a_mu)
         + torch.einsum("mv,na->namv", metric, kp - km)
         - torch.einsum("va,nm->namv", metric, km + 2 * kp))
    gamma_lower = torch.einsum("ab,bcd->acd", metric, gamma)  # γ_α
    gam_s = torch.zeros_like(gam_t)
    couplings = (
        (e, -e, -e, s),
        (g * cw, g / cw * (-0.5 + sw * sw), g / cw * sw * sw, s - mz * mz + 1j * mz * wz),
    )
    for g_v, c_l, c_r, d in couplings:
        chiral = c_l * pl + c_r * pr
        current = torch.einsum("acd,de->ace", gamma_lower, chiral)  # γ_α (c_L P_L + c_R P_R)
        gam_s = gam_s + g_v * torch.einsum("namv,ace->nmvce", v, current) / d[:, None, None, None, None]
    big = gam_t + gam_s  # (N, μ, ν, 4, 4)
    bar = torch.einsum("ab,nmvcb,cd->nmvad", gamma[0], big.conj(), gamma[0])  # γ⁰ Γ† γ⁰
    ps_p, ps_m = _slash(p_eplus, gamma), _slash(p_eminus, gamma)
    trace = torch.einsum("nab,nmvbc,ncd,nrsda->nmvrs", ps_p, big, ps_m, bar)  # Tr[p̸₊ Γ^{μν} p̸₋ Γ̄^{ρσ}]

    def pol_sum(k):
        lower = k * _METRIC.to(torch.complex128)
        return -metric[None] + torch.einsum("nm,nr->nmr", lower, lower) / (mw * mw)

    total = torch.einsum("nmvrs,nmr,nvs->n", trace, pol_sum(km), pol_sum(kp))
    return total.real / 4.0
