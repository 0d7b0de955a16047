"""Run a fit described by a TOML configuration (what ``sbihep fit CONFIG.toml`` does).

Sections (see ``examples/fit_wh_exact.toml``):

- ``[model]`` with ``kind = "surrogate"``: ``file`` (an sbihep ONNX likelihood surrogate) and
  ``data`` = ``"observed"`` (default) or ``"asimov"``; the parameters are the surrogate's inputs.
- ``[model]``: ``kind`` = ``"unbinned_exact"`` or ``"binned"``; ``events`` (EventSet file) or
  ``[model.generate]`` (``process``, ``sqrt_s_gev``, ``n_events``, ``seed``, ``systematics``, and the
  generation settings ``n_adapt``, ``n_per_iteration``, ``chunk_size``, ``n_workers``, ``order``,
  ``theta``); ``lumi_ifb``; optional ``lumi_uncertainty`` in (0, 1); ``pois`` = {operator = [low, high]};
  for binned, ``bins`` = {observable = [edges]}.
- ``[data]``: ``asimov`` = {name = value} (default the SM) or ``toy_seed`` (a toy at ``asimov``'s θ).
- ``[scan]``: name = {low, high, points} (or ``"auto"``: a grid from the fit's errors, widened until
  the threshold is crossed) for one or two POIs (others profiled).  A 1D scan prints the Wilks
  confidence *sets* at 68.3% and 95.4%, found by root finding on the profile seeded by the scan:
  several pieces are joined by ``∪``; an end written ``(≤x`` / ``x≥)`` is open (the search stopped
  before the threshold), ``|[x`` / ``x]|`` lies on the parameter's bound.
- ``[neyman]``: ``parameter``, ``low``, ``high``, ``points``, optional ``n_toys`` (default 200),
  ``seed`` (default 0) and ``workers`` (default 1).

The configuration is strict (:func:`load_config`): every key of every table is checked — unknown keys
are errors with a did-you-mean, values must have their type and range, and the parameter names in
``[data]``, ``[scan]``, ``[neyman]`` and ``pois`` must be parameters of the model (checked against the
process's operators and nuisances before any event is generated) — so a typo never silently drops a
nuisance or fits the wrong hypothesis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sbihep._checks import check_real
from sbihep._toml import check_table, did_you_mean, read_toml
from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, wilks_interval
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.scan import profile_scan

__all__ = ["load_config", "check_config", "run_config", "summary_table"]

_NUMBER = (int, float)
_SEED_MAX = 2**32
_TOP = {"model": dict, "data": dict, "scan": dict, "neyman": dict}
_KINDS = ("unbinned_exact", "binned", "surrogate")
_MODEL = {"kind": str, "events": str, "generate": dict, "lumi_ifb": _NUMBER, "lumi_uncertainty": _NUMBER,
          "pois": dict, "bins": dict, "file": str, "data": str}  # fmt: skip
_MODEL_SURROGATE = ("kind", "file", "data")
_GENERATE = {"process": str, "sqrt_s_gev": _NUMBER, "n_events": int, "seed": int, "systematics": list,
             "n_adapt": int, "n_per_iteration": int, "chunk_size": int, "n_workers": int, "order": str,
             "theta": dict, "unweighted": bool, "observables": list, "detector": str, "detector_seed": int,
             "max_overweight": _NUMBER}  # fmt: skip
_GENERATE_MIN = {"n_events": 1, "n_adapt": 1, "n_per_iteration": 100, "chunk_size": 1, "n_workers": 1}
_DATA = {"asimov": dict, "toy_seed": int}
_SCAN_AXIS = {"low": _NUMBER, "high": _NUMBER, "points": int}
_NEYMAN = {"parameter": str, "low": _NUMBER, "high": _NUMBER, "points": int, "n_toys": int, "seed": int, "workers": int}


def _fail(where: str, message: str):
    raise InvalidInputError(f"{where}: {message}")


def _finite(value, where: str, key: str, *, positive: bool = False) -> float:
    return check_real(f"{where}: {key!r}", value, positive=positive)


def _seed(value, where: str, key: str) -> None:
    if not 0 <= value < _SEED_MAX:
        _fail(where, f"{key!r} must be a seed in [0, 2**32), got {value!r}")


def _range_pair(value, where: str, key: str) -> None:
    if not isinstance(value, list) or len(value) != 2:
        _fail(where, f"{key!r} must be [low, high], got {value!r}")
    low, high = (_finite(v, where, key) for v in value)
    if not low < high:
        _fail(where, f"{key!r} must have low < high, got {value!r}")


def _check_model(model: dict, where: str) -> None:
    w = f"{where} [model]"
    check_table(model, _MODEL, w)
    kind = model.get("kind", "unbinned_exact")
    if kind not in _KINDS:
        _fail(w, f"'kind' must be one of {list(_KINDS)}, got {kind!r}{did_you_mean(kind, _KINDS)}")
    if kind == "surrogate":
        extra = sorted(set(model) - set(_MODEL_SURROGATE))
        if extra:
            _fail(w, f"{extra} are not used by kind 'surrogate' (it takes {list(_MODEL_SURROGATE)})")
        if "file" not in model:
            _fail(w, "kind 'surrogate' needs `file` (the .onnx surrogate)")
        if model.get("data", "observed") not in ("observed", "asimov"):
            _fail(w, f"'data' must be 'observed' or 'asimov', got {model['data']!r}{did_you_mean(model['data'], ('observed', 'asimov'))}")
        return
    for key in ("file", "data"):
        if key in model:
            _fail(w, f"{key!r} is only used by kind 'surrogate' (this model is {kind!r})")
    if "bins" in model and kind != "binned":
        _fail(w, f"'bins' is only used by kind 'binned' (this model is {kind!r})")
    if ("events" in model) == ("generate" in model):
        _fail(w, "give exactly one of `events` (an EventSet file) and a [model.generate] table")
    if "lumi_ifb" not in model:
        _fail(w, "missing required key 'lumi_ifb' (integrated luminosity in fb^-1)")
    _finite(model["lumi_ifb"], w, "lumi_ifb", positive=True)
    if "lumi_uncertainty" in model:
        dl = _finite(model["lumi_uncertainty"], w, "lumi_uncertainty")
        if not 0 < dl < 1:
            _fail(w, f"'lumi_uncertainty' must lie in (0, 1) (a relative uncertainty), got {dl!r}")
    for name, bounds in model.get("pois", {}).items():
        _range_pair(bounds, f"{w} pois", name)
    if kind == "binned":
        bins = model.get("bins")
        if not bins:
            _fail(w, "kind 'binned' needs `bins` = {observable = [edges]}")
        if not 1 <= len(bins) <= 2:
            _fail(w, f"'bins' must name 1 or 2 observables, got {list(bins)}")
        for name, edges in bins.items():
            if not isinstance(edges, list) or len(edges) < 2:
                _fail(f"{w} bins", f"{name!r} must be a list of ≥ 2 bin edges, got {edges!r}")
            values = [_finite(e, f"{w} bins", name) for e in edges]
            if any(b <= a for a, b in zip(values, values[1:])):
                _fail(f"{w} bins", f"the edges of {name!r} must increase strictly, got {edges!r}")
    if "generate" in model:
        _check_generate(model["generate"], f"{where} [model.generate]")


def _check_generate(g: dict, w: str) -> None:
    check_table(g, _GENERATE, w)
    for key in ("process", "n_events"):
        if key not in g:
            _fail(w, f"missing required key {key!r}")
    if "sqrt_s_gev" in g:
        _finite(g["sqrt_s_gev"], w, "sqrt_s_gev", positive=True)
    for key, low in _GENERATE_MIN.items():
        if key in g and g[key] < low:
            _fail(w, f"{key!r} must be ≥ {low}, got {g[key]!r}")
    if "seed" in g:
        _seed(g["seed"], w, "seed")
    if g.get("order", "quadratic") not in ("linear", "quadratic"):
        _fail(w, f"'order' must be \"linear\" or \"quadratic\", got {g['order']!r}{did_you_mean(g['order'], ('linear', 'quadratic'))}")
    bad = [s for s in g.get("systematics", []) if not isinstance(s, str)]
    if bad:
        _fail(w, f"'systematics' must be a list of strings, got {bad[0]!r} in it")
    for name, value in g.get("theta", {}).items():
        _finite(value, f"{w} theta", name)
    bad = [s for s in g.get("observables", []) if not isinstance(s, str)]
    if bad:
        _fail(w, f"'observables' must be a list of strings, got {bad[0]!r} in it")
    if "detector_seed" in g:
        _seed(g["detector_seed"], w, "detector_seed")
    if "max_overweight" in g and not 0 <= _finite(g["max_overweight"], w, "max_overweight") < 1:
        _fail(w, f"'max_overweight' must lie in [0, 1), got {g['max_overweight']!r}")


def _check_data(data: dict, where: str) -> None:
    w = f"{where} [data]"
    check_table(data, _DATA, w)
    for name, value in data.get("asimov", {}).items():
        _finite(value, f"{w} asimov", name)
    if "toy_seed" in data:
        _seed(data["toy_seed"], w, "toy_seed")


def _check_scan(scan: dict, where: str) -> None:
    w = f"{where} [scan]"
    if not 1 <= len(scan) <= 2:
        _fail(w, f"scan one or two parameters, got {list(scan)}")
    for name, axis in scan.items():
        if axis == "auto":
            continue
        if not isinstance(axis, dict):
            _fail(w, f"{name!r} must be \"auto\" or {{low, high, points}}, got {axis!r}")
        check_table(axis, _SCAN_AXIS, f"{w} {name}")
        missing = [k for k in _SCAN_AXIS if k not in axis]
        if missing:
            _fail(f"{w} {name}", f"missing key(s) {missing}")
        low, high = _finite(axis["low"], f"{w} {name}", "low"), _finite(axis["high"], f"{w} {name}", "high")
        if not low < high:
            _fail(f"{w} {name}", f"needs low < high, got low = {low!r}, high = {high!r}")
        if axis["points"] < 2:
            _fail(f"{w} {name}", f"'points' must be ≥ 2, got {axis['points']!r}")


def _check_neyman(ny: dict, where: str) -> None:
    w = f"{where} [neyman]"
    check_table(ny, _NEYMAN, w)
    missing = [k for k in ("parameter", "low", "high", "points") if k not in ny]
    if missing:
        _fail(w, f"missing required key(s) {missing}")
    low, high = _finite(ny["low"], w, "low"), _finite(ny["high"], w, "high")
    if not low < high:
        _fail(w, f"needs low < high, got low = {low!r}, high = {high!r}")
    for key, least in (("points", 2), ("n_toys", 1), ("workers", 1)):
        if key in ny and ny[key] < least:
            _fail(w, f"{key!r} must be ≥ {least}, got {ny[key]!r}")
    if "seed" in ny:
        _seed(ny["seed"], w, "seed")


def check_config(config: Mapping[str, Any], where: str = "fit config") -> None:
    """Check every table, key, type and range of a fit configuration (see the module docstring).

    Raises:
        InvalidInputError: naming the table and key (unknown keys with a did-you-mean).
    """
    if not isinstance(config, Mapping):
        _fail(where, f"must be a table of sections, got {type(config).__name__}")
    unknown = [k for k in config if k not in _TOP]
    if unknown:
        _fail(where, f"unknown section [{unknown[0]}]{did_you_mean(unknown[0], _TOP)}; known: {sorted(_TOP)}")
    check_table(dict(config), _TOP, where)
    if "model" not in config:
        _fail(where, "the [model] section is required")
    _check_model(config["model"], where)
    if config["model"].get("kind") == "surrogate" and "data" in config:
        _fail(where, "a surrogate carries its own data; choose [model] data = 'observed' or 'asimov' instead of a [data] section")
    if "data" in config:
        _check_data(config["data"], where)
    if "scan" in config:
        _check_scan(config["scan"], where)
    if "neyman" in config:
        _check_neyman(config["neyman"], where)


def load_config(path: str | Path) -> dict:
    """Read a fit configuration (a path, or TOML text as :func:`sbihep._toml.read_toml` reads it) and
    check it strictly (:func:`check_config`) before any work.

    Raises:
        InvalidInputError: a missing file or a mistake in the configuration, naming the key.
        DataFormatError: a file that is not valid TOML.
    """
    config, where = read_toml(path, "fit config")
    check_config(config, f"fit config {where}" if where != "fit config" else where)
    return config


def _names_used(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, name) of every parameter name the [data], [scan], [neyman] sections use."""
    used = [("[data] asimov", n) for n in config.get("data", {}).get("asimov", {})]
    used += [("[scan]", n) for n in config.get("scan", {})]
    if "neyman" in config:
        used.append(("[neyman] parameter", config["neyman"]["parameter"]))
    return used


