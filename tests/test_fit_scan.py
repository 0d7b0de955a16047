"""Profile scans: structure of the Dataset, worker-independence, netCDF round trip, plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from sbihep.fit import GaussianTerm, Likelihood, minimize, plot_contours_2d, plot_scan_1d, profile_scan  # noqa: E402
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace  # noqa: E402


def two_poi_with_nuisance():
    """Two POIs and a constrained nuisance shifting both measurements (quadratic in c1)."""
    space = ParameterSpace([
        Parameter("c1", 0.0, (-3, 3)),
        Parameter("c2", 0.0, (-3, 3)),
        Parameter("n", 0.0, (-5, 5), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0)),
    ])
    term = GaussianTerm([1.1, 0.7, 0.2], np.diag([0.04, 0.09, 0.05]), [1.0, 0.5, 0.3], space,
                        linear={"c1": [0.5, 0.1, -0.2], "c2": [0.2, 0.6, 0.1], "n": [0.05, 0.05, 0.0]},
                        quadratic={"c1*c1": [0.1, 0.0, 0.05]})
    return Likelihood([term])


def test_2d_scan_dataset_and_profiling():
    lik = two_poi_with_nuisance()
    grid = {"c1": np.linspace(-0.5, 1.0, 7), "c2": np.linspace(-0.5, 1.0, 6)}
    ds = profile_scan(lik, grid)
    assert ds["twice_delta_nll"].dims == ("c1", "c2") and ds["profiled"].dims == ("c1", "c2", "parameter")
    assert bool(ds["converged"].all()) and ds.attrs["improved_minimum"] == 0
    assert float(ds["twice_delta_nll"].min()) >= 0.0
    # scanned parameters are pinned at the grid values
    assert np.allclose(ds["profiled"].sel(parameter="c1"), ds["c1"].broadcast_like(ds["twice_delta_nll"]))
    # each profiled nuisance is the minimum along its own axis at fixed (c1, c2)
    c1, c2 = float(ds["c1"][2]), float(ds["c2"][3])
    n_hat = float(ds["profiled"].sel(c1=c1, c2=c2, parameter="n"))
    f = lambda n: lik.nll({"c1": c1, "c2": c2, "n": n})  # noqa: E731
    assert f(n_hat) <= min(f(n_hat + 1e-2), f(n_hat - 1e-2))
    # a fit with c1, c2 fixed gives the same profiled −lnL
    prof = minimize(lik, fixed={"c1": c1, "c2": c2})
    assert float(ds["nll"].sel(c1=c1, c2=c2)) == pytest.approx(prof.nll, abs=1e-6)


def test_scan_independent_of_workers_and_netcdf_round_trip(tmp_path):
    lik = two_poi_with_nuisance()
    grid = {"c1": np.linspace(-0.5, 1.0, 9)}
    one = profile_scan(lik, grid, n_workers=1)
    two = profile_scan(lik, grid, n_workers=2, best_fit=minimize(lik))
    assert np.allclose(one["twice_delta_nll"], two["twice_delta_nll"], atol=1e-6)
    path = tmp_path / "scan.nc"
    one.to_netcdf(path)
    back = xr.load_dataset(path)
    assert np.array_equal(back["twice_delta_nll"].values, one["twice_delta_nll"].values)


def test_plots_return_figures():
    lik = two_poi_with_nuisance()
    scan1 = profile_scan(lik, {"c1": np.linspace(-0.5, 1.0, 11)})
    fig = plot_scan_1d(scan1)
    assert fig.axes[0].get_xlabel() == "c1"
    fit = minimize(lik)
    scan2 = profile_scan(lik, {"c1": np.linspace(-1.0, 1.5, 21), "c2": np.linspace(-1.0, 1.5, 21)}, best_fit=fit)
    fig2 = plot_contours_2d(scan2)
    assert len(fig2.axes[0].lines) >= 3  # two contour levels and the best-fit marker
    # overlay: a second result on the same axes, in its own colour and labels
    n_lines = len(fig2.axes[0].lines)
    plot_contours_2d(scan2, ax=fig2.axes[0], color="C3", label="other")
    ax = fig2.axes[0]
    assert len(ax.lines) == 2 * n_lines
    assert {line.get_color() for line in ax.lines[n_lines:]} == {"C3"}
    assert "other 68.3% CL" in [t.get_text() for t in ax.get_legend().get_texts()]


class _TiltedDoubleWell:
    """−ln L = (ν² − 1)² − μν + 2(μ − 0.8)²: for each μ two branches ν ≈ ±1 of conditional minima; the
    ν > 0 branch is the lower one for μ > 0 and ceases to exist for μ < −1.54 (and the ν < 0 one for μ > 1.54)."""

    def __init__(self):
        self.parameters = ParameterSpace([Parameter("mu", 0.0, (-3, 3)), Parameter("nu", 0.5, (-3, 3), kind="nuisance")])

    def nll(self, theta):
        mu, nu = theta["mu"], theta["nu"]
        return (nu**2 - 1) ** 2 - mu * nu + 2 * (mu - 0.8) ** 2


def test_conditional_fits_warm_start_from_the_free_fit_too():
    """Old code (neighbour-only warm starts): a scan from μ = −2.5 slides onto the ν < 0 branch and
    follows it into μ > 0, where it is only a local minimum."""
    lik = Likelihood([_TiltedDoubleWell()])
    grid = {"mu": np.linspace(-2.5, 1.2, 16)}
    ds = profile_scan(lik, grid, tolerance=1e-4)
    nus = np.linspace(-3, 3, 601)
    for mu in grid["mu"]:
        nu0 = nus[np.argmin([lik.nll({"mu": mu, "nu": nu}) for nu in nus])]
        brute = optimize_nll(lik, mu, nu0)
        assert float(ds["nll"].sel(mu=mu)) == pytest.approx(brute, abs=1e-6), mu
    assert ds.attrs["n_second_start_won"] > 0


def optimize_nll(lik, mu, nu0):
    from scipy import optimize

    return float(optimize.minimize_scalar(lambda nu: lik.nll({"mu": mu, "nu": nu}), bracket=(nu0 - 0.05, nu0 + 0.05)).fun)


class _ConditionalDoubleWell:
    """−lnL = (μ − 2)²/2 + (ν² − 1)² + 2(μ − 1)ν: one free minimum (ν < 0), but at fixed μ < 1 the
    ν < 0 valley is only a local minimum — the conditional minimum is at ν > 0."""

    parameters = ParameterSpace([Parameter("mu", 1.0, (0.0, 10.0), kind="poi"),
                                 Parameter("nu", 0.0, (-3.0, 3.0), kind="nuisance")])

    def nll(self, theta):
        mu, nu = theta["mu"], theta["nu"]
        return 0.5 * (mu - 2.0) ** 2 + (nu**2 - 1.0) ** 2 + 2.0 * (mu - 1.0) * nu


@pytest.mark.parametrize("n_workers", [1, 2])
def test_first_scan_point_is_also_started_from_the_start_point(n_workers):
    """A user grid that starts where the free fit's valley is only a local conditional minimum: from the
    free fit alone the scan followed that valley (−lnL 2.05 instead of 0.069 at μ = 0.5, no warning)."""
    lik = Likelihood([_ConditionalDoubleWell()])
    grid = np.array([0.5, 0.6, 0.7, 0.8])
    nu = np.linspace(-3, 3, 600001)
    exact = [float(np.min(0.5 * (m - 2) ** 2 + (nu**2 - 1) ** 2 + 2 * (m - 1) * nu)) for m in grid]
    ds = profile_scan(lik, {"mu": grid}, n_workers=n_workers)
    np.testing.assert_allclose(ds["nll"].values, exact, atol=1e-5)
