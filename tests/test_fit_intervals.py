"""Confidence sets from the likelihood, not from the grid (issue 18, item 1).

Exact references: a Gaussian measurement n ~ N(μ s, σ²) has −2ΔlnL = ((μ − μ̂)/σ_μ)², so the Wilks
interval is μ̂ ± z σ_μ; the double well d = θ² measured as 1 ± 0.1 has −2ΔlnL = ((θ² − 1)/0.1)² and
the set {|θ² − 1| < 0.1 z} = two intervals ±[√(1 − 0.1 z), √(1 + 0.1 z)].  Tests marked "old code"
fail on the grid-interpolating wilks_interval / single-basin profile_interval they replace.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from sbihep.errors import InvalidInputError
from sbihep.fit import GaussianTerm, Likelihood, minimize, profile_interval, profile_scan, smefit_term, wilks_interval
from sbihep.fit.confidence_set import ConfidenceSet, Interval
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"
MU_HAT, SIGMA_MU = 1.23, 0.117


def gaussian(mu_hat=MU_HAT, sigma=SIGMA_MU, bounds=(0.0, 3.0)) -> Likelihood:
    space = ParameterSpace([Parameter("mu", 0.0, bounds)])
    return Likelihood([GaussianTerm([mu_hat * 10.0], [[(10.0 * sigma) ** 2]], [0.0], space, linear={"mu": [10.0]})])


def double_well() -> Likelihood:
    space = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0))])
    return Likelihood([GaussianTerm([1.0], [[0.01]], [0.0], space, quadratic={"theta*theta": [1.0]})])


def assert_exact(cs, pieces, sigma, tol=1e-3):
    assert len(cs.intervals) == len(pieces), cs.describe()
    for iv, (lo, hi) in zip(cs.intervals, pieces):
        assert iv.low <= iv.high
        assert abs(iv.low - lo) < tol * sigma and abs(iv.high - hi) < tol * sigma, (cs.describe(), pieces)


def test_descending_grid_gives_an_ordered_exact_interval():
    """Old code: a descending 6-point grid gave an inverted interval, closed on both sides."""
    lik = gaussian()
    scan = profile_scan(lik, {"mu": np.linspace(3.0, 0.0, 6)})
    exact = [(MU_HAT - SIGMA_MU, MU_HAT + SIGMA_MU)]
    assert_exact(wilks_interval(scan, "mu", ONE_SIGMA), exact, SIGMA_MU)
    assert_exact(wilks_interval(scan, "mu", ONE_SIGMA, likelihood=lik), exact, SIGMA_MU)


def test_eleven_point_scan_has_the_true_width():
    """Old code: on a grid coarser than σ, linear interpolation around the nearest grid point gave a
    width far from the true 2σ (the issue's 0.082 against 0.234)."""
    lik = gaussian()
    scan = profile_scan(lik, {"mu": np.linspace(0.0, 3.0, 11)})
    for cs in (wilks_interval(scan, "mu", ONE_SIGMA), wilks_interval(scan, "mu", ONE_SIGMA, likelihood=lik)):
        assert cs.length == pytest.approx(2 * SIGMA_MU, abs=1e-3 * SIGMA_MU)
        assert cs.contains(MU_HAT) and cs.best == pytest.approx(MU_HAT, abs=1e-4)


def test_one_point_scan_is_refused_from_the_grid_and_exact_with_the_likelihood():
    """Old code: a 1-point scan returned the degenerate 'interval' [x, x]."""
    lik = gaussian()
    scan = profile_scan(lik, {"mu": [1.5]})
    with pytest.raises(InvalidInputError, match="likelihood="):
        wilks_interval(scan, "mu")
    cs = wilks_interval(scan, "mu", TWO_SIGMA, likelihood=lik)
    assert_exact(cs, [(MU_HAT - 2 * SIGMA_MU, MU_HAT + 2 * SIGMA_MU)], SIGMA_MU)
    assert cs.low_end == cs.high_end == "closed"


def test_grid_that_cannot_resolve_the_ends_is_refused():
    """A non-parabolic profile (double well) on a coarse grid: the error estimate refuses, never a silently
    wrong end; with the likelihood both pieces are exact."""
    lik = double_well()
    z = 1.0
    exact = [(-math.sqrt(1 + 0.1 * z), -math.sqrt(1 - 0.1 * z)), (math.sqrt(1 - 0.1 * z), math.sqrt(1 + 0.1 * z))]
    sigma = 0.05
    for n in (3, 6, 11, 101):
        scan = profile_scan(lik, {"theta": np.linspace(-1.5, 1.5, n)})
        try:
            cs = wilks_interval(scan, "theta", ONE_SIGMA)
        except InvalidInputError as exc:
            assert "cannot resolve" in str(exc) or "usable points" in str(exc)
        else:
            assert_exact(cs, exact, sigma)
        assert_exact(wilks_interval(scan, "theta", ONE_SIGMA, likelihood=lik), exact, sigma, tol=1e-5)


def opwb_likelihood() -> Likelihood:
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2))])
    term = smefit_term(["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"], DATA / "commondata", DATA / "theory", space,
                       eft_order="quadratic")
    return Likelihood([term])


