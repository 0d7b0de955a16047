"""q q̄′ → W± → e ν (charged-current Drell–Yan) with the operators cHl3 and clq3.

Slot order (incoming fermion, incoming antifermion, outgoing fermion, outgoing antifermion):

    subprocess "W+":  u(p1) d̄(p2) → ν_e(p3) e⁺(p4)     (also u s̄, c d̄, c s̄)
    subprocess "W-":  d(p1) ū(p2) → e⁻(p3) ν̄_e(p4)     (also s ū, d c̄, s c̄)

All fermions are massless.  One lepton flavour (e) is generated.

Standard Model
--------------
With the Warsaw-basis covariant derivative D_μ = ∂_μ + i g (τ^I/2) W^I_μ + …, the fermion kinetic
terms give, with W^±_μ = (W¹_μ ∓ i W²_μ)/√2,

    L ⊃ −(g/√2) [ V_ud W⁺_μ ū γ^μ P_L d + W⁺_μ ν̄ γ^μ P_L e + h.c. ],

and g is fixed by the inputs {G_F, m_W, m_Z}: g² = 4√2 G_F m_W².  The s-channel W has the
Breit–Wigner propagator i(−g^{μν} + q^μ q^ν/m_W²)/(ŝ − m_W² + i m_W Γ_W) with the fixed input width
(the q^μ q^ν term drops out between conserved massless currents).

Operators (L ⊃ (c/Λ²) O, Λ = 1 TeV, flavour-universal coefficients)
--------------------------------------------------------------------
* O_Hl3 = (H† i D↔^I_μ H)(l̄ τ^I γ^μ l).  In unitary gauge, H = (0, (v + h)/√2),
  H† i D↔^I_μ H = −g W^I_μ (v + h)²/2 for I = 1, 2, so

      L ⊃ −(g/√2) (c_Hl3 v²/Λ²)(1 + h/v)² (W⁺_μ ν̄ γ^μ P_L e + h.c.):

  the W–lepton vertex becomes −(g/√2)(1 + c_Hl3 v²/Λ²).  The same operator shifts the muon-decay
  amplitude, which has two W–lepton vertices, so the measured G_F = g²(1 + 2 c_Hl3 v²/Λ²)/(4√2 m_W²)
  and, at fixed inputs, g² = 4√2 G_F m_W² (1 − 2 c_Hl3 v²/Λ²).  At linear order the W-exchange
  amplitude is therefore multiplied by 1 + (1 − 2) c_Hl3 v²/Λ², and the c_Hl3 component is
  M^{Hl3} = −(v²/Λ²) M⁰ exactly (v = (√2 G_F)^(−1/2)).  c_ll1, which also shifts G_F, is not a
  parameter of this process; the W width is kept at its input value (no SMEFT shift of Γ_W).
* O_lq^(3) = (l̄ γ_μ τ^I l)(q̄ γ^μ τ^I q).  With Σ_I τ^I_ab τ^I_cd = 2 δ_ad δ_cb − δ_ab δ_cd its
  charged-current part is 2[(ν̄ γ_μ P_L e)(d̄ γ^μ P_L u) + h.c.].  The quark doublets are taken in the
  up-quark mass basis, q_i = (u_Li, V_ij d_Lj), so with a flavour-universal coefficient

      L ⊃ (2 c_lq3/Λ²) V*_ud (ν̄ γ_μ P_L e)(d̄ γ^μ P_L u) + h.c.,

  carrying the same CKM factor as the SM vertex.  This contact term grows with energy relative to
  the W exchange.

Amplitude
---------
With J_q^μ = v̄(p2) γ^μ P_L u(p1) and J_ℓ^μ = ū(p3) γ^μ P_L v(p4) the Feynman rules give

    M = [ (g²/2)/(ŝ − m_W² + i m_W Γ_W) · (1 − c_Hl3 v²/Λ²) + 2 c_lq3/Λ² ] · J_q·J_ℓ · δ_ij,

(the CKM element is left to the channel factor |V_ij|²).  For massless fermions only the
left-handed quark, right-handed antiquark, left-handed fermion and right-handed antifermion
helicities contribute: one helicity configuration, one colour flow (Σ|δ_ij|² = 3), average 1/4·1/9.
"""

