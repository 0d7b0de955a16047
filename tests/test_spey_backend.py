"""The spey backend "sbihep.onnx": μ̂, CLs and the upper limit agree with the sbihep loader and pyhf."""

from __future__ import annotations

import warnings

import pytest

pyhf = pytest.importorskip("pyhf")
spey = pytest.importorskip("spey")
pytest.importorskip("onnxruntime")
import torch  # noqa: E402

from sbihep.errors import InvalidInputError  # noqa: E402
from sbihep.surrogates.labels import generate_labels, load_problem  # noqa: E402
from sbihep.surrogates.likelihood import train_surrogate  # noqa: E402
from sbihep.surrogates.loader import SurrogateLikelihood  # noqa: E402
from sbihep.surrogates.network import MLPConfig  # noqa: E402

torch.set_num_threads(1)

from _pyhf_toy import toy_spec  # noqa: E402


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    problem = load_problem(toy_spec(), bounds=[[0.0, 8.0]])
    labels = generate_labels(problem, 40, n_workers=1, progress=False, seed=0)
    path = tmp_path_factory.mktemp("spey") / "toy.onnx"
    path, _ = train_surrogate(None, output=path, labels=labels, quiet=True, seed=0,
                              config=MLPConfig(1, 2, [32, 32], 3))
    return path


@pytest.fixture(scope="module")
def pyhf_reference():
    pyhf.set_backend("numpy", "minuit")
    ws = pyhf.Workspace(toy_spec())
    model, data = ws.model(), ws.data(ws.model())
    ul = float(pyhf.infer.intervals.upper_limits.toms748_scan(data, model, 1.0, 6.0, rtol=1e-5)[0])
    pars, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    cls = {mu: float(pyhf.infer.hypotest(mu, data, model)) for mu in (1.0, 2.5)}
    return {"upper_limit": ul, "mu_hat": float(pars[model.config.poi_index]), "nll_min": 0.5 * float(twice_nll), "cls": cls}


def test_entry_point_builds_a_statistical_model(onnx_path):
    stat = spey.get_backend("sbihep.onnx")(path=str(onnx_path), analysis="toy", xsection=1.0)
    assert isinstance(stat, spey.StatisticalModel) and stat.is_asymptotic_calculator_available
    assert spey.get_backend_metadata("sbihep.onnx")["name"] == "sbihep.onnx"


def test_mu_hat_cls_and_upper_limit_agree(onnx_path, pyhf_reference):
    stat = spey.get_backend("sbihep.onnx")(path=str(onnx_path), analysis="toy")
    loader = SurrogateLikelihood(onnx_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spey's bracket search may probe μ beyond the training box
        mu_hat, nll = stat.maximize_likelihood(allow_negative_signal=False)
        ul = stat.poi_upper_limit()
        cls = {mu: 1.0 - stat.exclusion_confidence_level(poi_test=mu)[0] for mu in (1.0, 2.5)}
    # μ̂ and the minimum: spey = loader (same network) ≈ pyhf (exact)
    assert mu_hat == pytest.approx(loader.mu_hat(), abs=1e-3)
    assert mu_hat == pytest.approx(pyhf_reference["mu_hat"], abs=0.05)
    assert nll == pytest.approx(pyhf_reference["nll_min"], abs=0.01)  # absolute −ln L via the stored reference
    # upper limit: spey = loader within bisection tolerances, both ≈ pyhf
    assert ul == pytest.approx(loader.upper_limit(), rel=2e-3)
    assert ul == pytest.approx(pyhf_reference["upper_limit"], rel=0.01)
    for mu, value in cls.items():  # spey returns 1 − CLs
        assert value == pytest.approx(loader.cls([mu])["CLs"][0], abs=2e-3)
        assert value == pytest.approx(pyhf_reference["cls"][mu], abs=0.01)


def test_likelihood_values_are_half_the_surrogate_t(onnx_path):
    stat = spey.get_backend("sbihep.onnx")(path=str(onnx_path))
    loader = SurrogateLikelihood(onnx_path)
    ref = loader.metadata["nll"]["reference_nll"]
    for mu in (0.5, 2.0, 4.0):
        t_obs, t_asimov = loader.profile([mu])[0]
        assert stat.likelihood(poi_test=mu) == pytest.approx(0.5 * (t_obs + ref["observed"]), rel=1e-12)
        assert stat.asimov_likelihood(poi_test=mu) == pytest.approx(0.5 * (t_asimov + ref["asimov"]), rel=1e-12)


def test_refusals(onnx_path):
    backend = spey.get_backend("sbihep.onnx")
    with pytest.raises(InvalidInputError, match="signal_yields"):
        backend(path=str(onnx_path), signal_yields=[1.0])
    with pytest.raises(InvalidInputError, match="path"):
        backend(path=str(onnx_path) + ".missing")
    stat = backend(path=str(onnx_path))
    with pytest.raises(InvalidInputError, match="apriori"):
        stat.exclusion_confidence_level(poi_test=1.0, expected=spey.ExpectationType.apriori)
    with pytest.raises(InvalidInputError, match="data"):
        stat.likelihood(poi_test=1.0, data=[50.0, 30.0])
