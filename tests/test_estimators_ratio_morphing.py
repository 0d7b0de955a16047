"""Morphing-aware ratio estimators: the exact polynomial θ-structure of an EFT built into the
parametrised ratio networks, trained with the usual ratio losses, on a toy whose ratio is known exactly."""

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators import RatioEstimator
from sbihep.estimators.onnx_export import export_onnx, load_onnx
from sbihep.events import augment
from sbihep.events import eft as eft_math
from sbihep.params import Parameter, ParameterSpace

from _eft_toy import SPACE, exact_log_rho, toy_events  # noqa: E402

torch.set_num_threads(1)
THETAS = np.array([[0.5, 0.0], [0.0, -0.8], [-1.0, 1.0], [0.7, 0.4], [-0.3, -0.6]])


def exact_log_r(x, theta, sigma_c, order="quadratic"):
    """log p(x|θ)/p(x|SM) = log ρ(x|θ) − log σ(θ)/σ(SM), σ's polynomial from a large sample."""
    m = eft_math.monomials(torch.as_tensor(np.atleast_2d(theta)), order).numpy()[0]
    return exact_log_rho(x, theta, order) - np.log(m @ sigma_c / sigma_c[0])


@pytest.fixture(scope="module")
def toy():
    events = toy_events(40000, seed=3)
    data = augment.ratio_training_sample(events, augment.uniform_prior(SPACE), 16000, features=["x1", "x2"], seed=5)
    sigma_c = np.asarray(toy_events(400000, seed=99).sigma_coefficients())
    x_test = np.random.default_rng(7).uniform(-1, 1, (4000, 2))
    w_sm = 1 + 0.5 * x_test[:, 0]  # the toy's SM density, up to a constant
    return data, sigma_c, x_test, w_sm / w_sm.sum()


def _mse(est, toy):
    _, sigma_c, x, w = toy
    return float(np.mean([np.sum(w * (est.log_ratio(x, th) - exact_log_r(x, th, sigma_c)) ** 2) for th in THETAS]))


@pytest.fixture(scope="module")
def alices(toy):
    est = RatioEstimator(["x1", "x2"], SPACE, hidden=(32, 32), seed=0, architecture="morphing")
    est.fit(toy[0], "alices", epochs=25, batch_size=256, quiet=True)
    return est


def test_morphing_alices_learns_the_exact_ratio_better_than_the_plain_network(toy, alices):
    _, sigma_c, x, w = toy
    scale = float(np.mean([np.sum(w * exact_log_r(x, th, sigma_c) ** 2) for th in THETAS]))
    plain = RatioEstimator(["x1", "x2"], SPACE, hidden=(32, 32), seed=0)
    plain.fit(toy[0], "alices", epochs=25, batch_size=256, quiet=True)
    morphing_mse, plain_mse = _mse(alices, toy), _mse(plain, toy)
    assert morphing_mse < 0.07 * scale, (morphing_mse, scale)  # measured 0.046 of the scale, the plain network 0.12
    assert morphing_mse < 0.5 * plain_mse, (morphing_mse, plain_mse)


def test_theta_dependence_is_exactly_the_eft_polynomial(alices, toy):
    """exp(log r̂(x|θ, SM)) · Ẑ(θ) is a quadratic polynomial in θ: six θ points fix it, a seventh is predicted."""
    x = toy[2][:50]
    net = alices.network
    rng = np.random.default_rng(1)
    thetas = rng.uniform(-1, 1, (7, 2))
    with torch.no_grad():
        log_z = net.log_sigma_ratio(torch.as_tensor(thetas, dtype=torch.float32)).double().numpy()
    rho = np.stack([np.exp(alices.log_ratio(x, th) + log_z[k]) for k, th in enumerate(thetas)])  # (7, N)
    m = eft_math.monomials(torch.as_tensor(thetas), "quadratic").numpy()  # (7, 6)
    coefficients = np.linalg.solve(m[:6], rho[:6])
    np.testing.assert_allclose(m[6] @ coefficients, rho[6], rtol=2e-4)
    np.testing.assert_array_equal(alices.log_ratio(x, thetas[0], thetas[0]), 0.0)


def test_coefficients_reproduce_the_log_ratio(alices, toy):
    """log r̂(x|θ, SM) = log(c(x)·m(θ)) − log Ẑ(θ) with the exposed, θ-independent coefficients."""
    x = toy[2][:200]
    c = alices.coefficients(x)
    assert c.dims == ("event", "component") and list(c.component.values) == eft_math.monomial_names(list(SPACE.names), "quadratic")
    np.testing.assert_array_equal(c.sel(component="1").values, 1.0)
    for th in THETAS:
        with torch.no_grad():
            log_z = float(alices.network.log_sigma_ratio(torch.as_tensor(th[None], dtype=torch.float32)))
        m = eft_math.monomials(torch.as_tensor(th[None]), "quadratic").numpy()[0]
        np.testing.assert_allclose(np.log(c.values @ m) - log_z, alices.log_ratio(x, th), atol=2e-5)
    with pytest.raises(InvalidInputError, match="architecture='morphing'"):
        RatioEstimator(["x1", "x2"], SPACE, hidden=(8,)).coefficients(x)


def test_normalised_on_the_sm_sample(alices, toy):
    data = toy[0]
    x_sm = data["x"].values[data["y"].values == 1]
    assert alices.training["normalised_on_sm_events"] == len(x_sm)
    for th in THETAS:
        assert np.mean(np.exp(alices.log_ratio(x_sm, th))) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("order", ["quadratic", "linear"])