from __future__ import annotations

import math

import torch

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics import helas
from sbihep.physics.couplings import DEFAULT_SM, LAMBDA_GEV, SMInputs
from sbihep.physics.lorentz import dot
from sbihep.physics.phasespace import two_to_two
from sbihep.physics.processes.base import Amplitudes, PartonicChannel, Process

__all__ = ["WToLNu", "SUBPROCESS_PARTICLES"]

#: The particles in the four momentum slots of each subprocess.
SUBPROCESS_PARTICLES: dict[str, tuple[str, str, str, str]] = {
    "W+": ("u", "d~", "ve", "e+"),
    "W-": ("d", "u~", "e-", "ve~"),
}

# The single non-vanishing helicity configuration of each slot (V−A currents, massless fermions).
_HELICITY_IN_FERMION, _HELICITY_IN_ANTIFERMION = -1, +1
_HELICITY_OUT_FERMION, _HELICITY_OUT_ANTIFERMION = -1, +1

_UP_QUARKS = (("u", 2), ("c", 4))
_DOWN_QUARKS = (("d", 1), ("s", 3))
_N_COLOURS = 3


class WToLNu(Process):
    """q q̄′ → W± → e ν with cHl3 and clq3 (see the module docstring for the Lagrangian).

    Args:
        sm: Standard Model inputs.
        charge: +1 (W⁺ only), −1 (W⁻ only) or 0 (both) — which channels :meth:`channels` lists.
        m_ll_min: smallest lepton-pair invariant mass (GeV) for hadronic integration, > 0; it is
            what :meth:`threshold` returns (the massless final state itself has no threshold).
    """

    name = "w_lv"
    description = "p p -> W+- -> e nu (q qbar' annihilation) with cHl3 and clq3"
    particles = SUBPROCESS_PARTICLES["W+"]
    operators = ("cHl3", "clq3")
    collider = "pp"
    n_random = 2

    def __init__(self, sm: SMInputs = DEFAULT_SM, charge: int = 0, m_ll_min: float = 10.0) -> None:
        super().__init__(sm)
        if isinstance(charge, bool) or charge not in (1, -1, 0):
            raise InvalidInputError(f"{self.name}: charge must be +1 (W+), -1 (W-) or 0 (both), got {charge!r}")
        if isinstance(m_ll_min, bool) or not isinstance(m_ll_min, (int, float)) or not (
            math.isfinite(m_ll_min) and m_ll_min > 0
        ):
            raise InvalidInputError(f"{self.name}: m_ll_min must be a finite number > 0 GeV, got {m_ll_min!r}")
        self.charge = int(charge)
        self.m_ll_min = float(m_ll_min)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(charge={self.charge:+d}, m_ll_min={self.m_ll_min:g}, "
            f"operators={list(self.operators)})"
        )

    # ---- kinematics and channels ---------------------------------------------------------
    def external_masses(self) -> tuple[float, ...]:
        return (0.0, 0.0, 0.0, 0.0)

    def threshold(self) -> float:
        """The lower cut on √ŝ = m_ℓν (GeV) used for hadronic integration: ``m_ll_min``."""
        return self.m_ll_min

    def lepton_charge(self, subprocess: str | None = None) -> int:
        """+1 for the W⁺ subprocess (e⁺), −1 for W⁻ (e⁻)."""
        return 1 if self._channel(subprocess) == "W+" else -1

    def roles(self, subprocess: str | None = None) -> tuple[str, ...]:
        """(q, qbar, v, l) for W⁺ and (q, qbar, l, v) for W⁻: "l" is the charged lepton."""
        sub = self._channel(subprocess)
        return ("q", "qbar", "v", "l") if sub == "W+" else ("q", "qbar", "l", "v")

    def default_subprocess(self) -> str:
        return "W-" if self.charge == -1 else "W+"

    def channels(self) -> tuple[PartonicChannel, ...]:
        """Every up/down quark–antiquark pair among u, c, d, s, in both beam orders, weighted by |V_ij|².

        The partonic amplitude takes the quark in slot 1; a channel with the antiquark from beam 1
        has ``swap=True``.
        """
        charges = (1, -1) if self.charge == 0 else (self.charge,)
        channels = []
        for charge in charges:
            for up, up_pid in _UP_QUARKS:
                for down, down_pid in _DOWN_QUARKS:
                    factor = self.sm.ckm(up, down) ** 2
                    quark, antiquark = (up_pid, -down_pid) if charge == 1 else (down_pid, -up_pid)
                    subprocess = "W+" if charge == 1 else "W-"
                    channels.append(PartonicChannel(quark, antiquark, subprocess, factor, swap=False))
                    channels.append(PartonicChannel(antiquark, quark, subprocess, factor, swap=True))
        return tuple(channels)

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """r (N, 2) → momenta (N, 4, 4) in the partonic CM frame and weight (N,) = Φ₂ = 1/(8π).

        Column 0 of r gives cosθ = 2r − 1 of particle 3 (ν for W⁺, e⁻ for W⁻) relative to parton 1
        (along +z), column 1 its azimuth; see :func:`~sbihep.physics.phasespace.two_to_two`.
        """
        return two_to_two(r, sqrt_s_hat, 0.0, 0.0)

    # ---- amplitudes ----------------------------------------------------------------------
    def currents(self, momenta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The V−A currents J_q = v̄(p2)γ^μ P_L u(p1) and J_ℓ = ū(p3)γ^μ P_L v(p4), each (N, 4) complex.

        Evaluated for the single contributing helicity configuration; momenta (N, 4, 4) in GeV.
        """
        p1, p2, p3, p4 = momenta.unbind(1)
        quark = helas.incoming_fermion(p1, _HELICITY_IN_FERMION)
        antiquark = helas.incoming_antifermion(p2, _HELICITY_IN_ANTIFERMION)
        fermion = helas.outgoing_fermion(p3, _HELICITY_OUT_FERMION)
        antifermion = helas.outgoing_antifermion(p4, _HELICITY_OUT_ANTIFERMION)
        quark_current = helas.fermion_current(antiquark, quark, 1.0, 0.0)
        lepton_current = helas.fermion_current(fermion, antifermion, 1.0, 0.0)
        return quark_current, lepton_current

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        """Components (3, N, 1, 1): SM W exchange, the cHl3 insertion, the clq3 contact term.

        Both subprocesses share the same amplitude in their slot order (see module docstring).
        """
        if subprocess is not None and subprocess not in SUBPROCESS_PARTICLES:
            raise UnknownParameterError(
                f"{self.name}: unknown subprocess {subprocess!r}; known: {sorted(SUBPROCESS_PARTICLES)}"
            )
        quark_current, lepton_current = self.currents(momenta)
        q = momenta[:, 0] + momenta[:, 1]
        sm = self.sm
        g_w = -sm.g / math.sqrt(2.0)  # L ⊃ g_w W_μ f̄ γ^μ P_L f′ for both vertices
        propagated = helas.vector_propagator(1j * g_w * quark_current, q, sm.m_W, sm.width_W)
        sm_diagram = dot(propagated, 1j * g_w * lepton_current)

        # cHl3: +v²/Λ² from the W–lepton vertex, −2v²/Λ² from the shift of g at fixed G_F.
        v2_over_lambda2 = sm.vev**2 / LAMBDA_GEV**2
        chl3_diagram = (1.0 - 2.0) * v2_over_lambda2 * sm_diagram
        clq3_diagram = 1j * (2.0 / LAMBDA_GEV**2) * dot(lepton_current, quark_current)

        diagrams = torch.stack([sm_diagram, chl3_diagram, clq3_diagram])  # (K, N)
        components = helas.amplitude_from_diagram(diagrams)[:, :, None, None]
        return Amplitudes(
            components,
            colour_matrix=torch.full((1, 1), float(_N_COLOURS), dtype=torch.float64),
            average=1.0 / (4.0 * _N_COLOURS**2),
        )
