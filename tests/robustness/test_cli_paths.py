"""Robustness of the command line and its cards: output paths, strict TOML cards, inputs that reach dependencies.

Outcome classes: ``error: …`` with exit code 2 naming the argument / key (and nothing written, nothing
deleted), or the correct result.  Each defect of issue 19 that lives here has a case that fails on the
code before the fix (marked "issue 19").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sbihep._toml import TomlText, read_toml
from sbihep.cli import app
from sbihep.config import SimulationCard
from sbihep.errors import DataFormatError, InvalidInputError

torch.set_num_threads(1)
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
FIT_EXAMPLE = ROOT / "examples" / "fit_wh_exact.toml"

CARD = """\
process = "ee_mumu"
sqrt_s_gev = 250.0
n_events = 40
seed = 1
[generation]
n_adapt = 2
n_per_iteration = 500
"""


def _run(*args):
    """Invoke the CLI; an exception that escaped the command (a raw traceback for the user) is re-raised, so
    that the case fails with that exception's own type."""
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def _expect_usage_error(res, *needles):
    """The command refused with ``error: …`` and exit code 2, naming every needle; a command that succeeded
    fails the case as "DID NOT RAISE" (a silently accepted mistake)."""
    if res.exit_code == 0:
        pytest.fail(f"DID NOT RAISE: the command succeeded\n{res.output}")
    text = res.output
    assert res.exit_code == 2 and "error:" in text and "Traceback" not in text, res.output
    for needle in needles:
        assert needle in text, res.output


# ---------------------------------------------------------------------------------------------
# sbihep train
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    from sbihep.events.generate import generate
    from sbihep.physics.processes import get_process

    events = generate(get_process("wh_lvbb"), 13000.0, 300, seed=2, n_adapt=2, n_per_iteration=2000, progress=False)
    return events.save(tmp_path_factory.mktemp("events") / "wh.nc")


TRAIN = """\
seed = 1
[data]
events = "{events}"
[parameters]
cHW = [-1.0, 1.0]
[estimator]
kind = "ratio"
method = "carl"
hidden = [4]
[sample]
n_samples = 200
[training]
epochs = 1
[validation]
grid_points = 2
"""


