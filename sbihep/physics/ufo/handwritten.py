"""The hand-written processes regenerated from the SMEFTsim UFO models: aligned inputs, the convention map, and a
per-point comparison of |M|² and of every EFT coefficient.

Each :class:`ReferenceCase` names a hand-written process of :mod:`sbihep.physics.processes`, the same process in
MadGraph syntax (same external slot order), the SMEFTsim model it is generated from and the map between the two
sets of operators.  With the generated amplitude components written in terms of the hand-written ones,

    M_gen^{SM} = √F · M_hw^{SM},      M_gen^{op'} = √F · κ_op · M_hw^{op}   (op' the SMEFTsim name of op),

the EFT coefficients map as constant_gen = F · constant_hw, linear_gen,i = F κ_i linear_hw,i and
quadratic_gen,ij = F κ_i κ_j quadratic_hw,ij.  The conventions found (every κ and F, and where they come from):

| process | hand-written → SMEFTsim | factor | why |
|---|---|---|---|
| ee_mumu | cll → cll (U35) | κ = 2 | U35's cll multiplies Σ_{p,r} (l̄_p γ l_p)(l̄_r γ l_r): the e–μ term appears for (p, r) = (1, 2) and (2, 1); the hand-written cll is the coefficient of the LL contact term itself (= C^{1122} + C^{2211} + C^{1221} + C^{2112}) |
| ee_mumu | cle → cle (U35) | κ = 1 | Σ_{p,r} (l̄_p γ l_p)(ē_r γ e_r) gives the LR and the RL term once each, as the hand-written cle |
| ee_mumu | cee → cee (U35) | κ = 2 | as cll: (ē_p γ e_p)(ē_r γ e_r) for (1, 2) and (2, 1) |
| ee_mumu | (cll1 not compared) | — | U35's cll1 = (l̄_p γ l_r)(l̄_r γ l_p) Fierzes into the same contact (κ = 2) *and* shifts G_F (dGf = (2 cHl3 − cll1) v²/Λ²): A_lin(cll1) = A_lin(cll) + (v²/Λ²) ∂A₀/∂ln G_F (tested); the hand-written process has no input shifts |
| w_lv | cHl3 → cHl3, clq3 → clq3 (U35) | κ = 1 | both include the G_F shift of cHl3 (dGf above) |
| w_lv, wh_* | CKM | F | F = V_ud² = (1 − λ²/2)² with SMEFTsim's Wolfenstein V_ud (λ = ``sm.sin_cabibbo``); the hand-written amplitude has no CKM element (its channel factor is cos²θ_C = 1 − λ², which differs from (1 − λ²/2)² by λ⁴/4 ≈ 6e-4) |
| wh_onshell, wh_lvbb | cHW, cHWtil, cHq3 (U35) | κ = 1 | ε_{0123} = +1 on both sides (UFO Epsilon ε^{0123} = −1) |
| ttbar | ctG → ctGRe (top model) | κ = 1 | same sign of D_μ and no g_s in the operator on both sides |

Aligned inputs (:func:`aligned_inputs`): MW, MZ, Gf, MH and the widths WZ, WW, WH, WT, the top mass MT = ymt,
MB = ``sm.m_b`` (spinors and kinematics) with the Yukawa mass ymb = ``sm.m_b_yukawa`` (the h b b̄ coupling), aS =
the fixed α_s of the hand-written t t̄ process, CKMlambda = ``sm.sin_cabibbo``; every other Wilson coefficient 0;
leptons and light quarks massless (as in the hand-written processes and ``restrict_massless.dat``).  Orders: the
hand-written t t̄ is pure QCD, so ``u u~ > t t~`` is generated with QED ≤ 1 (drops the γ/Z s-channel; SMEFTsim's
ctG couplings carry QED = 1, NP = 1).  The WH decay chain keeps the full Breit–Wigner propagators of W*, W → e ν and
h → b b̄ and is compared with ``WHToLNuBB(lineshape="breit-wigner")``, whose factorised h → b b̄ spin sum is exact.

``restrict_massless.dat`` fixes cHWtil and CKMlambda to 0; :func:`restriction_card` writes a copy of a
restriction card with such entries set to generic values (a user's card; the model files are not touched).

Relative difference (:func:`relative_difference`): per point |x_gen − x_hw| / max(|x_hw|, 10⁻³ S), S the
Cauchy–Schwarz scale of the coefficient at that point (S = A₀ for the constant, 2√(A₀ A_ii) for a linear
coefficient, √(A_ii A_jj) for a quadratic one, |A_i| ≤ S): a plain relative difference except at points where a
coefficient is ≪ its natural size (a CP-odd interference passing through zero, or vanishing identically as
cHWtil × SM and cHW × cHWtil in q q̄′ → W h summed over the W helicities, where both sides are rounding noise
~10⁻¹⁶ S); there it is |x_gen − x_hw| / (10⁻³ S).  :func:`compare_decompositions` counts those points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics.couplings import DEFAULT_SM, SMInputs
from sbihep.physics.processes.base import EFTDecomposition, Process

__all__ = [
    "ReferenceCase",
    "REFERENCE_CASES",
    "aligned_inputs",
    "restriction_card",
    "ckm_factor",
    "relative_difference",
    "compare_decompositions",
    "compare_case",
    "generate_case",
]

#: floor of the relative difference's denominator, as a fraction of the coefficient's Cauchy–Schwarz scale.
SCALE_FLOOR = 1e-3


def _ee_mumu(sm: SMInputs) -> Process:
    from sbihep.physics.processes.ee_mumu import EEToMuMu

    return EEToMuMu(sm)


def _w_lv(sm: SMInputs) -> Process:
    from sbihep.physics.processes.w_lv import WToLNu

    return WToLNu(sm)


def _wh_onshell(sm: SMInputs) -> Process:
    from sbihep.physics.processes.wh_lvbb import QQbarToWH

    return QQbarToWH(sm)


def _wh_lvbb(sm: SMInputs) -> Process:
    from sbihep.physics.processes.wh_lvbb import WHToLNuBB

    return WHToLNuBB(sm, lineshape="breit-wigner")


def _ttbar(sm: SMInputs) -> Process:
    from sbihep.physics.processes.ttbar import TTbar

    return TTbar(sm)


@dataclass(frozen=True)
class ReferenceCase:
    """One hand-written process (one subprocess) and its regeneration from a SMEFTsim model.

    Attributes:
        name: key of the case, e.g. ``"w_lv_plus"``.
        model: ``"U35"`` (SMEFTsim_U35_MwScheme_UFO) or ``"top"`` (SMEFTsim_top_MwScheme_UFO).
        process: MadGraph syntax, external slots in the order of the hand-written subprocess.
        subprocess: the hand-written subprocess key (None: its default).
        operators: hand-written operator → SMEFTsim name, in the hand-written order.
        kappa: hand-written operator → κ (generated component = κ × hand-written component).
        ckm: whether the generated amplitude carries V_ud (F = |V_ud|², :func:`ckm_factor`).
        orders: coupling-order constraints for :func:`~sbihep.physics.ufo.generated.generate_process`.
        sqrt_s: partonic √ŝ (GeV) of the comparison points.
        make: SMInputs → the hand-written process.
    """

    name: str
    model: str
    process: str
    subprocess: str | None
    operators: Mapping[str, str]
    kappa: Mapping[str, float]
    ckm: bool
    orders: Mapping[str, int]
    sqrt_s: float
    make: Callable[[SMInputs], Process] = field(repr=False, compare=False)


REFERENCE_CASES: tuple[ReferenceCase, ...] = (
    ReferenceCase("ee_mumu", "U35", "e- e+ > mu- mu+", None, {"cll": "cll", "cle": "cle", "cee": "cee"},
                  {"cll": 2.0, "cle": 1.0, "cee": 2.0}, False, {"NP": 1}, 250.0, _ee_mumu),
    ReferenceCase("w_lv_plus", "U35", "u d~ > ve e+", "W+", {"cHl3": "cHl3", "clq3": "clq3"},
                  {"cHl3": 1.0, "clq3": 1.0}, True, {"NP": 1}, 150.0, _w_lv),
    ReferenceCase("w_lv_minus", "U35", "d u~ > e- ve~", "W-", {"cHl3": "cHl3", "clq3": "clq3"},
                  {"cHl3": 1.0, "clq3": 1.0}, True, {"NP": 1}, 150.0, _w_lv),
    ReferenceCase("wh_onshell", "U35", "u d~ > w+ h", "W+", {"cHW": "cHW", "cHWtil": "cHWtil", "cHq3": "cHq3"},
                  {"cHW": 1.0, "cHWtil": 1.0, "cHq3": 1.0}, True, {"NP": 1}, 400.0, _wh_onshell),
    ReferenceCase("wh_lvbb", "U35", "u d~ > w+ h, w+ > e+ ve, h > b b~", "W+",
                  {"cHW": "cHW", "cHWtil": "cHWtil", "cHq3": "cHq3"},
                  {"cHW": 1.0, "cHWtil": 1.0, "cHq3": 1.0}, True, {"NP": 1}, 400.0, _wh_lvbb),
    ReferenceCase("ttbar_gg", "top", "g g > t t~", "gg", {"ctG": "ctGRe"}, {"ctG": 1.0}, False,
                  {"NP": 1, "QED": 1}, 500.0, _ttbar),
    ReferenceCase("ttbar_qq", "top", "u u~ > t t~", "qq", {"ctG": "ctGRe"}, {"ctG": 1.0}, False,
                  {"NP": 1, "QED": 1}, 500.0, _ttbar),
)


def aligned_inputs(sm: SMInputs = DEFAULT_SM, *, alpha_s: float | None = None, model: str = "U35") -> dict[str, float]:
    """SMEFTsim input values (UFO parameter names) that reproduce the hand-written processes' inputs.

    Args:
        sm: the hand-written processes' Standard Model inputs.
        alpha_s: the fixed α_s of the hand-written t t̄ process (default: its default, α_s(m_t) at one loop).
        model: ``"U35"`` or ``"top"`` (the top model has no CKMlambda entry of its own to align).

    Returns:
        name → value for :func:`~sbihep.physics.ufo.generated.generate_process` (``inputs=``).
    """
    if model not in ("U35", "top"):
        raise InvalidInputError(f"model must be 'U35' or 'top', got {model!r}")
    values = {
        "MW": sm.m_W, "MZ": sm.m_Z, "Gf": sm.G_F, "MH": sm.m_H, "MT": sm.m_t, "ymt": sm.m_t,
        "MB": sm.m_b, "ymb": sm.m_b_yukawa,
        "WZ": sm.width_Z, "WW": sm.width_W, "WH": sm.width_H, "WT": sm.width_t,
        "aS": sm.alpha_s(sm.m_t) if alpha_s is None else float(alpha_s),
    }  # fmt: skip
    if model == "U35":
        values["CKMlambda"] = sm.sin_cabibbo
    return values


def ckm_factor(sm: SMInputs = DEFAULT_SM) -> float:
    """|V_ud|² of SMEFTsim's Wolfenstein CKM matrix at λ = ``sm.sin_cabibbo``: (1 − λ²/2)²."""
    return (1.0 - sm.sin_cabibbo**2 / 2.0) ** 2


