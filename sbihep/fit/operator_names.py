"""SMEFiT operator names ↔ SMEFTsim (Warsaw-basis) coefficient names, as a *linear map*.

SMEFiT (and its theory tables, computed with SMEFTatNLO) fits coefficients in its own basis, named
``OX`` in the theory files (``cX`` in its runcards).  Most are single Warsaw coefficients, some are
linear combinations, so the translation is a matrix M with

    c_SMEFiT,i = Σ_k M_ik c_SMEFTsim,k            (coefficients c/Λ², Λ = 1 TeV on both sides)

and a prediction Σ_i c_SMEFiT,i t_i is Σ_k c_SMEFTsim,k (Σ_i M_ik t_i) in SMEFTsim coefficients.
Examples:

- ``OpqMi`` = c_φq^(1) − c_φq^(3) (light quark doublets) = ``cHq1 − cHq3``; ``O3pq`` = ``cHq3``;
- ``OpQM`` = ``cHQ1 − cHQ3`` (third-generation doublet); ``O3pQ3`` = ``cHQ3``;
- ``OtZ`` = c_W ``ctW`` − s_W ``ctB``; ``OtG`` = ``ctG`` / g_s;
- ``OpBox`` (the name in SMEFiT 2.0-era theory tables, and in ../shared/data/smefit) = ``cHbox``,
  while SMEFiT 3's ``Opd`` = −``cHbox``.

Sources: SMEFiT's own SMEFiT → WCxf-Warsaw translation (``smefit/wcxf.py`` of the smefit_release
repository, read for the relations, with its constants m_W = 80.387 GeV, m_Z = 91.1876 GeV,
s_W² = 1 − m_W²/m_Z², α_s = 0.118), SMEFiT 2.0 (arXiv:2105.00006) for OpqMi / OpQM, and SMEFTsim 3.0
(arXiv:2012.11343) for the SMEFTsim names, which follow the Warsaw paper's conventions (covariant
derivative D = ∂ + i g …, as WCxf's Warsaw basis).

Flavour.  SMEFiT's flavour assumption, U(2)_q × U(2)_u × U(3)_d in quarks with every lepton
generation separate, is finer than SMEFTsim's flavour-universal models in leptons: ``Opl1``,
``Opl2``, ``Opl3`` (one per lepton generation) all map onto the universal ``cHl1`` — setting
``cHl1`` sets all three; the reverse is not a function.  Quark doublet currents follow SMEFTsim's
``top`` flavour split (light generations: ``cHq1``/``cHq3``, as the project's processes name them;
third: ``cHQ1``/``cHQ3``).  Real parts only (SMEFTsim's ``Re`` suffix dropped, as in the rest of
sbihep).

Entries marked ``verified=False`` depend on conventions that were not cross-checked against a
SMEFTsim computation (the sign and g_s normalisation of the top dipoles, the names of the Yukawa-like
coefficients); treat them with care.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from sbihep.errors import InvalidInputError, UnknownParameterError

__all__ = [
    "OperatorTranslation",
    "SMEFIT_TO_SMEFTSIM",
    "known_smeftsim_names",
    "smefit_to_smeftsim_matrix",
    "smefit_values",
    "smeftsim_name",
]

# SMEFiT's electroweak and strong inputs for the dipole rotations (its wcxf.py, values at m_Z).
_MW_GEV, _MZ_GEV, _ALPHA_S = 80.387, 91.1876, 0.118
_SW = math.sqrt(1.0 - _MW_GEV**2 / _MZ_GEV**2)
_CW = math.sqrt(1.0 - _SW**2)
_GS = math.sqrt(4.0 * math.pi * _ALPHA_S)


@dataclass(frozen=True)
class OperatorTranslation:
    """One SMEFiT coefficient as a linear combination of SMEFTsim coefficients.

    Attributes:
        smefit: the SMEFiT name (``OX``; runcards also write ``cX``).
        smeftsim: SMEFTsim name → coefficient M_ik in c_SMEFiT = Σ_k M_ik c_SMEFTsim,k.
        warsaw: the operator in words (Warsaw basis, flavour indices).
        verified: False where the relation depends on conventions not cross-checked (see the module).
    """

    smefit: str
    smeftsim: Mapping[str, float]
    warsaw: str = ""
    verified: bool = True
    notes: str = field(default="", compare=False)

    @property
    def is_rename(self) -> bool:
        """Whether the SMEFiT coefficient is exactly one SMEFTsim coefficient (coefficient 1)."""
        return len(self.smeftsim) == 1 and next(iter(self.smeftsim.values())) == 1.0


def _t(smefit, smeftsim, warsaw="", verified=True, notes=""):
    return OperatorTranslation(smefit, dict(smeftsim), warsaw, verified, notes)


_LEPTON_UNIVERSAL = "SMEFTsim's lepton sector is flavour universal: one coefficient for all three generations"

#: SMEFiT name → translation.
SMEFIT_TO_SMEFTSIM: dict[str, OperatorTranslation] = {t.smefit: t for t in [
    # bosonic
    _t("OpD", {"cHDD": 1.0}, "C_φD"),
    _t("OpBox", {"cHbox": 1.0}, "C_φ□ (SMEFiT 2.0-era name)"),
    _t("Opd", {"cHbox": -1.0}, "−C_φ□ (SMEFiT 3 name)"),
    _t("OpWB", {"cHWB": 1.0}, "C_φWB"),
    _t("OpW", {"cHW": 1.0}, "C_φW"),
    _t("OpB", {"cHB": 1.0}, "C_φB"),
    _t("OpG", {"cHG": 1.0}, "C_φG"),
    _t("Op", {"cH": 1.0}, "C_φ"),
    _t("OWWW", {"cW": 1.0}, "C_W"),
    # top dipoles
    _t("OtG", {"ctG": 1.0 / _GS}, "C_uG(33)/g_s", verified=False,
       notes="SMEFiT factors g_s out of the chromo-dipole; g_s at α_s = 0.118"),
    _t("OtW", {"ctW": 1.0}, "C_uW(33)", verified=False),
    _t("OtZ", {"ctW": _CW, "ctB": -_SW}, "c_W C_uW(33) − s_W C_uB(33)", verified=False),
    # quark currents
    _t("O3pq", {"cHq3": 1.0}, "C_φq^(3)(11) = (22)"),
    _t("OpqMi", {"cHq1": 1.0, "cHq3": -1.0}, "C_φq^(1)(11) − C_φq^(3)(11)"),
    _t("O3pQ3", {"cHQ3": 1.0}, "C_φq^(3)(33)"),
    _t("OpQM", {"cHQ1": 1.0, "cHQ3": -1.0}, "C_φq^(1)(33) − C_φq^(3)(33)"),
    _t("Opt", {"cHt": 1.0}, "C_φu(33)"),
    _t("Opui", {"cHu": 1.0}, "C_φu(11) = (22)"),
    _t("Opdi", {"cHd": 1.0}, "C_φd(11) = (22) = (33)"),
    # lepton currents (per generation in SMEFiT)
    *[_t(f"Opl{g}", {"cHl1": 1.0}, f"C_φl^(1)({g}{g})", notes=_LEPTON_UNIVERSAL) for g in (1, 2, 3)],
    *[_t(f"O3pl{g}", {"cHl3": 1.0}, f"C_φl^(3)({g}{g})", notes=_LEPTON_UNIVERSAL) for g in (1, 2, 3)],
    *[_t(name, {"cHe": 1.0}, f"C_φe({g}{g})", notes=_LEPTON_UNIVERSAL) for g, name in ((1, "Ope"), (2, "Opmu"), (3, "Opta"))],
    # Yukawa-like
    _t("Otp", {"ctH": 1.0}, "C_uφ(33)", verified=False),
    _t("Ocp", {"ccH": 1.0}, "C_uφ(22)", verified=False),
    _t("Obp", {"cbH": 1.0}, "C_dφ(33)", verified=False),
    _t("Otap", {"ctauH": 1.0}, "C_eφ(33)", verified=False),
    # four leptons
    _t("Oll", {"cll1": 1.0}, "C_ll(1221)"),
]}


def _canonical(name: str) -> str:
    """A SMEFiT name as the theory files spell it: runcards' ``cX`` → ``OX``."""
    if name in SMEFIT_TO_SMEFTSIM:
        return name
    if name.startswith("c") and "O" + name[1:] in SMEFIT_TO_SMEFTSIM:
        return "O" + name[1:]
    return name


