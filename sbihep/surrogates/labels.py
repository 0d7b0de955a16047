"""Profiled −2ΔlnL training labels from a pyhf workspace, with convergence checks.

What a label is
---------------
For a pyhf model with parameters (x, θ), where x are the *inputs* of the surrogate (held fixed) and
θ every other free parameter (profiled), a label at input x and data set D is

    t_D(x) = −2 ln L(x, θ̂̂(x) | D) − NLL_ref,D

with NLL_ref,D a constant per data set recorded in the output (``reference_nll``):

* ``mode="mu"`` (inputs = the signal strength μ of one signal hypothesis): NLL_ref is the
  global minimum of −2 ln L over μ within the model's POI bounds (so t ≥ 0, t(μ̂) = 0).
* ``mode="yields"`` (inputs = the signal yield in every bin of the chosen signal regions, in events,
  as SModelS uses them): NLL_ref is −2 ln L at zero signal (background only), so t may be negative.

Two data sets are labelled at the same inputs: the observed data and the Asimov data set that the
asymptotic CLs formulae need — generated, as pyhf does for q̃_μ, from the background-only
(μ = 0 / zero yields) fit to the observed data, with the nuisance parameters at that fit's values.

Every label is the lowest of several MINUIT fits (``pyhf.set_backend("numpy", "minuit")``) from
different starts.  A fit counts only when it *converged*: MINUIT reports a valid minimum with EDM
below ``edm_max`` (strategy 2 is tried when the default strategy fails).  The rule
(:func:`combine_starts`):

* every start is fitted: the suggested initial parameters and, with ``n_starts=2``, the global
  best-fit parameters of the observed data;
* the label is the LOWEST converged −2 lnL — a profiled likelihood is a minimum over the nuisance
  parameters, so a higher converged value is a local minimum that another start escaped;
* a label is dropped (counted in ``n_dropped``, never stored as a number) only when NO start
  converged;
* converged starts that differ by more than ``agree_tol`` are counted in ``n_disagree`` — a
  diagnostic of local minima (the ATLAS 3L eRJR workspace has minima 0.01–0.02 apart), not a
  reason to drop;
* with ``neighbour_start=True`` a further fit starts from the fitted parameters of the nearest
  input point whose label converged, for every label that was dropped or whose starts disagreed;
  it can only lower the label or rescue it (counted in ``n_neighbour``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from sbihep.errors import ConvergenceError, DataFormatError, InvalidInputError
from sbihep.parallel import map_jobs

__all__ = [
    "SurrogateProblem",
    "LabelSet",
    "load_problem",
    "sample_inputs",
    "generate_labels",
    "combine_starts",
    "sha256_of",
]

YIELD_PARAM_PREFIX = "sbihep_yield_"


def sha256_of(obj: Any) -> str:
    """sha256 hex digest of a file path's bytes or of a JSON-able object (canonical JSON)."""
    if isinstance(obj, (str, Path)) and Path(obj).is_file():
        return hashlib.sha256(Path(obj).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class SurrogateProblem:
    """A pyhf workspace spec reduced to what labelling needs (picklable, so it crosses processes).

    Attributes:
        spec: the pyhf workspace spec (signal patch already applied in ``mode="mu"``).
        mode: ``"mu"`` or ``"yields"``.
        input_names: names of the inputs, length d.
        input_units: units of the inputs, length d.
        bounds: (d, 2) training box of the inputs.
        regions: channel names that carry signal (all channels with the POI's sample in ``mu`` mode).
        provenance: sha256 of the workspace and patch, patch name, etc.
    """

    spec: dict
    mode: Literal["mu", "yields"]
    input_names: list[str]
    input_units: list[str]
    bounds: np.ndarray
    regions: list[str]
    provenance: dict = field(default_factory=dict)

    def model(self):
        """The pyhf model (built on demand; not pickled)."""
        import pyhf

        ws = pyhf.Workspace(self.spec)
        if self.mode == "mu":
            return ws.model()
        return ws.model(poi_name=None)

    def input_slots(self, model) -> list[int]:
        """Indices into the model's parameter vector of the d inputs."""
        if self.mode == "mu":
            return [model.config.poi_index]
        slots = []
        for region in self.regions:
            sl = model.config.par_slice(YIELD_PARAM_PREFIX + region)
            slots.extend(range(sl.start, sl.stop))
        return slots


def _poi_bounds(spec: dict) -> tuple[float, float]:
    import pyhf

    model = pyhf.Workspace(spec).model()
    lo, hi = model.config.suggested_bounds()[model.config.poi_index]
    return float(lo), float(hi)


def _add_yield_samples(spec: dict, regions: Sequence[str], max_yield: float) -> dict:
    """Return a copy of ``spec`` with one free-yield sample per region (shapefactor = yield per bin)."""
    spec = copy.deepcopy(spec)
    channels = {c["name"]: c for c in spec["channels"]}
    for region in regions:
        if region not in channels:
            raise InvalidInputError(f"regions: {region!r} is not a channel of the workspace ({sorted(channels)})")
        nbins = len(channels[region]["samples"][0]["data"])
        channels[region]["samples"].append(
            {
                "name": "sbihep_signal",
                "data": [1.0] * nbins,
                "modifiers": [{"name": YIELD_PARAM_PREFIX + region, "type": "shapefactor", "data": None}],
            }
        )
        for meas in spec["measurements"]:
            meas["config"].setdefault("parameters", []).append(
                {"name": YIELD_PARAM_PREFIX + region, "bounds": [[0.0, float(max_yield)]] * nbins, "inits": [0.0] * nbins}
            )
    return spec  # the measurement keeps its (possibly undeclared) POI; models are built with poi_name=None


def load_problem(
    workspace: str | Path | dict,
    *,
    patch: str | None = None,
    patchset: str | Path | dict | None = None,
    regions: Sequence[str] | None = None,
    bounds: Sequence[Sequence[float]] | None = None,
    max_yield: float = 100.0,
) -> SurrogateProblem:
    """Build the labelling problem from a workspace (and a PatchSet patch, or signal regions).

    Args:
        workspace: path of a pyhf workspace JSON (background-only when a patch is used) or its spec.
        patch: name of a patch in ``patchset`` → ``mode="mu"`` (input μ, the POI of the workspace).
        patchset: path or spec of a pyhf PatchSet; default ``patchset.json`` beside ``workspace``.
        regions: channel names for ``mode="yields"`` (used when ``patch`` is None); the inputs are
            the signal yields (events) in each bin of these channels.
        bounds: (d, 2) training box; default: the POI bounds of the model (``mu``) or
            [0, ``max_yield``] per bin (``yields``).
        max_yield: upper bound of each signal yield in ``yields`` mode, in events.
    Raises:
        InvalidInputError: neither or both of ``patch`` and ``regions``; unknown patch or region.
        DataFormatError: the workspace or patchset is not valid pyhf JSON.
    """
    import pyhf

    prov: dict[str, Any] = {}
    if isinstance(workspace, (str, Path)):
        path = Path(workspace)
        if not path.is_file():
            raise InvalidInputError(f"workspace: no such file {str(path)!r}")
        prov["workspace_file"] = path.name
        prov["workspace_sha256"] = sha256_of(path)
        spec = json.loads(path.read_text())
    else:
        spec = copy.deepcopy(workspace)
        prov["workspace_sha256"] = sha256_of(spec)
    try:
        pyhf.Workspace(spec)
    except Exception as exc:  # pyhf raises several schema exception types
        raise DataFormatError(f"workspace: not a valid pyhf workspace ({exc})") from exc

    if patch is not None and regions is not None:
        raise InvalidInputError("give patch (signal-strength surrogate) or regions (yields surrogate), not both")
    if regions is None:
        if patch is not None:
            spec = _apply_patch(spec, workspace, patch, patchset, prov)
        model = pyhf.Workspace(spec).model()
        poi = model.config.poi_name
        if poi is None:
            raise InvalidInputError("workspace: has no parameter of interest; give a patch or regions")
        box = np.array(bounds if bounds is not None else [_poi_bounds(spec)], dtype=float).reshape(-1, 2)
        if box.shape != (1, 2) or box[0, 0] >= box[0, 1]:
            raise InvalidInputError(f"bounds: need [[low, high]] for {poi!r} with low < high, got {box.tolist()}")
        sig_regions = [ch["name"] for ch in spec["channels"]
                       if any(poi in [m["name"] for m in s["modifiers"]] for s in ch["samples"])]
        return SurrogateProblem(spec, "mu", [poi], ["1 (signal strength)"], box, sig_regions, prov)

    spec = _add_yield_samples(spec, list(regions), max_yield)
    model = pyhf.Workspace(spec).model(poi_name=None)
    names = []
    for region in regions:
        n = model.config.param_set(YIELD_PARAM_PREFIX + region).n_parameters
        names.extend([region] if n == 1 else [f"{region}[{i}]" for i in range(n)])
    box = np.array(bounds if bounds is not None else [[0.0, max_yield]] * len(names), dtype=float)
    if box.shape != (len(names), 2) or np.any(box[:, 0] >= box[:, 1]):
        raise InvalidInputError(f"bounds: need shape ({len(names)}, 2) with low < high, got {box.tolist()}")
    return SurrogateProblem(spec, "yields", names, ["events"] * len(names), box, list(regions), prov)


def _apply_patch(spec: dict, workspace, patch: str, patchset, prov: dict) -> dict:
    import pyhf

    if patchset is None:
        if not isinstance(workspace, (str, Path)):
            raise InvalidInputError("patchset: required when workspace is given as a spec")
        patchset = Path(workspace).with_name("patchset.json")
    if isinstance(patchset, (str, Path)):
        if not Path(patchset).is_file():
            raise InvalidInputError(f"patchset: no such file {str(patchset)!r}")
        prov["patchset_sha256"] = sha256_of(patchset)
        patchset = json.loads(Path(patchset).read_text())
    try:
        ps = pyhf.PatchSet(patchset)
    except Exception as exc:
        raise DataFormatError(f"patchset: not a valid pyhf PatchSet ({exc})") from exc
    names = [p.name for p in ps.patches]
    if patch not in names:
        raise InvalidInputError(f"patch: {patch!r} is not in the patchset (e.g. {names[:5]})")
    prov["patch"] = patch
    prov["patch_sha256"] = sha256_of(ps[patch].patch)
    return ps[patch].apply(spec)


# ---------------------------------------------------------------------------------------------
# fits


#: MINUIT strategies tried in turn: the fast default, then the careful one (full Hessian each step)
#: before a label is given up — on the 69-parameter ATLAS 3L eRJR workspace the default strategy
#: returned "invalid minimum" for about half of the points.
_STRATEGIES = (None, 2)


def _fit(data, model, init, fixed, bounds, edm_max: float):
    """MINUIT fit; returns (−2 lnL, best-fit pars, errors) or None when no strategy converged.

    Converged means MINUIT's valid minimum, EDM < ``edm_max`` and a finite −2 lnL, whatever the
    strategy; a label that needed strategy 2 is as good as any other.
    """
    import pyhf

    # pyhf logs every failed minimisation with the full result at ERROR; we count them instead
    logging.getLogger("pyhf.optimize.mixins").setLevel(logging.CRITICAL)
    for strategy in _STRATEGIES:
        pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=0.01, strategy=strategy))
        try:
            pars, twice_nll, res = pyhf.infer.mle.fit(
                data, model, init_pars=list(init), par_bounds=bounds, fixed_params=list(fixed),
                return_fitted_val=True, return_result_obj=True, return_uncertainties=True,
            )
        except pyhf.exceptions.FailedMinimization:
            continue
        fmin = res.minuit.fmin
        if fmin.is_valid and fmin.edm < edm_max and np.isfinite(twice_nll):
            return float(twice_nll), np.asarray(pars)[:, 0], np.asarray(pars)[:, 1]
    return None


