"""The W-mass-constraint neutrino p_z (exact properties) and the NeutrinoFlow on generated W → eν events."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events.eventset import EventSet
from sbihep.events.generate import generate
from sbihep.flows.neutrino import (
    POSTERIOR_FEATURES,
    NeutrinoFlow,
    sample_pit,
    neutrino_features,
    required_observables,
    true_neutrino,
    w_mass_neutrino_pz,
)
from sbihep.physics.processes import get_process

torch.set_num_threads(1)
M_W = 80.379


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost four-vectors p (N, 4) by velocity beta (N, 3)."""
    b2 = (beta**2).sum(1)
    gamma = 1 / np.sqrt(1 - b2)
    bp = (beta * p[:, 1:]).sum(1)
    e = gamma * (p[:, 0] + bp)
    coef = np.where(b2 > 0, (gamma - 1) * bp / np.where(b2 > 0, b2, 1), 0.0) + gamma * p[:, 0]
    return np.concatenate([e[:, None], p[:, 1:] + coef[:, None] * beta], 1)


def on_shell_decays(n: int, m_lepton: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """W → ℓν exactly at m_W: isotropic decays boosted with random W p_T, rapidity and azimuth."""
    p_star = (M_W**2 - m_lepton**2) / (2 * M_W)
    cos, phi = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin = np.sqrt(1 - cos**2)
    direction = np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], 1)
    lep = np.concatenate([np.sqrt(p_star**2 + m_lepton**2)[None].repeat(n)[:, None], p_star * direction], 1)
    nu = np.concatenate([np.full((n, 1), p_star), -p_star * direction], 1)
    pt, y, azimuth = rng.uniform(0, 150, n), rng.uniform(-2.5, 2.5, n), rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(M_W**2 + pt**2)
    w = np.stack([mt * np.cosh(y), pt * np.cos(azimuth), pt * np.sin(azimuth), mt * np.sinh(y)], 1)
    beta = w[:, 1:] / w[:, :1]
    lep, nu = boost(lep, beta), boost(nu, beta)
    keep = np.hypot(lep[:, 1], lep[:, 2]) > 5.0  # the constraint needs a transverse lepton
    return lep[keep], nu[keep]


def invariant_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    return np.sqrt(s[:, 0] ** 2 - (s[:, 1:] ** 2).sum(1))


@pytest.mark.parametrize("m_lepton", [0.0, 0.105658])
def test_quadratic_recovers_on_shell_neutrino_exactly(m_lepton):
    lep, nu = on_shell_decays(4000, m_lepton, np.random.default_rng(1))
    small, large, is_complex = w_mass_neutrino_pz(lep, nu[:, 1:3], m_w=M_W)
    assert not is_complex.any()
    assert (np.abs(small) <= np.abs(large)).all()
    error = np.minimum(np.abs(small - nu[:, 3]), np.abs(large - nu[:, 3]))
    assert error.max() < 1e-6 * (1 + np.abs(nu[:, 3])).max()
    for root in (small, large):
        candidate = np.stack([np.sqrt((nu[:, 1:3] ** 2).sum(1) + root**2), nu[:, 1], nu[:, 2], root], 1)
        np.testing.assert_allclose(invariant_mass(lep, candidate), M_W, rtol=1e-9)
    # the true neutrino is the small root in a fraction of events strictly between 0 and 1
    picks_small = np.abs(small - nu[:, 3]) <= np.abs(large - nu[:, 3])
    assert 0.2 < picks_small.mean() < 0.95


def test_complex_iff_transverse_mass_above_mw():
    """Massless lepton: no real root ⇔ m_T(ℓ, p̸_T) > m_W; then both outputs are the real part and
    m(ℓν) exceeds m_W there (as everywhere)."""
    rng = np.random.default_rng(2)
    n = 5000
    pt_l, eta, phi_l = rng.uniform(10, 80, n), rng.uniform(-2.5, 2.5, n), rng.uniform(-np.pi, np.pi, n)
    lep = np.stack([pt_l * np.cosh(eta), pt_l * np.cos(phi_l), pt_l * np.sin(phi_l), pt_l * np.sinh(eta)], 1)
    pt_v, phi_v = rng.uniform(10, 80, n), rng.uniform(-np.pi, np.pi, n)
    met = np.stack([pt_v * np.cos(phi_v), pt_v * np.sin(phi_v)], 1)
    mt = np.sqrt(2 * pt_l * pt_v * (1 - np.cos(phi_l - phi_v)))
    clear = np.abs(mt - M_W) > 1e-6
    small, large, is_complex = w_mass_neutrino_pz(lep, met, m_w=M_W)
    np.testing.assert_array_equal(is_complex[clear], (mt > M_W)[clear])
    assert 0.05 < is_complex.mean() < 0.95
    np.testing.assert_array_equal(small[is_complex], large[is_complex])
    nu = np.stack([np.hypot(pt_v, small), met[:, 0], met[:, 1], small], 1)
    assert (invariant_mass(lep, nu)[is_complex] > M_W).all()


