"""Generative unfolding on bounded / heavy-tailed spectra (``support``) and with a sharp efficiency
turn-on (``reweight_truth``); the IBU Poisson bootstrap (``ibu(..., n_bootstrap=B)``) against the spread
over independent pseudo-experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, OutOfBoundsError
from sbihep.flows.generative_unfolding import GenerativeUnfolding, SupportTransform, iterative_generative_unfolding
from sbihep.flows.ibu import ibu

torch.set_num_threads(1)

FLOW = dict(kind="maf", transforms=1, hidden=(32, 32))
FLOW_TRAINING = dict(epochs=15, batch_size=256, learning_rate=3e-3)
CLASSIFIER = dict(hidden=(32, 32))
CLASSIFIER_TRAINING = dict(epochs=15, learning_rate=3e-3)


def test_support_transform_exact_values_and_errors():
    t = SupportTransform([(0.0, 1.0), (2.0, None), (None, 1.0), (None, None)], 4)
    z = np.array([[0.5, 3.0, 0.0, -7.0], [0.75, 2.0 + math.e, 1.0 - math.exp(-1.0), 1e6]])
    y = t.forward(z)
    np.testing.assert_allclose(y, [[0.0, 0.0, 0.0, -7.0], [math.log(3.0), 1.0, 1.0, 1e6]], atol=1e-12)
    np.testing.assert_allclose(t.inverse(y), z, rtol=1e-12)
    # any real y, however large, maps strictly inside the support (or onto a bound for |y| > 700)
    extreme = t.inverse(np.array([[-800.0, -800.0, 800.0, 3.0], [30.0, 30.0, -30.0, 3.0]]))
    assert 0 <= extreme[:, 0].min() and extreme[:, 0].max() < 1 and extreme[:, 1].min() >= 2 and extreme[:, 2].max() <= 1
    assert t.pairs() == [[0.0, 1.0], [2.0, None], [None, 1.0], [None, None]]
    assert SupportTransform(None, 2).identity
    with pytest.raises(OutOfBoundsError, match="truth: 1 value"):
        t.forward(np.array([[0.5, 1.0, 0.0, 0.0]]))  # 1.0 ≤ low = 2 of feature 1
    with pytest.raises(InvalidInputError, match="low < high"):
        SupportTransform([(1.0, 1.0)], 1)
    with pytest.raises(InvalidInputError, match="2 \\(low, high\\) pairs"):
        SupportTransform([(0.0, None)], 2)
    with pytest.raises(InvalidInputError, match="finite or None"):
        SupportTransform([(-np.inf, 0.0)], 1)


def test_support_keeps_samples_inside_and_learns_an_edge(tmp_path):
    """Truth Exp(1) (hard edge at 0, long tail), reco z + N(0, 0.3²): closure on the simulation itself.
    The plain flow puts samples below 0; with support (0, ∞) none, and the mean stays exact."""
    rng = np.random.default_rng(3)
    z = rng.exponential(1.0, 6000)
    x = z + rng.normal(0, 0.3, len(z))
    data = x[:3000]
    plain = GenerativeUnfolding(1, 1, seed=1, **FLOW)
    plain.fit(z, x, **FLOW_TRAINING, seed=1, quiet=True)
    s_plain = plain.unfold(data, n_samples=2, seed=2)[..., 0].ravel()
    bounded = GenerativeUnfolding(1, 1, seed=1, support=[(0.0, None)], **FLOW)
    bounded.fit(z, x, **FLOW_TRAINING, seed=1, quiet=True)
    s = bounded.unfold(data, n_samples=2, seed=2)
    assert s.shape == (2, 3000, 1)
    assert np.mean(s_plain < 0) > 0.02 and s.min() > 0
    assert s.mean() == pytest.approx(z[:3000].mean(), abs=0.05)
    # the exponential's first decile (0.105) is resolved near the edge
    assert np.quantile(s, 0.1) == pytest.approx(-math.log(0.9), abs=0.03)
    # save/load keeps the supports
    bounded.save(tmp_path / "gen")
    back = GenerativeUnfolding.load(tmp_path / "gen")
    assert back.support.pairs() == [[0.0, None]] and back.reco_support.pairs() == [[None, None]]
    np.testing.assert_allclose(back.unfold(data[:50], seed=5), bounded.unfold(data[:50], seed=5))
    with pytest.raises(OutOfBoundsError, match="truth"):
        bounded.fit(z - 1.0, x, epochs=1, quiet=True)


def test_reweight_truth_corrects_a_step_efficiency():
    """Efficiency 0.2 below z = 0 and 0.8 above; the simulation's truth N(0.3, 1), the data's N(0, 1).
    truth_weights carry the unfolded spectrum to ALL simulated events: total = all data events and
    the spectrum below/above the step is the data's, without any 1/ε(z)."""
    rng = np.random.default_rng(8)
    n = 8000
    z, zd = rng.normal(0.3, 1.0, n), rng.normal(0.0, 1.0, n)
    x, xd = z + rng.normal(0, 0.5, n), zd + rng.normal(0, 0.5, n)
    eff = lambda t: np.where(t < 0, 0.2, 0.8)  # noqa: E731
    passed, passed_d = rng.random(n) < eff(z), rng.random(n) < eff(zd)
    res = iterative_generative_unfolding(
        z, np.where(passed, x, np.nan), xd[passed_d], passed=passed, iterations=3, reweight_truth=True, seed=2, quiet=True,
        flow=FLOW, flow_training=FLOW_TRAINING, classifier=CLASSIFIER, classifier_training=CLASSIFIER_TRAINING,
    )
    assert res.truth_weights.shape == (3, n)
    # the samples describe the selected events only (their count is the selected data)
    assert res.flat()[1].sum() == pytest.approx(passed_d.sum(), rel=1e-9)
    w = res.truth_weights[-1]
    assert w.sum() == pytest.approx(n, rel=0.05)  # all data events (selected 4300 of 8000)
    bins = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    unfolded = res.reweighted_spectrum(z, bins)["counts"].values
    truth = np.histogram(zd, bins)[0]
    np.testing.assert_allclose(unfolded / truth, 1.0, atol=0.08)
    # the prior (simulation's truth, scaled to n) is off by > 15 % in the outer bins
    prior = np.histogram(z, bins)[0]
    assert abs(prior[0] / truth[0] - 1) > 0.15 and abs(prior[-1] / truth[-1] - 1) > 0.15
    with pytest.raises(InvalidInputError, match="reweight_truth=True"):
        iterative_generative_unfolding(z, x, xd, iterations=1, seed=0, quiet=True, flow=FLOW, flow_training=dict(epochs=1),
                                       ).reweighted_spectrum(z, bins)


