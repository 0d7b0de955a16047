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


def test_opwb_emcee_warns_reweights_and_reports_rhat():
    saddle, exact_low = exact_split()
    with pytest.warns(PosteriorWarning, match="basin"):
        post = sample_posterior(opwb(), method="emcee", n_steps=600, n_burn=150, seed=0)
    assert "rhat" in post and post["rhat"].dims == ("parameter",)
    assert float(post["rhat"].max()) > 1.05  # walkers in different modes never mix: R̂ says so
    assert post.attrs["autocorr_reliable"] == 0  # not "reliable" for chains that cannot cross modes
    assert post.attrs["converged"] == 0
    assert post.attrs["mode_masses_from"] == "basin evidences"
    # walkers in both basins, masses reweighted by the basins' evidences from the chains
    assert mass_below(post, saddle) == pytest.approx(exact_low, abs=0.03)
    assert (post["basin_visits"].values > 0).all()