def restriction_card(source: str | Path, destination: str | Path, values: Mapping[str, float]) -> Path:
    """Write a copy of the restriction card ``source`` with the entries named in ``values`` changed.

    An entry is a line ``<code> <value> # <name>``; a value other than 0 and 1 frees the parameter (it is then
    only a default).  Used to keep cHWtil and CKMlambda, which ``restrict_massless.dat`` fixes to 0.

    Raises:
        UnknownParameterError: a name that is not exactly one entry of the card.
    """
    text = Path(source).read_text()
    for name, value in values.items():
        text, n = re.subn(rf"^(\s*\d+\s+)\S+(\s+#\s*{re.escape(name)}\s*)$", rf"\g<1>{float(value):.8e}\g<2>",
                          text, flags=re.M)
        if n != 1:
            raise UnknownParameterError(f"restriction_card: {name!r} is {n} entries of {str(source)!r}, expected 1")
    destination = Path(destination)
    destination.write_text(text)
    return destination


def relative_difference(generated: torch.Tensor, reference: torch.Tensor, scale: torch.Tensor) -> float:
    """max over points of |generated − reference| / max(|reference|, 10⁻³ scale) (see the module docstring)."""
    denominator = torch.maximum(reference.abs(), SCALE_FLOOR * scale.abs())
    if not bool((denominator > 0).all()):
        raise InvalidInputError("relative_difference: a coefficient and its scale are both 0 at some point")
    return float(((generated - reference).abs() / denominator).max())


