"""Cross sections σ(θ) from VEGAS against closed forms."""

import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ThresholdError
from sbihep.physics.processes import get_process
from sbihep.physics.xsec import GEV2_TO_PB, PhaseSpaceIntegrand, cross_section

torch.set_num_threads(1)


def ee_mumu_sigma_pb(proc, sqrt_s, theta):
    """σ(e⁺e⁻→μ⁺μ⁻) = (1/(32π s))·(1/4)·s²·(8/3)·Σ_ij |A_ij|²  (∫(1±cosθ)² dcosθ = 8/3)."""
    sm = proc.sm
    s = sqrt_s**2
    g = {"L": -0.5 + sm.sin2_w, "R": sm.sin2_w}
    contact = {"LL": theta.get("cll", 0), "LR": theta.get("cle", 0), "RL": theta.get("cle", 0), "RR": theta.get("cee", 0)}
    total = 0.0
    for i in "LR":
        for j in "LR":
            a = sm.e**2 / s + sm.g_z**2 * g[i] * g[j] / (s - sm.m_Z**2 + 1j * sm.m_Z * sm.width_Z) + contact[i + j] * 1e-6
            total += abs(a) ** 2
    return s * (8 / 3) * total / (4 * 32 * math.pi) * GEV2_TO_PB


@pytest.mark.parametrize("sqrt_s", [91.1876, 500.0])
def test_ee_mumu_polynomial_matches_closed_form(sqrt_s):
    proc = get_process("ee_mumu")
    xs = cross_section(proc, sqrt_s, n_evaluations=4000, n_adapt=2, n_iterations=3, seed=7, progress=False)
    for theta in ({}, {"cll": 1.0}, {"cle": -2.0, "cee": 0.5}, {"cll": 3.0, "cle": 1.0, "cee": -1.0}):
        value, error = xs(theta)
        exact = ee_mumu_sigma_pb(proc, sqrt_s, theta)
        assert abs(value - exact) < 4 * error + 1e-12 * exact, (theta, value, exact, error)
        assert error < 2e-3 * exact
    assert xs.chi2_per_dof < 5


def test_same_seed_same_result_and_different_seed_differs():
    proc = get_process("ee_mumu")
    a = cross_section(proc, 200.0, n_evaluations=1000, n_adapt=1, n_iterations=2, seed=3, progress=False)
    b = cross_section(proc, 200.0, n_evaluations=1000, n_adapt=1, n_iterations=2, seed=3, progress=False)
    c = cross_section(proc, 200.0, n_evaluations=1000, n_adapt=1, n_iterations=2, seed=4, progress=False)
    np.testing.assert_array_equal(a.coefficients_pb, b.coefficients_pb)
    assert not np.array_equal(a.coefficients_pb, c.coefficients_pb)
    assert "cll*cle" in a.monomials and a.to_dict()["process"] == "ee_mumu"


def test_linear_order_has_no_quadratic_monomials():
    proc = get_process("ee_mumu")
    xs = cross_section(proc, 200.0, order="linear", n_evaluations=500, n_adapt=1, n_iterations=1, seed=0, progress=False)
    assert xs.monomials == ("1", "cll", "cle", "cee")


def test_bad_arguments():
    proc = get_process("ee_mumu")

    class HeavyFinalState(type(proc)):
        def external_masses(self):
            return (0.0, 0.0, 100.0, 100.0)

    with pytest.raises(ThresholdError, match="threshold"):
        PhaseSpaceIntegrand(HeavyFinalState(), 150.0)
    with pytest.raises(InvalidInputError, match="sqrt_s"):
        cross_section(proc, float("nan"), progress=False)
    with pytest.raises(InvalidInputError, match="n_evaluations"):
        cross_section(proc, 100.0, n_evaluations=10, progress=False)
    xs = cross_section(proc, 100.0, n_evaluations=200, n_adapt=0, n_iterations=1, progress=False)
    with pytest.raises(InvalidInputError, match="cHW"):
        xs({"cHW": 1.0})
