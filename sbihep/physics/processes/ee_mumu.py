"""e⁻ e⁺ → μ⁻ μ⁺ through γ and Z exchange, with four-lepton contact operators.

Lagrangian (Λ = 1 TeV, θ = (cll, cle, cee)):

    L ⊃ −e Q f̄ γ^μ f A_μ − g_Z f̄ γ^μ (T³ P_L − Q s_W²) f Z_μ
        + (1/Λ²) [ cll (ē γ_μ P_L e)(μ̄ γ^μ P_L μ)
                   + cle ((ē γ_μ P_L e)(μ̄ γ^μ P_R μ) + (ē γ_μ P_R e)(μ̄ γ^μ P_L μ))
                   + cee (ē γ_μ P_R e)(μ̄ γ^μ P_R μ) ].

In terms of flavour-general Warsaw coefficients (Q_ll^{prst} = (l̄_p γ l_r)(l̄_s γ l_t), …),
cll = C_ll^{1122} + C_ll^{2211} + C_ll^{1221} + C_ll^{2112} (the last two Fierz into the same
charged-lepton structure), cle = C_le^{1122} + C_le^{2211} when the LR and RL coefficients are
equal, cee = C_ee^{1122} + C_ee^{2211}.  The contact terms are the Eichten–Lane–Peskin form
(PRL 50 (1983) 811) with η_ij/Λ² = c_ij/Λ².  No input-parameter shifts are applied (cll1, which
shifts G_F, is not included).

Massless leptons: only helicities λ(e⁺) = −λ(e⁻), λ(μ⁺) = −λ(μ⁻) contribute (4 configurations).
"""

from __future__ import annotations

import torch

from sbihep.physics import helas
from sbihep.physics.couplings import LAMBDA_GEV
from sbihep.physics.lorentz import dot
from sbihep.physics.phasespace import two_to_two
from sbihep.physics.processes.base import Amplitudes, Process

__all__ = ["EEToMuMu"]

HELICITIES = ((-1, 1, -1, 1), (-1, 1, 1, -1), (1, -1, -1, 1), (1, -1, 1, -1))  # (e⁻, e⁺, μ⁻, μ⁺)


class EEToMuMu(Process):
    name = "ee_mumu"
    description = "e- e+ -> mu- mu+ via gamma/Z with e-mu contact operators cll, cle, cee"
    particles = ("e-", "e+", "mu-", "mu+")
    operators = ("cll", "cle", "cee")
    collider = "ee"

    def external_masses(self) -> tuple[float, ...]:
        return (0.0, 0.0, 0.0, 0.0)

    def chiral_couplings(self) -> dict[str, tuple[float, float]]:
        """(g_L, g_R) of the charged lepton to γ and Z, as they appear in iγ^μ(g_L P_L + g_R P_R)."""
        sm = self.sm
        charge, t3 = -1.0, -0.5
        return {
            "photon": (-sm.e * charge, -sm.e * charge),
            "Z": (-sm.g_z * (t3 - charge * sm.sin2_w), -sm.g_z * (-charge * sm.sin2_w)),
        }

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        p1, p2, p3, p4 = momenta.unbind(1)
        q = p1 + p2
        couplings = self.chiral_couplings()
        inv_lambda2 = 1.0 / LAMBDA_GEV**2
        per_helicity = []
        for h1, h2, h3, h4 in HELICITIES:
            e_in = helas.incoming_fermion(p1, h1)
            e_bar = helas.incoming_antifermion(p2, h2)
            mu_out = helas.outgoing_fermion(p3, h3)
            mu_bar = helas.outgoing_antifermion(p4, h4)

            def electron_current(gl, gr):
                return helas.fermion_current(e_bar, e_in, gl, gr)

            def muon_current(gl, gr):
                return helas.fermion_current(mu_out, mu_bar, gl, gr)

            sm_diagram = 0
            for boson, mass, width in (("photon", 0.0, 0.0), ("Z", self.sm.m_Z, self.sm.width_Z)):
                gl, gr = couplings[boson]
                propagated = helas.vector_propagator(1j * electron_current(gl, gr), q, mass, width)
                sm_diagram = sm_diagram + dot(propagated, 1j * muon_current(gl, gr))

            def contact(e_chirality, mu_chirality):
                return 1j * inv_lambda2 * dot(electron_current(*e_chirality), muon_current(*mu_chirality))

            left, right = (1.0, 0.0), (0.0, 1.0)
            per_helicity.append(
                torch.stack(
                    [
                        sm_diagram,
                        contact(left, left),
                        contact(left, right) + contact(right, left),
                        contact(right, right),
                    ]
                )
            )
        components = helas.amplitude_from_diagram(torch.stack(per_helicity, dim=-1))[..., None]
        return Amplitudes(components, torch.ones(1, 1, dtype=torch.float64), average=0.25)

    # ---- phase space ---------------------------------------------------------------------
    n_random = 2

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """2 → 2 massless final state in the CM frame (e⁻ along +z); 2 random numbers (cos θ, φ)."""
        return two_to_two(r, sqrt_s_hat, 0.0, 0.0)
