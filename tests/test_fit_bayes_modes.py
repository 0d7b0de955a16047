"""Posteriors that see every mode: the OpWB quadratic likelihood has two nearly equal minima
(near 0.006 and −0.164); the posterior (uniform prior on (−2, 2)) holds about half its mass in each.
The exact masses come from 1D quadrature of exp(−nll) split at the likelihood's local maximum."""

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize_scalar

from sbihep.errors import PosteriorWarning
from sbihep.fit import Likelihood, smefit_term
from sbihep.fit.bayes import sample_posterior
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"


@lru_cache(maxsize=1)
def opwb() -> Likelihood:
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2))])
    term = smefit_term(["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"], DATA / "commondata", DATA / "theory", space,
                       eft_order="quadratic")
    return Likelihood([term])


@lru_cache(maxsize=1)
def exact_split() -> tuple[float, float]:
    """(saddle, mass of the mode below it) by quadrature."""
    lik = opwb()
    saddle = minimize_scalar(lambda x: -lik.nll({"OpWB": x}), bounds=(-0.15, -0.01), method="bounded").x
    ref = lik.nll({"OpWB": 0.006})
    dens = lambda x: np.exp(-(lik.nll({"OpWB": x}) - ref))  # noqa: E731
    low = quad(dens, -2, saddle, points=[-0.164], limit=200)[0]
    high = quad(dens, saddle, 2, points=[0.006], limit=200)[0]
    return float(saddle), low / (low + high)


def mass_below(post, saddle: float) -> float:
    x = post["samples"].sel(parameter="OpWB").values
    return float(np.mean(x < saddle))


def test_opwb_default_posterior_holds_both_modes():
    saddle, exact_low = exact_split()
    assert 0.45 < exact_low < 0.53  # the premise: nearly equal modes
    post = sample_posterior(opwb(), n_steps=600, n_burn=150, seed=0)
    assert mass_below(post, saddle) == pytest.approx(exact_low, abs=0.02)
    assert post.sizes["basin"] == 2
    assert float(post["basin_mass"].sum()) == pytest.approx(1.0)


def exact_log_evidence() -> float:
    """ln ∫ exp(−nll) dθ / 4 over (−2, 2) (uniform prior), by quadrature."""
    lik = opwb()
    ref = lik.nll({"OpWB": 0.006})
    dens = lambda x: np.exp(-(lik.nll({"OpWB": x}) - ref))  # noqa: E731
    total = quad(dens, -2, 2, points=[-0.164, 0.006], limit=400)[0]
    return float(np.log(total / 4.0) - ref)


def test_opwb_emcee_masses_from_basin_evidences_and_rhat():
    saddle, exact_low = exact_split()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorWarning)  # converged: no warning
        post = sample_posterior(opwb(), method="emcee", n_steps=1200, n_burn=200, seed=1)
    assert post["rhat"].dims == ("parameter",) and float(post["rhat"].max()) < 1.01
    assert post.attrs["mode_masses_from"] == "basin evidences" and post.attrs["converged"] == 1
    assert (post["basin_visits"].values > 0).all()
    low_basin = int(np.argmin(post["basin_location"].sel(parameter="OpWB").values))
    assert float(post["basin_mass"][low_basin]) == pytest.approx(exact_low, abs=0.02)
    assert float(post["basin_mass_error"][low_basin]) < 0.02
    assert mass_below(post, saddle) == pytest.approx(float(post["basin_mass"][low_basin]), abs=1e-3)


def test_short_chains_warn_and_are_not_reliable():
    with pytest.warns(PosteriorWarning, match="R̂"):
        post = sample_posterior(opwb(), n_steps=40, n_burn=10, seed=0)
    assert post.attrs["converged"] == 0 and post.attrs["autocorr_reliable"] == 0
    assert "R̂" in post.attrs["warnings"] and post.attrs["rhat_max"] > 1.01


def test_single_basin_start_is_the_old_behaviour():
    """basins=False reproduces the old sampler: one mode only (what the benchmark compares against)."""
    saddle, _ = exact_split()
    post = sample_posterior(opwb(), basins=False, n_steps=300, n_burn=100, seed=0)
    assert post.sizes["basin"] == 1 and mass_below(post, saddle) == 0.0


def test_nested_sampling_sees_both_modes_and_the_evidence():
    saddle, exact_low = exact_split()
    post = sample_posterior(opwb(), method="nested", n_live=100, seed=0)
    assert post.attrs["method"] == "nested" and post.attrs["mode_masses_from"] == "nested sampling"
    err = float(post["basin_mass_error"].max())
    assert 0 < err < 0.1
    assert mass_below(post, saddle) == pytest.approx(exact_low, abs=4 * err + 0.01)
    z, dz = post.attrs["log_evidence"], post.attrs["log_evidence_error"]
    assert z == pytest.approx(exact_log_evidence(), abs=4 * dz + 0.05)
