"""Robustness of learned objects: estimator directories, training checkpoints, ONNX surrogates, sbi seeding.

Every case asserts one outcome class: an sbihep error naming the argument / field / file, a loud
warning, or the correct result.  Each defect of issue 19 that lives here has a case that fails on the
code before the fix (marked "issue 19" in its docstring).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sbihep.errors import (
    DataFormatError,
    ExtrapolationWarning,
    IntegrityError,
    InvalidInputError,
    ShapeError,
    IntegrityWarning,
)
from sbihep.estimators import RatioEstimator, train
from sbihep.estimators.base import read_estimator, tensor_sha256
from sbihep.estimators.toys import GaussianToy
from sbihep.estimators.train import resolve_device

torch.set_num_threads(1)

TOY = GaussianToy()
TINY = dict(epochs=1, batch_size=64, quiet=True, seed=0)
X = np.linspace(-3.0, 3.0, 7)[:, None]


# ---------------------------------------------------------------------------------------------
# estimator directories
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample():
    return TOY.ratio_training_sample(256, seed=1)


@pytest.fixture(scope="module")
def trained(sample):
    est = RatioEstimator(["x"], TOY.space, hidden=(8,), seed=0)
    est.fit(sample, "carl", **TINY)
    return est


@pytest.fixture
def saved(trained, tmp_path):
    return trained.save(tmp_path / "est")


def _edit_config(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config, indent=2))


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="correct")
def test_roundtrip_is_exact_and_records_hashes(trained, saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["integrity"]["state_dict_sha256"] == tensor_sha256(trained.network.state_dict())
    assert "network.activation" in config["integrity"]["fields_sha256"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = RatioEstimator.load(saved)
    assert np.array_equal(again.log_ratio(X, {"theta": 0.5}), trained.log_ratio(X, {"theta": 0.5}))


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
@pytest.mark.parametrize(
    "field, edit",
    [
        ("network.activation", lambda c: c["network"].update(activation="relu")),
        ("network.seed", lambda c: c["network"].update(seed=5)),
        ("network.architecture", lambda c: c["network"].update(architecture="morphing")),
        ("observables", lambda c: c.update(observables=["y"])),
        ("space", lambda c: c["space"]["parameters"][0].update(bounds=[-20.0, 20.0])),
        ("method", lambda c: c.update(method="alices")),
        ("preprocessing", lambda c: c.update(preprocessing="none")),
        ("extra_field", lambda c: c.update(extra_field=1)),
    ],
)
def test_edited_config_field_is_refused_by_name(saved, field, edit):
    """issue 19: changing `activation` (or any field) in config.json loaded silently and changed the outputs."""
    _edit_config(saved, edit)
    with pytest.raises(IntegrityError, match=field.split(".")[-1]):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_deleted_config_field_is_named(saved):
    _edit_config(saved, lambda c: c["network"].pop("hidden"))
    with pytest.raises(IntegrityError, match="network.hidden"):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_edited_weights_are_refused(saved):
    state = torch.load(saved / "state_dict.pt", weights_only=True)
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key] + 1e-3
    torch.save(state, saved / "state_dict.pt")
    with pytest.raises(IntegrityError, match="state_dict.pt"):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_verify_false_skips_hashes_but_checks_shapes_against_weights(saved):
    """With the hash check off, a config whose network shape disagrees with the weights still fails by name."""
    _edit_config(saved, lambda c: c["network"].update(hidden=[16]))
    with pytest.raises(DataFormatError, match="do not describe its weights") as info:
        RatioEstimator.load(saved, verify=False)
    assert "has shape" in str(info.value) and not isinstance(info.value, IntegrityError)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="warning")
def test_legacy_directory_without_hash_warns(saved, trained):
    _edit_config(saved, lambda c: c.pop("integrity"))
    with pytest.warns(IntegrityWarning, match="no content hash"):
        again = RatioEstimator.load(saved)
    assert np.array_equal(again.log_ratio(X, {"theta": 0.5}), trained.log_ratio(X, {"theta": 0.5}))


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_incomplete_legacy_config_is_a_data_format_error(saved):
    _edit_config(saved, lambda c: (c.pop("integrity"), c.pop("network")))
    with pytest.warns(IntegrityWarning), pytest.raises(DataFormatError, match="lacks the field 'network'"):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_unknown_activation_in_legacy_config_is_named(saved):
    _edit_config(saved, lambda c: (c.pop("integrity"), c["network"].update(activation="gelu")))
    with pytest.warns(IntegrityWarning), pytest.raises(DataFormatError, match="activation"):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
@pytest.mark.parametrize("how", ["truncate", "garbage", "empty", "json_list"])
def test_broken_estimator_files(saved, how):
    if how == "truncate":
        blob = (saved / "state_dict.pt").read_bytes()
        (saved / "state_dict.pt").write_bytes(blob[: len(blob) // 2])
    elif how == "garbage":
        (saved / "state_dict.pt").write_bytes(np.random.default_rng(0).bytes(500))
    elif how == "empty":
        (saved / "config.json").write_text("")
    else:
        (saved / "config.json").write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="state_dict.pt|config.json"):
        RatioEstimator.load(saved)


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_non_tensor_state_is_refused(saved):
    torch.save({"a": 1}, saved / "state_dict.pt")
    with pytest.raises(DataFormatError, match="dict of tensors"):
        read_estimator(saved, "ratio")


@pytest.mark.robustness(entry="RatioEstimator.load", outcome="error")
def test_missing_directory_names_path(tmp_path):
    with pytest.raises(InvalidInputError, match="not a saved estimator"):
        RatioEstimator.load(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------
# checkpoints and devices
# ---------------------------------------------------------------------------------------------


def _fit(sample, **kw):
    est = RatioEstimator(["x"], TOY.space, hidden=(8,), seed=0)
    est.fit(sample, "carl", epochs=3, batch_size=64, quiet=True, seed=0, **kw)
    return est


@pytest.mark.robustness(entry="Estimator.fit(checkpoint=)", outcome="error")
def test_resume_with_other_data_of_the_same_shape_is_refused(sample, tmp_path):
    """issue 19: resuming a checkpoint with different data of the same shape was accepted."""
    ckpt = tmp_path / "ckpt.pt"
    _fit(sample, checkpoint=ckpt, callback=lambda epoch, h: epoch == 0)
    other = sample.copy(deep=True)
    other["x"].values[:] = other["x"].values[::-1]
    with pytest.raises(InvalidInputError, match="contents"):
        _fit(other, checkpoint=ckpt)


@pytest.mark.robustness(entry="Estimator.fit(checkpoint=)", outcome="error")
def test_resume_names_the_changed_option(sample, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    _fit(sample, checkpoint=ckpt, callback=lambda epoch, h: epoch == 0)
    est = RatioEstimator(["x"], TOY.space, hidden=(8,), seed=0)
    with pytest.raises(InvalidInputError, match="option batch_size: 64 → 32"):
        est.fit(sample, "carl", epochs=3, batch_size=32, quiet=True, seed=0, checkpoint=ckpt)


@pytest.mark.robustness(entry="Estimator.fit(checkpoint=)", outcome="correct")
def test_resume_with_the_same_data_is_bit_identical(sample, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    straight = _fit(sample)
    _fit(sample, checkpoint=ckpt, callback=lambda epoch, h: epoch == 0)
    resumed = _fit(sample, checkpoint=ckpt)
    for a, b in zip(straight.network.state_dict().values(), resumed.network.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.robustness(entry="Estimator.fit(checkpoint=)", outcome="error")
@pytest.mark.parametrize("how", ["truncate", "garbage", "empty", "foreign"])
def test_broken_checkpoint_is_a_data_format_error(sample, tmp_path, how):
    """issue 19: a truncated checkpoint raised a raw torch exception."""
    ckpt = tmp_path / "ckpt.pt"
    _fit(sample, checkpoint=ckpt, callback=lambda epoch, h: epoch == 0)
    blob = ckpt.read_bytes()
    if how == "truncate":
        ckpt.write_bytes(blob[: len(blob) // 3])
    elif how == "garbage":
        ckpt.write_bytes(np.random.default_rng(1).bytes(2000))
    elif how == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    with pytest.raises(DataFormatError, match="checkpoint"):
        _fit(sample, checkpoint=ckpt)


@pytest.mark.robustness(entry="Estimator.fit(checkpoint=)", outcome="error")
def test_checkpoint_path_that_is_a_directory(sample, tmp_path):
    with pytest.raises(InvalidInputError, match="checkpoint"):
        _fit(sample, checkpoint=tmp_path)


@pytest.mark.robustness(entry="Estimator.fit(device=)", outcome="error")
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_cuda_names_the_device(sample, device):
    """issue 19: device="cuda" without CUDA raised torch's AssertionError."""
    with pytest.raises(InvalidInputError, match="device"):
        _fit(sample, device=device)


