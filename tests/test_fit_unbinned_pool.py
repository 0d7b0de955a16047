"""Toy pools report their Monte Carlo uncertainty (issue 18: μ̂ 0.712 with a 2×10⁴ pool, 0.826 with
2×10⁵, 0.852 exact, on one data set — and no diagnostic).

Model: a Gaussian signal (σ_S = 4 fb) on a falling background (σ_B = 40 fb) in m ∈ [0, 1], 30 fb⁻¹
(λ ≈ 1320), as tutorial 3.  Pools of m uniform in [0, 1] weighted by the density.  The first-order
propagation of :meth:`UnbinnedTerm.pool_uncertainty` is checked against the spread of μ̂ over
independent pools.
"""

import math
import warnings

import numpy as np
import pytest
from scipy.special import erf

from sbihep.errors import ToyPoolWarning
from sbihep.fit import EventSetToys, ExactLogRatio, Likelihood, UnbinnedTerm, minimize
from sbihep.fit.morphing import EventSetMorphing
from sbihep.fit.unbinned import POOL_MC_THRESHOLD
from sbihep.params import Parameter, ParameterSpace

SIGMA_B_PB, SIGMA_S_PB, LUMI_IFB = 0.040, 0.004, 30.0
PEAK, WIDTH = 0.4, 0.05
SPACE = ParameterSpace([Parameter("mu", 1.0, (-2.0, 6.0))])
_NORM = 0.5 * (erf((1 - PEAK) / (WIDTH * math.sqrt(2))) - erf(-PEAK / (WIDTH * math.sqrt(2))))


def features(m):
    """(n, 2): background and signal densities (pb per unit m)."""
    s = np.exp(-0.5 * ((m - PEAK) / WIDTH) ** 2) / (WIDTH * math.sqrt(2 * math.pi) * _NORM)
    return np.stack([SIGMA_B_PB * 2.0 * (1.0 - m), SIGMA_S_PB * s], axis=1)


def pool_term(n_pool, seed):
    """The exact term made from a pool: σ(μ) and the density's normalisation both from the pool."""
    m = np.random.default_rng(seed).uniform(0, 1, n_pool)
    coefficients = features(m) / n_pool
    morphing = EventSetMorphing(coefficients, ("mu",), "linear")
    ratio = ExactLogRatio(morphing, theta_ref={"mu": 1.0})
    return UnbinnedTerm(ratio, coefficients, sigma_pb=ratio.sigma, lumi_ifb=LUMI_IFB, parameters=SPACE,
                        toys=EventSetToys(morphing, coefficients))


def analytic_log_ratio(x, theta):
    mu = theta["mu"]
    return np.log((x[:, 0] + mu * x[:, 1]) / (x[:, 0] + x[:, 1])) - math.log((SIGMA_B_PB + mu * SIGMA_S_PB) / (SIGMA_B_PB + SIGMA_S_PB))


def analytic_term(n_pool, seed):
    """The analytic model; only the data (toys, Asimov) come from the pool."""
    m = np.random.default_rng(seed).uniform(0, 1, n_pool)
    x = features(m)
    morphing = EventSetMorphing(x / n_pool, ("mu",), "linear")
    return UnbinnedTerm(analytic_log_ratio, x, sigma_pb=lambda th: SIGMA_B_PB + th["mu"] * SIGMA_S_PB,
                        lumi_ifb=LUMI_IFB, parameters=SPACE, toys=EventSetToys(morphing, x))


def observed_masses(seed):
    rng = np.random.default_rng(seed)
    n_b, n_s = rng.poisson(1000 * LUMI_IFB * SIGMA_B_PB), rng.poisson(1000 * LUMI_IFB * SIGMA_S_PB)
    background = 1.0 - np.sqrt(1.0 - rng.uniform(size=n_b))
    signal = rng.normal(PEAK, WIDTH, 3 * n_s)
    signal = signal[(signal > 0) & (signal < 1)][:n_s]
    return np.concatenate([background, signal])


def mu_hat(term):
    return minimize(Likelihood([term])).values["mu"]