def test_quadratic_bad_inputs():
    lep, met = np.ones((3, 4)) * [50, 10, 0, 5], np.ones((3, 2))
    with pytest.raises(ShapeError, match="lepton"):
        w_mass_neutrino_pz(np.ones((3, 3)), met)
    with pytest.raises(ShapeError, match="met_xy"):
        w_mass_neutrino_pz(lep, np.ones((4, 2)))
    bad = met.copy()
    bad[0, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        w_mass_neutrino_pz(lep, bad)
    with pytest.raises(InvalidInputError, match="m_w"):
        w_mass_neutrino_pz(lep, met, m_w=-1.0)
    with pytest.raises(InvalidInputError, match="empty"):
        w_mass_neutrino_pz(np.zeros((0, 4)), np.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="transverse"):
        w_mass_neutrino_pz(np.array([[10.0, 0, 0, 10.0]]), np.ones((1, 2)))


# ---- the flow on generated W → eν events with the default detector ------------------------------------
@pytest.fixture(scope="module")
def w_events():
    events = generate(
        get_process("w_lv"), 13000.0, 10_000, seed=3, detector="default", observables=required_observables(),
        n_adapt=4, n_per_iteration=10_000, progress=False,
    )
    index = np.arange(len(events))
    return events.select(index < 7500), events.select(index >= 7500)


@pytest.fixture(scope="module")
def trained(w_events):
    train, _ = w_events
    flow = NeutrinoFlow(target="pz", kind="nsf", transforms=2, hidden=(32, 32), bins=8, seed=0)
    flow.fit_events(train, epochs=60, batch_size=128, learning_rate=3e-3, quiet=True)
    return flow


def test_flow_beats_quadratic_and_is_calibrated(w_events, trained):
    _, test = w_events
    inp = neutrino_features(test)
    keep = inp["passed"]
    inp = {k: v[keep] for k, v in inp.items() if k != "passed"}
    truth = true_neutrino(test)[keep, 3]
    small, _, _ = w_mass_neutrino_pz(inp["lepton"], inp["met_xy"])
    estimate = trained.point_estimate(inp, n_samples=100, seed=1, method="branch")[:, 0]

    def iqr(v):
        return np.subtract(*np.percentile(v, [75, 25]))

    # loose: the flow's more probable branch beats the smaller root (measured IQR ratio 1.17 here;
    # the benchmark measures the ratios at larger sizes)
    assert iqr(estimate - truth) < iqr(small - truth)
    samples = trained.sample_momenta(inp, n_samples=100, seed=2)[..., 3]
    pit = trained.pit(inp, truth)
    # loose calibration (this small flow on ~2000 events: KS distance 0.04 from uniform; the benchmark
    # measures the PIT at larger sizes)
    assert stats.kstest(pit, "uniform").statistic < 0.08
    q16, q84 = np.quantile(samples, [0.16, 0.84], axis=0)
    coverage = ((truth > q16) & (truth < q84)).mean()
    assert 0.5 < coverage < 0.85, coverage


def test_flow_samples_as_proposals_and_features(w_events, trained, tmp_path):
    _, test = w_events
    test = test.select(np.arange(len(test)) < 40)
    nu = trained.sample_momenta(test, n_samples=5, seed=0)
    inp = neutrino_features(test)
    assert nu.shape == (5, 40, 4)
    np.testing.assert_allclose(nu[..., 1:3], np.broadcast_to(inp["met_xy"], (5, 40, 2)))
    np.testing.assert_allclose(nu[..., 0], np.linalg.norm(nu[..., 1:], axis=-1))
    with_features = trained.with_posterior_features(test, n_samples=20, seed=0)
    names = [str(o) for o in with_features.data["observable"].values]
    assert all(name in names for name in POSTERIOR_FEATURES)
    assert np.isfinite(with_features.observables().values).all()
    loaded = NeutrinoFlow.load(trained.save(tmp_path / "nu"))
    np.testing.assert_array_equal(loaded.sample_momenta(test, 3, seed=4), trained.sample_momenta(test, 3, seed=4))
    ctx = trained.context(test)
    x = nu[0, :, 3:4]
    np.testing.assert_array_equal(loaded.log_prob(x, ctx), trained.log_prob(x, ctx))


def test_neutrino_flow_bad_inputs(w_events, trained):
    _, test = w_events
    with pytest.raises(InvalidInputError, match="target"):
        NeutrinoFlow(target="E")
    with pytest.raises(InvalidInputError, match="jet_embedding"):
        NeutrinoFlow(jet_embedding={"type": "deepset", "n_out": 4})
    with pytest.raises(InvalidInputError, match="missing reco observables"):
        NeutrinoFlow(jets=("b",)).context(test)
    with pytest.raises(InvalidInputError, match="EventSet"):
        neutrino_features(np.zeros((3, 4)))
    lep = np.array([[50.0, 30, 0, 39.0]] * 2)
    with pytest.raises(InvalidInputError, match="charge"):
        trained.sample_momenta({"lepton": lep, "met_xy": np.ones((2, 2))})
    with pytest.raises(InvalidInputError, match="charge"):
        trained.sample_momenta({"lepton": lep, "met_xy": np.ones((2, 2)), "charge": np.array([1.0, 0.5])})
    with pytest.raises(ShapeError, match="met_xy"):
        trained.sample_momenta({"lepton": lep, "met_xy": np.ones((3, 2)), "charge": np.ones(2)})
    bad = lep.copy()
    bad[1, 2] = np.inf
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        trained.sample_momenta({"lepton": bad, "met_xy": np.ones((2, 2)), "charge": np.ones(2)})
    with pytest.raises(ShapeError, match="weights"):
        trained.fit_events(test, weights=np.ones(3), epochs=1, quiet=True)
    assert isinstance(test, EventSet)


def test_sample_pit_is_uniform_with_ties_and_bounded():
    """Randomised PIT: exactly uniform when truth and draws share a distribution, even a discrete one
    (the plain fraction #{s < y}/S is not); a truth above every draw lands in [S/(S+1), 1]."""
    rng = np.random.default_rng(4)
    draws, truth = rng.integers(0, 3, (5, 20000)).astype(float), rng.integers(0, 3, 20000).astype(float)
    assert stats.kstest(sample_pit(draws, truth, seed=1), "uniform").statistic < 0.015
    assert stats.kstest((draws < truth).mean(0), "uniform").statistic > 0.2
    u = sample_pit(np.zeros((9, 4)), np.ones(4))
    assert ((u >= 0.9) & (u <= 1.0)).all()
    with pytest.raises(ShapeError, match="samples"):
        sample_pit(np.zeros((3, 4)), np.zeros(5))


def test_pit_is_the_flow_cdf_and_log_prob_is_normalised(w_events, trained):
    """The exact PIT Φ(T(y)) agrees with the sample CDF of the same flow, and the density in GeV (tail
    coordinate g and its Jacobian included) integrates to one over p_z."""
    _, test = w_events
    inp = neutrino_features(test)
    inp = {k: v[inp["passed"]][:200] for k, v in inp.items() if k != "passed"}
    truth = true_neutrino(test)[neutrino_features(test)["passed"]][:200, 3]
    exact = trained.pit(inp, truth)
    sampled = trained.pit(inp, truth, n_samples=4000, seed=3)
    assert np.abs(exact - sampled).max() < 0.04 and np.abs(exact - sampled).mean() < 0.01
    # ∫ q(p_z) dp_z = 1: integrate on a uniform grid in the learned coordinate y
    ctx = trained.context({k: v[:4] for k, v in inp.items()})
    centre, scale = trained._centre_scale(ctx)
    y = np.linspace(-25.0, 25.0, 50001)
    t = trained._expand(y)
    for i in range(4):
        pz = centre[i] + scale[i] * t
        log_q = trained.log_prob(pz[:, None], np.repeat(ctx[i : i + 1], len(y), 0))
        dpz_dy = scale[i] * np.exp(-trained._compress(t)[1])
        assert np.trapezoid(np.exp(log_q) * dpz_dy, y) == pytest.approx(1.0, abs=2e-3)
    # the coordinate: identity between the roots, logarithmic beyond, invertible
    t = np.concatenate([-np.logspace(3, -3, 50), np.logspace(-3, 3, 50)])
    g, _ = trained._compress(t)
    np.testing.assert_allclose(trained._expand(g), t, rtol=1e-12)
    assert trained._compress(np.array([-1.0, 0.5, 1.0]))[0].tolist() == [-1.0, 0.5, 1.0]
    assert trained._compress(np.array([1001.0]))[0][0] == pytest.approx(1 + np.arcsinh(1000.0))
    # models saved before pz_tails existed load with the linear coordinate
    config = trained.config()
    del config["neutrino"]["pz_tails"]
    assert NeutrinoFlow._from_config(config).pz_tails == "linear"
    with pytest.raises(InvalidInputError, match="pz_tails"):
        NeutrinoFlow(pz_tails="log")
