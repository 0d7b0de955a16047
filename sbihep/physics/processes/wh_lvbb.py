"""q q̄′ → W±* → W± h: on shell (``QQbarToWH``) and with W → e ν, h → b b̄ (``WHToLNuBB``),
with the operators cHW, cHWtil and cHq3.

Slot order
----------
``WHToLNuBB`` (quark, antiquark, charged lepton, neutrino, b, b̄):

    subprocess "W+":  u(p1) d̄(p2) → e⁺(p3) ν_e(p4) b(p5) b̄(p6)     (also u s̄, c d̄, c s̄)
    subprocess "W-":  d(p1) ū(p2) → e⁻(p3) ν̄_e(p4) b(p5) b̄(p6)     (also s ū, d c̄, s c̄)

``QQbarToWH`` (quark, antiquark, W, h): u(p1) d̄(p2) → W⁺(p3) h(p4), and d ū → W⁻ h.

Quarks and leptons are massless, the b quark has mass ``sm.m_b``.  One lepton flavour (e).

Standard Model
--------------
With the Warsaw-basis covariant derivative D_μ = ∂_μ + i g (τ^I/2) W^I_μ + …, W^±_μ = (W¹_μ ∓ i W²_μ)/√2
and H = (0, (v + h)/√2) in unitary gauge,

    L ⊃ −(g/√2) [ V_ud W⁺_μ ū γ^μ P_L d + W⁺_μ ν̄ γ^μ P_L e + h.c. ]
        + g m_W h W⁺_μ W^{−μ} − (m̄_b/v) h b̄ b,

g = 2 m_W/v from the inputs {G_F, m_W, m_Z}.  Feynman rules (vertex = i × coefficient):
q q̄′ W: −i (g/√2) γ^μ P_L (the CKM element is left to the channel factor |V|²); h W W: i g m_W g^{μν};
h b b̄: −i m̄_b/v, with m̄_b = ``sm.m_b_yukawa`` (MS-bar m_b(m_H)) in the coupling and the
pole-like ``sm.m_b`` in kinematics and spinors.  Propagators: W in unitary gauge with the fixed input width,
i(−g^{μν} + q^μ q^ν/m_W²)/(q² − m_W² + i m_W Γ_W) (the q^μ q^ν terms vanish against the conserved
massless currents), h: i/(p² − m_h² + i m_h Γ_h).

Operators (L ⊃ (c/Λ²) O, Λ = 1 TeV)
-----------------------------------
* O_HW = (H†H) W^I_μν W^{Iμν}.  With W¹W¹ + W²W² = 2 W⁺W⁻ for the abelian parts,
  L ⊃ (2 c_HW v/Λ²) h W⁺_μν W^{−μν} (+ h², and non-abelian terms with more gauge fields, not
  needed).  With k₊, k₋ the incoming momenta of the W⁺ (index μ) and W⁻ (index ν) lines the
  vertex is

      −4i (c_HW v/Λ²) [(k₊·k₋) g^{μν} − k₋^μ k₊^ν]       (``helas.vvs_field_strength_amplitude``).

  The v² part of O_HW renormalises the W kinetic term; the field and coupling redefinition that
  restores its canonical form keeps g W_μ fixed, so in the m_W input scheme the W mass, the
  fermion–W vertices, G_F and the SM h W W vertex g m_W are all unchanged at O(c_HW).
* O_HWtil = (H†H) W̃^I_μν W^{Iμν}, W̃_μν = ½ ε_μνρσ W^{ρσ} (ε_{0123} = +1):
  L ⊃ (c_HWtil v/Λ²) h ε_μνρσ W^{+μν} W^{−ρσ} + …, vertex

      −4i (c_HWtil v/Λ²) ε_{μνρσ} k₊^μ ε₊^ν k₋^ρ ε₋^σ     (``helas.vvs_dual_field_strength_amplitude``).

  Both field-strength vertices are bilinear in the momenta, so the momentum directions matter:
  in q q̄′ → W* → W h the s-channel W enters the vertex with momentum q = p1 + p2, and the outgoing
  W (momentum k) counts as an incoming W of the opposite charge with momentum −k.  The vertices
  are symmetric under exchanging the two (momentum, polarisation) pairs, so W⁺ and W⁻ production
  use the same expression with (q, s-channel current) and (−k, outgoing W).
* O_Hq3 = (H† i D↔^I_μ H)(q̄ τ^I γ^μ q) (flavour universal, quark doublets in the up-quark mass
  basis so that the charged current carries the CKM element as in the SM).  In unitary gauge
  H† i D↔^I_μ H = −g W^I_μ (v + h)²/2 for I = 1, 2 and Σ_{I=1,2} W^I q̄ τ^I γ q = √2 (W⁺ ū γ d + h.c.), so

      L ⊃ −(g/√2)(c_Hq3/Λ²)(v + h)² (V_ud W⁺_μ ū γ^μ P_L d + h.c.):

  a correction −i (g/√2)(c_Hq3 v²/Λ²) γ^μ P_L to the q q̄′ W vertex and a contact vertex
  q q̄′ W h, −i (g/√2)(2 c_Hq3 v/Λ²) γ^μ P_L, whose amplitude grows with energy relative to the
  W* exchange.  Both insertions belong to the single cHq3 component (linear in c).

No input-parameter shifts arise from these three operators in the {G_F, m_W, m_Z} scheme; the
widths Γ_W and Γ_h are kept at their input values.  Every amplitude component has exactly one
operator insertion.

Amplitude
---------
With J^μ = v̄(p2) γ^μ P_L u(p1) the quark current, the diagram is

    iM = (−i g/√2) J_α · P_W^{αβ}(q) · V_{βγ}(q, −k) · X^γ · S,

V the h W W vertex of the component (SM, O_HW, O_HWtil, or the O_Hq3-corrected SM vertex) and, for
O_Hq3, plus the contact diagram (−i (g/√2)(2v/Λ²)) J_γ X^γ S.  For the on-shell W, X = ε*(k, λ)
and S = 1.  For W → e ν, X = P_W^{γδ}(k) · (−i g/√2) L_δ with L^δ = ū γ^δ P_L v the lepton
current, and S = [i/(p_h² − m_h² + i m_h Γ_h)] · [−i (m̄_b/v) ū(p5) v(p6)].  S is common to every
component and its b-spin sum factorises exactly into ``Amplitudes.scale``:

    scale = N_c (m̄_b/v)² · 4 (p5·p6 − m_b²) / |p_h² − m_h² + i m_h Γ_h|²     (N_c = 3 b colours).

For massless quarks and leptons coupling through V−A currents only λ(q) = −1, λ(q̄′) = +1,
λ(fermion out) = −1, λ(antifermion out) = +1 contribute, so ``WHToLNuBB`` has one helicity
configuration (H = 1) and ``QQbarToWH`` three (the W helicities −1, 0, +1).  Colour: one flow,
Σ|δ_ij|² = 3, average 1/(4·9).
"""

