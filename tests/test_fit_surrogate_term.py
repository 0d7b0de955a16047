"""An ONNX likelihood surrogate as a fit term: fits, scans and combinations agree with pyhf."""

from __future__ import annotations

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")
import torch  # noqa: E402

from sbihep.errors import InvalidInputError, OutOfBoundsError, ShapeError  # noqa: E402
from sbihep.fit import GaussianTerm, Likelihood, minimize  # noqa: E402
from sbihep.fit.surrogate_term import SurrogateTerm  # noqa: E402
from sbihep.params import Parameter, ParameterSpace  # noqa: E402
from sbihep.surrogates.labels import generate_labels, load_problem  # noqa: E402
from sbihep.surrogates.likelihood import train_surrogate  # noqa: E402
from sbihep.surrogates.loader import SurrogateLikelihood  # noqa: E402

torch.set_num_threads(1)

SIGNAL, BACKGROUND, UNCERTAINTY, OBSERVED = [5.0, 3.0], [50.0, 30.0], [5.0, 4.0], [60.0, 33.0]


def spec() -> dict:
    model = pyhf.simplemodels.uncorrelated_background(signal=SIGNAL, bkg=BACKGROUND, bkg_uncertainty=UNCERTAINTY)
    return {
        "channels": [{"name": "SR", "samples": model.spec["channels"][0]["samples"]}],
        "observations": [{"name": "SR", "data": OBSERVED}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


@pytest.fixture(scope="module")
def surrogate(tmp_path_factory):
    labels = generate_labels(load_problem(spec(), bounds=[[0.0, 6.0]]), 40, n_workers=1, progress=False, seed=0)
    path, _ = train_surrogate(None, output=tmp_path_factory.mktemp("term") / "toy.onnx", labels=labels, quiet=True, seed=0)
    return SurrogateLikelihood(path, out_of_bounds="raise")


def pyhf_profile(mu: float) -> float:
    """−2 lnL(μ, θ̂̂) − min with pyhf + MINUIT."""
    pyhf.set_backend("numpy", "minuit")
    ws = pyhf.Workspace(spec())
    model, data = ws.model(), ws.data(ws.model())
    free = float(pyhf.infer.mle.fit(data, model, return_fitted_val=True)[1])
    return float(pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)[1]) - free


def test_fit_with_a_surrogate_term_reproduces_pyhf(surrogate):
    lik = Likelihood([SurrogateTerm(surrogate)])
    assert lik.names == ("mu",)
    result = minimize(lik)
    assert result.converged
    pyhf.set_backend("numpy", "minuit")
    ws = pyhf.Workspace(spec())
    mu_hat_pyhf = float(pyhf.infer.mle.fit(ws.data(ws.model()), ws.model())[ws.model().config.poi_index])
    assert result.values["mu"] == pytest.approx(mu_hat_pyhf, abs=0.05)
    assert result.values["mu"] == pytest.approx(surrogate.mu_hat(), abs=0.02)
    for mu in (0.0, 1.0, 3.0):  # −2ΔlnL of the term = pyhf's profile
        assert 2 * (lik.nll({"mu": mu}) - result.nll) == pytest.approx(pyhf_profile(mu), abs=0.05)


def test_inputs_from_physics_parameters_and_a_shared_constraint(surrogate):
    """μ = κ² (a coupling modifier κ), combined with a Gaussian measurement of κ sharing the name."""
    space = ParameterSpace([Parameter("kappa", 1.0, (0.0, 2.4))])
    term = SurrogateTerm(surrogate, parameters=space, inputs=lambda th: np.array([th["kappa"] ** 2]))
    alone = minimize(Likelihood([term]))
    measured = GaussianTerm([1.0], [[0.1**2]], [0.0], space, linear={"kappa": np.array([1.0])})
    combined = minimize(Likelihood([term, measured]))
    assert alone.converged and combined.converged
    assert alone.values["kappa"] == pytest.approx(np.sqrt(surrogate.mu_hat()), abs=0.02)
    # the combination lies between the two measurements
    low, high = sorted([alone.values["kappa"], 1.0])
    assert low < combined.values["kappa"] < high


def test_bad_input(surrogate):
    with pytest.raises(InvalidInputError, match="data"):
        SurrogateTerm(surrogate, data="expected")
    with pytest.raises(InvalidInputError, match="not parameters"):
        SurrogateTerm(surrogate, parameters=ParameterSpace([Parameter("kappa", 1.0, (0.0, 2.0))]))
    term = SurrogateTerm(surrogate, parameters=ParameterSpace([Parameter("kappa", 1.0, (0.0, 5.0))]),
                         inputs=lambda th: np.array([th["kappa"] ** 2]))
    with pytest.raises(OutOfBoundsError):
        term.nll({"kappa": 3.0})  # μ = 9 is outside the training box [0, 6]
    wrong = SurrogateTerm(surrogate, parameters=ParameterSpace([Parameter("kappa", 1.0, (0.0, 2.0))]),
                          inputs=lambda th: np.array([th["kappa"], 1.0]))
    with pytest.raises(ShapeError, match="takes"):
        wrong.nll({"kappa": 1.0})


def test_fit_config_with_a_surrogate(surrogate, tmp_path):
    from sbihep.fit.run import build_likelihood, load_config

    config = tmp_path / "fit.toml"
    config.write_text(f'[model]\nkind = "surrogate"\nfile = "{surrogate.path}"\ndata = "asimov"\n')
    lik = build_likelihood(load_config(config), tmp_path)
    assert minimize(lik).values["mu"] == pytest.approx(0.0, abs=0.05)  # the μ = 0 Asimov data
    config.write_text(f'[model]\nkind = "surrogate"\nfile = "{surrogate.path}"\n[data]\ntoy_seed = 1\n')
    with pytest.raises(InvalidInputError, match="its own data"):
        build_likelihood(load_config(config), tmp_path)
