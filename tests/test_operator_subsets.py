"""Operator subsets: spaces, EventSets, training samples, estimators and fit terms on any subset of
an EventSet's operators, the others held at 0 (SM) or at given values (issue 23, item 2)."""

import json

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.events import augment
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.params import Parameter, ParameterSpace
from sbihep.physics.processes import get_process

torch.set_num_threads(1)
OPS = ["cHW", "cHWtil", "cHq3"]


def amplitude_events(n=600, seed=0, order="quadratic"):
    """Weighted events with w(θ) = w_SM [(1 + Σθ_i a_i)² + (Σθ_i b_i)²] (quadratic) or its interference
    part (linear), a_i = x_i + noise, b_i random: exact, positive, with every monomial populated."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3))
    a = x + 0.3 * rng.standard_normal((n, 3))
    b = 0.5 * rng.standard_normal((n, 3))
    w_sm = 1.0 + 0.3 * x[:, 0]
    cols = [np.ones(n), *(2 * a[:, i] for i in range(3))]
    if order == "quadratic":
        for i in range(3):
            for j in range(i, 3):
                cols.append((a[:, i] ** 2 + b[:, i] ** 2) if i == j else 2 * (a[:, i] * a[:, j] + b[:, i] * b[:, j]))
    c = np.stack(cols, 1) * w_sm[:, None]
    momenta = np.zeros((n, 1, 4))
    momenta[..., 0] = 1.0
    ev = EventSet.from_arrays(momenta=momenta, roles=["p"], coefficients=c, operators=OPS, order=order,
                              attrs={"theta_gen": json.dumps({"cHW": 0.0, "cHWtil": 0.0, "cHq3": 0.0})})
    return ev.with_observables({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2]})


@pytest.fixture(scope="module")
def events():
    return amplitude_events()


# ---- the parameter space -------------------------------------------------------------------
def test_parameter_space_holds_exactly_the_named_operators():
    wh = get_process("wh_lvbb")
    space = wh.parameter_space({"cHW": (-1, 1), "cHWtil": (-0.5, 0.5)})
    assert space.names == ("cHW", "cHWtil")  # was: cHq3 added with bounds (−10, 10) nobody asked for
    assert space["cHWtil"].bounds == (-0.5, 0.5)
    assert wh.parameter_space({"cHWtil": (-1, 1), "cHW": (-1, 1)}).names == ("cHWtil", "cHW")  # the order named
    assert wh.parameter_space({"cHq3": None})["cHq3"].bounds == (-10.0, 10.0)  # the default range, on request only
    assert wh.parameter_space().names == tuple(wh.operators)
    with pytest.raises(InvalidInputError, match="empty"):
        wh.parameter_space({})
    with pytest.raises(UnknownParameterError, match="cHX"):
        wh.parameter_space({"cHX": (-1, 1)})
    with pytest.raises(InvalidInputError, match="bounds"):
        wh.parameter_space({"cHW": ()})  # was: () silently replaced by the default range


def test_uniform_prior_refuses_bounds_for_parameters_outside_its_space():
    space = ParameterSpace([Parameter("cHW", 0.0, (-1, 1))])
    with pytest.raises(InvalidInputError, match="cHWtil"):
        augment.uniform_prior(space, {"cHWtil": (-1, 1)})  # was: silently ignored


# ---- EFT coefficients and EventSets on a slice ----------------------------------------------
@pytest.mark.parametrize("order", ["linear", "quadratic"])
def test_fix_coefficients_reproduces_the_full_weights_on_the_slice(order):
    ev = amplitude_events(50, 1, order)
    c = ev.coefficients()
    keep, fixed = ["cHq3", "cHW"], {"cHWtil": -0.4}
    c_slice = eft_math.fix_coefficients(c, OPS, order, keep, fixed)
    rng = np.random.default_rng(2)
    for _ in range(5):
        q, w = rng.uniform(-1, 1, 2)
        full = eft_math.weights_at(c, torch.tensor([w, -0.4, q], dtype=torch.float64))
        part = eft_math.weights_at(c_slice, torch.tensor([q, w], dtype=torch.float64))
        assert torch.allclose(full, part, rtol=1e-13, atol=1e-15)
    # at the SM of the held operators it is the plain restriction
    assert torch.equal(eft_math.fix_coefficients(c, OPS, order, keep), eft_math.restrict_coefficients(c, OPS, order, keep))
    with pytest.raises(InvalidInputError, match="also kept"):
        eft_math.fix_coefficients(c, OPS, order, keep, {"cHW": 0.1})
    with pytest.raises(InvalidInputError, match="not finite"):
        eft_math.fix_coefficients(c, OPS, order, keep, {"cHWtil": float("nan")})


def test_restricted_eventset_weights_scores_and_file_state_the_slice(events, tmp_path):
    part = events.restrict(["cHWtil", "cHW"], fixed={"cHq3": 0.3})
    assert part.operators == ["cHWtil", "cHW"] and part.fixed_operators == {"cHq3": 0.3}
    assert "cHq3 = 0.3 held fixed" in repr(part)
    theta = {"cHW": 0.2, "cHWtil": -0.7}
    assert torch.allclose(part.weights(theta), events.weights({**theta, "cHq3": 0.3}), rtol=1e-13)
    assert part.sigma(theta) == pytest.approx(events.sigma({**theta, "cHq3": 0.3}), rel=1e-13)
    full_score = events.joint_score({**theta, "cHq3": 0.3})
    assert torch.allclose(part.joint_score(theta), full_score[:, [1, 0]], rtol=1e-10, atol=1e-12)
    again = part.restrict(["cHW"])
    assert again.fixed_operators == {"cHq3": 0.3, "cHWtil": 0.0}
    part.save(tmp_path / "slice.nc")
    assert EventSet.load(tmp_path / "slice.nc").fixed_operators == {"cHq3": 0.3}
    with pytest.raises(InvalidInputError, match="cHW"):
        events.restrict(["cHW"], fixed={"cHW": 0.1})
    with pytest.raises(InvalidInputError, match="cHX"):
        events.restrict(["cHX"])
    with pytest.raises(InvalidInputError, match="held fixed"):
        part.weights({"cHq3": 0.1})
    # slices at different held values are different models: joining them would mix two σ(θ)
    EventSet.concatenate([part, part])
    with pytest.raises(InvalidInputError, match="different slices"):
        EventSet.concatenate([part, events.restrict(["cHWtil", "cHW"], fixed={"cHq3": 0.1})])


# ---- training samples and estimators -------------------------------------------------------
def test_a_two_operator_prior_trains_a_two_operator_estimator(events, tmp_path):
    """The issue's reproduction: the sample used to gain an all-zero cHq3 column that the estimator refused."""
    from sbihep.estimators import RatioEstimator

    space = get_process("wh_lvbb").parameter_space({"cHW": (-1, 1), "cHWtil": (-1, 1)})
    sample = augment.ratio_training_sample(events, augment.uniform_prior(space), 400, features=["x1", "x2"], seed=0)
    assert [str(p) for p in sample["parameter"].values] == ["cHW", "cHWtil"]
    assert json.loads(sample.attrs["fixed_parameters"]) == {"cHq3": 0.0}
    est = RatioEstimator(["x1", "x2"], space, hidden=(8,), seed=0)
    est.fit(sample, "alices", epochs=1, batch_size=100, quiet=True, seed=0)
    assert est.fixed_parameters == {"cHq3": 0.0} and "fixed={'cHq3': 0.0}" in repr(est)
    est.save(tmp_path / "est")
    assert RatioEstimator.load(tmp_path / "est").fixed_parameters == {"cHq3": 0.0}
    # a sample over more parameters than the estimator's: the error says how to get the subset
    full = augment.ratio_training_sample(events, augment.uniform_prior(get_process("wh_lvbb").parameter_space(
        {"cHW": (-1, 1), "cHWtil": (-1, 1), "cHq3": (-1, 1)})), 40, features=["x1", "x2"], seed=0)
    with pytest.raises(ShapeError, match="prior over the estimator's space"):
        RatioEstimator(["x1", "x2"], space, hidden=(8,)).fit(full, "alice", epochs=1, quiet=True)