def _check_names(names, operators, config: Mapping[str, Any], pois: bool = True) -> None:
    if pois:
        _check_ranges(config)
    names = list(names)
    used = list(_names_used(config))
    if pois:
        used = [("[model] pois", n) for n in config["model"].get("pois", {})] + used
    for where, name in used:
        allowed = operators if where == "[model] pois" else names
        if name not in allowed:
            raise UnknownParameterError(f"fit config {where}: {name!r} is not a parameter of the model{did_you_mean(name, allowed)}; "
                                        f"it has {list(allowed)}")


def _check_ranges(config: Mapping[str, Any]) -> None:
    """[data] asimov values and the [scan] / [neyman] ranges must lie within the POI bounds of ``pois``."""
    pois = config["model"].get("pois", {})

    def inside(where, name, values):
        if name in pois:
            low, high = pois[name]
            bad = [v for v in values if not low <= v <= high]
            if bad:
                _fail(f"fit config {where}", f"{name!r} = {bad[0]!r} lies outside its bounds [{low}, {high}] set in [model] pois")

    for name, value in config.get("data", {}).get("asimov", {}).items():
        inside("[data] asimov", name, [value])
    for name, axis in config.get("scan", {}).items():
        if isinstance(axis, Mapping):
            inside(f"[scan] {name}", name, [axis["low"], axis["high"]])
    if "neyman" in config:
        ny = config["neyman"]
        inside("[neyman]", ny["parameter"], [ny["low"], ny["high"]])


