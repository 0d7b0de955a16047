"""Robustness of the events layer and its files: bad inputs, non-finite parameters, corrupted, truncated,
foreign and tampered EventSet files (netCDF and zarr), bad output paths, killed writes.

Every case asserts one outcome class: an sbihep error naming the argument (or file), a loud warning, or
the correct result.  Each case carries a ``robustness`` marker with its entry point and outcome class (see conftest.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _eft_toy import toy_events  # noqa: E402

from sbihep._atomic import atomic_destination, check_output_path, remove_stale_temporaries  # noqa: E402
from sbihep.errors import (  # noqa: E402
    DataFormatError,
    IntegrityError,
    IntegrityWarning,
    InvalidInputError,
    OutputPathError,
    PDFExtrapolationWarning,
    SbihepError,
    ShapeError,
    UnknownParameterError,
    UnphysicalMomentaError,
)
from sbihep.events.eventset import HASH_ATTR, EventSet  # noqa: E402

torch.set_num_threads(1)
FORMATS = [".nc", ".zarr"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy():
    return toy_events(300, seed=3)


def _arrays(n=20, seed=0):
    rng = np.random.default_rng(seed)
    p = np.zeros((n, 2, 4))
    p[..., 0] = 50.0
    p[:, 0, 3], p[:, 1, 3] = 50.0, -50.0
    c = np.column_stack([1.0 + rng.random(n), rng.normal(size=n), 0.5 + rng.random(n)])  # one operator, quadratic: 1, cx, cx²
    return p, c


def _from(p=None, c=None, **kw):
    p0, c0 = _arrays()
    args = dict(momenta=p0 if p is None else p, roles=["a", "b"], coefficients=c0 if c is None else c, operators=["cx"], order="quadratic")
    args.update(kw)
    return EventSet.from_arrays(**args)


def _with_nuisance():
    p, c = _arrays()
    v = np.stack([c * 1.1, c * 0.9], axis=1)
    return EventSet.from_arrays(
        momenta=p, roles=["a", "b"], coefficients=c, operators=["cx"], order="quadratic", variations=v,
        variation_names=["mu_f_up", "mu_f_down"], attrs={"nuisances": json.dumps({"mu_f": ["mu_f_up", "mu_f_down"]})},
    )


def _write_raw(data: xr.Dataset, path: Path) -> Path:
    """Write a dataset bypassing EventSet.save (no content hash, no checks), as a foreign or old tool would."""
    if path.suffix == ".nc":
        data.to_netcdf(path, engine="h5netcdf")
    else:
        data.to_zarr(path, mode="w", consolidated=True, zarr_format=2)
    return path


# ---- from_arrays: the one validation path ---------------------------------------------------------------

def _nan_momenta():
    p, _ = _arrays(); p[3, 1, 2] = np.nan; return p


def _inf_momenta():
    p, _ = _arrays(); p[0, 0, 0] = np.inf; return p


def _neginf_momenta():
    p, _ = _arrays(); p[5, 1, 1] = -np.inf; return p


def _negative_energy():
    p, _ = _arrays(); p[2, 0, 0] = -1.0; return p


def _nan_coeff():
    _, c = _arrays(); c[4, 1] = np.nan; return c


def _inf_coeff():
    _, c = _arrays(); c[0, 2] = np.inf; return c


def _all_negative():
    _, c = _arrays(); return -np.abs(c)


def _zero_weights():
    _, c = _arrays(); return np.zeros_like(c)


BAD_ARRAYS = [  # (kwargs, error, words in the message)
    (dict(p=_nan_momenta()), UnphysicalMomentaError, ["momenta", "event 3"]),
    (dict(p=_inf_momenta()), UnphysicalMomentaError, ["momenta", "event 0"]),
    (dict(p=_neginf_momenta()), UnphysicalMomentaError, ["momenta", "event 5"]),
    (dict(p=_negative_energy()), UnphysicalMomentaError, ["negative energies", "event 2"]),
    (dict(c=_nan_coeff()), InvalidInputError, ["coefficients", "event 4"]),
    (dict(c=_inf_coeff()), InvalidInputError, ["coefficients", "event 0"]),
    (dict(c=_all_negative()), InvalidInputError, ["total weight", "not positive"]),
    (dict(c=_zero_weights()), InvalidInputError, ["total weight", "not positive"]),
    (dict(p=np.zeros((20, 8))), ShapeError, ["momenta", "shape"]),
    (dict(p=np.zeros((20, 3, 4))), ShapeError, ["momenta", "roles"]),
    (dict(c=np.ones((20, 2))), ShapeError, ["coefficients", "monomials"]),
    (dict(c=np.ones((19, 3))), ShapeError, ["coefficients"]),
    (dict(p=_arrays()[0].astype(complex)), ShapeError, ["momenta", "complex"]),
    (dict(p=np.full((20, 2, 4), "1.0")), ShapeError, ["momenta", "dtype"]),
    (dict(c=np.ones((20, 3), dtype=bool)), ShapeError, ["coefficients", "dtype"]),
    (dict(subprocess_index=np.full(20, 3)), InvalidInputError, ["subprocess_index", "[0, 1)"]),
    (dict(subprocess_index=np.full(20, -1)), InvalidInputError, ["subprocess_index"]),
    (dict(subprocess_index=np.zeros(19, dtype=int)), ShapeError, ["subprocess_index"]),
    (dict(subprocess_index=np.zeros(20)), ShapeError, ["subprocess_index", "integers"]),
    (dict(x1=np.full(20, 0.1), x2=np.full(19, 0.1)), ShapeError, ["x2"]),
    (dict(x1=np.full(20, np.nan), x2=np.full(20, 0.1)), InvalidInputError, ["x1", "finite"]),
    (dict(variations=np.full((20, 2, 3), np.nan), variation_names=["u", "d"]), InvalidInputError, ["eft_variations", "finite"]),
    (dict(variations=np.ones((20, 1, 3)), variation_names=["u", "d"]), ShapeError, ["variations"]),
    (dict(order="cubic"), InvalidInputError, ["cubic"]),
    (dict(attrs={"theta_gen": json.dumps({"cx": float("nan")})}), DataFormatError, ["theta_gen", "finite"]),
]


@pytest.mark.robustness(entry="EventSet.from_arrays", outcome="error")
@pytest.mark.parametrize("kwargs,error,words", BAD_ARRAYS)
def test_from_arrays_rejects_bad_content(kwargs, error, words):
    with pytest.raises(error) as caught:
        _from(**kwargs)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.robustness(entry="EventSet.from_arrays", outcome="correct")
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64])
def test_from_arrays_converts_lower_precision_to_float64(dtype):
    """float32 momenta and coefficients used to give a raw torch dtype error in weights()."""
    p, c = _arrays()
    reference = _from(p, c)
    events = _from(p.astype(dtype), np.round(c * 4).astype(dtype) if dtype == np.int64 else c.astype(dtype))
    assert events.momenta().dtype == torch.float64 and events.coefficients().dtype == torch.float64
    value = events.sigma({"cx": 0.3})
    cc = events.coefficients().numpy()
    assert value == pytest.approx(float((cc @ np.array([1.0, 0.3, 0.09])).sum()), rel=1e-12)
    assert np.isfinite(reference.sigma({"cx": 0.3}))


# ---- θ and nuisances ------------------------------------------------------------------------------------

BAD_VALUES = [float("nan"), float("inf"), -float("inf"), "0.1", None, True, 1 + 2j, [0.1], np.nan, torch.tensor(float("nan"))]
ENTRY_POINTS = {
    "weights": lambda ev, th: ev.weights(th),
    "sigma": lambda ev, th: ev.sigma(th),
    "log_joint_ratio": lambda ev, th: ev.log_joint_ratio(th, {}),
    "log_joint_ratio_theta1": lambda ev, th: ev.log_joint_ratio({}, th),
    "joint_score": lambda ev, th: ev.joint_score(th),
    "theta_vector": lambda ev, th: ev.theta_vector(th),
}


ENTRY_NAMES = {"weights": "EventSet.weights", "sigma": "EventSet.sigma", "log_joint_ratio": "EventSet.log_joint_ratio",
               "log_joint_ratio_theta1": "EventSet.log_joint_ratio", "joint_score": "EventSet.joint_score",
               "theta_vector": "EventSet.theta_vector"}
ENTRY_PARAMS = [pytest.param(e, id=e, marks=pytest.mark.robustness(entry=ENTRY_NAMES[e], outcome="error")) for e in ENTRY_POINTS]


@pytest.mark.parametrize("entry", ENTRY_PARAMS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=[repr(v) for v in BAD_VALUES])
def test_bad_theta_value_names_the_operator(toy, entry, value):
    with pytest.raises(InvalidInputError, match=r"theta\['ca'\]"):
        ENTRY_POINTS[entry](toy, {"ca": value})


@pytest.mark.parametrize("entry", ENTRY_PARAMS)
def test_unknown_operator_and_non_mapping_theta(toy, entry):
    with pytest.raises(InvalidInputError, match=r"theta.*unknown operator.*'cA'"):
        ENTRY_POINTS[entry](toy, {"cA": 0.1})
    with pytest.raises(InvalidInputError, match="theta must be a mapping"):
        ENTRY_POINTS[entry](toy, [0.1, 0.2])


@pytest.mark.robustness(entry="EventSet.sigma", outcome="correct")
@pytest.mark.parametrize("value", [0.25, np.float32(0.25), np.float64(0.25), torch.tensor(0.25, dtype=torch.float64), 1, np.array(0.25)])
def test_valid_theta_types_give_the_same_number(toy, value):
    expected = toy.sigma({"ca": float(value)})
    assert toy.sigma({"ca": value}) == expected
    assert np.isfinite(expected)


@pytest.mark.robustness(entry="EventSet.weights", outcome="error")
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1", None, True])
def test_bad_nuisance_value_names_the_nuisance(value):
    events = _with_nuisance()
    with pytest.raises(InvalidInputError, match=r"nuisances\['mu_f'\]"):
        events.weights({"cx": 0.1}, {"mu_f": value})


@pytest.mark.robustness(entry="EventSet.weights", outcome="error")
def test_nuisance_unknown_or_not_a_mapping():
    events = _with_nuisance()
    with pytest.raises(InvalidInputError, match=r"nuisances.*unknown.*'muf'"):
        events.weights({}, {"muf": 1.0})
    with pytest.raises(InvalidInputError, match="nuisances must be a mapping"):
        events.weights({}, [1.0])


@pytest.mark.robustness(entry="EventSet.weights", outcome="correct")
def test_nuisance_at_one_sigma_is_the_up_variation():
    events = _with_nuisance()
    w = events.weights({"cx": 0.2}, {"mu_f": 1.0})
    np.testing.assert_allclose(w.numpy(), 1.1 * events.weights({"cx": 0.2}).numpy(), rtol=1e-12)


@pytest.mark.robustness(entry="EventSet.weights", outcome="error")
def test_nuisance_morphing_with_negative_weights():
    # at θ where some nominal weights are negative the exponential morphing is undefined: an error, not NaN
    p, c = _arrays()
    c[:5, 1] = -40.0
    v = np.stack([c * 1.1, c * 0.9], axis=1)
    odd = EventSet.from_arrays(
        momenta=p, roles=["a", "b"], coefficients=c, operators=["cx"], order="quadratic", variations=v,
        variation_names=["u", "d"], attrs={"nuisances": json.dumps({"s": ["u", "d"]})},
    )
    with pytest.raises(InvalidInputError, match=r"nuisances: morphing 's' needs positive.*event 0"):
        odd.weights({"cx": 0.1}, {"s": 0.5})


# ---- files: content checks on load ------------------------------------------------------------------------

def _tamper(kind):
    def nan_weights(d):
        d["eft"].values[7, 0] = np.nan

    def all_negative(d):
        d["eft"].values[:] = -np.abs(d["eft"].values)

    def inf_momenta(d):
        d["z"].values[11, 2] = np.inf

    def negative_energy(d):
        d["z"].values[4, 0] = -3.0

    def bad_subprocess(d):
        d["subprocess"].values[9] = 5

    def nan_momenta(d):
        d["z"].values[0, 1] = np.nan

    return {"nan_weights": nan_weights, "all_negative": all_negative, "inf_momenta": inf_momenta,
            "negative_energy": negative_energy, "bad_subprocess": bad_subprocess, "nan_momenta": nan_momenta}[kind]


CONTENT_CASES = [
    ("nan_weights", InvalidInputError, "coefficients (eft) must be finite"),
    ("all_negative", InvalidInputError, "not positive"),
    ("inf_momenta", UnphysicalMomentaError, "momenta (z) must be finite"),
    ("negative_energy", UnphysicalMomentaError, "negative energies"),
    ("bad_subprocess", InvalidInputError, "subprocess indices"),
    ("nan_momenta", UnphysicalMomentaError, "event 0"),
]


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("kind,error,words", CONTENT_CASES)
def test_load_runs_the_from_arrays_checks(toy, tmp_path, suffix, kind, error, words):
    data = toy.data.copy(deep=True)
    _tamper(kind)(data)
    path = _write_raw(data, tmp_path / f"bad{suffix}")
    with pytest.raises(error) as caught:
        EventSet.load(path)
    assert str(path) in str(caught.value) and words in str(caught.value)
    # lazily too (the verification pass reads the chunks)
    with pytest.raises(error):
        EventSet.load(path, lazy=True, chunk_events=64)


@pytest.mark.robustness(entry="EventSet.load", outcome="warning")
@pytest.mark.parametrize("suffix", FORMATS)
def test_old_files_without_hash_load_with_a_warning(toy, tmp_path, suffix):
    path = _write_raw(toy.data, tmp_path / f"old{suffix}")
    with pytest.warns(IntegrityWarning, match="no content hash"):
        back = EventSet.load(path)
    assert back.sigma({"ca": 0.4}) == toy.sigma({"ca": 0.4})


@pytest.mark.robustness(entry="EventSet.load", outcome="correct")
@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("suffix", FORMATS)
def test_saved_files_verify_and_round_trip_exactly(tmp_path, suffix, lazy):
    events = _with_nuisance().with_observables({"m": np.arange(20.0)})
    path = events.save(tmp_path / f"ok{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        back = EventSet.load(path, lazy=lazy, chunk_events=7)
    assert HASH_ATTR not in back.data.attrs
    assert back.weights({"cx": 0.3}, {"mu_f": -0.5}).tolist() == events.weights({"cx": 0.3}, {"mu_f": -0.5}).tolist()
    assert back.observables().values.tolist() == events.observables().values.tolist()


@pytest.mark.robustness(entry="EventSet.save", outcome="correct")
def test_hash_covers_every_variable_kind(tmp_path):
    events = toy_events(50, seed=1)
    data = events.data.assign(passed=("event", np.arange(50) % 2 == 0), lhe_id=(("event",), np.arange(50, dtype=np.int32)))
    events = EventSet(data)
    for suffix in FORMATS:
        path = events.save(tmp_path / f"kinds{suffix}")
        recorded = json.loads(_raw_attrs(path)[HASH_ATTR])
        assert set(recorded["variables"]) == {"z", "eft", "subprocess", "x", "passed", "lhe_id"}
        assert recorded["algorithm"] == "sha256"
        EventSet.load(path)


def _raw_attrs(path):
    if path.suffix == ".nc":
        with xr.open_dataset(path, engine="h5netcdf") as d:
            return dict(d.attrs)
    return json.loads((path / ".zattrs").read_text())


# ---- corruption, truncation, tampering -----------------------------------------------------------------

@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_in_a_netcdf_file_never_load_silently(toy, tmp_path, seed):
    """2000 random bytes in the middle of a .nc loaded silently before (momenta changed up to 6.9e305)."""
    path = toy.save(tmp_path / "c.nc")
    raw = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    start = int(rng.integers(len(raw) // 4, 3 * len(raw) // 4 - 2000))
    raw[start:start + 2000] = rng.bytes(2000)
    path.write_bytes(bytes(raw))
    try:
        back = EventSet.load(path)
    except DataFormatError as exc:  # IntegrityError is one
        assert str(path) in str(exc)
        return
    assert back.data["z"].values.tobytes() == toy.data["z"].values.tobytes()
    assert back.data["eft"].values.tobytes() == toy.data["eft"].values.tobytes()


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
def test_corruption_in_data_is_an_integrity_error(toy, tmp_path):
    path = toy.save(tmp_path / "d.nc")
    raw = bytearray(path.read_bytes())
    needle = toy.data["eft"].values[10:12].tobytes()
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at:at + 8] = np.float64(1e300).tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"variables \['eft'\] changed"):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("variable", ["z", "eft", "subprocess", "x"])
def test_zarr_with_a_deleted_chunk(toy, tmp_path, variable):
    """A zarr store with a deleted chunk loaded as NaN (or zeros for integers) before."""
    if variable == "subprocess":  # zarr does not store all-fill-value chunks: use two subprocesses
        data = toy.data.assign(subprocess=("event", (np.arange(toy.n_events) % 2).astype(np.int16)))
        data.attrs["subprocesses"] = json.dumps(["A", "B"])
        toy = EventSet(data)
    path = toy.save(tmp_path / "s.zarr")
    chunk = sorted(p for p in (path / variable).iterdir() if not p.name.startswith("."))[0]
    chunk.unlink()
    with pytest.raises(IntegrityError, match=rf"'{variable}'"):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
def test_zarr_chunk_bytes_replaced(toy, tmp_path):
    path = toy.save(tmp_path / "s.zarr")
    shutil.copy(path / "z" / "0.0", tmp_path / "keep")
    other = toy_events(300, seed=99).save(tmp_path / "o.zarr")
    shutil.copy(other / "eft" / "0.0", path / "eft" / "0.0")  # a valid chunk, other numbers
    with pytest.raises(IntegrityError, match="eft"):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("edit", ["theta_gen", "process", "order_swap", "labels"])
def test_edited_metadata_is_detected(toy, tmp_path, edit):
    path = toy.save(tmp_path / "m.zarr")
    attrs_file = path / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    if edit == "theta_gen":
        attrs["theta_gen"] = json.dumps({"ca": 0.5})
    elif edit == "process":
        attrs["process"] = "something_else"
    elif edit == "order_swap":
        attrs["operators"] = json.dumps(["cb", "ca"])
    attrs_file.write_text(json.dumps(attrs))
    if edit == "labels":
        # swap the observable labels x1 <-> x2 by rewriting the coordinate through xarray
        d = xr.open_zarr(path).load()
        d = d.assign_coords(observable=["x2", "x1"])
        d.attrs = attrs
        shutil.rmtree(path)
        d.to_zarr(path, zarr_format=2, consolidated=True)
    with pytest.raises(DataFormatError, match="changed|do not match"):  # IntegrityError, or caught earlier by structure
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
def test_rewritten_values_with_the_old_hash_are_detected(toy, tmp_path):
    path = toy.save(tmp_path / "e.nc")
    d = xr.open_dataset(path, engine="h5netcdf").load()
    d["eft"] = d["eft"] * 2.0  # σ doubled, hash attribute kept
    path.unlink()
    d.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(IntegrityError, match="eft"):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("garbage", ["not json", json.dumps({"algorithm": "md5", "variables": {}}), json.dumps([1, 2])])
def test_unreadable_hash_attribute(toy, tmp_path, garbage):
    d = toy.data.copy()
    d.attrs = {**d.attrs, HASH_ATTR: garbage}
    path = _write_raw(d, tmp_path / "h.nc")
    with pytest.raises(IntegrityError, match=HASH_ATTR):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="correct")
def test_verify_false_skips_the_checks(toy, tmp_path):
    path = toy.save(tmp_path / "s.zarr")
    (path / "eft" / "0.0").unlink()
    lazy = EventSet.load(path, lazy=True, verify=False)
    assert lazy.n_events == toy.n_events  # structure only; the content is the caller's responsibility


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_netcdf(toy, tmp_path, fraction):
    path = toy.save(tmp_path / "t.nc")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(DataFormatError, match="t.nc"):
        EventSet.load(path)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
def test_foreign_and_broken_files(tmp_path):
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("t", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(DataFormatError, match="not an EventSet"):
        EventSet.load(foreign)
    noise = tmp_path / "noise.nc"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataFormatError, match="noise.nc"):
        EventSet.load(noise)
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty.nc"):
        EventSet.load(empty)
    (tmp_path / "dir.nc").mkdir()
    with pytest.raises(DataFormatError, match="directory"):
        EventSet.load(tmp_path / "dir.nc")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(DataFormatError, match="not a zarr store"):
        EventSet.load(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(DataFormatError, match="empty.zarr"):
        EventSet.load(tmp_path / "empty.zarr")
    with pytest.raises(InvalidInputError, match=r"\.nc .*or \.zarr"):
        EventSet.load(foreign.rename(tmp_path / "foreign.h5"))
    with pytest.raises(InvalidInputError, match="no such EventSet file"):
        EventSet.load(tmp_path / "missing.nc")
    with pytest.raises(InvalidInputError, match="chunk_events"):
        EventSet.load(noise, chunk_events=0)


@pytest.mark.robustness(entry="EventSet.load", outcome="error")
@pytest.mark.parametrize("attr,value,words", [
    ("operators", "[not json", "operators"),
    ("operators", json.dumps("ca"), "operators"),
    ("order", "cubic", "order"),
    ("roles", json.dumps(["p", "q"]), "latent"),
])
def test_broken_structure_in_files(toy, tmp_path, attr, value, words):
    d = toy.data.copy()
    d.attrs = {**d.attrs, attr: value}
    path = _write_raw(d, tmp_path / "b.nc")
    with pytest.raises(DataFormatError) as caught:
        EventSet.load(path)
    assert words in str(caught.value) and "b.nc" in str(caught.value)


# ---- output paths ----------------------------------------------------------------------------------------

@pytest.mark.robustness(entry="EventSet.save", outcome="error")
@pytest.mark.data_safety
def test_save_path_problems_are_reported_before_writing(toy, tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        toy.save(tmp_path / "no" / "such" / "dir.nc")
    (tmp_path / "plain").write_text("keep me")
    with pytest.raises(OutputPathError, match="not a folder"):
        toy.save(tmp_path / "plain" / "e.nc")
    (tmp_path / "d.nc").mkdir()
    (tmp_path / "d.nc" / "mine.txt").write_text("keep")
    with pytest.raises(OutputPathError, match="existing directory"):
        toy.save(tmp_path / "d.nc")
    assert (tmp_path / "d.nc" / "mine.txt").read_text() == "keep"
    (tmp_path / "card.zarr").write_text("keep me")
    with pytest.raises(OutputPathError, match="existing file"):
        toy.save(tmp_path / "card.zarr")
    assert (tmp_path / "card.zarr").read_text() == "keep me"
    (tmp_path / "photos.zarr").mkdir()
    (tmp_path / "photos.zarr" / "a.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(OutputPathError, match="not an output"):
        toy.save(tmp_path / "photos.zarr")
    assert (tmp_path / "photos.zarr" / "a.jpg").exists()
    (tmp_path / "thesis.nc").write_text("not netcdf")
    with pytest.raises(OutputPathError, match="refusing to replace"):
        toy.save(tmp_path / "thesis.nc")
    assert (tmp_path / "thesis.nc").read_text() == "not netcdf"
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("t", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(OutputPathError, match="refusing to replace"):
        toy.save(foreign)
    with pytest.raises(OutputPathError, match=r"\.nc .*or \.zarr"):
        toy.save(tmp_path / "events.txt")


@pytest.mark.robustness(entry="EventSet.save", outcome="error")
def test_read_only_folder(toy, tmp_path, monkeypatch):
    real_open = os.open

    def deny(path, flags, *args):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(OutputPathError, match="read-only"):
        toy.save(tmp_path / "ro" / "e.nc")


@pytest.mark.robustness(entry="EventSet.save", outcome="correct")
@pytest.mark.parametrize("suffix", FORMATS)
def test_own_outputs_and_empty_folders_are_replaced(toy, tmp_path, suffix):
    path = toy_events(40, seed=5).save(tmp_path / f"e{suffix}")
    toy.save(path)
    assert EventSet.load(path).n_events == toy.n_events
    (tmp_path / f"empty{suffix}").mkdir() if suffix == ".zarr" else None
    if suffix == ".zarr":
        toy.save(tmp_path / "empty.zarr")
        assert EventSet.load(tmp_path / "empty.zarr").n_events == toy.n_events


@pytest.mark.robustness(entry="EventSet.check_save_path", outcome="error")
def test_check_save_path_for_commands(tmp_path):
    with pytest.raises(OutputPathError, match="-o"):
        EventSet.check_save_path(tmp_path / "missing" / "x.nc", what="-o")
    with pytest.raises(OutputPathError, match="-o"):
        EventSet.check_save_path(tmp_path / "x.toml", what="-o")
    assert EventSet.check_save_path(tmp_path / "x.zarr") == tmp_path / "x.zarr"
    assert not list(tmp_path.iterdir())  # the write probe leaves nothing behind


@pytest.mark.robustness(entry="atomic writes", outcome="error")
@pytest.mark.data_safety
def test_a_directory_never_replaces_a_file(tmp_path):
    """Before, atomic_destination moved a directory onto an existing *file* (``train -o card.toml`` deleted the card)."""
    card = tmp_path / "card.toml"
    card.write_text("seed = 1\n")
    with pytest.raises(OutputPathError, match="will not replace it with a directory"):
        with atomic_destination(card) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(b"0")
    assert card.read_text() == "seed = 1\n"
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep").write_text("k")
    with pytest.raises(OutputPathError, match="is a directory"):
        with atomic_destination(folder) as tmp:
            tmp.write_text("file")
    assert (folder / "keep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.toml", "out"]


# ---- temporaries of killed writes ------------------------------------------------------------------------

def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp_name(target: Path, pid: int, kind="tmp", host=None):
    from sbihep import _atomic

    return target.with_name(f".{target.name}.sbihep-{host or _atomic._HOST}-{pid}-{'ab' * 16}.{kind}")


@pytest.mark.robustness(entry="atomic writes", outcome="correct")
@pytest.mark.data_safety
def test_stale_temporaries_are_removed_by_the_next_write(toy, tmp_path):
    target = tmp_path / "e.zarr"
    dead = _dead_pid()
    stale_dir = _temp_name(target, dead)
    stale_dir.mkdir()
    (stale_dir / "big").write_bytes(b"0" * 100_000)
    stale_file = _temp_name(tmp_path / "e.nc", dead)
    stale_file.write_bytes(b"partial")
    live = _temp_name(target, os.getppid()).with_name(_temp_name(target, os.getppid()).name.replace("ab" * 16, "cd" * 16))
    live.mkdir()  # a concurrent writer that is alive: kept
    lookalikes = [tmp_path / ".e.zarr.backup", tmp_path / f".e.zarr.{'ab' * 15}.tmp", tmp_path / "e.zarr.tmp",
                  tmp_path / f".e.zarr.sbihep-{'x' * 8}-1-{'ab' * 16}.tmp"]
    for p in lookalikes:
        p.write_text("user data")
    toy.save(target)
    assert not stale_dir.exists() and live.exists()
    assert stale_file.exists()  # another target's temporary is not touched by this write
    toy.save(tmp_path / "e.nc")
    assert not stale_file.exists()
    assert all(p.read_text() == "user data" for p in lookalikes)


@pytest.mark.robustness(entry="atomic writes", outcome="correct")
@pytest.mark.data_safety
def test_legacy_and_foreign_host_temporaries_by_age(tmp_path):
    target = tmp_path / "f.nc"
    legacy_old = tmp_path / f".f.nc.{'12' * 16}.tmp"
    legacy_new = tmp_path / f".f.nc.{'34' * 16}.tmp"
    foreign_old = _temp_name(target, 1, host="0badbeef")
    foreign_new = _temp_name(target, 2, host="0badbeef")
    for p in (legacy_old, legacy_new, foreign_old, foreign_new):
        p.write_bytes(b"x")
    long_ago = time.time() - 3 * 24 * 3600
    os.utime(legacy_old, (long_ago, long_ago))
    os.utime(foreign_old, (long_ago, long_ago))
    removed = remove_stale_temporaries(target)
    assert set(removed) == {legacy_old, foreign_old}
    assert legacy_new.exists() and foreign_new.exists()


@pytest.mark.robustness(entry="atomic writes", outcome="correct")
@pytest.mark.data_safety
def test_a_stale_old_directory_is_restored_when_the_target_is_missing(toy, tmp_path):
    """Killed between moving the old store aside and moving the new one in: the old version comes back."""
    target = tmp_path / "r.zarr"
    toy.save(target)
    old = _temp_name(target, _dead_pid(), kind="old")
    os.replace(target, old)
    remove_stale_temporaries(target)
    assert target.is_dir() and not old.exists()
    assert EventSet.load(target).n_events == toy.n_events
    # with the target present, a stale .old is just removed
    old2 = _temp_name(target, _dead_pid(), kind="old")
    shutil.copytree(target, old2)
    remove_stale_temporaries(target)
    assert not old2.exists() and target.exists()


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sbihep._atomic import atomic_destination
    target, kind = Path(sys.argv[1]), sys.argv[2]
    with atomic_destination(target) as tmp:
        if kind == "dir":
            tmp.mkdir()
            for i in range(20):
                (tmp / f"chunk{i}").write_bytes(b"0" * 1_000_000)
        else:
            with open(tmp, "wb") as f:
                f.write(b"0" * 20_000_000)
        print("writing", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.robustness(entry="atomic writes", outcome="correct")
@pytest.mark.data_safety
@pytest.mark.parametrize("kind", ["dir", "file"])
def test_sigkill_during_a_write(toy, tmp_path, kind):
    target = tmp_path / ("k.zarr" if kind == "dir" else "k.nc")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), kind], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.sbihep-")]
        assert len(leftovers) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert leftovers[0].exists() and not target.exists()  # kill -9 left its 20 MB temporary
    toy.save(target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert EventSet.load(target).n_events == toy.n_events


@pytest.mark.robustness(entry="atomic writes", outcome="correct")
@pytest.mark.data_safety
def test_normal_exit_removes_abandoned_temporaries(tmp_path):
    code = textwrap.dedent(
        f"""
        import threading, time
        from pathlib import Path
        from sbihep._atomic import atomic_destination
        ready = threading.Event()
        def write():
            with atomic_destination(Path({str(tmp_path / 'a.nc')!r})) as tmp:
                tmp.write_bytes(b"0" * 1000)
                ready.set()
                time.sleep(60)
        threading.Thread(target=write, daemon=True).start()
        ready.wait()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert list(tmp_path.iterdir()) == []


