"""`sbihep fit CONFIG.toml -o result.nc`."""

from pathlib import Path

import xarray as xr
from typer.testing import CliRunner

from sbihep.cli import app as sbihep_app

EXAMPLE = Path(__file__).parent.parent / "examples" / "fit_wh_exact.toml"


def app():
    return sbihep_app


def test_fit_example_config(tmp_path):
    out = tmp_path / "r.nc"
    res = CliRunner().invoke(app(), ["fit", str(EXAMPLE), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Wilks 68.3%" in res.output and "Neyman 68.3%" in res.output
    ds = xr.load_dataset(out)
    assert "twice_delta_nll" in ds and "neyman_critical_value" in ds and ds.attrs["converged"] == 1


def test_bad_config_is_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[modle]\nkind = 'x'\n")
    res = CliRunner().invoke(app(), ["fit", str(bad), "-o", str(tmp_path / "x.nc")])
    assert res.exit_code == 2 and "unknown section" in res.output


def test_missing_config_is_reported(tmp_path):
    res = CliRunner().invoke(app(), ["fit", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "x.nc")])
    assert res.exit_code == 2 and "does not exist" in res.output
