"""ONNX export of ratio and score estimators and ensembles: equality with torch via onnxruntime,
dynamic batch axis, metadata round trip, the same input checks as the torch estimators."""

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.estimators import ExtrapolationWarning, RatioEstimator, ScoreEstimator
from sbihep.estimators.ensemble import Ensemble
from sbihep.estimators.onnx_export import FORMAT, OnnxMismatchError, export_onnx, load_onnx
from sbihep.params import Parameter, ParameterSpace

torch.set_num_threads(1)

SPACE = ParameterSpace([Parameter("cHW", 0.0, (-1.0, 1.0), unit="TeV^-2"), Parameter("cHq3", 0.0, (-0.2, 0.2))])
OBS = ["pt", "m", "cos"]
SIZES = (1, 5, 1000)


def _sample(n, seed, doubly=False):
    """A synthetic ratio training sample (only its layout and scales matter here)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    lo, hi = np.array([-1.0, -0.2]), np.array([1.0, 0.2])
    th0 = lo + (hi - lo) * rng.random((n, 2))
    th1 = lo + (hi - lo) * rng.random((n, 2)) if doubly else np.zeros((n, 2))
    x = np.c_[rng.exponential(80.0, n) + 20, rng.normal(125, 10, n), rng.uniform(-1, 1, n)]
    y = (np.arange(n) >= n // 2).astype(float)
    return xr.Dataset(
        {"x": (("sample", "observable"), x), "theta0": (("sample", "parameter"), th0), "theta1": (("sample", "parameter"), th1),
         "y": ("sample", y), "log_r_xz": ("sample", 0.01 * x[:, 0] * (th0[:, 0] - th1[:, 0]) + x[:, 2] * (th0[:, 1] - th1[:, 1])),
         "t_xz0": (("sample", "parameter"), rng.normal(size=(n, 2))), "t_xz1": (("sample", "parameter"), rng.normal(size=(n, 2)))},
        coords={"observable": OBS, "parameter": ["cHW", "cHq3"]},
    )  # fmt: skip


def _batch(n, rng):
    x = np.c_[rng.exponential(80.0, n) + 20, rng.normal(125, 10, n), rng.uniform(-1, 1, n)]
    return x, np.c_[rng.uniform(-1, 1, n), rng.uniform(-0.2, 0.2, n)], np.c_[rng.uniform(-1, 1, n), rng.uniform(-0.2, 0.2, n)]


@pytest.fixture(scope="module")
def ratio():
    est = RatioEstimator(OBS, SPACE, hidden=(24, 16), activation="tanh", seed=1)
    est.fit(_sample(1200, 0), "alice", epochs=3, quiet=True)
    return est


@pytest.mark.parametrize("activation", ["tanh", "silu", "relu", "softplus"])
def test_singly_parametrised_ratio_equals_torch(activation, tmp_path):
    est = RatioEstimator(OBS, SPACE, hidden=(24, 16), activation=activation, seed=2)
    est.fit(_sample(800, 1), "carl", epochs=2, quiet=True)
    path = export_onnx(est, tmp_path / "r.onnx")
    onx = load_onnx(path)
    rng = np.random.default_rng(0)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["x", "theta0"] and [o.name for o in graph.output] == ["log_r"]
    for n in SIZES:
        x, th0, _ = _batch(n, rng)
        want = est.log_ratio(x, th0)  # θ₁ = SM, as fixed in the file
        got = onx.log_ratio(x, th0)
        assert got.shape == (n,)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.max(np.abs(got - want))
    # a θ₁ other than the fixed one is refused rather than silently ignored
    with pytest.raises(InvalidInputError, match="fixed"):
        onx.log_ratio(x, th0, {"cHW": 0.5})


def test_doubly_parametrised_ratio_and_fixed_theta1(tmp_path):
    est = RatioEstimator(OBS, SPACE, hidden=(16,), seed=3)
    est.fit(_sample(800, 2, doubly=True), "alice", epochs=2, quiet=True)
    assert est.training["doubly"]
    onx = load_onnx(export_onnx(est, tmp_path / "d.onnx"))
    assert onx.input_names == ["x", "theta0", "theta1"]
    rng = np.random.default_rng(1)
    for n in SIZES:
        x, th0, th1 = _batch(n, rng)
        assert np.allclose(onx.log_ratio(x, th0, th1), est.log_ratio(x, th0, th1), rtol=1e-5, atol=1e-5)
    # singly-parametrised export at another θ₁
    other = load_onnx(export_onnx(est, tmp_path / "s.onnx", doubly=False, theta1={"cHW": 0.3}))
    x, th0, _ = _batch(50, rng)
    assert np.allclose(other.log_ratio(x, th0), est.log_ratio(x, th0, {"cHW": 0.3}), rtol=1e-5, atol=1e-5)
    assert other.metadata["sbihep.theta1"] == {"cHW": 0.3, "cHq3": 0.0}


def test_score_estimator_and_ensembles(tmp_path):
    import xarray as xr

    rng = np.random.default_rng(4)
    x = np.c_[rng.exponential(80.0, 600) + 20, rng.normal(125, 10, 600), rng.uniform(-1, 1, 600)]
    data = xr.Dataset(
        {"x": (("sample", "observable"), x), "theta0": (("sample", "parameter"), np.zeros((600, 2))),
         "t_xz0": (("sample", "parameter"), np.c_[0.01 * x[:, 0], 5 * x[:, 2]] + rng.normal(size=(600, 2)))},
        coords={"observable": OBS, "parameter": ["cHW", "cHq3"]},
    )  # fmt: skip
    sally = Ensemble.build(ScoreEstimator, OBS, SPACE, n_members=3, hidden=(16, 16), activation="silu")
    sally.fit(data, epochs=2, quiet=True)
    onx = load_onnx(export_onnx(sally, tmp_path / "sally.onnx"))
    assert onx.metadata["sbihep.n_members"] == 3 and onx.metadata["sbihep.theta_ref"] == {"cHW": 0.0, "cHq3": 0.0}
    for n in SIZES:
        xb, _, _ = _batch(n, rng)
        out = onx.predict(xb)
        ref = sally.predict_score(xb)
        assert out["score"].shape == (n, 2)
        assert np.allclose(out["score"], ref["mean"].values, rtol=1e-5, atol=1e-5)
        if n > 1:
            assert np.allclose(out["score_std"], ref["std"].values, rtol=1e-4, atol=1e-5)
    ratios = Ensemble.build(RatioEstimator, OBS, SPACE, n_members=2, hidden=(8,))
    ratios.fit(_sample(500, 3), "carl", epochs=1, quiet=True)
    onx = load_onnx(export_onnx(ratios, tmp_path / "ens.onnx"))
    xb, th0, _ = _batch(64, rng)
    ref = ratios.predict_log_ratio(xb, th0)
    out = onx.predict(xb, th0)
    assert np.allclose(out["log_r"], ref["mean"].values, rtol=1e-5, atol=1e-5)
    assert np.allclose(out["log_r_std"], ref["std"].values, rtol=1e-4, atol=1e-5)


def test_metadata_roundtrip(ratio, tmp_path):
    path = export_onnx(ratio, tmp_path / "m.onnx", extra={"note": "test"})
    onx = load_onnx(path)
    meta = onx.metadata
    assert meta["sbihep.format"] == FORMAT and meta["sbihep.kind"] == "ratio" and meta["sbihep.method"] == "alice"
    assert meta["sbihep.observables"] == OBS and onx.observables == OBS
    assert ParameterSpace.from_dict(meta["sbihep.parameters"]) == SPACE == onx.space
    assert onx.space["cHW"].bounds == (-1.0, 1.0) and onx.space["cHW"].unit == "TeV^-2"
    from sbihep import __version__

    assert meta["sbihep.version"] == __version__ and meta["sbihep.provenance"]["note"] == "test"
    assert meta["sbihep.training"][0]["n_samples"] == 1200
    assert meta["sbihep.test_vectors"]["max_abs_difference"] < 1e-5
    # every value is a JSON string in the file itself
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["sbihep.observables"]) == OBS


def test_bad_input_and_mismatch(ratio, tmp_path, monkeypatch):
    onx = load_onnx(export_onnx(ratio, tmp_path / "b.onnx"))
    x = np.full((4, 3), 100.0)
    with pytest.warns(ExtrapolationWarning, match="theta0"):
        onx.log_ratio(x, {"cHW": 3.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onx.log_ratio(x, {"cHW": 0.5})
    with pytest.raises(ShapeError, match="x: expected shape"):
        onx.log_ratio(np.zeros((4, 2)), {"cHW": 0.5})
    with pytest.raises(InvalidInputError, match="NaN"):
        onx.log_ratio(np.array([[np.nan, 1.0, 0.0]]), {"cHW": 0.5})
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        onx.log_ratio(x, {"cHWtil": 0.5})
    with pytest.raises(InvalidInputError, match="holds a 'ratio'"):
        onx.score(x)
    with pytest.raises(InvalidInputError, match="untrained"):
        export_onnx(RatioEstimator(OBS, SPACE), tmp_path / "u.onnx")
    # a graph that does not reproduce torch is refused and nothing is written
    import sbihep.estimators.onnx_export as ox

    original = ox._ratio_member
    monkeypatch.setattr(ox, "_ratio_member", lambda b, est, t1, k: b.op("Mul", [original(b, est, t1, k), b.const(np.float32(1.001))]))
    with pytest.raises(OnnxMismatchError, match="differs from torch"):
        export_onnx(ratio, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()
    # an edited file fails its own test vectors
    model = onnx.load(str(tmp_path / "b.onnx"))
    for init in model.graph.initializer:
        if init.name.startswith("m0_b0"):
            arr = onnx.numpy_helper.to_array(init) + 1.0
            init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
    onnx.save(model, str(tmp_path / "edited.onnx"))
    with pytest.raises(DataFormatError, match="test vectors"):
        load_onnx(tmp_path / "edited.onnx")
    with pytest.raises(InvalidInputError, match="no such ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