def test_ibu_bootstrap_matches_the_spread_over_pseudo_experiments():
    """Gaussian toy, fresh data AND fresh simulation in every pseudo-experiment: the Poisson bootstrap σ
    (data + simulation) agrees with the true spread of the unfolded spectra; pyunfold's own errors do not."""
    n, n_pseudo, n_boot = 2000, 30, 10
    bins, bins_reco = np.linspace(-2.0, 2.0, 7), np.linspace(-2.5, 2.5, 11)
    unfolded, boot, stat = [], [], []
    for p in range(n_pseudo):
        r = np.random.default_rng(100 + p)
        z_s, z_d = r.normal(0.2, 0.8, n), r.normal(0.0, 1.0, n)
        out = ibu(z_s, z_s + r.normal(0, 0.5, n), z_d + r.normal(0, 0.5, n), bins_truth=bins, bins_reco=bins_reco, iterations=3,
                  n_bootstrap=n_boot, seed=p)
        assert out["bootstrap"].shape == (n_boot, 3, 6)
        unfolded.append(out["unfolded"].values[-1])
        boot.append(out["bootstrap_error"].values[-1])
        stat.append(out["stat_error"].values[-1])
    spread = np.std(unfolded, 0, ddof=1)
    ratio = np.mean(boot, 0) / spread
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.2) and np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    assert np.mean(np.mean(stat, 0) / spread) < 0.85  # the propagated errors miss the simulation's fluctuations