@pytest.mark.robustness(entry="Estimator.fit(device=)", outcome="error")
@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3.5, "meta"])
def test_bad_device_names_the_argument(device):
    with pytest.raises(InvalidInputError, match="device"):
        resolve_device(device)


@pytest.mark.robustness(entry="estimators.train", outcome="error")
def test_train_function_device_check_before_work():
    model = torch.nn.Linear(1, 1)
    data = {"x": torch.zeros(10, 1)}
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="device"):
            train(model, lambda m, b: m(b["x"]).mean(), data, device="cuda", quiet=True)


# ---------------------------------------------------------------------------------------------
# ONNX likelihood surrogates
# ---------------------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _toy_labels(mode: str = "mu"):
    """A LabelSet-like object with analytic labels: t_obs = (x − 2)²/2, t_Asimov = x²/2 (a Gaussian likelihood)."""
    from types import SimpleNamespace

    d = 1 if mode == "mu" else 2
    x = np.stack(np.meshgrid(*[np.linspace(0.0, 8.0, 12)] * d), -1).reshape(-1, d)
    t = np.stack([((x - 2.0) ** 2).sum(1) / 2.0, (x**2).sum(1) / 2.0], 1)
    names = ["mu"] if mode == "mu" else ["SR_bin0", "SR_bin1"]
    units = ["1 (signal strength)"] if mode == "mu" else ["events", "events"]
    problem = SimpleNamespace(input_names=names, input_units=units, bounds=np.array([[0.0, 8.0]] * d), mode=mode,
                              regions=["SR"], provenance={"workspace_sha256": "0" * 64})
    return SimpleNamespace(problem=problem, x=x, t=t, reference_nll={"observed": 10.0, "asimov": 9.0},
                           best_fit={"observed": [2.0] * d, "asimov": [0.0] * d}, best_fit_nll={"observed": 10.0, "asimov": 9.0},
                           n_dropped={"observed": 0, "asimov": 0}, n_requested=len(x), n_disagree={}, n_neighbour={})