# ---- cross sections, PDFs, generation arguments ----------------------------------------------------------

def _xs():
    from sbihep.physics.xsec import CrossSection

    return CrossSection(process="toy", sqrt_s_gev=100.0, order="linear", operators=("cA",), monomials=("1", "cA"),
                        coefficients_pb=np.array([2.0, 0.5]), covariance_pb2=np.eye(2) * 1e-4, n_evaluations=1,
                        chi2_per_dof=1.0, seed=0)


@pytest.mark.robustness(entry="CrossSection", outcome="error")
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "1", None, True])
def test_cross_section_rejects_non_finite_theta(value):
    with pytest.raises(InvalidInputError, match=r"theta\['cA'\]"):
        _xs()({"cA": value})


@pytest.mark.robustness(entry="CrossSection", outcome="correct")
def test_cross_section_valid_theta():
    assert _xs()({"cA": 2.0}) == pytest.approx((3.0, float(np.sqrt(1e-4 + 4e-4))))


@pytest.mark.robustness(entry="CrossSection", outcome="error")
def test_cross_section_unknown_operator_or_not_a_mapping():
    with pytest.raises(InvalidInputError, match="unknown operator"):
        _xs()({"ca": 1.0})
    with pytest.raises(InvalidInputError, match="theta must be a mapping"):
        _xs()([1.0])


