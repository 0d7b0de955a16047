"""Exact answers on Gaussian models where every interval is known in closed form.

Model: one count n ~ N(μ·s + b, σ²) with an auxiliary measurement b ~ N(b₀, σ_b²).  Profiling b
leaves a Gaussian in μ with μ̂ = (n − b₀)/s and σ_μ = √(σ² + σ_b²)/s, so
- Wilks intervals: μ̂ ± z σ_μ (z = 1, 2 for 68.27 %, 95.45 %);
- asymptotic CLs (Cowan et al., arXiv:1007.1727; exact here because the model is Gaussian):
  CLs(μ) = [1 − Φ((μ − μ̂)/σ_μ)] / Φ(μ̂/σ_μ), so μ_up = μ̂ + σ_μ Φ⁻¹(1 − α Φ(μ̂/σ_μ));
  expected at N σ: μ_up(N) = σ_μ [N + Φ⁻¹(1 − α Φ(N))].
Two POIs with a correlated bivariate Gaussian measurement give elliptical contours:
−2ΔlnL = Δθᵀ V⁻¹ Δθ, with V = (AᵀC⁻¹A)⁻¹ for predictions t = Aθ.
"""

import math

import numpy as np
import pytest
from scipy import stats

from sbihep.fit import (
    GaussianTerm,
    Likelihood,
    cls_upper_limit,
    minimize,
    profile_interval,
    profile_scan,
    wilks_contours,
    wilks_interval,
)
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

S, B0, SIGMA, SIGMA_B = 10.0, 50.0, 5.0, 3.0
SIGMA_MU = math.sqrt(SIGMA**2 + SIGMA_B**2) / S


def counting(n: float) -> Likelihood:
    space = ParameterSpace(
        [
            Parameter("mu", 0.0, (0.0, 10.0)),
            Parameter("b", B0, (20.0, 80.0), kind="nuisance", constraint=GaussianConstraint(B0, SIGMA_B)),
        ]
    )
    term = GaussianTerm([n], [[SIGMA**2]], [0.0], space, linear={"mu": [S], "b": [1.0]})
    return Likelihood([term])


def test_constraint_added_automatically_and_best_fit_exact():
    lik = counting(62.0)
    assert [type(t).__name__ for t in lik.terms] == ["GaussianTerm", "ConstraintTerm"]
    fit = minimize(lik, n_starts=3, tolerance=1e-4)
    assert fit.converged and fit.n_agree == 3
    # MIGRAD stops at EDM < 0.002·tol·0.5 = 1e-7, i.e. |Δμ| ≲ σ_μ·√(2·EDM) ≈ 3e-4
    assert fit.values["mu"] == pytest.approx(1.2, abs=1e-4)
    assert fit.values["b"] == pytest.approx(B0, abs=1e-3)
    assert fit.errors["mu"] == pytest.approx(SIGMA_MU, rel=1e-4)
    ds = fit.to_dataset()
    assert list(ds["parameter"].values) == ["mu", "b"] and ds.attrs["converged"] == 1


