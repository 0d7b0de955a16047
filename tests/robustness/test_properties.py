"""Property-based robustness cases (hypothesis): round trips, corruption and θ for random inputs.

Each property runs a small, derandomised set of examples (the same ones on every run), so the suite stays
fast and deterministic while covering far more inputs than hand-written cases.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from sbihep.errors import DataFormatError, IntegrityWarning, InvalidInputError  # noqa: E402
from sbihep.events.eventset import EventSet  # noqa: E402

torch.set_num_threads(1)
FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def event_arrays(draw):
    """Random finite momenta (non-negative energies) and coefficients with a positive total weight."""
    n = draw(st.integers(1, 12))
    p = draw(hnp.arrays(np.float64, (n, 2, 4), elements=finite))
    p[..., 0] = np.abs(p[..., 0])
    c = draw(hnp.arrays(np.float64, (n, 3), elements=finite))
    c[:, 0] = np.abs(c[:, 0]) + 1.0  # the SM term; the total at θ = 0 is then positive
    return p, c


def _events(p, c):
    return EventSet.from_arrays(momenta=p, roles=["a", "b"], coefficients=c, operators=["cx"], order="quadratic")


@pytest.mark.robustness(entry="EventSet.save", outcome="correct")
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@FAST
@given(arrays=event_arrays())
def test_save_load_round_trip_is_bit_identical(tmp_path_factory, suffix, arrays):
    p, c = arrays
    events = _events(p, c)
    path = events.save(tmp_path_factory.mktemp("rt") / f"e{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        back = EventSet.load(path)
    assert back.data["z"].values.tobytes() == events.data["z"].values.tobytes()
    assert back.data["eft"].values.tobytes() == events.data["eft"].values.tobytes()
    assert back.operators == events.operators


@pytest.fixture(scope="module")
def saved_nc(tmp_path_factory):
    rng = np.random.default_rng(7)
    p = np.abs(rng.normal(size=(400, 2, 4))) * 50.0
    c = np.column_stack([1.0 + rng.random(400), rng.normal(size=400), rng.random(400)])
    events = _events(p, c)
    path = events.save(tmp_path_factory.mktemp("corrupt") / "e.nc")
    return events, path.read_bytes()


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@FAST
@given(data=st.data())
def test_random_byte_corruption_never_loads_silently(tmp_path_factory, saved_nc, data):
    """Any run of changed bytes anywhere in a .nc file: an sbihep error naming the file, or the identical arrays."""
    events, blob = saved_nc
    start = data.draw(st.integers(0, len(blob) - 1), label="start")
    length = data.draw(st.integers(1, min(4096, len(blob) - start)), label="length")
    noise = data.draw(st.binary(min_size=length, max_size=length), label="bytes")
    raw = bytearray(blob)
    raw[start:start + length] = noise
    path = tmp_path_factory.mktemp("c") / "c.nc"
    path.write_bytes(bytes(raw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IntegrityWarning)  # a destroyed hash attribute: still checked below
            back = EventSet.load(path)
    except DataFormatError as exc:  # IntegrityError is one
        assert str(path) in str(exc)
        return
    except InvalidInputError as exc:  # the physics checks on load (non-finite momenta, …) name the file too
        assert str(path) in str(exc)
        return
    assert back.data["z"].values.tobytes() == events.data["z"].values.tobytes()
    assert back.data["eft"].values.tobytes() == events.data["eft"].values.tobytes()


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(3)
    p = np.abs(rng.normal(size=(50, 2, 4))) * 50.0
    c = np.column_stack([1.0 + rng.random(50), rng.normal(size=50), rng.random(50)])
    return _events(p, c)


@pytest.mark.robustness(entry="EventSet.sigma", outcome="correct")
@FAST
@given(value=st.one_of(finite, st.integers(-10**6, 10**6)), kind=st.sampled_from(["float", "numpy", "torch", "int"]))
def test_finite_theta_of_any_type_gives_the_float64_number(toy, value, kind):
    as_float = float(value)
    typed = {"float": as_float, "numpy": np.float64(as_float), "torch": torch.tensor(as_float, dtype=torch.float64),
             "int": int(value) if float(value).is_integer() else as_float}[kind]
    expected = toy.sigma({"cx": float(typed)})
    assert toy.sigma({"cx": typed}) == expected
    assert torch.equal(toy.weights({"cx": typed}), toy.weights({"cx": float(typed)}))


@pytest.mark.robustness(entry="EventSet.weights", outcome="error")
@FAST
@given(value=st.sampled_from([math.nan, math.inf, -math.inf]), kind=st.sampled_from(["float", "numpy", "torch"]),
       method=st.sampled_from(["weights", "sigma", "joint_score", "theta_vector"]))
def test_non_finite_theta_is_an_error_naming_the_operator(toy, value, kind, method):
    typed = {"float": value, "numpy": np.float64(value), "torch": torch.tensor(value)}[kind]
    with pytest.raises(InvalidInputError, match=r"theta\['cx'\]"):
        getattr(toy, method)({"cx": typed})


@pytest.mark.robustness(entry="EventSet.from_arrays", outcome="error")
@FAST
@given(arrays=event_arrays(), where=st.tuples(st.integers(0, 11), st.integers(0, 1), st.integers(0, 3)),
       value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_momentum_anywhere_is_refused(arrays, where, value):
    p, c = arrays
    i = where[0] % p.shape[0]
    p[i, where[1], where[2]] = value
    with pytest.raises(InvalidInputError, match="momenta"):
        _events(p, c)