def _check_generate_names(model: Mapping[str, Any]) -> None:
    """Process, systematics and parameter names of [model.generate] against the process, before generating."""
    from sbihep.events.generate import SYSTEMATICS
    from sbihep.physics.processes import PROCESSES, get_process

    g = model["generate"]
    if g["process"] not in PROCESSES:
        _fail("fit config [model.generate]", f"unknown process {g['process']!r}{did_you_mean(g['process'], PROCESSES)}; available: {sorted(PROCESSES)}")
    bad = [s for s in g.get("systematics", []) if s not in SYSTEMATICS]
    if bad:
        _fail("fit config [model.generate]", f"unknown systematics {bad[0]!r}{did_you_mean(bad[0], SYSTEMATICS)}; available: {sorted(SYSTEMATICS)}")
    process = get_process(g["process"])
    unknown = [k for k in g.get("theta", {}) if k not in process.operators]
    if unknown:
        _fail("fit config [model.generate] theta", f"{unknown[0]!r} is not an operator of {g['process']!r}"
                                                   f"{did_you_mean(unknown[0], process.operators)}")
    if "detector" in g:
        from sbihep.events.detector import Detector

        Detector(g["detector"])
    observables = g.get("observables", [])
    if observables and "detector" not in g:
        from sbihep.events.observables import parse

        for name in observables:
            parse(name, process.roles())
    for name in model.get("bins", {}):
        if name not in observables:
            _fail("fit config [model] bins", f"{name!r} is not one of the observables [model.generate] computes"
                                             f"{did_you_mean(name, observables)}; it computes {observables}")
    return process


