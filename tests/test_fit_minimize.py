"""minimize: honest convergence (flat directions, minima on bounds), precision independent of the
bounds, and the global stage that finds and reports other basins.

Bugs of the fitter before this stage (issue 18), each a test below that fails on that code:
- an exact flat direction (data depend on a + b only) came back ``converged=True``;
- a minimum on a bound came back converged with error ~1e-9 (0 in effect);
- SMEFiT's linear fixture fits were up to 2e-3 relative off the exact solution, depending on the bounds;
- a fit from the wrong side of a double well returned the higher minimum and said nothing.
"""

import math
from pathlib import Path

import numpy as np
import pytest

from sbihep.errors import ConvergenceError, InvalidInputError
from sbihep.fit import GaussianTerm, Likelihood, minimize, smefit_term
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"
DATASETS = ["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"]


def flat_likelihood(bounds=(-5.0, 5.0)) -> Likelihood:
    """Two measurements: of a + b (1 ± 0.1) and of c (0.3 ± 0.1): a − b is not determined."""
    space = ParameterSpace([Parameter(n, 0.0, bounds) for n in ("a", "b", "c")])
    return Likelihood([GaussianTerm([1.0, 0.3], 0.01 * np.eye(2), [0.0, 0.0], space,
                                    linear={"a": [1.0, 0.0], "b": [1.0, 0.0], "c": [0.0, 1.0]})])


@pytest.mark.parametrize("hesse", [True, False])
def test_exact_flat_direction_is_not_converged(hesse):
    lik = flat_likelihood()
    fit = minimize(lik, hesse=hesse, on_failure="flag")
    assert not fit.converged
    assert len(fit.flat_directions) == 1 and "a" in fit.flat_directions[0] and "b" in fit.flat_directions[0]
    assert "c" not in fit.flat_directions[0].split("(")[0]
    assert "flat direction" in fit.message
    with pytest.raises(ConvergenceError, match="flat direction"):
        minimize(lik, hesse=hesse)


class _NoGradient:
    """−ln L = ½((a + b − 3)/0.1)² with no analytic gradient: the function-difference path."""

    parameters = ParameterSpace([Parameter("a", 1.0, (0.1, 10.0)), Parameter("b", 1.0, (0.1, 10.0))])

    def nll(self, theta):
        return 0.5 * ((theta["a"] + theta["b"] - 3.0) / 0.1) ** 2


def test_flat_direction_without_gradient_and_not_hidden_by_a_bound():
    lik = Likelihood([_NoGradient()])
    assert not lik.has_analytic_grad
    fit = minimize(lik, on_failure="flag", global_search=False)
    assert not fit.converged and fit.flat_directions
    # the global stage must not return a corner of the flat valley (one parameter on its bound) as converged
    fit = minimize(lik, on_failure="flag", global_search=True)
    assert not fit.converged


def test_strong_correlation_is_not_a_flat_direction():
    """a + b measured to ±0.1 and a − b to ±10: correlation 0.9998, both determined."""
    space = ParameterSpace([Parameter("a", 0.0, (-5, 5)), Parameter("b", 0.0, (-5, 5))])
    lik = Likelihood([GaussianTerm([1.0, 0.2], np.diag([1e-2, 1e2]), [0.0, 0.0], space,
                                   linear={"a": [1.0, 1.0], "b": [1.0, -1.0]})])
    fit = minimize(lik)
    assert fit.converged and not fit.flat_directions
    assert fit.values["a"] == pytest.approx(0.6, abs=1e-9) and fit.values["b"] == pytest.approx(0.4, abs=1e-9)
    assert fit.errors["a"] == pytest.approx(math.sqrt(0.25 * (1e-2 + 1e2)), rel=1e-6)