from __future__ import annotations

import math

import torch

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics import helas
from sbihep.physics.couplings import DEFAULT_SM, LAMBDA_GEV, SMInputs
from sbihep.physics.lorentz import dot
from sbihep.physics.phasespace import Resonance, two_resonance_four_body, two_to_two
from sbihep.physics.processes.base import Amplitudes, PartonicChannel, Process

__all__ = [
    "WHToLNuBB",
    "QQbarToWH",
    "LINESHAPES",
    "SUBPROCESS_PARTICLES",
    "W_HELICITIES",
    "left_weyl_spinor",
    "left_current",
    "epsilon_contraction",
]

#: Allowed values of ``WHToLNuBB(lineshape=...)``.
LINESHAPES = ("breit-wigner", "narrow")

#: The particles in the momentum slots of each subprocess of :class:`WHToLNuBB`.
SUBPROCESS_PARTICLES: dict[str, tuple[str, ...]] = {
    "W+": ("u", "d~", "e+", "ve", "b", "b~"),
    "W-": ("d", "u~", "e-", "ve~", "b", "b~"),
}

#: W helicities of :class:`QQbarToWH`, in the order of the H axis of its amplitudes.
W_HELICITIES = (-1, 0, 1)

_UP_QUARKS = (("u", 2), ("c", 4))
_DOWN_QUARKS = (("d", 1), ("s", 3))
_N_COLOURS = 3


