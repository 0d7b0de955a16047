"""e⁻ e⁺ → μ⁻ μ⁺ assembled by hand from SMEFTsim's UFO Lorentz structures through sbihep.physics.ufo.

Used by benchmarks/bench_ufo_engine.py and tests/test_ufo_engine_ee_mumu.py to check the UFO
evaluation engine against the hand-written :class:`~sbihep.physics.processes.EEToMuMu` (same couplings,
same Lagrangian) and to time it.  This is what a diagram generator emits for this process:

* s channel, γ and Z: the electron current is the off-shell vector of the vertex
  [e⁺, e⁻, V] (leg 0: column spinor u(e⁻), leg 1: row spinor v̄(e⁺), leg 2 open) and it is closed on
  the muon vertex (leg 0: v(μ⁺), leg 1: ū(μ⁻)).  γ uses FFV1 = Gamma(3,2,1); Z uses FFV3 (γ^μ P_L)
  and FFV5 (γ^μ P_R), fused into one structure with the numeric couplings.
* contact terms: FFFF4 (LL), FFFF17 (LR) and FFFF18 (RR) on [e⁺, e⁻, μ⁺, μ⁻]; the RL term is
  FFFF17 with the pairs exchanged ([μ⁺, μ⁻, e⁺, e⁻]), as SMEFTsim itself writes it, relabelled to
  the same leg order; the four are one compiled vertex with the couplings folded in (structure ×
  operator matrix), giving the three EFT components in one pass.

UFO couplings carry the factor i (vertex = coupling × structure), so the hand-written
iγ^μ(g_L P_L + g_R P_R) becomes couplings i·g_L, i·g_R; contact vertices i/Λ².  Helicities: the
four non-zero configurations, as one batch axis.
"""

from __future__ import annotations

import torch

from sbihep.physics.couplings import LAMBDA_GEV
from sbihep.physics.processes.base import Amplitudes
from sbihep.physics.processes.ee_mumu import HELICITIES, EEToMuMu
from sbihep.physics.ufo import compile_lorentz, linear_combination, parse_structure, relabel_legs
from sbihep.physics.ufo.wavefunctions import fermion_wavefunctions

__all__ = ["STRUCTURES", "UFOEngineEEToMuMu"]

#: the SMEFTsim (U35 and top) structures used, by name
STRUCTURES = {
    "FFV1": "Gamma(3,2,1)",
    "FFV3": "Gamma(3,2,-1)*ProjM(-1,1)",
    "FFV5": "Gamma(3,2,-1)*ProjP(-1,1)",
    "FFFF4": "Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-3,3)*ProjM(-2,1)",
    "FFFF17": "Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-2,1)*ProjP(-3,3)",
    "FFFF18": "Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjP(-3,3)*ProjP(-2,1)",
}


class UFOEngineEEToMuMu(EEToMuMu):
    """The hand-written process with :meth:`amplitudes` recomputed by the UFO engine."""

    name = "ee_mumu_ufo_engine"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        (gl_a, gr_a), (gl_z, gr_z) = self.chiral_couplings()["photon"], self.chiral_couplings()["Z"]
        if gl_a != gr_a:
            raise AssertionError("photon coupling must be vector-like")
        self.coupling_photon = 1j * gl_a
        expr = {k: parse_structure(v) for k, v in STRUCTURES.items()}
        self.photon_vertex = compile_lorentz(expr["FFV1"], (2, 2, 3), "FFV1")
        # Z: coupling × structure summed over FFV3, FFV5, fused into one compiled structure
        self.z_vertex = compile_lorentz(linear_combination([(1j * gl_z, expr["FFV3"]), (1j * gr_z, expr["FFV5"])]), (2, 2, 3), "FFV3+FFV5")
        # all contact structures of the e–μ four-lepton vertex in one compiled vertex, the couplings
        # (structure × operator: LL → cll, LR and RL → cle, RR → cee; i/Λ²) folded into its last core
        rl = relabel_legs(expr["FFFF17"], {1: 3, 2: 4, 3: 1, 4: 2})
        self.contact_vertex = compile_lorentz([expr["FFFF4"], expr["FFFF17"], rl, expr["FFFF18"]], (2, 2, 2, 2), "FFFF4|FFFF17|FFFF17'|FFFF18")
        c = 1j / LAMBDA_GEV**2
        self.contact_couplings = torch.tensor([[c, 0, 0], [0, c, 0], [0, c, 0], [0, 0, c]], dtype=torch.complex128)
        index = torch.tensor([[(h + 1) // 2 for h in config] for config in HELICITIES])  # ±1 → 1/0
        self._helicity_index = index.T.contiguous()  # (4 legs, H)

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        p1, p2, p3, p4 = momenta.unbind(1)
        both = (-1, 1)
        idx = self._helicity_index
        # wavefunctions (N, H, 4): both helicities once, then the four configurations gathered
        u_e = fermion_wavefunctions(p1, both, 0.0, "u")[:, idx[0]]
        vbar_e = fermion_wavefunctions(p2, both, 0.0, "vbar")[:, idx[1]]
        ubar_mu = fermion_wavefunctions(p3, both, 0.0, "ubar")[:, idx[2]]
        v_mu = fermion_wavefunctions(p4, both, 0.0, "v")[:, idx[3]]
        mom = [p1[:, None], p2[:, None], -p4[:, None], -p3[:, None]]  # incoming momenta of (u_e, v̄_e, v_μ, ū_μ)
        # s channel: off-shell boson from the electron line, closed on the muon line
        diagram = 0
        for vertex, coupling, mass, width in (
            (self.photon_vertex, self.coupling_photon, 0.0, 0.0),
            (self.z_vertex, 1.0, self.sm.m_Z, self.sm.width_Z),  # Z couplings fused into the structure
        ):
            boson = vertex.offshell(2, [u_e, vbar_e, None], [mom[0], mom[1], None], mass, width)
            diagram = diagram + coupling * coupling * vertex.amplitude([v_mu, ubar_mu, boson])
        contact = self.contact_vertex.amplitude([u_e, vbar_e, v_mu, ubar_mu], couplings=self.contact_couplings)  # (N, H, 3)
        components = torch.cat([diagram[None], contact.permute(2, 0, 1)])
        components = (-1j * components)[..., None]  # M = −i × (product of Feynman rules); (K, N, H, 1)
        return Amplitudes(components, torch.ones(1, 1, dtype=torch.float64), average=0.25)
