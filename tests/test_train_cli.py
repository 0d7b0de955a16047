"""`sbihep train CONFIG.toml -o DIR` on a tiny parton-level WH EventSet generated here: metrics against
the exact parton-level truth, output directory, ONNX export, clear errors for bad configurations."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from sbihep.estimators.ensemble import Ensemble
from sbihep.estimators.onnx_export import load_onnx
from sbihep.estimators.run import load_train_config
from sbihep.train_cli import register
from sbihep.errors import InvalidInputError

torch.set_num_threads(1)
EXAMPLE = Path(__file__).parent.parent / "examples" / "train_wh_alices.toml"


def make_app():
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    from sbihep.events.generate import generate
    from sbihep.physics.processes import get_process

    events = generate(get_process("wh_lvbb"), 13000.0, 3000, seed=21, n_adapt=4, n_per_iteration=8000, progress=False)
    return events.save(tmp_path_factory.mktemp("events") / "wh.nc")


def write(tmp_path, text, name="train.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


SALLY = """
seed = 3
[data]
events = "{events}"
[parameters]
cHW = [-1.0, 1.0]
cHWtil = [-1.0, 1.0]
[estimator]
kind = "score"
method = "sally"
hidden = [32, 32]
[sample]
n_samples = 10000
[training]
epochs = 20
learning_rate = 3e-3
final_learning_rate = 1e-4
"""

RATIO = """
[data]
events = "{events}"
test_fraction = 0.3
[parameters]
cHW = [-1.0, 1.0]
cHq3 = [-0.2, 0.2]
[estimator]
kind = "ratio"
method = "alices"
hidden = [16]
n_members = 2
[sample]
n_samples = 2000
[training]
epochs = 2
[validation]
grid_points = 2
[export]
onnx = true
"""


def test_sally_learns_the_exact_parton_level_score(events_file, tmp_path):
    cfg = write(tmp_path, SALLY.format(events=events_file))
    res = CliRunner().invoke(make_app(), ["train", str(cfg), "-o", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "MSE(score) vs exact" in res.output and "samples/s" in res.output and "best val" in res.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    exact = metrics["exact"]
    # the exact t(x|SM) from the amplitudes; reached MSE 0.20 against its variance 0.37
    assert exact["mse_score"] < 0.7 * exact["exact_score_variance"], exact
    row = metrics["members"][0]
    assert row["epochs"] == 20 and row["best_validation_loss"] <= row["final_validation_loss"] and row["samples_per_s"] > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["estimator", "metrics.json", "train.toml"]


def test_ratio_ensemble_metrics_match_an_independent_computation(events_file, tmp_path):
    from sbihep.events import augment, reco
    from sbihep.events.eventset import EventSet
    from sbihep.physics.processes import get_process

    cfg = write(tmp_path, RATIO.format(events=events_file))
    out = tmp_path / "ratio"
    res = CliRunner().invoke(make_app(), ["train", str(cfg), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "MSE(ln r) vs exact" in res.output and "members:" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["member"] for r in metrics["members"]] == ["0", "1"] and metrics["parameters"] == ["cHW", "cHq3"]
    # recompute MSE(ln r̂) on the held-out events from the saved ensemble and the exact joint ratio
    ens = Ensemble.load(out / "estimator")
    process = get_process("wh_lvbb")
    events, names = reco.parton_features(EventSet.load(events_file), process)
    _, test = events.split((0.7, 0.3), seed=0)
    w = test.weights({}).numpy()
    w /= w.sum()
    x = test.observables().sel(observable=names).values
    thetas = augment.grid(ens.space, 2)(4, np.random.default_rng(0))
    exact = np.stack([test.log_joint_ratio(dict(zip(ens.space.names, t)), {}).numpy() for t in thetas])
    mse = float(np.sum(w * (ens.log_ratio_grid(x, thetas).values - exact) ** 2, axis=1).mean())
    assert metrics["exact"]["mse_log_r"] == pytest.approx(mse, rel=1e-9)
    assert metrics["exact"]["n_theta_grid"] == 4 and len(metrics["exact"]["mse_log_r_members"]) == 2
    # the ONNX file reproduces the ensemble
    onx = load_onnx(out / "estimator.onnx")
    assert onx.metadata["sbihep.n_members"] == 2 and onx.observables == names
    assert np.allclose(onx.log_ratio(x[:50], {"cHW": 0.5}), ens.log_ratio(x[:50], {"cHW": 0.5}), rtol=1e-5, atol=1e-5)


def test_weighted_morphing_ratio_with_the_exact_cross_section(events_file, tmp_path):
    """The set-up that meets the WH targets, from TOML: morphing network, weighted sample (every event
    with K θ₀), Ẑ(θ) = the training events' exact σ(θ)/σ(SM), score term in units of the bounds."""
    from sbihep.estimators.ratio import RatioEstimator
    from sbihep.events import eft as eft_math
    from sbihep.events import reco
    from sbihep.events.eventset import EventSet
    from sbihep.physics.processes import get_process

    text = (RATIO.format(events=events_file).replace("n_members = 2", "architecture = \"morphing\"\nnormalisation = \"cross_section\"\n"
                                                     "score_units = \"bounds\"\nalpha = 10")
            .replace("n_samples = 2000", "theta_per_event = 3"))
    out = tmp_path / "weighted"
    res = CliRunner().invoke(make_app(), ["train", str(write(tmp_path, text)), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    est = RatioEstimator.load(out / "estimator")
    train, _ = reco.parton_features(EventSet.load(events_file), get_process("wh_lvbb"))[0].split((0.7, 0.3), seed=0)
    assert metrics["n_training_samples"] == 3 * train.n_events
    assert est.training["sample"] == "weighted" and est.training["normalisation"] == "cross_section"
    assert est.training["score_units"] == "bounds" and est.training["alpha"] == 10.0 and est.architecture == "morphing"
    theta = {"cHW": 0.6, "cHq3": -0.15}
    sigma = train.sigma_coefficients().numpy()
    with torch.no_grad():
        log_z = float(est.network.log_sigma_ratio(torch.tensor([[0.6, -0.15]])))
    m = eft_math.monomials(torch.tensor([theta.get(o, 0.0) for o in train.operators], dtype=torch.float64), train.order).numpy()
    assert train.operators == ["cHW", "cHWtil", "cHq3"]  # the third operator stays at the SM
    assert log_z == pytest.approx(np.log(m @ sigma / sigma[0]), abs=1e-5)  # exact σ(θ)/σ(SM), not learned
    assert np.isfinite(metrics["exact"]["mse_log_r"])


@pytest.mark.parametrize(
    "edit, message",
    [
        (("method = \"alices\"", "methd = \"alices\""), "unknown key 'methd'"),
        (("method = \"alices\"", "method = \"sally\""), "'method' of a ratio estimator must be one of"),
        (("[sample]\nn_samples = 2000", "[sample]\nn_samples = \"many\""), "'n_samples' must be int"),
        (("cHq3 = [-0.2, 0.2]", "cHq3 = [0.2, -0.2]"), "'cHq3' must be [low, high]"),
        (("[validation]", "[validaton]"), "unknown key 'validaton'"),
        (("kind = \"ratio\"", "kind = \"flow\""), "'kind' must be"),
        (("test_fraction = 0.3", "test_fraction = 1.5"), "'test_fraction' must lie in (0, 1)"),
        (("hidden = [16]", "hidden = [16]\nnormalisation = \"cross_section\""), "'normalisation' is for ratio estimators with architecture"),
        (("hidden = [16]", "hidden = [16]\nscore_units = \"box\""), "'score_units' must be one of ['theta', 'bounds']"),
        (("[sample]\nn_samples = 2000", "[sample]\nn_samples = 2000\ntheta_per_event = 2"), "not both"),
        (("[sample]\nn_samples = 2000", "[sample]\ntheta_per_event = 2\ntheta1 = \"prior\""), "needs resampled rows"),
    ],
)
def test_bad_config_names_the_key(events_file, tmp_path, edit, message):
    text = RATIO.format(events=events_file)
    assert edit[0] in text
    cfg = write(tmp_path, text.replace(edit[0], edit[1]))
    res = CliRunner().invoke(make_app(), ["train", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_bad_data_is_reported(events_file, tmp_path):
    runner, app = CliRunner(), make_app()
    res = runner.invoke(app, ["train", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "does not exist" in res.output
    cfg = write(tmp_path, RATIO.format(events=tmp_path / "missing.nc"))
    res = runner.invoke(app, ["train", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such EventSet file" in res.output
    cfg = write(tmp_path, RATIO.format(events=events_file).replace("cHq3 = [-0.2, 0.2]", "cWW = [-1.0, 1.0]"))
    res = runner.invoke(app, ["train", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "['cWW'] are not operators" in res.output
    cfg = write(tmp_path, RATIO.format(events=events_file).replace("test_fraction = 0.3", "features = [\"pt(l)\"]"))
    res = runner.invoke(app, ["train", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no observables" in res.output
    assert not (tmp_path / "o").exists()


def test_morphing_example_config_parses():
    cfg = load_train_config(EXAMPLE.parent / "train_wh_morphing.toml")
    assert cfg.estimator["architecture"] == "morphing" and cfg.estimator["normalisation"] == "cross_section"
    assert cfg.sample["theta_per_event"] == 4 and "n_samples" not in cfg.sample and cfg.estimator["score_units"] == "bounds"


def test_example_config_parses():
    cfg = load_train_config(EXAMPLE)
    assert cfg.estimator["method"] == "alices" and cfg.estimator["n_members"] == 3 and cfg.export["onnx"] is True
    assert cfg.parameters == {"cHW": (-1.0, 1.0), "cHWtil": (-1.0, 1.0), "cHq3": (-0.2, 0.2)}
    assert (cfg.base / cfg.data["simulation"]).is_file()
    with pytest.raises(InvalidInputError, match=r"\[data\]: give exactly one of 'events'"):
        load_train_config("[data]\n[parameters]\ncHW=[0,1]\n[estimator]\nkind='ratio'\nmethod='carl'\n[sample]\nn_samples=10\n")
