"""Robustness of LHE reading, writing and ``sbihep import-lhe``: unknown operators, non-physical momenta,
non-finite weights, broken files, bad output paths.  (Named ``test_lhe_files`` so that it does not clash
with ``tests/test_lhe.py`` under pytest's default import mode.)"""

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from sbihep.errors import DataFormatError, InvalidInputError, OutputPathError, UnknownParameterError, UnphysicalMomentaError
from sbihep.events.eventset import EventSet
from sbihep.events.lhe import read_lhe, write_lhe
from sbihep.events.lhe_cli import register

torch.set_num_threads(1)
SQRT_S = 250.0


def _ee_events(n=8, seed=0):
    """A tiny ee → μμ EventSet (massless, back-to-back, momentum conserving) with positive weights."""
    rng = np.random.default_rng(seed)
    cos, phi = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    sin = np.sqrt(1 - cos**2)
    e = SQRT_S / 2
    p = np.zeros((n, 4, 4))
    p[:, 0] = [e, 0, 0, e]
    p[:, 1] = [e, 0, 0, -e]
    p[:, 2] = np.column_stack([np.full(n, e), e * sin * np.cos(phi), e * sin * np.sin(phi), e * cos])
    p[:, 3] = p[:, 2] * [1, -1, -1, -1]
    c = np.abs(rng.normal(size=(n, 10))) * 0.1
    c[:, 0] += 1.0
    return EventSet.from_arrays(
        momenta=p, roles=["beam1", "beam2", "mu-", "mu+"], coefficients=c, operators=["cll", "cle", "cee"],
        order="quadratic", attrs={"process": "ee_mumu", "sqrt_s_gev": SQRT_S},
    )


@pytest.fixture(scope="module")
def events():
    return _ee_events()


@pytest.fixture(scope="module")
def lhe_file(events, tmp_path_factory):
    return write_lhe(events, tmp_path_factory.mktemp("lhe") / "ee.lhe")


@pytest.mark.robustness(entry="read_lhe", outcome="correct")
def test_round_trip_still_exact(events, lhe_file):
    back = read_lhe(lhe_file)
    assert back.operators == ["cll", "cle", "cee"]
    assert back.sigma({"cle": 0.3}) == pytest.approx(events.sigma({"cle": 0.3}), rel=1e-10)


@pytest.mark.robustness(entry="read_lhe", outcome="error")
@pytest.mark.parametrize("operators,hint", [
    (["cLL"], "'cLL' → did you mean 'cll'"),
    (["CLL"], "did you mean 'cll'"),
    (["Cee"], "did you mean 'cee'"),
    (["cl"], "did you mean 'cll'"),
    (["cll", "cLE", "cee"], "'cLE' → did you mean 'cle'"),
    (["cHW"], "they set ['cee', 'cle', 'cll']"),
    (["cll", "cle", "cee", "ctG"], "['ctG'] is not set"),
    (["x"], "they set ['cee', 'cle', 'cll']"),
])
def test_unknown_operators_raise_with_the_file_s_names(lhe_file, operators, hint):
    """read_lhe(operators=['cLL']) returned an EventSet with no operators, every EFT weight gone."""
    with pytest.raises(UnknownParameterError) as caught:
        read_lhe(lhe_file, operators=operators)
    assert hint in str(caught.value) and str(lhe_file) in str(caught.value)


@pytest.mark.robustness(entry="read_lhe", outcome="error")
@pytest.mark.parametrize("operators,words", [
    (["cll"], "also sets ['cee', 'cle']"),
    ("cll", "list of operator names"),
    (["cll", "cll"], "twice"),
    ([""], "list of operator names"),
])
def test_operators_that_cannot_be_used(lhe_file, operators, words):
    with pytest.raises(InvalidInputError) as caught:
        read_lhe(lhe_file, operators=operators)
    assert words in str(caught.value)


@pytest.mark.robustness(entry="read_lhe", outcome="error")
def test_operators_with_weights_none(lhe_file):
    with pytest.raises(InvalidInputError, match="weights='none'"):
        read_lhe(lhe_file, operators=["cll"], weights="none")


@pytest.mark.robustness(entry="read_lhe", outcome="correct")
def test_empty_and_complete_operator_lists(lhe_file):
    nominal_only = read_lhe(lhe_file, operators=[])
    assert nominal_only.operators == []
    assert read_lhe(lhe_file, operators=["cll", "cle", "cee"]).operators == ["cll", "cle", "cee"]