def test_onnx_export_and_save_load(toy, tmp_path, order):
    data = toy[0].isel(sample=slice(0, None, 8))
    if order == "linear":  # keep θ small enough that the linear ρ stays positive on the toy
        space = ParameterSpace([Parameter("ca", 0.0, (-0.2, 0.2)), Parameter("cb", 0.0, (-0.2, 0.2))])
        data = augment.ratio_training_sample(toy_events(4000, 1, "linear"), augment.uniform_prior(space), 2000, features=["x1", "x2"], seed=2)
    else:
        space = SPACE
    est = RatioEstimator(["x1", "x2"], space, hidden=(16,), activation="silu", seed=1, architecture="morphing", order=order)
    est.fit(data, "alice", epochs=2, quiet=True)
    path = export_onnx(est, tmp_path / "m.onnx")  # checks ONNX against torch to 1e-5 itself
    x = toy[2][:300]
    th0 = np.random.default_rng(3).uniform(-0.2, 0.2, (300, 2))
    np.testing.assert_allclose(load_onnx(path).log_ratio(x, th0), est.log_ratio(x, th0), atol=1e-5)
    loaded = RatioEstimator.load(est.save(tmp_path / "est"))
    assert loaded.architecture == "morphing" and loaded.order == order
    np.testing.assert_array_equal(loaded.log_ratio(x, th0), est.log_ratio(x, th0))


def test_bad_architecture_and_parameters():
    with pytest.raises(InvalidInputError, match="architecture"):
        RatioEstimator(["x1"], SPACE, architecture="polynomial")
    shifted = ParameterSpace([Parameter("mu", 1.0, (0.0, 3.0))])
    with pytest.raises(InvalidInputError, match="SM value 0.*mu"):
        RatioEstimator(["x1"], shifted, architecture="morphing")


@pytest.mark.parametrize("order", ["quadratic", "linear"])
def test_cross_section_normalisation_is_the_samples_exact_sigma(toy, order):
    """normalisation="cross_section": Ẑ(θ) is the base events' σ(θ)/σ(SM) exactly, fixed during training."""
    if order == "linear":
        space = ParameterSpace([Parameter("ca", 0.0, (-0.2, 0.2)), Parameter("cb", 0.0, (-0.2, 0.2))])
        events = toy_events(4000, 1, "linear")
    else:
        space, events = SPACE, toy_events(4000, 1)
    data = augment.weighted_ratio_training_sample(events, augment.uniform_prior(space), 2, features=["x1", "x2"], seed=2)
    sigma = events.sigma_coefficients().numpy()
    np.testing.assert_array_equal(data.attrs["sigma_coefficients"], sigma)
    est = RatioEstimator(["x1", "x2"], space, hidden=(16,), seed=1, architecture="morphing", order=order)
    est.fit(data, "alice", epochs=2, quiet=True, normalisation="cross_section")
    thetas = np.random.default_rng(4).uniform(-0.2, 0.2, (6, 2)) * (5 if order == "quadratic" else 1)
    with torch.no_grad():
        log_z = est.network.log_sigma_ratio(torch.as_tensor(thetas, dtype=torch.float32)).double().numpy()
    m = eft_math.monomials(torch.as_tensor(thetas), order).numpy()
    np.testing.assert_allclose(log_z, np.log(m @ sigma / sigma[0]), atol=2e-6)
    assert est.training["normalisation"] == "cross_section"
    assert est.network.log_sigma_raw.requires_grad  # unfrozen again after training


def test_cross_section_normalisation_bad_input(toy):
    data = toy[0].isel(sample=slice(0, 2000))
    est = RatioEstimator(["x1", "x2"], SPACE, hidden=(8,), architecture="morphing")
    with pytest.raises(InvalidInputError, match="normalisation must be one of"):
        est.fit(data, "alice", epochs=1, quiet=True, normalisation="exact")
    bare = data.copy()
    bare.attrs = {k: v for k, v in data.attrs.items() if k != "sigma_coefficients"}
    with pytest.raises(InvalidInputError, match="σ\\(θ\\) polynomial at quadratic order"):
        est.fit(bare, "alice", epochs=1, quiet=True, normalisation="cross_section")
    with pytest.raises(InvalidInputError, match="expected 6 at quadratic order"):
        est.network.set_sigma_polynomial(torch.ones(3))
    with pytest.raises(InvalidInputError, match="positive semi-definite"):
        est.network.set_sigma_polynomial(torch.tensor([1.0, 0.0, 0.0, -1.0, 0.0, 1.0]))
    with pytest.raises(InvalidInputError, match="σ\\(SM\\)"):
        est.network.set_sigma_polynomial(torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 1.0]))


@pytest.mark.parametrize("order", ["quadratic", "linear"])
def test_restricted_sigma_polynomial_holds_the_other_operators_at_the_sm(order):
    """σ(θ) over (a, b, c) restricted to (c, a) — another order — equals the full polynomial at b = 0."""
    ops = ["a", "b", "c"]
    c = torch.as_tensor(np.random.default_rng(4).normal(size=eft_math.n_monomials(3, order)))
    restricted = eft_math.restrict_coefficients(c, ops, order, ["c", "a"])
    for theta_c, theta_a in [(0.3, -0.7), (-1.2, 0.4)]:
        full = eft_math.monomials(torch.tensor([theta_a, 0.0, theta_c]), order) @ c
        assert float(eft_math.monomials(torch.tensor([theta_c, theta_a]), order) @ restricted) == pytest.approx(float(full), rel=1e-12)
    with pytest.raises(InvalidInputError, match="distinct names"):
        eft_math.restrict_coefficients(c, ops, order, ["a", "d"])
    with pytest.raises(ShapeError, match="expected"):
        eft_math.restrict_coefficients(c[:-1], ops, order, ["a"])
