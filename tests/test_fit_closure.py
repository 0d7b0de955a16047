"""closure_check: a learned likelihood's fit against the truth and the exact likelihood.

The toy of tests/_eft_toy.py (two operators, exact dσ(x|θ)/dσ(x|SM) on the observables) stands in
for a learned ratio with no training: the exact marginal ratio (unbiased) and the same ratio read at
a shifted coefficient (biased by construction, as an under-trained estimator can be: the issue saw
cHWtil 7σ off on Asimov data at the SM, unflagged).
"""

import warnings

import numpy as np
import pytest

from _eft_toy import SPACE, exact_log_rho, toy_events
from sbihep.errors import ClosureWarning, InvalidInputError
from sbihep.fit import EventSetSigma, EventSetToys, Likelihood, UnbinnedTerm, closure_check, exact_unbinned_term

EXPECTED_EVENTS = 600.0


@pytest.fixture(scope="module")
def setup():
    events = toy_events(40_000, seed=3)
    sigma = EventSetSigma(events)
    sm = sigma({"ca": 0.0, "cb": 0.0})
    lumi = EXPECTED_EVENTS / (1000.0 * sm)
    x = events.observables().values

    def ratio(shift_a=0.0):
        def log_ratio(x, theta):  # ln p(x|θ)/p(x|SM) = ln ρ(x|θ) − ln σ(θ)/σ(SM)
            point = (theta["ca"] - shift_a, theta["cb"])
            return exact_log_rho(x, point) - np.log(sigma({"ca": point[0], "cb": point[1]}) / sm)
        return log_ratio

    def learned(shift_a=0.0):
        term = UnbinnedTerm(ratio(shift_a), x, sigma_pb=sigma, lumi_ifb=lumi, parameters=SPACE, toys=EventSetToys(events, x))
        return Likelihood([term])

    exact = Likelihood([exact_unbinned_term(events, lumi, pois={"ca": (-1, 1), "cb": (-1, 1)})])
    return learned, exact


def test_unbiased_learned_ratio_passes(setup):
    learned, exact = setup
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClosureWarning)
        result = closure_check(learned(), exact)
    ds = result.dataset
    assert result.passed and ds.attrs["passed"] == 1
    assert list(ds["parameter"].values) == ["ca", "cb"] and ds.sizes["point"] == 5  # reference + ±2σ per parameter
    assert ds["point"].values[0] == "reference"
    assert np.all(np.abs(ds["exact_bias_sigma"]) < 1e-2)  # the exact likelihood closes on its own Asimov data
    assert result.max_abs_bias_sigma < 0.2  # the pool's MC error alone (√(λ/N_eff) ≈ 0.13)
    # the marginal (observable-level) ratio cannot be more precise than the exact (latent-level) one
    assert np.all(ds["width_ratio"] >= 1 - 1e-3)
    # default points sit at ±2σ of the exact fit
    sigma_a = float(ds["exact_error"].sel(point="reference", parameter="ca"))
    assert float(ds["truth"].isel(point=1).sel(parameter="ca")) == pytest.approx(2 * sigma_a, rel=1e-6)


def test_biased_learned_ratio_is_flagged(setup):
    """Bug: nothing flagged a learned ratio whose fit misses the truth by σ's on Asimov data."""
    learned, exact = setup
    shift = 0.05  # ≈ 1.4 σ of ca
    with pytest.warns(ClosureWarning, match="ca at reference: bias"):
        result = closure_check(learned(shift), exact)
    ds = result.dataset
    assert not result.passed and result.max_abs_bias_sigma > 1.0
    bias = ds["bias_sigma"].sel(point="reference", parameter="ca").item()
    assert bias == pytest.approx(shift / ds["sigma"].sel(point="reference", parameter="ca").item(), rel=0.15)
    assert ds["flagged"].sel(parameter="ca").all() and not ds["flagged"].sel(parameter="cb").any()
    assert ds["learned_minus_exact_sigma"].sel(point="reference", parameter="ca").item() == pytest.approx(bias, abs=0.02)
    # without the exact likelihood the learned HESSE error sets the scale, and the bias is still caught
    alone = closure_check(learned(shift), points=[{}], warn=False)
    assert not alone.passed and np.isnan(alone.dataset["exact_value"]).all()


def test_toys_and_callable_interface(setup):
    learned, exact = setup
    lik = learned()

    def make(theta, rng):  # any factory: θ and a Generator (None: Asimov) → the learned likelihood on data at θ
        return lik.asimov(theta) if rng is None else lik.toy(theta, rng)

    result = closure_check(make, exact, points=[{"ca": 0.05}], n_toys=12, seed=5)
    ds = result.dataset
    assert ds.attrs["data"] == "toys" and int(ds["n_toys"].item()) == 12
    err = ds["bias_error_sigma"].sel(parameter="ca").item()
    assert 0.1 < err < 0.6  # ≈ 1/√12 of the toys' spread
    assert abs(ds["bias_sigma"].sel(parameter="ca").item()) < 4 * err
    # the same streams for learned and exact: the same pool events, so the same toys, paired differences small
    assert abs(ds["learned_minus_exact_sigma"].sel(parameter="ca").item()) < 2 * err
    with pytest.raises(InvalidInputError, match="n_toys"):
        closure_check(lik, n_toys=1)
    with pytest.raises(InvalidInputError, match="parameters"):
        closure_check(lik, parameters=["nope"])
    with pytest.raises(InvalidInputError, match="learned"):
        closure_check(42)
