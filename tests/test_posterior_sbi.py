"""sbi posteriors (NPE, NLE, NRE) on simulators with exact posteriors; SBC/TARP; save/load; bad input."""

import math

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, OutOfBoundsError, ShapeError
from sbihep.estimators import posterior as P
from sbihep.estimators.toys import GaussianToy
from sbihep.events.eventset import EventSet
from sbihep.params import Parameter, ParameterSpace

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# σ_total = 0.5, 4 draws per observation: exact posterior N(x̄, 0.25²) truncated to [−2, 2]
SIM = P.GaussianToySimulator(GaussianToy(sigma_z=0.4, sigma_x=0.3), n_obs=4)
FAST = dict(n_simulations=1500, training=dict(max_num_epochs=40, learning_rate=2e-3, training_batch_size=256), seed=1, quiet=True)
OBSERVATIONS = [np.array([0.3, 0.1, 0.5, -0.2]), np.array([-1.2, -0.9, -1.5, -1.0])]


def _check_against_exact(result, tol_mean_sigma, tol_std_rel):
    for xo in OBSERVATIONS:
        exact = SIM.exact_posterior(xo)
        s = result.summary(xo, 2000, seed=3)
        assert s["mean"].dims == ("parameter",) and list(s["parameter"].values) == ["theta"]
        assert abs(float(s["mean"][0]) - exact.mean()) < tol_mean_sigma * exact.std()
        assert abs(float(s["std"][0]) / exact.std() - 1) < tol_std_rel


@pytest.fixture(scope="module")
def npe():
    return P.fit_posterior("npe", SIM, network=dict(hidden_features=20, num_transforms=2), n_diagnostic=150, n_posterior_samples=150, **FAST)


def test_npe_recovers_the_analytic_posterior(npe):
    _check_against_exact(npe, tol_mean_sigma=0.3, tol_std_rel=0.2)
    samples = npe.sample(OBSERVATIONS[0], 500, seed=0)
    assert samples.dims == ("sample", "parameter") and samples.shape == (500, 1)
    assert np.array_equal(samples.values, npe.sample(OBSERVATIONS[0], 500, seed=0).values)  # seeded
    # MAP of the truncated normal is x̄ (inside the bounds)
    assert abs(float(npe.map(OBSERVATIONS[0])[0]) - OBSERVATIONS[0].mean()) < 0.3 * 0.25
    # normalised log density matches the exact one within ±1σ of the mean
    exact = SIM.exact_posterior(OBSERVATIONS[0])
    theta = exact.mean() + 0.25 * np.linspace(-1.0, 1.0, 5)
    assert np.abs(npe.log_prob(theta[:, None], OBSERVATIONS[0]) - exact.logpdf(theta)).max() < 0.25
    # a batch of observations samples with dims (sample, observation, parameter)
    assert npe.sample(np.stack(OBSERVATIONS), 50).dims == ("sample", "observation", "parameter")


def test_trained_npe_diagnostics_are_sane(npe):
    d = npe.diagnostics
    assert d["sbc_rank"].shape == (150, 1)
    assert float(d["sbc_rank"].min()) >= 0 and float(d["sbc_rank"].max()) <= 150
    assert float(d["sbc_ks_pvalue"][0]) > 0.01
    assert abs(float(d["tarp_atc"])) < 0.05
    # coverage curve starts at 0, ends at 1 and lies near the diagonal
    ecp, alpha = d["tarp_ecp"].values, d["credibility"].values
    assert ecp[0] == 0 and ecp[-1] == pytest.approx(1.0)
    assert np.abs(ecp - alpha).max() < 0.15
    assert P.calibration_issues(d) == []


class _ExactToyPosterior:
    """The toy's exact posterior, widths scaled by ``scale`` (1: correct; 0.5: too narrow)."""

    def __init__(self, scale):
        self.scale = scale

    def sample_batched(self, sample_shape, x, show_progress_bars=False):
        rng = np.random.default_rng(11)
        out = []
        for row in np.asarray(x, dtype=np.float64):
            post = SIM.exact_posterior(row)
            draws = post.ppf(rng.random(sample_shape))
            out.append(post.mean() + self.scale * (draws - post.mean()))
        return torch.as_tensor(np.stack(out, axis=-1)[..., None], dtype=torch.float32)


