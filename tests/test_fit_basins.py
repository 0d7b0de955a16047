"""find_minima: every basin of a likelihood with two minima, from a start that sits in one of them."""

from pathlib import Path

import numpy as np
import pytest

from sbihep.errors import InvalidInputError
from sbihep.fit import GaussianTerm, Likelihood, minimize, smefit_term
from sbihep.fit.basins import find_minima
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"


def double_well() -> Likelihood:
    """d = θ² measured as 1 ± 0.1: minima at θ = ±1 of equal depth, σ ≈ 0.05 each."""
    space = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0))])
    return Likelihood([GaussianTerm([1.0], [[0.01]], [0.0], space, quadratic={"theta*theta": [1.0]})])


def test_double_well_both_minima_found_from_one_side():
    lik = double_well()
    single = minimize(lik, start={"theta": 0.3})
    assert single.values["theta"] == pytest.approx(1.0, abs=1e-3)  # one fit sees one basin
    minima = find_minima(lik, start={"theta": 0.3})
    assert len(minima) == 2
    assert sorted(m.values["theta"] for m in minima) == pytest.approx([-1.0, 1.0], abs=1e-3)
    assert all(m.errors["theta"] == pytest.approx(0.05, rel=1e-2) for m in minima)
    assert minima[0].nll <= minima[1].nll


def test_smefit_opwb_quadratic_second_minimum():
    """The issue's case: OpWB alone at quadratic order has minima near 0.006 and −0.164."""
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2))])
    term = smefit_term(["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"], DATA / "commondata", DATA / "theory", space,
                       eft_order="quadratic")
    minima = find_minima(Likelihood([term]))
    assert [round(m.values["OpWB"], 3) for m in minima] == [0.006, -0.164]
    assert 2 * (minima[1].nll - minima[0].nll) < 3.84  # both inside the 95% region


def test_single_basin_gives_one_minimum_and_bad_options():
    space = ParameterSpace([Parameter("a", 0.0, (-3, 3)), Parameter("b", 0.0, (-np.inf, np.inf))])
    lik = Likelihood([GaussianTerm([0.5, -0.2], np.eye(2), [0.0, 0.0], space, linear={"a": [1, 0], "b": [0.3, 1]})])
    minima = find_minima(lik, n_starts=12)
    assert len(minima) == 1 and minima[0].converged
    with pytest.raises(InvalidInputError, match="n_starts"):
        find_minima(lik, n_starts=-1)
    with pytest.raises(InvalidInputError, match="hesse"):
        find_minima(lik, hesse=False)