def combine_starts(values: Sequence[float | None], agree_tol: float) -> tuple[float | None, int, bool]:
    """Combine the −2 lnL of several fits of one label (None = that start did not converge).

    Returns:
        (label, index of the start it came from, disagree): the LOWEST converged value (None and
        index −1 when no start converged), and whether converged starts differ by more than
        ``agree_tol`` (a diagnostic of local minima, not a reason to drop).
    """
    ok = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not ok:
        return None, -1, False
    best, index = min(ok)
    return float(best), index, max(v for v, _ in ok) - best > agree_tol


@dataclass
class _Context:
    """What every labelling job needs (sent to worker processes once per job, small)."""

    problem: SurrogateProblem
    datasets: dict[str, list[float]]
    starts: list[list[float]]  # alternative starting points (full parameter vectors)
    edm_max: float
    agree_tol: float


def _fixed_and_bounds(model, slots, x):
    fixed = list(model.config.suggested_fixed())
    for s in slots:
        fixed[s] = True
    bounds = [list(b) for b in model.config.suggested_bounds()]
    for s, v in zip(slots, x):
        bounds[s] = [min(bounds[s][0], v), max(bounds[s][1], v)]
    return fixed, bounds


def _label_point(ctx: _Context, x: np.ndarray) -> dict[str, dict]:
    """Fits at fixed inputs ``x`` (shape (d,)) from every start, for every data set.

    Returns per data set {"value": lowest converged −2 lnL or None, "pars": its fitted parameters
    or None, "disagree": bool, "n_converged": int}.
    """
    model = ctx.problem.model()
    slots = ctx.problem.input_slots(model)
    fixed, bounds = _fixed_and_bounds(model, slots, x)
    out: dict[str, dict] = {}
    for name, data in ctx.datasets.items():
        fits = []
        for start in ctx.starts:
            init = list(start)
            for s, v in zip(slots, x):
                init[s] = float(v)
            fits.append(_fit(data, model, init, fixed, bounds, ctx.edm_max))
        value, index, disagree = combine_starts([None if f is None else f[0] for f in fits], ctx.agree_tol)
        out[name] = {"value": value, "pars": None if value is None else [float(p) for p in fits[index][1]],
                     "disagree": disagree, "n_converged": sum(f is not None for f in fits)}
    return out


