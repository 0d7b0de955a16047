"""The generalised Galton board: exact DP likelihood, joint ratio/score identities, training-sample layout."""

import numpy as np
import pytest
import torch
from scipy import stats

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators import RatioEstimator, ScoreEstimator
from sbihep.estimators.galton import GaltonBoard

torch.set_num_threads(1)

BOARD = GaltonBoard()  # the paper's board: 20 rows, 31 nails
NARROW = GaltonBoard(n_rows=12, n_nails=4)  # balls reach the walls: forced bounces are exercised


def all_paths(n_rows):
    idx = np.arange(2**n_rows)
    return ((idx[:, None] >> np.arange(n_rows)) & 1).astype(np.int8)


def test_probabilities_are_normalised_and_symmetric():
    thetas = np.linspace(-1, 1, 7)
    for board in (BOARD, NARROW):
        p = board.probabilities(thetas)
        assert p.dims == ("theta", "x") and p.shape == (7, board.n_rows + 1)
        assert np.allclose(p.sum("x"), 1.0, atol=1e-12)
        assert (p.values >= 0).all()
        assert np.allclose(p.values, p.values[:, ::-1], atol=1e-12)  # the board is mirror symmetric
    # θ = 0: every nail is a fair coin, x is binomial(20, ½)
    assert np.allclose(BOARD.probabilities(0.0).values[0], stats.binom.pmf(np.arange(21), 20, 0.5), atol=1e-12)
    # θ = −1 pushes balls outwards: p(x) is bimodal, as in the paper's figure
    p = BOARD.probabilities(-1.0).values[0]
    assert p[10] < p[5] and p[10] < p[15]


def test_dp_agrees_with_monte_carlo_frequencies():
    rng = np.random.default_rng(3)
    for board, theta in ((BOARD, -0.8), (BOARD, 0.6), (NARROW, 0.9)):
        x = board.simulate(np.full(40_000, theta), rng)["x"]
        observed = np.bincount(x, minlength=board.n_bins)
        expected = 40_000 * board.probabilities(theta).values[0]
        keep = expected > 5  # merge the sparse tails into one bin
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        chi2 = float(((obs - exp) ** 2 / np.where(exp > 0, exp, 1)).sum())
        assert stats.chi2.sf(chi2, len(obs) - 1) > 1e-3, (theta, chi2)


def test_path_enumeration_gives_the_dp_likelihood_and_the_joint_identities():
    board = NARROW
    paths = all_paths(board.n_rows)
    theta, theta0 = 0.7, -0.4
    x, log_p, t = board.path_quantities(paths, [theta, theta0])
    possible = np.isfinite(log_p[0])  # paths that go through a wall have probability 0
    assert 0 < possible.sum() < len(paths)
    paths, x, log_p, t = paths[possible], x[possible], [v[possible] for v in log_p], [v[possible] for v in t]
    p = np.exp(log_p[0])
    px = np.bincount(x, weights=p, minlength=board.n_bins)
    assert np.allclose(px, board.probabilities(theta).values[0], atol=1e-13)
    bins = np.arange(board.n_bins)
    ok = px > 0
    # E[t(x,z|θ) | x] = t(x|θ) = ∂_θ log p(x|θ)
    t_x = np.bincount(x, weights=p * t[0], minlength=board.n_bins)[ok] / px[ok]
    assert np.allclose(t_x, board.score(bins[ok], theta), atol=1e-11)
    # ... and the DP score is the derivative of the DP log-likelihood
    eps = 1e-6
    fd = (board.log_likelihood(bins[ok], theta + eps) - board.log_likelihood(bins[ok], theta - eps)) / (2 * eps)
    assert np.allclose(fd, board.score(bins[ok], theta), atol=1e-7)
    # E[r(x,z|θ₀,θ) | x, θ] = r(x|θ₀,θ)
    r_x = np.bincount(x, weights=p * np.exp(log_p[1] - log_p[0]), minlength=board.n_bins)[ok] / px[ok]
    assert np.allclose(np.log(r_x), board.log_ratio(bins[ok], theta0, theta), atol=1e-11)
    # the joint score is the derivative of the joint log-likelihood, path by path
    _, lp_plus, _ = board.path_quantities(paths[:50], [theta + eps])
    _, lp_minus, _ = board.path_quantities(paths[:50], [theta - eps])
    assert np.allclose((lp_plus[0] - lp_minus[0]) / (2 * eps), t[0][:50], atol=1e-6)


