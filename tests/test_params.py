"""Parameter and ParameterSpace: named θ, bounds, constraints, serialisation."""

import math

import numpy as np
import pytest

from sbihep import GaussianConstraint, InvalidInputError, Parameter, ParameterSpace, UnknownParameterError
from sbihep.errors import OutOfBoundsError


@pytest.fixture
def space():
    return ParameterSpace(
        [
            Parameter("cHW", bounds=(-1, 1), unit="TeV^-2"),
            Parameter("mu", sm_value=1.0, bounds=(0, 5)),
            Parameter("jes", kind="nuisance", bounds=(-5, 5), constraint=GaussianConstraint(0.0, 1.0)),
        ]
    )


def test_sm_point_and_filling(space):
    assert space.sm_point() == {"cHW": 0.0, "mu": 1.0, "jes": 0.0}
    assert space.validate({"cHW": 0.3}) == {"cHW": 0.3, "mu": 1.0, "jes": 0.0}
    assert space.pois == ("cHW", "mu") and space.nuisances == ("jes",)


def test_vector_round_trip(space):
    v = space.to_vector({"mu": 2.0, "jes": -0.5})
    np.testing.assert_array_equal(v, [0.0, 2.0, -0.5])
    assert space.from_vector(v) == {"cHW": 0.0, "mu": 2.0, "jes": -0.5}


def test_errors_name_the_problem(space):
    with pytest.raises(UnknownParameterError, match="cHWW"):
        space.validate({"cHWW": 1.0})
    with pytest.raises(OutOfBoundsError, match="cHW.*bounds"):
        space.validate({"cHW": 1.5})
    with pytest.raises(InvalidInputError, match="not finite"):
        space.validate({"mu": math.nan})
    with pytest.raises(InvalidInputError, match="shape"):
        space.from_vector([1.0, 2.0])
    with pytest.raises(InvalidInputError, match="duplicate"):
        ParameterSpace([Parameter("a"), Parameter("a")])
    with pytest.raises(InvalidInputError, match="low < high"):
        Parameter("a", bounds=(1, -1))
    with pytest.raises(OutOfBoundsError):
        Parameter("mu", sm_value=1.0, bounds=(2, 3))
    with pytest.raises(InvalidInputError, match="sigma"):
        GaussianConstraint(0.0, 0.0)
    with pytest.raises(InvalidInputError, match="kind"):
        Parameter("a", kind="signal")


def test_constraint_log_pdf(space):
    expected = -0.5 * 1.5**2 - math.log(math.sqrt(2 * math.pi))
    assert space.log_constraint({"jes": 1.5}) == pytest.approx(expected, rel=1e-14)


def test_merge_shares_by_name_and_rejects_conflicts(space):
    other = ParameterSpace([Parameter("mu", sm_value=1.0, bounds=(0, 5)), Parameter("cHWtil", bounds=(-1, 1))])
    merged = space.merge(other)
    assert merged.names == ("cHW", "mu", "jes", "cHWtil")
    with pytest.raises(InvalidInputError, match="declared differently"):
        space.merge(ParameterSpace([Parameter("mu", sm_value=1.0, bounds=(0, 10))]))


def test_dict_round_trip(space):
    assert ParameterSpace.from_dict(space.to_dict()) == space


def test_merge_ignores_free_text():
    a = ParameterSpace([Parameter("mu", sm_value=1.0, bounds=(0, 5), description="signal strength")])
    b = ParameterSpace([Parameter("mu", sm_value=1.0, bounds=(0, 5), unit="1", description="POI of the workspace")])
    assert a.merge(b).names == ("mu",)
