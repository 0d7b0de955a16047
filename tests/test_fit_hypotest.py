"""hypotest against pyhf.infer.hypotest (q̃ and q, asymptotics; toy-based statistically) and the
two-start conditional fits that keep a scan out of local minima."""

import math

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")

from sbihep.errors import InvalidInputError  # noqa: E402
from sbihep.fit import HypoTestResult, Likelihood, PyhfTerm, hypotest  # noqa: E402
from sbihep.fit.hypotest import ProfiledData  # noqa: E402
from sbihep.params import Parameter, ParameterSpace  # noqa: E402

TOL = 1e-5


@pytest.fixture(autouse=True)
def numpy_minuit_backend():
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=TOL))
    yield
    pyhf.set_backend("numpy")


def simple(observed=(51.0, 48.0), mu_bounds=None):
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    if mu_bounds is not None:  # the same model with the POI's bounds changed
        model = pyhf.Workspace({
            "channels": model.spec["channels"],
            "observations": [{"name": "singlechannel", "data": list(observed)}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
                {"name": "mu", "bounds": [list(mu_bounds)], "inits": [1.0]}]}}],
            "version": "1.0.0"}).model()
    data = np.array(list(observed) + model.config.auxdata)
    return model, data, Likelihood([PyhfTerm.from_model(model, data)])


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_asymptotic_qtilde_matches_pyhf(mu):
    model, data, lik = simple()
    r = hypotest(lik, mu, tolerance=TOL)
    assert isinstance(r, HypoTestResult) and r.test_stat == "qtilde" and r.calctype == "asymptotics"
    obs, band = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True)
    _, (clsb, clb) = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_tail_probs=True)
    assert r.cls_obs == pytest.approx(float(obs), rel=1e-3)
    assert r.clsb == pytest.approx(float(clsb), rel=1e-3) and r.clb == pytest.approx(float(clb), rel=1e-3)
    np.testing.assert_allclose(r.cls_expected_band, [float(b) for b in band], rtol=1e-3)
    assert r.cls_expected_band == tuple(sorted(r.cls_expected_band))  # −2σ first: the smallest CLs
    assert r.cls_obs == pytest.approx(r.clsb / r.clb, rel=1e-12)


def test_several_values_share_fits_and_q_matches_pyhf_with_negative_mu_hat():
    # a deficit: μ̂ < 0 is allowed by the bounds [-3, 10], so q_μ and q̃_μ differ
    model, data, lik = simple(observed=(44.0, 45.0), mu_bounds=(-3.0, 10.0))
    results = hypotest(lik, [0.5, 1.0], test_stat="q", tolerance=TOL)
    assert results[0].mu_hat < 0
    for r in results:
        obs, band = pyhf.infer.hypotest(r.poi_value, data, model, test_stat="q", return_expected_set=True)
        assert r.cls_obs == pytest.approx(float(obs), rel=1e-3)
        np.testing.assert_allclose(r.cls_expected_band, [float(b) for b in band], rtol=1e-3)
    qt = hypotest(lik, 1.0, test_stat="qtilde", tolerance=TOL)
    # q̃ takes μ = 0 as reference when μ̂ < 0: a smaller statistic than q
    assert qt.q_obs < results[1].q_obs


def test_toybased_matches_pyhf_toycalculator_statistically():
    from scipy import stats

    from sbihep.fit.hypotest import _toy_q_chunk

    model, data, lik = simple()
    mu, n = 0.5, 100
    r = hypotest(lik, mu, calctype="toybased", n_toys=n, seed=3, tolerance=1e-2, two_starts=False, progress=False)
    again = hypotest(lik, mu, calctype="toybased", n_toys=n, seed=3, tolerance=1e-2, two_starts=False, progress=False)
    assert r == again  # the seed fixes everything
    assert r.n_toys == n and r.n_failed_toys == 0 and math.isnan(r.q_asimov)
    assert r.cls_expected_band == tuple(sorted(r.cls_expected_band))
    # pyhf 0.7.6's toy-based hypotest fails under numpy 2 (percentile(interpolation=...)) in its
    # expected band, so its ToyCalculator is called step by step
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=1e-2))
    calc = pyhf.infer.calculators.ToyCalculator(data, model, test_stat="qtilde", ntoys=80, track_progress=False)
    np.random.seed(0)
    sb, b = calc.distributions(mu)
    assert r.q_obs == pytest.approx(float(calc.teststatistic(mu)), rel=1e-2)
    # the toy distributions of q̃ under s+b and b are pyhf's (two-sample KS test)
    prof = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-2})
    for hyp, pyhf_samples, at in ((0, sb, mu), (1, b, 0.0)):
        ours = _toy_q_chunk(lik, prof.conditional(at).values, "mu", mu, "qtilde", 5, hyp, range(n), {"tolerance": 1e-2}, False)
        assert stats.ks_2samp(ours, np.asarray(pyhf_samples.samples)).pvalue > 0.01
    # CLs from 100 toys (CLs+b ≈ 0.14, CLb ≈ 0.45): within 3σ ≈ 0.25 of the asymptotic value
    asym = hypotest(lik, mu, tolerance=TOL)
    assert r.cls_obs == pytest.approx(asym.cls_obs, abs=0.25)
    assert r.cls_expected[0] == pytest.approx(asym.cls_expected[0], abs=0.25)