def _neighbour_fit(ctx: _Context, x: np.ndarray, name: str, start: list[float]) -> tuple[float, list[float]] | None:
    """One more fit of data set ``name`` at ``x``, started from a neighbour's fitted parameters."""
    model = ctx.problem.model()
    slots = ctx.problem.input_slots(model)
    fixed, bounds = _fixed_and_bounds(model, slots, x)
    init = list(start)
    for s, v in zip(slots, x):
        init[s] = float(v)
    r = _fit(ctx.datasets[name], model, init, fixed, bounds, ctx.edm_max)
    return None if r is None else (r[0], [float(p) for p in r[1]])


@dataclass
class LabelSet:
    """Inputs and labels, ready for training.

    Attributes:
        x: (n, d) inputs (units per ``problem.input_units``).
        t: (n, 2) labels t_observed, t_asimov (−2ΔlnL, see module docstring); only converged rows.
        reference_nll: {"observed": NLL_ref, "asimov": NLL_ref} (−2 lnL) subtracted from the labels.
        best_fit: {"observed": x̂ (d,), "asimov": x̂_A (d,)} unconditional best-fit inputs.
        n_dropped: {"observed": k, "asimov": k} labels for which no start converged (dropped).
        n_requested: number of input points asked for.
        n_disagree: {"observed": k, "asimov": k} labels whose converged starts differed by more than
            ``agree_tol`` (kept at the lowest minimum; a diagnostic of local minima).
        n_neighbour: {"observed": k, "asimov": k} labels that the nearest neighbour's start rescued
            or lowered by more than ``agree_tol``.
    """

    problem: SurrogateProblem
    x: np.ndarray
    t: np.ndarray
    reference_nll: dict[str, float]
    best_fit: dict[str, list[float]]
    best_fit_nll: dict[str, float]
    n_dropped: dict[str, int]
    n_requested: int
    output_names: tuple[str, str] = ("t_observed", "t_asimov")
    n_disagree: dict[str, int] = field(default_factory=dict)
    n_neighbour: dict[str, int] = field(default_factory=dict)


