"""Morphing: exact coefficients from benchmark weights, conditioning, basis proposal."""

import warnings

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError
from sbihep.events import eft
from sbihep.events.lhe import parse_reweight_text
from sbihep.events.morphing import (
    BasisConditionWarning,
    condition_number,
    morphing_matrix,
    propose_basis,
    solve_coefficients,
)

torch.set_num_threads(1)
OPS = ("cHW", "cHWtil", "cHq3")


def _random_coefficients(n_events, n_ops, order, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_events, eft.n_monomials(n_ops, order))) * rng.uniform(0.1, 10.0, size=(n_events, 1))


@pytest.fixture(scope="module")
def basis():
    return propose_basis(OPS, "quadratic", seed=1, n_iterations=10)


def test_square_basis_recovers_coefficients_exactly(basis):
    c = _random_coefficients(25, 3, "quadratic", 0)
    w = eft.weights_at(torch.from_numpy(c), torch.from_numpy(basis.points)).numpy().T  # (N, K)
    sol = solve_coefficients(w, basis.points, "quadratic", operators=OPS)
    assert sol.coefficients.shape == (25, 10)
    np.testing.assert_allclose(sol.coefficients.numpy(), c, rtol=0, atol=1e-12 * np.abs(c).max())
    assert sol.monomial_names() == eft.monomial_names(list(OPS), "quadratic")
    assert sol.condition_number == pytest.approx(np.linalg.cond(morphing_matrix(basis.points).numpy()), rel=1e-9)


def test_overdetermined_least_squares_and_wrong_order_warning():
    rng = np.random.default_rng(3)
    points = rng.uniform(-1, 1, size=(9, 2))  # 9 points > 6 quadratic monomials of 2 operators
    c = _random_coefficients(10, 2, "quadratic", 4)
    w = eft.weights_at(torch.from_numpy(c), torch.from_numpy(points)).numpy().T
    sol = solve_coefficients(w, points, "quadratic")
    np.testing.assert_allclose(sol.coefficients.numpy(), c, atol=1e-11 * np.abs(c).max())
    assert sol.max_relative_residual < 1e-12
    # quadratic weights cannot be a linear polynomial: least squares leaves a residual and says so
    with pytest.warns(UserWarning, match="not a linear polynomial"):
        bad = solve_coefficients(w, points, "linear")
    assert bad.max_relative_residual > 1e-3


def test_singular_basis_is_flagged():
    # every point has cHWtil = cHq3: the monomials cHWtil and cHq3 (and their squares) cannot be told apart
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, size=(10, 2))
    points = np.column_stack([a[:, 0], a[:, 1], a[:, 1]])
    w = np.ones((3, 10))
    with pytest.raises(InvalidInputError, match="singular.*cHWtil"):
        solve_coefficients(w, points, "quadratic", operators=OPS)
    assert condition_number(points) > 1e12
    with pytest.raises(InvalidInputError, match="at least 10"):
        solve_coefficients(np.ones((3, 9)), points[:9], "quadratic", operators=OPS)


def test_badly_conditioned_basis_warns(basis):
    points = basis.points.copy()
    points[2] = points[1] + 1e-5  # two nearly identical benchmarks
    c = _random_coefficients(4, 3, "quadratic", 6)
    w = eft.weights_at(torch.from_numpy(c), torch.from_numpy(points)).numpy().T
    with pytest.warns(BasisConditionWarning, match="badly conditioned"):
        sol = solve_coefficients(w, points, "quadratic", operators=OPS)
    assert 1e6 < sol.condition_number < 1e12


def test_propose_basis_is_well_conditioned_and_reproducible(basis):
    assert basis.points.shape == (10, 3)
    np.testing.assert_array_equal(basis.points[0], 0.0)  # the SM point is kept
    assert np.abs(basis.points).max() <= 1.0
    assert basis.condition_number < 20.0
    # far better than random points in the same box (median over a few draws)
    rng = np.random.default_rng(0)
    random_kappa = np.median([condition_number(np.vstack([np.zeros(3), rng.uniform(-1, 1, (9, 3))])) for _ in range(20)])
    assert basis.condition_number < random_kappa / 3
    again = propose_basis(OPS, "quadratic", seed=1, n_iterations=10)
    np.testing.assert_array_equal(again.points, basis.points)
    # the morphing weights sum to one at any θ, so the objective is at least 1/K
    assert basis.expected_squared_weight >= 1.0 / 10


def test_reweight_card_round_trips_through_the_header_parser(basis):
    card = basis.reweight_card({"cHW": ("smeft", 7)})
    blocks = card.split("launch --rwgt_name=")[1:]
    assert len(blocks) == 10
    for block, point in zip(blocks, basis.as_dicts()):
        values = parse_reweight_text(block, {("smeft", 7): "cHW"})
        assert values == point  # repr floats: exact
    with pytest.raises(InvalidInputError, match="not in the basis"):
        basis.reweight_card({"cXX": ("smeft", 1)})


def test_linear_basis_and_bounds_mapping():
    b = propose_basis(["a", "b"], "linear", bounds={"a": (-2.0, 2.0), "b": (0.0, 0.5)}, seed=0)
    assert b.points.shape == (3, 2)
    assert (b.points[:, 0] >= -2).all() and (b.points[:, 0] <= 2).all()
    assert (b.points[:, 1] >= 0).all() and (b.points[:, 1] <= 0.5).all()
    with pytest.raises(InvalidInputError, match="bounds"):
        propose_basis(["a", "b"], bounds={"a": (-1, 1)})
    with pytest.raises(InvalidInputError, match="n_benchmarks"):
        propose_basis(["a", "b"], "quadratic", n_benchmarks=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = solve_coefficients(np.array([[1.0, 2.0, 3.0]]), b.points, "linear")
    assert sol.coefficients.shape == (1, 3)
