"""The `sbihep` command line."""

import torch
from typer.testing import CliRunner

from sbihep import __version__
from sbihep.cli import app

torch.set_num_threads(1)
runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "xsec" in result.output and "processes" in result.output


def test_processes_and_sm_inputs():
    result = runner.invoke(app, ["processes"])
    assert result.exit_code == 0 and "ee_mumu" in result.output and "cll" in result.output
    result = runner.invoke(app, ["sm-inputs"])
    assert result.exit_code == 0 and "G_F" in result.output and "V_ud" in result.output


def test_xsec_prints_polynomial_and_value():
    result = runner.invoke(app, ["xsec", "ee_mumu", "--sqrts", "500", "--set", "cll=1", "--n-eval", "500", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "cll*cll" in result.output and "sigma(cll=1) =" in result.output


def test_xsec_bad_input_exits_with_clear_message():
    result = runner.invoke(app, ["xsec", "ee_mumu", "--set", "cHW=1", "--n-eval", "500"])
    assert result.exit_code == 2 and "unknown operator" in result.output
    result = runner.invoke(app, ["xsec", "no_such_process"])
    assert result.exit_code == 2 and "unknown process" in result.output
    result = runner.invoke(app, ["xsec", "ee_mumu", "--set", "cll"])
    assert result.exit_code != 0 and "NAME=VALUE" in result.output


def test_demo_writes_events_and_plot(tmp_path):
    # the pipeline itself is tested in test_demo.py; here the command's options and report, at tiny size
    result = runner.invoke(app, ["demo", "--output-dir", str(tmp_path), "--quick", "--n-events", "4000", "--n-eval", "500"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "wh_events.nc").exists() and (tmp_path / "wh_cp_odd_angle.png").stat().st_size > 10_000
    assert (tmp_path / "wh_constraints.nc").exists() and (tmp_path / "wh_constraints.png").stat().st_size > 10_000
    assert "asymmetry" in result.output and "Outputs:" in result.output and "information limit" in result.output
    assert "Generating 4000 WH events" in result.output
    bad = runner.invoke(app, ["demo", "--output-dir", str(tmp_path), "--n-events", "10"])
    assert bad.exit_code == 2 and "n_events" in bad.output