def sample_inputs(
    bounds: np.ndarray, centres: Sequence[np.ndarray], scales: Sequence[np.ndarray], n: int,
    *, frac_near: float = 0.7, seed: int = 0,
) -> np.ndarray:
    """Input points: a coarse uniform cover of the box plus points concentrated near the minima.

    Args:
        bounds: (d, 2) box.
        centres: best-fit points (d,) where −2ΔlnL is small (one per data set).
        scales: (d,) 1σ widths at each centre (e.g. MINUIT errors); points near a centre are drawn
            uniformly within ±4σ (−2ΔlnL ≲ 16 in the Gaussian approximation) intersected with the box
            (stratified in 1-d), so that a centre on a bound (a best fit at μ = 0) gets its points inside,
            not piled on the bound.
        n: total number of points.
        frac_near: fraction of points near the centres; the rest cover the box uniformly
            (a stratified grid in 1-d, uniform random otherwise).
    Returns:
        (n, d) array.
    """
    rng = np.random.default_rng(seed)
    bounds = np.asarray(bounds, float)
    d = bounds.shape[0]
    n_near = int(round(frac_near * n))
    n_box = n - n_near
    if d == 1:
        u = (np.arange(n_box) + rng.uniform(0.1, 0.9, n_box)) / max(n_box, 1)
    else:
        u = rng.uniform(size=(n_box, d))
    box = bounds[:, 0] + u.reshape(n_box, d) * (bounds[:, 1] - bounds[:, 0])
    near = []
    n_centres = len(centres)
    for i in range(n_near):
        c = np.asarray(centres[i % n_centres], float)
        s = np.asarray(scales[i % n_centres], float)
        lo = np.clip(c - 4.0 * s, bounds[:, 0], bounds[:, 1])
        hi = np.clip(c + 4.0 * s, bounds[:, 0], bounds[:, 1])
        if d == 1:  # stratified, as the box points: no chance gaps where the labels matter most
            k, n_k = i // n_centres, len(range(i % n_centres, n_near, n_centres))
            v = (k + rng.uniform(0.1, 0.9)) / n_k
        else:
            v = rng.uniform(size=d)
        near.append(lo + (hi - lo) * v)
    return np.concatenate([box, np.array(near).reshape(n_near, d)])