def smeftsim_name(smefit: str) -> str:
    """The SMEFTsim name of a SMEFiT coefficient that is a pure rename (e.g. ``OpWB`` → ``cHWB``).

    Raises:
        UnknownParameterError: a name not in the map.
        InvalidInputError: a SMEFiT coefficient that is a linear combination (e.g. ``OpqMi``): use
            :func:`smefit_to_smeftsim_matrix`.
    """
    key = _canonical(smefit)
    if key not in SMEFIT_TO_SMEFTSIM:
        raise UnknownParameterError(f"smeftsim_name: {smefit!r} is not a SMEFiT coefficient of the map; known: {sorted(SMEFIT_TO_SMEFTSIM)}")
    t = SMEFIT_TO_SMEFTSIM[key]
    if not t.is_rename:
        terms = " ".join(f"{v:+.6g}·{k}" for k, v in t.smeftsim.items())
        raise InvalidInputError(f"smeftsim_name: {smefit} is not one SMEFTsim coefficient but {key} = {terms}")
    return next(iter(t.smeftsim))


def known_smeftsim_names() -> tuple[str, ...]:
    """Every SMEFTsim coefficient the map knows, sorted."""
    return tuple(sorted({k for t in SMEFIT_TO_SMEFTSIM.values() for k in t.smeftsim}))