def test_ibu_bootstrap_seed_and_arguments():
    rng = np.random.default_rng(1)
    z = rng.uniform(0, 4, 3000)
    x, data = z + rng.normal(0, 0.3, 3000), rng.uniform(0, 4, 1000)
    bins = np.arange(5.0)
    opts = dict(bins_truth=bins, bins_reco=bins, iterations=2, n_bootstrap=4)
    a, b, c = ibu(z, x, data, seed=3, **opts), ibu(z, x, data, seed=3, **opts), ibu(z, x, data, seed=4, **opts)
    np.testing.assert_array_equal(a["bootstrap"].values, b["bootstrap"].values)
    assert not np.allclose(a["bootstrap_error"].values, c["bootstrap_error"].values)
    # the replicas scatter around the nominal spectrum (their mean within 0.5σ ≈ 3.5 standard errors of 50 replicas);
    # a bootstrap with a background resamples the background too
    many = {**opts, "n_bootstrap": 50}
    plain = ibu(z, x, data, seed=3, **many)
    assert np.all(np.abs(plain["bootstrap"].values.mean(0) - plain["unfolded"].values) < 0.5 * plain["bootstrap_error"].values)
    bkg = ibu(z, x, np.concatenate([data, np.full(200, 0.5)]), background=np.full(400, 0.5), background_weights=np.full(400, 0.5),
              seed=3, **many)
    # bin 0: ≈ 250 data events alone; with 200 more data events and a background of variance 400·0.5² the
    # σ grows by ≈ √(550/250) ≈ 1.5 (the replicas' σ is known to ±11 %)
    assert bkg["bootstrap_error"].values[-1, 0] > 1.2 * plain["bootstrap_error"].values[-1, 0]
    assert "bootstrap" not in ibu(z, x, data, bins_truth=bins, bins_reco=bins)
    for bad in (1, -2, 2.5):
        with pytest.raises(InvalidInputError, match="n_bootstrap"):
            ibu(z, x, data, bins_truth=bins, bins_reco=bins, n_bootstrap=bad)


def test_generative_unfolding_replicas_spread_is_the_statistical_error():
    """Single pass on the Gaussian toy (prior N(0.2, 0.8), truth N(0, 1), smearing 0.5): the unfolded mean
    is k·mean(x_data) + (1 − k)·μ_prior with k = 0.8²/(0.8² + 0.5²) = 0.719, so the data alone give it a
    statistical spread k·√1.25/√M; the replicas' spread must be of that size (the simulation's
    fluctuations and the training noise of 3000-event flows add to it: measured 2.0×)."""
    from sbihep.flows import generative_unfolding_replicas

    rng = np.random.default_rng(11)
    m = 3000
    z_sim = rng.normal(0.2, 0.8, m)
    x_sim = z_sim + rng.normal(0, 0.5, m)
    x_data = rng.normal(0.0, 1.0, m) + rng.normal(0, 0.5, m)
    options = dict(iterations=1, flow=dict(kind="maf", transforms=1, hidden=(32, 32)),
                   flow_training=dict(epochs=40, batch_size=128, learning_rate=3e-3))
    reps = generative_unfolding_replicas(z_sim, x_sim, x_data, n_replicas=6, seed=2, progress=False, **options)
    assert len(reps) == 6
    data_weights = reps[0].sample_weights[0, 0]  # n_samples = 1: the replica's Poisson data weights
    assert np.all(data_weights == np.round(data_weights)) and (data_weights == 0).any()
    means = [np.average(r.flat(0)[0][:, 0], weights=r.flat(0)[1]) for r in reps]
    expected = 0.719 * np.sqrt(1.25 / m)  # 0.0147
    assert 0.5 * expected < np.std(means, ddof=1) < 3.0 * expected, (np.std(means, ddof=1), expected)
    same_data = generative_unfolding_replicas(z_sim, x_sim, x_data, n_replicas=2, bootstrap=False, seed=2, progress=False, **options)
    assert np.all(same_data[0].sample_weights == 1.0)
    with pytest.raises(InvalidInputError, match="n_replicas"):
        generative_unfolding_replicas(z_sim, x_sim, x_data, n_replicas=0)