def _calibrate_scale(ctx: _Context, name: str, centre: np.ndarray, scale: np.ndarray, best_nll: float,
                     bounds: np.ndarray, iterations: int = 3) -> np.ndarray:
    """The 1σ width of −2ΔlnL along each input from fits, not from MINUIT's error (which is meaningless
    for a best fit on a bound, e.g. μ̂ = 0): step δ into the box until −2ΔlnL(centre + δ) ≈ 4, σ = δ/2.

    Keeps the given scale where a fit fails or the profile is flat.
    """
    out = np.array(scale, float)
    width = bounds[:, 1] - bounds[:, 0]
    one = _Context(ctx.problem, {name: ctx.datasets[name]}, ctx.starts, ctx.edm_max, ctx.agree_tol)  # this data set only
    for i in range(len(out)):
        room_up, room_down = bounds[i, 1] - centre[i], centre[i] - bounds[i, 0]
        sign = 1.0 if room_up >= room_down else -1.0
        room = max(room_up, room_down)
        delta = min(max(2.0 * out[i], 0.01 * width[i]), room)
        for _ in range(iterations):
            x = np.array(centre, float)
            x[i] += sign * delta
            value = _label_point(one, x)[name]["value"]
            t = None if value is None else value - best_nll
            if t is None or t <= 1e-6:
                break
            out[i] = delta / math.sqrt(t)
            new = min(2.0 * out[i], room)
            if abs(new - delta) < 0.1 * delta:
                break
            delta = new
    return out