@pytest.mark.robustness(entry="read_lhe", outcome="error")
@pytest.mark.parametrize("point,words", [
    ({"b0": {"cll": float("nan")}}, "benchmarks['b0']['cll']"),
    ({"b0": {"cll": "1"}}, "benchmarks['b0']['cll']"),
    ({"b0": [1.0]}, "benchmarks must be a mapping"),
])
def test_bad_benchmarks_argument(lhe_file, point, words):
    with pytest.raises(InvalidInputError) as caught:
        read_lhe(lhe_file, benchmarks=point)
    assert words in str(caught.value)


# ---- editing event lines ---------------------------------------------------------------------------------

def _edit_particle(src: Path, dst: Path, event: int, slot: int, field: int, value: str) -> Path:
    """Set field ``field`` (0-based; 6..9 = px py pz E) of particle ``slot`` of event ``event``."""
    lines = src.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("<event>")]
    row = starts[event] + 2 + slot
    parts = lines[row].split()
    parts[field] = value
    lines[row] = " ".join(parts)
    dst.write_text("\n".join(lines) + "\n")
    return dst


MOMENTUM_CASES = [  # (event, slot, field, value, words)
    (0, 1, 8, "1e300", "space-like"),
    (2, 2, 6, "1e300", "space-like"),
    (1, 0, 9, "1e300", "above the collider energy"),
    (3, 3, 9, "1e300", "above the collider energy"),
    (0, 2, 6, "nan", "not finite"),
    (4, 3, 9, "inf", "not finite"),
    (5, 0, 8, "-inf", "not finite"),
    (1, 2, 9, "nan", "not finite"),
    (6, 2, 9, "-5.0", "negative energy"),
    (7, 3, 9, "1.0", "space-like"),
    (2, 2, 7, "3.0", "not conserved"),
    (3, 0, 9, "126.0", "not conserved"),
    (0, 1, 9, "300.0", "above the collider energy"),
]


@pytest.mark.robustness(entry="read_lhe", outcome="error")
@pytest.mark.parametrize("event,slot,field,value,words", MOMENTUM_CASES)
def test_non_physical_momenta_are_rejected(lhe_file, tmp_path, event, slot, field, value, words):
    """LHE momenta of 1e300 were accepted; a NaN momentum's message named neither file nor event."""
    path = _edit_particle(lhe_file, tmp_path / "bad.lhe", event, slot, field, value)
    with pytest.raises(UnphysicalMomentaError) as caught:
        read_lhe(path)
    message = str(caught.value)
    assert str(path) in message and f"event {event} " in message and words in message


def _edit_weight(src: Path, dst: Path, event: int, value: str, rwgt: bool) -> Path:
    text = src.read_text()
    blocks = text.split("<event>")
    block = blocks[event + 1]
    if rwgt:
        block = re.sub(r"(<wgt id=\"sbihep_b3\">) [^<]+ ", rf"\1 {value} ", block, count=1)
    else:
        lines = block.split("\n")
        parts = lines[1].split()
        parts[2] = value
        lines[1] = " ".join(parts)
        block = "\n".join(lines)
    blocks[event + 1] = block
    dst.write_text("<event>".join(blocks))
    return dst


@pytest.mark.robustness(entry="read_lhe", outcome="error")
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("rwgt", [False, True])
def test_non_finite_weights_name_file_and_event(lhe_file, tmp_path, value, rwgt):
    path = _edit_weight(lhe_file, tmp_path / "w.lhe", 3, value, rwgt)
    with pytest.raises(DataFormatError) as caught:
        read_lhe(path)
    message = str(caught.value)
    assert str(path) in message and "event 3 " in message and "NaN or infinite" in message


@pytest.mark.robustness(entry="read_lhe", outcome="error")
def test_non_finite_benchmark_in_header(lhe_file, tmp_path):
    path = tmp_path / "h.lhe"
    path.write_text(lhe_file.read_text().replace("set param_card cll 0.0", "set param_card cll nan", 1))
    with pytest.raises(DataFormatError, match=r"weight 'sbihep_b0' sets \['cll'\] to a non-finite value"):
        read_lhe(path)