@pytest.mark.robustness(entry="cross_section", outcome="error")
@pytest.mark.parametrize("kwargs,name", [
    (dict(seed=-3), "seed"), (dict(seed=1.5), "seed"), (dict(n_evaluations=float("nan")), "n_evaluations"),
    (dict(n_adapt=-1), "n_adapt"), (dict(n_iterations=0), "n_iterations"),
])
def test_cross_section_arguments(kwargs, name):
    from sbihep.physics.processes import get_process
    from sbihep.physics.xsec import cross_section

    with pytest.raises(InvalidInputError, match=name):
        cross_section(get_process("ee_mumu"), 250.0, progress=False, **kwargs)


@pytest.mark.robustness(entry="PDF.xfxQ", outcome="warning")
def test_pdf_below_x_min_warns_once():
    from sbihep.physics.pdf import PDF

    pdf = PDF.load()
    with pytest.warns(PDFExtrapolationWarning, match=r"x = 1e-11, below the grid's x_min = 1e-09"):
        pdf.xfxQ(2, 1e-11, 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PDFExtrapolationWarning)
        pdf.xfxQ(2, 1e-12, 100.0)  # once per PDF
        pdf.xfxQ(2, 1e-3, 100.0)


@pytest.mark.robustness(entry="PhaseSpaceIntegrand", outcome="warning")
def test_integrand_far_above_the_grid_warns_up_front():
    """√s far above the PDF grid gave a cross section with no warning."""
    from sbihep.physics.processes import get_process
    from sbihep.physics.xsec import PhaseSpaceIntegrand

    process = get_process("w_lv")
    with pytest.warns(PDFExtrapolationWarning, match=r"reach x = .*below the x_min = 1e-09"):
        PhaseSpaceIntegrand(process, 1e7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PDFExtrapolationWarning)
        PhaseSpaceIntegrand(process, 13000.0)


