"""MadGraph-syntax process strings → subprocesses of a UFO model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics.ufo import OrderConstraint, default_multiparticles, load_ufo, parse_process

UFO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
U35 = UFO / "SMEFTsim_U35_MwScheme_UFO"
TOY = Path(__file__).resolve().parent / "data" / "ufo_toy"
pytestmark = pytest.mark.skipif(not U35.is_dir(), reason="SMEFTsim UFO reference data not present")


@pytest.fixture(scope="module")
def model():
    return load_ufo(U35, restriction="restrict_massless.dat")


def test_default_multiparticles_follow_madgraph(model):
    labels = default_multiparticles(model)
    assert labels["p"] == (21, 2, 4, 1, 3, -2, -4, -1, -3)  # m_b = 4.18 GeV in this card: 4-flavour proton
    assert labels["l+"] == (-11, -13) and labels["vl~"] == (-12, -14, -16)
    massless_b = model.with_inputs(MB=0.0)  # MB is not fixed by this card
    assert default_multiparticles(massless_b)["p"][-2:] == (5, -5)  # MadGraph's 5-flavour proton
    toy = load_ufo(TOY)
    assert default_multiparticles(toy)["p"] == (2, -2)  # only the partons the model has


def test_wh_decay_chain_with_mirrors(model):
    spec = parse_process("p p > w+ h, w+ > e+ ve, h > b b~", model, orders={"QCD": 0, "NP": 1}, operators=["cHW", "cHq3"])
    assert spec.operators == ("cHW", "cHq3")
    assert {(c.name, c.relation, c.value) for c in spec.orders} == {("QCD", "<=", 0), ("NP", "<=", 1)}
    assert spec.multiparticles == {"p": default_multiparticles(model)["p"]}
    first = spec.subprocesses[0]
    assert first.initial == (2, -1) and first.final == (24, 25)
    assert first.external_final == (-11, 12, 5, -5)
    assert first.names == ("u", "d~", "e+", "ve", "b", "b~")
    assert first.mirror and first.beams == ((2, -1), (-1, 2))
    assert {s.initial for s in spec.subprocesses} == {(2, -1), (2, -3), (4, -1), (4, -3)}
    assert all(s.mirror for s in spec.subprocesses)
    assert spec.initial_flavours.count((-1, 2)) == 1
    decay_w = dict(first.decays)[0]
    assert decay_w.parent == 24 and decay_w.products == (-11, 12) and decay_w.node.text == "w+ > e+ ve"


def test_nested_decays_and_vertex_check(model):
    spec = parse_process("p p > t t~, (t > w+ b, w+ > l+ vl), (t~ > w- b~, w- > j j)", model)
    gg = [s for s in spec.subprocesses if s.initial == (21, 21)]
    assert len(gg) == 4  # (e+ ve | mu+ vm) × (d u~ | s c~): W → e+ vm has no vertex, nor W- → g g, u u~ …
    finals = {s.external_final for s in gg}
    assert (-11, 12, 5, 1, -2, -5) in finals and (-13, 14, 5, 3, -4, -5) in finals
    top = dict(gg[0].decays)[0]
    assert top.parent == 6 and top.products == (24, 5) and dict(top.decays)[0].products in ((-11, 12), (-13, 14))


def test_identical_particles_decays_in_order(model):
    both = parse_process("u u~ > z z, z > e+ e-", model)
    assert [s.external_final for s in both.subprocesses] == [(-11, 11, -11, 11)]
    mixed = parse_process("u u~ > z z, z > e+ e-, z > mu+ mu-", model)
    assert [s.external_final for s in mixed.subprocesses] == [(-11, 11, -13, 13)]
    with pytest.raises(InvalidInputError, match="3 decays given for the 2 'z'"):
        parse_process("u u~ > z z, z > e+ e-, z > mu+ mu-, z > ta+ ta-", model)


def test_final_state_permutations_are_one_subprocess(model):
    spec = parse_process("p p > j j", model)
    keys = [(s.initial, tuple(sorted(s.final))) for s in spec.subprocesses]
    assert len(keys) == len(set(keys))  # no final-state permutation twice
    gg = [s.final for s in spec.subprocesses if s.initial == (21, 21)]
    assert (21, 21) in gg and (2, -2) in gg and (-2, 2) not in gg
    uu = [s for s in spec.subprocesses if s.initial in ((2, -2), (-2, 2))]
    assert len({s.final for s in uu}) == len(uu)  # mirrors merged
    assert all(s.mirror for s in uu) and uu[0].beams == ((2, -2), (-2, 2))
    same = [s for s in spec.subprocesses if s.initial == (2, 2)]
    assert same and not same[0].mirror and same[0].beams == ((2, 2),)


def test_exclusions_orders_and_user_labels(model):
    spec = parse_process("e+ e- > w+ w- NP<=1 QED^2==4 / h $$ z $ a", model, orders={"QCD": 0})
    assert spec.core.excluded == (25,) and spec.core.forbidden_s_channels == (23,) and spec.core.onshell_vetoed == (22,)
    assert OrderConstraint("QED", "==", 4, True) in spec.orders
    assert OrderConstraint("NP", "<=", 1) in spec.orders and OrderConstraint("QCD", "<=", 0) in spec.orders
    w = parse_process("p p > e+ ve / w+", model)
    assert w.core.excluded == (-24, 24)  # particle and antiparticle
    s = parse_process("e+ e- > z > mu+ mu- QED=2", model, orders={"QED": "==2", "NP^2": "<=2"})
    assert s.core.required_s_channels == ("z",)
    assert OrderConstraint("QED", "==", 2) in s.orders and OrderConstraint("NP", "<=", 2, True) in s.orders
    q = parse_process("qq qq~ > e+ e-", model, multiparticles={"qq": "u d", "qq~": ["u~", "d~"]})
    assert {s.initial for s in q.subprocesses} == {(2, -2), (1, -1)}  # u d~ > e+ e- violates charge
    assert q.multiparticles == {"qq": (2, 1), "qq~": (-2, -1)}
    assert parse_process("t > w+ b", model).subprocesses[0].external == (6, 24, 5)


@pytest.mark.parametrize(
    "text, error, match",
    [
        ("e+ e- > mu+ mu_", UnknownParameterError, r"unknown particle 'mu_' at position 12.*did you mean 'mu-'"),
        ("e+ e- > zz", UnknownParameterError, "did you mean"),
        ("p p >", InvalidInputError, "expected particle names after '>' at position 5"),
        ("p p w+", InvalidInputError, "expected '>'"),
        ("p p > e+ e- QDC=0", UnknownParameterError, "'QDC' is not a coupling order.*'QCD'"),
        ("e+ e- > mu+ mu+", InvalidInputError, "conserves electric charge"),
        ("e+ e- > g a", InvalidInputError, "conserves electric charge and colour"),
        ("e+ e- > u e-", InvalidInputError, "conserves electric charge and colour"),
        ("p p > w+ h, z > e+ e-", InvalidInputError, "matches no final-state particle"),
        ("p p > t t~, t > w+ b, w+ > e+ ve", InvalidInputError, "parentheses"),
        ("p p > t t~, (t > w+ b, w+ > e+ ve", InvalidInputError, "missing '\\)'"),
        ("p p > e+ e- # x", InvalidInputError, "unexpected character '#' at position 12"),
        ("p p > e+ e- ) ", InvalidInputError, "unexpected '\\)'"),
        ("p p > e+ e-, e+ e- > mu+ mu-", InvalidInputError, "exactly one initial particle"),
        ("", InvalidInputError, "non-empty"),
    ],
)
def test_errors(model, text, error, match):
    with pytest.raises(error, match=match):
        parse_process(text, model)


def test_argument_errors(model):
    with pytest.raises(UnknownParameterError, match="did you mean.*'cHWB'"):
        parse_process("e+ e- > mu+ mu-", model, operators=["cHBW"])
    with pytest.raises(InvalidInputError, match="orders"):
        parse_process("e+ e- > mu+ mu-", model, orders={"QED": "lots"})
    with pytest.raises(UnknownParameterError, match="orders"):
        parse_process("e+ e- > mu+ mu-", model, orders={"QEDD": 2})
    with pytest.raises(InvalidInputError, match="UFOModel"):
        parse_process("e+ e- > mu+ mu-", "sm")