@pytest.fixture
def train_card(tmp_path, events_file):
    path = tmp_path / "train.toml"
    path.write_text(TRAIN.format(events=events_file))
    return path


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.data_safety
def test_train_output_that_is_a_file_is_never_replaced(train_card, tmp_path):
    """issue 19: `sbihep train … -o card.toml` replaced the card by a directory."""
    card = tmp_path / "card.toml"
    card.write_text("precious = true\n")
    res = _run("train", train_card, "-o", card, "-q")
    _expect_usage_error(res, "existing file")
    assert card.read_text() == "precious = true\n"


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.data_safety
def test_train_output_onto_its_own_config_is_refused(train_card):
    text = train_card.read_text()
    res = _run("train", train_card, "-o", train_card, "-q")
    _expect_usage_error(res)
    assert train_card.read_text() == text


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.data_safety
def test_train_output_directory_holding_the_config_is_refused(tmp_path, events_file, train_card):
    out = tmp_path / "run"
    res = _run("train", train_card, "-o", out, "-q")
    assert res.exit_code == 0, res.output
    inner = out / "train.toml"  # the copy the run wrote — now used as the input of a new run into the same folder
    res = _run("train", inner, "-o", out, "-q")
    _expect_usage_error(res, "contains the input")
    assert inner.is_file()


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.data_safety
def test_train_output_foreign_directory_is_refused(train_card, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = _run("train", train_card, "-o", out, "-q")
    _expect_usage_error(res, "not an sbihep training output directory")
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.mark.robustness(entry="sbihep train", outcome="error")
def test_train_output_missing_parent(train_card, tmp_path):
    res = _run("train", train_card, "-o", tmp_path / "no" / "such" / "out", "-q")
    _expect_usage_error(res, "does not exist")


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_train_output_read_only_parent(train_card, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = _run("train", train_card, "-o", ro / "out", "-q")
        _expect_usage_error(res, "not writable")
    finally:
        ro.chmod(0o700)


@pytest.mark.robustness(entry="sbihep train", outcome="correct")
def test_train_rerun_replaces_its_own_output_and_an_empty_directory(train_card, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert _run("train", train_card, "-o", out, "-q").exit_code == 0  # empty directory: nothing to lose
    assert (out / "metrics.json").is_file()
    res = _run("train", train_card, "-o", out, "-q")  # its own earlier output
    assert res.exit_code == 0, res.output


@pytest.mark.robustness(entry="sbihep train", outcome="error")
@pytest.mark.parametrize(
    "old, new, needles",
    [
        ("epochs = 1", "epoch = 1", ["unknown key 'epoch'", "did you mean 'epochs'"]),
        ("hidden = [4]", "hiden = [4]", ["did you mean 'hidden'"]),
        ("[validation]", "[validaton]", ["did you mean 'validation'"]),
        ("seed = 1", "seed = -3", ["'seed'"]),
        ("epochs = 1", "epochs = 1\ndevice = \"cuda:7\"" if torch.cuda.is_available() else "epochs = 1\ndevice = \"cuda\"", ["device"]),
        ("epochs = 1", "epochs = 1\ndevice = \"gpu\"", ["device"]),
        ("hidden = [4]", "hidden = [4]\nactivation = \"tahn\"", ["did you mean 'tanh'"]),
        ("method = \"carl\"", "method = \"carll\"", ["did you mean 'carl'"]),
        ("epochs = 1", "epochs = 1\nlearning_rate = 0", ["'learning_rate' must be > 0"]),
        ("epochs = 1", "epochs = 1\nlearning_rate = nan", ["'learning_rate' must be finite"]),
        ("epochs = 1", "epochs = 1\nvalidation_fraction = 1.5", ["validation_fraction"]),
        ("epochs = 1", "epochs = true", ["'epochs' must be int, got a boolean"]),
    ],
)
def test_train_card_mistakes_fail_before_any_work(train_card, tmp_path, old, new, needles):
    text = train_card.read_text()
    assert old in text
    train_card.write_text(text.replace(old, new))
    res = _run("train", train_card, "-o", tmp_path / "o", "-q")
    _expect_usage_error(res, *needles)
    assert not (tmp_path / "o").exists()


@pytest.mark.robustness(entry="run_training", outcome="error")
@pytest.mark.data_safety
def test_run_training_api_refuses_a_file_output(train_card, tmp_path):
    from sbihep.estimators.run import load_train_config, run_training

    target = tmp_path / "keep.txt"
    target.write_text("x")
    with pytest.raises(InvalidInputError, match="-o/--output"):
        run_training(load_train_config(train_card), target, quiet=True)
    assert target.read_text() == "x"


# ---------------------------------------------------------------------------------------------
# sbihep simulate and the simulation card
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def sim_card(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text(CARD)
    return path


@pytest.mark.robustness(entry="sbihep simulate", outcome="error")
@pytest.mark.data_safety
@pytest.mark.parametrize(
    "target, needles",
    [
        ("events.txt", [".nc or .zarr"]),
        ("events", [".nc or .zarr"]),
        ("missing/events.nc", ["does not exist"]),
        ("adir.nc", ["existing directory"]),
        ("notes.nc", ["not an sbihep EventSet file"]),
        ("afile.zarr", ["existing file"]),
        ("foreign.zarr", ["not an sbihep EventSet store"]),
    ],
)
def test_simulate_output_problems_surface_before_generation(sim_card, tmp_path, target, needles):
    """issue 19: output-path problems surfaced only after the whole generation, as tracebacks."""
    (tmp_path / "adir.nc").mkdir()
    (tmp_path / "notes.nc").write_text("my notes")
    (tmp_path / "afile.zarr").write_text("x")
    (tmp_path / "foreign.zarr").mkdir()
    (tmp_path / "foreign.zarr" / "data.bin").write_bytes(b"1")
    card = sim_card.read_text().replace("n_events = 40", "n_events = 10000000")  # would take hours if it started
    sim_card.write_text(card)
    res = _run("simulate", sim_card, "-o", tmp_path / target)
    _expect_usage_error(res, *needles)
    assert (tmp_path / "notes.nc").read_text() == "my notes" and (tmp_path / "foreign.zarr" / "data.bin").exists()


@pytest.mark.robustness(entry="sbihep simulate", outcome="error")
@pytest.mark.parametrize(
    "old, new, needles",
    [
        ("n_events = 40", "n_event = 40", ["unknown key 'n_event'", "did you mean 'n_events'"]),
        ("seed = 1", "seed = -3", ["'seed'"]),
        ("n_per_iteration = 500", "n_per_iteration = 2", ["'n_per_iteration' must be ≥"]),
        ("n_adapt = 2", "n_adapt = 0", ["'n_adapt' must be ≥ 1"]),
        ("n_adapt = 2", "n_adpt = 2", ["did you mean 'n_adapt'"]),
        ('process = "ee_mumu"', 'process = "ee_mumuu"', ["unknown process", "did you mean 'ee_mumu'"]),
        ("sqrt_s_gev = 250.0", "sqrt_s_gev = -250.0", ["'sqrt_s_gev'"]),
        ("sqrt_s_gev = 250.0", "sqrt_s_gev = nan", ["'sqrt_s_gev'"]),
        ("sqrt_s_gev = 250.0", 'sqrt_s_gev = "250"', ["'sqrt_s_gev' must be int or float"]),
        ("n_events = 40", "n_events = 0", ["'n_events' must be ≥ 1"]),
        ("seed = 1", 'seed = 1\norder = "quadratc"', ["did you mean 'quadratic'"]),
        ("seed = 1", 'seed = 1\nsystematics = ["mu_ff"]', ["unknown systematics 'mu_ff'", "did you mean 'mu_f'"]),
        ("seed = 1", "seed = 1\nsystematics = [1]", ["list of strings"]),
        ("seed = 1", "seed = 1\ntheta = { cLL1 = 0.5 }", ["theta.cLL1 is not an operator"]),
        ("seed = 1", "seed = 1\ntheta = { cll1 = inf }", ["finite number"]),
        ("seed = 1", 'seed = 1\n[process_options]\nflavour = "tau"', ["[process_options]"]),
        ("[generation]", '[detector]\ncard = "no_such_card"\n[generation]', ["no_such_card"]),
        ("[generation]", "[detector]\nseed = -1\ncard = \"default\"\n[generation]", ["'seed'"]),
    ],
)
def test_simulation_card_mistakes_fail_before_any_work(sim_card, tmp_path, old, new, needles):
    text = sim_card.read_text()
    assert old in text
    sim_card.write_text(text.replace(old, new).replace("n_events = 40", "n_events = 10000000") if old != "n_events = 40" else text.replace(old, new))
    res = _run("simulate", sim_card, "-o", tmp_path / "ev.nc")
    _expect_usage_error(res, *needles)
    assert not (tmp_path / "ev.nc").exists()


@pytest.mark.robustness(entry="sbihep simulate", outcome="correct")
def test_simulate_writes_and_rewrites_its_own_file(sim_card, tmp_path):
    out = tmp_path / "ev.nc"
    assert _run("simulate", sim_card, "-o", out).exit_code == 0
    res = _run("simulate", sim_card, "-o", out)  # an existing netCDF file may be replaced
    assert res.exit_code == 0, res.output


@pytest.mark.robustness(entry="SimulationCard.from_toml", outcome="correct")
def test_card_path_with_equals_sign_is_a_path(tmp_path):
    """issue 19: a card path containing `=` was parsed as TOML text."""
    folder = tmp_path / "run=1"
    folder.mkdir()
    card = folder / "sim.toml"
    card.write_text(CARD)
    assert SimulationCard.from_toml(str(card)).n_events == 40
    res = _run("simulate", folder / "missing=2.toml", "-o", tmp_path / "x.nc")
    _expect_usage_error(res, "no such file")


@pytest.mark.robustness(entry="read_toml", outcome="error")
def test_toml_text_needs_an_explicit_form(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file .*TomlText"):
        read_toml('process = "ee_mumu"', "card")
    assert read_toml(TomlText('process = "ee_mumu"'), "card")[0] == {"process": "ee_mumu"}
    assert read_toml('process = "ee_mumu"\nseed = 1\n', "card")[0]["seed"] == 1  # multi-line text
    with pytest.raises(InvalidInputError, match="must be a path or TOML text"):
        read_toml(3, "card")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe = 1")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_toml(bad, "card")
    bad.write_text("a = [1,")
    with pytest.raises(DataFormatError, match="not valid TOML"):
        read_toml(bad, "card")


# ---------------------------------------------------------------------------------------------
# sbihep fit and sbihep surrogate train: output paths checked before the work
# ---------------------------------------------------------------------------------------------


@pytest.mark.robustness(entry="sbihep fit", outcome="error")
@pytest.mark.data_safety
@pytest.mark.parametrize(
    "target, needles",
    [("r.txt", ["must end in .nc"]), ("adir.nc", ["existing directory"]), ("notes.nc", ["not an sbihep fit result"]),
     ("missing/r.nc", ["does not exist"])],
)
def test_fit_output_problems_surface_before_the_fit(tmp_path, target, needles):
    (tmp_path / "adir.nc").mkdir()
    (tmp_path / "notes.nc").write_text("mine")
    res = _run("fit", FIT_EXAMPLE, "-o", tmp_path / target)
    _expect_usage_error(res, *needles)
    assert (tmp_path / "notes.nc").read_text() == "mine"


@pytest.mark.robustness(entry="sbihep surrogate train", outcome="error")
@pytest.mark.data_safety
@pytest.mark.parametrize(
    "target, needles",
    [("m.json", ["must end in .onnx"]), ("adir.onnx", ["existing directory"]), ("other.onnx", ["not an sbihep ONNX surrogate"]),
     ("missing/m.onnx", ["does not exist"])],
)
def test_surrogate_train_output_problems_surface_before_labelling(tmp_path, target, needles):
    pytest.importorskip("pyhf")
    (tmp_path / "adir.onnx").mkdir()
    (tmp_path / "other.onnx").write_bytes(b"someone else's model")
    ws = tmp_path / "ws.json"
    ws.write_text("{}")
    res = _run("surrogate", "train", ws, "-o", tmp_path / target, "--n-points", "1000")
    _expect_usage_error(res, *needles)
    assert (tmp_path / "other.onnx").read_bytes() == b"someone else's model"


@pytest.mark.robustness(entry="sbihep simulate", outcome="error")
@pytest.mark.data_safety
def test_symlink_output_is_refused(sim_card, tmp_path):
    real = tmp_path / "real.nc"
    real.write_bytes(b"\x89HDF\r\n\x1a\n")
    link = tmp_path / "link.nc"
    link.symlink_to(real)
    res = _run("simulate", sim_card, "-o", link)
    _expect_usage_error(res, "symbolic link")


@pytest.mark.robustness(entry="sbihep simulate", outcome="error")
def test_empty_output_argument(sim_card):
    res = _run("simulate", sim_card, "-o", "")
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output


@pytest.mark.robustness(entry="check_output", outcome="error")
def test_check_output_names_the_argument():
    from sbihep._outputs import check_output

    with pytest.raises(InvalidInputError, match="--events-out: 'x.bin' must end in .nc"):
        check_output("x.bin", kind="file", suffixes=(".nc",), argument="--events-out")
    with pytest.raises(InvalidInputError, match="need a path"):
        check_output(None, kind="file")


# ---------------------------------------------------------------------------------------------
# command-line numbers that used to reach numpy / vegas unchecked
# ---------------------------------------------------------------------------------------------


@pytest.mark.robustness(entry="sbihep CLI options", outcome="error")
@pytest.mark.parametrize(
    "args, needle",
    [
        (["xsec", "ee_mumu", "--seed", "-3", "--n-eval", "500"], "--seed"),
        (["xsec", "ee_mumu", "--n-eval", "2"], "--n-eval"),
        (["--threads", "-1", "processes"], "--threads"),
        (["demo", "--n-events", "0"], "--n-events"),
        (["surrogate", "train", "x.json", "-o", "m.onnx", "--seed", "-3"], ""),
    ],
)
def test_cli_numbers_are_range_checked(args, needle):
    res = _run(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output and needle in res.output, res.output