def test_samples_at_fixed_values_carry_the_exact_joint_ratio_and_score_of_that_slice(events):
    space = ParameterSpace([Parameter("cHW", 0.0, (-1, 1))])
    held = {"cHWtil": 0.5, "cHq3": -0.2}
    data = augment.weighted_ratio_training_sample(events, augment.uniform_prior(space), 2, features=["x1"], seed=3, fixed=held)
    assert [str(p) for p in data["parameter"].values] == ["cHW"] and json.loads(data.attrs["fixed_parameters"]) == held
    assert data.attrs["sigma_operators"] == ["cHW"]
    for row in (0, 7, 301):
        i, c0 = int(data["event"][row]), float(data["theta0"][row, 0])
        log_r = events.log_joint_ratio({"cHW": c0, **held}, held)[i]
        t0 = events.joint_score({"cHW": c0, **held})[i, 0]
        assert float(data["log_r_xz"][row]) == pytest.approx(float(log_r), rel=1e-10, abs=1e-12)
        assert float(data["t_xz0"][row, 0]) == pytest.approx(float(t0), rel=1e-10, abs=1e-12)
    with pytest.raises(InvalidInputError, match="held fixed"):
        augment.ratio_training_sample(events, augment.uniform_prior(space), 10, theta1={"cHq3": 0.1}, fixed=held)
    with pytest.raises(InvalidInputError, match="also sampled"):
        augment.ratio_training_sample(events, augment.uniform_prior(space), 10, fixed={"cHW": 0.1})
    score = augment.score_training_sample(events, 50, parameters=["cHq3"], fixed={"cHW": 0.1}, seed=1, features=["x1"])
    assert [str(p) for p in score["parameter"].values] == ["cHq3"]