@pytest.fixture(scope="module")
def surrogate_file(tmp_path_factory):
    from sbihep.surrogates.network import MLPConfig, train_ensemble
    from sbihep.surrogates.onnx import export_onnx

    labels = _toy_labels()
    ens, _ = train_ensemble(labels.x, labels.t, MLPConfig(1, 2, [16], 2), adam_epochs=200, lbfgs_rounds=3, quiet=True, device="cpu")
    return export_onnx(ens, labels, tmp_path_factory.mktemp("surrogate") / "toy.onnx")


@pytest.fixture
def surrogate(surrogate_file):
    from sbihep.surrogates.loader import SurrogateLikelihood

    return SurrogateLikelihood(surrogate_file)


def _edited(path: Path, tmp_path: Path, field: str, edit) -> Path:
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == f"sbihep.{field}":
            prop.value = json.dumps(edit(json.loads(prop.value)))
    out = tmp_path / "edited.onnx"
    onnx.save(model, str(out))
    return out


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="correct")
def test_fresh_surrogate_loads_without_warnings(surrogate_file):
    from sbihep.surrogates.loader import SurrogateLikelihood

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = SurrogateLikelihood(surrogate_file)
    t, _ = s.evaluate([[2.0], [4.0]])
    assert abs(t[0, 0]) < 0.3 and abs(t[1, 0] - 2.0) < 0.3  # (x − 2)²/2


