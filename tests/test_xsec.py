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


def test_hadronic_w_cross_section_matches_luminosity_integral():
    """pp → W⁺ → e⁺ν at 13 TeV: VEGAS over (x₁, x₂, angles) vs Σ_ab ∫dτ L_ab(τ, μ=√ŝ) σ̂(τS).

    σ̂(ud̄ → eν) = ŝ |A|² / (144π), A = (g²/2)/(ŝ − m_W² + i m_W Γ_W) (see tests/test_w_lv.py),
    times |V_ud|²; the τ integral is done by Gauss–Legendre in the Breit–Wigner variable
    y = arctan((ŝ − m_W²)/(m_W Γ_W)), independent of the VEGAS / phase-space machinery.
    """
    from sbihep.physics.pdf import PDF, parton_luminosity

    proc = get_process("w_lv", charge=1, m_ll_min=40.0)
    sm, sqrt_s = proc.sm, 13000.0
    xs = cross_section(proc, sqrt_s, order="linear", n_evaluations=6000, n_adapt=4, n_iterations=4, seed=2, progress=False)
    pdf = PDF.load()
    s_min, s_max = 40.0**2, sqrt_s**2
    m2, mg = sm.m_W**2, sm.m_W * sm.width_W
    y_lo, y_hi = math.atan((s_min - m2) / mg), math.atan((s_max - m2) / mg)
    nodes, weights = np.polynomial.legendre.leggauss(400)
    y = torch.from_numpy(0.5 * (y_hi - y_lo) * nodes + 0.5 * (y_hi + y_lo))
    s_hat = m2 + mg * torch.tan(y)
    jac = 0.5 * (y_hi - y_lo) * mg / torch.cos(y) ** 2  # ds/dy
    tau = s_hat / sqrt_s**2
    amp2 = (sm.g**2 / 2) ** 2 / ((s_hat - m2) ** 2 + mg**2)
    sigma_hat = s_hat * amp2 / (144 * math.pi) * GEV2_TO_PB
    total = torch.zeros_like(s_hat)
    for ch in proc.channels():
        lumi = parton_luminosity(pdf, ch.pid_a, ch.pid_b, tau, torch.sqrt(s_hat), n_points=96)
        total = total + ch.factor * lumi * sigma_hat
    reference = float((total * jac / sqrt_s**2 * torch.from_numpy(weights)).sum())  # dτ = ds/S
    value, error = xs({})
    assert abs(value - reference) < 4 * error, (value, error, reference)
    assert error < 0.01 * reference
