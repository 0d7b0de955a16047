"""Standard Model inputs and the SMEFT operators sbihep knows.

Electroweak input scheme: {G_F, m_W, m_Z} (the "m_W scheme" of SMEFTsim 3.0, Brivio
arXiv:2012.11343).  Everything else at tree level follows from them:

    v   = (√2 G_F)^(−1/2)                  ≈ 246.22 GeV
    g   = 2 m_W / v
    c_W = m_W / m_Z,   s_W² = 1 − c_W²
    e   = g s_W,       α = e²/4π           ≈ 1/132.2
    g_Z = g / c_W

Wilson coefficients are c_i/Λ² with Λ = 1 TeV (``LAMBDA_GEV``); operator names follow the Warsaw
basis as SMEFTsim spells them.  The way each operator enters a process (the Feynman rules, derived
from the Lagrangian L = L_SM + Σ_i (c_i/Λ²) O_i with the Warsaw-basis covariant derivative
D_μ = ∂_μ + i g_s T^A G^A_μ + i g τ^I/2 W^I_μ + i g' Y B_μ) is written down in the process module
that uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sbihep.errors import UnknownParameterError
from sbihep.params import Parameter

__all__ = ["SMInputs", "DEFAULT_SM", "LAMBDA_GEV", "Operator", "OPERATORS", "operator", "operator_parameter"]

#: New-physics scale Λ (GeV) that Wilson coefficients c_i/Λ² are quoted against.
LAMBDA_GEV = 1000.0


@dataclass(frozen=True)
class SMInputs:
    """Standard Model input values (GeV, except dimensionless couplings).

    Defaults: PDG-2024-like values; widths are the SM total widths used in Breit–Wigner
    propagators.  The b quark has two masses: ``m_b`` (pole-like) for kinematics and spinors, and
    ``m_b_yukawa`` = m̄_b(m_H) (MS-bar, running to the Higgs mass) for the h b b̄ coupling, which
    resums the large QCD logarithms of Γ(h → b b̄); with the pole mass in the coupling the LO width
    Γ(h → b b̄) = 5.4 MeV would exceed the total width Γ_H = 4.07 MeV.  CKM: the Cabibbo block only, with sin θ_C = ``sin_cabibbo`` (V_ud = V_cs = cos θ_C,
    V_us = −V_cd = sin θ_C); third-generation mixing is neglected (V_tb = 1).
    """

    G_F: float = 1.1663788e-5  # GeV^-2
    m_W: float = 80.369
    m_Z: float = 91.1876
    m_H: float = 125.20
    m_t: float = 172.57
    m_b: float = 4.70  # pole-like mass: kinematics and spinors
    m_b_yukawa: float = 2.79  # MS-bar m_b(m_H): the h b b̄ coupling y_b/√2 = m_b_yukawa / v
    width_W: float = 2.085
    width_Z: float = 2.4955
    width_H: float = 4.07e-3
    width_t: float = 1.42
    alpha_s_mz: float = 0.118
    sin_cabibbo: float = 0.2250

    # --- derived electroweak quantities -------------------------------------------------
    @property
    def vev(self) -> float:
        """v = (√2 G_F)^(−1/2) (GeV)."""
        return (math.sqrt(2.0) * self.G_F) ** -0.5

    @property
    def g(self) -> float:
        """SU(2) coupling g = 2 m_W / v."""
        return 2.0 * self.m_W / self.vev

    @property
    def cos_w(self) -> float:
        return self.m_W / self.m_Z

    @property
    def sin2_w(self) -> float:
        return 1.0 - self.cos_w**2

    @property
    def e(self) -> float:
        """Electric charge unit e = g s_W."""
        return self.g * math.sqrt(self.sin2_w)

    @property
    def alpha(self) -> float:
        return self.e**2 / (4.0 * math.pi)

    @property
    def g_z(self) -> float:
        """Z coupling g / c_W."""
        return self.g / self.cos_w

    def ckm(self, up: str, down: str) -> float:
        """|V_{up,down}| (signs included) for up ∈ {u, c, t}, down ∈ {d, s, b}."""
        c, s = math.sqrt(1.0 - self.sin_cabibbo**2), self.sin_cabibbo
        table = {
            ("u", "d"): c, ("u", "s"): s, ("u", "b"): 0.0,
            ("c", "d"): -s, ("c", "s"): c, ("c", "b"): 0.0,
            ("t", "d"): 0.0, ("t", "s"): 0.0, ("t", "b"): 1.0,
        }  # fmt: skip
        try:
            return table[(up, down)]
        except KeyError:
            raise UnknownParameterError(f"ckm: no element V_{up}{down}; up ∈ u,c,t and down ∈ d,s,b") from None

    def alpha_s(self, q_gev: float) -> float:
        """One-loop running α_s(Q) with n_f = 5 from α_s(m_Z) (the order of an LO PDF set)."""
        if not q_gev > 0:
            raise UnknownParameterError(f"alpha_s: scale must be > 0 GeV, got {q_gev}")
        b0 = (33.0 - 2.0 * 5) / (12.0 * math.pi)
        return self.alpha_s_mz / (1.0 + b0 * self.alpha_s_mz * math.log(q_gev**2 / self.m_Z**2))

    def with_changes(self, **changes: float) -> "SMInputs":
        return replace(self, **changes)

    def describe(self) -> str:
        """A human-readable table of inputs and derived values."""
        rows = [f"{k:12s} = {getattr(self, k):.7g}" for k in self.__dataclass_fields__]
        rows += [
            f"{'v':12s} = {self.vev:.7g} GeV",
            f"{'sin2_w':12s} = {self.sin2_w:.7g}",
            f"{'1/alpha':12s} = {1 / self.alpha:.7g}",
        ]
        return "\n".join(rows)


DEFAULT_SM = SMInputs()


@dataclass(frozen=True)
class Operator:
    """A dimension-6 SMEFT operator in the Warsaw basis (SMEFTsim name)."""

    name: str
    definition: str
    cp_odd: bool = False
    notes: str = ""
    default_bounds: tuple[float, float] = field(default=(-10.0, 10.0))


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator("cHW", "(H†H) W^I_{μν} W^{Iμν}"),
        Operator("cHWtil", "(H†H) W̃^I_{μν} W^{Iμν},  W̃_{μν} = ½ ε_{μνρσ} W^{ρσ}", cp_odd=True),
        Operator("cHq3", "(H† i D^I_μ H)(q̄ τ^I γ^μ q)  (flavour universal)"),
        Operator("cHl3", "(H† i D^I_μ H)(l̄ τ^I γ^μ l)  (flavour universal)"),
        Operator("clq3", "(l̄ γ_μ τ^I l)(q̄ γ^μ τ^I q)  (flavour universal)"),
        Operator(
            "cll",
            "(ē_L γ_μ e_L)(μ̄_L γ^μ μ_L) contact, from (l̄_p γ_μ l_r)(l̄_s γ^μ l_t)",
            notes="coefficient of the e–μ LL contact term in L; see processes/ee_mumu.py",
        ),
        Operator(
            "cle",
            "(ē_L γ_μ e_L)(μ̄_R γ^μ μ_R) + (ē_R γ_μ e_R)(μ̄_L γ^μ μ_L) contact, from (l̄ γ_μ l)(ē γ^μ e)",
            notes="coefficient of both e–μ LR and RL contact terms; see processes/ee_mumu.py",
        ),
        Operator("cee", "(ē_R γ_μ e_R)(μ̄_R γ^μ μ_R) contact, from (ē γ_μ e)(ē γ^μ e)"),
        Operator("ctG", "(q̄_3 σ^{μν} T^A t) H̃ G^A_{μν} + h.c.  (real coefficient)", default_bounds=(-2.0, 2.0)),
    ]
}


def operator(name: str) -> Operator:
    """Look up an operator by its SMEFTsim name; unknown names raise with the list of known ones."""
    try:
        return OPERATORS[name]
    except KeyError:
        raise UnknownParameterError(f"unknown operator {name!r}; known operators: {sorted(OPERATORS)}") from None


def operator_parameter(name: str, bounds: tuple[float, float] | None = None) -> Parameter:
    """The :class:`~sbihep.params.Parameter` for a Wilson coefficient c_i/Λ² (Λ = 1 TeV).

    An operator outside sbihep's registry (any Wilson coefficient of a UFO model, e.g. ``cHWB``) is
    accepted when ``bounds`` are given; without bounds it raises, since no default range is known.
    """
    if name not in OPERATORS and bounds is not None:
        return Parameter(name=name, sm_value=0.0, bounds=bounds, kind="poi", unit="TeV^-2",
                         description=f"Wilson coefficient {name} (from the model)")
    op = operator(name)
    return Parameter(
        name=op.name,
        sm_value=0.0,
        bounds=op.default_bounds if bounds is None else bounds,
        kind="poi",
        unit="TeV^-2",
        description=f"Wilson coefficient of {op.definition}" + (" (CP-odd)" if op.cp_odd else ""),
    )