def test_quadratic_classifier_and_sally_train_on_a_subset(events):
    from sbihep.estimators import QuadraticEFTClassifier, ScoreEstimator

    space = ParameterSpace([Parameter("cHW", 0.0, (-1, 1)), Parameter("cHq3", 0.0, (-1, 1))])
    quad = QuadraticEFTClassifier(["x1", "x3"], space, hidden=(8,), seed=0)
    quad.fit(events, fixed={"cHWtil": 0.25}, epochs=1, batch_size=200, quiet=True, seed=0)
    assert quad.fixed_parameters == {"cHWtil": 0.25}
    # its σ(θ) polynomial is the events' on the slice cHWtil = 0.25
    th = {"cHW": 0.4, "cHq3": -0.3}
    poly = torch.tensor(quad.sigma_coefficients, dtype=torch.float64)
    value = float(eft_math.monomials(torch.tensor([0.4, -0.3], dtype=torch.float64), "quadratic") @ poly)
    assert value == pytest.approx(events.sigma({**th, "cHWtil": 0.25}), rel=1e-12)
    QuadraticEFTClassifier(["x1"], space, hidden=(8,)).fit(events, epochs=1, quiet=True)
    with pytest.raises(InvalidInputError, match="cHW"):
        QuadraticEFTClassifier(["x1"], space, hidden=(8,)).fit(events, fixed={"cHW": 0.1}, epochs=1, quiet=True)
    sally = ScoreEstimator(["x1", "x3"], space, hidden=(8,), seed=0)
    sally.fit_events(events, epochs=1, batch_size=200, quiet=True, seed=0)  # was: refused (operators differ)
    assert sally.fixed_parameters == {"cHWtil": 0.0}


# ---- fit terms --------------------------------------------------------------------------------
def test_fit_terms_on_a_slice_with_a_held_operator(events):
    from sbihep.fit import BinnedTerm, exact_unbinned_term

    held = {"cHq3": 0.2}
    exact = exact_unbinned_term(events, 1e-5, pois={"cHW": (-1, 1), "cHWtil": (-1, 1)}, fixed=held)
    binned = BinnedTerm.from_eventset(events, {"x1": np.linspace(-1, 1, 5)}, 1e-5, pois={"cHW": (-1, 1)}, fixed=held)
    assert set(exact.parameters.names) == {"cHW", "cHWtil"} and set(binned.parameters.names) == {"cHW"}
    assert exact.fixed_operators == held and binned.fixed_operators == held  # the slice is stated
    assert "fixed={'cHq3': 0.2}" in repr(exact) and "fixed={'cHq3': 0.2}" in repr(binned.asimov({}))
    theta = {"cHW": 0.3, "cHWtil": -0.2}
    assert float(exact.sigma_pb(theta)) == pytest.approx(events.sigma({**theta, **held}), rel=1e-12)