@pytest.fixture(scope="module")
def held_out():
    rng = np.random.default_rng(7)
    theta = rng.uniform(-2, 2, (300, 1))
    return theta, SIM(theta, rng)


def test_diagnostics_pass_the_exact_posterior_and_flag_wrong_widths(held_out):
    theta, x = held_out
    good = P.diagnose(_ExactToyPosterior(1.0), theta, x, parameter_names=["theta"], n_posterior_samples=200, seed=2)
    assert P.calibration_issues(good) == []
    assert np.abs(good["tarp_ecp"].values - good["credibility"].values).max() < 0.1
    narrow = P.diagnose(_ExactToyPosterior(0.5), theta, x, parameter_names=["theta"], n_posterior_samples=200, seed=2)
    assert float(narrow["sbc_ks_pvalue"][0]) < 1e-4 and float(narrow["tarp_atc"]) < -0.05
    assert any("too narrow" in issue for issue in P.calibration_issues(narrow))
    wide = P.diagnose(_ExactToyPosterior(2.0), theta, x, parameter_names=["theta"], n_posterior_samples=200, seed=2)
    assert float(wide["tarp_atc"]) > 0.05 and P.calibration_issues(wide)


@pytest.mark.parametrize("method", ["nle", "nre"])
def test_nle_and_nre_recover_the_analytic_posterior(method):
    network = dict(hidden_features=20) if method == "nre" else dict(hidden_features=20, num_transforms=2)
    options = {**FAST, "training": {**FAST["training"], "max_num_epochs": 80}}  # 40 epochs leave NLE ~30% too wide
    result = P.fit_posterior(method, SIM, network=network, sample_with="rejection", n_diagnostic=0, **options)
    assert result.diagnostics is None
    _check_against_exact(result, tol_mean_sigma=0.35, tol_std_rel=0.25)


def test_save_load_round_trip(npe, tmp_path):
    npe.save(tmp_path / "npe")
    back = P.load_posterior(tmp_path / "npe")
    theta = np.linspace(-1.0, 1.0, 9)[:, None]
    for xo in OBSERVATIONS:
        assert np.array_equal(back.log_prob(theta, xo, leakage_correction=False), npe.log_prob(theta, xo, leakage_correction=False))
        assert np.allclose(back.log_prob(theta, xo), npe.log_prob(theta, xo), rtol=0, atol=1e-6)
    assert np.array_equal(back.sample(OBSERVATIONS[0], 100, seed=4).values, npe.sample(OBSERVATIONS[0], 100, seed=4).values)
    assert back.config["sbihep_version"] and back.method == "npe"
    assert np.array_equal(back.diagnostics["sbc_rank"].values, npe.diagnostics["sbc_rank"].values)
    assert (tmp_path / "npe" / "state_dict.pt").exists() and not list((tmp_path / "npe").glob("*.pkl"))