@pytest.mark.robustness(entry="SurrogateLikelihood.evaluate", outcome="error")
@pytest.mark.parametrize("bad", [[[math.nan]], [[math.inf]], [[1.0], [-math.inf]], np.array([[np.nan]])])
def test_non_finite_input_is_refused(surrogate, bad):
    """issue 19: a NaN input gave a NaN output."""
    with pytest.raises(InvalidInputError, match="x: .*NaN or infinite"):
        surrogate.evaluate(bad)


@pytest.mark.robustness(entry="SurrogateLikelihood.evaluate", outcome="error")
@pytest.mark.parametrize("bad", [[["a"]], "text", [[1.0, 2.0]], np.zeros((2, 1, 1))])
def test_wrong_typed_or_shaped_input(surrogate, bad):
    with pytest.raises(ShapeError, match="x: "):
        surrogate.evaluate(bad)


@pytest.mark.robustness(entry="SurrogateLikelihood.cls", outcome="error")
@pytest.mark.parametrize("mu", [math.nan, [1.0, math.nan], math.inf, -math.inf])
def test_cls_of_non_finite_mu_is_refused(surrogate, mu):
    """issue 19: cls(NaN) returned CLs = 1.0."""
    with pytest.raises(InvalidInputError, match="mu"):
        surrogate.cls(mu)


@pytest.mark.robustness(entry="SurrogateLikelihood.upper_limit", outcome="error")
@pytest.mark.parametrize("level", [2, 1.0, 0.0, -0.1, math.nan, math.inf, "0.05", True])
def test_upper_limit_level_outside_0_1_is_refused(surrogate, level):
    """issue 19: upper_limit(level=2) returned 0.0."""
    with pytest.raises(InvalidInputError, match="level"):
        surrogate.upper_limit(level=level)


@pytest.mark.robustness(entry="SurrogateLikelihood.upper_limit", outcome="error")
@pytest.mark.parametrize("rtol", [0.0, -1.0, math.nan, 2.0])
def test_upper_limit_rtol_is_checked(surrogate, rtol):
    with pytest.raises(InvalidInputError, match="rtol"):
        surrogate.upper_limit(rtol=rtol)


@pytest.mark.robustness(entry="SurrogateLikelihood.upper_limit", outcome="error")
@pytest.mark.parametrize("direction", [[math.nan], [-1.0], [0.0], [1.0, 1.0], ["x"]])
def test_bad_direction_is_refused(surrogate, direction):
    with pytest.raises(InvalidInputError, match="direction"):
        surrogate.upper_limit(direction=direction)


@pytest.mark.robustness(entry="SurrogateLikelihood.upper_limit", outcome="correct")
def test_upper_limit_is_correct_on_the_gaussian_toy(surrogate):
    """Correct result: CLs of a Gaussian likelihood with σ = 1 (t_obs = (μ−2)², so μ̂ = 2) at the surrogate's accuracy."""
    from sbihep.surrogates.asymptotics import cls_from_q

    limit = surrogate.upper_limit(0.05)
    grid = np.linspace(2.0, 8.0, 60001)
    exact = grid[np.argmax(cls_from_q((grid - 2.0) ** 2 / 2.0, grid**2 / 2.0)["CLs"] < 0.05)]
    assert abs(limit - exact) < 0.1
    assert float(cls_from_q(0.0, 0.0)["CLs"]) == 1.0  # scalars work too (0-d inputs crashed in normal_cdf)


@pytest.mark.robustness(entry="SurrogateLikelihood.evaluate", outcome="warning")
def test_outside_the_box_is_a_loud_extrapolation_warning(surrogate):
    with pytest.warns(ExtrapolationWarning, match="outside the training bounds"):
        surrogate.evaluate([[9.0]])


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
@pytest.mark.parametrize(
    "field, edit",
    [
        ("inputs", lambda v: [dict(v[0], train_high=100.0)]),  # widened bounds
        ("inputs", lambda v: [dict(v[0], name="mu_other")]),
        ("mode", lambda v: "yields"),
        ("nll", lambda v: dict(v, reference_nll={"observed": 0.0, "asimov": 0.0})),
        ("description", lambda v: v + " edited"),
        ("regions", lambda v: ["CR"]),
    ],
)
def test_edited_metadata_is_refused_by_field(surrogate_file, tmp_path, field, edit):
    """issue 19: edited metadata (widened bounds, changed mode) was accepted."""
    from sbihep.surrogates.loader import SurrogateLikelihood

    with pytest.raises(DataFormatError, match=field):
        SurrogateLikelihood(_edited(surrogate_file, tmp_path, field, edit))


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
def test_edited_graph_bytes_are_refused(surrogate_file, tmp_path):
    """A change of the graph that the test vectors do not see (a node renamed) is caught by the file hash."""
    from sbihep.surrogates.loader import SurrogateLikelihood

    model = onnx.load(str(surrogate_file))
    model.graph.name = "renamed"
    out = tmp_path / "renamed.onnx"
    onnx.save(model, str(out))
    with pytest.raises(IntegrityError, match="modified after export"):
        SurrogateLikelihood(out)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="warning")
