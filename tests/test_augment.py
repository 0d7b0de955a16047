"""Training samples: distributions at θ, joint ratio and score attached correctly."""

import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError
from sbihep.events import augment
from sbihep.events import eft as eft_math
from sbihep.events.generate import generate
from sbihep.physics.lorentz import pt
from sbihep.physics.processes import get_process

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def events():
    wh = get_process("wh_lvbb")
    sample = generate(wh, 13000.0, 3000, seed=21, n_adapt=4, n_per_iteration=8000, progress=False)
    p = sample.momenta()
    roles = sample.roles
    lep, nu = p[:, roles.index("l")], p[:, roles.index("v")]
    return sample.with_observables({"pt_l": pt(lep), "pt_W": pt(lep + nu)})


@pytest.fixture(scope="module")
def space():
    return get_process("wh_lvbb").parameter_space({"cHW": (-1, 1), "cHWtil": (-1, 1), "cHq3": (-0.2, 0.2)})


def test_ratio_sample_contents(events, space):
    data = augment.ratio_training_sample(events, augment.uniform_prior(space), 4000, seed=1)
    assert data["x"].dims == ("sample", "observable") and data["theta0"].dims == ("sample", "parameter")
    assert float(data["y"].mean()) == 0.5
    assert 0 < data.attrs["effective_sample_size"] <= events.n_events
    # y=1 samples come from θ1 = SM: E[r(x,z|θ0,θ1)] over them is 1 for every θ0
    ones = data.where(data["y"] == 1, drop=True)
    r = np.exp(ones["log_r_xz"].values)
    assert abs(r.mean() - 1) < 4 * r.std() / math.sqrt(len(r))
    # θ0 within the prior's bounds, θ1 at the SM
    assert (np.abs(data["theta0"].sel(parameter="cHq3")) <= 0.2).all()
    assert (data["theta1"] == 0).all()


def test_log_r_and_scores_match_the_event_formulas(events, space):
    data = augment.ratio_training_sample(events, augment.uniform_prior(space), 50, seed=2, features="z")
    sigma = events.sigma_coefficients()
    # find each sample's event through its parton-level momenta
    z = events.data["z"].values
    for k in range(5):
        i = int(np.flatnonzero((z == data["x"].values[k]).all(1))[0])
        th0 = torch.from_numpy(data["theta0"].values[k])
        th1 = torch.from_numpy(data["theta1"].values[k])
        c = events.coefficients()[i : i + 1]
        assert float(data["log_r_xz"][k]) == pytest.approx(float(eft_math.log_joint_ratio(c, sigma, th0, th1)[0]), rel=1e-12)
        assert np.allclose(data["t_xz0"].values[k], eft_math.joint_score(c, sigma, th0)[0].numpy(), rtol=1e-12)


def test_samples_at_theta_follow_reweighted_distribution(events):
    theta = events.theta_vector({"cHW": 1.0})
    rng = np.random.default_rng(3)
    idx, ess = augment.draw_at_theta(events, theta.expand(20000, -1), rng)
    x = events.observables().sel(observable="pt_W").values
    w = events.weights({"cHW": 1.0}).numpy()
    reweighted_mean = float((w * x).sum() / w.sum())
    drawn = x[idx]
    assert abs(drawn.mean() - reweighted_mean) < 4 * drawn.std() / math.sqrt(min(ess, len(idx)))


def test_score_sample_and_samplers(events, space):
    data = augment.score_training_sample(events, 500, theta_ref={"cHW": 0.1}, seed=4)
    assert data["t_xz0"].shape == (500, 3) and "y" not in data
    g = augment.grid(space, 3)(30, np.random.default_rng(0))
    assert g.shape == (30, 3) and len(np.unique(g, axis=0)) == 27
    b = augment.benchmarks(space, [{"cHW": 0.5}, {"cHWtil": -0.5}])(4, np.random.default_rng(0))
    assert b[0, 0] == 0.5 and b[1, 1] == -0.5 and b[2, 0] == 0.5
    gauss = augment.gaussian_prior(space, 0.3)(1000, np.random.default_rng(0))
    assert (np.abs(gauss[:, 2]) <= 0.2).all()
    doubly = augment.ratio_training_sample(events, augment.uniform_prior(space), 100, theta1=augment.uniform_prior(space), seed=5)
    assert float(doubly["theta1"].std()) > 0


def test_bad_input(events, space):
    with pytest.raises(InvalidInputError, match="observables"):
        augment.ratio_training_sample(events, augment.uniform_prior(space), 10, features=["m_bb"])
    with pytest.raises(InvalidInputError, match="finite bounds"):
        augment.uniform_prior(get_process("wh_lvbb").parameter_space({"cHW": (-1, 1), "cHWtil": (-1, 1)}), {"cHWtil": (0, float("inf"))})
    with pytest.raises(InvalidInputError, match="n_samples"):
        augment.ratio_training_sample(events, augment.uniform_prior(space), 1)