def test_minimum_on_a_bound_is_flagged_with_nan_error():
    """d = a measured as −1 ± 0.1 with a ≥ 0: the minimum is a = 0 exactly, on the bound."""
    space = ParameterSpace([Parameter("a", 0.5, (0.0, 5.0)), Parameter("c", 0.0, (-5.0, 5.0))])
    lik = Likelihood([GaussianTerm([-1.0, 0.4], 0.01 * np.eye(2), [0.0, 0.0], space,
                                   linear={"a": [1.0, 0.5], "c": [0.0, 1.0]})])
    fit = minimize(lik)
    assert fit.converged and fit.at_bound == ("a",)
    assert fit.values["a"] == 0.0
    assert math.isnan(fit.errors["a"])  # one-sided: never a silent 0.0
    assert fit.values["c"] == pytest.approx(0.4, abs=1e-9)
    assert fit.errors["c"] == pytest.approx(0.1, rel=1e-6)  # conditional on a at its bound
    assert any("bound" in note for note in fit.notes)
    ds = fit.to_dataset()
    assert bool(ds["at_bound"].sel(parameter="a")) and not bool(ds["at_bound"].sel(parameter="c"))


def test_poi_at_its_bound_stays_usable():
    """The counting model of test_fit_gaussian with n below the background: μ̂ sits on its bound 0."""
    s, b0, sigma, sigma_b = 10.0, 50.0, math.sqrt(50.0), 5.0
    space = ParameterSpace([
        Parameter("mu", 0.0, (0.0, 10.0)),
        Parameter("b", b0, (20.0, 80.0), kind="nuisance", constraint=GaussianConstraint(b0, sigma_b)),
    ])
    lik = Likelihood([GaussianTerm([45.0], [[sigma**2]], [0.0], space, linear={"mu": [s], "b": [1.0]})])
    fit = minimize(lik)
    assert fit.converged and fit.at_bound == ("mu",) and fit.values["mu"] == 0.0
    b_hat = (45.0 / sigma**2 + b0 / sigma_b**2) / (1 / sigma**2 + 1 / sigma_b**2)
    assert fit.values["b"] == pytest.approx(b_hat, rel=1e-9)
    # a fixed-μ fit at the bound is an ordinary interior fit of b (hesse=False: MIGRAD's precision, EDM < 1e-5)
    cond = minimize(lik, fixed={"mu": 0.0}, hesse=False)
    assert cond.converged and cond.at_bound == () and cond.nll == pytest.approx(fit.nll, abs=1e-5)


def test_many_parameters_without_gradient_bound_and_no_dependence():
    """More than FD_HESSIAN_MAX_FREE free parameters and no gradient: the diagonal checks."""

    class Many:
        parameters = ParameterSpace([Parameter(f"p{i}", 0.5, (0.0, 5.0)) for i in range(14)])

        def nll(self, t):
            return 0.5 * ((t["p0"] + 1.0) / 0.1) ** 2 + sum(0.5 * ((t[f"p{i}"] - 1.0) / 0.2) ** 2 for i in range(1, 13))

    fit = minimize(Likelihood([Many()]), on_failure="flag", global_search=False)
    assert not fit.converged and "p13" in fit.message  # −ln L does not depend on p13

    class Bounded(Many):
        parameters = ParameterSpace([Parameter(f"p{i}", 0.5, (0.0, 5.0)) for i in range(13)])

    fit = minimize(Likelihood([Bounded()]), global_search=False)
    assert fit.converged and fit.at_bound == ("p0",) and fit.values["p0"] == 0.0 and math.isnan(fit.errors["p0"])
    assert fit.errors["p5"] == pytest.approx(0.2, rel=1e-2)


def _gls(op):
    """The exact linear (GLS) best fit θ̂ = tᵀC⁻¹(d − t_SM) / tᵀC⁻¹t, t the operator's linear term."""
    term = smefit_term(DATASETS, DATA / "commondata", DATA / "theory", ParameterSpace([Parameter(op, 0.0, (-1, 1))]),
                       order="NLO_QCD", eft_order="linear", theory_cov=True, t0=True)
    t, cinv = term.linear[op], np.linalg.inv(term.covariance)
    return float(t @ cinv @ (term.data - term.sm) / (t @ cinv @ t))


