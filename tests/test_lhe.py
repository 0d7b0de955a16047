"""LHE in/out: exact morphing of sbihep's WH events through an LHE file, round trips, MadGraph-style
headers, clear errors for broken files, and the import-lhe command."""

import gzip
import json

import numpy as np
import pylhe
import pytest
import torch
import typer
from typer.testing import CliRunner

from sbihep.errors import DataFormatError, InvalidInputError
from sbihep.events import eft
from sbihep.events.eventset import EventSet
from sbihep.events.generate import generate
from sbihep.events.lhe import read_lhe, write_lhe
from sbihep.events.lhe_cli import register
from sbihep.physics.processes import EEToMuMu, get_process

torch.set_num_threads(1)


def _rel_err(a, b):
    """Largest per-event error relative to that event's largest coefficient."""
    scale = np.abs(b).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    return float((np.abs(a - b) / scale).max())


@pytest.fixture(scope="module")
def wh():
    return generate(get_process("wh_lvbb"), 13000.0, 120, seed=11, unweighted=False, n_adapt=2, n_per_iteration=2000, progress=False)


@pytest.fixture(scope="module")
def wh_file(wh, tmp_path_factory):
    return write_lhe(wh, tmp_path_factory.mktemp("lhe") / "wh.lhe.gz")


def test_morphing_recovers_wh_coefficients_through_lhe(wh, wh_file):
    back = read_lhe(wh_file)
    assert back.operators == wh.operators and back.order == "quadratic"
    assert _rel_err(back.coefficients().numpy(), wh.coefficients().numpy()) < 1e-8
    np.testing.assert_array_equal(back.momenta().numpy(), wh.momenta().numpy())
    np.testing.assert_allclose(back.data["x1"].values, wh.data["x1"].values, rtol=1e-9)
    assert back.roles == wh.roles and back.subprocesses == wh.subprocesses
    np.testing.assert_array_equal(back.data["subprocess"].values, wh.data["subprocess"].values)
    assert float(back.data.attrs["morphing_condition_number"]) < 20
    assert back.sigma({"cHWtil": 0.7}) == pytest.approx(wh.sigma({"cHWtil": 0.7}), rel=1e-12)
    # the file states the representative flavours and colour flow for the shower
    pdg = back.data["lhe_pdg_id"].values
    w_plus = back.data["subprocess"].values == 0
    np.testing.assert_array_equal(pdg[w_plus][0], [2, -1, -11, 12, 5, -5])
    np.testing.assert_array_equal(back.data["lhe_colour"].values[0, :, :].sum(), 2 * (501 + 502))