def compare_decompositions(generated: EFTDecomposition, reference: EFTDecomposition, kappa: torch.Tensor,
                           factor: float = 1.0) -> dict[str, float]:
    """Relative differences of the constant, each linear and each quadratic coefficient (i ≤ j).

    ``reference`` is mapped first: constant × F, linear_i × F κ_i, quadratic_ij × F κ_i κ_j.  Keys ``"sm"``,
    ``"lin_<op>"``, ``"quad_<op>_<op>"`` with the reference's operator names, and ``"floored_points"``: how many
    (point, coefficient) pairs had |reference| < 10⁻³ S (compared relative to 10⁻³ S).
    """
    ops = reference.operators
    if tuple(generated.constant.shape) != tuple(reference.constant.shape) or len(generated.operators) != len(ops):
        raise InvalidInputError(f"compare_decompositions: generated has {len(generated.operators)} operators and "
                                f"{tuple(generated.constant.shape)} points, reference {len(ops)} and "
                                f"{tuple(reference.constant.shape)}")
    k = torch.as_tensor(kappa, dtype=torch.float64)
    floored = 0

    def rel(g, r, s):
        nonlocal floored
        floored += int((r.abs() < SCALE_FLOOR * s.abs()).sum())
        return relative_difference(g, r, s)

    c0, lin = reference.constant * factor, reference.linear * factor * k
    out = {"sm": rel(generated.constant, c0, c0)}
    quad = None
    if reference.quadratic is not None and generated.quadratic is not None:
        quad = reference.quadratic * factor * k[:, None] * k[None, :]
    for i, op in enumerate(ops):
        if quad is not None:
            s = 2.0 * torch.sqrt(c0 * quad[:, i, i].clamp_min(0.0))
        else:
            s = lin[:, i].abs()
        out[f"lin_{op}"] = rel(generated.linear[:, i], lin[:, i], s)
    if quad is not None:
        diag = quad.diagonal(dim1=1, dim2=2).clamp_min(0.0)
        for i, a in enumerate(ops):
            for j in range(i, len(ops)):
                s = torch.sqrt(diag[:, i] * diag[:, j])
                out[f"quad_{a}_{ops[j]}"] = rel(generated.quadratic[:, i, j], quad[:, i, j], s)
    out["floored_points"] = float(floored)
    return out