@pytest.mark.skipif(not DATA.is_dir(), reason="SMEFiT reference data absent")
@pytest.mark.parametrize("bounds", [(-100, 100), (-2, 2), (-1, 1)])
@pytest.mark.parametrize("op", ["OtZ", "OpWB", "OpqMi"])
def test_smefit_linear_fits_reach_rtol_1e4_whatever_the_bounds(op, bounds):
    exact = _gls(op)
    space = ParameterSpace([Parameter(op, 0.0, bounds)])
    term = smefit_term(DATASETS, DATA / "commondata", DATA / "theory", space, order="NLO_QCD", eft_order="linear",
                       theory_cov=True, t0=True)
    fit = minimize(Likelihood([term]))  # default settings
    assert fit.converged
    assert fit.values[op] == pytest.approx(exact, rel=1e-4)


def double_well() -> Likelihood:
    """d = θ² measured as 1 ± 0.1: minima at θ = ±1 of equal depth, σ ≈ 0.05 each."""
    space = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0))])
    return Likelihood([GaussianTerm([1.0], [[0.01]], [0.0], space, quadratic={"theta*theta": [1.0]})])


def test_global_search_reports_both_minima_of_a_double_well():
    lik = double_well()
    fit = minimize(lik, start={"theta": 0.3})
    assert fit.converged
    assert len(fit.local_minima) == 2
    assert sorted(m.values["theta"] for m in fit.local_minima) == pytest.approx([-1.0, 1.0], abs=1e-6)
    assert fit.local_minima[0] is not None and fit.local_minima[0].nll == pytest.approx(fit.nll)
    assert all(m.errors["theta"] == pytest.approx(0.05, rel=1e-2) for m in fit.local_minima)


def test_global_search_moves_to_the_lower_minimum_and_says_so():
    """The double well tilted by a second measurement θ = −0.5 ± 1: the left well is lower by ~0.5 in −ln L."""
    space = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0))])
    lik = Likelihood([GaussianTerm([1.0, -0.5], np.diag([0.01, 1.0]), [0.0, 0.0], space,
                                   linear={"theta": [0.0, 1.0]}, quadratic={"theta*theta": [1.0, 0.0]})])
    local = minimize(lik, start={"theta": 0.3}, global_search=False)
    assert local.values["theta"] > 0  # the local fit stays in the right (higher) well
    fit = minimize(lik, start={"theta": 0.3})
    assert fit.converged and fit.moved_to_global and fit.values["theta"] < 0
    assert fit.nll < local.nll - 0.1
    assert any("lower minimum" in note for note in fit.notes)
    # both wells are within 2σ (−2ΔlnL < 4): both reported, the returned one first
    assert len(fit.local_minima) == 2 and fit.local_minima[0].values["theta"] == pytest.approx(fit.values["theta"])
    # a tighter reporting threshold keeps only the global one
    assert len(minimize(lik, start={"theta": 0.3}, local_minima_threshold=0.1).local_minima) == 1


def test_global_search_auto_only_for_top_level_fits():
    lik = double_well()
    assert minimize(lik, start={"theta": 0.3}, hesse=False).local_minima == ()  # inner-loop style call
    two = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0)), Parameter("n", 0.0, (-5, 5))])
    lik2 = Likelihood([GaussianTerm([1.0, 0.0], np.diag([0.01, 1.0]), [0.0, 0.0], two,
                                    linear={"n": [0.0, 1.0]}, quadratic={"theta*theta": [1.0, 0.0]})])
    assert minimize(lik2, start={"theta": 0.3}, fixed={"n": 0.1}).local_minima == ()  # conditional fit
    assert len(minimize(lik2, start={"theta": 0.3}, fixed={"n": 0.1}, global_search=True).local_minima) == 2
    with pytest.raises(InvalidInputError, match="global_search"):
        minimize(lik, global_search="yes")
    with pytest.raises(InvalidInputError, match="polish"):
        minimize(lik, polish="always")
    with pytest.raises(InvalidInputError, match="local_minima_threshold"):
        minimize(lik, local_minima_threshold=-1.0)
