"""Run a fit described by a TOML configuration (what ``sbihep fit CONFIG.toml`` does).

Sections (see ``examples/fit_wh_exact.toml``):

- ``[model]`` with ``kind = "surrogate"``: ``file`` (an sbihep ONNX likelihood surrogate) and
  ``data`` = ``"observed"`` (default) or ``"asimov"``; the parameters are the surrogate's inputs.
- ``[model]``: ``kind`` = ``"unbinned_exact"`` or ``"binned"``; ``events`` (EventSet file) or
  ``[model.generate]`` (``process``, ``sqrt_s_gev``, ``n_events``, ``seed``, ``systematics``);
  ``lumi_ifb``; optional ``lumi_uncertainty``; ``pois`` = {operator = [low, high]}; for binned,
  ``bins`` = {observable = [edges]}.
- ``[data]``: ``asimov`` = {name = value} (default the SM) or ``toy_seed`` (a toy at ``asimov``'s θ).
- ``[scan]``: name = {low, high, points} (or ``"auto"``: a grid from the fit's errors, widened until
  the threshold is crossed) for one or two POIs (others profiled).  A 1D scan prints the Wilks
  confidence *sets* at 68.3% and 95.4%, found by root finding on the profile seeded by the scan:
  several pieces are joined by ``∪``; an end written ``(≤x`` / ``x≥)`` is open (the search stopped
  before the threshold), ``|[x`` / ``x]|`` lies on the parameter's bound.
- ``[neyman]``: ``parameter``, ``low``, ``high``, ``points``, ``n_toys``, optional ``workers``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sbihep.errors import InvalidInputError
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, wilks_interval
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize
from sbihep.fit.scan import profile_scan

__all__ = ["load_config", "run_config", "summary_table"]

_SECTIONS = {"model", "data", "scan", "neyman"}


def load_config(path: str | Path) -> dict:
    """Read and check the top-level sections of a fit configuration."""
    with open(path, "rb") as f:
        config = tomllib.load(f)
    unknown = sorted(set(config) - _SECTIONS)
    if unknown:
        raise InvalidInputError(f"fit config {path}: unknown section(s) {unknown}; known: {sorted(_SECTIONS)}")
    if "model" not in config:
        raise InvalidInputError(f"fit config {path}: the [model] section is required")
    return config


def _events(model: Mapping[str, Any], base: Path):
    from sbihep.events.eventset import EventSet

    if "events" in model:
        return EventSet.load(base / model["events"])
    if "generate" not in model:
        raise InvalidInputError("fit config [model]: give `events` (a file) or a [model.generate] table")
    from sbihep.events.generate import generate
    from sbihep.physics.processes import get_process

    g = dict(model["generate"])
    return generate(get_process(g.pop("process")), float(g.pop("sqrt_s_gev", 13000.0)), int(g.pop("n_events")),
                    seed=int(g.pop("seed", 0)), systematics=tuple(g.pop("systematics", ())), progress=False, **g)


def build_likelihood(config: Mapping[str, Any], base: Path = Path(".")) -> Likelihood:
    """The likelihood of the [model] and [data] sections."""
    model = config["model"]
    kind = model.get("kind", "unbinned_exact")
    if kind == "surrogate":
        from sbihep.fit.surrogate_term import SurrogateTerm

        if "file" not in model:
            raise InvalidInputError("fit config [model]: kind 'surrogate' needs `file` (the .onnx surrogate)")
        if "data" in config:
            raise InvalidInputError("fit config: a surrogate carries its own data; choose [model] data = 'observed' or 'asimov' instead of a [data] section")
        return Likelihood([SurrogateTerm(base / model["file"], data=model.get("data", "observed"))])
    events = _events(model, base)
    pois = {k: tuple(v) for k, v in model.get("pois", {}).items()} or None
    lumi, dl = float(model["lumi_ifb"]), model.get("lumi_uncertainty")
    if kind == "unbinned_exact":
        from sbihep.fit.exact import exact_unbinned_term

        term = exact_unbinned_term(events, lumi, pois=pois, lumi_uncertainty=dl)
    elif kind == "binned":
        from sbihep.fit.binned import BinnedTerm

        term = BinnedTerm.from_eventset(events, model["bins"], lumi, pois=pois, lumi_uncertainty=dl)
    else:
        raise InvalidInputError(f"fit config [model]: kind must be 'unbinned_exact', 'binned' or 'surrogate', got {kind!r}")
    data = config.get("data", {})
    theta = term.parameters.validate(data.get("asimov", {}))
    term = term.toy(theta, np.random.default_rng(int(data["toy_seed"]))) if "toy_seed" in data else term.asimov(theta)
    return Likelihood([term])


def run_config(config: Mapping[str, Any], base: Path = Path(".")):
    """Run every requested step; returns (Dataset of results, list of summary rows)."""
    import xarray as xr

    lik = build_likelihood(config, base)
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
