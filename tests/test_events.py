"""Event generation with exact EFT weights, reweighting, joint ratio/score, EventSet IO."""

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import stats

from sbihep.errors import DataFormatError, InvalidInputError, OutOfBoundsError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.events.generate import generate
from sbihep.physics.lorentz import mass, pt, rapidity
from sbihep.physics.processes import get_process

torch.set_num_threads(1)

WH_ARGS = dict(n_adapt=5, n_per_iteration=10_000, progress=False)


@pytest.fixture(scope="module")
def wh():
    return get_process("wh_lvbb")


@pytest.fixture(scope="module")
def wh_sm(wh):
    return generate(wh, 13000.0, 3000, seed=11, **WH_ARGS)


@pytest.fixture(scope="module")
def wh_bsm(wh):
    return generate(wh, 13000.0, 3000, theta={"cHW": 1.0, "cHWtil": -0.5}, seed=12, **WH_ARGS)


def wh_observables(events: EventSet) -> dict[str, np.ndarray]:
    p = events.momenta()
    roles = events.roles
    lep, nu, b, bbar = (p[:, roles.index(r)] for r in ("l", "v", "b", "bbar"))
    return {
        "pt_l": pt(lep).numpy(),
        "pt_W": pt(lep + nu).numpy(),
        "m_WH": mass(lep + nu + b + bbar).numpy(),
        "y_H": rapidity(b + bbar).numpy(),
    }


