"""emcee posteriors: a Gaussian measurement with a flat prior has a Gaussian posterior N(x, σ)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sbihep.errors import InvalidInputError, UnknownParameterError  # noqa: E402
from sbihep.fit import GaussianTerm, Likelihood  # noqa: E402
from sbihep.fit.bayes import credible_interval, normal_prior, sample_posterior  # noqa: E402
from sbihep.fit.plots import plot_corner  # noqa: E402
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace  # noqa: E402


def model(low=-10.0, high=10.0):
    space = ParameterSpace([Parameter("mu", 0.0, (low, high)),
                            Parameter("n", 0.0, (-5, 5), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0))])
    # d = mu + 0.5 n, σ_d = 1: marginal posterior of mu (flat prior) is N(0.8, √(1 + 0.25))
    return Likelihood([GaussianTerm([0.8], [[1.0]], [0.0], space, linear={"mu": [1.0], "n": [0.5]})])


def test_flat_prior_gaussian_posterior_and_corner():
    post = sample_posterior(model(), n_walkers=32, n_steps=2500, n_burn=300, seed=1)
    mu = post.sel(parameter="mu")
    assert float(mu["mean"]) == pytest.approx(0.8, abs=0.12)
    assert float(mu["std"]) == pytest.approx(np.sqrt(1.25), rel=0.1)
    iv = credible_interval(post, "mu")
    assert iv.low == pytest.approx(0.8 - np.sqrt(1.25), abs=0.2) and iv.high == pytest.approx(0.8 + np.sqrt(1.25), abs=0.2)
    assert 0.2 < post.attrs["acceptance_fraction"] < 0.9
    fig = plot_corner(post, truths={"mu": 0.8})
    assert len(fig.axes) == 4
    again = sample_posterior(model(), n_walkers=32, n_steps=2500, n_burn=300, seed=1)
    np.testing.assert_array_equal(post["samples"].values, again["samples"].values)


def test_priors_and_errors():
    post = sample_posterior(model(), priors={"mu": normal_prior(0.0, 1.0)}, n_steps=800, n_burn=200, seed=2)
    # conjugate: posterior mean 0.8 · 1/(1 + 1.25) for prior N(0, 1) and likelihood width² 1.25
    assert float(post["mean"].sel(parameter="mu")) == pytest.approx(0.8 / 2.25, abs=0.1)
    with pytest.raises(InvalidInputError, match="infinite bounds"):
        sample_posterior(model(-np.inf, np.inf), n_steps=10, n_burn=1)
    with pytest.raises(UnknownParameterError):
        sample_posterior(model(), priors={"x": normal_prior(0, 1)}, n_steps=10, n_burn=1)
