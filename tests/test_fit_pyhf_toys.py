"""PyhfTerm.toy / asimov against pyhf's own pdf (``model.make_pdf(θ).sample``, ``expected_data``).

A three-bin workspace with every constraint kind: lumi and normsys and staterror (Gaussian
constraints, σ = 0.05, 1 and the relative stat. uncertainties) and shapesys (Poisson constraints).
"""

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")

from sbihep.errors import InvalidInputError  # noqa: E402
from sbihep.fit import Likelihood, PyhfTerm  # noqa: E402

SPEC = {
    "channels": [{"name": "SR", "samples": [
        {"name": "sig", "data": [5.0, 3.0, 2.0],
         "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, {"name": "lumi", "type": "lumi", "data": None}]},
        {"name": "bkg", "data": [50.0, 30.0, 20.0],
         "modifiers": [{"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                       {"name": "staterror_SR", "type": "staterror", "data": [2.0, 3.0, 2.5]},
                       {"name": "shape", "type": "shapesys", "data": [5.0, 4.0, 3.0]}]}]}],
    "observations": [{"name": "SR", "data": [52.0, 29.0, 21.0]}],
    "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.05], "bounds": [[0.5, 1.5]], "inits": [1.0]}]}}],
    "version": "1.0.0",
}


@pytest.fixture(autouse=True)
def numpy_backend():
    pyhf.set_backend("numpy")
    yield


def theta_of(term):
    theta = dict(term.init)
    theta.update(mu=1.5, norm=0.7, shape_1=1.2, staterror_SR_2=0.9, lumi=1.02)
    return theta


def test_toy_mean_and_spread_match_pyhf_sampling():
    term = PyhfTerm(SPEC)
    theta = theta_of(term)
    n = 4000
    rng = np.random.default_rng(1)
    ours = np.array([term.toy(theta, rng).data for _ in range(n)])
    expected = term.expected_data(theta)
    np.random.seed(2)  # pyhf samples from numpy's global state
    theirs = np.asarray(term.model.make_pdf(pyhf.tensorlib.astensor(term._vector(theta))).sample((n,)))
    assert ours.shape == theirs.shape == (n, expected.size)
    # the mean is the expected data (main and aux), the spread pyhf's: component by component
    se = theirs.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(ours.mean(axis=0) - expected) < 5 * se)
    assert np.all(np.abs(theirs.mean(axis=0) - expected) < 5 * se)
    np.testing.assert_allclose(ours.std(axis=0), theirs.std(axis=0), rtol=0.08)
    # main data and Poisson (shapesys) auxiliary data are counts; Gaussian auxiliary data are not
    layout = {kind: idx for idx, kind, _, _ in term._constraint_layout(term._vector(theta))}
    nmain = term.model.config.nmaindata
    counts = np.concatenate([np.arange(nmain), nmain + layout["poisson"]])
    assert np.all(ours[:, counts] == np.round(ours[:, counts]))
    assert not np.all(ours[:, nmain + layout["normal"]] == np.round(ours[:, nmain + layout["normal"]]))


def test_toy_is_reproducible_and_rng_driven():
    term = PyhfTerm(SPEC)
    theta = theta_of(term)
    a = term.toy(theta, np.random.default_rng(7)).data
    np.random.seed(0)
    b = term.toy(theta, np.random.default_rng(7)).data
    np.random.seed(1)  # numpy's global state plays no part
    c = term.toy(theta, np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, term.toy(theta, np.random.default_rng(8)).data)
    lik = Likelihood([term])
    toy = lik.toy(theta, np.random.default_rng(7))
    np.testing.assert_array_equal(toy.terms[0].data, a)
    with pytest.raises(InvalidInputError, match="rng"):
        term.toy(theta, 7)


def test_asimov_is_pyhfs():
    pyhf.set_backend("numpy", "minuit")
    term = PyhfTerm(SPEC)
    model = term.model
    data = term.data
    asimov_data, pars = pyhf.infer.calculators.generate_asimov_data(
        0.0, data, model, model.config.suggested_init(), model.config.suggested_bounds(),
        model.config.suggested_fixed(), return_fitted_pars=True)
    theta = dict(zip(term.parameters.names, np.asarray(pars, dtype=float)))
    np.testing.assert_allclose(term.asimov(theta).data, np.asarray(asimov_data), rtol=1e-12)
    # the Asimov data of θ are the toys' mean, aux data included (Gaussian aux = θ_i, Poisson aux = τ_i θ_i)
    asimov = term.asimov(theta).data
    nmain = model.config.nmaindata
    for idx, kind, loc, _ in term._constraint_layout(term._vector(theta)):
        np.testing.assert_allclose(asimov[nmain + idx], loc, rtol=1e-12)