def test_deleted_integrity_record_warns(surrogate_file, tmp_path):
    from sbihep.surrogates.loader import SurrogateLikelihood

    model = onnx.load(str(surrogate_file))
    kept = [p for p in model.metadata_props if p.key != "sbihep.integrity"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    out = tmp_path / "legacy.onnx"
    onnx.save(model, str(out))
    with pytest.warns(IntegrityWarning, match="no sbihep.integrity"):
        SurrogateLikelihood(out)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
@pytest.mark.parametrize("field", ["inputs", "mode", "nll"])
def test_incomplete_metadata_names_the_field(surrogate_file, tmp_path, field):
    """issue 19: incomplete surrogate metadata raised a raw KeyError."""
    from sbihep.surrogates.loader import SurrogateLikelihood

    model = onnx.load(str(surrogate_file))
    kept = [p for p in model.metadata_props if p.key != f"sbihep.{field}"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    out = tmp_path / "incomplete.onnx"
    onnx.save(model, str(out))
    with pytest.raises(DataFormatError, match=f"sbihep.{field}"):
        SurrogateLikelihood(out, verify=False)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda v: [{"name": "mu", "unit": "1"}], "lacks 'train_low'"),
        (lambda v: [dict(v[0], train_low=5.0, train_high=1.0)], "train_low < train_high"),
        (lambda v: [dict(v[0], train_high="8")], "finite number"),
        (lambda v: [dict(v[0], train_high=float("nan"))], "finite number"),
        (lambda v: [], "non-empty list"),
        (lambda v: "mu", "non-empty list"),
    ],
)
def test_malformed_inputs_metadata_is_named(surrogate_file, tmp_path, edit, match):
    from sbihep.surrogates.loader import SurrogateLikelihood

    with pytest.raises(DataFormatError, match=match):
        SurrogateLikelihood(_edited(surrogate_file, tmp_path, "inputs", edit), verify=False)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
def test_mode_mu_with_two_inputs_is_inconsistent(tmp_path):
    from sbihep.surrogates.loader import SurrogateLikelihood
    from sbihep.surrogates.network import MLPConfig, train_ensemble
    from sbihep.surrogates.onnx import export_onnx

    labels = _toy_labels("yields")
    ens, _ = train_ensemble(labels.x, labels.t, MLPConfig(2, 2, [4], 1), adam_epochs=5, lbfgs_rounds=1, quiet=True, device="cpu")
    path = export_onnx(ens, labels, tmp_path / "yields.onnx")
    assert SurrogateLikelihood(path).mode == "yields"
    with pytest.raises(DataFormatError, match="mode is 'mu'"):
        SurrogateLikelihood(_edited(path, tmp_path, "mode", lambda v: "mu"), verify=False)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
@pytest.mark.parametrize("how", ["truncate", "garbage", "empty"])
def test_broken_onnx_file(surrogate_file, tmp_path, how):
    from sbihep.surrogates.loader import SurrogateLikelihood

    blob = surrogate_file.read_bytes()
    out = tmp_path / "broken.onnx"
    out.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": np.random.default_rng(0).bytes(3000), "empty": b""}[how])
    with pytest.raises(DataFormatError, match="path"):
        SurrogateLikelihood(out)


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="error")
def test_flipped_byte_in_the_weights_is_refused(surrogate_file, tmp_path):
    """2 bytes changed in the middle of the file: refused (test vectors or file hash), never loaded."""
    from sbihep.surrogates.loader import SurrogateLikelihood

    blob = bytearray(surrogate_file.read_bytes())
    i = len(blob) // 3
    blob[i] ^= 0x01
    blob[i + 1] ^= 0x10
    out = tmp_path / "flipped.onnx"
    out.write_bytes(bytes(blob))
    with pytest.raises(DataFormatError):
        SurrogateLikelihood(out)


