"""Simulation correction with one conditional flow (c = 0 simulation, c = 1 data) on a correlated 2-d
Gaussian toy with exact target moments, its bijection, save/load and bad input."""

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.flows.correction import SimulationCorrection
from sbihep.flows.unfolding_metrics import classifier_auc

torch.set_num_threads(1)

MEAN_SIM, COV_SIM = np.array([0.0, 0.0]), np.array([[1.0, 0.5], [0.5, 1.0]])
MEAN_DATA, COV_DATA = np.array([0.3, -0.2]), np.array([[1.3, 0.8], [0.8, 1.0]])
N = 5000


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(4)
    sim, data = rng.multivariate_normal(MEAN_SIM, COV_SIM, N), rng.multivariate_normal(MEAN_DATA, COV_DATA, N)
    corr = SimulationCorrection(2, kind="maf", transforms=1, hidden=(32, 32), seed=1)  # affine: exact for Gaussians
    corr.fit(sim, data, epochs=25, batch_size=256, learning_rate=3e-3, quiet=True)
    test_sim = rng.multivariate_normal(MEAN_SIM, COV_SIM, N)
    test_data = rng.multivariate_normal(MEAN_DATA, COV_DATA, N)
    return corr, test_sim, test_data


def test_corrected_simulation_matches_data(fitted):
    corr, sim, data = fitted
    out = corr.correct(sim)
    assert out.shape == sim.shape
    # moments of the exact data distribution (N = 5000 training events per sample: the learned maps
    # are good to a few 0.01; the uncorrected simulation is off by 0.3 in the mean and 0.3 in the covariance)
    np.testing.assert_allclose(out.mean(0), MEAN_DATA, atol=0.1)
    np.testing.assert_allclose(np.cov(out.T), COV_DATA, atol=0.12)
    # a classifier separates simulation from data but not corrected simulation from data
    before = classifier_auc(sim, data, hidden=(32, 32), epochs=15, seed=2)
    after = classifier_auc(out, data, hidden=(32, 32), epochs=15, seed=2)
    assert before > 0.6
    assert after < 0.55


def test_bijection_roundtrip_and_io(fitted, tmp_path):
    corr, sim, _ = fitted
    u = corr.to_latent(sim[:200], 0)
    np.testing.assert_allclose(corr.from_latent(u, 0), sim[:200], atol=1e-4)
    # the latent of the simulation is close to a standard normal
    u_all = corr.to_latent(sim, 0)
    np.testing.assert_allclose(u_all.mean(0), 0.0, atol=0.08)
    np.testing.assert_allclose(u_all.std(0), 1.0, atol=0.08)
    back = SimulationCorrection.load(corr.save(tmp_path / "corr"))
    np.testing.assert_array_equal(back.correct(sim[:100]), corr.correct(sim[:100]))


def test_conditions_and_bad_input():
    rng = np.random.default_rng(0)
    # the correction may depend on a shared condition y: data = sim shifted by y
    y_s, y_d = rng.uniform(-1, 1, (3000, 1)), rng.uniform(-1, 1, (3000, 1))
    sim, data = rng.normal(0, 1, (3000, 1)), rng.normal(0, 1, (3000, 1)) + y_d
    corr = SimulationCorrection(1, n_conditions=1, kind="maf", transforms=1, hidden=(16, 16))
    corr.fit(sim, data, simulation_conditions=y_s, data_conditions=y_d, epochs=20, batch_size=256, learning_rate=5e-3, quiet=True)
    y = np.array([[-0.8], [0.0], [0.8]])
    shift = corr.correct(np.zeros((3, 1)), conditions=y)[:, 0]
    np.testing.assert_allclose(shift, y[:, 0], atol=0.2)
    with pytest.raises(InvalidInputError, match="needs 1 condition"):
        corr.correct(np.zeros((3, 1)))
    with pytest.raises(ShapeError, match="conditions: expected 1 feature"):
        corr.correct(np.zeros((3, 1)), conditions=np.zeros((3, 2)))
    with pytest.raises(ShapeError, match="x: expected 1 feature"):
        corr.correct(np.zeros((3, 2)), conditions=np.zeros((3, 1)))
    with pytest.raises(InvalidInputError, match="label"):
        corr.to_latent(np.zeros((3, 1)), 2, conditions=np.zeros((3, 1)))
    plain = SimulationCorrection(2)
    with pytest.raises(InvalidInputError, match="data: no events"):
        plain.fit(np.zeros((10, 2)), np.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="simulation: 1 of the events"):
        plain.fit(np.where(np.arange(20).reshape(10, 2) == 3, np.nan, 0.0), np.zeros((10, 2)))
    with pytest.raises(InvalidInputError, match="no conditions"):
        plain.fit(np.zeros((10, 2)), np.zeros((10, 2)), data_conditions=np.zeros((10, 1)))
