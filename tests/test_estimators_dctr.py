"""DCTR on a Gaussian with a known shift: learned weights against the exact p(x|μ)/p(x|0), reweighted moments."""

import json

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.reweight import DCTRReweighter
from sbihep.params import Parameter, ParameterSpace

torch.set_num_threads(1)

SPACE = ParameterSpace([Parameter("mu", 0.0, (-1.0, 1.0))])
N = 20000


def simulate(mu, rng):
    """x = (a, b): a ~ N(μ, 1) shifts with θ = μ, b ~ N(0, 1) does not."""
    mu = np.asarray(mu, dtype=float)
    return np.stack([mu + rng.standard_normal(mu.shape), rng.standard_normal(mu.shape)], axis=1)


def exact_log_w(x, mu):
    return mu * x[:, 0] - 0.5 * mu**2


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    nominal = simulate(np.zeros(N), rng)
    theta = rng.uniform(-1, 1, N)
    varied = simulate(theta, rng)
    est = DCTRReweighter(["a", "b"], SPACE, hidden=(64, 64), seed=0)
    history = est.fit(nominal, varied, theta[:, None], epochs=12, batch_size=256, final_learning_rate=1e-4, quiet=True)
    return est, history


def test_dctr_learns_the_exact_weights_and_reproduces_the_shifted_moments(fitted):
    est, history = fitted
    assert np.isfinite(history.validation_loss).all()
    test = simulate(np.zeros(20_000), np.random.default_rng(1))  # a fresh nominal sample
    for mu in (-0.8, 0.5):
        log_w = est.log_weights(test, {"mu": mu})
        exact = exact_log_w(test, mu)
        bulk = np.abs(test[:, 0]) < 2.5
        assert np.mean((log_w - exact)[bulk] ** 2) < 0.02, mu  # reached 0.006; Var(exact) = μ² ≈ 0.25–0.64
        w = est.weights(test, {"mu": mu})
        mean_a = np.average(test[:, 0], weights=w)
        second_a = np.average(test[:, 0] ** 2, weights=w)
        mean_b = np.average(test[:, 1], weights=w)
        # exact reweighting gives ⟨a⟩ = μ, ⟨a²⟩ = 1 + μ², ⟨b⟩ = 0 (statistical error ≈ 0.01–0.03;
        # reached |Δ⟨a⟩| ≤ 0.011, |Δ⟨a²⟩| ≤ 0.08: the a < −2.5 tail that dominates ⟨a²⟩ at μ = −0.8 is rare)
        assert mean_a == pytest.approx(mu, abs=0.05)
        assert second_a == pytest.approx(1.0 + mu**2, abs=0.12)
        assert mean_b == pytest.approx(0.0, abs=0.08)  # reached −0.06: the classifier's noise in b
        # the unweighted nominal moments are far from the target: the test can fail
        assert abs(test[:, 0].mean() - mu) > 0.4 and abs(np.mean(test[:, 0] ** 2) - 1 - mu**2) > 0.2
    # at the nominal point the weights are 1
    assert np.abs(est.log_weights(test[:2000], {"mu": 0.0})).mean() < 0.05
    grid = est.log_weights_grid(test[:10], np.array([[-0.5], [0.5]]))
    assert grid.dims == ("theta", "event") and np.allclose(grid.sel(theta=1).values, est.log_weights(test[:10], [0.5]), atol=1e-6)


def test_event_weights_are_used():
    # nominal events carrying weights exp(μ₀ a − μ₀²/2) already represent μ₀ = 0.5: then w(x|0.5) ≈ 1
    rng = np.random.default_rng(2)
    nominal = simulate(np.zeros(N), rng)
    theta = np.full(N, 0.5)
    varied = simulate(theta, rng)
    space = ParameterSpace([Parameter("mu", 0.5, (0.0, 1.0))])
    est = DCTRReweighter(["a", "b"], space, hidden=(16,), seed=0)
    est.fit(nominal, varied, theta, nominal_weights=np.exp(exact_log_w(nominal, 0.5)), epochs=6, batch_size=256, quiet=True)
    assert np.mean(est.log_weights(nominal[:2000], {"mu": 0.5}) ** 2) < 0.04
    unweighted = DCTRReweighter(["a", "b"], space, hidden=(16,), seed=0)
    unweighted.fit(nominal, varied, theta, epochs=6, batch_size=256, quiet=True)
    exact = exact_log_w(nominal[:2000], 0.5)  # mean square ≈ 0.27
    assert np.mean((unweighted.log_weights(nominal[:2000], {"mu": 0.5}) - exact) ** 2) < 0.04  # reached 0.022


def test_save_load_and_bad_input(fitted, tmp_path):
    est, _ = fitted
    x = simulate(np.zeros(50), np.random.default_rng(3))
    path = est.save(tmp_path / "dctr")
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "dctr" and "sbihep_version" in config and config["observables"] == ["a", "b"]
    again = DCTRReweighter.load(path)
    assert np.array_equal(again.weights(x, {"mu": 0.3}), est.weights(x, {"mu": 0.3}))
    with pytest.raises(ShapeError, match="x: expected shape"):
        est.weights(x[:, :1], {"mu": 0.3})
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        est.weights(x, {"nu": 0.3})
    new = DCTRReweighter(["a", "b"], SPACE)
    with pytest.raises(ShapeError, match="varied_theta: needs one row"):
        new.fit(x, x, np.zeros((10, 1)))
    with pytest.raises(ShapeError, match="nominal_x: expected 2 columns"):
        new.fit(x[:, :1], x, np.zeros((50, 1)))
    with pytest.raises(InvalidInputError, match="varied_x: contains NaN"):
        new.fit(x, np.full((50, 2), np.nan), np.zeros((50, 1)))
    with pytest.raises(InvalidInputError, match="non-negative"):
        new.fit(x, x, np.zeros((50, 1)), nominal_weights=-np.ones(50))