def smefit_to_smeftsim_matrix(smefit: Iterable[str], smeftsim: Iterable[str]) -> np.ndarray:
    """M (len(smefit), len(smeftsim)) with c_SMEFiT = M c_SMEFTsim, restricted to the given names
    (SMEFTsim coefficients left out are 0; a SMEFiT name outside the map gets a zero row).

    Raises:
        UnknownParameterError: a SMEFTsim name the map does not know.
    """
    smefit, smeftsim = [_canonical(s) for s in smefit], list(smeftsim)
    known = set(known_smeftsim_names())
    unknown = [k for k in smeftsim if k not in known]
    if unknown:
        raise UnknownParameterError(f"SMEFTsim coefficient(s) {unknown} are not in the SMEFiT ↔ SMEFTsim map; known: {sorted(known)}")
    column = {k: j for j, k in enumerate(smeftsim)}
    m = np.zeros((len(smefit), len(smeftsim)))
    for i, name in enumerate(smefit):
        t = SMEFIT_TO_SMEFTSIM.get(name)
        for k, v in (t.smeftsim.items() if t else ()):
            if k in column:
                m[i, column[k]] = v
    return m


def smefit_values(smeftsim_values: Mapping[str, float], smefit: Iterable[str] | None = None) -> dict[str, float]:
    """SMEFiT coefficients at a point given in SMEFTsim coefficients (the others 0).

    Args:
        smeftsim_values: SMEFTsim name → value.
        smefit: the SMEFiT names wanted (default: every one the point moves).
    """
    names = list(smeftsim_values)
    wanted = list(SMEFIT_TO_SMEFTSIM) if smefit is None else [_canonical(s) for s in smefit]
    m = smefit_to_smeftsim_matrix(wanted, names)
    values = m @ np.array([float(smeftsim_values[n]) for n in names])
    return {s: float(v) for s, v in zip(wanted, values) if smefit is not None or np.any(m[wanted.index(s)])}