def test_training_samples_have_the_augment_layout_and_train_the_estimators():
    data = BOARD.ratio_training_sample(2000, seed=0)
    for name, dims in {"x": ("sample", "observable"), "theta0": ("sample", "parameter"), "theta1": ("sample", "parameter"),
                       "y": ("sample",), "log_r_xz": ("sample",), "t_xz0": ("sample", "parameter"),
                       "t_xz1": ("sample", "parameter")}.items():  # fmt: skip
        assert data[name].dims == dims, name
    assert list(data["observable"].values) == ["x"] and list(data["parameter"].values) == ["theta"]
    # the sample's own joint ratio is consistent with its paths, and y = 1 samples come from θ₁ = 0
    _, log_p, _ = BOARD.path_quantities(data["z"].values, [data["theta0"].values[:, 0], data["theta1"].values[:, 0]])
    assert np.allclose(log_p[0] - log_p[1], data["log_r_xz"].values)
    assert (data["y"].values == (np.arange(2000) >= 1000)).all()
    # unbiasedness on the sample: Σ r(x,z) over θ₁-events estimates Σ_x p(x|θ₀)/p(x|θ₁) p(x|θ₁) = 1 per θ₀
    y1 = data["y"].values == 1
    assert np.exp(data["log_r_xz"].values[y1]).mean() == pytest.approx(1.0, abs=0.1)
    est = RatioEstimator(["x"], BOARD.space, hidden=(32, 32), seed=0)
    est.fit(data, "rascal", epochs=15, batch_size=32, learning_rate=3e-3, final_learning_rate=1e-4, quiet=True)
    bins = np.arange(BOARD.n_bins)
    weights = BOARD.probabilities(0.0).values[0]  # exact expectation over x ~ p(x|θ₁ = 0)
    for theta, bound in ((-0.8, 0.1), (0.5, 0.4)):
        learned = est.log_ratio(bins[:, None].astype(float), {"theta": theta})
        exact = BOARD.log_ratio(bins, theta, 0.0)
        # against the MSE of log r̂ = 0 (reached 0.03 and 0.22: the tails, x ≤ 3 and x ≥ 17, are rarely sampled)
        assert np.sum(weights * (learned - exact) ** 2) < bound * np.sum(weights * exact**2), theta
    sample = BOARD.score_training_sample(500, theta_ref=0.3, seed=1)
    assert float(sample["theta0"][0, 0]) == 0.3 and sample["t_xz0"].dims == ("sample", "parameter")
    ScoreEstimator(["x"], BOARD.space, theta_ref={"theta": 0.3}, hidden=(8,)).fit(sample, epochs=1, quiet=True)


def test_bad_input():
    with pytest.raises(InvalidInputError, match="n_rows"):
        GaltonBoard(n_rows=1)
    with pytest.raises(InvalidInputError, match="steepness"):
        GaltonBoard(steepness=-1)
    with pytest.raises(InvalidInputError, match="x: bins"):
        BOARD.log_likelihood([21], 0.0)
    with pytest.raises(ShapeError, match="paths"):
        BOARD.path_quantities(np.zeros((3, 5)), [0.0])
    with pytest.raises(InvalidInputError, match="rng"):
        BOARD.simulate([0.0], 0)
    with pytest.raises(ValueError, match="outside its bounds"):
        BOARD.ratio_training_sample(10, theta1=3.0)
