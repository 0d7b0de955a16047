"""emcee posteriors: a Gaussian measurement with a flat prior has a Gaussian posterior N(x, σ)."""

import matplotlib

matplotlib.use("Agg")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sbihep.errors import InvalidInputError, PosteriorWarning, UnknownParameterError  # noqa: E402
from sbihep.fit import GaussianTerm, Likelihood, minimize  # noqa: E402
from sbihep.fit.bayes import credible_interval, normal_prior, sample_posterior, split_rhat  # noqa: E402
from sbihep.fit.plots import plot_corner  # noqa: E402
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace  # noqa: E402


def model(low=-10.0, high=10.0):
    space = ParameterSpace([Parameter("mu", 0.0, (low, high)),
                            Parameter("n", 0.0, (-5, 5), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0))])
    # d = mu + 0.5 n, σ_d = 1: marginal posterior of mu (flat prior) is N(0.8, √(1 + 0.25))
    return Likelihood([GaussianTerm([0.8], [[1.0]], [0.0], space, linear={"mu": [1.0], "n": [0.5]})])


def test_flat_prior_gaussian_posterior_and_corner():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorWarning)  # one basin, converged chains: no warning
        post = sample_posterior(model(), n_walkers=8, n_steps=1000, n_burn=200, seed=1)
    assert post.attrs["n_basins"] == 1 and post.attrs["converged"] == 1 and post.attrs["n_chains"] == 4
    assert float(post["rhat"].max()) < 1.01 and post.attrs["mode_masses_from"] == "single basin"
    mu = post.sel(parameter="mu")
    assert float(mu["mean"]) == pytest.approx(0.8, abs=0.12)
    assert float(mu["std"]) == pytest.approx(np.sqrt(1.25), rel=0.1)
    iv = credible_interval(post, "mu")
    assert iv.low == pytest.approx(0.8 - np.sqrt(1.25), abs=0.2) and iv.high == pytest.approx(0.8 + np.sqrt(1.25), abs=0.2)
    assert 0.2 < post.attrs["acceptance_fraction"] < 0.9
    fig = plot_corner(post, truths={"mu": 0.8})
    assert len(fig.axes) == 4
    again = sample_posterior(model(), n_walkers=8, n_steps=1000, n_burn=200, seed=1)
    np.testing.assert_array_equal(post["samples"].values, again["samples"].values)


def test_priors_and_errors():
    post = sample_posterior(model(), priors={"mu": normal_prior(0.0, 1.0)}, n_steps=800, n_burn=200, seed=2)
    # conjugate: posterior mean 0.8 · 1/(1 + 1.25) for prior N(0, 1) and likelihood width² 1.25
    assert float(post["mean"].sel(parameter="mu")) == pytest.approx(0.8 / 2.25, abs=0.1)
    with pytest.raises(InvalidInputError, match="infinite bounds"):
        sample_posterior(model(-np.inf, np.inf), n_steps=10, n_burn=1)
    with pytest.raises(UnknownParameterError):
        sample_posterior(model(), priors={"x": normal_prior(0, 1)}, n_steps=10, n_burn=1)
    with pytest.raises(InvalidInputError, match="method"):
        sample_posterior(model(), method="mcmc")
    with pytest.raises(InvalidInputError, match="n_chains"):
        sample_posterior(model(), n_chains=1)
    with pytest.raises(InvalidInputError, match="n_live"):
        sample_posterior(model(), method="nested", n_live=3)


def test_nested_gaussian_posterior_and_evidence():
    """exp(−nll) is Gaussian in (mu, n) with precision [[1, .5], [.5, 1.25]] (det 1): the evidence with
    mu ~ U(−10, 10) is ln Z = −nll_min + ln 2π − ln 20 (truncation at the bounds negligible)."""
    lik = model()
    post = sample_posterior(lik, method="nested", n_live=150, seed=3)
    mu = post.sel(parameter="mu")
    assert float(mu["mean"]) == pytest.approx(0.8, abs=0.15)
    assert float(mu["std"]) == pytest.approx(np.sqrt(1.25), rel=0.12)
    exact = -minimize(lik).nll + np.log(2 * np.pi) - np.log(20.0)
    assert post.attrs["log_evidence"] == pytest.approx(exact, abs=4 * post.attrs["log_evidence_error"])
    assert post.attrs["converged"] == 1 and float(post["basin_mass"][0]) == pytest.approx(1.0)


def test_split_rhat():
    rng = np.random.default_rng(0)
    same = rng.standard_normal((4, 1000))
    assert split_rhat(same) == pytest.approx(1.0, abs=0.01)
    shifted = same + np.array([[0.0], [0.0], [0.0], [1.0]])  # one chain in another place
    assert split_rhat(shifted) > 1.1
    drifting = same + np.linspace(0, 2, 1000)  # not stationary: the split halves disagree
    assert split_rhat(drifting) > 1.1
    wider = same * np.array([[1.0], [1.0], [1.0], [3.0]])  # same centre, other width: the folded R̂
    assert split_rhat(wider) > 1.05
    with pytest.raises(InvalidInputError, match="shape"):
        split_rhat(np.ones(10))