def _check_charge(name: str, charge) -> int:
    if isinstance(charge, bool) or charge not in (1, -1, 0):
        raise InvalidInputError(f"{name}: charge must be +1 (W+), -1 (W-) or 0 (both), got {charge!r}")
    return int(charge)


def _quark_channels(sm: SMInputs, charge: int) -> tuple[PartonicChannel, ...]:
    """Every up/down quark–antiquark pair among u, c, d, s, both beam orders, weighted by |V_ij|²."""
    charges = (1, -1) if charge == 0 else (charge,)
    channels = []
    for sign in charges:
        subprocess = "W+" if sign == 1 else "W-"
        for up, up_pid in _UP_QUARKS:
            for down, down_pid in _DOWN_QUARKS:
                factor = sm.ckm(up, down) ** 2
                quark, antiquark = (up_pid, -down_pid) if sign == 1 else (down_pid, -up_pid)
                channels.append(PartonicChannel(quark, antiquark, subprocess, factor, swap=False))
                channels.append(PartonicChannel(antiquark, quark, subprocess, factor, swap=True))
    return tuple(channels)


def _partons(sqrt_s: torch.Tensor) -> torch.Tensor:
    """Massless partons along ±z in their centre-of-mass frame: (N,) → (N, 2, 4)."""
    half = sqrt_s / 2.0
    zero = torch.zeros_like(half)
    return torch.stack([torch.stack([half, zero, zero, half], -1), torch.stack([half, zero, zero, -half], -1)], 1)


# --------------------------------------------------------------------------------------
# Fast massless V−A currents and the Levi-Civita contraction (hot path)
# --------------------------------------------------------------------------------------
def left_weyl_spinor(p: torch.Tensor) -> torch.Tensor:
    """ξ(p) with ξ ξ† = p_μ σ^μ = E − p⃗·σ⃗ for a massless momentum p (…, 4) → (…, 2) complex.

    In the chiral representation ξ is the left-chiral block of u(p, −) and, up to a phase, of
    v(p, +); ξ†ξ = 2E.  The phase differs from the HELAS spinors of :mod:`sbihep.physics.helas`,
    which is harmless here because every amplitude component is linear in each current, so a phase
    per event and current cancels in every bilinear of the EFT decomposition.  Two forms are used,
    each regular away from one half of the z axis:  (p_x − i p_y, −(E + p_z))/√(E + p_z) for
    p_z ≥ 0 and (E − p_z, −(p_x + i p_y))/√(E − p_z) otherwise.
    """
    energy, px, py, pz = p.unbind(-1)
    upper_half = pz >= 0
    root = torch.sqrt(torch.where(upper_half, energy + pz, energy - pz))
    first = torch.where(upper_half, torch.complex(px, -py), torch.complex(energy - pz, torch.zeros_like(pz)))
    second = torch.where(upper_half, torch.complex(-(energy + pz), torch.zeros_like(pz)), torch.complex(-px, -py))
    return torch.stack([first, second], -1) / root[..., None]


def left_current(p_row: torch.Tensor, p_column: torch.Tensor) -> torch.Tensor:
    """ξ(p_row)† σ̄^μ ξ(p_column), σ̄^μ = (1, −σ⃗), for massless momenta (…, 4) each → (…, 4) complex.

    Equals, up to a phase per event, the V−A current ψ̄_row γ^μ P_L ψ_column of the one helicity pair
    that couples: v̄(p_row, +) γ^μ P_L u(p_column, −) for an incoming antifermion–fermion pair and
    ū(p_row, −) γ^μ P_L v(p_column, +) for an outgoing fermion–antifermion pair.
    """
    a, b = left_weyl_spinor(p_row).conj(), left_weyl_spinor(p_column)
    a0b0, a0b1 = a[..., 0] * b[..., 0], a[..., 0] * b[..., 1]
    a1b0, a1b1 = a[..., 1] * b[..., 0], a[..., 1] * b[..., 1]
    return torch.stack([a0b0 + a1b1, -(a0b1 + a1b0), 1j * (a0b1 - a1b0), a1b1 - a0b0], -1)