def generate_labels(
    problem: SurrogateProblem,
    n_points: int = 40,
    *,
    x: np.ndarray | None = None,
    n_starts: int = 2,
    edm_max: float = 1e-3,
    agree_tol: float = 0.02,
    neighbour_start: bool = True,
    calibrate_scales: bool | None = None,
    seed: int = 0,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
) -> LabelSet:
    """Label ``n_points`` inputs (or the given ``x``) for the observed and the Asimov data.

    Args:
        problem: from :func:`load_problem`.
        n_points: number of sampled input points (ignored when ``x`` is given).
        x: (n, d) inputs to label instead of sampling.
        n_starts: 1 (the suggested initial parameters) or 2 (also a start from the observed data's
            global best fit); the label is the lowest converged fit (see the module docstring).
        edm_max: largest accepted estimated distance to minimum.
        agree_tol: converged starts further apart than this (in −2 lnL) count in ``n_disagree``.
        neighbour_start: refit labels that were dropped or whose starts disagreed from the fitted
            parameters of the nearest converged input point (one fit each).
        calibrate_scales: measure the width of −2ΔlnL around each best fit with a few fits (steps
            into the box until −2ΔlnL ≈ 4) instead of trusting MINUIT's errors, which are meaningless
            for a best fit on a bound; default: in ``mu`` mode (≤ 3 fits per input and data set).
        seed: sampling seed.
        n_workers, client: passed to :func:`sbihep.parallel.map_jobs`.
    Raises:
        ConvergenceError: the unconditional or background-only fits that everything rests on failed.
    """
    import pyhf

    if n_starts not in (1, 2):
        raise InvalidInputError(f"n_starts: must be 1 or 2, got {n_starts!r}")
    model = problem.model()
    slots = problem.input_slots(model)
    observed = list(map(float, pyhf.tensorlib.tolist(pyhf.Workspace(problem.spec).data(model))))
    init = list(model.config.suggested_init())
    fixed = list(model.config.suggested_fixed())
    bounds = [list(b) for b in model.config.suggested_bounds()]

    # background-only fit to the observed data → Asimov data (as pyhf's q̃_μ calculator makes it)
    fixed_b, init_b = list(fixed), list(init)
    for s in slots:
        fixed_b[s], init_b[s] = True, 0.0
    bfit = _fit(observed, model, init_b, fixed_b, bounds, edm_max)
    if bfit is None:
        raise ConvergenceError("generate_labels: the background-only fit to the observed data did not converge")
    asimov = list(map(float, model.expected_data(bfit[1])))
    datasets = {"observed": observed, "asimov": asimov}

    best, best_nll, scales, bkg_nll, best_pars = {}, {}, {}, {}, {}
    for name, data in datasets.items():
        r = _fit(data, model, init, fixed, bounds, edm_max)
        if r is None:
            raise ConvergenceError(f"generate_labels: the unconditional fit to the {name} data did not converge")
        best_nll[name] = r[0]
        best[name] = r[1][slots]
        best_pars[name] = list(r[1])
        scales[name] = np.maximum(r[2][slots], 1e-3 * (problem.bounds[:, 1] - problem.bounds[:, 0]))
        rb = _fit(data, model, init_b, fixed_b, bounds, edm_max)
        bkg_nll[name] = rb[0] if rb is not None else float("nan")

    starts = [init] if n_starts == 1 else [init, best_pars["observed"]]
    ctx = _Context(problem, datasets, starts, edm_max, agree_tol)
    if x is None:
        if calibrate_scales is None:
            calibrate_scales = problem.mode == "mu"
        if calibrate_scales:
            scales = {k: _calibrate_scale(ctx, k, best[k], scales[k], best_nll[k], problem.bounds) for k in datasets}
        x = sample_inputs(problem.bounds, [best["observed"], best["asimov"]], [scales["observed"], scales["asimov"]],
                          n_points, seed=seed)
    x = np.asarray(x, float).reshape(-1, len(slots))
    results = map_jobs(_label_point, [(ctx, xi) for xi in x], n_workers=n_workers, client=client,
                       progress=progress, desc="surrogate labels")
    n_disagree = {k: sum(bool(r[k]["disagree"]) for r in results) for k in datasets}
    n_neighbour = {k: 0 for k in datasets}
    if neighbour_start:
        n_neighbour = _neighbour_pass(ctx, x, results, agree_tol, n_workers, client, progress)

    n_dropped = {k: sum(r[k]["value"] is None for r in results) for k in datasets}
    keep = np.array([all(r[k]["value"] is not None for k in datasets) for r in results], bool)
    raw = np.array([[r[k]["value"] if r[k]["value"] is not None else np.nan for k in datasets]
                    for r in results]).reshape(-1, 2)
    if problem.mode == "mu":
        # the global minimum; a label below it means the global fit stopped short — take the lower.
        ref = {k: min(best_nll[k], float(np.nanmin(raw[:, j])) if keep.any() else best_nll[k])
               for j, k in enumerate(datasets)}
    else:
        ref = {k: bkg_nll[k] for k in datasets}
        if any(math.isnan(v) for v in ref.values()):
            raise ConvergenceError("generate_labels: the zero-signal fit did not converge")
    t = raw[keep] - np.array([ref["observed"], ref["asimov"]])
    return LabelSet(
        problem=problem, x=x[keep], t=t, reference_nll=ref,
        best_fit={k: [float(v) for v in best[k]] for k in datasets},
        best_fit_nll=best_nll, n_dropped=n_dropped, n_requested=len(x),
        n_disagree=n_disagree, n_neighbour=n_neighbour,
    )


