"""One exception hierarchy at the boundary (issue 19, item 4): bad user input reaching a public entry
point raises an sbihep error naming the input — never a raw numpy / torch / vegas / pyhf / KeyError
exception from deep inside — and non-finite or negative data never reach a fit.

The cases were found by feeding bad inputs to the public entry points (processes, cross sections, event
generation, EventSet, likelihood terms, fits, scans, Neyman belts, PyhfTerm, estimators) and recording
which raised non-sbihep exceptions.  Cases marked "issue 19" fail on the code before the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from sbihep.errors import (
    DataFormatError,
    IntegrityError,
    InvalidInputError,
    SbihepError,
    ShapeError,
    UnknownParameterError,
    UnphysicalMomentaError,
)
from sbihep.params import Parameter, ParameterSpace

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
runner = CliRunner()


class Ctx:
    """Objects the cases need, built once."""

    def __init__(self, tmp: Path) -> None:
        from sbihep.events.generate import generate
        from sbihep.fit.exact import exact_unbinned_term
        from sbihep.fit.likelihood import Likelihood
        from sbihep.physics.processes import get_process

        self.tmp = tmp
        self.process = get_process("ee_mumu")
        self.momenta, _ = self.process.phase_space(torch.rand(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), 250.0)
        self.events = generate(self.process, 250.0, 60, seed=1, n_adapt=1, n_per_iteration=300, progress=False,
                               observables=["pt(mu-)", "cos_cs(mu-,mu+)"])
        self.term = exact_unbinned_term(self.events, 10.0, pois={"cll": (-1.0, 1.0)})
        self.lik = Likelihood([self.term])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("boundary"))


def _gen(c, **kw):
    from sbihep.events.generate import generate

    args = dict(n_adapt=1, n_per_iteration=300, progress=False)
    args.update(kw)
    return generate(c.process, args.pop("sqrt_s", 250.0), args.pop("n_events", 10), **args)


def _generate_name(name):
    from sbihep.events.generate import generate

    return generate(name, 250.0, 10, progress=False)


def _xsec(c, process=None, sqrt_s=250.0, **kw):
    from sbihep.physics.xsec import cross_section

    args = dict(n_evaluations=200, n_adapt=1, n_iterations=1, progress=False)
    args.update(kw)
    return cross_section(c.process if process is None else process, sqrt_s, **args)


def _wh():
    from sbihep.physics.processes import get_process

    return get_process("wh_lvbb")


def _binned(c, bins, **kw):
    from sbihep.fit.binned import BinnedTerm

    return BinnedTerm.from_eventset(c.events, bins, 10.0, **kw)


def _exact(c, *args, **kw):
    from sbihep.fit.exact import exact_unbinned_term

    return exact_unbinned_term(c.events, *args, **kw)


def _minimize(c, **kw):
    from sbihep.fit.minimize import minimize

    return minimize(c.lik, **kw)


def _scan(c, grid, **kw):
    from sbihep.fit.scan import profile_scan

    return profile_scan(c.lik, grid, **kw)


def _belt(c, grid=None, **kw):
    from sbihep.fit.neyman import neyman_belt

    return neyman_belt(c.lik, grid or {"cll": np.linspace(-0.5, 0.5, 3)}, **kw)


def _ratio(**kw):
    from sbihep.estimators import RatioEstimator

    args = dict(hidden=(4,))
    args.update(kw)
    return RatioEstimator(args.pop("observables", ["a"]), args.pop("space", ParameterSpace([Parameter("c", 0.0, (-1, 1))])), **args)


def _process(name="ee_mumu", **options):
    from sbihep.physics.processes import get_process

    return get_process(name, **options)


# (id, call, expected sbihep class, words the message must contain)
CASES = [
    # ---- processes and matrix elements -----------------------------------------------------
    ("me2 float32 momenta", lambda c: c.process.matrix_element2(c.momenta.float()), ShapeError, ["float64", "float32"]),  # issue 19
    ("me2 complex momenta", lambda c: c.process.matrix_element2(c.momenta.to(torch.complex128)), ShapeError, ["complex"]),
    ("me2 integer momenta", lambda c: c.process.matrix_element2(c.momenta.long()), ShapeError, ["floating-point"]),
    ("me2 numpy momenta", lambda c: c.process.matrix_element2(c.momenta.numpy()), ShapeError, ["torch.Tensor"]),
    ("me2 list momenta", lambda c: c.process.matrix_element2(c.momenta.tolist()), ShapeError, ["torch.Tensor"]),
    ("me2 2D momenta", lambda c: c.process.matrix_element2(c.momenta[:, 0]), ShapeError, ["shape"]),
    ("me2 5 particles", lambda c: c.process.matrix_element2(torch.cat([c.momenta, c.momenta[:, :1]], 1)), ShapeError, ["4 particles"]),
    ("me2 3-vectors", lambda c: c.process.matrix_element2(c.momenta[..., :3]), ShapeError, ["4"]),
    ("me2 NaN momenta", lambda c: c.process.matrix_element2(torch.full_like(c.momenta, float("nan"))), UnphysicalMomentaError, ["NaN"]),
    ("me2 negative energy", lambda c: c.process.matrix_element2(-c.momenta), UnphysicalMomentaError, ["negative"]),
    ("me2 not conserved", lambda c: c.process.matrix_element2(c.momenta * torch.tensor([1.0, 1.0, 1.001, 1.0], dtype=torch.float64)[None, :, None]),
     SbihepError, ["momenta"]),
    ("me2 unknown operator case", lambda c: c.process.matrix_element2(c.momenta, {"cLL": 1.0}), UnknownParameterError, ["cLL"]),
    ("me2 theta string", lambda c: c.process.matrix_element2(c.momenta, {"cll": "a"}), InvalidInputError, ["cll"]),
    ("me2 theta tensor length", lambda c: c.process.matrix_element2(c.momenta, torch.zeros(7, dtype=torch.float64)), ShapeError, ["theta"]),
    ("me2 order", lambda c: c.process.matrix_element2(c.momenta, order="cubic"), InvalidInputError, ["order"]),
    ("me2 subprocess", lambda c: c.process.matrix_element2(c.momenta, subprocess="zz"), UnknownParameterError, ["zz"]),
    ("phase space r shape", lambda c: c.process.phase_space(torch.rand(4, 5, dtype=torch.float64), 250.0), ShapeError, ["r"]),
    ("phase space r > 1", lambda c: c.process.phase_space(torch.full((4, 2), 2.0, dtype=torch.float64), 250.0), InvalidInputError, ["[0, 1]"]),
    ("phase space sqrt_s NaN", lambda c: c.process.phase_space(torch.rand(4, 2, dtype=torch.float64), float("nan")), InvalidInputError, ["sqrt_s"]),
    ("get_process unknown option", lambda c: _process(flavour="tau"), InvalidInputError, ["flavour", "ee_mumu"]),  # issue 19
    ("get_process option typo", lambda c: _process("w_lv", chrge=1), InvalidInputError, ["chrge", "did you mean 'charge'"]),  # issue 19
    ("get_process option value", lambda c: _process("w_lv", charge=3), InvalidInputError, ["charge"]),
    ("get_process unknown name", lambda c: _process("ee_mumuu"), UnknownParameterError, ["ee_mumuu"]),
    ("get_process int name", lambda c: _process(3), UnknownParameterError, ["3"]),
    # ---- cross sections ----------------------------------------------------------------------
    ("xsec seed -3", lambda c: _xsec(c, seed=-3), InvalidInputError, ["seed"]),
    ("xsec n_evaluations 2", lambda c: _xsec(c, n_evaluations=2), InvalidInputError, ["n_evaluations"]),
    ("xsec n_iterations 0", lambda c: _xsec(c, n_iterations=0), InvalidInputError, ["n_iterations"]),
    ("xsec n_adapt -1", lambda c: _xsec(c, n_adapt=-1), InvalidInputError, ["n_adapt"]),
    ("xsec seed float", lambda c: _xsec(c, seed=1.5), InvalidInputError, ["seed"]),
    ("xsec sqrt_s NaN", lambda c: _xsec(c, sqrt_s=float("nan")), InvalidInputError, ["sqrt_s"]),
    ("xsec sqrt_s negative", lambda c: _xsec(c, sqrt_s=-1.0), InvalidInputError, ["sqrt_s"]),
    ("xsec sqrt_s string", lambda c: _xsec(c, sqrt_s="250"), InvalidInputError, ["sqrt_s"]),  # issue 19
    ("xsec sqrt_s below threshold", lambda c: _xsec(c, process=_process("ttbar"), sqrt_s=300.0), SbihepError, ["threshold"]),
    ("xsec order", lambda c: _xsec(c, order="cubic"), InvalidInputError, ["order"]),
    ("xsec pdf string", lambda c: _xsec(c, process=_wh(), sqrt_s=13000.0, pdf="NNPDF31"), InvalidInputError, ["pdf"]),  # issue 19
    ("xsec process string", lambda c: _xsec(c, process="ee_mumu"), InvalidInputError, ["process", "get_process"]),  # issue 19
    # ---- event generation --------------------------------------------------------------------
    ("generate seed -3", lambda c: _gen(c, seed=-3), InvalidInputError, ["seed"]),
    ("generate n_per_iteration 2 (vegas)", lambda c: _gen(c, n_per_iteration=2), InvalidInputError, ["n_per_iteration"]),
    ("generate n_events 0", lambda c: _gen(c, n_events=0), InvalidInputError, ["n_events"]),
    ("generate n_events 10.5", lambda c: _gen(c, n_events=10.5), InvalidInputError, ["n_events"]),
    ("generate chunk_size 0", lambda c: _gen(c, chunk_size=0), InvalidInputError, ["chunk_size"]),
    ("generate n_workers 0", lambda c: _gen(c, n_workers=0), InvalidInputError, ["n_workers"]),
    ("generate systematics unknown", lambda c: _gen(c, systematics=("mu_r",)), InvalidInputError, ["mu_r"]),
    ("generate systematics string", lambda c: _gen(c, systematics="mu_f"), InvalidInputError, ["systematics"]),
    ("generate theta unknown", lambda c: _gen(c, theta={"x": 1.0}), UnknownParameterError, ["x"]),
    ("generate theta NaN", lambda c: _gen(c, theta={"cll": float("nan")}), InvalidInputError, ["cll"]),
    ("generate detector unknown", lambda c: _gen(c, detector="defualt"), InvalidInputError, ["did you mean 'default'"]),  # issue 19
    ("generate reco observable", lambda c: _gen(c, detector="default", observables=["foo(l)"]), InvalidInputError, ["foo"]),
    ("generate observables string", lambda c: _gen(c, observables="pt(mu-)"), InvalidInputError, ["observables"]),
    ("generate max_overweight", lambda c: _gen(c, max_overweight=-1), InvalidInputError, ["max_overweight"]),
    ("generate detector_seed -1", lambda c: _gen(c, detector="default", detector_seed=-1), InvalidInputError, ["detector_seed"]),
    ("generate order", lambda c: _gen(c, order="cubic"), InvalidInputError, ["order"]),
    ("generate process string", lambda c: _generate_name("ee_mumu"), InvalidInputError, ["process", "get_process"]),  # issue 19
    # ---- EventSet ----------------------------------------------------------------------------
    ("weights NaN theta", lambda c: c.events.weights({"cll": float("nan")}), InvalidInputError, ["cll"]),
    ("weights inf theta", lambda c: c.events.weights({"cll": float("inf")}), InvalidInputError, ["cll"]),
    ("weights unknown operator", lambda c: c.events.weights({"cLL": 1.0}), InvalidInputError, ["cLL"]),
    ("sigma NaN theta", lambda c: c.events.sigma({"cee": float("nan")}), InvalidInputError, ["cee"]),
    ("load missing file", lambda c: type(c.events).load(c.tmp / "missing.nc"), InvalidInputError, ["missing.nc"]),
    ("load garbage .nc", lambda c: (c.tmp / "garbage.nc").write_bytes(b"hello" * 50) and type(c.events).load(c.tmp / "garbage.nc"),
     DataFormatError, ["garbage.nc"]),
    ("load empty zarr dir", lambda c: (c.tmp / "e.zarr").mkdir(exist_ok=True) or type(c.events).load(c.tmp / "e.zarr"), DataFormatError, ["e.zarr"]),
    ("load foreign netCDF", lambda c: xr.Dataset({"a": ("n", np.arange(3.0))}).to_netcdf(c.tmp / "f.nc", engine="h5netcdf")
     or type(c.events).load(c.tmp / "f.nc"), DataFormatError, ["not an EventSet"]),
    ("load foreign zarr", lambda c: xr.Dataset({"a": ("n", np.arange(3.0))}).to_zarr(c.tmp / "f.zarr", mode="w") and type(c.events).load(c.tmp / "f.zarr"),
     DataFormatError, ["not an EventSet"]),
    ("select mask shape", lambda c: c.events.select(np.ones(3, bool)), ShapeError, ["mask"]),
    ("binned unknown observable", lambda c: _binned(c, {"pt(mu+)": [0, 50, 125]}), UnknownParameterError, ["pt(mu+)", "did you mean 'pt(mu-)'"]),  # issue 19 (was a raw KeyError)
    # ---- likelihood terms --------------------------------------------------------------------
    ("binned edges decreasing", lambda c: _binned(c, {"pt(mu-)": [125, 50, 0]}), InvalidInputError, ["pt(mu-)", "increasing"]),  # issue 19
    ("binned one edge", lambda c: _binned(c, {"pt(mu-)": [50.0]}), InvalidInputError, ["pt(mu-)"]),  # issue 19
    ("binned NaN edge", lambda c: _binned(c, {"pt(mu-)": [0.0, float("nan"), 125.0]}), InvalidInputError, ["pt(mu-)"]),  # issue 19
    ("binned string edges", lambda c: _binned(c, {"pt(mu-)": ["a", "b"]}), InvalidInputError, ["pt(mu-)"]),  # issue 19
    ("binned three observables", lambda c: _binned(c, {"a": [0, 1], "b": [0, 1], "c": [0, 1]}), InvalidInputError, ["1 or 2"]),
    ("binned pois bounds short", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}, pois={"cll": (1.0,)}), InvalidInputError, ["cll", "bounds"]),  # issue 19
    ("binned lumi_uncertainty 0", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}, lumi_uncertainty=0.0), InvalidInputError, ["lumi_uncertainty"]),
    ("binned counts NaN", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}).with_counts([float("nan"), 1.0]), InvalidInputError, ["counts", "bin 0"]),  # issue 19
    ("binned counts inf", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}).with_counts([1.0, float("inf")]), InvalidInputError, ["bin 1"]),  # issue 19
    ("binned counts negative", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}).with_counts([-1.0, 1.0]), InvalidInputError, ["counts"]),
    ("binned counts shape", lambda c: _binned(c, {"pt(mu-)": [0, 60, 125]}).with_counts([1.0]), ShapeError, ["counts"]),
    ("exact lumi string", lambda c: _exact(c, "140"), InvalidInputError, ["lumi_ifb"]),  # issue 19
    ("exact lumi bool", lambda c: _exact(c, True), InvalidInputError, ["lumi_ifb"]),  # issue 19
    ("exact lumi NaN", lambda c: _exact(c, float("nan")), InvalidInputError, ["lumi_ifb"]),
    ("exact lumi negative", lambda c: _exact(c, -1.0), InvalidInputError, ["lumi_ifb"]),
    ("exact lumi_uncertainty string", lambda c: _exact(c, 1.0, lumi_uncertainty="2%"), InvalidInputError, ["lumi_uncertainty"]),  # issue 19
    ("exact lumi_uncertainty 2", lambda c: _exact(c, 1.0, lumi_uncertainty=2.0), InvalidInputError, ["lumi_uncertainty"]),
    ("exact pois unknown", lambda c: _exact(c, 1.0, pois={"x": (-1, 1)}), InvalidInputError, ["x"]),
    ("exact pois bounds reversed", lambda c: _exact(c, 1.0, pois={"cll": (1, -1)}), InvalidInputError, ["cll"]),
    ("exact pois bounds short", lambda c: _exact(c, 1.0, pois={"cll": (1,)}), InvalidInputError, ["cll", "pair"]),  # issue 19
    ("exact pois bounds strings", lambda c: _exact(c, 1.0, pois={"cll": ("a", "b")}), InvalidInputError, ["cll"]),  # issue 19
    ("exact theta_ref unknown", lambda c: _exact(c, 1.0, theta_ref={"zz": 1.0}), InvalidInputError, ["zz"]),
    ("Parameter bounds None", lambda c: Parameter("c", 0.0, None), InvalidInputError, ["bounds"]),  # issue 19
    ("Parameter sm_value string", lambda c: Parameter("c", "0", (-1, 1)), InvalidInputError, ["sm_value"]),  # issue 19
    ("Parameter sm_value NaN", lambda c: Parameter("c", float("nan"), (-1, 1)), InvalidInputError, ["sm_value"]),  # issue 19
    ("Parameter bad name", lambda c: Parameter("1c", 0.0, (-1, 1)), InvalidInputError, ["name"]),
    ("Parameter kind", lambda c: Parameter("c", 0.0, (-1, 1), kind="poii"), InvalidInputError, ["kind"]),
    # ---- fits, scans, belts ------------------------------------------------------------------
    ("minimize seed -3", lambda c: _minimize(c, seed=-3), InvalidInputError, ["seed"]),  # issue 19
    ("minimize seed float", lambda c: _minimize(c, seed=0.5), InvalidInputError, ["seed"]),  # issue 19
    ("minimize start unknown", lambda c: _minimize(c, start={"zz": 0.0}), UnknownParameterError, ["zz"]),
    ("minimize start NaN", lambda c: _minimize(c, start={"cll": float("nan")}), InvalidInputError, ["cll"]),
    ("minimize fixed unknown", lambda c: _minimize(c, fixed={"zz": 0.0}), UnknownParameterError, ["zz"]),
    ("minimize start out of bounds", lambda c: _minimize(c, start={"cll": 5.0}), InvalidInputError, ["cll"]),
    ("minimize method", lambda c: _minimize(c, method="foo"), InvalidInputError, ["method"]),
    ("likelihood nll unknown", lambda c: c.lik.nll({"zz": 1.0}), UnknownParameterError, ["zz"]),
    ("likelihood nll NaN", lambda c: c.lik.nll({"cll": float("nan")}), InvalidInputError, ["cll"]),
    ("likelihood empty", lambda c: type(c.lik)([]), InvalidInputError, ["terms"]),
    ("likelihood not a term", lambda c: type(c.lik)([3]), InvalidInputError, ["terms[0]"]),
    ("scan unknown", lambda c: _scan(c, {"zz": np.linspace(-1, 1, 3)}), UnknownParameterError, ["zz"]),
    ("scan NaN grid", lambda c: _scan(c, {"cll": np.array([np.nan, 1.0])}), InvalidInputError, ["cll"]),
    ("scan empty grid", lambda c: _scan(c, {"cll": np.array([])}), InvalidInputError, ["cll"]),
    ("scan string grid", lambda c: _scan(c, {"cll": "autoo"}), InvalidInputError, ["auto"]),
    ("belt n_toys 0", lambda c: _belt(c, n_toys=0), InvalidInputError, ["n_toys"]),
    ("belt seed -3", lambda c: _belt(c, n_toys=2, seed=-3), InvalidInputError, ["seed"]),
    ("belt unknown", lambda c: _belt(c, {"zz": np.linspace(-1, 1, 3)}, n_toys=2), UnknownParameterError, ["zz"]),
    ("belt workers 0", lambda c: _belt(c, n_toys=2, n_workers=0), InvalidInputError, ["n_workers"]),
    # ---- estimators ----------------------------------------------------------------------------
    ("estimator seed -3", lambda c: _ratio(seed=-3), InvalidInputError, ["seed"]),  # issue 19
    ("estimator seed float", lambda c: _ratio(seed=0.5), InvalidInputError, ["seed"]),  # issue 19
    ("estimator hidden negative", lambda c: _ratio(hidden=(-1,)), InvalidInputError, ["hidden"]),
    ("estimator activation typo", lambda c: _ratio(activation="tahn"), InvalidInputError, ["activation"]),
    ("estimator no observables", lambda c: _ratio(observables=[]), InvalidInputError, ["observables"]),
    ("estimator space list", lambda c: _ratio(space=["c"]), InvalidInputError, ["space"]),
    ("estimator architecture", lambda c: _ratio(architecture="cnn"), InvalidInputError, ["architecture"]),
    ("estimator load missing", lambda c: type(_ratio()).load(c.tmp / "missing"), InvalidInputError, ["missing"]),
    ("estimator load empty dir", lambda c: (c.tmp / "empty").mkdir(exist_ok=True) or type(_ratio()).load(c.tmp / "empty"), InvalidInputError, ["empty"]),
]


@pytest.mark.robustness(entry="public API (boundary)", outcome="error")
@pytest.mark.parametrize("call, expected, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_an_sbihep_error_naming_it(ctx, call, expected, needles):
    with pytest.raises(expected) as info:
        call(ctx)
    message = str(info.value)
    assert all(n in message for n in needles), message


def _no_generation(monkeypatch):
    import sbihep.events.generate as gen

    def started(*args, **kwargs):
        raise AssertionError("event generation started before the bad input was reported")

    monkeypatch.setattr(gen, "_adapt_map", started)


@pytest.mark.robustness(entry="public API (boundary)", outcome="error")
@pytest.mark.parametrize("observables, needle", [(["pt(muon)"], "muon"), (["pt(mu-)", "foo(mu-)"], "foo"), (["ptmu"], "ptmu")])
def test_generate_checks_parton_observables_before_generating(ctx, monkeypatch, observables, needle):
    """issue 19: a misspelt parton-level observable was reported only after the whole generation."""
    _no_generation(monkeypatch)
    with pytest.raises(InvalidInputError, match=needle):
        _gen(ctx, n_events=10**9, observables=observables)


@pytest.mark.robustness(entry="public API (boundary)", outcome="error")
def test_estimator_device_cuda_without_cuda_is_an_sbihep_error(ctx):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from sbihep.estimators.train import train

    model = torch.nn.Linear(1, 1)
    data = {"x": torch.zeros(8, 1), "y": torch.zeros(8, 1)}
    with pytest.raises(InvalidInputError, match="device"):
        train(model, lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean(), data, epochs=1, device="cuda", quiet=True)


@pytest.mark.robustness(entry="public API (boundary)", outcome="correct")
def test_valid_inputs_still_work(ctx):
    """The checks reject only what is wrong: float64 momenta, options the constructor takes, numeric
    seeds given as numpy integers, integer luminosities."""
    me = ctx.process.matrix_element2(ctx.momenta)
    assert me.dtype == torch.float64 and bool(torch.isfinite(me).all()) and bool((me > 0).all())
    assert _process("w_lv", charge=1).name == "w_lv"
    assert _exact(ctx, 10).lumi_ifb == 10.0
    fit = _minimize(ctx, seed=np.int64(3))
    assert fit.converged and abs(fit.values["cll"]) < 0.2


# ---------------------------------------------------------------------------------------------
# PyhfTerm: observed data, workspaces, versions
# ---------------------------------------------------------------------------------------------


def _spec(observed=(52.0, 29.0)):
    pytest.importorskip("pyhf")
    from _pyhf_toy import toy_spec

    return toy_spec(observed=observed)


def _pyhf(*args, **kw):
    from sbihep.fit.pyhf_term import PyhfTerm

    return PyhfTerm(*args, **kw)


def _with(spec, **changes):
    out = dict(spec)
    out.update(changes)
    return out


PYHF = [
    # issue 19: NaN or negative observed data were accepted and the fit failed later with "EDM nan"
    ("observed NaN", lambda s, t: _pyhf(_spec((float("nan"), 29.0))), InvalidInputError, ["channel 'SR' bin 0", "nan"]),
    ("observed negative", lambda s, t: _pyhf(_spec((52.0, -3.0))), InvalidInputError, ["channel 'SR' bin 1", "-3.0"]),
    ("observed inf", lambda s, t: _pyhf(_spec((float("inf"), 29.0))), InvalidInputError, ["channel 'SR' bin 0"]),
    ("from_model NaN data", lambda s, t: type(t).from_model(t.model, np.full(t.data.shape, np.nan)), InvalidInputError, ["channel 'SR'"]),
    ("from_model negative data", lambda s, t: type(t).from_model(t.model, np.r_[-1.0, t.data[1:]]), InvalidInputError, ["bin 0"]),
    ("from_model NaN auxdata", lambda s, t: type(t).from_model(t.model, np.r_[t.data[:2], np.nan, t.data[3:]]), InvalidInputError, ["auxiliary"]),
    ("from_model wrong length", lambda s, t: type(t).from_model(t.model, [1.0]), InvalidInputError, ["shape"]),
    # issue 19: incomplete θ gave a raw KeyError
    ("nll missing parameter", lambda s, t: t.nll({"mu": 1.0}), UnknownParameterError, ["missing"]),
    ("nll misspelt parameter", lambda s, t: t.nll({**{n: 1.0 for n in t.parameters.names if n != "mu"}, "MU": 1.0}), UnknownParameterError,
     ["missing ['mu']", "did you mean 'mu'"]),
    ("expected_data empty theta", lambda s, t: t.expected_data({}), UnknownParameterError, ["missing"]),
    ("nll NaN theta", lambda s, t: t.nll({**t.init, "mu": float("nan")}), InvalidInputError, ["'mu'", "finite"]),
    ("nll string theta", lambda s, t: t.nll({**t.init, "mu": "one"}), InvalidInputError, ["numbers"]),
    ("nll theta not a mapping", lambda s, t: t.nll([1.0, 1.0, 1.0]), InvalidInputError, ["mapping"]),
    ("toy rng int", lambda s, t: t.toy(t.init, 3), InvalidInputError, ["rng"]),
    # workspaces and patches
    ("observations for another channel", lambda s, t: _pyhf(_with(s, observations=[{"name": "CR", "data": [1.0, 2.0]}])),
     DataFormatError, ["no observations for channel(s) ['SR']"]),  # issue 19: the message was just "'SR'"
    ("observations wrong length", lambda s, t: _pyhf(_with(s, observations=[{"name": "SR", "data": [1.0]}])), InvalidInputError, ["shape"]),
    ("measurement unknown", lambda s, t: _pyhf(s, measurement="nope"), InvalidInputError, ["nope"]),
    ("poi unknown", lambda s, t: _pyhf(_with(s, measurements=[{"name": "meas", "config": {"poi": "mux", "parameters": []}}])), DataFormatError, ["mux"]),
    ("spec is a list", lambda s, t: _pyhf([1, 2]), InvalidInputError, ["workspace"]),
    ("spec is empty", lambda s, t: _pyhf({}), DataFormatError, ["schema"]),
    ("spec without version", lambda s, t: _pyhf({k: v for k, v in s.items() if k != "version"}), DataFormatError, ["schema"]),
    ("json file missing", lambda s, t: _pyhf("/nonexistent/ws.json"), InvalidInputError, ["does not exist"]),
    ("patch bad ops", lambda s, t: _pyhf(s, [{"op": "remove", "path": "/nope"}]), DataFormatError, ["patch"]),
    ("patch not a list", lambda s, t: _pyhf(s, 3), DataFormatError, ["patch"]),
    ("patch name without patchset", lambda s, t: _pyhf(s, "p1"), InvalidInputError, ["patchset"]),
    ("patchset invalid", lambda s, t: _pyhf(s, "p1", patchset={"x": 1}), DataFormatError, ["patchset"]),
    ("patchset without patch", lambda s, t: _pyhf(s, patchset={"x": 1}), InvalidInputError, ["patch"]),
]


@pytest.mark.robustness(entry="PyhfTerm", outcome="error")
@pytest.mark.parametrize("call, expected, needles", [c[1:] for c in PYHF], ids=[c[0] for c in PYHF])
def test_pyhf_term_bad_input(call, expected, needles):
    spec = _spec()
    term = _pyhf(spec)
    with pytest.raises(expected) as info:
        call(spec, term)
    message = str(info.value)
    assert all(n in message for n in needles), message


@pytest.mark.robustness(entry="PyhfTerm", outcome="error")
@pytest.mark.parametrize("file_text, error, needle", [
    ("{", DataFormatError, "not valid JSON"),
    ("[1]", InvalidInputError, "spec dict"),
    ('{"channels": 3}', DataFormatError, "schema"),
])
def test_pyhf_term_bad_json_files(tmp_path, file_text, error, needle):
    _spec()
    path = tmp_path / "ws.json"
    path.write_text(file_text)
    with pytest.raises(error, match=needle):
        _pyhf(path)


@pytest.mark.robustness(entry="PyhfTerm", outcome="error")
@pytest.mark.parametrize("version", ["0.6.3", "0.7.0", "0.5", "garbage"])
def test_unsupported_pyhf_version_is_an_sbihep_error(monkeypatch, version):
    """issue 19: an old pyhf failed deep inside the model internals with an AttributeError."""
    pyhf = pytest.importorskip("pyhf")
    spec = _spec()
    monkeypatch.setattr(pyhf, "__version__", version)
    with pytest.raises(InvalidInputError, match="pyhf"):
        _pyhf(spec)


@pytest.mark.robustness(entry="PyhfTerm", outcome="correct")
@pytest.mark.parametrize("observed", [(52.0, 29.0), (0.0, 0.0), (1e6, 3.0)])
def test_pyhf_term_valid_data_gives_a_finite_fit(observed):
    from sbihep.fit.likelihood import Likelihood
    from sbihep.fit.minimize import minimize

    term = _pyhf(_spec(observed))
    fit = minimize(Likelihood([term]), start=term.init)
    assert fit.converged and np.isfinite(fit.nll)


# ---------------------------------------------------------------------------------------------
# the demo's netCDF carries the same content hash as EventSet files
# ---------------------------------------------------------------------------------------------


def _constraint_scans():
    g = np.linspace(-1, 1, 5)
    scan = xr.Dataset({"twice_delta_nll": (("cHW", "cHWtil"), np.add.outer(g**2, g**2)), "best_fit": ("parameter", [0.0, 0.0])},
                      coords={"cHW": g, "cHWtil": g, "parameter": ["cHW", "cHWtil"]})
    return {"exact": scan}


@pytest.mark.robustness(entry="sbihep demo (constraints file)", outcome="correct")
def test_demo_constraints_file_carries_a_verified_hash(tmp_path):
    """issue 19: sbihep/demo.py wrote its netCDF without the content hash EventSet.save records."""
    from sbihep.demo import write_constraints
    from sbihep.events.eventset import HASH_ATTR, verify_content_hash

    path = write_constraints(_constraint_scans(), {"exact": 1.0}, tmp_path / "c.nc", {"seed": 3, "sizes": [1, 2]})
    ds = xr.load_dataset(path, engine="h5netcdf")
    assert HASH_ATTR in ds.attrs
    verify_content_hash(ds, str(path))


@pytest.mark.robustness(entry="sbihep demo (constraints file)", outcome="error")
@pytest.mark.parametrize("tamper", ["values", "coordinate", "attribute", "hash removed"])
def test_demo_constraints_tampering_is_detected(tmp_path, tamper):
    from sbihep.demo import write_constraints
    from sbihep.events.eventset import HASH_ATTR, verify_content_hash

    path = write_constraints(_constraint_scans(), {"exact": 1.0}, tmp_path / "c.nc", {"seed": 3})
    ds = xr.load_dataset(path, engine="h5netcdf")
    if tamper == "values":
        ds["twice_delta_nll_exact"][0, 0] = 7.0
    elif tamper == "coordinate":
        ds = ds.assign_coords(cHW=ds["cHW"].values * 2)
    elif tamper == "attribute":
        ds.attrs["seed"] = 4
    else:
        del ds.attrs[HASH_ATTR]
    with pytest.raises(IntegrityError, match="c.nc"):
        verify_content_hash(ds, str(path))


# ---------------------------------------------------------------------------------------------
# the command line: inputs that reached dependencies
# ---------------------------------------------------------------------------------------------


def _cli(*args):
    from sbihep.cli import app

    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.robustness(entry="sbihep xsec", outcome="error")
@pytest.mark.parametrize("args, needle", [
    (["xsec", "ee_mumu", "--option", "flavour=tau", "--n-eval", "200"], "flavour"),
    (["xsec", "w_lv", "--option", "chrge=1", "--n-eval", "200"], "did you mean 'charge'"),  # issue 19
    (["xsec", "ee_mumu", "--set", "cLL=1", "--n-eval", "200"], "cLL"),
    (["xsec", "ee_mumu", "--set", "cll=abc", "--n-eval", "200"], "cll"),
    (["xsec", "ee_mumu", "--order", "cubic", "--n-eval", "200"], "order"),
    (["xsec", "ee_mumuu", "--n-eval", "200"], "ee_mumuu"),
    (["xsec", "ttbar", "--sqrts", "100", "--n-eval", "200"], "threshold"),
    (["xsec", "ee_mumu", "--sqrts", "nan", "--n-eval", "200"], "sqrt_s"),
])
def test_xsec_cli_bad_inputs(args, needle):
    res = _cli(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output and needle in res.output, res.output


@pytest.mark.robustness(entry="sbihep simulate", outcome="error")
@pytest.mark.parametrize("extra, needle", [
    ('[detector]\ncard = "defualt"', "did you mean 'default'"),  # issue 19
    ('observables = ["pt(muon)"]', "pt(muon)"),  # issue 19: found only after generating
    ('[process_options]\nflavor = "tau"', "[process_options]"),
])
def test_simulate_cli_names_are_checked_before_generation(tmp_path, monkeypatch, extra, needle):
    _no_generation(monkeypatch)
    card = tmp_path / "sim.toml"
    top, _, table = extra.partition("\n") if extra.startswith("[") else ("", "", "")
    body = 'process = "ee_mumu"\nsqrt_s_gev = 250.0\nn_events = 100000000\n'
    body += (extra + "\n") if not extra.startswith("[") else f"{top}\n{table}\n"
    card.write_text(body)
    res = _cli("simulate", card, "-o", tmp_path / "ev.nc")
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output and needle in res.output, res.output
    assert not (tmp_path / "ev.nc").exists()


# ---------------------------------------------------------------------------------------------
# every command with -o: the output path is checked before any work, and nothing foreign is replaced
# ---------------------------------------------------------------------------------------------

_SIM_CARD = 'process = "ee_mumu"\nsqrt_s_gev = 250.0\nn_events = 100000000\n'
_FIT_CARD = ('[model]\nlumi_ifb = 1.0\n[model.generate]\nprocess = "ee_mumu"\nsqrt_s_gev = 250.0\n'
             'n_events = 100000000\n')


def _command(kind, tmp_path, output):
    if kind == "simulate":
        (tmp_path / "sim.toml").write_text(_SIM_CARD)
        return ["simulate", tmp_path / "sim.toml", "-o", output]
    if kind == "fit":
        (tmp_path / "fit.toml").write_text(_FIT_CARD)
        return ["fit", tmp_path / "fit.toml", "-o", output]
    if kind == "import-lhe":
        (tmp_path / "ev.lhe").write_text("<LesHouchesEvents version=\"3.0\">\n</LesHouchesEvents>\n")
        return ["import-lhe", tmp_path / "ev.lhe", "-o", output]
    (tmp_path / "ws.json").write_text("{}")
    return ["surrogate", "train", tmp_path / "ws.json", "-o", output, "--n-points", "1000"]


_SUFFIX = {"simulate": ".nc", "fit": ".nc", "import-lhe": ".nc", "surrogate train": ".onnx"}


@pytest.mark.robustness(entry="CLI -o", outcome="error")
@pytest.mark.parametrize("problem", ["foreign file", "existing directory", "missing parent", "wrong suffix", "parent is a file"])
@pytest.mark.parametrize("kind", ["simulate", "fit", "import-lhe", "surrogate train"])
def test_every_output_option_is_checked_first_and_never_replaces_a_foreign_file(tmp_path, monkeypatch, kind, problem):
    if kind == "surrogate train":
        pytest.importorskip("pyhf")
    _no_generation(monkeypatch)
    suffix = _SUFFIX[kind]
    foreign = tmp_path / f"notes{suffix}"
    foreign.write_bytes(b"my own notes, not an sbihep output\n")
    (tmp_path / f"adir{suffix}").mkdir()
    (tmp_path / "plain").write_text("x")
    target = {"foreign file": foreign, "existing directory": tmp_path / f"adir{suffix}",
              "missing parent": tmp_path / "no" / "such" / f"out{suffix}", "wrong suffix": tmp_path / "out.txt",
              "parent is a file": tmp_path / "plain" / f"out{suffix}"}[problem]
    res = _cli(*_command(kind, tmp_path, target))
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output, res.output
    assert foreign.read_bytes() == b"my own notes, not an sbihep output\n"
    assert (tmp_path / f"adir{suffix}").is_dir() and (tmp_path / "plain").read_text() == "x"
