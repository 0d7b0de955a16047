"""`sbihep surrogate train|check` (the typer sub-app in sbihep.surrogates.cli)."""

import json

import pytest

pyhf = pytest.importorskip("pyhf")
pytest.importorskip("onnxruntime")
import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sbihep.surrogates.cli import app  # noqa: E402

torch.set_num_threads(1)
runner = CliRunner()


def test_train_then_check(tmp_path):
    model = pyhf.simplemodels.uncorrelated_background(signal=[6.0], bkg=[40.0], bkg_uncertainty=[4.0])
    spec = {"channels": [{"name": "SR", "samples": model.spec["channels"][0]["samples"]}],
            "observations": [{"name": "SR", "data": [41.0]}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(spec))
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["train", str(ws), "-o", str(out), "--bounds", "0,6", "--n-points", "24",
                                 "--n-starts", "1", "--n-workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", str(out), "--limit"])
    assert result.exit_code == 0, result.output
    assert "test vectors: OK" in result.output and "upper limit" in result.output and "provenance" in result.output
    out.write_bytes(out.read_bytes()[:-100])
    result = runner.invoke(app, ["check", str(out)])
    assert result.exit_code == 1
