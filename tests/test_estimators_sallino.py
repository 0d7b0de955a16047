"""SALLINO on the Gaussian toy (exact log r): histograms of the projected score, exact and learned."""

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.score import Sallino, ScoreEstimator
from sbihep.estimators.toys import GaussianToy

torch.set_num_threads(1)

TOY = GaussianToy()  # p(x|θ) = N(θ, 5)
PAIRS = [({"theta": -1.5}, None), ({"theta": 1.0}, None), ({"theta": 1.0}, {"theta": -1.0})]


def sampler(theta):
    # the same seed for every θ: common random numbers, as a simulator run with a fixed seed would give
    x, _ = TOY.simulate(np.full(40_000, theta["theta"]), np.random.default_rng(7))
    return x[:, None]


def mse(sallino, x):
    out = []
    for theta0, theta1 in PAIRS:
        exact = TOY.log_ratio(x, theta0["theta"], (theta1 or {"theta": 0.0})["theta"])
        out.append(np.mean((sallino.log_ratio(x[:, None], theta0, theta1) - exact) ** 2))
    return np.array(out)


X = np.random.default_rng(99).normal(0, TOY.sigma_total, 2000)
X = X[np.abs(X) < 5]  # the bulk (±2.2σ): the outer histogram bins are wide


def test_sallino_with_the_exact_score_reproduces_the_exact_ratio():
    sallino = Sallino(lambda x: TOY.score(x[:, 0], 0.0), space=TOY.space, samples=sampler, n_bins=40)
    errors = mse(sallino, X)
    assert (errors < 0.01).all(), errors  # reached ≤ 0.004 (histogram binning); Var(log r) ≈ 0.2–0.45
    assert np.allclose(sallino.log_ratio(X[:, None], {"theta": 0.5}, {"theta": 0.5}), 0.0)
    grid = sallino.log_ratio_grid(X[:5, None], np.array([[-1.0], [1.0]]))
    assert grid.dims == ("theta", "event") and np.allclose(grid.values[1], sallino.log_ratio(X[:5, None], {"theta": 1.0}))


def test_sallino_with_a_learned_sally_score():
    data = TOY.score_training_sample(4000, theta_ref=0.0, seed=0)
    sally = ScoreEstimator(["x"], TOY.space, hidden=(16, 16))
    sally.fit(data, epochs=20, quiet=True, final_learning_rate=1e-4)
    sallino = Sallino(sally, samples=sampler, n_bins=40)
    errors = mse(sallino, X)
    # h = t̂(x)(θ₀ − θ₁) only needs t̂ monotonic in x: the learned score loses nothing here
    assert (errors < 0.02).all(), errors
    # a score that carries no information about θ gives r̂ ≈ 1: the test can fail
    blind = Sallino(lambda x: np.cos(40 * x[:, 0]), space=TOY.space, samples=sampler, n_bins=40)
    assert (mse(blind, X) > 0.1).all()


def test_bad_input():
    with pytest.raises(InvalidInputError, match="exactly one of"):
        Sallino(lambda x: x, space=TOY.space)
    with pytest.raises(InvalidInputError, match="space"):
        Sallino(lambda x: x, samples=sampler)
    with pytest.raises(InvalidInputError, match="n_bins"):
        Sallino(lambda x: x, space=TOY.space, samples=sampler, n_bins=1)
    sallino = Sallino(lambda x: np.zeros((len(x), 2)), space=TOY.space, samples=sampler)
    with pytest.raises(ShapeError, match="score"):
        sallino.log_ratio(X[:, None], {"theta": 1.0})
    good = Sallino(lambda x: TOY.score(x[:, 0], 0.0), space=TOY.space, samples=sampler)
    with pytest.raises(ValueError, match="outside its bounds"):
        good.log_ratio(X[:, None], {"theta": 5.0})
    with pytest.raises(InvalidInputError, match="NaN"):
        good.log_ratio(np.array([[np.nan]]), {"theta": 1.0})


def test_reweighted_eventset_gives_the_same_histograms_as_weighted_samples():
    from _eft_toy import SPACE, toy_events

    events = toy_events(3000, 0)
    x = events.observables().values
    score = lambda x: np.stack([x[:, 0], x[:, 0] * x[:, 1]], 1)  # noqa: E731  (≈ t(x|SM)/2 of that toy)
    by_events = Sallino(score, space=SPACE, events=events, features=["x1", "x2"], n_bins=20)
    by_samples = Sallino(score, space=SPACE, samples=lambda th: (x, events.weights(th).numpy()), n_bins=20)
    theta0 = {"ca": 0.8, "cb": -0.5}
    a, b = by_events.log_ratio(x[:200], theta0), by_samples.log_ratio(x[:200], theta0)
    assert np.allclose(a, b) and np.std(a) > 0.1
    # and it follows the toy's exact log ρ(x|θ) − log σ(θ)/σ(SM) (binned in h)
    rho = 1 + 1.6 * x[:, 0] - x[:, 0] * x[:, 1] + 0.64 * (x[:, 0] ** 2 + 0.09 + x[:, 1] ** 2 / 4) - 0.8 * x[:, 0] ** 2 * x[:, 1] + 0.25 * (x[:, 0] * x[:, 1]) ** 2
    w = events.weights({}).numpy()
    exact = np.log(rho) - np.log(np.sum(w * rho) / w.sum())
    assert np.corrcoef(by_events.log_ratio(x, theta0), exact)[0, 1] > 0.9