def test_opwb_quadratic_95_set_has_both_intervals():
    """Old code: profile_interval gave the single interval [−0.013, 0.022] and missed [−0.179, −0.145]."""
    lik = opwb_likelihood()
    nll = lambda x: lik.nll({"OpWB": x})  # noqa: E731  OpWB is the only parameter: the profile is exact
    mins = [optimize.minimize_scalar(nll, bounds=b, method="bounded", options={"xatol": 1e-10})
            for b in ((-0.25, -0.08), (-0.08, 0.1))]
    f_min = min(m.fun for m in mins)
    t = stats.chi2.ppf(0.95, 1)
    q = lambda x: 2 * (nll(x) - f_min) - t  # noqa: E731
    x1, x2 = mins[0].x, mins[1].x
    x_max = optimize.minimize_scalar(lambda x: -nll(x), bounds=(x1, x2), method="bounded").x
    exact = [(optimize.brentq(q, -0.3, x1), optimize.brentq(q, x1, x_max)),
             (optimize.brentq(q, x_max, x2), optimize.brentq(q, x2, 0.2))]
    cs = profile_interval(lik, "OpWB", 0.95)
    assert isinstance(cs, ConfidenceSet) and not cs.is_connected
    assert_exact(cs, exact, 0.01, tol=1e-4)
    assert sorted(cs.minima) == pytest.approx(sorted([x1, x2]), abs=1e-4)
    assert cs.contains(-0.16) and cs.contains(0.0) and not cs.contains(-0.08)
    assert [round(e, 3) for iv in cs for e in (iv.low, iv.high)] == [-0.179, -0.145, -0.013, 0.022]
    scan = profile_scan(lik, {"OpWB": np.linspace(-0.3, 0.1, 11)})
    assert_exact(wilks_interval(scan, cl=0.95, likelihood=lik), exact, 0.01, tol=1e-4)


def test_end_kinds_bound_and_open():
    lik = gaussian(mu_hat=0.2, sigma=0.5)
    cs = profile_interval(lik, "mu", ONE_SIGMA)
    assert cs.low == 0.0 and cs.low_end == "bound" and not cs.low_closed
    assert cs.high == pytest.approx(0.7, abs=1e-6) and cs.high_end == "closed" and cs.high_closed
    scan = profile_scan(lik, {"mu": np.linspace(0.0, 0.5, 26)})
    grid = wilks_interval(scan, "mu", ONE_SIGMA)
    assert grid.low_end == "bound" and grid.high_end == "open" and grid.high == 0.5
    assert "|[" in grid.describe() and "≥)" in grid.describe()


def test_confidence_set_api_and_backward_compatible_fields():
    a = Interval("x", 0.0, -1.0, -0.5, 0.68, low_end="bound")
    b = Interval("x", 0.0, -0.1, 0.2, 0.68)
    cs = ConfidenceSet("x", 0.0, (b, a), 0.68, "test")
    assert cs.intervals == (a, b) and cs.low == -1.0 and cs.high == 0.2
    assert cs.low_end == "bound" and not cs.low_closed and cs.high_closed
    assert cs.length == pytest.approx(0.8) and cs.hull.length == pytest.approx(1.2)
    assert list(cs.contains(np.array([-0.7, -0.3, 0.0]))) == [True, False, True]
    assert not a.low_closed and a.low_end == "bound"
    old_style = Interval("x", 0.0, -1.0, 1.0, 0.68, False, True, "neyman")  # positional, as neyman.py builds it
    assert old_style.low_end == "open" and old_style.high_end == "closed"
    with pytest.raises(InvalidInputError, match="overlap"):
        ConfidenceSet("x", 0.0, (a, Interval("x", 0.0, -0.6, 0.0, 0.68)), 0.68)
    with pytest.raises(InvalidInputError, match="low"):
        Interval("x", 0.0, 1.0, 0.5, 0.68)


def test_auto_grid_contains_the_best_fit_and_crosses_the_threshold():
    lik = gaussian()
    scan = profile_scan(lik, {"mu": "auto"})
    x = scan["mu"].values
    assert np.any(x == float(scan["best_fit"].sel(parameter="mu")))
    q = scan["twice_delta_nll"].values
    assert q[0] > stats.chi2.ppf(0.9973, 1) and q[-1] > stats.chi2.ppf(0.9973, 1)
    assert_exact(wilks_interval(scan, "mu", TWO_SIGMA), [(MU_HAT - 2 * SIGMA_MU, MU_HAT + 2 * SIGMA_MU)], SIGMA_MU)


