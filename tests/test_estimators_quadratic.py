"""Quadratic EFT classifier on a toy EventSet whose dσ(x|θ)/dσ(x|SM) is known exactly."""

import json

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.quadratic import QuadraticEFTClassifier
from sbihep.events import eft as eft_math

from sbihep.params import Parameter, ParameterSpace

from _eft_toy import NOISE, SPACE, exact_log_rho, toy_events  # noqa: E402

torch.set_num_threads(1)

GRID = np.array([[a, b] for a in (-1.0, -0.5, 0.5, 1.0) for b in (-1.0, 0.0, 1.0)])


@pytest.fixture(scope="module")
def trained():
    est = QuadraticEFTClassifier(["x1", "x2"], SPACE, hidden=(32, 32), seed=0)
    history = est.fit(toy_events(6000, 0), epochs=25, batch_size=64, learning_rate=3e-3, final_learning_rate=1e-4, quiet=True)
    return est, history


def test_learns_the_exact_polynomial_ratio(trained):
    est, history = trained
    assert len(est.training["thetas"]) == 8  # the 3×3 grid without the SM
    x = toy_events(3000, 1).observables().values
    learned = est.log_ratio_grid(x, GRID)
    sigma = est.log_sigma_ratio
    errors, spread = [], []
    for k, theta in enumerate(GRID):
        exact = exact_log_rho(x, theta)
        log_rho_hat = learned.values[k] + sigma({"ca": theta[0], "cb": theta[1]})
        errors.append(np.mean((log_rho_hat - exact) ** 2))
        spread.append(np.var(exact))
    # reached: mean MSE 0.0012 (max 0.0023) against Var(log ρ) 0.84 over the grid
    assert np.mean(errors) < 0.02 * np.mean(spread), (np.mean(errors), np.mean(spread))
    assert max(errors) < 0.01
    # σ(θ)/σ(SM) = E_w[ρ(x|θ)] from the training sample's polynomial, at θ = (1, 0)
    expected = 1 + 2 * (1 / 6) + (1 / 3 + NOISE**2 + 1 / 12)  # E_w[x1] = 1/6, E_w[x1²] = 1/3, E[q²] = 1/12
    assert np.exp(sigma({"ca": 1.0})) == pytest.approx(expected, rel=0.05)


def test_the_theta_dependence_is_exactly_polynomial(trained):
    est, _ = trained
    x = toy_events(50, 2).observables().values
    coeffs = est.coefficients(x)
    assert coeffs.dims == ("event", "component") and list(coeffs["component"].values) == ["1", "ca", "cb", "ca*ca", "ca*cb", "cb*cb"]
    assert np.all(coeffs.sel(component="1").values == 1.0)
    rng = np.random.default_rng(0)
    for theta in rng.uniform(-1, 1, (5, 2)):
        direct = est.network(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(theta[None], dtype=torch.float32))[:, 0]
        via_coefficients = coeffs.values @ eft_math.monomials(torch.as_tensor(theta), "quadratic").numpy()
        assert np.allclose(direct.detach().numpy(), via_coefficients, rtol=1e-4, atol=1e-5)
        assert (via_coefficients > 0).all()  # positive semi-definite by construction
    # a cubic term would show in the third difference along a line in θ: it is zero
    line = np.array([[t, 0.3 * t] for t in (-0.9, -0.3, 0.3, 0.9)])
    rho = np.exp(np.stack([est.log_dsigma_ratio(x, row) for row in line]))
    assert np.allclose(rho[3] - 3 * rho[2] + 3 * rho[1] - rho[0], 0.0, atol=1e-4 * rho.max())
    # ρ̂(x|SM) = 1 exactly, and r̂(x|θ, θ) = 1
    assert np.allclose(est.log_dsigma_ratio(x, {}), 0.0)
    assert np.allclose(est.log_ratio(x, {"ca": 0.4}, {"ca": 0.4}), 0.0, atol=1e-12)


def test_linear_order_with_cross_entropy():
    est = QuadraticEFTClassifier(["x1", "x2"], SPACE, order="linear", hidden=(32, 32), seed=0)
    thetas = np.array([[0.2, 0.0], [-0.2, 0.0], [0.0, 0.2], [0.0, -0.2]])  # per-event weights stay positive
    est.fit(toy_events(4000, 3, order="linear"), thetas=thetas, loss="cross_entropy", epochs=15, batch_size=64, learning_rate=3e-3, quiet=True)
    assert est.components == ["1", "ca", "cb"]
    x = toy_events(2000, 4).observables().values
    for theta in thetas:
        exact = exact_log_rho(x, theta, "linear")
        learned = est.log_dsigma_ratio(x, theta)
        assert np.mean((learned - exact) ** 2) < 0.02 * np.var(exact), theta  # reached ≤ 0.004 of the variance


def test_save_load_roundtrip_and_bad_input(trained, tmp_path):
    est, _ = trained
    x = toy_events(20, 5).observables().values
    path = est.save(tmp_path / "quad")
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "quadratic_eft" and config["order"] == "quadratic" and len(config["sigma_coefficients"]) == 6
    again = QuadraticEFTClassifier.load(path)
    assert np.array_equal(again.log_ratio(x, {"ca": 0.5, "cb": -0.2}), est.log_ratio(x, {"ca": 0.5, "cb": -0.2}))
    events = toy_events(100, 6)
    with pytest.raises(ShapeError, match="x: expected shape"):
        est.log_ratio(x[:, :1], {"ca": 0.5})
    with pytest.raises(InvalidInputError, match="loss must be one of"):
        est.fit(events, loss="hinge")
    with pytest.raises(ShapeError, match="thetas"):
        est.fit(events, thetas=np.zeros((3, 3)))
    other = ParameterSpace([Parameter("cz", 0.0, (-1.0, 1.0))])
    with pytest.raises(InvalidInputError, match="no operator"):
        QuadraticEFTClassifier(["x1", "x2"], other).fit(events)
    with pytest.raises(InvalidInputError, match="needed at quadratic order"):
        QuadraticEFTClassifier(["x1", "x2"], SPACE).fit(toy_events(100, 7, order="linear"))
    with pytest.raises(InvalidInputError, match="observables"):
        QuadraticEFTClassifier(["x1", "x9"], SPACE).fit(events)
    with pytest.raises(InvalidInputError, match="negative"):
        QuadraticEFTClassifier(["x1", "x2"], SPACE, order="linear").fit(toy_events(100, 8, order="linear"), thetas=[[1.0, 1.0]])