def epsilon_contraction(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """ε_{μνρσ} a^μ b^ν c^ρ d^σ (ε_{0123} = +1) for real a, c and complex b, d (…, 4) → (…).

    The determinant of the rows (a, b, c, d) expanded in the 2×2 minors of the rows a, c (Laplace):
    Σ_{i<j} (−1)^{i+j} (a_i c_j − a_j c_i)(b_k d_l − b_l d_k), (k, l) the complement of (i, j).
    Same value as :func:`sbihep.physics.lorentz.levi_civita`, with six products instead of a 4×4
    determinant.
    """

    def minor(x, y, i, j):
        return x[..., i] * y[..., j] - x[..., j] * y[..., i]

    return (
        -minor(a, c, 0, 1) * minor(b, d, 2, 3)
        + minor(a, c, 0, 2) * minor(b, d, 1, 3)
        - minor(a, c, 0, 3) * minor(b, d, 1, 2)
        - minor(a, c, 1, 2) * minor(b, d, 0, 3)
        + minor(a, c, 1, 3) * minor(b, d, 0, 2)
        - minor(a, c, 2, 3) * minor(b, d, 0, 1)
    )


class _WHProduction(Process):
    """Shared pieces of q q̄′ → W* → W h: channels, the quark current and the h W W vertex."""

    operators = ("cHW", "cHWtil", "cHq3")
    collider = "pp"

    def __init__(self, sm: SMInputs = DEFAULT_SM, charge: int = 0) -> None:
        super().__init__(sm)
        self.charge = _check_charge(self.name, charge)

    def default_subprocess(self) -> str:
        return "W-" if self.charge == -1 else "W+"

    def channels(self) -> tuple[PartonicChannel, ...]:
        """Quark–antiquark pairs among u, c, d, s for the selected charge(s), both beam orders,
        factor |V_ij|²; the amplitude takes the quark in slot 1 (``swap=True`` when beam 1 gives
        the antiquark)."""
        return _quark_channels(self.sm, self.charge)

    def _check_subprocess(self, subprocess: str | None) -> str:
        subprocess = self.default_subprocess() if subprocess is None else subprocess
        known = {c.subprocess for c in self.channels()}
        if subprocess not in known:
            raise UnknownParameterError(f"{self.name}: unknown subprocess {subprocess!r}; known: {sorted(known)}")
        return subprocess

    @staticmethod
    def quark_current(momenta: torch.Tensor) -> torch.Tensor:
        """J^μ = v̄(p2, +) γ^μ P_L u(p1, −) (up to a phase per event), momenta (N, ≥2, 4) → (N, 4) complex."""
        return left_current(momenta[:, 1], momenta[:, 0])

    def hww_diagrams(
        self, quark_current: torch.Tensor, q: torch.Tensor, w_vector: torch.Tensor, k: torch.Tensor
    ) -> torch.Tensor:
        """iM of q q̄′ → W*(q) → W(k) h for each component, with the Higgs leg amputated (S = 1).

        The s-channel line gives P_W(q)·(−i g/√2) J = (−g/√2) J/(q² − m_W² + i m_W Γ_W) ≡ c J (q·J = 0),
        and the h W W vertices with k₊ = q, ε₊ = c J, k₋ = −k, ε₋ = X are

            SM      i g m_W (ε₊·ε₋)                                        (helas.vvs_amplitude)
            cHW     i G [(k₊·k₋)(ε₊·ε₋) − (k₊·ε₋)(k₋·ε₊)],  G = −4v/Λ²      (vvs_field_strength_amplitude)
            cHWtil  i G ε_{μνρσ} k₊^μ ε₊^ν k₋^ρ ε₋^σ                        (vvs_dual_field_strength_amplitude)
            cHq3    (v²/Λ²) × SM  +  contact (−i (g/√2)(2v/Λ²)) J·X,

        written out here in Lorentz invariants of J, X, q, k.

        Args:
            quark_current: J^μ (N, 4) complex, without coupling.
            q: s-channel momentum p1 + p2 (N, 4), GeV.
            w_vector: X^γ (N, H, 4) complex, what the outgoing W's vertex index is contracted with
                (ε* of an on-shell W for each helicity, or the propagated lepton current); X·k = 0.
            k: momentum of the outgoing W (N, 4), GeV.

        Returns:
            (4, N, H) complex: SM, cHW, cHWtil, cHq3 (each at unit coefficient, c/Λ² = 1 TeV⁻²).
        """
        sm = self.sm
        g_w = -sm.g / math.sqrt(2.0)  # L ⊃ g_w W_μ q̄ γ^μ P_L q′
        inv_lambda2 = 1.0 / LAMBDA_GEV**2
        q2 = dot(q, q)
        s_channel = g_w / torch.complex(q2 - sm.m_W**2, torch.full_like(q2, sm.m_W * sm.width_W))
        current, q3, k3 = quark_current[:, None, :], q[:, None, :], k[:, None, :]
        j_x = dot(current, w_vector)
        q_x = dot(q3, w_vector)
        k_j = dot(k, quark_current)[:, None]
        q_k = dot(q, k)[:, None]
        # ε(k₊, ε₊, k₋, ε₋) = ε(q, cJ, −k, X) = −c ε(q, J, k, X)
        eps = epsilon_contraction(q3, current, k3, w_vector)
        c = s_channel[:, None]
        g_field_strength = -4.0 * sm.vev * inv_lambda2
        sm_diagram = 1j * (sm.g * sm.m_W) * c * j_x
        chw = 1j * g_field_strength * c * (-q_k * j_x + q_x * k_j)
        chwtil = -1j * g_field_strength * c * eps
        contact = 1j * g_w * (2.0 * sm.vev * inv_lambda2) * j_x
        chq3 = sm.vev**2 * inv_lambda2 * sm_diagram + contact
        return torch.stack([sm_diagram, chw, chwtil, chq3])


class WHToLNuBB(_WHProduction):
    """q q̄′ → W±* → W±(→ e ν) h(→ b b̄) with cHW, cHWtil, cHq3 and full spin correlations.

    See the module docstring for the Lagrangian, Feynman rules and slot order.

    Args:
        sm: Standard Model inputs.
        charge: +1 (W⁺ channels only), −1 (W⁻ only) or 0 (both) — what :meth:`channels` lists.
        lineshape: treatment of the W → e ν and h → b b̄ resonances (the s-channel W* always has its
            full Breit–Wigner propagator):

            * ``"breit-wigner"`` — the invariant masses m_eν and m_bb are sampled by
              :meth:`phase_space` over their whole kinematic range, and |M|² contains the full
              propagators |1/(k² − m_W² + i m_W Γ_W)|² and |1/(p_h² − m_h² + i m_h Γ_h)|².
              :meth:`threshold` is 2 m_b.
            * ``"narrow"`` — both resonances are exactly on shell (k² = m_W², p_h² = m_h²) and the
              phase-space weight carries π/(M Γ)/(2π) = 1/(2MΓ) for each, i.e. ∫ds/2π |propagator|².
              |M|² then does NOT contain these two |propagator|²: the W → e ν propagator is replaced
              by the unit-modulus factor −i (its phase at the pole; common to all components) and
              the h propagator is left out of ``scale`` (so |M|² has dimension GeV⁴ instead of
              GeV⁻⁴, and the weight GeV⁻⁴ instead of GeV⁴).  |M|² × weight, hence σ, keeps its
              meaning: σ̂ = σ̂(q q̄′ → W h) · BR(W → e ν) · BR(h → b b̄) exactly, with the input widths.
              :meth:`threshold` is m_W + m_h.
    """

    name = "wh_lvbb"
    description = "p p -> W+- h -> e nu b b~ (q qbar' annihilation) with cHW, cHWtil, cHq3"
    particles = SUBPROCESS_PARTICLES["W+"]
    n_random = 8

    def __init__(self, sm: SMInputs = DEFAULT_SM, charge: int = 0, lineshape: str = "breit-wigner") -> None:
        super().__init__(sm, charge)
        if lineshape not in LINESHAPES:
            raise InvalidInputError(f"{self.name}: lineshape must be one of {LINESHAPES}, got {lineshape!r}")
        self.lineshape = lineshape
        if self.charge == -1:
            self.particles = SUBPROCESS_PARTICLES["W-"]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(charge={self.charge:+d}, lineshape={self.lineshape!r}, "
            f"operators={list(self.operators)})"
        )

    # ---- kinematics ------------------------------------------------------------------------
    def lepton_charge(self, subprocess: str | None = None) -> int:
        """+1 for the W⁺ subprocess (e⁺), −1 for W⁻ (e⁻)."""
        return 1 if self._channel(subprocess) == "W+" else -1

    def roles(self, subprocess: str | None = None) -> tuple[str, ...]:
        """(q, qbar, l, v, b, bbar) for both W charges: "l" is the charged lepton."""
        return ("q", "qbar", "l", "v", "b", "bbar")

    def external_masses(self) -> tuple[float, ...]:
        m_b = self.sm.m_b
        return (0.0, 0.0, 0.0, 0.0, m_b, m_b)

    def threshold(self) -> float:
        """2 m_b in ``"breit-wigner"`` mode (m_eν ≥ 0, m_bb ≥ 2 m_b); m_W + m_h in ``"narrow"`` mode (GeV)."""
        if self.lineshape == "narrow":
            return self.sm.m_W + self.sm.m_H
        return 2.0 * self.sm.m_b

    def resonances(self) -> tuple[Resonance, Resonance]:
        """The W → e ν and h → b b̄ resonances handed to :func:`two_resonance_four_body`."""
        sm = self.sm
        return (
            Resonance(sm.m_W, sm.width_W, 0.0, 0.0, self.lineshape),
            Resonance(sm.m_H, sm.width_H, sm.m_b, sm.m_b, self.lineshape),
        )

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """r (N, 8) → momenta (N, 6, 4) in the partonic CM frame (quark slot along +z) and weight (N,).

        Uses :func:`~sbihep.physics.phasespace.two_resonance_four_body` with the narrow h → (b, b̄)
        sampled first and W → (e, ν) second, in the mode given by ``lineshape`` (see the class
        docstring for what the "narrow" weight contains).  The order matters for efficiency: below the
        W h threshold the cross section comes from an on-shell h with an off-shell W, which the
        W-first order reaches only through the 4 MeV-wide Higgs tail (weights ≈ 100× the mean).
        Weight in GeV⁴ ("breit-wigner") or GeV⁻⁴ ("narrow": each 1/(2MΓ) replaces ds/2π).
        """
        w_resonance, higgs_resonance = self.resonances()
        decays, weight = two_resonance_four_body(r, sqrt_s_hat, higgs_resonance, w_resonance)
        decays = decays[:, [2, 3, 0, 1]]  # (b, b̄, e, ν) → slot order (e, ν, b, b̄)
        sqrt_s = torch.as_tensor(sqrt_s_hat, dtype=decays.dtype, device=decays.device).expand(decays.shape[0])
        return torch.cat([_partons(sqrt_s), decays], dim=1), weight

    # ---- amplitudes ------------------------------------------------------------------------
    @staticmethod
    def lepton_current(momenta: torch.Tensor, subprocess: str) -> torch.Tensor:
        """L^μ = ū(fermion, −) γ^μ P_L v(antifermion, +) of the W decay, up to a phase per event.

        The fermion is ν (slot 4) and the antifermion e⁺ (slot 3) for "W+"; e⁻ (slot 3) and ν̄
        (slot 4) for "W-".  Momenta (N, 6, 4) → (N, 4) complex.
        """
        p3, p4 = momenta[:, 2], momenta[:, 3]
        return left_current(p4, p3) if subprocess == "W+" else left_current(p3, p4)

    def decay_w_vector(self, lepton_current: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """X^γ = P_W^{γδ}(k) (−i g/√2) L_δ = (−g/√2) L^γ f(k²), (N, 4) → (N, 4) complex.

        f = 1/(k² − m_W² + i m_W Γ_W) in "breit-wigner" mode; in "narrow" mode f = −i, the phase of
        that factor at k² = m_W² (its modulus is in the phase-space weight).  The k^γ k^δ/m_W² part of
        the unitary-gauge numerator vanishes because k·L = 0 for massless leptons.
        """
        sm = self.sm
        g_w = -sm.g / math.sqrt(2.0)
        if self.lineshape == "narrow":
            return (-1j * g_w) * lepton_current
        k2 = dot(k, k)
        factor = g_w / torch.complex(k2 - sm.m_W**2, torch.full_like(k2, sm.m_W * sm.width_W))
        return factor[:, None] * lepton_current

    def higgs_decay_scale(self, momenta: torch.Tensor) -> torch.Tensor:
        """N_c Σ_spins |S|² of the h → b b̄ line (see the module docstring), (N,) in GeV⁻² or, "narrow", GeV²."""
        sm = self.sm
        p5, p6 = momenta[:, 4], momenta[:, 5]
        trace = 4.0 * (dot(p5, p6) - sm.m_b**2)  # Tr[(p̸5 + m_b)(p̸6 − m_b)]
        value = _N_COLOURS * (sm.m_b_yukawa / sm.vev) ** 2 * trace
        if self.lineshape == "breit-wigner":
            p_h = p5 + p6
            value = value / ((dot(p_h, p_h) - sm.m_H**2) ** 2 + (sm.m_H * sm.width_H) ** 2)
        return value

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        """Components (4, N, 1, 1): SM, cHW, cHWtil, cHq3; the h → b b̄ line is in ``scale``."""
        subprocess = self._check_subprocess(subprocess)
        q = momenta[:, 0] + momenta[:, 1]
        k = momenta[:, 2] + momenta[:, 3]
        w_vector = self.decay_w_vector(self.lepton_current(momenta, subprocess), k)
        diagrams = self.hww_diagrams(self.quark_current(momenta), q, w_vector[:, None, :], k)
        components = helas.amplitude_from_diagram(diagrams)[..., None]
        return Amplitudes(
            components,
            colour_matrix=torch.full((1, 1), float(_N_COLOURS), dtype=torch.float64),
            average=1.0 / (4.0 * _N_COLOURS**2),
            scale=self.higgs_decay_scale(momenta),
        )


class QQbarToWH(_WHProduction):
    """q q̄′ → W± h with an on-shell external W (3 helicities) and a stable h; cHW, cHWtil, cHq3.

    Slot order (quark, antiquark, W, h); subprocess "W+" is u d̄ → W⁺ h, "W-" is d ū → W⁻ h.  Same
    vertices as :class:`WHToLNuBB` (module docstring).  The helicity axis of the amplitudes runs
    over the W helicities ``W_HELICITIES`` = (−1, 0, +1).

    Args:
        sm: Standard Model inputs.
        charge: +1, −1 or 0 (both), as for :class:`WHToLNuBB`.
    """

    name = "wh_onshell"
    description = "p p -> W+- h (q qbar' annihilation, on-shell W and h) with cHW, cHWtil, cHq3"
    particles = ("u", "d~", "W+", "h")
    n_random = 2

    def __init__(self, sm: SMInputs = DEFAULT_SM, charge: int = 0) -> None:
        super().__init__(sm, charge)
        if self.charge == -1:
            self.particles = ("d", "u~", "W-", "h")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(charge={self.charge:+d}, operators={list(self.operators)})"

    def roles(self, subprocess: str | None = None) -> tuple[str, ...]:
        """(q, qbar, W, h) for both W charges."""
        return ("q", "qbar", "W", "h")

    def external_masses(self) -> tuple[float, ...]:
        return (0.0, 0.0, self.sm.m_W, self.sm.m_H)

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """r (N, 2) → momenta (N, 4, 4) and weight Φ₂ (N,); see :func:`~sbihep.physics.phasespace.two_to_two`."""
        return two_to_two(r, sqrt_s_hat, self.sm.m_W, self.sm.m_H)

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        """Components (4, N, 3, 1): SM, cHW, cHWtil, cHq3 for W helicities (−1, 0, +1)."""
        self._check_subprocess(subprocess)
        q, k = momenta[:, 0] + momenta[:, 1], momenta[:, 2]
        polarisations = torch.stack(
            [helas.vector_polarisation(k, lam, self.sm.m_W, outgoing=True) for lam in W_HELICITIES], dim=1
        )
        diagrams = self.hww_diagrams(self.quark_current(momenta), q, polarisations, k)
        components = helas.amplitude_from_diagram(diagrams)[..., None]
        return Amplitudes(
            components,
            colour_matrix=torch.full((1, 1), float(_N_COLOURS), dtype=torch.float64),
            average=1.0 / (4.0 * _N_COLOURS**2),
        )