def test_small_pool_warns_and_records_its_mc_ratio():
    """Bug: toys from a pool whose N_eff is not ≫ λ came back with no diagnostic."""
    small = pool_term(2000, seed=0)
    with pytest.warns(ToyPoolWarning, match="MC error"):
        toy = small.toy({"mu": 1.0}, np.random.default_rng(1))
    lam = small.expected_events({"mu": 1.0})
    n_eff = small.toys.n_effective({"mu": 1.0})
    assert 0.5 * 2000 < n_eff < 2000
    assert toy.pool_mc_ratio == pytest.approx(math.sqrt(lam / n_eff)) and toy.pool_mc_ratio > POOL_MC_THRESHOLD
    with warnings.catch_warnings():
        warnings.simplefilter("error", ToyPoolWarning)
        small.toy({"mu": 1.0}, np.random.default_rng(2))  # once per pool, not once per toy
        big = pool_term(200_000, seed=0)
        asimov = big.asimov({"mu": 1.0})  # N_eff ≫ λ: quiet
    assert asimov.pool_mc_ratio < POOL_MC_THRESHOLD
    equal = EventSetToys(EventSetMorphing(np.ones((50, 2)), ("mu",), "linear"), np.zeros((50, 1)))
    assert equal.n_effective({"mu": 0.3}) == pytest.approx(50.0)


@pytest.mark.filterwarnings("ignore::sbihep.errors.ToyPoolWarning")
def test_pool_model_mc_error_matches_the_spread_over_pools():
    """Real (fixed) data fitted with models made from independent pools of 4000 events: the spread of
    μ̂ over pools is the pool's MC error, which pool_uncertainty(data_from_pool=False) predicts."""
    data = features(observed_masses(7))
    fits = [mu_hat(pool_term(4000, seed=100 + k).with_data(data)) for k in range(40)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ToyPoolWarning)
        report = pool_term(4000, seed=99).pool_uncertainty({"mu": 1.0}, data_from_pool=False)
    assert any("MC/stat: mu" in str(w.message) for w in caught)
    predicted, stat = float(report["mc_error"].sel(parameter="mu")), float(report["stat_error"].sel(parameter="mu"))
    spread = float(np.std(fits, ddof=1))
    assert spread == pytest.approx(predicted, rel=0.3)  # 40 pools: the spread itself is known to ±11%
    assert 0.15 < stat < 0.3 and report.attrs["sigma_from_pool"] == 1
    assert float(report["mc_over_stat"].sel(parameter="mu")) == pytest.approx(predicted / stat)
    assert predicted / stat > POOL_MC_THRESHOLD  # a 4000-event pool is not enough for 1320 events
    # the exact term's toys agree with its own pool's model: no pool-induced bias of the toy ensemble
    assert pool_term(4000, seed=99).pool_uncertainty({"mu": 1.0}, warn=False)["mc_error"].item() < 1e-6 * stat
    # ten times the pool: √10 smaller
    large = pool_term(40_000, seed=99).pool_uncertainty({"mu": 1.0}, data_from_pool=False, warn=False)
    assert large["mc_error"].item() == pytest.approx(predicted / math.sqrt(10), rel=0.2)


@pytest.mark.filterwarnings("ignore::sbihep.errors.ToyPoolWarning")
def test_pool_data_mc_error_matches_the_spread_over_pools():
    """An analytic (e.g. learned) model fitted to Asimov data of a pool: μ̂ moves with the pool."""
    fits = [mu_hat(analytic_term(3000, seed=200 + k).asimov({"mu": 1.0})) for k in range(40)]
    report = analytic_term(3000, seed=199).pool_uncertainty({"mu": 1.0}, warn=False)
    assert report.attrs["sigma_from_pool"] == 0 and report.attrs["data_from_pool"] == 1
    assert float(np.std(fits, ddof=1)) == pytest.approx(report["mc_error"].item(), rel=0.3)
    assert abs(np.mean(fits) - 1.0) < 3 * report["mc_error"].item() / math.sqrt(40)  # centred on the truth