def ellipse_likelihood():
    a = np.array([[1.0, 0.5], [0.3, 1.0], [1.0, -1.0]])
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
    data = a @ np.array([0.3, -0.2]) + np.array([0.05, -0.1, 0.08])
    space = ParameterSpace([Parameter("c1", 0.0, (-3, 3)), Parameter("c2", 0.0, (-3, 3))])
    lik = Likelihood([GaussianTerm(data, cov, [0.0, 0.0, 0.0], space, linear={"c1": a[:, 0], "c2": a[:, 1]})])
    cinv = np.linalg.inv(cov)
    v = np.linalg.inv(a.T @ cinv @ a)
    return lik, v @ a.T @ cinv @ data, v


def test_2d_contours_refined_by_root_finding_and_coarse_grid_warned():
    from sbihep.fit import GridResolutionWarning, wilks_contours

    lik, best, v = ellipse_likelihood()
    half = 3.8 * np.sqrt(np.diag(v))
    scan = profile_scan(lik, {"c1": np.linspace(best[0] - half[0], best[0] + half[0], 9),
                              "c2": np.linspace(best[1] - half[1], best[1] + half[1], 9)})
    with pytest.warns(GridResolutionWarning, match="likelihood="):
        wilks_contours(scan, (ONE_SIGMA,))
    refined = wilks_contours(scan, (ONE_SIGMA, 0.95), likelihood=lik)
    for cl, lines in refined.items():
        assert len(lines) == 1
        pts = lines[0] - best
        r2 = np.einsum("ki,ij,kj->k", pts, np.linalg.inv(v), pts)
        assert np.allclose(r2, stats.chi2.ppf(cl, 2), rtol=1e-6)


def test_2d_disjoint_regions_are_separate_contours_on_the_exact_level():
    from sbihep.fit import wilks_contours

    space = ParameterSpace([Parameter("a", 0.0, (-3, 3)), Parameter("b", 0.0, (-3, 3))])
    lik = Likelihood([GaussianTerm([1.0, 0.0], np.diag([0.01, 0.01]), [0.0, 0.0], space,
                                   linear={"b": [0.0, 1.0]}, quadratic={"a*a": [1.0, 0.0]})])
    scan = profile_scan(lik, {"a": np.linspace(-1.5, 1.5, 31), "b": np.linspace(-0.5, 0.5, 21)})
    lines = wilks_contours(scan, (ONE_SIGMA,), likelihood=lik)[ONE_SIGMA]
    assert len(lines) == 2 and sorted(np.sign(line[:, 0].mean()) for line in lines) == [-1.0, 1.0]
    for line in lines:
        q = ((line[:, 0] ** 2 - 1) / 0.1) ** 2 + (line[:, 1] / 0.1) ** 2
        assert np.allclose(q, stats.chi2.ppf(ONE_SIGMA, 2), rtol=1e-6)


def test_2d_auto_grid_contains_the_region():
    lik, best, v = ellipse_likelihood()
    scan = profile_scan(lik, {"c1": "auto", "c2": "auto"})
    q = scan["twice_delta_nll"].values
    t = stats.chi2.ppf(0.9973, 2)
    assert min(q[0].min(), q[-1].min(), q[:, 0].min(), q[:, -1].min()) > t
    assert np.any(np.isclose(scan["c1"].values, scan["best_fit"].sel(parameter="c1").item(), rtol=0, atol=0))


def test_cli_rows_print_every_piece(monkeypatch):
    """Old code: the CLI printed one interval of a two-basin likelihood (and impossible ones from coarse grids)."""
    import sbihep.fit.run as run_module

    monkeypatch.setattr(run_module, "build_likelihood", lambda config, base: double_well())
    ds, rows = run_module.run_config({"model": {}, "scan": {"theta": {"low": -1.5, "high": 1.5, "points": 6}}})
    text = run_module.summary_table(rows)
    wilks = [r for r in rows if r[3].startswith("Wilks")]
    assert len(wilks) == 2 and all(" ∪ " in r[4] for r in wilks)
    assert "Wilks 68.3%" in text and "[-1.049, -0.9487] ∪ [0.9487, 1.049]" in text
    ends = ds.attrs["wilks_68.3_theta"]
    assert len(ends) == 4 and np.all(np.diff(ends) > 0)
    assert ds.attrs["wilks_68.3_theta_ends"] == "closed,closed,closed,closed"


def test_outward_search_finds_a_basin_it_was_not_told_about():
    """Two minima joined below the threshold (barrier q(0) = 4 < 15.1): without the basin search the
    outward walk from one minimum falls into the other, which is then polished and added."""
    space = ParameterSpace([Parameter("theta", 0.9, (-5.0, 5.0))])
    lik = Likelihood([GaussianTerm([1.0], [[0.25]], [0.0], space, quadratic={"theta*theta": [1.0]})])
    cl = 0.9999
    c = math.sqrt(1 + 0.5 * math.sqrt(stats.chi2.ppf(cl, 1)))
    cs = profile_interval(lik, "theta", cl, find_basins=False)
    assert_exact(cs, [(-c, c)], 0.25, tol=1e-5)
    assert sorted(cs.minima) == pytest.approx([-1.0, 1.0], abs=1e-3)
