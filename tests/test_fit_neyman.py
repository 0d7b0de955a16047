"""Neyman constructions on a Gaussian measurement, where the answers are known analytically.

- Unbounded mean: t(μ) = (x − μ)² is exactly χ²₁ distributed, so the toy critical values are
  χ²₁⁻¹(cl) and the Neyman interval is x ± z σ (the Wilks interval, exact here).
- Mean bounded at μ ≥ 0: the profile-likelihood-ratio ordering is Feldman & Cousins'
  (arXiv:physics/9711021, Sec. IV.B).  With σ = 1: t(x; μ) = (x − μ)² for x ≥ 0 and μ² − 2xμ for
  x < 0; its acceptance region at μ is [x_L, μ + √c] with x_L = μ − √c if μ ≥ √c, else
  (μ² − c)/(2μ); c(μ) solves Φ(√c) − Φ(x_L − μ) = cl.  Derived here by hand, not from the code.
"""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from sbihep.errors import InvalidInputError
from sbihep.fit import GaussianTerm, Likelihood
from sbihep.fit.intervals import ONE_SIGMA
from sbihep.fit.neyman import critical_value, neyman_belt, neyman_contours, neyman_expected, neyman_interval, neyman_region
from sbihep.params import Parameter, ParameterSpace


def gaussian(x_obs: float, low: float) -> Likelihood:
    space = ParameterSpace([Parameter("mu", 0.0, (low, 10.0))])
    return Likelihood([GaussianTerm([x_obs], [[1.0]], [0.0], space, linear={"mu": [1.0]})])


def fc_critical(mu: float, cl: float) -> float:
    def coverage(c: float) -> float:
        r = math.sqrt(c)
        if mu == 0:
            return stats.norm.cdf(r) - cl
        x_low = mu - r if mu >= r else (mu * mu - c) / (2 * mu)
        return stats.norm.cdf(r) - stats.norm.cdf(x_low - mu) - cl

    return optimize.brentq(coverage, 1e-9, 50.0)


def fc_interval(x: float, cl: float) -> tuple[float, float]:
    mus = np.linspace(0.0, 5.0, 5001)
    t = np.where(x >= 0, (x - mus) ** 2, mus**2 - 2 * x * mus)
    accepted = mus[t <= np.array([fc_critical(m, cl) for m in mus])]
    return float(accepted.min()), float(accepted.max())


def test_unbounded_gaussian_neyman_equals_exact_interval():
    lik = gaussian(0.4, -10.0)
    belt = neyman_belt(lik, {"mu": np.linspace(-2.0, 3.0, 11)}, n_toys=300, cls=(ONE_SIGMA,), seed=3)
    crit = belt["critical_value"].sel(cl=ONE_SIGMA).values
    # quantile of 300 χ²₁ draws at 68%: standard error ≈ 0.1
    assert np.all(np.abs(crit - 1.0) < 0.35)
    assert abs(crit.mean() - 1.0) < 0.12
    iv = neyman_interval(lik, belt, ONE_SIGMA)
    assert iv.method == "neyman" and iv.low_closed and iv.high_closed
    assert iv.low == pytest.approx(-0.6, abs=0.15) and iv.high == pytest.approx(1.4, abs=0.15)
    assert int(belt["n_failed"].sum()) == 0
    assert belt["statistic"].dims == ("mu", "toy")


def test_bounded_gaussian_neyman_is_feldman_cousins():
    lik = gaussian(0.3, 0.0)
    grid = np.linspace(0.0, 2.4, 9)
    belt = neyman_belt(lik, {"mu": grid}, n_toys=400, cls=(ONE_SIGMA,), seed=5)
    crit = belt["critical_value"].sel(cl=ONE_SIGMA).values
    exact = np.array([fc_critical(m, ONE_SIGMA) for m in grid])
    assert exact[0] < 0.25 and exact[-1] == pytest.approx(1.0, abs=0.01)  # sanity of the derivation
    assert np.all(np.abs(crit - exact) < 0.35)
    iv = neyman_interval(lik, belt, ONE_SIGMA)
    low, high = fc_interval(0.3, ONE_SIGMA)
    assert low == 0.0 and not iv.low_closed and iv.low == 0.0
    assert iv.high == pytest.approx(high, abs=0.15)


def test_expected_intervals_and_workers_agree():
    lik = gaussian(0.0, -10.0)
    grid = {"mu": np.linspace(-2.5, 2.5, 11)}
    belt1 = neyman_belt(lik, grid, n_toys=20, seed=1, n_workers=1)
    belt2 = neyman_belt(lik, grid, n_toys=20, seed=1, n_workers=2)
    np.testing.assert_array_equal(belt1["statistic"].values, belt2["statistic"].values)
    exp = neyman_expected(lik, belt1, {"mu": 0.0}, ONE_SIGMA, n_toys=8, seed=2)
    assert exp["asimov"].sel(end="low") < 0 < exp["asimov"].sel(end="high")
    band = exp["band"].sel(end="high").values
    assert np.all(np.diff(band) >= 0) and exp["toy_ends"].shape == (8, 2)
    assert critical_value(belt1, {"mu": 0.25}, ONE_SIGMA) == pytest.approx(
        0.5 * (float(belt1["critical_value"].sel(mu=0.0, cl=ONE_SIGMA)) + float(belt1["critical_value"].sel(mu=0.5, cl=ONE_SIGMA))))