def _neighbour_pass(ctx: _Context, x: np.ndarray, results: list[dict], agree_tol: float,
                    n_workers, client, progress) -> dict[str, int]:
    """Refit dropped or disagreeing labels from the nearest converged point's parameters (in place).

    Distances are measured in inputs scaled to the training box.  A refit replaces the label only
    when it converged below the current value (or rescues a dropped label).
    """
    scale = ctx.problem.bounds[:, 1] - ctx.problem.bounds[:, 0]
    z = x / np.where(scale > 0, scale, 1.0)
    jobs, where = [], []
    for name in ctx.datasets:
        good = np.array([r[name]["value"] is not None for r in results])
        for i, r in enumerate(results):
            if r[name]["value"] is not None and not r[name]["disagree"]:
                continue
            others = np.flatnonzero(good & (np.arange(len(results)) != i))
            if len(others) == 0:
                continue
            j = others[int(np.argmin(np.sum((z[others] - z[i]) ** 2, axis=1)))]
            jobs.append((ctx, x[i], name, results[j][name]["pars"]))
            where.append((i, name))
    counts = {k: 0 for k in ctx.datasets}
    if not jobs:
        return counts
    refits = map_jobs(_neighbour_fit, jobs, n_workers=n_workers, client=client, progress=progress,
                      desc="surrogate labels (neighbour starts)")
    for (i, name), refit in zip(where, refits):
        if refit is None:
            continue
        current = results[i][name]["value"]
        if current is None or refit[0] < current - agree_tol:
            counts[name] += 1
        if current is None or refit[0] < current:
            results[i][name].update(value=refit[0], pars=refit[1])
    return counts