def test_bad_input():
    _, _, lik = simple()
    with pytest.raises(InvalidInputError, match="test_stat"):
        hypotest(lik, 1.0, test_stat="q0")
    with pytest.raises(InvalidInputError, match="calctype"):
        hypotest(lik, 1.0, calctype="exact")
    with pytest.raises(InvalidInputError, match="poi_value"):
        hypotest(lik, 11.0)
    with pytest.raises(InvalidInputError, match="n_toys"):
        hypotest(lik, 1.0, calctype="toybased", n_toys=0)


class DoubleWell:
    """−lnL = (μ − 2)²/2 + (ν² − 1)² + 2(μ − 1)ν: two basins in ν whose order flips at μ = 1; at
    μ = 0 only the ν > 0 basin exists, at μ = 1.5 both do and ν < 0 is the lower one."""

    parameters = ParameterSpace([Parameter("mu", 1.0, (0.0, 10.0), kind="poi"),
                                 Parameter("nu", 0.0, (-3.0, 3.0), kind="nuisance")])

    def nll(self, theta):
        mu, nu = theta["mu"], theta["nu"]
        return 0.5 * (mu - 2.0) ** 2 + (nu**2 - 1.0) ** 2 + 2.0 * (mu - 1.0) * nu


def exact_profile(mu):
    nu = np.linspace(-3, 3, 200001)
    return float(np.min(0.5 * (mu - 2.0) ** 2 + (nu**2 - 1.0) ** 2 + 2.0 * (mu - 1.0) * nu))


def test_two_starts_keep_the_lower_conditional_minimum():
    lik = Likelihood([DoubleWell()])
    one = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts=False)
    two = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4})
    for prof in (one, two):
        assert prof.free.values["nu"] < 0
        prof.conditional(0.0)  # ν > 0: the only basin at μ = 0
        assert prof.conditional(0.0).values["nu"] > 0
    # warm-started from μ = 0 alone, the fit at μ = 1.5 stays in the ν > 0 basin, now a local minimum
    assert one.conditional(1.5).nll > exact_profile(1.5) + 0.5
    assert two.conditional(1.5).nll == pytest.approx(exact_profile(1.5), abs=1e-6)
    assert two.n_disagreements == 1 and two.disagreements[0][0] == 1.5


def test_auto_starts_probe_the_free_fit_and_find_the_lower_minimum():
    """two_starts="auto": the fit from μ = 0 alone lands in the ν > 0 basin at μ = 1.5; the probe of
    −lnL along the segment to the free fit (ν < 0) sees it fall below that minimum, so the free-fit
    start is fitted too and the global profile is kept."""
    lik = Likelihood([DoubleWell()])
    auto = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts="auto")
    auto.conditional(0.0)
    assert auto.n_probed_starts == 1  # the first μ: its second start (the start point) is always fitted
    assert auto.n_disagreements == 0  # μ = 0 has one basin
    assert auto.conditional(1.5).nll == pytest.approx(exact_profile(1.5), abs=1e-6)
    assert auto.n_probed_starts == 2 and auto.n_disagreements == 1


