"""Unbinned (exact and any-callable ratio) and binned EventSet likelihoods, toys, coverage."""

import math

import numpy as np
import pytest

from sbihep.errors import InvalidInputError
from sbihep.events.generate import generate
from sbihep.fit import GaussianTerm, Likelihood, minimize
from sbihep.fit.binned import BinnedTerm
from sbihep.fit.coverage import NeymanMethod, WilksMethod, binomial_interval, coverage
from sbihep.fit.exact import ExactLogRatio, exact_features, exact_unbinned_term
from sbihep.fit.intervals import ONE_SIGMA, profile_interval
from sbihep.fit.morphing import EventSetMorphing, EventSetSigma
from sbihep.fit.neyman import neyman_belt
from sbihep.fit.unbinned import EventSetToys, UnbinnedTerm
from sbihep.params import Parameter, ParameterSpace
from sbihep.physics.processes import get_process


@pytest.fixture(scope="module")
def events():
    es = generate(get_process("wh_lvbb"), 13000.0, 3000, seed=1, systematics=("mu_f",), n_adapt=3,
                  n_per_iteration=6000, progress=False)
    p = es.momenta().numpy()
    roles = es.roles
    bb = p[:, roles.index("b")] + p[:, roles.index("bbar")]
    lepton = p[:, roles.index("l")] if "l" in roles else p[:, 2]
    return es.with_observables({"pt_bb": np.hypot(bb[:, 1], bb[:, 2]), "pt_l": np.hypot(lepton[:, 1], lepton[:, 2])})


THETA = {"cHW": 0.3, "cHWtil": -0.2, "cHq3": 0.05}


def test_morphing_reproduces_eventset_weights(events):
    m = EventSetMorphing.from_eventset(events)
    for nu in (0.0, 0.7, -1.3):
        expected = events.weights(THETA, {"mu_f": nu}).numpy()
        np.testing.assert_allclose(m.weights({**THETA, "mu_f": nu}), expected, rtol=1e-12)
    sigma = EventSetSigma(events)
    assert sigma(THETA) == pytest.approx(events.sigma(THETA), rel=1e-12)
    assert sigma({**THETA, "mu_f": 0.5}) == pytest.approx(float(events.weights(THETA, {"mu_f": 0.5}).sum()), rel=1e-12)


def test_exact_ratio_is_the_joint_ratio(events):
    ratio = ExactLogRatio(events)
    x = exact_features(events)
    expected = events.log_joint_ratio(THETA, {}).numpy()
    np.testing.assert_allclose(ratio(x, THETA), expected, rtol=1e-10, atol=1e-12)
    weights = np.random.default_rng(0).uniform(size=len(x))
    theta = {**THETA, "mu_f": 0.4}
    assert ratio.weighted_sum(x, weights, theta) == pytest.approx(float(weights @ ratio(x, theta)), rel=1e-12)
    with pytest.raises(InvalidInputError, match="mu_f|nuisance"):
        exact_features(events, ["nope"])


def test_unbinned_nll_formula_and_asimov_fit(events):
    lumi = 300.0
    term = exact_unbinned_term(events, lumi, pois={"cHW": (-2, 2), "cHq3": (-1, 1)}, lumi_uncertainty=0.02)
    assert set(term.parameters.names) == {"cHW", "cHq3", "mu_f", "lumi"}
    theta = {"cHW": 0.1, "cHq3": 0.02, "mu_f": 0.3, "lumi": -0.5}
    # independent evaluation from EventSet.weights: λ − N ln λ − Σ n_i ln r_i
    w = events.weights({"cHW": 0.1, "cHq3": 0.02}, {"mu_f": 0.3}).numpy()
    lam = 1000 * lumi * w.sum() * 1.02 ** -0.5
    log_r = np.log(w / w.sum()) - np.log(events.weights().numpy() / events.sigma())
    n = term.weights
    assert term.nll(theta) == pytest.approx(lam - n.sum() * math.log(lam) - n @ log_r, rel=1e-10)
    fit = minimize(Likelihood([term]))
    assert fit.converged and abs(fit.values["cHW"]) < 1e-3 and abs(fit.values["cHq3"]) < 1e-3
    shifted = term.asimov({"cHW": 0.2, "cHq3": 0.0, "mu_f": 0.0, "lumi": 0.0})
    fit = minimize(Likelihood([shifted]))
    assert fit.values["cHW"] == pytest.approx(0.2, abs=2e-3)