def chi2_shape_pvalue(unweighted: np.ndarray, reweighted: np.ndarray, weights: np.ndarray, n_bins: int = 10) -> float:
    edges = np.quantile(unweighted, np.linspace(0, 1, n_bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    counts, _ = np.histogram(unweighted, edges)
    sums, _ = np.histogram(reweighted, edges, weights=weights)
    sums2, _ = np.histogram(reweighted, edges, weights=weights**2)
    p1, p2 = counts / counts.sum(), sums / sums.sum()
    var = counts / counts.sum() ** 2 + sums2 / sums.sum() ** 2
    chi2 = float(((p1 - p2) ** 2 / var).sum())
    return float(stats.chi2.sf(chi2, n_bins - 1))


def test_unweighted_events_at_theta_agree_with_reweighted_sm_events(wh_sm, wh_bsm):
    theta = json.loads(wh_bsm.data.attrs["theta_gen"])
    weights = wh_sm.weights(theta).numpy()
    assert (weights > 0).all()
    obs_sm, obs_bsm = wh_observables(wh_sm), wh_observables(wh_bsm)
    for name in obs_sm:
        p_value = chi2_shape_pvalue(obs_bsm[name], obs_sm[name], weights)
        assert p_value > 0.01, (name, p_value)
    # normalisation: σ(θ) from reweighting the SM sample vs the sample generated at θ
    sigma_reweighted = wh_sm.sigma(theta)
    report = json.loads(wh_bsm.data.attrs["generation"])
    sigma_direct = sum(r["sigma_pb"] for r in report)
    error = math.hypot(*(r["sigma_error_pb"] for r in report)) + sigma_reweighted * 3 / math.sqrt(wh_sm.n_events)
    assert abs(sigma_reweighted - sigma_direct) < 3 * error
    # a (partially) unweighted sample has equal weights at its generation point, per subprocess,
    # except for the few events above w_max, which carry at most 10⁻³ of σ in excess
    w_gen = wh_bsm.weights(theta).numpy()
    for k in range(len(wh_bsm.subprocesses)):
        wk = w_gen[wh_bsm.data["subprocess"].values == k]
        heavier = wk > wk.min() * (1 + 1e-9)
        assert np.allclose(wk[~heavier], wk.min(), rtol=1e-12) and heavier.mean() < 0.01


def test_strict_unweighting_gives_equal_weights():
    proc = get_process("ee_mumu")
    events = generate(proc, 300.0, 500, max_overweight=0.0, seed=8, n_adapt=2, n_per_iteration=2000, progress=False)
    w = events.weights().numpy()
    assert np.allclose(w, w[0], rtol=1e-12)
    report = json.loads(events.data.attrs["generation"])[0]
    assert report["overweight_fraction"] == 0.0 and 0 < report["efficiency"] <= 1


def test_sample_sigma_polynomial_matches_cross_section(wh, wh_sm):
    from sbihep.physics.xsec import cross_section

    xs = cross_section(wh, 13000.0, n_evaluations=8000, n_adapt=3, n_iterations=3, seed=5, progress=False)
    for theta in ({}, {"cHW": 1.0}, {"cHq3": -0.5, "cHWtil": 1.0}):
        value, error = xs(theta)
        sample = wh_sm.sigma(theta)
        # the unweighted sample's σ(θ) carries the generation MC error plus the reweighting spread
        w = wh_sm.weights(theta).numpy()
        sample_error = float(w.std() * math.sqrt(len(w))) + 3e-3 * sample
        assert abs(sample - value) < 3 * math.hypot(error, sample_error), (theta, sample, value)


def test_cp_odd_linear_term_integrates_to_zero(wh_sm):
    coeffs = wh_sm.coefficients()
    column = wh_sm.data["component"].values.tolist().index("cHWtil")
    linear = coeffs[:, column]
    assert abs(float(linear.sum())) < 3 * float(linear.std()) * math.sqrt(len(linear))
    cp_even = coeffs[:, wh_sm.data["component"].values.tolist().index("cHW")]
    assert abs(float(linear.sum())) < 0.02 * abs(float(cp_even.sum()))  # ≪ the CP-even interference


def test_expected_joint_ratio_is_one(wh_bsm):
    theta1 = json.loads(wh_bsm.data.attrs["theta_gen"])
    for theta0 in ({}, {"cHW": 0.5}, {"cHWtil": 1.0, "cHq3": 0.2}):
        r = torch.exp(wh_bsm.log_joint_ratio(theta0, theta1))
        mean, error = float(r.mean()), float(r.std()) / math.sqrt(len(r))
        assert abs(mean - 1) < 4 * error, (theta0, mean, error)


def test_joint_score_equals_autograd_of_log_density():
    """ee → μμ: p(z|θ) = |M|²(z;θ)/σ(θ) × θ-independent factors; autograd through the amplitudes."""
    proc = get_process("ee_mumu")
    events = generate(proc, 250.0, 200, unweighted=False, seed=3, n_adapt=2, n_per_iteration=2000, progress=False)
    theta = torch.tensor([0.4, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    momenta = events.momenta()
    sigma = eft_math.weights_at(events.sigma_coefficients()[None], theta)[0]
    log_p = torch.log(proc.matrix_element2(momenta, theta)) - torch.log(sigma)
    (autograd,) = torch.autograd.grad(log_p.sum(), theta, retain_graph=True)
    per_event = torch.stack([torch.autograd.grad(log_p[i], theta, retain_graph=True)[0] for i in range(5)])
    score = events.joint_score(dict(zip(proc.operators, theta.detach().tolist())))
    assert torch.allclose(score[:5], per_event, rtol=1e-9, atol=1e-12)
    assert torch.allclose(score.sum(0), autograd, rtol=1e-9)


def test_joint_score_is_derivative_of_log_joint_ratio(wh_sm):
    theta = {"cHW": 0.3, "cHWtil": -0.2, "cHq3": 0.1}
    score = wh_sm.joint_score(theta)
    h = 1e-5
    for i, op in enumerate(wh_sm.operators):
        up, down = dict(theta), dict(theta)
        up[op] += h
        down[op] -= h
        fd = wh_sm.log_joint_ratio(up, down) / (2 * h)
        assert torch.allclose(fd, score[:, i], rtol=1e-6, atol=1e-8)


def test_same_seed_same_events_with_workers():
    proc = get_process("ee_mumu")
    args = dict(n_adapt=2, n_per_iteration=2000, chunk_size=700, progress=False)
    serial = generate(proc, 200.0, 1500, seed=4, n_workers=1, **args)
    parallel = generate(proc, 200.0, 1500, seed=4, n_workers=2, **args)
    xr.testing.assert_identical(serial.data, parallel.data)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_is_bit_for_bit(wh_sm, tmp_path, suffix):
    path = wh_sm.save(tmp_path / f"events{suffix}")
    back = EventSet.load(path)
    xr.testing.assert_identical(back.data, wh_sm.data)
    lazy = EventSet.load(path, lazy=True, chunk_events=1000)
    assert lazy.data["z"].chunks is not None
    assert lazy.sigma({"cHW": 0.2}) == pytest.approx(wh_sm.sigma({"cHW": 0.2}), rel=1e-14)


def test_split_select_concatenate(wh_sm):
    train, val, test = wh_sm.split((0.6, 0.2, 0.2), seed=1)
    assert len(train) + len(val) + len(test) == len(wh_sm)
    for part in (train, val, test):  # each part alone estimates σ
        assert part.sigma() == pytest.approx(wh_sm.sigma(), rel=0.1)
    central = wh_sm.select(np.abs(wh_observables(wh_sm)["y_H"]) < 1.0)
    assert 0 < len(central) < len(wh_sm) and central.sigma() < wh_sm.sigma()
    both = EventSet.concatenate([train, val])
    assert len(both) == len(train) + len(val)
    with_x = wh_sm.with_observables(wh_observables(wh_sm))
    assert with_x.observables().dims == ("event", "observable") and "pt_W" in with_x.observables()["observable"]


def test_bad_input(wh, tmp_path, monkeypatch):
    good = dict(roles=["beam1", "beam2", "mu-", "mu+"], operators=["cll", "cle", "cee"], order="quadratic")
    p = torch.rand(4, 4, 4, dtype=torch.float64) + 1.0
    c = torch.rand(4, 10, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="finite"):
        EventSet.from_arrays(momenta=torch.where(p > 1.5, float("nan"), p), coefficients=c, **good)
    with pytest.raises(InvalidInputError, match="negative energies"):
        EventSet.from_arrays(momenta=-p, coefficients=c, **good)
    with pytest.raises(InvalidInputError, match="not positive"):
        EventSet.from_arrays(momenta=p, coefficients=-c, **good)
    with pytest.raises(OutOfBoundsError, match="cHW"):
        generate(wh, 13000.0, 10, theta={"cHW": 50.0}, progress=False)
    with pytest.raises(InvalidInputError, match="unknown"):
        generate(wh, 13000.0, 10, theta={"cHB": 1.0}, progress=False)
    not_events = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(not_events, engine="h5netcdf")
    with pytest.raises(DataFormatError, match="not an EventSet"):
        EventSet.load(not_events)
    # an interrupted write leaves neither the target nor a temporary file behind
    events = EventSet.from_arrays(momenta=p, coefficients=c, **good)

    def broken(self, path, **kwargs):
        open(path, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        events.save(tmp_path / "events.nc")
    assert list(tmp_path.iterdir()) == [not_events]