@pytest.mark.robustness(entry="SbihepOnnxBackend", outcome="error")
def test_spey_backend_bad_n_grid(surrogate_file):
    pytest.importorskip("spey")
    from sbihep.surrogates.spey import SbihepOnnxBackend

    for bad in (math.nan, 5, 20.5, "100"):
        with pytest.raises(InvalidInputError, match="n_grid"):
            SbihepOnnxBackend(surrogate_file, n_grid=bad)
    backend = SbihepOnnxBackend(surrogate_file)
    with pytest.raises(InvalidInputError, match="poi_test"):
        backend.negative_loglikelihood(poi_test=math.nan)


# ---------------------------------------------------------------------------------------------
# sbi posteriors: every RNG a dependency draws from is seeded from the user's seed
# ---------------------------------------------------------------------------------------------

_NLE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from sbihep.estimators import posterior as P
    from sbihep.estimators.toys import GaussianToy

    np.random.seed(int(sys.argv[1]))  # the caller's own use of numpy's global RNG must not matter
    sim = P.GaussianToySimulator(GaussianToy(sigma_z=0.4, sigma_x=0.3), n_obs=2)
    r = P.fit_posterior("nle", sim, n_simulations=200, network=dict(hidden_features=8, num_transforms=1),
                        training=dict(max_num_epochs=1, training_batch_size=100), sampler=dict(num_chains=2, warmup_steps=5),
                        n_diagnostic=0, seed=3, quiet=True, device="cpu")
    np.random.seed(int(sys.argv[1]) + 1)
    print(json.dumps(r.sample(np.array([0.1, 0.2]), 20, seed=0).values.ravel().tolist()))
    """
)


def _nle_samples(numpy_seed: int) -> list[float]:
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _NLE_SCRIPT, str(numpy_seed)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.robustness(entry="fit_posterior", outcome="correct")
def test_nle_samples_are_identical_across_processes():
    """issue 19: sbi's MCMC sampler drew from numpy's global RNG, which sample(seed=…) did not seed —
    two identical runs in two processes gave different samples."""
    pytest.importorskip("sbi")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(_nle_samples, (1, 2))
    assert len(a) == 20 and a == b


@pytest.mark.robustness(entry="fit_posterior", outcome="correct")
def test_sampling_seeds_and_restores_numpys_global_rng():
    pytest.importorskip("sbi")
    import random

    from sbihep.estimators.posterior import _seeded

    np.random.seed(5)
    random.seed(5)
    expect_np, expect_py = np.random.random(), random.random()
    np.random.seed(5)
    random.seed(5)
    with _seeded(7):
        inside = (np.random.random(), random.random(), float(torch.rand(1)))
    with _seeded(7):
        assert (np.random.random(), random.random(), float(torch.rand(1))) == inside
    assert (np.random.random(), random.random()) == (expect_np, expect_py)  # the caller's streams are untouched


@pytest.mark.robustness(entry="fit_posterior", outcome="error")
@pytest.mark.parametrize("seed", [-3, 1.5, "0", True])
def test_fit_posterior_bad_seed_names_the_argument(seed):
    pytest.importorskip("sbi")
    from sbihep.estimators import posterior as P

    with pytest.raises(InvalidInputError, match="seed"):
        P.fit_posterior("npe", P.GaussianToySimulator(), n_simulations=10, seed=seed, quiet=True)


@pytest.mark.robustness(entry="estimators.train", outcome="error")
@pytest.mark.parametrize("seed", [-3, 1.5, True, "0"])
def test_train_bad_seed_names_the_argument(seed):
    with pytest.raises(InvalidInputError, match="seed"):
        train(torch.nn.Linear(1, 1), lambda m, b: m(b["x"]).mean(), {"x": torch.zeros(10, 1)}, seed=seed, quiet=True, device="cpu")


@pytest.mark.robustness(entry="SurrogateEnsemble.load", outcome="error")
@pytest.mark.parametrize("how", ["missing", "config", "weights", "shape"])
def test_surrogate_ensemble_directory_problems(tmp_path, how):
    from sbihep.surrogates.network import MLPConfig, SurrogateEnsemble

    d = tmp_path / "ens"
    SurrogateEnsemble(MLPConfig(1, 2, [4], 2)).save(d)
    if how == "missing":
        (d / "weights.pt").unlink()
    elif how == "config":
        (d / "config.json").write_text('{"n_inputs": 1, "hiddn": [4]}')
    elif how == "weights":
        (d / "weights.pt").write_bytes(b"\0" * 100)
    else:
        (d / "config.json").write_text('{"n_inputs": 1, "n_outputs": 2, "hidden": [8], "n_members": 2}')
    with pytest.raises(InvalidInputError, match="directory|path"):
        SurrogateEnsemble.load(d)


@pytest.mark.robustness(entry="add_integrity_record", outcome="correct")
def test_add_integrity_record_to_a_shipped_model(tmp_path):
    """A model without the record (as the shipped ones were before they were stamped) loads with a warning;
    stamping keeps every output, and a stamped model then refuses edits."""
    from sbihep.surrogates.loader import SurrogateLikelihood
    from sbihep.surrogates.onnx import add_integrity_record

    model = onnx.load(str(ROOT_MODELS / "1912.08479_ERJR_500p0_0p0.onnx"))
    kept = [p for p in model.metadata_props if p.key != "sbihep.integrity"]
    assert len(kept) < len(model.metadata_props)  # the shipped file carries its record
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    shipped = tmp_path / "unstamped.onnx"
    onnx.save(model, str(shipped))
    with pytest.warns(IntegrityWarning):
        old = SurrogateLikelihood(shipped)
    stamped = add_integrity_record(shipped, tmp_path / "stamped.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = SurrogateLikelihood(stamped)
    x = np.linspace(0.0, 10.0, 11)[:, None]
    assert np.array_equal(new.evaluate(x)[0], old.evaluate(x)[0]) and new.metadata["inputs"] == old.metadata["inputs"]
    with pytest.raises(IntegrityError, match="inputs"):
        SurrogateLikelihood(_edited(stamped, tmp_path, "inputs", lambda v: [dict(v[0], train_high=100.0)]))


ROOT_MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.robustness(entry="SurrogateLikelihood", outcome="correct")
@pytest.mark.parametrize("name", sorted(p.name for p in ROOT_MODELS.glob("*.onnx")))
def test_shipped_models_load_without_integrity_warning(name):
    """The shipped models carry their sbihep.integrity record (they loaded with an IntegrityWarning before)."""
    from sbihep.surrogates.loader import SurrogateLikelihood

    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        SurrogateLikelihood(ROOT_MODELS / name)


@pytest.mark.robustness(entry="load_posterior", outcome="error")
def test_saved_sbi_posterior_is_verified_on_load(tmp_path):
    pytest.importorskip("sbi")
    from sbihep.estimators import posterior as P

    r = P.fit_posterior("npe", P.GaussianToySimulator(n_obs=2), n_simulations=100, network=dict(hidden_features=4, num_transforms=1),
                        training=dict(max_num_epochs=1, training_batch_size=50), n_diagnostic=0, seed=0, quiet=True, device="cpu")
    path = r.save(tmp_path / "post")
    x = np.array([0.1, 0.2])
    assert np.array_equal(P.load_posterior(path).sample(x, 10, seed=1).values, r.sample(x, 10, seed=1).values)
    _edit_config(path, lambda c: c["sampler"].update(num_chains=1) if c["sampler"] else c.update(sample_with="mcmc"))
    with pytest.raises(IntegrityError, match="sample"):
        P.load_posterior(path)
    _edit_config(path, lambda c: (c.pop("integrity"), c.pop("x_dim")))
    with pytest.warns(IntegrityWarning), pytest.raises(InvalidInputError, match="x_dim"):
        P.load_posterior(path)