def _model_names(model: Mapping[str, Any], operators, nuisances) -> list[str]:
    pois = list(model.get("pois", {})) or list(operators)
    return pois + list(nuisances) + (["lumi"] if "lumi_uncertainty" in model else [])


def _events(model: Mapping[str, Any], base: Path, config: Mapping[str, Any]):
    from sbihep.events.eventset import EventSet

    if "events" in model:
        events = EventSet.load(base / model["events"])
        _check_names(_model_names(model, events.operators, events.nuisances), events.operators, config)
        return events
    from sbihep.events.generate import generate

    g = dict(model["generate"])
    process = _check_generate_names(model)
    _check_names(_model_names(model, process.operators, g.get("systematics", [])), process.operators, config)
    return generate(process, float(g.pop("sqrt_s_gev", 13000.0)), int(g.pop("n_events")),
                    seed=int(g.pop("seed", 0)), systematics=tuple(g.pop("systematics", ())), progress=False,
                    **{k: v for k, v in g.items() if k != "process"})


def build_likelihood(config: Mapping[str, Any], base: Path = Path(".")) -> Likelihood:
    """The likelihood of the [model] and [data] sections (``config`` is checked first, :func:`check_config`)."""
    check_config(config)
    model = config["model"]
    kind = model.get("kind", "unbinned_exact")
    if kind == "surrogate":
        from sbihep.fit.surrogate_term import SurrogateTerm

        term = SurrogateTerm(base / model["file"], data=model.get("data", "observed"))
        names = list(term.parameters.names)
        _check_names(names, names, config, pois=False)
        return Likelihood([term])
    events = _events(model, base, config)
    pois = {k: tuple(v) for k, v in model.get("pois", {}).items()} or None
    lumi, dl = float(model["lumi_ifb"]), model.get("lumi_uncertainty")
    if kind == "unbinned_exact":
        from sbihep.fit.exact import exact_unbinned_term

        term = exact_unbinned_term(events, lumi, pois=pois, lumi_uncertainty=dl)
    else:
        from sbihep.fit.binned import BinnedTerm

        term = BinnedTerm.from_eventset(events, model["bins"], lumi, pois=pois, lumi_uncertainty=dl)
    data = config.get("data", {})
    theta = term.parameters.validate(data.get("asimov", {}))
    term = term.toy(theta, np.random.default_rng(int(data["toy_seed"]))) if "toy_seed" in data else term.asimov(theta)
    return Likelihood([term])


