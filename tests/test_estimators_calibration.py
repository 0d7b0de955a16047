"""Calibration on the Gaussian toy: a deliberately mis-calibrated classifier (r̂ = r^0.5) is fixed by
histogram and isotonic calibration (ECE drops, ln r closer to the exact one); PAV; diagram; IO."""

import json

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators import RatioEstimator
from sbihep.estimators.calibration import (
    CalibratedRatioEstimator,
    Calibrator,
    calibrate,
    classifier_output,
    classifier_outputs,
    expected_calibration_error,
    isotonic_regression,
    reliability_curve,
    reliability_diagram,
)
from sbihep.estimators.toys import GaussianToy

torch.set_num_threads(1)

TOY = GaussianToy()
GRID = np.linspace(-2, 2, 9)


class SquareRootOfExact:
    """r̂ = r^0.5 with the exact toy ratio: ranks events perfectly, outputs far too flat."""

    observables = ["x"]
    space = TOY.space

    def log_ratio(self, x, theta0, theta1=None):
        x, theta0 = np.asarray(x)[:, 0], np.asarray(theta0)[:, 0]
        theta1 = 0.0 if theta1 is None else np.asarray(theta1)[:, 0]
        return 0.5 * TOY.log_ratio(x, theta0, theta1)


def grid_mse(log_ratio, x):
    """MSE of ln r̂(x|θ₀, 0) against the exact ln r over a θ₀ grid and x ~ the SM."""
    return float(np.mean([(log_ratio(x[:, None], np.full((len(x), 1), t)) - TOY.log_ratio(x, t, 0.0)) ** 2 for t in GRID]))


@pytest.fixture(scope="module")
def samples():
    return TOY.ratio_training_sample(20000, seed=11), TOY.ratio_training_sample(20000, seed=12)


@pytest.mark.parametrize("method", ["histogram", "isotonic"])
def test_calibration_fixes_a_too_flat_classifier(method, samples):
    calib, test = samples
    raw = SquareRootOfExact()
    fixed = calibrate(raw, calib, method, n_bins=40)
    s_raw, y = classifier_outputs(raw, test)
    s_cal, y_cal = classifier_outputs(fixed, test)
    assert np.array_equal(y, y_cal)
    ece_raw, ece_cal = expected_calibration_error(s_raw, y), expected_calibration_error(s_cal, y)
    # reached: 0.039 → 0.0077 (histogram) / 0.0072 (isotonic)
    assert ece_raw > 0.03 and ece_cal < 0.25 * ece_raw, (ece_raw, ece_cal)
    x = np.random.default_rng(3).normal(0, TOY.sigma_total, 2000)
    mse_raw, mse_cal = grid_mse(raw.log_ratio, x), grid_mse(fixed.log_ratio, x)
    # reached: 0.094 → 0.0103 (histogram) / 0.0070 (isotonic)
    assert mse_cal < 0.15 * mse_raw and mse_cal < 0.015, (mse_raw, mse_cal)


def test_calibration_of_a_trained_network(samples, tmp_path):
    calib, test = samples
    est = RatioEstimator(["x"], TOY.space, hidden=(32, 32), activation="silu", seed=0)
    est.fit(TOY.ratio_training_sample(3000, seed=1), "carl", epochs=20, batch_size=128, final_learning_rate=1e-4, quiet=True)
    with torch.no_grad():  # g → g/2 on the last layer: r̂ → r̂^0.5, the network's ranking is unchanged
        est.network.g[-1].weight.mul_(0.5)
        est.network.g[-1].bias.mul_(0.5)
    fixed = calibrate(est, calib, "isotonic")
    s_raw, y = classifier_outputs(est, test)
    s_cal, _ = classifier_outputs(fixed, test)
    ece_raw, ece_cal = expected_calibration_error(s_raw, y), expected_calibration_error(s_cal, y)
    assert ece_raw > 0.03 and ece_cal < 0.3 * ece_raw, (ece_raw, ece_cal)  # reached 0.037 → 0.008
    x = np.random.default_rng(3).normal(0, TOY.sigma_total, 2000)
    exact = np.stack([TOY.log_ratio(x, t, 0.0) for t in GRID])
    raw_mse = float(np.mean((est.log_ratio_grid(x[:, None], GRID[:, None]).values - exact) ** 2))
    cal_grid = fixed.log_ratio_grid(x[:, None], GRID[:, None])
    cal_mse = float(np.mean((cal_grid.values - exact) ** 2))
    assert cal_grid.dims == ("theta", "event")
    assert cal_mse < 0.5 * raw_mse, (raw_mse, cal_mse)
    print(f"trained CARL halved: ECE {ece_raw:.4f} -> {ece_cal:.4f}, MSE(ln r) {raw_mse:.4f} -> {cal_mse:.4f}")
    # reliability diagram written atomically (nothing else left in the folder)
    out = reliability_diagram(tmp_path / "plots" / "reliability.png", {"network r̂^0.5": (s_raw, y), "isotonic": (s_cal, y)})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["reliability.png"]
    # save / load keeps the calibration and the estimator
    path = fixed.save(tmp_path / "calibrated")
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "calibrated_ratio" and config["calibrator"]["method"] == "isotonic" and "sbihep_version" in config
    again = CalibratedRatioEstimator.load(path)
    assert np.array_equal(again.log_ratio(x[:, None], {"theta": 1.0}), fixed.log_ratio(x[:, None], {"theta": 1.0}))