def generate_case(case: ReferenceCase, model, sm: SMInputs = DEFAULT_SM, *, cache: bool = True) -> Process:
    """The generated counterpart of ``case``: :func:`~sbihep.physics.ufo.generated.generate_process` with the
    SMEFTsim operators of the case, :func:`aligned_inputs` and the case's orders.

    Args:
        case: a :class:`ReferenceCase`.
        model: the loaded SMEFTsim model of ``case.model`` (a :class:`~sbihep.physics.ufo.model.UFOModel`, restricted
            with a card that leaves cHWtil and CKMlambda free for the U35 cases, see :func:`restriction_card`).
        sm: the hand-written processes' inputs.
        cache: use the on-disk process cache.
    """
    from sbihep.physics.ufo.generated import generate_process

    hand = case.make(sm)
    ops = [case.operators[o] for o in hand.operators]
    alpha_s = getattr(hand, "alpha_s", None)
    return generate_process(case.process, model, ops, inputs=aligned_inputs(sm, alpha_s=alpha_s, model=case.model),
                            orders=dict(case.orders), cache=cache)


def compare_case(case: ReferenceCase, generated: Process, sm: SMInputs = DEFAULT_SM, *, n_points: int = 100,
                 seed: int = 0, order: str = "quadratic", sqrt_s: float | None = None) -> dict[str, float]:
    """Compare ``generated`` (built for ``case`` with :func:`aligned_inputs`) with the hand-written process.

    The points come from the hand-written process's own :meth:`~sbihep.physics.processes.base.Process.phase_space`
    at ``sqrt_s`` (GeV; default ``case.sqrt_s``), uniform random numbers from ``seed``.  Returns
    :func:`compare_decompositions`'s dict.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise InvalidInputError(f"n_points must be a positive integer, got {n_points!r}")
    sqrt_s = case.sqrt_s if sqrt_s is None else float(sqrt_s)
    hand = case.make(sm)
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(n_points, hand.n_random, generator=gen, dtype=torch.float64)
    momenta, _ = hand.phase_space(r, sqrt_s)
    reference = hand.eft_decomposition(momenta, order, case.subprocess)
    ufo_ops = tuple(case.operators[o] for o in hand.operators)
    if tuple(generated.operators) != ufo_ops:
        raise InvalidInputError(f"{case.name}: generated operators {generated.operators} ≠ {ufo_ops}")
    result = generated.eft_decomposition(momenta, order)
    kappa = torch.tensor([case.kappa[o] for o in hand.operators], dtype=torch.float64)
    factor = ckm_factor(sm) if case.ckm else 1.0
    if not math.isfinite(factor):
        raise InvalidInputError(f"{case.name}: CKM factor is not finite")
    return compare_decompositions(result, reference, kappa, factor)