def test_bad_input_raises_sbihep_errors(npe):
    with pytest.raises(OutOfBoundsError, match="theta"):
        npe.log_prob(np.array([[2.5]]), OBSERVATIONS[0])
    with pytest.raises(ShapeError, match="x"):
        npe.sample(np.zeros(3))
    with pytest.raises(InvalidInputError, match="NaN"):
        npe.sample(np.array([0.1, np.nan, 0.0, 0.0]))
    with pytest.raises(InvalidInputError, match="NaN"):
        npe.log_prob(np.array([[np.nan]]), OBSERVATIONS[0])
    with pytest.raises(InvalidInputError, match="method"):
        P.fit_posterior("abc", SIM)
    theta = np.linspace(-1, 3, 100)[:, None]
    with pytest.raises(OutOfBoundsError, match="theta"):
        P.fit_posterior("npe", (theta, theta), space=SIM.space, n_diagnostic=0)
    x = np.ones((100, 2))
    x[5, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        P.fit_posterior("npe", (np.zeros((100, 1)), x), space=SIM.space, n_diagnostic=0)
    with pytest.raises(InvalidInputError, match="simulator"):
        P.fit_posterior("npe", lambda th, rng: np.full((len(th), 2), np.nan), space=SIM.space, n_simulations=60, n_diagnostic=0, quiet=True)
    with pytest.raises(InvalidInputError, match="embedding"):
        P.fit_posterior("nle", SIM, embedding="deepset")


# ---- EventSet simulator: a one-operator linear "EFT" with an exact density -------------------
K = 1.8  # p(v|c) = 1 + K c (v − 1/2) on [0, 1]


@pytest.fixture(scope="module")
def toy_events():
    n = 4000
    v = (np.arange(n) + 0.5) / n  # Σ (v − ½) = 0: σ(c) is exactly independent of c
    momenta = np.zeros((n, 1, 4))
    momenta[..., 0] = 1.0
    coefficients = np.stack([np.full(n, 1.0 / n), K * (v - 0.5) / n], axis=1)
    events = EventSet.from_arrays(momenta=momenta, roles=("a",), coefficients=coefficients, operators=["c"], order="linear")
    return events.with_observables({"v": v})


def _exact_set_posterior(x, grid=np.linspace(-1, 1, 2001)):
    logl = np.log1p(K * grid[:, None] * (x[None, :] - 0.5)).sum(1)
    w = np.exp(logl - logl.max())
    w /= w.sum()
    mean = (w * grid).sum()
    return mean, math.sqrt((w * (grid - mean) ** 2).sum())


def test_eventset_simulator_draws_sets_at_theta(toy_events):
    space = ParameterSpace([Parameter("c", 0.0, (-1.0, 1.0))])
    sim = P.EventSetSimulator(toy_events, ["v"], 30, space)
    assert sim.event_shape == (30, 1)
    rng = np.random.default_rng(0)
    v = np.asarray(toy_events.observables().values[:, 0])
    for c in (-1.0, 0.7):
        x = sim(np.full((400, 1), c), rng)
        assert x.shape == (400, 30)
        expected = 0.5 + K * c * ((v - 0.5) ** 2).mean()
        assert abs(x.mean() - expected) < 4 * x.std() / math.sqrt(x.size)
    with pytest.raises(InvalidInputError, match="operators"):
        P.EventSetSimulator(toy_events, ["v"], 30, ParameterSpace([Parameter("cHW", 0.0, (-1, 1))]))
    with pytest.raises(InvalidInputError, match="observables"):
        P.EventSetSimulator(toy_events, ["pt"], 30, space)


def test_npe_with_deepset_embedding_on_event_sets(toy_events, tmp_path):
    space = ParameterSpace([Parameter("c", 0.0, (-1.0, 1.0))])
    sim = P.EventSetSimulator(toy_events, ["v"], 30, space)
    result = P.fit_posterior(
        "npe", sim, embedding={"type": "deepset", "n_out": 8, "hidden": [32, 32]}, n_simulations=1500,
        network=dict(hidden_features=20, num_transforms=2), training=dict(max_num_epochs=40, learning_rate=2e-3, training_batch_size=256),
        n_diagnostic=0, seed=3, quiet=True,
    )
    assert result.config["embedding"]["event_shape"] == [30, 1]
    rng = np.random.default_rng(9)
    for c in (-0.6, 0.5):
        x = sim(np.array([[c]]), rng)[0]
        mean, std = _exact_set_posterior(x)
        s = result.summary(x, 2000)
        assert abs(float(s["mean"][0]) - mean) < 0.4 * std
        assert abs(float(s["std"][0]) / std - 1) < 0.3
        # the embedding is permutation invariant: shuffling the events leaves the posterior unchanged
        shuffled = rng.permutation(x)
        assert np.allclose(result.log_prob([[0.1]], shuffled, leakage_correction=False), result.log_prob([[0.1]], x, leakage_correction=False), atol=1e-4)
    # the embedding (its standardisation buffers included) survives save/load
    back = P.load_posterior(result.save(tmp_path / "deepset"))
    assert np.array_equal(back.log_prob([[0.1], [-0.4]], x, leakage_correction=False), result.log_prob([[0.1], [-0.4]], x, leakage_correction=False))