def test_any_callable_ratio_and_toys(events):
    """A plain function as log r̂ (here the exact one, recomputed from EventSet.log_joint_ratio)."""
    space = ParameterSpace([Parameter("cHW", 0.0, (-2, 2))])
    pool_x = np.arange(events.n_events)[:, None]  # features: the event index

    def log_ratio(x, theta):
        return events.log_joint_ratio({"cHW": theta["cHW"]}, {}).numpy()[x[:, 0]]

    toys = EventSetToys(events, pool_x)
    term = UnbinnedTerm(log_ratio, pool_x, sigma_pb=lambda th: events.sigma(th), lumi_ifb=50.0,
                        parameters=space, toys=toys).asimov({"cHW": 0.0})
    exact = exact_unbinned_term(events, 50.0, pois={"cHW": (-2, 2)})
    d = term.nll({"cHW": 0.3}) - term.nll({"cHW": 0.0})
    assert d == pytest.approx(exact.nll({"cHW": 0.3, "mu_f": 0.0}) - exact.nll({"cHW": 0.0, "mu_f": 0.0}), rel=1e-9)
    sizes = [term.toy({"cHW": 0.0}, np.random.default_rng(s)).n_observed for s in range(30)]
    lam = term.expected_events({"cHW": 0.0})
    assert abs(np.mean(sizes) - lam) < 4 * math.sqrt(lam / 30)
    a = term.toy({"cHW": 0.0}, np.random.default_rng(3))
    b = term.toy({"cHW": 0.0}, np.random.default_rng(3))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.weights, b.weights)
    with pytest.raises(InvalidInputError, match="lumi_ifb"):
        UnbinnedTerm(log_ratio, pool_x, sigma_pb=events.sigma, lumi_ifb=-1.0, parameters=space)
    with pytest.raises(InvalidInputError, match="toy pool"):
        UnbinnedTerm(log_ratio, pool_x, sigma_pb=events.sigma, lumi_ifb=1.0, parameters=space).toy({"cHW": 0.0}, np.random.default_rng(0))


def test_binned_templates_are_exact(events):
    edges = np.array([0.0, 50.0, 100.0, 150.0, 250.0, 2000.0])
    term = BinnedTerm.from_eventset(events, {"pt_bb": edges}, 100.0, lumi_uncertainty=0.03)
    pt = events.observables().sel(observable="pt_bb").values
    for nu in (0.0, 1.0, -1.0):
        w = events.weights(THETA, {"mu_f": nu}).numpy()
        hist, _ = np.histogram(pt, edges, weights=w)
        np.testing.assert_allclose(term.expected({**THETA, "mu_f": nu, "lumi": 0.0}), 1000 * 100 * hist, rtol=1e-10)
    assert term.expected({**THETA, "mu_f": 0.0, "lumi": 1.0}) == pytest.approx(1.03 * term.expected({**THETA, "mu_f": 0.0, "lumi": 0.0}))
    fit = minimize(Likelihood([term]), fixed={"cHWtil": 0.0, "cHq3": 0.0})
    assert fit.converged and abs(fit.values["cHW"]) < 1e-3
    toy = term.toy(term.parameters.sm_point(), np.random.default_rng(1))
    assert np.all(toy.counts == np.round(toy.counts))
    two_d = BinnedTerm.from_eventset(events, {"pt_bb": edges, "pt_l": [0.0, 40.0, 5000.0]}, 100.0)
    pt_l = events.observables().sel(observable="pt_l").values
    hist, _, _ = np.histogram2d(pt, pt_l, [edges, [0.0, 40.0, 5000.0]], weights=events.weights(THETA).numpy())
    np.testing.assert_allclose(two_d.expected({**THETA, "mu_f": 0.0}), 1e5 * hist.ravel(), rtol=1e-10)


def test_coverage_of_wilks_on_gaussian_and_binomial_errors():
    space = ParameterSpace([Parameter("mu", 0.0, (-10, 10))])
    lik = Likelihood([GaussianTerm([0.0], [[1.0]], [0.0], space, linear={"mu": [1.0]})])
    methods = {"wilks": WilksMethod(("mu",), ONE_SIGMA),
               "profile": lambda toy: profile_interval(toy, "mu", ONE_SIGMA)}
    cov = coverage(lik, {"mu": 0.5}, methods, n_toys=300, seed=4)
    p = cov["coverage"].values
    assert np.all(np.abs(p - ONE_SIGMA) < 3 * math.sqrt(ONE_SIGMA * (1 - ONE_SIGMA) / 300))
    assert p[0] == p[1]  # test inversion and the explicit interval agree toy by toy
    assert cov["coverage_error"].values[0] == pytest.approx(math.sqrt(p[0] * (1 - p[0]) / 300))
    low, high = binomial_interval(7, 10)
    assert low < 0.7 < high and binomial_interval(0, 10)[0] == 0.0


