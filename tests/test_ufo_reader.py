"""UFO reader: the SMEFTsim 3.0 models load unedited, parameters and couplings match hand computations and
sbihep's hand-written couplings, couplings are linear in the Wilson coefficients, the reader refuses model
code it should not run, and restriction cards prune as MadGraph's do."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ModelFormatError, NonlinearCouplingWarning, UnknownParameterError, UnsafeModelError
from sbihep.physics.couplings import SMInputs
from sbihep.physics.processes.ee_mumu import EEToMuMu
from sbihep.physics.ufo import load_ufo
from sbihep.physics.ufo.cards import parse_card
from sbihep.physics.ufo.expressions import ChainCompiler, STANDARD_FUNCTIONS

UFO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
U35 = UFO / "SMEFTsim_U35_MwScheme_UFO"
TOP = UFO / "SMEFTsim_top_MwScheme_UFO"
TOY = Path(__file__).resolve().parent / "data" / "ufo_toy"
needs_smeftsim = pytest.mark.skipif(not U35.is_dir(), reason="SMEFTsim UFO reference data not present")


@pytest.fixture(scope="module")
def u35():
    return load_ufo(U35)


@pytest.fixture(scope="module")
def top():
    return load_ufo(TOP)


def sm_like(model) -> SMInputs:
    """sbihep's SMInputs at the model's {m_W, m_Z, G_F}."""
    v = model.inputs
    return SMInputs(G_F=v["Gf"], m_W=v["MW"], m_Z=v["MZ"])


def vertex(model, names, lorentz=None):
    """The (couplings by Lorentz name) of all vertices with these particles."""
    out: dict[str, list[str]] = {}
    for v in model.vertices:
        if sorted(p.name for p in v.particles) == sorted(names):
            for (ci, li), c in v.couplings.items():
                out.setdefault(v.lorentz[li].name, []).append(c.name)
    return out


# ---- loading ---------------------------------------------------------------------------------------
@needs_smeftsim
def test_both_smeftsim_models_load_unedited(u35, top):
    assert len(u35.particles) == 36 and len(top.particles) == 36
    assert len(u35.couplings) == 3284 and len(top.couplings) == 1368
    assert len(u35.vertices) == 1252 and len(top.vertices) == 904
    assert {"QCD", "QED", "NP"} <= set(u35.orders)
    w_minus = u35.particle("W-")
    assert w_minus.pdg_code == -24 and w_minus.charge == -1.0 and w_minus.antiname == "W+"
    assert u35.particle("u").charge == pytest.approx(2 / 3)  # 'charge = 2/3' with from __future__ import division
    assert u35.particle("u~").color == -3
    assert u35.particle("w+") is u35.particle("W+")  # case-insensitive, as MadGraph reads process strings
    with pytest.raises(UnknownParameterError, match="did you mean"):
        u35.particle("W++")


@needs_smeftsim
def test_sm_parameters_from_mw_mz_gf(u35, top):
    for model in (u35, top):
        v = model.evaluate()
        mw, mz, gf = 80.387, 91.1876, 1.1663787e-5  # the defaults of parameters.py
        assert v["MW"] == mw and v["MZ"] == mz and v["Gf"] == gf
        aew = math.sqrt(2) * gf * mw**2 * (1 - mw**2 / mz**2) / math.pi
        assert v["aEW"].real == pytest.approx(aew, rel=1e-14)
        assert v["sth2"].real == pytest.approx(1 - mw**2 / mz**2, rel=1e-14)
        assert v["ee"].real == pytest.approx(math.sqrt(4 * math.pi * aew), rel=1e-14)
        vev = (math.sqrt(2) * gf) ** -0.5
        assert v["vevhat"].real == pytest.approx(vev, rel=1e-14)
        sm = sm_like(model)
        assert v["gw"].real == pytest.approx(sm.g, rel=1e-13)
        assert v["ee"].real == pytest.approx(sm.e, rel=1e-13)
        assert v["vevhat"].real == pytest.approx(sm.vev, rel=1e-13)
        assert v.mass(model.particle("Z")) == mz and v.width(model.particle("W+")) == 2.085
        assert all(val.imag == 0 for name, val in v.parameters.items() if model.parameters[name].type == "real")


@needs_smeftsim
def test_sm_couplings_match_hand_values_and_sbihep(u35):
    v = u35.evaluate()
    sm = sm_like(u35)
    e, s, c = sm.e, math.sqrt(sm.sin2_w), sm.cos_w
    # photon–electron: vertex (e+, e-, a) with Gamma(3,2,1): UFO coupling +i e, i.e. the vertex i·(+e)γ^μ
    # for charge −1 — sbihep's ee_mumu writes iγ^μ(g_L P_L + g_R P_R) with g = −eQ = +e: same sign.
    aee = vertex(u35, ["e+", "e-", "a"])
    sm_photon = [n for n in aee["FFV1"] if u35.couplings[n].order == {"QED": 1}]
    assert sm_photon == ["GC_4"]
    assert v["GC_4"] == pytest.approx(1j * e, rel=1e-13)
    gl, gr = EEToMuMu(sm).chiral_couplings()["photon"]
    assert v["GC_4"] == pytest.approx(1j * gl, rel=1e-13) and gl == gr
    # Z–electron: FFV1 (γ^μ) coefficient + FFV3 (γ^μ P_L) coefficient = i g_L, FFV1 alone = i g_R
    zgl, zgr = EEToMuMu(sm).chiral_couplings()["Z"]
    assert v["GC_197"] == pytest.approx(-1j * e * s / c, rel=1e-13)
    assert v["GC_136"] == pytest.approx(1j * e / (2 * c * s), rel=1e-13)
    assert v["GC_197"] + v["GC_136"] == pytest.approx(1j * zgl, rel=1e-13)
    assert v["GC_197"] == pytest.approx(1j * zgr, rel=1e-13)
    # W–lepton: (e+, ve, W-) with Gamma P_L: −i g/√2, sbihep's wh_lvbb vertex i g_w with g_w = −g/√2
    assert "GC_125" in vertex(u35, ["e+", "ve", "W-"])["FFV3"]
    assert v["GC_125"] == pytest.approx(1j * (-sm.g / math.sqrt(2)), rel=1e-13)
    # h W W (Metric): i g m_W, as sbihep's wh_lvbb SM diagram; cHW with VVS4 = 4i v/Λ² [P(1,2)P(2,1) − P·P g],
    # i.e. i G [(k₊·k₋)(ε₊·ε₋) − (k₊·ε₋)(k₋·ε₊)] with G = −4v/Λ², wh_lvbb's normalisation
    hww = vertex(u35, ["W-", "W+", "H"])
    assert "GC_283" in hww["VVS3"] and v["GC_283"] == pytest.approx(1j * sm.g * sm.m_W, rel=1e-13)
    d = u35.coupling_decomposition(["cHW"])
    assert "GC_266" in hww["VVS4"] and d.linear[0, d.index("GC_266")] == pytest.approx(4j * sm.vev / 1e6, rel=1e-13)


@needs_smeftsim
def test_couplings_are_linear_in_all_wilson_coefficients(u35, top):
    for model in (u35, top):
        ops = [p.name for p in model.external_parameters if p.lhablock in ("SMEFT", "SMEFTcpv")]
        d = model.coupling_decomposition(ops)
        assert d.checked and d.nonlinear_couplings == ()
        # the input shifts of the m_W scheme depend on θ (documented in the model module)
        assert {"dGf", "dgw", "dg1", "dMZ2", "dkH"} <= set(d.theta_dependent_parameters)
        assert d.nonlinear_parameters == ("vev",)  # vev = (1 − 3 cH v²/(8 λ Λ²)) vevT is a product of linear terms


@needs_smeftsim
def test_eft_coefficient_matches_finite_difference_and_hand_value(u35):
    d = u35.coupling_decomposition(["cHWB", "cHl3", "cll1"])
    v0 = u35.evaluate()
    lam, vev, e = 1000.0, v0["vevhat"].real, v0["ee"].real
    sth, cth = v0["sth"].real, v0["cth"].real
    # GC_417 = −i cHWB cth e v²/(Λ² sth)
    assert d.linear[0, d.index("GC_417")] == pytest.approx(-1j * cth * e * vev**2 / (lam**2 * sth), rel=1e-13)
    h = 1e-3
    for k, op in enumerate(d.operators):
        plus = u35.evaluate({op: h}).couplings
        minus = u35.evaluate({op: -h}).couplings
        fd = np.array([(plus[n] - minus[n]) / (2 * h) for n in d.coupling_names])
        assert np.allclose(fd, d.linear[k], rtol=1e-7, atol=1e-12)
    theta = np.array([0.3, -1.2, 0.7])
    direct = u35.evaluate(dict(zip(d.operators, theta))).couplings
    assert np.allclose(d.couplings(theta), [direct[n] for n in d.coupling_names], rtol=1e-12, atol=1e-15)
    t = torch.tensor(theta, requires_grad=True)
    out = d.couplings(t)
    assert out.dtype == torch.complex128
    out[d.index("GC_417")].imag.backward()
    assert t.grad[0].item() == pytest.approx(d.linear[0, d.index("GC_417")].imag, rel=1e-14)


@needs_smeftsim
def test_inputs_by_name_and_lha(u35):
    m = u35.with_inputs({("SMINPUTS", 1): 80.0}, MZ=91.0)
    assert m.inputs["MW"] == 80.0 and m.inputs["MZ"] == 91.0 and u35.inputs["MW"] == 80.387
    assert m.evaluate()["sth2"].real == pytest.approx(1 - 80.0**2 / 91.0**2, rel=1e-14)
    with pytest.raises(UnknownParameterError, match="internal parameter"):
        u35.with_inputs(sth2=0.2)
    with pytest.raises(UnknownParameterError, match="did you mean.*'cHWB'"):
        u35.with_inputs(cHBW=1.0)
    with pytest.raises(InvalidInputError, match="finite"):
        u35.with_inputs(MW=float("nan"))
    with pytest.raises(InvalidInputError, match="complex"):
        u35.with_inputs(MW=120.0).evaluate()  # MW > MZ: sth = sqrt(negative) for a real parameter


@needs_smeftsim
def test_restriction_card_prunes_vanishing_couplings(u35):
    r = load_ufo(U35, restriction="restrict_massless.dat")
    assert r.restriction == "restrict_massless.dat"
    assert len(r.couplings) < len(u35.couplings) // 2
    assert "GC_661" in r.removed_couplings  # −i y_e/√2, zero with Me = 0
    assert not vertex(r, ["e+", "e-", "H"])  # every e+ e- H coupling is proportional to ye
    assert "GC_4" in r.couplings and "GC_417" in r.couplings  # cHWB = 0.02 in the card: kept
    assert {"Me", "MD", "CKMlambda", "cHWtil"} <= r.fixed
    with pytest.raises(InvalidInputError, match="fixed"):
        r.with_inputs(Me=0.1)
    with pytest.raises(InvalidInputError, match="fixed"):
        r.coupling_decomposition(["cHWtil"])
    for v in r.vertices:  # every kept entry refers to valid colour/lorentz indices and kept couplings
        for (ci, li), c in v.couplings.items():
            assert ci < len(v.color) and li < len(v.lorentz) and c.name in r.couplings
    # the removed couplings are zero at the restricted point, the kept ones agree with the full model
    full = u35.with_inputs(r.inputs).evaluate().couplings
    assert all(full[n] == 0 for n in r.removed_couplings)
    kept = r.evaluate().couplings
    assert all(kept[n] == full[n] for n in kept)
    p = load_ufo(U35, param_card="param_card_massless.dat")
    assert p.inputs["MU"] == 0.0 and not p.fixed and len(p.couplings) == len(u35.couplings)


# ---- synthetic model: sandbox, linearity failures ------------------------------------------------------
def test_toy_model_loads_without_reading_object_library():
    m = load_ufo(TOY)  # its object_library.py is Python 2 and would not even compile
    assert [p.name for p in m.particles] == ["a", "e-", "e+", "u", "u~"]
    assert m.particle("e+").options["LeptonNumber"] == -1  # anti() negates quantum numbers
    assert m.internal_names.index("dX") < m.internal_names.index("eshift")  # sorted by dependency
    v = m.evaluate()
    e = 2 * math.sqrt(math.pi / 127.9)
    assert v["GC_1"] == pytest.approx(-1j * e, rel=1e-14)
    assert v["ye"].real == pytest.approx(math.log(1.000511) / math.sqrt(2), rel=1e-14)
    d = m.coupling_decomposition(["cX", "cY"])
    assert d.linear[0, d.index("GC_2")] == pytest.approx(1j * e * 1e-2, rel=1e-13)
    assert d.linear[1, d.index("GC_3")] == pytest.approx(np.conj(1j * e * 1e-6), rel=1e-13)  # complexconjugate
    assert d.theta_dependent_parameters == ("dX", "eshift")


def copy_toy(tmp_path: Path) -> Path:
    dst = tmp_path / "toy"
    shutil.copytree(TOY, dst)
    return dst


def test_nonlinear_coupling_is_reported_by_name(tmp_path):
    toy = copy_toy(tmp_path)
    with open(toy / "couplings.py", "a") as f:
        f.write("\nGC_9 = Coupling(name = 'GC_9', value = 'ee*cX*cY/Lam**4', order = {'NP':2})\n")
    m = load_ufo(toy)
    with pytest.raises(InvalidInputError, match="GC_9"):
        m.coupling_decomposition(["cX", "cY"])
    with pytest.warns(NonlinearCouplingWarning, match="GC_9"):
        d = m.coupling_decomposition(["cX", "cY"], nonlinear="warn")
    assert d.nonlinear_couplings == ("GC_9",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.coupling_decomposition(["cX"])  # linear in cX alone (cY = 0)


@pytest.mark.parametrize(
    "file, line, match",
    [
        ("parameters.py", "import os\n", "import os"),
        ("parameters.py", "from os import system\n", "from os import"),
        ("parameters.py", "x = __import__('os').system('touch PWNED')\n", "__import__"),
        ("parameters.py", "x = open('PWNED', 'w')\n", "open"),
        ("parameters.py", "def f():\n    pass\n", "FunctionDef"),
        ("parameters.py", "for i in []:\n    pass\n", "For"),
        ("parameters.py", "x = Param.__class__\n", "__class__"),
        ("couplings.py", "GC_9 = Coupling(name = 'GC_9', value = \"__import__('os').system('touch PWNED')\", order = {'QED':1})\n",
         "__import__"),
        ("couplings.py", "GC_9 = Coupling(name = 'GC_9', value = '().__class__.__bases__', order = {'QED':1})\n", "attribute"),
        ("couplings.py", "GC_9 = Coupling(name = 'GC_9', value = 'ee if [x for x in ()] else 0', order = {'QED':1})\n",
         "ListComp"),
        ("function_library.py", "f = Function(name = 'f', arguments = ('z',), expression = 'z.__class__')\n", "attribute"),
        ("__init__.py", "import os; os.system('touch PWNED')\n", "Expr|os"),
    ],
)
def test_sandbox_refuses_code_and_names_the_line(tmp_path, monkeypatch, file, line, match):
    toy = copy_toy(tmp_path)
    monkeypatch.chdir(tmp_path)
    text = (toy / file).read_text()
    n_lines = text.count("\n")
    (toy / file).write_text(text + line)
    with pytest.raises(UnsafeModelError, match=match) as info:
        load_ufo(toy).evaluate()
    assert f"{file}:" in str(info.value)
    if file != "couplings.py" and file != "function_library.py":
        assert f"{file}:{n_lines + 1}" in str(info.value)
    assert not (tmp_path / "PWNED").exists() and not (toy / "PWNED").exists()


def test_reader_errors_for_broken_models(tmp_path):
    with pytest.raises(ModelFormatError, match="not a directory"):
        load_ufo(tmp_path / "nothing")
    toy = copy_toy(tmp_path)
    (toy / "vertices.py").unlink()
    with pytest.raises(ModelFormatError, match="vertices.py"):
        load_ufo(toy)
    toy = copy_toy(tmp_path / "b")
    (toy / "couplings.py").write_text((toy / "couplings.py").read_text() + "\nGC_9 = Coupling(name = 'GC_9', value = 'ee*nope', order = {'QED':1})\n")
    with pytest.raises(ModelFormatError, match="couplings.py:.*GC_9.*'nope'"):
        load_ufo(toy)
    toy = copy_toy(tmp_path / "c")
    (toy / "parameters.py").write_text((toy / "parameters.py").read_text() + "\nprint 'python 2'\n")
    with pytest.raises(ModelFormatError, match="parameters.py:.*Python 3"):
        load_ufo(toy)
    with pytest.raises(ModelFormatError, match="no card"):
        load_ufo(TOY, restriction="restrict_nope.dat")


def test_restriction_and_cards_on_toy():
    r = load_ufo(TOY, restriction="massless")
    assert r.removed_couplings == ("GC_3", "GC_5") and r.fixed == {"Me", "cY"}
    assert [v.name for v in r.vertices] == ["V_1", "V_3"]
    card = parse_card("Block MASS\n 11 1.5d-3 # Me\nDECAY 23 2.4\n 0.5 2 11 -11\nBlock QNUMBERS 9000005\n 1 0\n")
    assert card == {("mass", (11,)): 1.5e-3, ("decay", (23,)): 2.4}
    with pytest.raises(ModelFormatError, match="card:2"):
        parse_card("Block MASS\n 11 heavy\n", "card")
    with pytest.raises(ModelFormatError, match="twice"):
        parse_card("Block MASS\n 11 1\n 11 2\n")


def test_expression_chain_is_elementwise_and_sorted():
    chain = ChainCompiler(["x"], [("b", "a*2", True, "t"), ("a", "cmath.sqrt(x) if x > 0 else -x", False, "t")],
                          [("c", "complex(0,1)*b + reglog(x)", "t")], STANDARD_FUNCTIONS)
    internals, outputs = chain(np.array([[4.0, -1.0, 0.0]]))
    assert chain.internal_names == ("a", "b")
    assert np.allclose(internals[0], [2.0, 1.0, 0.0])
    assert np.allclose(outputs[0], [4j + math.log(4.0), 2j + 1j * math.pi, 0.0])  # cmath.log(-1) = iπ, reglog(0) = 0
    huge = ChainCompiler(["x"], [], [("c", "9**9**9", "t")], STANDARD_FUNCTIONS)  # numpy arithmetic: no endless bigint
    assert not np.isfinite(huge(np.zeros((1, 1)))[1][0, 0])
    with pytest.raises(UnsafeModelError, match="attribute"):
        ChainCompiler(["x"], [], [("c", "x.real", "t")], STANDARD_FUNCTIONS)
    with pytest.raises(ModelFormatError, match="depends on itself"):
        ChainCompiler([], [("a", "b", True, "t:a"), ("b", "a", True, "t:b")], [], STANDARD_FUNCTIONS)


@needs_smeftsim
def test_decomposed_couplings_refuse_non_finite_and_unknown_theta(u35):
    """θ by name equals θ by position; NaN/inf θ, a typo'd operator or a string input are errors, never
    NaN couplings or a number read from text."""
    import torch

    dec = u35.coupling_decomposition(["cHW", "cHWB"], check=False)
    by_name = dec.couplings({"cHWB": 0.3})
    assert np.array_equal(by_name, dec.couplings(np.array([0.0, 0.3])))
    for bad in (np.array([np.nan, 0.0]), np.array([[0.0, np.inf]]), {"cHW": float("nan")}, torch.tensor([0.0, float("nan")])):
        with pytest.raises(InvalidInputError, match="finite"):
            dec.couplings(bad)
    with pytest.raises(UnknownParameterError, match="did you mean.*'cHWB'"):
        dec.couplings({"cHBW": 1.0})
    with pytest.raises(InvalidInputError, match="last dimension"):
        dec.couplings(np.zeros(3))
    with pytest.raises(InvalidInputError, match="must be a number"):
        u35.with_inputs(MZ="91.1876")
