"""The hand-written processes regenerated from the SMEFTsim UFOs agree per point in |M|² and in every EFT
coefficient, with the convention map of :mod:`sbihep.physics.ufo.handwritten`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sbihep.errors import UnknownParameterError
from sbihep.physics.couplings import DEFAULT_SM
from sbihep.physics.ufo import load_ufo
from sbihep.physics.ufo.handwritten import (
    REFERENCE_CASES,
    aligned_inputs,
    ckm_factor,
    compare_case,
    generate_case,
    restriction_card,
)

UFO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
U35 = UFO_DIR / "SMEFTsim_U35_MwScheme_UFO"
TOP = UFO_DIR / "SMEFTsim_top_MwScheme_UFO"

pytestmark = pytest.mark.skipif(not (U35.is_dir() and TOP.is_dir()), reason="SMEFTsim UFO models not available")

CASES = {case.name: case for case in REFERENCE_CASES}


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    old = os.environ.get("SBIHEP_CACHE_DIR")
    os.environ["SBIHEP_CACHE_DIR"] = str(tmp_path_factory.mktemp("process_cache"))
    yield
    if old is None:
        os.environ.pop("SBIHEP_CACHE_DIR", None)
    else:
        os.environ["SBIHEP_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    card = restriction_card(U35 / "restrict_massless.dat", tmp_path_factory.mktemp("cards") / "restrict_u35.dat",
                            {"cHWtil": 7e-4, "CKMlambda": 0.225})
    return {"U35": load_ufo(U35, restriction=card), "top": load_ufo(TOP, restriction=TOP / "restrict_massless.dat")}


@pytest.mark.parametrize("name", list(CASES))
def test_generated_equals_handwritten(models, name):
    case = CASES[name]
    generated = generate_case(case, models[case.model], cache=False)
    diffs = compare_case(case, generated, n_points=12, seed=3)
    floored = diffs.pop("floored_points")
    assert set(diffs) >= {"sm", *(f"lin_{op}" for op in case.operators)}
    worst = max(diffs.values())
    assert worst <= 1e-10, (name, diffs)
    assert floored < 12 * len(diffs)  # not every coefficient vanishes: the comparison is not vacuous


def test_ee_mumu_four_lepton_normalisation(models):
    """U35's cll and cee carry the e–μ contact term twice ((p, r) = (1, 2) and (2, 1)); cle once."""
    case = CASES["ee_mumu"]
    generated = generate_case(case, models["U35"], cache=False)
    hand = case.make(DEFAULT_SM)
    r = torch.rand(6, hand.n_random, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    momenta, _ = hand.phase_space(r, 250.0)
    ratio = generated.eft_decomposition(momenta, "linear").linear / hand.eft_decomposition(momenta, "linear").linear
    assert torch.allclose(ratio, torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64).expand_as(ratio), rtol=1e-12, atol=0)


def test_wh_decay_chain_resonance_sees_decay_products(models):
    """The h propagator of u d~ > w+ h, h > b b~ uses m_bb from the b's, not p1 + p2 − p_e − p_ν: a violation of
    momentum conservation on the initial side (here 2e-7 GeV, below the validation tolerance) must not reach
    the 4 MeV-wide Breit–Wigner.  Before the fix the h line took p1 + p2 − p3 − p4 and |M|² moved by ~1e-4
    (rounding-level violations, 1e-13 GeV, gave 1e-10 against the hand-written WHToLNuBB)."""
    case = CASES["wh_lvbb"]
    generated = generate_case(case, models["U35"], cache=False)
    hand = case.make(DEFAULT_SM)
    r = torch.rand(40, hand.n_random, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    momenta, _ = hand.phase_space(r, 400.0)
    p_h = momenta[:, 4] + momenta[:, 5]
    m_bb = torch.sqrt(p_h[:, 0] ** 2 - (p_h[:, 1:] ** 2).sum(-1))
    near = (m_bb - DEFAULT_SM.m_H).abs() < 2 * DEFAULT_SM.width_H
    assert int(near.sum()) >= 5
    momenta = momenta[near]
    shifted = momenta.clone()
    shifted[:, 0] *= 1.0 + 1e-9  # u(λ p) = √λ u(p) for a massless spinor: |M|² × (1 + 1e-9) if nothing else moves
    before = generated.matrix_element2(momenta)
    after = generated.matrix_element2(shifted)
    assert ((after / before - 1.0).abs() < 1e-8).all(), (after / before - 1.0)


def test_aligned_inputs_and_ckm():
    values = aligned_inputs(DEFAULT_SM)
    assert values["MB"] == DEFAULT_SM.m_b and values["ymb"] == DEFAULT_SM.m_b_yukawa
    assert values["CKMlambda"] == DEFAULT_SM.sin_cabibbo
    assert "CKMlambda" not in aligned_inputs(DEFAULT_SM, model="top")
    lam = DEFAULT_SM.sin_cabibbo
    assert ckm_factor(DEFAULT_SM) == pytest.approx((1 - lam**2 / 2) ** 2, rel=1e-15)
    # SMEFTsim's Wolfenstein V_ud differs from the hand-written channel factor cos²θ_C at O(λ⁴)
    assert ckm_factor(DEFAULT_SM) - DEFAULT_SM.ckm("u", "d") ** 2 == pytest.approx(lam**4 / 4, rel=1e-12)


def test_restriction_card_rejects_unknown_entry(tmp_path):
    with pytest.raises(UnknownParameterError, match="cNotThere"):
        restriction_card(U35 / "restrict_massless.dat", tmp_path / "card.dat", {"cNotThere": 0.1})


def test_u35_cll1_is_the_cll_contact_plus_the_gf_shift(models):
    """U35's cll1 = (l̄_p γ l_r)(l̄_r γ l_p) Fierzes into the same e–μ contact as cll and also shifts G_F
    (dGf = −cll1 v²/Λ²): A_lin(cll1) = A_lin(cll) + (v²/Λ²) ∂A₀/∂ln G_F, checked by a central difference in Gf.
    The hand-written ee_mumu has no input shifts, so it is compared with cll only."""
    from sbihep.physics.ufo import generate_process

    case = CASES["ee_mumu"]
    hand = case.make(DEFAULT_SM)
    r = torch.rand(5, hand.n_random, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    momenta, _ = hand.phase_space(r, 250.0)
    inputs = aligned_inputs(DEFAULT_SM)
    both = generate_process(case.process, models["U35"], ["cll", "cll1"], inputs=inputs, orders={"NP": 1}, cache=False)
    lin = both.eft_decomposition(momenta, "linear").linear
    h = 1e-4
    sm_at = [generate_process(case.process, models["U35"], [], inputs={**inputs, "Gf": DEFAULT_SM.G_F * (1 + s * h)},
                              orders={"NP": 1}, cache=False).matrix_element2(momenta) for s in (1, -1)]
    d_sm = (sm_at[0] - sm_at[1]) / (2 * h)
    v2 = DEFAULT_SM.vev**2 / 1e6
    assert torch.allclose(lin[:, 1] - lin[:, 0], v2 * d_sm, rtol=1e-6, atol=0)
