"""The main demo (sbihep.demo) at quick size: outputs, the netCDF layout, and the three expected regions
against closed forms (Asimov −2ΔlnL of the exact and the binned extended likelihoods) and in the required order."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from sbihep.demo import METHODS, POIS, DemoSettings, _equal_count_edges, contour_area, run_demo, split_events
from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet

torch.set_num_threads(1)

LEVEL_95 = 5.991464547107979  # χ²₂⁻¹(0.95)


def _asimov_q(w_theta: np.ndarray, w_sm: np.ndarray, lumi_ifb: float) -> np.ndarray:
    """Closed form of the Asimov −2ΔlnL of an extended Poisson likelihood whose data are the expected SM
    counts n = 1000·L·w(SM): 2·1000·L·Σ [w(θ) − w(SM) − w(SM) ln(w(θ)/w(SM))] over the last axis."""
    return 2000.0 * lumi_ifb * np.sum(w_theta - w_sm - w_sm * np.log(w_theta / w_sm), axis=-1)


def test_contour_area_of_an_ellipse():
    a, b = 0.3, 2.0
    x, y = np.linspace(-1.5, 1.5, 41), np.linspace(-9.0, 9.0, 31)
    q = xr.DataArray((x[:, None] / a) ** 2 + (y[None, :] / b) ** 2, dims=("cHW", "cHWtil"), coords={"cHW": x, "cHWtil": y})
    assert contour_area(q) == pytest.approx(np.pi * a * b * LEVEL_95, rel=2e-3)
    assert contour_area(q, level=1.0) == pytest.approx(np.pi * a * b, rel=5e-3)
    with pytest.raises(InvalidInputError, match="edge"):
        contour_area(q, level=30.0)  # the ellipse no longer fits in the grid
    with pytest.raises(ShapeError):
        contour_area(q.isel(cHW=0))


def test_settings_are_checked():
    with pytest.raises(InvalidInputError, match="fractions"):
        DemoSettings(fractions=(0.5, 0.6)).check()
    with pytest.raises(InvalidInputError, match="histogram"):
        DemoSettings(histogram="pt(nonsense)").check()
    with pytest.raises(InvalidInputError, match="n_events"):
        run_demo("unused", n_events=10, echo=None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines = []
    result = run_demo(out, quick=True, seed=0, progress=False, cross_section=False, echo=lines.append)
    return out, result, "\n".join(lines)


def test_outputs_exist_and_are_reported(demo):
    out, result, text = demo
    for name, file in (("events", "wh_events.nc"), ("cp_odd_plot", "wh_cp_odd_angle.png"), ("constraints", "wh_constraints.nc"),
                       ("contour_plot", "wh_constraints.png"), ("estimator", "wh_quadratic_eft_estimator")):
        assert result.paths[name] == (out / file).resolve() and (out / file).exists()
        assert str(result.paths[name]) in text  # the demo says where its outputs went
    assert (out / "wh_constraints.png").stat().st_size > 20_000 and (out / "wh_cp_odd_angle.png").stat().st_size > 10_000
    config = json.loads((out / "wh_quadratic_eft_estimator" / "config.json").read_text())
    assert config["kind"] == "quadratic_eft" and "sbihep_version" in config
    assert "asymmetry" in text and "information limit" in text and "larger than the information limit" in text


def test_netcdf_layout(demo):
    out, result, _ = demo
    ds = xr.load_dataset(out / "wh_constraints.nc")
    n = DemoSettings.quick().grid_points
    assert dict(ds.sizes) == {"cHW": n, "cHWtil": n}
    for method in METHODS:
        q = ds[f"twice_delta_nll_{method}"]
        assert q.dims == POIS and np.all(np.isfinite(q.values))
        assert ds.attrs[f"area_95cl_{method}"] == pytest.approx(result.areas[method])
        # Asimov data at the SM: every −2ΔlnL (the learned one by Jensen, being self-normalised) is
        # smallest at the SM grid point and 0 there
        assert q.sel(cHW=0.0, cHWtil=0.0, method="nearest").item() == pytest.approx(0.0, abs=1e-6)
        assert np.unravel_index(np.argmin(q.values), q.shape) == (n // 2, n // 2)
    for name in POIS:
        axis = ds[name].values
        assert np.allclose(axis, -axis[::-1]) and axis[n // 2] == 0.0
    assert ds.attrs["lumi_ifb"] == 300.0 and ds.attrs["histogram_observable"] == "pt(b+bbar)"


def test_exact_and_histogram_scans_match_closed_forms(demo):
    out, result, _ = demo
    settings = result.settings
    ds = xr.load_dataset(out / "wh_constraints.nc")
    _, test_ev = split_events(EventSet.load(out / "wh_events.nc"), settings.fractions, result.seed)
    assert test_ev.n_events == result.counts["test"]
    grid = np.stack(np.meshgrid(ds["cHW"].values, ds["cHWtil"].values, indexing="ij"), -1).reshape(-1, 2)
    theta = np.column_stack([grid, np.zeros(len(grid))])  # (cHW, cHWtil, cHq3 = 0) in the EventSet's order
    assert test_ev.operators == ["cHW", "cHWtil", "cHq3"]
    m = eft_math.monomials(torch.as_tensor(theta), "quadratic").numpy()  # (G, M)
    c = test_ev.coefficients().numpy()  # (N, M) pb
    w_theta, w_sm = m @ c.T, c[:, 0]
    exact = _asimov_q(w_theta, w_sm, settings.lumi_ifb).reshape(ds["twice_delta_nll_exact"].shape)
    assert np.allclose(ds["twice_delta_nll_exact"].values, exact, rtol=1e-6, atol=1e-6)
    # histogram: the same closed form over bins of pT(bb̄) with about equal SM counts
    x = test_ev.observables().sel(observable=settings.histogram).values
    edges = _equal_count_edges(x, w_sm, settings.n_bins)
    assert len(edges) == settings.n_bins + 1 and edges[0] < x.min() and edges[-1] > x.max()
    assert np.allclose(np.histogram(x, edges, weights=w_sm)[0], w_sm.sum() / settings.n_bins, rtol=0.05)
    index = np.searchsorted(edges, x, side="right") - 1
    sums = np.zeros((len(edges) - 1, c.shape[1]))
    np.add.at(sums, index, c)
    hist = _asimov_q(m @ sums.T, sums[:, 0], settings.lumi_ifb).reshape(exact.shape)
    q_hist = ds["twice_delta_nll_histogram"].values
    assert np.allclose(q_hist, hist, rtol=1e-6, atol=1e-6)
    # merging events into bins never adds information: pointwise, binned ≤ unbinned exact
    assert np.all(q_hist <= ds["twice_delta_nll_exact"].values + 1e-6)


def test_three_areas_are_ordered(demo):
    _, result, _ = demo
    areas = result.areas
    assert all(np.isfinite(v) and v > 0 for v in areas.values())
    # quick size, seed 0, reached: exact 0.0043, learned 0.0092, histogram 0.026 (TeV⁻⁴)
    assert areas["exact"] <= areas["learned"] < areas["histogram"]
    assert result.gap == pytest.approx(areas["learned"] / areas["exact"] - 1) and result.gap >= 0


def test_exact_area_is_the_fisher_ellipse(demo):
    """Near the SM the exact Asimov −2ΔlnL is θᵀIθ with I = 1000·L·Σ_i w_i a_i a_iᵀ, a_i the events' linear
    coefficients over their SM weight; the 95% region is then an ellipse of area π·5.99/√det I.  The
    quadratic terms change it little (reached: 0.5%)."""
    out, result, _ = demo
    _, test_ev = split_events(EventSet.load(out / "wh_events.nc"), result.settings.fractions, result.seed)
    c = test_ev.coefficients().numpy()
    components = list(test_ev.data["component"].values)
    a = c[:, [components.index(n) for n in POIS]] / c[:, :1]
    fisher = 1000.0 * result.settings.lumi_ifb * np.einsum("i,ij,ik->jk", c[:, 0], a, a)
    assert result.areas["exact"] == pytest.approx(np.pi * LEVEL_95 / np.sqrt(np.linalg.det(fisher)), rel=0.03)