def test_neyman_coverage_on_wh_with_two_nuisances_smoke(events):
    term = exact_unbinned_term(events, 10.0, pois={"cHW": (-3, 3)}, lumi_uncertainty=0.025)
    lik = Likelihood([term])
    truth = {"cHW": 0.0, "mu_f": 0.0, "lumi": 0.0}
    belt = neyman_belt(lik, {"cHW": [0.0]}, n_toys=30, generate_at=truth, seed=1)
    cov1 = coverage(lik, truth, {"neyman": NeymanMethod(belt), "wilks": WilksMethod(("cHW",))}, n_toys=12, seed=2)
    cov2 = coverage(lik, truth, {"neyman": NeymanMethod(belt), "wilks": WilksMethod(("cHW",))}, n_toys=12, seed=2, n_workers=2)
    np.testing.assert_array_equal(cov1["covered"].values, cov2["covered"].values)
    assert int(cov1["n_failed"].sum()) == 0


def test_exact_term_gradient_is_analytic_and_matches_finite_differences(events):
    """The exact unbinned term (3 operators, μ_F morphing, lumi) has an analytic gradient equal to central
    differences of its −ln L, at the SM and away from it, with ν = 0 and ν ≠ 0 (the morphing's
    exponential-quadratic branch); a learned (callable) ratio has none and falls back to differences."""
    term = exact_unbinned_term(events, 300.0, lumi_uncertainty=0.025).with_data(
        exact_features(events)[:500], np.linspace(0.5, 2.0, 500))
    lik = Likelihood([term])
    assert lik.has_analytic_grad
    for point in ({}, {"cHW": 0.3, "cHWtil": -0.2, "cHq3": 0.05, "mu_f": 0.7, "lumi": -0.4},
                  {"cHW": -0.5, "cHq3": -0.1, "mu_f": -1.3}):
        full = lik.parameters.validate(point)
        analytic = lik.grad(full)
        for name, value in analytic.items():
            h = 1e-5
            up = lik.nll({**full, name: full[name] + h})
            down = lik.nll({**full, name: full[name] - h})
            numeric = (up - down) / (2 * h)
            assert value == pytest.approx(numeric, rel=1e-5, abs=1e-4), (point, name)
        nuisances_only = lik.grad_vector(np.array([full[n] for n in lik.names]), wrt=("mu_f", "lumi"))
        for name, value in zip(lik.names, nuisances_only):
            assert value == (pytest.approx(analytic[name], rel=1e-12) if name in ("mu_f", "lumi") else 0.0)
    learned = UnbinnedTerm(lambda x, theta: np.zeros(len(x)), np.zeros((3, 1)), sigma_pb=lambda th: 1.0, lumi_ifb=1.0,
                           parameters=term.model_parameters)
    assert learned.nll_grad is None and not Likelihood([learned]).has_analytic_grad


def test_normalising_a_learned_ratio_removes_a_theta_dependent_bias(events):
    """A ratio that is the exact one times a θ-dependent constant e^{0.3·cHW} (a normalisation error of
    the kind a trained network makes) shifts the fit; normalising it on a reference SM sample restores
    the exact answer, because the constant cancels exactly."""
    from sbihep.fit.unbinned import NormalisedLogRatio

    exact_term = exact_unbinned_term(events, 300.0, pois={"cHW": (-1, 1)})
    exact_fit = minimize(Likelihood([exact_term]))
    ratio = exact_term.log_ratio
    biased = lambda x, theta: ratio(x, theta) + 0.3 * theta["cHW"]  # noqa: E731
    reference = exact_features(events)
    reference_w = events.weights({}).numpy()

    def term_with(log_ratio):
        return UnbinnedTerm(log_ratio, exact_term.x, sigma_pb=exact_term.sigma_pb, lumi_ifb=300.0,
                            parameters=exact_term.model_parameters, weights=exact_term.weights)

    biased_fit = minimize(Likelihood([term_with(biased)]))
    fixed_fit = minimize(Likelihood([term_with(NormalisedLogRatio(biased, reference, reference_w))]))
    err = exact_fit.errors["cHW"]
    assert abs(biased_fit.values["cHW"] - exact_fit.values["cHW"]) > 3 * err
    assert fixed_fit.values["cHW"] == pytest.approx(exact_fit.values["cHW"], abs=1e-3 * err + 1e-6)
    with pytest.raises(InvalidInputError, match="reference_weights"):
        NormalisedLogRatio(biased, reference, -reference_w)