def run_config(config: Mapping[str, Any], base: Path = Path(".")):
    """Run every requested step; returns (Dataset of results, list of summary rows).

    Raises:
        InvalidInputError: a mistake in ``config`` (:func:`check_config`, run by :func:`build_likelihood`),
            found before any work.
    """
    import xarray as xr

    lik = build_likelihood(config, base)  # checks the whole config (check_config) before any work
    best = minimize(lik)
    out = best.to_dataset()
    rows = [(n, best.values[n], best.errors[n], "", "") for n in lik.names]
    if "scan" in config:
        grid = {n: ("auto" if s == "auto" else np.linspace(float(s["low"]), float(s["high"]), int(s["points"])))
                for n, s in config["scan"].items()}
        scan = profile_scan(lik, grid, best_fit=best)
        out = xr.merge([out, scan.drop_vars(["best_fit"]).rename({"profiled": "scan_profiled"})], combine_attrs="drop_conflicts")
        if len(grid) == 1:
            name = next(iter(grid))
            for cl in (ONE_SIGMA, TWO_SIGMA):
                cs = wilks_interval(scan, name, cl, likelihood=lik)
                # the pieces' ends, flattened: [low_1, high_1, low_2, high_2, ...], and their kinds
                out.attrs[f"wilks_{round(100 * cl, 1)}_{name}"] = [e for iv in cs.intervals for e in (iv.low, iv.high)]
                out.attrs[f"wilks_{round(100 * cl, 1)}_{name}_ends"] = ",".join(
                    e for iv in cs.intervals for e in (iv.low_end, iv.high_end))
                rows.append((name, cs.best, float("nan"), f"Wilks {100 * cl:.1f}%", cs.describe()))
    if "neyman" in config:
        from sbihep.fit.neyman import neyman_belt, neyman_interval

        ny = config["neyman"]
        name = ny["parameter"]
        belt = neyman_belt(lik, {name: np.linspace(float(ny["low"]), float(ny["high"]), int(ny["points"]))},
                           n_toys=int(ny.get("n_toys", 200)), seed=int(ny.get("seed", 0)), n_workers=int(ny.get("workers", 1)))
        out["neyman_critical_value"] = belt["critical_value"].rename({name: f"neyman_{name}", "cl": "neyman_cl"})
        for cl in (ONE_SIGMA, TWO_SIGMA):
            cs = neyman_interval(lik, belt, cl)
            # the pieces' ends, flattened as for Wilks: [low_1, high_1, low_2, high_2, ...], and their kinds
            out.attrs[f"neyman_{round(100 * cl, 1)}_{name}"] = [e for iv in cs.intervals for e in (iv.low, iv.high)]
            out.attrs[f"neyman_{round(100 * cl, 1)}_{name}_ends"] = ",".join(
                e for iv in cs.intervals for e in (iv.low_end, iv.high_end))
            rows.append((name, cs.best, float("nan"), f"Neyman {100 * cl:.1f}%", cs.describe()))
    return out, rows


def summary_table(rows) -> str:
    """A fixed-width text table of (parameter, best, error, interval kind, interval) rows."""
    lines = [f"{'parameter':<12} {'best fit':>12} {'error':>10}  {'interval':<14} {'':<24}"]
    for name, best, err, kind, text in rows:
        err_text = "" if err != err else f"{err:10.4g}"
        lines.append(f"{name:<12} {best:12.5g} {err_text:>10}  {kind:<14} {text:<24}")
    return "\n".join(lines)
