"""Unfolding on the Gaussian toy with exact answers: OmniFold, generative unfolding with prior removal,
IBU (pyunfold), the metrics, and bad input.

Toy (OmniFold paper): simulation truth z ~ N(0.2, 0.8), data truth z ~ N(0, 1), both smeared by
x = z + N(0, 0.5).  For Gaussian prior N(μ, s²) and smearing σ the posterior is Gaussian,
p(z|x) = N((s² x + σ² μ)/(s² + σ²), s² σ²/(s² + σ²)), so its pushforward over data x ~ N(μ_d, 1 + σ²)
— the single-pass (prior-dependent) unfolding, also the first iteration of IBU/OmniFold — is exactly
Gaussian; iterating the map with the result as the next prior converges to N(0, 1).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.flows.generative_unfolding import GenerativeUnfolding, iterative_generative_unfolding
from sbihep.flows.ibu import ibu, response_matrix
from sbihep.flows.omnifold import DensityRatio, binned_spectrum, omnifold, omnifold_replicas, reweight_eventset
from sbihep.flows.unfolding_metrics import (
    bias_variance, classifier_auc, coverage, pulls, roc_auc, triangular_discriminator, wasserstein_1d,
)

torch.set_num_threads(1)

SIGMA = 0.5
N = 12000
CLASSIFIER = dict(hidden=(32, 32), epochs=15, learning_rate=3e-3)


def iterate_gaussian(mu_prior, s_prior, mu_data, s_data, sigma, n):
    """(mean, std) of the unfolded truth after iterations 1..n (exact Gaussian algebra)."""
    out, mu, s2 = [], mu_prior, s_prior**2
    var_x = s_data**2 + sigma**2
    for _ in range(n):
        k = s2 / (s2 + sigma**2)  # posterior mean = k x + (1 − k) μ, posterior variance = k σ²
        mu, s2 = k * mu_data + (1 - k) * mu, k * k * var_x + k * sigma**2
        out.append((mu, math.sqrt(s2)))
    return out


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(7)
    z_sim = rng.normal(0.2, 0.8, N)
    z_data = rng.normal(0.0, 1.0, N)
    return dict(z_sim=z_sim, x_sim=z_sim + rng.normal(0, SIGMA, N), z_data=z_data, x_data=z_data + rng.normal(0, SIGMA, N))


def moments(values, weights=None):
    m = np.average(values, weights=weights)
    return m, math.sqrt(np.average((values - m) ** 2, weights=weights))


def test_analytic_single_pass_and_fixed_point():
    (m1, s1), *_ = iterate_gaussian(0.2, 0.8, 0.0, 1.0, SIGMA, 1)
    # the known bias of the prior-dependent single pass: N(0.2·0.25/0.89, √(0.64²·1.25/0.89² + 0.16/0.89))
    assert m1 == pytest.approx(0.05 / 0.89, rel=1e-12) and m1 == pytest.approx(0.056, abs=5e-4)
    assert s1 == pytest.approx(math.sqrt((0.64 / 0.89) ** 2 * 1.25 + 0.16 / 0.89), rel=1e-12) and s1 == pytest.approx(0.909, abs=5e-4)
    m, s = iterate_gaussian(0.2, 0.8, 0.0, 1.0, SIGMA, 60)[-1]
    assert abs(m) < 1e-8 and s == pytest.approx(1.0, abs=1e-6)
    # Monte-Carlo check of the pushforward formula itself
    rng = np.random.default_rng(0)
    x = rng.normal(0, math.sqrt(1.25), 400000)
    k = 0.64 / 0.89
    z = k * x + (1 - k) * 0.2 + rng.normal(0, math.sqrt(k * 0.25), len(x))
    assert z.mean() == pytest.approx(m1, abs=0.005) and z.std() == pytest.approx(s1, abs=0.005)


def test_omnifold_gaussian_iterations_follow_the_exact_ibu_sequence(toy):
    res = omnifold(toy["z_sim"], toy["x_sim"], toy["x_data"], iterations=3, quiet=True, seed=1, **CLASSIFIER)
    m0, s0 = moments(toy["z_sim"])
    md, sd = moments(toy["z_data"])
    exact = iterate_gaussian(m0, s0, md, sd, SIGMA, 3)
    assert res.weights.shape == (4, N)
    for it in (1, 3):
        m, s = moments(toy["z_sim"], res.unfolded_weights(it))
        assert m == pytest.approx(exact[it - 1][0], abs=0.035), it
        assert s == pytest.approx(exact[it - 1][1], abs=0.04), it
    # iteration 1 still carries the prior's bias, iteration 3 is close to the data truth
    assert abs(moments(toy["z_sim"], res.unfolded_weights(1))[1] - sd) > 0.06
    m3, s3 = moments(toy["z_sim"], res.unfolded_weights(3))
    assert abs(m3 - md) < 0.035 and abs(s3 - sd) < 0.05
    # the unfolded weights count data events (normalisation calibrated on the simulation)
    assert res.unfolded_weights().sum() == pytest.approx(N, rel=0.03)

    # binned comparison with IBU and the truth histogram
    bins = np.linspace(-3, 3, 13)
    truth_hist = np.histogram(toy["z_data"], bins)[0].astype(float)
    omni = res.spectrum(toy["z_sim"], bins)
    unf = ibu(toy["z_sim"], toy["x_sim"], toy["x_data"], bins_truth=bins, bins_reco=np.linspace(-3, 3, 13), iterations=3)
    ibu_hist = unf["unfolded"].isel(iteration=-1).values
    prior_hist = np.histogram(toy["z_sim"], bins)[0].astype(float)
    d_omni, d_ibu, d_prior = (triangular_discriminator(h, truth_hist) for h in (omni["counts"].values, ibu_hist, prior_hist))
    assert d_omni < 0.25 * d_prior and d_ibu < 0.25 * d_prior
    w_omni = wasserstein_1d(toy["z_sim"], toy["z_data"], res.unfolded_weights())
    assert w_omni < 0.25 * wasserstein_1d(toy["z_sim"], toy["z_data"])
    # IBU on the same toy follows the same exact sequence (binned): its moments after iteration 3
    centres = 0.5 * (bins[1:] + bins[:-1])
    assert np.average(centres, weights=ibu_hist) == pytest.approx(exact[2][0], abs=0.03)
    # IBU pulls (pyunfold's statistical errors) against the exact iteration-3 Gaussian in the interior bins
    # (the edge bins carry the binning's edge effects: data beyond the reco range are lost)
    expected3 = N * np.diff(stats.norm.cdf(bins, exact[2][0], exact[2][1]))
    p = pulls(ibu_hist, expected3, unf["stat_error"].isel(iteration=-1).values).values[1:-1]
    assert np.all(np.abs(p) < 3) and coverage(p, 2.0) >= 0.8


def test_generative_unfolding_single_pass_bias_and_prior_removal(toy):
    res = iterative_generative_unfolding(
        toy["z_sim"], toy["x_sim"], toy["x_data"], iterations=3, seed=3, quiet=True,
        flow=dict(kind="maf", transforms=1, hidden=(32, 32)),
        flow_training=dict(epochs=15, batch_size=512, learning_rate=3e-3),
        classifier=dict(hidden=(32, 32)), classifier_training=dict(epochs=15, learning_rate=3e-3),
    )
    assert res.samples.shape == (3, 1, N, 1) and res.prior_weights.shape == (3, N)
    m0, s0 = moments(toy["z_sim"])
    md, sd = moments(toy["z_data"])
    exact = iterate_gaussian(m0, s0, md, sd, SIGMA, 3)
    m1, s1 = moments(res.flat(0)[0][:, 0], res.flat(0)[1])
    m3, s3 = moments(res.flat(2)[0][:, 0], res.flat(2)[1])
    # single pass = the analytic posterior pushforward N(0.056, 0.909) (for this sample's prior moments)
    assert m1 == pytest.approx(exact[0][0], abs=0.03) and s1 == pytest.approx(exact[0][1], abs=0.02)
    assert s1 < sd - 0.06  # the prior's bias is visible
    # prior removal: iteration 3 follows the exact sequence and approaches the data truth
    assert m3 == pytest.approx(exact[2][0], abs=0.035) and s3 == pytest.approx(exact[2][1], abs=0.03)
    assert abs(s3 - sd) < abs(s1 - sd) / 2
    assert res.prior_weights[0].tolist() == [1.0] * N


def test_generative_unfolding_efficiency_and_background():
    rng = np.random.default_rng(12)
    n_sim, n_data = 8000, 4000
    z, zd = rng.normal(0, 1, n_sim), rng.normal(0, 1, n_data)
    x, xd = z + rng.normal(0, SIGMA, n_sim), zd + rng.normal(0, SIGMA, n_data)
    eff = lambda t: 1 / (1 + np.exp(-(1.0 + t)))  # noqa: E731
    passed, passed_d = rng.random(n_sim) < eff(z), rng.random(n_data) < eff(zd)
    background = rng.normal(2.0, 0.3, 1200)
    data = np.concatenate([xd[passed_d], background[:400]])
    res = iterative_generative_unfolding(
        z, np.where(passed, x, np.nan), data, passed=passed, correct_efficiency=True, background=background[400:],
        background_weights=np.full(800, 0.5), iterations=1, seed=1, quiet=True,
        flow=dict(kind="maf", transforms=1, hidden=(32, 32)), flow_training=dict(epochs=25, batch_size=128, learning_rate=3e-3),
        classifier=dict(hidden=(32, 32)), classifier_training=dict(epochs=30, learning_rate=3e-3),
    )
    # the learned efficiency ε(z) = P(pass | z)
    grid = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(res.efficiency.ratio(grid), eff(grid), atol=0.05)
    s, w = res.flat()
    assert w.min() < 0  # background samples enter with negative weights
    # all data events (selected or not, ε̄ ≈ 0.7), background removed: 4000 (±1.6 % statistical)
    assert w.sum() == pytest.approx(n_data, rel=0.05)
    # the selected events' truth has mean 0.28; corrected it is N(0, 1) up to the flow's accuracy in the tails
    assert zd[passed_d].mean() > 0.25
    m, sd = moments(s[:, 0], w)
    assert abs(m) < 0.12 and sd == pytest.approx(1.0, abs=0.07)


def test_omnifold_efficiency_fakes_background_normalisation():
    rng = np.random.default_rng(11)
    n_sim, n_data = 10000, 5000

    def sample(n):
        z = rng.normal(0, 1, n)
        x = z + rng.normal(0, SIGMA, n)
        passed = rng.random(n) < 1 / (1 + np.exp(-(1.0 + z)))  # efficiency depends on z
        return z, x, passed

    z, x, passed = sample(n_sim)
    fake_x = rng.normal(1.5, 0.5, 1000)
    truth = np.concatenate([z, np.full(1000, np.nan)])
    reco = np.concatenate([np.where(passed, x, np.nan), fake_x])
    passed_all = np.concatenate([passed, np.ones(1000, bool)])
    has_truth = np.concatenate([np.ones(n_sim, bool), np.zeros(1000, bool)])
    zd, xd, pd = sample(n_data)
    data = np.concatenate([xd[pd], rng.normal(1.5, 0.5, 500), rng.normal(-1.0, 0.3, 600)])  # + fakes + background
    background = rng.normal(-1.0, 0.3, 2400)
    res = omnifold(
        truth, reco, data, passed=passed_all, has_truth=has_truth, background=background, background_weights=np.full(2400, 0.25),
        iterations=1, quiet=True, seed=2, **CLASSIFIER,
    )
    w = res.unfolded_weights()
    assert np.all(w[~has_truth] == 0)
    # all data events at truth level (passing or not), without fakes and background
    assert w.sum() == pytest.approx(n_data, rel=0.04)
    assert abs(moments(truth[has_truth], w[has_truth])[0]) < 0.06  # data truth: N(0, 1) (sample mean ±0.014)
    # weights of the missing events were learned from the truth (step 1b): same scale as the others
    assert np.median(w[has_truth & ~passed_all]) == pytest.approx(np.median(w[has_truth & passed_all]), rel=0.2)
    assert set(res.histories[0]) == {"step1", "step1b", "step2", "step2b"}


def test_omnifold_replicas_resample_data_and_simulation(toy):
    z, x, xd = toy["z_sim"][:1500], toy["x_sim"][:1500], toy["x_data"][:1500]
    reps = omnifold_replicas(z, x, xd, n_replicas=2, iterations=1, seed=4, progress=False, hidden=(8,), epochs=2)
    assert reps.shape == (2, 2, 1500)
    # row 0 holds the Poisson-resampled initial simulation weights: integers, some zero, mean 1
    assert np.all(reps[:, 0] == np.round(reps[:, 0])) and (reps[:, 0] == 0).any() and abs(reps[:, 0].mean() - 1) < 0.1
    assert not np.allclose(reps[0, 1], reps[1, 1])
    ensemble = omnifold_replicas(z, x, xd, n_replicas=2, bootstrap=False, iterations=1, seed=4, progress=False, hidden=(8,), epochs=2)
    assert np.all(ensemble[:, 0] == 1.0) and not np.allclose(ensemble[0, 1], ensemble[1, 1])
    with pytest.raises(InvalidInputError, match="bootstrap"):
        omnifold_replicas(z, x, xd, bootstrap="sim")


def test_ibu_exact_cases_and_errors():
    rng = np.random.default_rng(5)
    z = rng.uniform(0, 4, 20000)
    bins = np.arange(5.0)
    data = rng.uniform(0, 4, 3000)
    # perfect detector: one iteration returns the data histogram
    out = ibu(z, z, data, bins_truth=bins, bins_reco=bins, iterations=1)
    np.testing.assert_allclose(out["unfolded"].values[0], np.histogram(data, bins)[0], rtol=1e-9)
    # a 50 % efficiency independent of z doubles every bin
    passed = np.arange(len(z)) % 2 == 0
    out = ibu(z, z, data, passed=passed, bins_truth=bins, bins_reco=bins, iterations=2)
    np.testing.assert_allclose(out["efficiency"].values, 0.5, atol=0.02)
    np.testing.assert_allclose(out["unfolded"].values[-1], np.histogram(data, bins)[0] / out["efficiency"].values, rtol=1e-9)
    # a 2×2 response by hand
    resp = response_matrix([0.5, 0.5, 1.5, 1.5], [0.5, 1.5, 1.5, 1.5], [0, 1, 2], [0, 1, 2])
    np.testing.assert_allclose(resp["response"].values, [[0.5, 0.0], [0.5, 1.0]])
    # zero efficiency in truth bin 3 ([3, 4)): named in the error
    never = z < 3
    with pytest.raises(InvalidInputError, match=r"zero efficiency in truth bin\(s\) 3 \[3, 4\)"):
        ibu(z, z, data, passed=never, bins_truth=bins, bins_reco=bins)
    with pytest.raises(InvalidInputError, match=r"no simulated events.*truth bin\(s\) 4 \[4, 5\)"):
        ibu(z, z, data, bins_truth=np.arange(6.0), bins_reco=bins)
    with pytest.raises(InvalidInputError, match="reco bin"):
        ibu(z, z, data + 10, bins_truth=bins, bins_reco=np.arange(15.0))
    with pytest.raises(InvalidInputError, match="bins_truth"):
        ibu(z, z, data, bins_truth=[0, 2, 1], bins_reco=bins)


def test_metrics_exact_values():
    assert triangular_discriminator([1, 2, 3], [2, 4, 6]) == 0.0
    assert triangular_discriminator([1, 0], [0, 5]) == 1.0
    assert triangular_discriminator([1, 0], [1, 1]) == pytest.approx(0.5 * (0.25 / 1.5 + 0.25 / 0.5))
    rng = np.random.default_rng(3)
    u = rng.normal(size=500)
    assert wasserstein_1d(u, u + 0.7) == pytest.approx(0.7, rel=1e-12)
    v, wu, wv = rng.normal(0.3, 2, 300), rng.random(500), rng.random(300)
    assert wasserstein_1d(u, v, wu, wv) == pytest.approx(stats.wasserstein_distance(u, v, wu, wv), rel=1e-10)
    p = pulls([10.0, 20.0], [12.0, 20.0], [1.0, 2.0])
    assert p.values.tolist() == [-2.0, 0.0]
    reps = np.array([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]])
    np.testing.assert_allclose(pulls(reps, [2.0, 3.0]).values, [[-1, -1], [1, 1], [0, 0]])
    assert coverage(rng.normal(size=200000)) == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.004)
    # AUC: exact Mann-Whitney on small arrays, and Φ(d/√2) for a Gaussian shift d
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0.0, 0.4, 0.5]) == pytest.approx((1 + 1.5 + 1 + 3) / 12)
    a, b = rng.normal(1.0, 1, 100000), rng.normal(0, 1, 100000)
    assert roc_auc(a, b) == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.004)
    # a trained classifier on the same two Gaussians reaches that AUC (its logit is monotonic in x)
    assert classifier_auc(a[:6000, None], b[:6000, None], hidden=(16,), epochs=10) == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.02)
    spec = binned_spectrum([0.5, 1.5, 1.5, 9.0], np.array([[1.0, 1, 1, 1], [3, 1, 1, 1]]), [0, 1, 2])
    assert spec["counts"].values.tolist() == [2.0, 2.0] and spec["replica_error"].values[0] == pytest.approx(math.sqrt(2))


def test_density_ratio_save_load_and_eventset_reweighting(tmp_path):
    rng = np.random.default_rng(1)
    r = DensityRatio(2, hidden=(8,), seed=4)
    r.fit(rng.normal(0.5, 1, (400, 2)), rng.normal(0, 1, (300, 2)), epochs=2)
    x = rng.normal(size=(50, 2))
    back = DensityRatio.load(r.save(tmp_path / "ratio"))
    np.testing.assert_array_equal(back.ratio(x), r.ratio(x))
    from sbihep.events.eventset import EventSet

    p = torch.rand(4, 4, 4, dtype=torch.float64) + 1.0
    c = torch.rand(4, 3, dtype=torch.float64) + 0.1
    events = EventSet.from_arrays(momenta=p, coefficients=c, roles=["beam1", "beam2", "mu-", "mu+"], operators=["cll"], order="quadratic")
    new = reweight_eventset(events, [2.0, 1.0, 0.5, 3.0], keep=[True, True, True, False])
    theta = {"cll": 0.7}
    np.testing.assert_allclose(new.weights(theta).numpy(), events.weights(theta).numpy()[:3] * [2.0, 1.0, 0.5])


def test_bad_input_raises(toy):
    z, x = toy["z_sim"][:100], toy["x_sim"][:100]
    with pytest.raises(ShapeError, match="truth and reco"):
        omnifold(z[:50], x, x, quiet=True)
    with pytest.raises(ShapeError, match="data: expected 1 feature"):
        omnifold(z, x, np.zeros((10, 2)), quiet=True)
    with pytest.raises(InvalidInputError, match="data: no events"):
        omnifold(z, x, np.zeros((0, 1)), quiet=True)
    with pytest.raises(InvalidInputError, match="data: 1 of the events"):
        omnifold(z, x, np.where(np.arange(100) == 3, np.nan, x), quiet=True)
    with pytest.raises(InvalidInputError, match="reco: 1 of the events"):
        omnifold(z, np.where(np.arange(100) == 3, np.nan, x), x, quiet=True)
    with pytest.raises(ShapeError, match="passed"):
        omnifold(z, x, x, passed=np.ones(99, bool), quiet=True)
    with pytest.raises(InvalidInputError, match="iterations"):
        omnifold(z, x, x, iterations=0, quiet=True)
    with pytest.raises(InvalidInputError, match="non-positive total"):
        omnifold(z, x, x, background=x, background_weights=np.full(100, 2.0), quiet=True)
    unfolder = GenerativeUnfolding(1, 2)
    with pytest.raises(ShapeError, match="reco: expected 2 feature"):
        unfolder.fit(z, x)
    with pytest.raises(ShapeError, match="data: expected 2 feature"):
        unfolder.unfold(x)
    with pytest.raises(InvalidInputError, match="correct_efficiency"):
        iterative_generative_unfolding(z, x, x, correct_efficiency=True, quiet=True)


def test_bias_variance_separates_bias_from_errors():
    """Gaussian pseudo-experiments u = t + b + s·N(0, 1) quoting σ = s: coverage 2Φ(1) − 1 without bias,
    Φ(0) − Φ(−2) with b = ±s; the bias-free coverage and ⟨σ⟩/spread stay at 0.683 and 1."""
    rng = np.random.default_rng(11)
    t, s, b = np.array([100.0, 200.0, 300.0]), np.array([5.0, 10.0, 20.0]), np.array([0.0, 10.0, -20.0])
    u = t + b + s * rng.normal(size=(40000, 3))
    bv = bias_variance(u, t, np.broadcast_to(s, u.shape))
    np.testing.assert_allclose(bv["bias"].values, b, atol=4 * s.max() / 200)
    np.testing.assert_allclose(bv["spread"].values, s, rtol=0.02)
    np.testing.assert_allclose(bv["error_ratio"].values, 1.0, rtol=0.02)
    shifted = stats.norm.cdf(0) - stats.norm.cdf(-2)
    np.testing.assert_allclose(bv["coverage"].values, [math.erf(1 / math.sqrt(2)), shifted, shifted], atol=0.007)
    np.testing.assert_allclose(bv["coverage_without_bias"].values, math.erf(1 / math.sqrt(2)), atol=0.007)
    assert bv.attrs["bias_over_spread_rms"] == pytest.approx(math.sqrt(2 / 3), rel=0.03)
    # doubled errors: 2Φ(2) − 1 in the unbiased bin; a per-pseudo-experiment truth is accepted
    wide = bias_variance(u, np.broadcast_to(t + b, u.shape), np.broadcast_to(2 * s, u.shape))
    np.testing.assert_allclose(wide["coverage"].values, math.erf(2 / math.sqrt(2)), atol=0.005)
    np.testing.assert_allclose(wide["error_ratio"].values, 2.0, rtol=0.02)
    small = bias_variance([[1.0, 2.0], [3.0, 4.0]], [2.0, 3.0], np.ones((2, 2)))
    assert small["bias"].values.tolist() == [0.0, 0.0] and small.attrs["coverage"] == 1.0 and small.attrs["pull_rms"] == 1.0
    np.testing.assert_allclose(small["spread"].values, math.sqrt(2))
    with pytest.raises(ShapeError, match="P ≥ 2"):
        bias_variance([[1.0, 2.0]], [1.0, 2.0], [[1.0, 1.0]])
    with pytest.raises(InvalidInputError, match="not positive"):
        bias_variance([[1.0, 2.0], [1.0, 2.0]], [1.0, 2.0], [[1.0, 0.0], [1.0, 1.0]])