def test_auto_refits_a_neighbour_that_sits_above_the_new_solution():
    """A cached fit in a local minimum (put there by a one-start chain) is refitted when a later
    fit's solution is lower at its μ, so no conditional fit sits above a neighbour's solution."""
    lik = Likelihood([DoubleWell()])
    one = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts=False)
    one.conditional(0.0)
    local = one.conditional(1.5)
    assert local.nll > exact_profile(1.5) + 0.5
    auto = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts="auto", free_fit=one.free)
    auto._cache[1.5] = local  # as a one-start chain left it
    assert auto.conditional(1.6).nll == pytest.approx(exact_profile(1.6), abs=1e-6)
    assert auto.n_neighbour_refits == 1
    assert auto.conditional(1.5).nll == pytest.approx(exact_profile(1.5), abs=1e-6)


def test_auto_starts_cost_fewer_fits_and_give_the_same_limits():
    """On a convex likelihood "auto" makes no probed second fits (the probes find nothing) and the limits
    agree with two starts; the Asimov free fit and, with μ̂ = 0, the observed fit at μ = 0 cost no fit."""
    from sbihep.fit import cls_upper_limit

    _, _, lik = simple(observed=(45.0, 44.0))  # a deficit: μ̂ = 0 on the POI's bound
    auto = cls_upper_limit(lik, "mu", progress=False, tolerance=1e-4)
    two = cls_upper_limit(lik, "mu", progress=False, two_starts=True, tolerance=1e-4)
    assert auto.best_fit == 0.0 and auto.asimov_exact
    # second starts only at the first μ fitted on each data set (here the Asimov one: the observed
    # data's first μ is μ̂ = 0, the free fit itself)
    assert auto.n_probed_starts == 1 and auto.n_fits < two.n_fits
    assert auto.observed == pytest.approx(two.observed, rel=2e-4)
    for n in auto.expected:
        assert auto.expected[n] == pytest.approx(two.expected[n], rel=2e-4)
    with pytest.raises(InvalidInputError, match="two_starts"):
        cls_upper_limit(lik, "mu", progress=False, two_starts="sometimes")


def test_asimov_free_fit_is_the_generating_point_and_checked():
    from sbihep.fit import minimize
    from sbihep.fit.hypotest import asimov_free_fit

    _, _, lik = simple()
    theta = dict(zip(lik.names, [0.3, 1.05, 0.97]))
    asimov = lik.asimov(theta)
    fit, exact = asimov_free_fit(asimov, theta)
    real = minimize(asimov, hesse=False, tolerance=1e-6)
    assert exact and fit.nll == pytest.approx(real.nll, abs=1e-7)
    for n in lik.names:
        assert fit.values[n] == pytest.approx(real.values[n], abs=2e-3)
    # not an Asimov data set of that point: the check fails and a real fit is made
    fit2, exact2 = asimov_free_fit(lik, theta)
    assert not exact2 and fit2.converged and fit2.nll < lik.nll(theta) - 1e-3


def test_the_free_fit_is_the_conditional_fit_at_its_own_bounded_mu_hat():
    _, _, lik = simple(observed=(45.0, 44.0))
    prof = ProfiledData(lik, "mu", two_starts="auto")
    n = prof.n_fits
    assert prof.mu_hat == 0.0
    assert prof.conditional(0.0).nll == prof.free.nll and prof.n_fits == n and prof.n_reused == 1



@pytest.mark.parametrize("two_starts", [True, "auto"])
def test_the_first_conditional_fit_is_also_started_from_the_start_point(two_starts):
    """The first μ fitted has no neighbour.  At μ = 0.5 the free fit's basin (ν < 0) is only a local
    minimum; started from it alone MIGRAD stays there (the eRJR workspace at μ = 3 did the same), so
    the likelihood's start point (ν = 0, downhill into ν > 0) is a second start — fitted in both
    modes, since a probe along one segment cannot see a basin behind a ridge."""
    lik = Likelihood([DoubleWell()])
    one = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts=False)
    assert one.free.values["nu"] < 0
    assert one.conditional(0.5).nll > exact_profile(0.5) + 0.5  # the local minimum, unnoticed
    prof = ProfiledData(lik, "mu", fit_kwargs={"tolerance": 1e-4}, two_starts=two_starts)
    fit = prof.conditional(0.5)
    assert fit.values["nu"] > 0
    assert fit.nll == pytest.approx(exact_profile(0.5), abs=1e-6)
    assert prof.n_disagreements == 1
