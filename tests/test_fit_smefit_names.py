"""SMEFiT format: t0 by default (as SMEFiT's runcards), the SMEFiT ↔ SMEFTsim operator map, and an
error that lists a dataset's operators.  Reference numbers: tests/test_fit_smefit.py (SMEFiT 4.0.0)."""

from pathlib import Path

import numpy as np
import pytest

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.fit import read_smefit_dataset, smefit_covariance, smefit_term
from sbihep.fit.operator_names import SMEFIT_TO_SMEFTSIM, smefit_to_smeftsim_matrix, smefit_values, smeftsim_name
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smefit"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data folder {DATA} is absent")
DATASETS = ["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"]
# SMEFiT 4.0.0 individual linear fits with use_t0: True (tests/test_fit_smefit.py): best fit, max log L
SMEFIT_T0 = {"OtZ": (0.06419480283344121, -3.803042493137108), "OpWB": (0.006322672889897614, -3.800328629907091),
             "OpqMi": (-0.6303693672324889, -3.660243058579087)}


def space(*names, bounds=(-5.0, 5.0)):
    return ParameterSpace([Parameter(n, 0.0, bounds) for n in names])


def term(params, **kw):
    return smefit_term(DATASETS, DATA / "commondata", DATA / "theory", params, **kw)


@pytest.mark.parametrize("op", list(SMEFIT_T0))
def test_default_is_t0_like_smefit_runcards(op):
    """Bug: the default was t0=False, so −ln L at SMEFiT's own best fit was not SMEFiT's max log L."""
    best, max_logl = SMEFIT_T0[op]
    default = term(space(op))
    assert -default.nll({op: best}) == pytest.approx(max_logl, abs=1e-9)
    np.testing.assert_array_equal(default.covariance, term(space(op), t0=True).covariance)
    without = term(space(op), t0=False)
    assert abs(-without.nll({op: best}) - max_logl) > 1e-3  # t0 matters on these data (MULT systematics)
    datasets = [read_smefit_dataset(n, DATA / "commondata", DATA / "theory") for n in DATASETS]
    np.testing.assert_array_equal(smefit_covariance(datasets), default.covariance)


def test_missing_operator_error_lists_the_datasets_operators():
    with pytest.raises(UnknownParameterError) as info:
        term(space("OpWB", "cXYZ"))
    message = str(info.value)
    assert "cXYZ" in message and "ATLAS_ZH_Hbb_13TeV" in message and "CMS_ggF_aa_13TeV" in message
    assert "OpqMi" in message and "OtZ" in message and "OpBox" in message  # what the datasets have
    # a SMEFTsim name passed as a SMEFiT one: the message points to the map
    with pytest.raises(UnknownParameterError, match="operator_names='smeftsim'.*cHWB ↔ OpWB"):
        term(space("cHWB"))
    with pytest.raises(InvalidInputError, match="operator_names"):
        term(space("OpWB"), operator_names="warsaw")
    with pytest.raises(UnknownParameterError, match="cNOPE"):
        term(space("cNOPE"), operator_names="smeftsim")


def test_map_entries_and_linear_combinations():
    assert smeftsim_name("OpWB") == "cHWB" and smeftsim_name("OpD") == "cHDD" and smeftsim_name("cpWB") == "cHWB"
    assert smeftsim_name("OpBox") == "cHbox" and SMEFIT_TO_SMEFTSIM["Opd"].smeftsim == {"cHbox": -1.0}
    with pytest.raises(InvalidInputError, match="OpqMi = \\+1·cHq1 -1·cHq3"):
        smeftsim_name("OpqMi")
    m = smefit_to_smeftsim_matrix(["OpqMi", "O3pq", "OtZ", "OtW"], ["cHq1", "cHq3", "ctW", "ctB"])
    sw2 = 1 - 80.387**2 / 91.1876**2
    np.testing.assert_allclose(m, [[1, -1, 0, 0], [0, 1, 0, 0], [0, 0, np.sqrt(1 - sw2), -np.sqrt(sw2)], [0, 0, 1, 0]])
    assert smefit_values({"cHq1": 0.3, "cHq3": 0.1}) == pytest.approx({"OpqMi": 0.2, "O3pq": 0.1})
    assert smefit_values({"cHl1": 0.5}) == {"Opl1": 0.5, "Opl2": 0.5, "Opl3": 0.5}  # lepton-universal SMEFTsim


def test_smeftsim_names_give_the_same_likelihood():
    """A fit in SMEFTsim coefficients is the SMEFiT likelihood at the mapped point, linear and quadratic."""
    rng = np.random.default_rng(0)
    for eft_order in ("linear", "quadratic"):
        sim = term(space("cHWB", "cHq1", "cHq3", "ctW", "ctB"), operator_names="smeftsim", eft_order=eft_order)
        fit = term(space("OpWB", "OpqMi", "O3pq", "OtZ", "OtW"), eft_order=eft_order)
        for _ in range(5):
            point = dict(zip(sim.parameters.names, rng.uniform(-0.3, 0.3, 5).tolist()))
            mapped = smefit_values(point, fit.parameters.names)
            assert sim.nll(point) == pytest.approx(fit.nll(mapped), rel=1e-12)
    # a subset: cHq3 alone moves OpqMi by −cHq3 and O3pq by +cHq3
    one = term(space("cHq3"), operator_names="smeftsim")
    two = term(space("OpqMi", "O3pq"))
    assert one.nll({"cHq3": 0.4}) == pytest.approx(two.nll({"OpqMi": -0.4, "O3pq": 0.4}), rel=1e-12)