@pytest.mark.robustness(entry="generate", outcome="error")
@pytest.mark.parametrize("kwargs,name", [
    (dict(seed=-3), "seed"), (dict(seed=True), "seed"), (dict(n_per_iteration=2), "n_per_iteration"),
    (dict(n_adapt=-1), "n_adapt"), (dict(n_events=float("nan")), "n_events"), (dict(n_events=0), "n_events"),
    (dict(theta={"cll": float("nan")}), r"theta\['cll'\]"), (dict(theta={"cll": True}), r"theta\['cll'\]"),
    (dict(max_overweight=float("nan")), "max_overweight"), (dict(detector_seed=-1), "detector_seed"),
    (dict(systematics="mu_f"), "systematics"),
])
def test_generate_arguments(kwargs, name):
    from sbihep.events.generate import generate
    from sbihep.physics.processes import get_process

    args = dict(n_events=5, unweighted=False, n_adapt=0, n_per_iteration=100, progress=False)
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=name):
        generate(get_process("ee_mumu"), 250.0, args.pop("n_events"), **args)


@pytest.mark.robustness(entry="check_output_path", outcome="error")
def test_check_output_path_kinds(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="existing file"):
        check_output_path(tmp_path / "f", kind="directory")
    with pytest.raises(OutputPathError, match="must end in"):
        check_output_path(tmp_path / "g.txt", suffixes=(".lhe",))


@pytest.mark.robustness(entry="sbihep.errors", outcome="correct")
def test_errors_are_sbihep_errors():
    for cls in (IntegrityError, OutputPathError, UnknownParameterError):
        assert issubclass(cls, SbihepError) and issubclass(cls, ValueError)
    assert issubclass(PDFExtrapolationWarning, UserWarning) and issubclass(IntegrityWarning, UserWarning)
