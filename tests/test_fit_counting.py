"""CountingTerm: independent Poisson counts with expectations as functions of named parameters."""

import math

import numpy as np
import pytest
from scipy import stats

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.fit import CountingTerm, Likelihood, minimize
from sbihep.params import Parameter, ParameterSpace

SPACE = ParameterSpace([Parameter("mu", 1.0, (0.0, 5.0)), Parameter("nu", 1.0, (0.6, 1.4), kind="nuisance")])
ONOFF = [{"nu": 70.0, "mu": 15.0}, {"nu": 70.0}]


def test_onoff_nll_is_the_poisson_log_likelihood_and_the_fit_is_the_closed_form():
    term = CountingTerm([90, 72], ONOFF, SPACE)
    theta = {"mu": 1.3, "nu": 0.9}
    lam = np.array([0.9 * 70 + 1.3 * 15, 0.9 * 70])
    exact = -float(np.sum(stats.poisson.logpmf([90, 72], lam)))
    assert term.nll(theta) + float(np.sum([math.lgamma(91), math.lgamma(73)])) == pytest.approx(exact, rel=1e-12)
    assert CountingTerm([90, 72], ONOFF, SPACE, include_constant=True).nll(theta) == pytest.approx(exact, rel=1e-12)
    fit = minimize(Likelihood([term]), tolerance=1e-4)
    nu_hat = 72 / 70
    assert fit.values["nu"] == pytest.approx(nu_hat, abs=1e-4)
    assert fit.values["mu"] == pytest.approx((90 - nu_hat * 70) / 15, abs=1e-3)


@pytest.mark.parametrize("theta", [{"mu": 0.0, "nu": 0.6}, {"mu": 2.2, "nu": 1.1}, {"mu": 5.0, "nu": 1.4}])
def test_gradient_is_exact_against_finite_differences(theta):
    spec = [{"nu": 70.0, "mu": 15.0, "mu*nu": 3.0, "1": 2.0}, {"nu*nu": 40.0, "nu": 30.0}]
    term = CountingTerm([50, 60], spec, SPACE)
    grad = term.nll_grad(theta)
    for name in ("mu", "nu"):
        h = 1e-6
        up, down = dict(theta), dict(theta)
        up[name] += h
        down[name] -= h
        fd = (term.nll(up) - term.nll(down)) / (2 * h)
        assert grad[name] == pytest.approx(fd, rel=1e-6, abs=1e-6)
    assert term.nll_grad(theta, wrt=["nu"]) == {"nu": pytest.approx(grad["nu"])}


def test_callable_form_with_and_without_gradient():
    def lam(t):
        return np.array([t["nu"] * 70 + t["mu"] * 15, t["nu"] * 70])

    def dlam(t):
        return {"mu": np.array([15.0, 0.0]), "nu": np.array([70.0, 70.0])}

    declarative = CountingTerm([80, 75], ONOFF, SPACE)
    with_grad = CountingTerm([80, 75], lam, SPACE, gradient=dlam)
    without = CountingTerm([80, 75], lam, SPACE)
    theta = {"mu": 0.7, "nu": 1.2}
    assert with_grad.nll(theta) == pytest.approx(declarative.nll(theta))
    assert with_grad.nll_grad(theta) == pytest.approx(declarative.nll_grad(theta))
    assert without.nll_grad is None and not Likelihood([without]).has_analytic_grad
    assert Likelihood([without]).grad(theta)["nu"] == pytest.approx(declarative.nll_grad(theta)["nu"], rel=1e-5)


def test_asimov_and_toys():
    term = CountingTerm([0, 0], ONOFF, SPACE)
    theta = {"mu": 2.0, "nu": 1.0}
    np.testing.assert_allclose(term.asimov(theta).counts, [100.0, 70.0])
    fit = minimize(Likelihood([term.asimov(theta)]), tolerance=1e-4)
    assert fit.values["mu"] == pytest.approx(2.0, abs=1e-3) and fit.values["nu"] == pytest.approx(1.0, abs=1e-4)
    draws = np.array([term.toy(theta, np.random.default_rng(i)).counts for i in range(400)])
    assert np.all(draws == np.round(draws))
    assert np.all(np.abs(draws.mean(axis=0) - [100, 70]) < 4 * np.sqrt(np.array([100, 70]) / 400))
    a = term.toy(theta, np.random.default_rng(5)).counts
    np.testing.assert_array_equal(a, term.toy(theta, np.random.default_rng(5)).counts)


def test_impossible_points_and_bad_input_are_named():
    space = ParameterSpace([Parameter("s", 1.0, (-5.0, 5.0))])
    term = CountingTerm([3, 0], [{"s": 1.0}, {"s": 1.0}], space)
    assert term.nll({"s": -1.0}) == math.inf and term.nll({"s": 0.0}) == math.inf
    assert CountingTerm([0], [{"s": 1.0}], space).nll({"s": 0.0}) == 0.0
    with pytest.raises(InvalidInputError, match="negative"):
        term.toy({"s": -1.0}, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="counts must be ≥ 0"):
        CountingTerm([-1, 2], ONOFF, SPACE)
    with pytest.raises(InvalidInputError, match="finite"):
        CountingTerm([np.nan, 2], ONOFF, SPACE)
    with pytest.raises(UnknownParameterError, match="'lumi'"):
        CountingTerm([1, 2], [{"lumi": 1.0}, {"nu": 1.0}], SPACE)
    with pytest.raises(ShapeError, match="2 counts"):
        CountingTerm([1, 2], [{"nu": 1.0}], SPACE)
    with pytest.raises(InvalidInputError, match="NaN"):
        CountingTerm([1], lambda t: np.array([np.nan]), space).nll({"s": 1.0})
    with pytest.raises(InvalidInputError, match="gradient"):
        CountingTerm([1, 2], ONOFF, SPACE, gradient=lambda t: {})