def test_gradient_matches_finite_differences():
    lik = counting(62.0)
    theta = {"mu": 0.7, "b": 47.0}
    g = lik.grad(theta)
    for name, h in (("mu", 1e-6), ("b", 1e-5)):
        up = lik.nll({**theta, name: theta[name] + h})
        down = lik.nll({**theta, name: theta[name] - h})
        assert g[name] == pytest.approx((up - down) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("cl, z", [(ONE_SIGMA, 1.0), (TWO_SIGMA, 2.0)])
def test_wilks_interval_profile_exact(cl, z):
    iv = profile_interval(counting(62.0), "mu", cl, tolerance=1e-4)
    assert iv.low_closed and iv.high_closed
    assert iv.low == pytest.approx(1.2 - z * SIGMA_MU, abs=1e-5)
    assert iv.high == pytest.approx(1.2 + z * SIGMA_MU, abs=1e-5)


def test_wilks_interval_from_scan_and_open_end():
    lik = counting(62.0)
    scan = profile_scan(lik, {"mu": np.linspace(0.0, 3.0, 301)})
    assert set(scan.data_vars) >= {"twice_delta_nll", "nll", "profiled", "converged", "edm", "best_fit"}
    assert scan["profiled"].dims == ("mu", "parameter") and bool(scan["converged"].all())
    # profiled b at fixed μ is the weighted mean of the two measurements of b
    mu = 2.0
    b_expected = ((62.0 - mu * S) / SIGMA**2 + B0 / SIGMA_B**2) / (1 / SIGMA**2 + 1 / SIGMA_B**2)
    assert float(scan["profiled"].sel(mu=mu, parameter="b")) == pytest.approx(b_expected, abs=1e-3)
    iv = wilks_interval(scan, "mu", ONE_SIGMA)
    # linear interpolation on a 0.01 grid of a parabola: error ≤ grid²/(8 σ) ≈ 2e-5
    assert iv.low == pytest.approx(1.2 - SIGMA_MU, abs=1e-4) and iv.high == pytest.approx(1.2 + SIGMA_MU, abs=1e-4)
    # at 99.99 % the lower end would be below μ = 0: the interval is open there
    wide = wilks_interval(scan, "mu", 0.9999)
    assert not wide.low_closed and wide.low == 0.0


@pytest.mark.parametrize("n", [62.0, 55.0, 45.0])  # μ̂ = 1.2, 0.5, and −0.5 (clipped to the bound 0)
def test_cls_upper_limit_exact(n):
    alpha = 0.05
    ul = cls_upper_limit(counting(n), "mu", tolerance=1e-4)
    mu_hat = (n - B0) / S
    expected_obs = mu_hat + SIGMA_MU * stats.norm.ppf(1 - alpha * stats.norm.cdf(mu_hat / SIGMA_MU))
    assert ul.observed == pytest.approx(expected_obs, rel=1e-4)
    for N in (-2, -1, 0, 1, 2):
        exact = SIGMA_MU * (N + stats.norm.ppf(1 - alpha * stats.norm.cdf(N)))
        assert ul.expected[N] == pytest.approx(exact, rel=1e-4)
    assert ul.expected[-2] < ul.expected[0] < ul.expected[2]


def test_two_poi_contours_are_ellipses():
    a = np.array([[1.0, 0.5], [0.3, 1.0], [1.0, -1.0]])  # t = A θ for three measurements
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
    truth = np.array([0.3, -0.2])
    data = a @ truth + np.array([0.05, -0.1, 0.08])
    space = ParameterSpace([Parameter("c1", 0.0, (-3, 3)), Parameter("c2", 0.0, (-3, 3))])
    lik = Likelihood([GaussianTerm(data, cov, [0.0, 0.0, 0.0], space, linear={"c1": a[:, 0], "c2": a[:, 1]})])
    cinv = np.linalg.inv(cov)
    v = np.linalg.inv(a.T @ cinv @ a)
    best = v @ a.T @ cinv @ data
    fit = minimize(lik, tolerance=1e-4)
    assert [fit.values["c1"], fit.values["c2"]] == pytest.approx(best.tolist(), abs=1e-4)
    assert fit.covariance == pytest.approx(v, rel=1e-3)
    half = 3.5 * np.sqrt(np.diag(v))
    scan = profile_scan(lik, {"c1": np.linspace(best[0] - half[0], best[0] + half[0], 41),
                              "c2": np.linspace(best[1] - half[1], best[1] + half[1], 41)}, best_fit=fit)
    assert scan["twice_delta_nll"].dims == ("c1", "c2")
    # the scan is exactly the quadratic form (no nuisances to profile)
    x, y = np.meshgrid(scan["c1"].values, scan["c2"].values, indexing="ij")
    d = np.stack([x - best[0], y - best[1]], axis=-1)
    quad = np.einsum("...i,ij,...j->...", d, np.linalg.inv(v), d)
    assert np.allclose(scan["twice_delta_nll"].values, quad, atol=1e-6)
    contours = wilks_contours(scan, (ONE_SIGMA, 0.95))
    for cl, lines in contours.items():
        assert len(lines) == 1
        pts = lines[0] - best
        level = np.einsum("ki,ij,kj->k", pts, np.linalg.inv(v), pts)
        # contour points come from linear interpolation on the grid: ~1 % on the level
        assert np.allclose(level, stats.chi2.ppf(cl, 2), rtol=0.02)
