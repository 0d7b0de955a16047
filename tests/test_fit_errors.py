"""Bad input to the fitter: each a clear error from sbihep's hierarchy naming the culprit."""

import numpy as np
import pytest

from sbihep.errors import ConvergenceError, InvalidInputError, OutOfBoundsError, ShapeError, UnknownParameterError
from sbihep.fit import ConstraintTerm, GaussianTerm, Likelihood, cls_upper_limit, minimize, profile_scan
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace


def space(*params):
    return ParameterSpace(params)


def simple_term(bounds=(-5.0, 5.0)):
    return GaussianTerm([1.0], [[1.0]], [0.0], space(Parameter("c", 0.0, bounds)), linear={"c": [1.0]})


def test_unknown_parameter_names():
    lik = Likelihood([simple_term()])
    with pytest.raises(UnknownParameterError, match="'d'"):
        lik.nll({"d": 1.0})
    with pytest.raises(UnknownParameterError, match="start names unknown parameter 'd'"):
        minimize(lik, start={"d": 0.0})
    with pytest.raises(UnknownParameterError, match="fixed names unknown parameter 'x'"):
        minimize(lik, fixed={"x": 0.0})
    with pytest.raises(UnknownParameterError, match="grid names unknown parameter 'q'"):
        profile_scan(lik, {"q": [0.0, 1.0]})
    with pytest.raises(UnknownParameterError, match="'nope'"):
        GaussianTerm([1.0], [[1.0]], [0.0], space(Parameter("c")), linear={"nope": [1.0]})


def test_parameter_in_two_terms_with_different_bounds():
    with pytest.raises(InvalidInputError, match=r"terms\[1\].*'c' is declared differently"):
        Likelihood([simple_term((-5.0, 5.0)), simple_term((-1.0, 1.0))])
    # the same declaration is shared by name
    assert Likelihood([simple_term(), simple_term()]).names == ("c",)


def test_singular_and_bad_covariance():
    p = space(Parameter("c"))
    with pytest.raises(InvalidInputError, match="singular"):
        GaussianTerm([1.0, 2.0], [[1.0, 1.0], [1.0, 1.0]], [0.0, 0.0], p, linear={"c": [1.0, 1.0]})
    with pytest.raises(InvalidInputError, match="not symmetric"):
        GaussianTerm([1.0, 2.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], p)
    with pytest.raises(ShapeError, match="covariance has shape"):
        GaussianTerm([1.0, 2.0], [[1.0]], [0.0, 0.0], p)
    with pytest.raises(ShapeError, match=r"linear\['c'\]"):
        GaussianTerm([1.0, 2.0], np.eye(2), [0.0, 0.0], p, linear={"c": [1.0]})


def test_start_or_fixed_outside_bounds():
    lik = Likelihood([simple_term((-1.0, 1.0))])
    with pytest.raises(OutOfBoundsError, match="start.*'c'.*outside its bounds"):
        minimize(lik, start={"c": 3.0})
    with pytest.raises(OutOfBoundsError, match="fixed"):
        minimize(lik, fixed={"c": -2.0})
    with pytest.raises(OutOfBoundsError):
        profile_scan(lik, {"c": [0.0, 2.0]})


def test_not_a_term_and_bad_options():
    with pytest.raises(InvalidInputError, match="at least one"):
        Likelihood([])
    with pytest.raises(InvalidInputError, match=r"terms\[0\] \(str\) is not a likelihood term"):
        Likelihood(["gauss"])
    lik = Likelihood([simple_term()])
    with pytest.raises(InvalidInputError, match="method"):
        minimize(lik, method="newton")
    with pytest.raises(InvalidInputError, match="n_starts"):
        minimize(lik, n_starts=0)
    with pytest.raises(InvalidInputError, match="give poi"):
        cls_upper_limit(Likelihood([GaussianTerm([1.0], [[1.0]], [0.0], space(Parameter("a"), Parameter("b")),
                                                 linear={"a": [1.0], "b": [1.0]})]))


def test_constraint_declared_twice_is_not_double_counted():
    p = Parameter("n", 0.0, (-5, 5), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0))
    term = GaussianTerm([0.0], [[1.0]], [0.0], space(p), linear={"n": [1.0]})
    explicit = Likelihood([term, ConstraintTerm(space(p))])
    auto = Likelihood([term])
    assert len(explicit.terms) == 2 and len(auto.terms) == 2
    assert explicit.nll({"n": 0.7}) == pytest.approx(auto.nll({"n": 0.7}))


class _Rosenbrock:
    """A valley MINUIT cannot finish in 30 calls: used to check that failures are never silent."""

    parameters = space(Parameter("x", 0.0, (-5, 5)), Parameter("y", 0.0, (-5, 5)))

    def nll(self, theta):
        return 100.0 * (theta["y"] - theta["x"] ** 2) ** 2 + (1.0 - theta["x"]) ** 2


def test_non_convergence_raises_or_is_flagged():
    lik = Likelihood([_Rosenbrock()])
    with pytest.raises(ConvergenceError, match="call limit"):
        minimize(lik, start={"x": -1.5, "y": 2.0}, max_calls=30)
    flagged = minimize(lik, start={"x": -1.5, "y": 2.0}, max_calls=30, on_failure="flag")
    assert not flagged.converged and "call limit" in flagged.message
    good = minimize(lik, start={"x": -1.5, "y": 2.0}, n_starts=4, seed=1)
    assert good.converged and good.n_agree >= 2
    assert good.values["x"] == pytest.approx(1.0, abs=1e-2)


def test_scipy_end_point_check_catches_a_premature_stop():
    lik = Likelihood([_Rosenbrock()])
    bad = minimize(lik, method="scipy", start={"x": -1.5, "y": 2.0}, max_calls=2, on_failure="flag")
    assert not bad.converged and "EDM" in bad.message
    good = minimize(lik, method="scipy", start={"x": -1.5, "y": 2.0})
    assert good.converged and good.values["x"] == pytest.approx(1.0, abs=1e-3)


def test_a_failing_analytic_gradient_falls_back_to_minuits_numerical_one():
    """A term whose analytic gradient is unusable (NaN, as a diverged first step produces) still gets a
    converged fit at the right minimum: MINUIT is rerun with its own numerical gradient."""

    class BrokenGradient:
        parameters = ParameterSpace([Parameter("a", 0.0, (-10.0, 10.0)), Parameter("b", 0.0, (-10.0, 10.0))])

        def nll(self, theta):
            return 0.5 * ((theta["a"] - 0.3) / 0.01) ** 2 + 0.5 * ((theta["b"] + 0.2) / 0.002) ** 2

        def nll_grad(self, theta):
            return {"a": float("nan"), "b": float("nan")}

    lik = Likelihood([BrokenGradient()])
    assert lik.has_analytic_grad
    fit = minimize(lik)
    assert fit.converged
    assert fit.values["a"] == pytest.approx(0.3, abs=1e-4) and fit.values["b"] == pytest.approx(-0.2, abs=2e-5)
