"""Generated UFO processes against closed-form results and symmetry checks (issue 20, "≥ 12 further
processes"): e⁺e⁻ → W⁺W⁻ (SM, analytic), Drell–Yan with four-fermion contact terms (analytic per EFT
coefficient), g g → g g g (Parke–Taylor), Lorentz invariance, Ward identities and the EFT polynomial
against finite differences in θ.  The full set of processes is benchmarks/ufo_amplitudes/checks.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sbihep.physics.ufo import checks, generate_process, load_ufo
from sbihep.physics.ufo import references as R

U35 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo" / "SMEFTsim_U35_MwScheme_UFO"
pytestmark = pytest.mark.skipif(not U35.is_dir(), reason="SMEFTsim U35 UFO not available")


@pytest.fixture(scope="module")
def model():
    return load_ufo(U35, restriction=U35 / "restrict_massless.dat")


@pytest.fixture(scope="module")
def values(model):
    return model.evaluate()


@pytest.fixture(scope="module")
def ee_ww(model):
    return generate_process("e+ e- > w+ w-", model, [], cache=False)


def _ew(values):
    return dict(e=values["ee"].real, sw=values["sth"].real, mz=values["MZ"].real, wz=values["WZ"].real)


def test_ee_ww_lorentz_invariant_with_pruned_helicities(ee_ww):
    # helicity pruning at centre-of-mass points dropped e⁻_R e⁺_L → W⁺(±) W⁻(∓), which vanish only in
    # that frame: the boosted |M|² was off by ~1e-6 before the pruning moved to a random frame
    momenta = checks.random_momenta(ee_ww, 500.0, 8, seed=1)
    assert checks.lorentz_invariance(ee_ww, momenta, seed=2) < 1e-12
    assert ee_ww.amplitude_of[ee_ww.subprocesses[0]].helicities.shape[0] == 18


def test_ee_ww_matches_the_analytic_sm_result(ee_ww, values):
    momenta = checks.random_momenta(ee_ww, 500.0, 8, seed=3)  # legs: e+ e- W+ W-
    ref = R.ee_to_ww_sm(momenta[:, 1], momenta[:, 0], momenta[:, 3], momenta[:, 2], mw=values["MW"].real, **_ew(values))
    got = ee_ww.matrix_element2(momenta)
    assert torch.allclose(got, ref, rtol=1e-10, atol=0.0)


def test_ee_ww_reference_has_the_gauge_cancellation(ee_ww, values):
    # with the wrong relative sign of the ν exchange |M|² grows like s²/M_W⁴; with the right one it
    # tends to a constant (zero Z width: the cancellation is exact)
    par = _ew(values) | {"wz": 0.0}
    means = []
    for rs in (3000.0, 30000.0):
        p = checks.random_momenta(ee_ww, rs, 16, seed=4)
        means.append(float(R.ee_to_ww_sm(p[:, 1], p[:, 0], p[:, 3], p[:, 2], mw=values["MW"].real, **par).mean()))
    assert means[1] / means[0] == pytest.approx(1.0, abs=0.05)


def test_drell_yan_contact_terms_match_the_chiral_amplitudes(model, values):
    ops = ["clq1", "clq3", "ceu", "clu"]
    proc = generate_process("u u~ > e- e+", model, ops, orders={"NP": 1}, cache=False)
    momenta = checks.random_momenta(proc, 700.0, 6, seed=5)
    lam2 = values["LambdaSMEFT"].real ** 2
    par = _ew(values) | {"q_quark": 2.0 / 3.0, "t3_quark": 0.5}

    def ref(theta):
        th = dict.fromkeys(ops, 0.0) | theta
        contact = {"LL": (th["clq1"] - th["clq3"]) / lam2, "RR": th["ceu"] / lam2, "RL": th["clu"] / lam2}
        return R.drell_yan_contact(*momenta.unbind(1), contact=contact, **par)

    dec = proc.eft_decomposition(momenta, "quadratic")
    r0 = ref({})
    assert torch.allclose(dec.constant, r0, rtol=1e-10, atol=0.0)
    for i, a in enumerate(ops):
        plus, minus = ref({a: 1.0}), ref({a: -1.0})
        assert torch.allclose(dec.linear[:, i], (plus - minus) / 2, rtol=1e-10, atol=1e-12 * float(r0.max()))
        assert torch.allclose(dec.quadratic[:, i, i], (plus + minus - 2 * r0) / 2, rtol=1e-10, atol=1e-12 * float(r0.max()))
        for j in range(i + 1, len(ops)):
            b = ops[j]
            both = ref({a: 1.0, b: 1.0})
            # both = r0 + l_a + l_b + q_aa + q_bb + 2 q_ab
            l_b, q_bb = (ref({b: 1.0}) - ref({b: -1.0})) / 2, (ref({b: 1.0}) + ref({b: -1.0}) - 2 * r0) / 2
            cross = (both - r0 - (plus - minus) / 2 - l_b - (plus + minus - 2 * r0) / 2 - q_bb) / 2
            assert torch.allclose(dec.quadratic[:, i, j], cross, rtol=1e-9, atol=1e-12 * float(r0.max()))


def test_drell_yan_eft_polynomial_against_finite_differences_and_rebuild(model):
    proc = generate_process("u u~ > e- e+", model, ["clq3", "ceu"], orders={"NP": 1}, cache=False)
    momenta = checks.random_momenta(proc, 700.0, 4, seed=6)
    dec = proc.eft_decomposition(momenta, "quadratic")
    f0 = proc.matrix_element2(momenta, None)
    for i, op in enumerate(proc.operators):
        fp, fm = proc.matrix_element2(momenta, {op: 1.0}), proc.matrix_element2(momenta, {op: -1.0})
        assert torch.allclose(dec.linear[:, i], (fp - fm) / 2, rtol=1e-10, atol=1e-13 * float(f0.max()))
        assert torch.allclose(dec.quadratic[:, i, i], (fp + fm - 2 * f0) / 2, rtol=1e-10, atol=1e-13 * float(f0.max()))
    assert checks.eft_exactness(proc, "u u~ > e- e+", model, momenta, orders={"NP": 1}) < 1e-10


def test_four_gluon_reference_is_the_textbook_formula(values):
    g = values["G"].real
    gen = torch.Generator().manual_seed(7)
    c = 2 * torch.rand(6, generator=gen, dtype=torch.float64) - 1
    sn = (1 - c * c).sqrt()
    e = 250.0
    z = torch.zeros_like(c)
    p = torch.stack([torch.stack([z + e, z, z, z + e], -1), torch.stack([z + e, z, z, z - e], -1),
                     torch.stack([z + e, e * sn, z, e * c], -1), torch.stack([z + e, -e * sn, z, -e * c], -1)], 1)
    s, t = 4 * e * e, -2 * e * e * (1 - c)
    u = -s - t
    textbook = 9 / 2 * g ** 4 * (3 - t * u / s ** 2 - s * u / t ** 2 - s * t / u ** 2) / 2  # 1/2! identical gluons
    assert torch.allclose(R.gluon_mhv_colour_summed(p, g), textbook, rtol=1e-12, atol=0.0)


def test_five_gluons_parke_taylor_ward_and_lorentz(model, values):
    proc = generate_process("g g > g g g", model, [], orders={"QCD": 3}, cache=False)
    momenta = checks.random_momenta(proc, 500.0, 4, seed=8)
    ref = R.gluon_mhv_colour_summed(momenta, values["G"].real)
    assert torch.allclose(proc.matrix_element2(momenta), ref, rtol=1e-10, atol=0.0)
    ward = checks.ward_identities(proc.amplitude_of[proc.subprocesses[0]], momenta)
    assert sorted(ward) == [0, 1, 2, 3, 4] and max(ward.values()) < 1e-10
    assert checks.lorentz_invariance(proc, momenta, seed=9) < 1e-12