def test_round_trip_lhe_eventset_lhe_preserves_momenta_and_weights(wh_file, tmp_path):
    first = read_lhe(wh_file)
    second_file = write_lhe(first, tmp_path / "again.lhe")
    a = pylhe.LHEFile.fromfile(wh_file)
    b = pylhe.LHEFile.fromfile(second_file)
    n = 0
    for ea, eb in zip(a.events, b.events):
        n += 1
        assert [p.id for p in ea.particles] == [p.id for p in eb.particles]
        for pa, pb in zip(ea.particles, eb.particles):
            assert (pa.e, pa.px, pa.py, pa.pz, pa.m, pa.color1, pa.color2) == (pb.e, pb.px, pb.py, pb.pz, pb.m, pb.color1, pb.color2)
        assert ea.eventinfo.weight == eb.eventinfo.weight  # written with repr: bit for bit
        assert ea.weights == eb.weights
    assert n == first.n_events
    # after a selection the 'average' normalisation changes: weights come from the coefficients again
    half = first.select(np.arange(first.n_events) < first.n_events // 2)
    third = read_lhe(write_lhe(half, tmp_path / "half.lhe"))
    assert third.sigma({"cHW": 0.3}) == pytest.approx(half.sigma({"cHW": 0.3}), rel=1e-12)
    assert _rel_err(third.coefficients().numpy(), half.coefficients().numpy()) < 1e-8


def test_plain_and_gzip_read_the_same(wh, tmp_path):
    plain = write_lhe(wh, tmp_path / "wh.lhe", benchmarks=[{}, {"cHW": 1}, {"cHWtil": 1}, {"cHq3": 1}], event_norm="sum")
    text = plain.read_text()
    with gzip.open(tmp_path / "wh.lhe.gz", "wt") as handle:
        handle.write(text)
    a = read_lhe(plain, order="linear")
    b = read_lhe(tmp_path / "wh.lhe.gz", order="linear")
    np.testing.assert_array_equal(a.coefficients().numpy(), b.coefficients().numpy())
    assert a.data.attrs["lhe_event_norm"] == "sum"
    # 4 benchmarks determine the interference terms exactly only when the weights are linear: they are
    # quadratic here, so these coefficients are the secant values at θ = e_i, and the weights at the benchmarks are exact
    for point in ({}, {"cHW": 1.0}, {"cHq3": 1.0}):
        np.testing.assert_allclose(a.weights(point).numpy(), wh.weights(point).numpy(), rtol=1e-12, atol=1e-15 * wh.sigma())


def test_singular_benchmarks_are_flagged(wh, tmp_path):
    points = [{"cHW": v, "cHWtil": v, "cHq3": 0.5 * v} for v in np.linspace(-1, 1, 10)]  # all on one line
    path = write_lhe(wh, tmp_path / "singular.lhe", benchmarks=points)
    with pytest.raises(InvalidInputError, match="singular"):
        read_lhe(path)


def _broken(tmp_path, wh_file, name, edit):
    text = gzip.open(wh_file, "rt").read()
    path = tmp_path / f"{name}.lhe"
    path.write_text(edit(text))
    return path


def _third_event(text):
    start = text.index("<event>")
    for _ in range(2):
        start = text.index("<event>", start + 1)
    return start, text.index("</event>", start)


def test_truncated_files_are_reported(wh_file, tmp_path):
    path = _broken(tmp_path, wh_file, "trunc", lambda t: t[: len(t) // 2])
    with pytest.raises(DataFormatError, match=r"truncated.*line \d+"):
        read_lhe(path)
    raw = wh_file.read_bytes()
    gz = tmp_path / "trunc.lhe.gz"
    gz.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match="ends early"):
        read_lhe(gz)


def test_missing_rwgt_block_is_reported(wh_file, tmp_path):
    def drop(t):
        start, end = _third_event(t)
        k, j = t.index("<rwgt>", start), t.index("</rwgt>", start) + len("</rwgt>")
        return t[:k] + t[j:]

    path = _broken(tmp_path, wh_file, "norwgt", drop)
    with pytest.raises(DataFormatError, match=r"event 2 \(0-based; starting at line \d+\) has no <rwgt>"):
        read_lhe(path)
    assert read_lhe(path, weights="none").operators == []  # the nominal weights alone still read


def test_mismatched_weight_ids_are_reported(wh_file, tmp_path):
    def rename(t):
        start, end = _third_event(t)
        return t[:start] + t[start:end].replace("'sbihep_b4'", "'other'").replace('"sbihep_b4"', '"other"') + t[end:]

    path = _broken(tmp_path, wh_file, "ids", rename)
    with pytest.raises(DataFormatError, match=r"event 2 .*weight ids do not match.*missing \['sbihep_b4'\]"):
        read_lhe(path)


def test_non_numeric_fields_name_the_line(wh_file, tmp_path):
    text = gzip.open(wh_file, "rt").read()
    lines = text.split("\n")
    event_lines = [i for i, line in enumerate(lines) if line.startswith("<event>")]
    target = event_lines[3] + 2  # second particle of the 4th event
    fields = lines[target].split()
    fields[6] = "0.1.2"
    lines[target] = " ".join(fields)
    path = tmp_path / "nan.lhe"
    path.write_text("\n".join(lines))
    with pytest.raises(DataFormatError, match=rf"event 3 \(0-based; line {target + 1}: field '0.1.2' is not a number\)"):
        read_lhe(path)


def _madgraph_style(events, points, card_cee, path):
    """An LHE file as MadGraph writes it: <slha> card, set param_card lines that only name the changed
    entries, a PDF weight group without 'set', single-quoted wgt ids, event_norm = average."""
    n = events.n_events
    ops = events.operators
    full = []
    for point in points:
        theta = {"cll": 0.0, "cle": 0.0, "cee": card_cee}
        theta.update(point)
        full.append([theta[op] for op in ops])
    nominal = torch.tensor([0.0, 0.0, card_cee], dtype=torch.float64)
    w_nom = eft.weights_at(events.coefficients(), nominal).numpy()
    w_b = eft.weights_at(events.coefficients(), torch.tensor(full, dtype=torch.float64)).numpy().T
    code = {"cll": 1, "cle": 2, "cee": 3}
    out = ['<LesHouchesEvents version="3.0">', "<header>", "<MGVersion>\n3.5.0\n</MGVersion>", "<slha>",
           "BLOCK EECONTACT # contact terms", "    1 0.000000e+00 # cll", "    2 0.000000e+00 # cle",
           f"    3 {card_cee:e} # cee", "BLOCK MASS", "   23 9.118800e+01 # MZ", "DECAY 23 2.495500e+00", "</slha>",
           "<initrwgt>", "<weightgroup name='mg_reweighting' weight_name_strategy='includeIdInWeightName'>"]
    for k, point in enumerate(points):
        text = "\n".join(f"set param_card eecontact {code[op]} {v!r} # orig: 0.0" for op, v in point.items())
        out.append(f"<weight id='rwgt_{k}'>{text}\n</weight>")
    out += ["<weight id='mz_up'> set param_card mass 23 92.0 </weight>", "</weightgroup>",
            "<weightgroup name='PDF'>", "<weight id='1001'> dynscale=1 </weight>", "</weightgroup>", "</initrwgt>", "</header>",
            "<init>", "11 -11 2.500000e+02 2.500000e+02 0 0 0 0 3 1", f"{float(w_nom.sum())!r} 1.0e-3 {float(w_nom.max() * n)!r} 1", "</init>"]
    p = events.momenta().numpy()
    for i in range(n):
        out.append("<event>")
        out.append(f" 4 1 {float(w_nom[i] * n)!r} 2.5e+02 7.5e-03 1.18e-01")
        for j, (pid, status) in enumerate(((11, -1), (-11, -1), (13, 1), (-13, 1))):
            mothers = "0 0" if status < 0 else "1 2"
            e, px, py, pz = (float(v) for v in p[i, j])
            out.append(f" {pid} {status} {mothers} 0 0 {px!r} {py!r} {pz!r} {e!r} 0.0 0.0 9.0")
        out.append("<rwgt>")
        out += [f"<wgt id='rwgt_{k}'> {float(w_b[i, k] * n)!r} </wgt>" for k in range(len(points))]
        out += [f"<wgt id='mz_up'> {float(w_nom[i] * n * 1.01)!r} </wgt>", f"<wgt id='1001'> {float(w_nom[i] * n)!r} </wgt>"]
        out += ["</rwgt>", "</event>"]
    out.append("</LesHouchesEvents>")
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture(scope="module")
def eemumu():
    return generate(EEToMuMu(), 500.0, 40, seed=2, unweighted=False, n_adapt=1, n_per_iteration=500, progress=False)


MG_POINTS = [{"cee": 0.0}, {"cll": 1.0}, {"cll": -1.0}, {"cle": 1.0}, {"cle": -1.0}, {"cee": 1.0},
             {"cll": 1.0, "cle": 1.0}, {"cll": 1.0, "cee": 1.0}, {"cle": 1.0, "cee": 1.0}, {"cll": 0.5, "cle": -0.5}]
PARAM_MAP = {("eecontact", 1): "cll", "eecontact 2": "cle", "eecontact:3": "cee"}


def test_madgraph_style_header_and_param_card_defaults(eemumu, tmp_path):
    path = _madgraph_style(eemumu, MG_POINTS, 0.5, tmp_path / "mg.lhe")
    events = read_lhe(path, operators=["cll", "cle", "cee"], param_map=PARAM_MAP)
    # unspecified entries take the generation card's cee = 0.5; the mass variation is ignored
    assert json.loads(events.data.attrs["theta_gen"]) == {"cll": 0.0, "cle": 0.0, "cee": 0.5}
    assert json.loads(events.data.attrs["lhe_ignored_weights"]) == ["mz_up"]
    assert events.data.attrs["lhe_event_norm"] == "average"
    assert _rel_err(events.coefficients().numpy(), eemumu.coefficients().numpy()) < 1e-8
    assert events.roles == ["beam1", "beam2", "mu-", "mu+"]
    assert events.subprocesses == ["11 -11 > 13 -13"]
    np.testing.assert_array_equal(events.momenta().numpy(), eemumu.momenta().numpy())
    # without operators and param_map every 'set' entry becomes a parameter, named block_id: the mass
    # variation then joins the fit, and 11 weights cannot fix the 15 quadratic monomials of 4 parameters
    with pytest.raises(InvalidInputError, match=r"11 points cannot determine the 15 .*eecontact_1.*mass_23"):
        read_lhe(path)
    # benchmarks given by the user instead of the header
    points = {f"rwgt_{k}": {"cll": 0.0, "cle": 0.0, "cee": 0.5, **p} for k, p in enumerate(MG_POINTS)}
    user = read_lhe(path, benchmarks=points, nominal={"cee": 0.5})
    np.testing.assert_allclose(user.coefficients().numpy(), events.coefficients().numpy(), rtol=0, atol=1e-12 * np.abs(events.coefficients().numpy()).max())


def _cli():
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


def test_import_lhe_command(eemumu, tmp_path):
    path = _madgraph_style(eemumu, MG_POINTS, 0.5, tmp_path / "mg.lhe")
    out = tmp_path / "events.nc"
    runner = CliRunner()
    result = runner.invoke(
        _cli(), ["import-lhe", str(path), "--params", "cll=eecontact:1", "--params", "cle=eecontact:2",
                 "--params", "cee=eecontact:3", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "10 benchmark weights" in result.output
    loaded = EventSet.load(out)
    assert _rel_err(loaded.coefficients().numpy(), eemumu.coefficients().numpy()) < 1e-8
    bad = runner.invoke(_cli(), ["import-lhe", str(path), "--params", "cll=eecontact", "-o", str(out)])
    assert bad.exit_code != 0 and "BLOCK:ID" in bad.output
    missing = runner.invoke(_cli(), ["import-lhe", str(tmp_path / "nope.lhe"), "-o", str(out)])
    assert missing.exit_code == 2 and "no such LHE file" in missing.output
