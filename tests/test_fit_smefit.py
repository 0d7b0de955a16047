"""SMEFiT-format Gaussian term against SMEFiT's own individual linear fits.

Reference numbers: SMEFiT 4.0.0 (``pip install smefit``), run on ../shared/data/smefit/ with the
runcard of SMEFiT's individual-linear-fit test (both datasets, NLO_QCD, theory covariance, t0):

    result_path: /tmp/smefit_ref/results
    data_path: /work/shared/data/smefit/commondata
    theory_path: /work/shared/data/smefit/theory
    use_quad: False
    use_theory_covmat: True
    use_t0: True
    default_order: NLO_QCD
    n_samples: 200000
    datasets: [{name: ATLAS_ZH_Hbb_13TeV}, {name: CMS_ggF_aa_13TeV}]
    coefficients: {<OP>: {min: .., max: ..}}      # one runcard per operator

    $ smefit A rc_<OP>.yaml          # analytic linear solution; writes fit_results.json

``best_fit_point`` and ``max_loglikelihood`` below are copied from those fit_results.json files
(the 200 000 posterior samples gave means 0.06445, 0.006332, −0.6302 and 95 % ranges
[−0.1210, 0.2509], [−0.01176, 0.02450], [−2.064, 0.8052], consistent within sampling noise).
The Gaussian σ (SMEFiT prints it to 3 digits: 0.095, 0.009, 0.730) was taken at full precision
from SMEFiT's own loader and analytic formula: ``smefit.loader.load_datasets(...)`` then
σ² = (Lᵀ C⁻¹ L)⁻¹ as in ``smefit/optimize/analytic.py``; the 95 % interval is best ± 1.95996 σ.
SMEFiT's analytic solution ignores the prior bounds; OpqMi's interval reaches below its runcard
bound −1, so the test declares wider bounds for it.
"""

from pathlib import Path

import pytest

from sbihep.errors import DataFormatError, InvalidInputError
from sbihep.fit import Likelihood, minimize, profile_interval, read_smefit_dataset, smefit_term
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data folder {DATA} is absent")
DATASETS = ["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"]

# operator: (bounds used here, SMEFiT best fit, SMEFiT max log-likelihood, σ, 95 % low, 95 % high)
REFERENCE = {
    "OtZ": ((-2, 2), 0.06419480283344121, -3.803042493137108, 0.09459318498217668,
            -0.12120443291456019, 0.24959403858144263),
    "OpWB": ((-2, 2), 0.006322672889897614, -3.800328629907091, 0.009262250580018769,
             -0.0118310046627244, 0.024476350442519626),
    "OpqMi": ((-5, 5), -0.6303693672324889, -3.660243058579087, 0.7297621819359882,
              -2.060676961106392, 0.7999382266414142),
}


def term_for(op, bounds):
    space = ParameterSpace([Parameter(op, 0.0, bounds)])
    return smefit_term(DATASETS, DATA / "commondata", DATA / "theory", space, order="NLO_QCD",
                       eft_order="linear", theory_cov=True, t0=True)


@pytest.mark.parametrize("op", list(REFERENCE))
def test_individual_linear_fit_reproduces_smefit(op):
    bounds, best, max_logl, sigma, low95, high95 = REFERENCE[op]
    term = term_for(op, bounds)
    lik = Likelihood([term])
    fit = minimize(lik, tolerance=1e-4)
    assert fit.converged
    # MIGRAD stops at EDM < 1e-7: |Δθ| ≲ σ·√(2·EDM) ≈ 5e-4 σ
    assert fit.values[op] == pytest.approx(best, abs=1e-3 * sigma)
    # SMEFiT's max log-likelihood is −χ²/2 with the t0 covariance: our −ln L drops the same constants
    assert -fit.nll == pytest.approx(max_logl, abs=1e-7)
    assert fit.errors[op] == pytest.approx(sigma, rel=1e-4)
    iv = profile_interval(lik, op, 0.95, best_fit=fit, tolerance=1e-4)
    assert iv.low == pytest.approx(low95, abs=1e-4 * sigma)
    assert iv.high == pytest.approx(high95, abs=1e-4 * sigma)


def test_reader_details():
    ds = read_smefit_dataset("CMS_ggF_aa_13TeV", DATA / "commondata", DATA / "theory", order="LO")
    assert ds.n_data == 6 and ds.sys.shape == (1, 6) and ds.sys_type == ("ADD",) and ds.units == "fb"
    atlas = read_smefit_dataset("ATLAS_ZH_Hbb_13TeV", DATA / "commondata", DATA / "theory")
    # t0 rescales MULT systematics by best_sm / data
    assert atlas.systematics(t0=True)[0, 0] == pytest.approx(10.0 * 50.6 / 81.0)
    assert atlas.systematics(t0=False)[0, 0] == 10.0
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2)), Parameter("OtZ", 0.0, (-2, 2))])
    quad = smefit_term(DATASETS, DATA / "commondata", DATA / "theory", space, eft_order="quadratic")
    assert quad.order == "quadratic" and ("OpWB", "OpWB") in quad.quadratic


def test_reader_errors(tmp_path):
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2))])
    with pytest.raises(DataFormatError, match="does not exist"):
        smefit_term(["NOPE"], DATA / "commondata", DATA / "theory", space)
    with pytest.raises(InvalidInputError, match="order 'NNLO'"):
        smefit_term(DATASETS, DATA / "commondata", DATA / "theory", space, order="NNLO")
    no_effect = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2)), Parameter("cXYZ", 0.0, (-2, 2))])
    with pytest.raises(InvalidInputError, match="cXYZ"):
        smefit_term(DATASETS, DATA / "commondata", DATA / "theory", no_effect)
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "BAD.yaml").write_text("data_central: [1.0, 2.0]\nnum_data: 2\n")
    (tmp_path / "BAD.json").write_text('{"best_sm": [1.0, 2.0]}')
    with pytest.raises(DataFormatError, match="missing key"):
        read_smefit_dataset("BAD", tmp_path / "cd", tmp_path)