def test_bad_arguments_are_named():
    lik = gaussian(0.0, -10.0)
    with pytest.raises(InvalidInputError, match="n_toys"):
        neyman_belt(lik, {"mu": [0.0]}, n_toys=0)
    with pytest.raises(InvalidInputError, match="cl"):
        neyman_belt(lik, {"mu": [0.0]}, n_toys=2, cls=(1.5,))
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        neyman_belt(lik, {"nu": [0.0]}, n_toys=2)


def test_two_dimensional_neyman_region_of_a_bivariate_gaussian():
    """x ~ N((μ₁, μ₂), 1): t(μ) = |x − μ|² is exactly χ²₂, so the 68.27% Neyman region is the disc
    |μ − x|² ≤ χ²₂⁻¹(0.6827) = 2.30 (radius 1.515) — checked through the toy critical values, the accepted
    grid cells, the area and the contour."""
    space = ParameterSpace([Parameter("a", 0.0, (-5.0, 5.0)), Parameter("b", 0.0, (-5.0, 5.0))])
    x_obs = np.array([0.3, -0.2])
    lik = Likelihood([GaussianTerm(x_obs, np.eye(2), [0.0, 0.0], space, linear={"a": [1.0, 0.0], "b": [0.0, 1.0]})])
    axis = np.linspace(-2.4, 2.4, 7)
    belt = neyman_belt(lik, {"a": axis, "b": axis}, n_toys=150, cls=(ONE_SIGMA,), seed=4)
    crit = belt["critical_value"].sel(cl=ONE_SIGMA)
    exact = stats.chi2.ppf(ONE_SIGMA, 2)
    assert abs(float(crit.mean()) - exact) < 0.2 and float(crit.std()) < 0.6
    region = neyman_region(lik, belt, ONE_SIGMA)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    r2 = (a - x_obs[0]) ** 2 + (b - x_obs[1]) ** 2
    clear = np.abs(r2 - exact) > 0.8  # cells not within the toys' scatter of the boundary
    assert np.array_equal(region["accepted"].values[clear], (r2 <= exact)[clear])
    # cell-counting estimate: 0.8-wide cells on a 1.5-radius disc
    assert region.attrs["area"] == pytest.approx(float(np.sum(r2 <= exact)) * 0.8**2, abs=2 * 0.8**2)
    (line,) = neyman_contours(region)
    radius = np.hypot(line[:, 0] - x_obs[0], line[:, 1] - x_obs[1])
    assert np.all(np.abs(radius - math.sqrt(exact)) < 0.25)
    with pytest.raises(InvalidInputError, match="cl"):
        neyman_region(lik, belt, 0.9)


def test_a_two_point_grid_gives_the_interval_by_root_finding():
    """Old behaviour (a bug): ends read off grid points only, so a grid coarser than the interval
    raised an error.  Now the best fit seeds the search and the ends are roots of t_obs − c."""
    lik = gaussian(0.45, -10.0)  # best fit 0.45, 68% interval [−0.55, 1.45]; the only grid points are ±3
    belt = neyman_belt(lik, {"mu": np.array([-3.0, 3.0])}, n_toys=50, cls=(ONE_SIGMA,), seed=2)
    belt["critical_value"][:] = 1.0  # the exact χ²₁ 68.27% quantile
    iv = neyman_interval(lik, belt, ONE_SIGMA)
    assert iv.low_closed and iv.high_closed
    assert iv.low == pytest.approx(-0.55, abs=1e-4) and iv.high == pytest.approx(1.45, abs=1e-4)
    far = neyman_belt(lik, {"mu": np.array([2.0, 3.0])}, n_toys=5, cls=(ONE_SIGMA,), seed=2)
    far["critical_value"][:] = 1.0
    with pytest.raises(InvalidInputError, match="does not reach the interval"):
        neyman_interval(lik, far, ONE_SIGMA)


def test_merge_pieces_joins_touching_runs_and_keeps_the_outer_ends():
    """Two accepted runs whose root-found ends met are one piece; a piece inside another changes nothing."""
    from sbihep.fit.confidence_set import Interval, merge_pieces

    a = Interval("mu", 0.5, 0.0, 1.0, 0.68, method="neyman", low_end="bound", high_end="closed")
    b = Interval("mu", 1.5, 1.0, 2.0, 0.68, method="neyman", low_end="closed", high_end="open")
    inner = Interval("mu", 0.5, 0.2, 0.4, 0.68, method="neyman", low_end="closed", high_end="closed")
    far = Interval("mu", 3.5, 3.0, 4.0, 0.68, method="neyman")
    out = merge_pieces([far, b, inner, a])
    assert [(iv.low, iv.high, iv.low_end, iv.high_end) for iv in out] == [(0.0, 2.0, "bound", "open"), (3.0, 4.0, "closed", "closed")]