def test_pool_adjacent_violators():
    knots, fit, w = isotonic_regression([1, 2, 3, 4, 5], [1, 3, 2, 4, 3.5])
    assert np.allclose(fit, [1, 2.5, 3.75]) and np.allclose(knots, [1, 2.5, 4.5]) and np.allclose(w, [1, 2, 2])
    # against a brute-force check on random data: non-decreasing, weighted mean kept, no cheaper monotone fit nearby
    rng = np.random.default_rng(0)
    v, t, wt = rng.normal(size=300), rng.normal(size=300), rng.uniform(0.5, 2, 300)
    knots, fit, w = isotonic_regression(v, t + v, wt)
    assert np.all(np.diff(fit) >= 0) and np.all(np.diff(knots) > 0)
    assert np.isclose((fit * w).sum(), (wt * (t + v)).sum()) and np.isclose(w.sum(), wt.sum())
    order = np.argsort(v)
    block = np.searchsorted(np.cumsum(w), np.cumsum(wt[order]) - 1e-9)  # contiguous blocks in sorted order
    per_point = fit[block]
    target, weight = (t + v)[order], wt[order]
    loss = np.sum(weight * (target - per_point) ** 2)
    for _ in range(20):  # small monotone perturbations never do better
        bumped = np.maximum.accumulate(per_point + 0.01 * rng.normal(size=per_point.size))
        assert np.sum(weight * (target - bumped) ** 2) >= loss - 1e-9


def test_ece_and_reliability_curve_exact_values():
    s = np.array([0.05, 0.05, 0.95, 0.95, 0.55, 0.55])
    y = np.array([0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(s, y, n_bins=10) == pytest.approx((2 * 0.05 + 2 * 0.05 + 2 * 0.05) / 6)
    curve = reliability_curve(s, y, n_bins=10)
    assert curve["count"].values.sum() == 6 and curve["observed"].sel(bin=5).item() == 0.5
    assert classifier_output([0.0, np.log(3.0)]) == pytest.approx([0.5, 0.25])


def test_bad_input(samples):
    calib, _ = samples
    with pytest.raises(InvalidInputError, match="method must be one of"):
        Calibrator("platt")
    with pytest.raises(InvalidInputError, match="not fitted"):
        Calibrator()(np.zeros(3))
    with pytest.raises(InvalidInputError, match="labels must be 0"):
        Calibrator().fit(np.zeros(4), [0, 1, 2, 1])
    with pytest.raises(ShapeError, match="expected 4 labels"):
        Calibrator().fit(np.zeros(4), [0, 1, 1])
    with pytest.raises(InvalidInputError, match="both classes"):
        Calibrator().fit(np.zeros(4), [1, 1, 1, 1])
    with pytest.raises(InvalidInputError, match="NaN"):
        Calibrator().fit(np.array([0.0, np.nan]), [0, 1])
    with pytest.raises(ShapeError, match="observables"):
        calibrate(SquareRootOfExact(), calib.assign_coords(observable=["y"]))
    with pytest.raises(InvalidInputError, match="missing variables"):
        calibrate(SquareRootOfExact(), calib.drop_vars("y"))
    with pytest.raises(InvalidInputError, match="must lie in"):
        reliability_curve([1.5], [1])
