"""Generated processes from the SMEFTsim UFO models: textbook |M|², gauge invariance, fusion, cache, CLI.

The 2 → 2 QCD and QED cross sections are exact tree-level formulas (e.g. ESW, "QCD and collider
physics", Table 7.1; Peskin–Schroeder 5.2 for Bhabha), averaged over initial spins and colours;
identical final-state particles carry the 1/n! of the phase-space integral in ``Amplitudes.average``,
which the formulas below do not, hence the explicit factors.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
import torch

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics.lorentz import dot
from sbihep.physics.ufo import checks, generate_process, load_ufo

UFO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
U35 = UFO / "SMEFTsim_U35_MwScheme_UFO"
TOP = UFO / "SMEFTsim_top_MwScheme_UFO"
pytestmark = pytest.mark.skipif(not U35.is_dir(), reason="SMEFTsim UFO reference data not present")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIHEP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sm():
    return load_ufo(U35, restriction=U35 / "restrict_SMlimit_massless.dat")


@pytest.fixture(scope="module")
def eft():
    return load_ufo(U35, restriction=U35 / "restrict_massless.dat")


def mandelstam(p):
    return 2 * dot(p[:, 0], p[:, 1]), -2 * dot(p[:, 0], p[:, 2]), -2 * dot(p[:, 0], p[:, 3])


TEXTBOOK = {
    # process: (orders, averaged Σ|M|² in units of g⁴ (QCD) or e⁴ (QED), identical-particle factor)
    "g g > g g": ({"QED": 0}, lambda s, t, u: 4.5 * (3 - t * u / s**2 - s * u / t**2 - s * t / u**2), 2),
    "u u~ > g g": ({"QED": 0}, lambda s, t, u: 32 / 27 * (t * t + u * u) / (t * u) - 8 / 3 * (t * t + u * u) / s**2, 2),
    "g g > u u~": ({"QED": 0}, lambda s, t, u: 1 / 6 * (t * t + u * u) / (t * u) - 3 / 8 * (t * t + u * u) / s**2, 1),
    "u u > u u": ({"QED": 0}, lambda s, t, u: 4 / 9 * ((s * s + u * u) / t**2 + (s * s + t * t) / u**2) - 8 / 27 * s * s / (t * u), 2),
    "u u~ > u u~": ({"QED": 0}, lambda s, t, u: 4 / 9 * ((s * s + u * u) / t**2 + (u * u + t * t) / s**2) - 8 / 27 * u * u / (s * t), 1),
    "e+ e- > e+ e- / z h": ({"QCD": 0}, lambda s, t, u: 2 * ((s * s + u * u) / t**2 + 2 * u * u / (s * t) + (u * u + t * t) / s**2), 1),
}


@pytest.mark.parametrize("process", list(TEXTBOOK))
def test_two_to_two_textbook_cross_sections_ward_and_lorentz(sm, process):
    orders, formula, identical = TEXTBOOK[process]
    values = sm.evaluate()
    coupling = math.sqrt(4 * math.pi * values["aS"].real) if "QED" in orders else values["ee"].real
    proc = generate_process(process, sm, (), orders=orders, cache=False)
    amp = proc.amplitude_of[proc.subprocesses[0]]
    p = checks.random_momenta(proc, 500.0, 6, seed=3)
    expected = coupling**4 * formula(*mandelstam(p)) / identical
    assert torch.allclose(proc.matrix_element2(p), expected, rtol=1e-12, atol=0)
    assert checks.lorentz_invariance(proc, p) < 1e-12
    assert all(v < 1e-12 for v in checks.ward_identities(amp, p).values())


def test_quark_gluon_ward_identity_needs_outgoing_momenta_in_ufo_structures(sm):
    """q q̄ → g g interferes the ggg vertex (linear in P) with the t/u channels: with P(μ, N) read as an
    incoming momentum its Ward identity fails at O(1) (the engine read it so before this test)."""
    proc = generate_process("u u~ > g g", sm, (), orders={"QED": 0}, cache=False)
    amp = proc.amplitude_of[proc.subprocesses[0]]
    p = checks.random_momenta(proc, 500.0, 4, seed=5)
    ward = checks.ward_identities(amp, p)
    assert set(ward) == {2, 3} and max(ward.values()) < 1e-12


def test_top_pair_with_massive_propagator_and_chromo_dipole():
    model = load_ufo(TOP, restriction=TOP / "restrict_massless.dat")
    values = model.evaluate()
    gs, mt = math.sqrt(4 * math.pi * values["aS"].real), values["MT"].real
    proc = generate_process("g g > t t~", model, ["ctGRe"], orders={"NP": 1}, cache=False)
    amp = proc.amplitude_of[proc.subprocesses[0]]
    p = checks.random_momenta(proc, 900.0, 5, seed=3)
    s, t1, u1 = 2 * dot(p[:, 0], p[:, 1]), -2 * dot(p[:, 0], p[:, 2]), -2 * dot(p[:, 0], p[:, 3])
    expected = gs**4 * (1 / 6 / (t1 * u1) - 3 / 8 / s**2) * (t1**2 + u1**2 + 4 * mt**2 * s - 4 * mt**4 * s**2 / (t1 * u1))
    assert torch.allclose(proc.matrix_element2(p), expected, rtol=1e-12, atol=0)
    assert checks.lorentz_invariance(proc, p) < 1e-12
    full, gauge = amp.components(p), amp.components(p, gauge_leg=0)
    ratio = gauge[1].abs().pow(2).sum((1, 2)).sqrt() / (full[1].abs().pow(2).sum((1, 2)).sqrt() * p[:, 0, 0])
    assert float(full[1].abs().max()) > 0 and float(ratio.max()) < 1e-12  # the ctG component alone is gauge invariant
    assert checks.eft_exactness(proc, "g g > t t~", model, p, orders={"NP": 1}) < 1e-10


def test_fused_topologies_equal_the_separate_diagrams(eft):
    from sbihep.physics.ufo.amplitude import TreeAmplitude
    from sbihep.physics.ufo.diagrams import diagrams_for
    from sbihep.physics.ufo.process_spec import parse_process

    ops = ["cHl3", "cHe", "cll1", "cle", "cHWB"]
    proc = generate_process("e+ e- > mu+ mu-", eft, ops, orders={"NP": 1}, cache=False)
    from sbihep.physics.ufo.generated import _wilson_coefficients

    model = eft.with_inputs({n: 0.0 for n in _wilson_coefficients(eft, None) if n not in ops and n not in eft.fixed})
    spec = parse_process("e+ e- > mu+ mu-", model, orders={"NP": 1})
    separate = TreeAmplitude(model, diagrams_for(model, spec.subprocesses[0], spec), ops, fuse=False)
    fused = proc.amplitude_of[proc.subprocesses[0]]
    assert fused.n_resolved < separate.n_resolved
    p = checks.random_momenta(proc, 300.0, 4, seed=1)
    a, b = fused.amplitudes(p).gram(), separate.amplitudes(p).gram()
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14 * float(b.abs().max()))
    assert checks.eft_exactness(proc, "e+ e- > mu+ mu-", eft, p, orders={"NP": 1}, pairs=False) < 1e-10


def test_process_is_cached_on_disk_and_rebuilt_when_the_cache_is_broken(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIHEP_CACHE_DIR", str(tmp_path / "c"))
    args = ("e+ e- > mu+ mu-", U35, ["cle"])
    first = generate_process(*args, restriction="restrict_massless.dat", orders={"NP": 1})
    files = list((tmp_path / "c").glob("*.pkl"))
    assert len(files) == 1
    start = time.perf_counter()
    second = generate_process(*args, restriction="restrict_massless.dat", orders={"NP": 1})
    assert time.perf_counter() - start < 1.0
    p = checks.random_momenta(first, 200.0, 3)
    assert torch.equal(first.eft_decomposition(p).packed(), second.eft_decomposition(p).packed())
    other = generate_process(*args, restriction="restrict_massless.dat", orders={"NP": 1}, inputs={"MZ": 91.0})
    assert len(list((tmp_path / "c").glob("*.pkl"))) == 2 and not torch.equal(
        other.eft_decomposition(p).constant, first.eft_decomposition(p).constant)
    files[0].write_bytes(b"not a pickle")
    again = generate_process(*args, restriction="restrict_massless.dat", orders={"NP": 1})
    assert torch.equal(again.eft_decomposition(p).packed(), first.eft_decomposition(p).packed())


def test_generated_process_is_a_process(eft):
    proc = generate_process("p p > e+ ve", eft, ["cHl3"], orders={"NP": 1}, cache=False)
    assert proc.collider == "pp" and proc.operators == ("cHl3",)
    pids = {(c.pid_a, c.pid_b) for c in proc.channels()}
    assert (2, -1) in pids and (-1, 2) in pids  # both beam assignments
    p = checks.random_momenta(proc, 300.0, 4)
    proc.check_momenta(p)
    linear = proc.matrix_element2(p, {"cHl3": 1.0}, order="linear") - proc.matrix_element2(p)
    assert torch.allclose(linear, proc.eft_decomposition(p, "linear").linear[:, 0], rtol=1e-12)


def test_bad_inputs_name_what_is_wrong(eft, tmp_path):
    with pytest.raises(UnknownParameterError, match="cXYZ"):
        generate_process("e+ e- > mu+ mu-", eft, ["cXYZ"], cache=False)
    with pytest.raises(InvalidInputError, match="operators θ"):
        generate_process("e+ e- > mu+ mu-", eft, ["cle"], inputs={"cle": 1.0}, cache=False)
    with pytest.raises(InvalidInputError, match="not a UFO directory"):
        generate_process("e+ e- > mu+ mu-", tmp_path / "nowhere", ())
    proc = generate_process("e+ e- > mu+ mu-", eft, (), cache=False)
    with pytest.raises(InvalidInputError, match="not a vector boson"):
        proc.amplitude_of[proc.subprocesses[0]].components(checks.random_momenta(proc, 100.0, 1), gauge_leg=0)


def test_cli_xsec_generates_from_a_model(tmp_path):
    from typer.testing import CliRunner

    from sbihep.cli import app

    env = {**os.environ, "SBIHEP_CACHE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["xsec", "e+ e- > mu+ mu-", "--model", str(U35), "--restriction", "restrict_massless.dat",
                                      "--sqrts", "250", "--set", "cle=1", "--orders", "NP=1", "--n-eval", "400"], env=env)
    assert result.exit_code == 0, result.output
    assert "sigma(cle=1)" in result.output
    bad = CliRunner().invoke(app, ["xsec", "ee_mumu", "--orders", "NP=1"], env=env)
    assert bad.exit_code != 0


def test_parameter_space_of_model_operators(eft):
    proc = generate_process("e+ e- > mu+ mu-", eft, ["cHWB", "cle"], orders={"NP": 1}, bounds={"cle": (-2, 3)}, cache=False)
    space = proc.parameter_space()
    assert space.names == ("cHWB", "cle") and space["cHWB"].bounds == (-10.0, 10.0) and space["cle"].bounds == (-2.0, 3.0)
    assert proc.parameter_space({"cHWB": None}).names == ("cHWB",)
    with pytest.raises(InvalidInputError, match="low < 0 < high"):
        generate_process("e+ e- > mu+ mu-", eft, ["cle"], bounds={"cle": (1, 2)}, cache=False)


def test_an_operator_no_diagram_reaches_is_reported():
    """ctG's couplings carry QED = 1: with QED = 0 no diagram has it, and its coefficients would be 0 silently."""
    from sbihep.errors import NoDiagramWarning

    model = load_ufo(TOP, restriction=TOP / "restrict_massless.dat")
    with pytest.warns(NoDiagramWarning, match="ctGRe"):
        proc = generate_process("g g > t t~", model, ["ctGRe"], orders={"QED": 0, "NP": 1}, cache=False)
    p = checks.random_momenta(proc, 900.0, 2)
    assert float(proc.eft_decomposition(p).linear.abs().max()) == 0.0
