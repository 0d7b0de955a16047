"""Issue 24: surrogate labels that cover the box, no silent negative −2ΔlnL, validation that never
reports NaN as an accuracy, a non-negative network output, yields surrogates usable from the CLI, and
the metadata (weights hash, nuisances, per-bin backgrounds).  Every test here fails on the code before."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import torch  # noqa: E402
import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sbihep.errors import ConvergenceError, InvalidInputError, SurrogateValidationWarning  # noqa: E402
from sbihep.surrogates import labels as labels_mod  # noqa: E402
from sbihep.surrogates.labels import generate_labels, load_problem  # noqa: E402
from sbihep.surrogates.likelihood import split_labels, validate, validation_report  # noqa: E402
from sbihep.surrogates.loader import SurrogateLikelihood, read_metadata  # noqa: E402
from sbihep.surrogates.network import MLPConfig, SurrogateEnsemble, train_ensemble  # noqa: E402
from sbihep.surrogates.onnx import export_onnx, weights_sha256  # noqa: E402

from _pyhf_toy import toy_spec, two_region_spec  # noqa: E402

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def toy_labels():
    problem = load_problem(toy_spec(), bounds=[[0.0, 8.0]])
    return generate_labels(problem, 14, n_check=8, n_workers=1, progress=False, seed=0)


# --- labels that cover the box ---------------------------------------------------------------------


def test_box_edges_zero_and_best_fits_are_labels(toy_labels):
    """Before: all labels were sampled (μ = 0, μ = 8 and μ̂ missing; issue: t_asimov(0) = −0.118)."""
    x = toy_labels.x[:, 0]
    mu_hat = toy_labels.best_fit["observed"][0]
    for edge in (0.0, 8.0, mu_hat):
        assert np.any(np.abs(x - edge) < 1e-9), (edge, x)
    assert toy_labels.is_anchor.sum() >= 3 and toy_labels.is_anchor[:3].all()
    # the labels are relative to the minimum: t(μ̂) = 0 observed, t(0) = 0 for both Asimov data sets
    i_hat, i_zero = int(np.argmin(np.abs(x - mu_hat))), int(np.argmin(np.abs(x)))
    assert toy_labels.t[i_hat, 0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(toy_labels.t[i_zero, 1:], 0.0, atol=1e-6)
    assert toy_labels.t.min() >= 0.0
    # the check grid covers the whole box and is not trained on
    assert toy_labels.x_check[:, 0].min() == 0.0 and toy_labels.x_check[:, 0].max() == 8.0
    assert len(toy_labels.t_check) == 8


def test_expected_label_time_is_printed_before_labelling(monkeypatch, capsys):
    problem = load_problem(toy_spec(), bounds=[[0.0, 8.0]])
    seen = {}
    real = labels_mod.map_jobs

    def spy(fn, jobs, **kw):
        if kw.get("desc") == "surrogate labels":
            seen["before"] = capsys.readouterr().err
        return real(fn, jobs, **kw)

    monkeypatch.setattr(labels_mod, "map_jobs", spy)
    out = generate_labels(problem, 8, n_workers=1, progress=True, seed=0)
    assert "expected" in seen["before"] and "one label took" in seen["before"]
    assert out.timing["expected_label_time_s"] > 0 and out.timing["one_label_s"] > 0
    assert out.timing["n_labels"] == 8 and out.timing["label_time_s"] >= out.timing["one_label_s"]


# --- no negative −2ΔlnL -----------------------------------------------------------------------------


def _free(model, fixed) -> bool:
    return not fixed[model.config.poi_index]


def test_label_below_the_free_fit_moves_the_minimum(toy_labels, monkeypatch):
    """The free fit from the suggested start stops 0.5 high at μ = 3 (a local minimum).  Before: the
    reference silently became the lowest label and μ̂ stayed 3; now the free fit is redone from the
    lowest label and μ̂, the reference and the labels are the true ones."""
    problem = toy_labels.problem
    real_fit = labels_mod._fit
    model = problem.model()
    init = np.asarray(model.config.suggested_init(), float)

    def stuck(data, model, start, fixed, bounds, edm_max):
        r = real_fit(data, model, start, fixed, bounds, edm_max)
        if r is not None and _free(model, fixed) and np.allclose(start, init):
            pars = np.array(r[1])
            pars[model.config.poi_index] = 3.0
            return r[0] + 0.5, pars, r[2]
        return r

    monkeypatch.setattr(labels_mod, "_fit", stuck)
    x = np.array([[0.0], [0.5], [1.5], [3.0], [6.0]])
    out = generate_labels(problem, x=x, n_workers=1, progress=False)
    assert out.n_reference_refits["observed"] >= 1
    assert out.best_fit["observed"][0] == pytest.approx(toy_labels.best_fit["observed"][0], abs=0.02)
    for k in out.reference_nll:
        assert out.reference_nll[k] == pytest.approx(toy_labels.reference_nll[k], abs=2e-3)
    assert out.t.min() >= 0.0


def test_label_below_a_free_fit_that_cannot_reach_it_is_refused(toy_labels, monkeypatch):
    """Every free fit reports 0.5 above the truth: labels lie 0.5 below it.  Before: accepted silently."""
    real_fit = labels_mod._fit

    def high(data, model, start, fixed, bounds, edm_max):
        r = real_fit(data, model, start, fixed, bounds, edm_max)
        if r is not None and _free(model, fixed):
            return r[0] + 0.5, r[1], r[2]
        return r

    monkeypatch.setattr(labels_mod, "_fit", high)
    with pytest.raises(ConvergenceError, match="below the free fit"):
        generate_labels(toy_labels.problem, x=np.array([[0.1], [1.0]]), n_workers=1, progress=False)


# --- validation ---------------------------------------------------------------------------------------


def test_validation_without_small_t_points_is_a_failure_not_nan(toy_labels):
    ens, _ = train_ensemble(toy_labels.x, toy_labels.t, MLPConfig(1, 3, [8], 2), adam_epochs=20, lbfgs_rounds=2,
                            quiet=True)
    far = toy_labels.t[:, 0] > 10
    metrics = validate(ens, toy_labels.x[far], toy_labels.t[far])
    assert metrics["observed_max_abs_err_t_lt_10"] is None and metrics["observed_n_t_lt_10"] == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in metrics.values())
    report = validation_report(ens, toy_labels, toy_labels.x[far], toy_labels.t[far], toy_labels.x, toy_labels.t)
    assert report["passed"] is False
    assert any("held_out: no point with t_observed < 10" in f for f in report["failures"])
    json.dumps(report, allow_nan=False)  # storable without NaN


def test_held_out_points_are_drawn_where_t_is_small(toy_labels):
    _, _, x_te, t_te = split_labels(toy_labels, 0.3, seed=1)
    assert len(t_te) >= 1 and np.all(t_te.min(axis=1) < 10)
    anchors = toy_labels.x[toy_labels.is_anchor]
    assert not any(np.any(np.all(np.isclose(a, x_te), axis=1)) for a in anchors)  # anchors always trained on


def test_network_output_is_never_negative(toy_labels, tmp_path):
    """A network that undershoots: every member's output shifted to −5.  Clamped at 0 in torch and in
    ONNX (min_t_on_check_grid = 0); with nonnegative=False the undershoot shows."""
    torch.manual_seed(0)
    for nonnegative in (True, False):
        ens = SurrogateEnsemble(MLPConfig(1, 3, [8], 2, nonnegative=nonnegative)).eval()
        for m in ens.members:
            m.out_shift.fill_(-5.0)
        x = np.linspace(0.0, 8.0, 101)[:, None]
        path = export_onnx(ens, toy_labels, tmp_path / f"nonneg_{nonnegative}.onnx")
        t_onnx = SurrogateLikelihood(path).evaluate(x)[0]
        np.testing.assert_allclose(t_onnx, ens.predict(x)[0], atol=1e-5)
        assert (t_onnx.min() >= 0.0) == nonnegative
        report = validation_report(ens, toy_labels, toy_labels.x, toy_labels.t, toy_labels.x, toy_labels.t)
        assert (report["min_t_on_check_grid"] >= -0.01) == nonnegative


def test_metadata_weights_nuisances_backgrounds(toy_labels, tmp_path):
    ens, _ = train_ensemble(toy_labels.x, toy_labels.t, MLPConfig(1, 3, [8], 2), adam_epochs=20, lbfgs_rounds=2,
                            quiet=True)
    path = export_onnx(ens, toy_labels, tmp_path / "m.onnx")
    meta = read_metadata(path)
    assert meta["weights"]["sha256"] == weights_sha256(path) and len(meta["weights"]["sha256"]) == 64
    edited = onnx.load(str(path))
    w = next(i for i in edited.graph.initializer if i.name == "m0_W0")
    arr = onnx.numpy_helper.to_array(w).copy()
    arr[0, 0] += 1e-3
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    assert weights_sha256(edited) != meta["weights"]["sha256"]
    assert meta["nuisances"] == ["uncorr_bkguncrt[0]", "uncorr_bkguncrt[1]"]
    bkg = meta["backgrounds"]
    assert bkg["bins"] == ["SR[0]", "SR[1]"] and bkg["observed"] == [52.0, 29.0]
    np.testing.assert_allclose(bkg["background_prefit"], [50.0, 30.0])
    np.testing.assert_allclose(bkg["background_prefit_uncertainty"], [5.0, 4.0], rtol=1e-6)
    # post-fit: pulled towards the data, uncertainty reduced by the measurement
    assert 50.0 < bkg["background_postfit"][0] < 52.0 and 29.0 < bkg["background_postfit"][1] < 30.0
    assert all(0 < s < p for s, p in zip(bkg["background_postfit_uncertainty"], [5.0, 4.0]))
    assert meta["nll"]["zero_signal_nll"]["observed"] >= meta["nll"]["reference_nll"]["observed"]
    assert [o["name"] for o in meta["outputs"]] == ["t_observed", "t_asimov", "t_asimov_prefit"]
    assert meta["labels"]["anchors"][:2] == [[0.0], [8.0]] and meta["labels"]["timing"]["expected_label_time_s"] > 0


# --- yields mode ------------------------------------------------------------------------------------


def test_default_yield_box_is_scaled_to_each_bin():
    """Before: [0, 100] events per bin whatever the backgrounds (6 and 55 here)."""
    problem = load_problem(two_region_spec(), regions=["SR_A", "SR_B"])
    lo, hi = problem.bounds[:, 0], problem.bounds[:, 1]
    assert np.all(lo == 0.0) and hi[0] < hi[1] < 100.0
    # each upper edge: about 5 sigma of that bin, i.e. a −2ΔlnL of ~25 for that bin alone
    assert 5 * math.sqrt(6 + 1.5**2) <= hi[0] < 30 and 5 * math.sqrt(55 + 36) - 1e-9 <= hi[1] < 60
    # the yield parameters of the model are bounded by the box
    model = problem.model()
    for slot, (a, b) in zip(problem.input_slots(model), problem.bounds):
        assert model.config.suggested_bounds()[slot] == pytest.approx([a, b])
    assert load_problem(two_region_spec(), regions=["SR_A", "SR_B"], max_yield=100.0).bounds.tolist() == [[0, 100]] * 2


def test_bounds_per_input_named_or_broadcast():
    spec = two_region_spec()
    both = load_problem(spec, regions=["SR_A", "SR_B"], bounds=[[0.0, 10.0], [0.0, 40.0]])
    assert both.bounds.tolist() == [[0.0, 10.0], [0.0, 40.0]]
    assert load_problem(spec, regions=["SR_A", "SR_B"], bounds=[[0.0, 30.0]]).bounds.tolist() == [[0.0, 30.0]] * 2
    default = load_problem(spec, regions=["SR_A", "SR_B"]).bounds
    named = load_problem(spec, regions=["SR_A", "SR_B"], bounds={"SR_B": (0.0, 33.0)})
    assert named.bounds[1].tolist() == [0.0, 33.0] and named.bounds[0].tolist() == default[0].tolist()
    with pytest.raises(InvalidInputError, match="'SR_C' is not an input"):
        load_problem(spec, regions=["SR_A", "SR_B"], bounds={"SR_C": (0, 1)})
    with pytest.raises(InvalidInputError, match=r"need shape \(2, 2\)"):
        load_problem(spec, regions=["SR_A", "SR_B"], bounds=[[0, 1], [0, 2], [0, 3]])
    with pytest.raises(InvalidInputError, match="SR_B"):
        load_problem(spec, regions=["SR_A", "SR_B"], bounds=[[0, 1], [2, 1]])


def test_cli_bounds_parsing():
    from sbihep.surrogates.cli import _parse_bounds

    assert _parse_bounds(["0,6"]) == [[0.0, 6.0]]  # the old form still works
    assert _parse_bounds(["0:10", "0:40"]) == [[0.0, 10.0], [0.0, 40.0]]
    assert _parse_bounds(["SR_A=0:20", "SR_B[1]=-1:5"]) == {"SR_A": [0.0, 20.0], "SR_B[1]": [-1.0, 5.0]}
    for bad, match in ((["0:1", "SR_A=0:2"], "not both"), (["SR_A=0:1", "SR_A=0:2"], "twice"),
                       (["5:1"], "LOW < HIGH"), (["0:1:2"], "LOW:HIGH"), (["=0:1"], "name")):
        with pytest.raises(typer.BadParameter, match=match):
            _parse_bounds(bad)


def _write_workspace(tmp_path):
    ws = tmp_path / "BkgOnly.json"
    ws.write_text(json.dumps(two_region_spec()))
    return ws


def test_cli_yields_surrogate_meets_its_target_or_exits_nonzero(tmp_path):
    """The issue's reproduction, small: a two-region yields surrogate through the CLI alone, with per-input
    --bounds.  Exit 0 only when the stored validation passed (|dt| < 0.1 where t < 10 on held-out labels
    and on the check grid); before, the file said max error 6.9 and NaN accuracy, with exit 0."""
    from sbihep.surrogates.cli import app

    ws, out = _write_workspace(tmp_path), tmp_path / "y.onnx"
    result = runner.invoke(app, ["train", str(ws), "-o", str(out), "--region", "SR_A", "--region", "SR_B",
                                 "--n-points", "40", "--n-check", "9", "--n-workers", "1", "-q"])
    assert result.exit_code in (0, 3), result.output
    validation = read_metadata(out)["validation"]
    assert (result.exit_code == 0) == validation["passed"]
    for part in ("held_out", "check_grid"):
        for name in ("observed", "asimov", "asimov_prefit"):
            value = validation[part][f"{name}_max_abs_err_t_lt_10"]
            assert value is not None and (value < 0.1 or result.exit_code == 3)
    assert validation["min_t_on_check_grid"] >= -0.01
    assert read_metadata(out)["inputs"][1]["train_high"] < 100.0


def test_cli_exits_nonzero_when_validation_misses(tmp_path, monkeypatch):
    """A network that cannot fit (one L-BFGS round, 2 hidden units): the file is written with passed =
    false, the CLI says why and exits 3.  Before: exit 0, no message."""
    from sbihep.surrogates import likelihood
    from sbihep.surrogates.cli import app

    real = likelihood.train_ensemble

    def weak(x, t, config=None, **kw):
        kw.update(adam_epochs=1, lbfgs_rounds=1)
        return real(x, t, MLPConfig(x.shape[1], t.shape[1], [2], 1), **kw)

    monkeypatch.setattr(likelihood, "train_ensemble", weak)
    ws, out = _write_workspace(tmp_path), tmp_path / "bad.onnx"
    result = runner.invoke(app, ["train", str(ws), "-o", str(out), "--region", "SR_A", "--region", "SR_B",
                                 "--bounds", "SR_A=0:20", "--bounds", "SR_B=0:40", "--n-points", "12",
                                 "--n-check", "4", "--n-starts", "1", "--no-prefit", "--n-workers", "1", "-q"])
    assert result.exit_code == 3, result.output
    assert "misses its validation targets" in result.output and "max |dt_" in result.output
    meta = read_metadata(out)
    assert meta["validation"]["passed"] is False and meta["validation"]["failures"]
    assert [i["train_high"] for i in meta["inputs"]] == [20.0, 40.0]
    with pytest.warns(SurrogateValidationWarning, match="misses its validation targets"):
        likelihood.train_surrogate(None, output=tmp_path / "bad2.onnx", labels=_tiny_labels(), quiet=True)


def _tiny_labels():
    problem = load_problem(two_region_spec(), regions=["SR_A", "SR_B"], bounds=[[0.0, 20.0], [0.0, 40.0]])
    return generate_labels(problem, 10, n_check=4, n_starts=1, prefit=False, n_workers=1, progress=False)
