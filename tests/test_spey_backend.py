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
    labels = generate_labels(problem, 40, n_check=12, n_workers=1, progress=False, seed=0)
    path = tmp_path_factory.mktemp("spey") / "toy.onnx"
    path, _ = train_surrogate(None, output=path, labels=labels, quiet=True, seed=0,
                              config=MLPConfig(1, 3, [32, 32], 3))
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
        t_obs, t_asimov, t_prefit = loader.profile([mu])[0]
        assert stat.likelihood(poi_test=mu) == pytest.approx(0.5 * (t_obs + ref["observed"]), rel=1e-12)
        assert stat.asimov_likelihood(poi_test=mu) == pytest.approx(0.5 * (t_asimov + ref["asimov"]), rel=1e-12)
        apriori = spey.ExpectationType.apriori
        assert stat.likelihood(poi_test=mu, expected=apriori) == pytest.approx(0.5 * (t_prefit + ref["asimov_prefit"]), rel=1e-12)


def test_refusals(onnx_path):
    backend = spey.get_backend("sbihep.onnx")
    with pytest.raises(InvalidInputError, match="signal_yields"):
        backend(path=str(onnx_path), signal_yields=[1.0])
    with pytest.raises(InvalidInputError, match="path"):
        backend(path=str(onnx_path) + ".missing")
    stat = backend(path=str(onnx_path))
    with pytest.raises(InvalidInputError, match="q0"):
        stat.asimov_likelihood(poi_test=1.0, test_statistics="q0")
    with pytest.raises(InvalidInputError, match="data"):
        stat.likelihood(poi_test=1.0, data=[50.0, 30.0])


def test_apriori_expected_limits_match_pyhf_on_prefit_asimov(onnx_path):
    """Issue 24: spey's a priori expected CLs (pre-fit Asimov data as data) was refused; it now uses the
    t_asimov_prefit output and matches pyhf's median expected CLs on the pre-fit Asimov data."""
    pyhf.set_backend("numpy", "minuit")
    ws = pyhf.Workspace(toy_spec())
    model = ws.model()
    init = model.config.suggested_init()
    init[model.config.poi_index] = 0.0
    prefit = model.expected_data(init)  # zero signal, nuisances at their initial values (with aux data)
    stat = spey.get_backend("sbihep.onnx")(path=str(onnx_path))
    loader = SurrogateLikelihood(onnx_path)
    for mu in (1.0, 2.5):
        _, exp_band = pyhf.infer.hypotest(mu, prefit, model, return_expected_set=True)
        want = float(exp_band[2])  # median expected CLs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = spey_cls = 1.0 - stat.exclusion_confidence_level(poi_test=mu, expected=spey.ExpectationType.apriori)[2]
        assert spey_cls == pytest.approx(want, abs=0.01)
        assert loader.cls([mu], expected="apriori")["CLs"][0] == pytest.approx(want, abs=0.01)
        assert got == pytest.approx(loader.cls([mu], expected="apriori")["CLs"][0], abs=2e-3)
    ul_pyhf = float(pyhf.infer.intervals.upper_limits.toms748_scan(prefit, model, 1.0, 6.0, rtol=1e-5)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ul_spey = stat.poi_upper_limit(expected=spey.ExpectationType.apriori)
    assert ul_spey == pytest.approx(ul_pyhf, rel=0.01)
    assert loader.upper_limit(expected="apriori") == pytest.approx(ul_pyhf, rel=0.01)


def test_apriori_refused_on_a_file_without_the_prefit_output(tmp_path):
    from sbihep.surrogates.network import train_ensemble
    from sbihep.surrogates.onnx import export_onnx

    problem = load_problem(toy_spec(), bounds=[[0.0, 8.0]])
    labels = generate_labels(problem, 10, prefit=False, n_workers=1, progress=False, seed=0)
    assert labels.output_names == ("t_observed", "t_asimov") and labels.t.shape[1] == 2
    ens, _ = train_ensemble(labels.x, labels.t, MLPConfig(1, 2, [8], 2), adam_epochs=20, lbfgs_rounds=2, quiet=True)
    path = export_onnx(ens, labels, tmp_path / "old_style.onnx")
    stat = spey.get_backend("sbihep.onnx")(path=str(path))
    with pytest.raises(InvalidInputError, match="apriori"):
        stat.exclusion_confidence_level(poi_test=1.0, expected=spey.ExpectationType.apriori)
    with pytest.raises(InvalidInputError, match="apriori"):
        SurrogateLikelihood(path).cls([1.0], expected="apriori")