@pytest.mark.robustness(entry="read_lhe", outcome="error")
def test_broken_files(lhe_file, tmp_path):
    text = lhe_file.read_text()
    cases = {
        "truncated.lhe": text[: len(text) // 2],
        "empty.lhe": "",
        "noise.lhe": "\x00\x01garbage\xff" * 50,
        "noevents.lhe": text[: text.index("<event>")] + "</LesHouchesEvents>\n",
        "noinit.lhe": re.sub(r"<init>.*?</init>", "", text, flags=re.S),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataFormatError) as caught:
            read_lhe(path)
        assert name in str(caught.value), name
    gz = tmp_path / "bad.lhe.gz"
    gz.write_bytes(gzip.compress(text.encode())[:300])
    with pytest.raises(DataFormatError, match="bad.lhe.gz"):
        read_lhe(gz)
    with pytest.raises(InvalidInputError, match="no such LHE file"):
        read_lhe(tmp_path / "missing.lhe")


# ---- writing: output paths ---------------------------------------------------------------------------------

@pytest.mark.robustness(entry="write_lhe", outcome="error")
@pytest.mark.data_safety
def test_write_lhe_output_paths(events, lhe_file, tmp_path):
    with pytest.raises(OutputPathError, match=r"\.lhe or \.lhe\.gz"):
        write_lhe(events, tmp_path / "events.nc")
    with pytest.raises(OutputPathError, match="does not exist"):
        write_lhe(events, tmp_path / "nope" / "e.lhe")
    (tmp_path / "d.lhe").mkdir()
    with pytest.raises(OutputPathError, match="existing directory"):
        write_lhe(events, tmp_path / "d.lhe")
    madgraph = tmp_path / "unweighted_events.lhe"
    madgraph.write_text('<LesHouchesEvents version="3.0">\n<header>MadGraph5_aMC@NLO</header>\n')
    with pytest.raises(OutputPathError, match="refusing to replace"):
        write_lhe(events, madgraph)
    assert "MadGraph5" in madgraph.read_text()
    gz = tmp_path / "mg.lhe.gz"
    gz.write_bytes(gzip.compress(b'<LesHouchesEvents version="3.0">\n<header>MG</header>'))
    with pytest.raises(OutputPathError, match="refusing to replace"):
        write_lhe(events, gz)


@pytest.mark.robustness(entry="write_lhe", outcome="correct")
def test_write_lhe_replaces_its_own_file(events, tmp_path):
    own = write_lhe(events, tmp_path / "own.lhe")
    write_lhe(_ee_events(seed=1), own)  # sbihep's own file is replaced
    assert read_lhe(own).n_events == 8


# ---- the import-lhe command ----------------------------------------------------------------------------------

def _cli():
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


def _invoke(args):
    """Run import-lhe; an exception that escaped the command (a raw traceback) is re-raised as itself."""
    res = CliRunner().invoke(_cli(), args)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


@pytest.mark.robustness(entry="sbihep import-lhe", outcome="error")
@pytest.mark.data_safety
@pytest.mark.parametrize("output,words", [
    ("missing/e.nc", "does not exist"),
    ("e.toml", "end in .nc (netCDF) or .zarr"),
    ("adir.nc", "existing directory"),
    ("card.zarr", "existing file"),
    ("thesis.nc", "refusing to replace"),
])
def test_import_lhe_bad_output_fails_before_reading(tmp_path, output, words):
    (tmp_path / "adir.nc").mkdir()
    (tmp_path / "card.zarr").write_text("card")
    (tmp_path / "thesis.nc").write_text("thesis")
    # the input does not even exist: the -o problem must be reported first
    result = _invoke(["import-lhe", str(tmp_path / "absent.lhe"), "-o", str(tmp_path / output)])
    assert result.exit_code == 2
    assert "error: -o" in result.output and words in result.output.replace("\n", " ")
    assert (tmp_path / "card.zarr").read_text() == "card" and (tmp_path / "thesis.nc").read_text() == "thesis"


@pytest.mark.robustness(entry="sbihep import-lhe", outcome="error")
def test_import_lhe_unknown_operator(lhe_file, tmp_path):
    bad = _invoke(["import-lhe", str(lhe_file), "--params", "cLL", "-o", str(tmp_path / "e.nc")])
    assert bad.exit_code == 2 and "did you mean 'cll'" in bad.output and not (tmp_path / "e.nc").exists()


@pytest.mark.robustness(entry="sbihep import-lhe", outcome="correct")
def test_import_lhe_converts(lhe_file, tmp_path):
    good = _invoke(["import-lhe", str(lhe_file), "-o", str(tmp_path / "e.nc")])
    assert good.exit_code == 0, good.output
    assert EventSet.load(tmp_path / "e.nc").operators == ["cll", "cle", "cee"]
