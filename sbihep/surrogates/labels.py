"""Profiled −2ΔlnL training labels from a pyhf workspace, with convergence checks.

What a label is
---------------
For a pyhf model with parameters (x, θ), where x are the *inputs* of the surrogate (held fixed) and
θ every other free parameter (profiled), a label at input x and data set D is

    t_D(x) = −2 ln L(x, θ̂̂(x) | D) − NLL_ref,D

with NLL_ref,D a constant per data set recorded in the output (``reference_nll``):

* NLL_ref,D is the minimum of −2 ln L over the inputs (within the model's bounds widened to the
  training box) and the nuisance parameters: the unconditional ("free") fit.  So t ≥ 0 and
  t(x̂) = 0 in both modes.  ``mode="mu"``: inputs = the signal strength μ of one signal hypothesis.
  ``mode="yields"``: inputs = the signal yield in every bin of the chosen signal regions, in events,
  as SModelS uses them; the zero-signal value is recorded as ``zero_signal_nll`` (before issue 24
  it was the reference, so t could be negative).

Three data sets are labelled at the same inputs: the observed data; the Asimov data set that the
asymptotic CLs formulae need — generated, as pyhf does for q̃_μ, from the background-only
(μ = 0 / zero yields) fit to the observed data, with the nuisance parameters at that fit's values
(spey's ``aposteriori``); and the pre-fit Asimov data (zero signal, every parameter at its suggested
initial value, spey's ``apriori``).

Which inputs are labelled (``x=None``): the *anchors* first — the box's edges (both ends in 1-d;
the corners for d ≤ 3, else the low and high corner and one point per axis), the zero-signal point
(μ = 0) and the best fits x̂ of every data set (clipped into the box) — then points sampled by
:func:`sample_inputs`.  The fits at zero signal and at x̂ that labelling needs anyway enter those
anchors' labels as one more start.  Before the labels run, one label is timed and the expected
time of the rest is printed (``progress=True``) and returned in ``LabelSet.timing``.

A label below the free fit (t < −``negative_tol``) means a conditional fit found a lower minimum
than the free fit: the free fit is refitted from that label's parameters (the global minimum moved)
and every label of that data set is refitted once from the new best fit; if the label is still
below, :class:`~sbihep.errors.ConvergenceError` is raised — a negative −2ΔlnL is never stored.
Labels within ``negative_tol`` below the free fit lower the reference to them (fit tolerance).

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
import sys
import time
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
    "anchor_inputs",
    "check_grid",
    "default_yield_box",
    "region_backgrounds",
]

YIELD_PARAM_PREFIX = "sbihep_yield_"
_log = logging.getLogger(__name__)


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
        return _yield_slots(model, self.regions)


def _poi_bounds(spec: dict) -> tuple[float, float]:
    import pyhf

    model = pyhf.Workspace(spec).model()
    lo, hi = model.config.suggested_bounds()[model.config.poi_index]
    return float(lo), float(hi)


def _add_yield_samples(spec: dict, regions: Sequence[str], box: np.ndarray | None = None,
                       max_yield: float = 100.0) -> dict:
    """Return a copy of ``spec`` with one free-yield sample per region (shapefactor = yield per bin).

    The yield parameters are bounded by ``box`` ((d, 2), bins of the regions in order) or by
    [0, ``max_yield``] when ``box`` is None.
    """
    spec = copy.deepcopy(spec)
    channels = {c["name"]: c for c in spec["channels"]}
    k = 0
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
        if box is None:
            bins = [[0.0, float(max_yield)]] * nbins
        else:
            bins = [[float(lo), float(hi)] for lo, hi in box[k:k + nbins]]
        k += nbins
        inits = [float(min(max(0.0, lo), hi)) for lo, hi in bins]
        for meas in spec["measurements"]:
            meas["config"].setdefault("parameters", []).append(
                {"name": YIELD_PARAM_PREFIX + region, "bounds": bins, "inits": inits}
            )
    return spec  # the measurement keeps its (possibly undeclared) POI; models are built with poi_name=None


def _input_names(model, regions: Sequence[str]) -> list[str]:
    names = []
    for region in regions:
        n = model.config.param_set(YIELD_PARAM_PREFIX + region).n_parameters
        names.extend([region] if n == 1 else [f"{region}[{i}]" for i in range(n)])
    return names


def region_backgrounds(model, data: Sequence[float], regions: Sequence[str], pars: Sequence[float] | None = None,
                       covariance: np.ndarray | None = None, zero_slots: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """Per-bin background yield and its uncertainty in the signal regions (events).

    Args:
        model: the pyhf model.
        data: observed main + auxiliary data of the model.
        regions: channel names; their bins are returned in order.
        pars: (npars,) parameters at which the background is evaluated; default the suggested
            initial values (pre-fit).
        covariance: (npars, npars) covariance of ``pars`` (post-fit); default: pre-fit, every
            constrained parameter shifted by its prior width, shifts added in quadrature.
        zero_slots: parameter indices set to 0 (the signal: POI or signal yields).
    Returns:
        {"observed": (n,), "background": (n,), "uncertainty": (n,)}, with the linearised
        uncertainty √(J C Jᵀ) (J = ∂ yield / ∂ parameter by central differences).
    """
    p0 = np.array(model.config.suggested_init() if pars is None else pars, float)
    p0[list(zero_slots)] = 0.0
    idx = np.concatenate([np.arange(model.config.nmaindata)[model.config.channel_slices[r]] for r in regions]).astype(int)

    def yields(p):
        return np.asarray(model.expected_actualdata(p), float)[idx]

    b = yields(p0)
    fixed = np.array(model.config.suggested_fixed(), bool)
    fixed[list(zero_slots)] = True
    if covariance is None:
        var = np.zeros_like(b)
        for name in model.config.par_order:
            ps = model.config.param_set(name)
            if not getattr(ps, "constrained", False):
                continue
            sl = model.config.par_slice(name)
            for k, w in zip(range(sl.start, sl.stop), ps.width()):
                if fixed[k]:
                    continue
                up, dn = p0.copy(), p0.copy()
                up[k] += w
                dn[k] -= w
                var += (0.5 * (yields(up) - yields(dn))) ** 2
        sigma = np.sqrt(var)
    else:
        cov = np.asarray(covariance, float)
        free = np.flatnonzero(~fixed)
        jac = np.zeros((len(b), len(free)))
        for j, k in enumerate(free):
            h = 1e-4 * max(1.0, np.sqrt(max(cov[k, k], 0.0)))
            up, dn = p0.copy(), p0.copy()
            up[k] += h
            dn[k] -= h
            jac[:, j] = (yields(up) - yields(dn)) / (2 * h)
        sigma = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, cov[np.ix_(free, free)], jac), 0.0, None))
    obs = np.asarray(data, float)[idx]
    return {"observed": obs, "background": b, "uncertainty": sigma}


def _poisson_yield_for_t(n: float, b: float, t_target: float) -> float:
    """Signal s with 2[(s + b) − n − n ln((s + b)/n)] = t_target (Poisson, background fixed), s ≥ max(n − b, 0)."""
    def t(s):
        lam = s + b
        return 2.0 * (lam - n - (n * math.log(lam / n) if n > 0 else 0.0))

    lo = max(n - b, 0.0) + 1e-12
    hi = lo + 10.0 + t_target
    while t(hi) < t_target:
        hi *= 2.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t(mid) < t_target else (lo, mid)
    return hi


def default_yield_box(observed: np.ndarray, background: np.ndarray, uncertainty: np.ndarray,
                      n_sigma: float = 5.0) -> np.ndarray:
    """Default training box of the signal yields, (n, 2) events: [0, s_max] per bin with

        s_max = max( max(n − b, 0) + n_sigma · √(b + σ_b²),  s such that the Poisson −2ΔlnL
                     of that bin alone (background fixed) reaches n_sigma² )

    so that each bin alone reaches −2ΔlnL ≈ n_sigma² (25) at the box's upper edge, scaled to its
    background b, uncertainty σ_b and observed count n (not one range whatever the backgrounds).
    """
    n, b, s = (np.asarray(v, float) for v in (observed, background, uncertainty))
    gauss = np.clip(n - b, 0.0, None) + n_sigma * np.sqrt(np.clip(b, 0.0, None) + s**2)
    pois = np.array([_poisson_yield_for_t(float(ni), max(float(bi), 1e-3), n_sigma**2) for ni, bi in zip(n, b)])
    hi = np.maximum(gauss, pois)
    return np.stack([np.zeros_like(hi), hi], 1)


def _resolve_bounds(bounds, names: list[str], default: np.ndarray) -> np.ndarray:
    """bounds as (d, 2), (1, 2) (the same range for every input) or {name: (low, high)} over ``default``."""
    d = len(names)
    if bounds is None:
        box = np.array(default, float)
    elif isinstance(bounds, dict):
        box = np.array(default, float)
        for name, pair in bounds.items():
            if name not in names:
                raise InvalidInputError(f"bounds: {name!r} is not an input; the inputs are {names}")
            try:
                box[names.index(name)] = np.asarray(pair, float).reshape(2)
            except (TypeError, ValueError):
                raise InvalidInputError(f"bounds: {name!r} needs (low, high), got {pair!r}") from None
    else:
        try:
            box = np.array(bounds, dtype=float)
        except (TypeError, ValueError):
            raise InvalidInputError(f"bounds: need numbers of shape ({d}, 2), got {bounds!r}") from None
        if box.ndim == 1 and box.shape == (2,):
            box = box[None, :]
        if box.shape == (1, 2) and d > 1:
            box = np.repeat(box, d, axis=0)
    if box.shape != (d, 2):
        raise InvalidInputError(f"bounds: need shape ({d}, 2) (one [low, high] per input {names}) or a single range, "
                                f"got shape {box.shape}")
    if not np.all(np.isfinite(box)) or np.any(box[:, 0] >= box[:, 1]):
        bad = [names[i] for i in range(d) if not (np.isfinite(box[i]).all() and box[i, 0] < box[i, 1])]
        raise InvalidInputError(f"bounds: need finite low < high for every input; wrong for {bad}: {box.tolist()}")
    return box


def load_problem(
    workspace: str | Path | dict,
    *,
    patch: str | None = None,
    patchset: str | Path | dict | None = None,
    regions: Sequence[str] | None = None,
    bounds: Sequence[Sequence[float]] | dict[str, Sequence[float]] | None = None,
    max_yield: float | None = None,
    yield_box_sigmas: float = 5.0,
) -> SurrogateProblem:
    """Build the labelling problem from a workspace (and a PatchSet patch, or signal regions).

    Args:
        workspace: path of a pyhf workspace JSON (background-only when a patch is used) or its spec.
        patch: name of a patch in ``patchset`` → ``mode="mu"`` (input μ, the POI of the workspace).
        patchset: path or spec of a pyhf PatchSet; default ``patchset.json`` beside ``workspace``.
        regions: channel names for ``mode="yields"`` (used when ``patch`` is None); the inputs are
            the signal yields (events) in each bin of these channels.
        bounds: the training box: (d, 2) pairs in input order, one pair for every input, or a
            dict {input name: (low, high)} overriding the default for the inputs named.  Default:
            the POI bounds of the model (``mu``); per bin [0, s_max] scaled to that bin's pre-fit
            background and uncertainty (:func:`default_yield_box`) (``yields``).
        max_yield: ``yields`` mode: the same upper bound for every bin instead of the scaled
            default, in events (the default box before issue 24 was [0, 100]).
        yield_box_sigmas: ``yields`` mode: the scaled default reaches −2ΔlnL ≈ this² per bin.
    Raises:
        InvalidInputError: neither or both of ``patch`` and ``regions``; unknown patch, region
            or input name; bounds of the wrong shape or with low ≥ high.
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
        box = _resolve_bounds(bounds, [poi], np.array([_poi_bounds(spec)], float))
        sig_regions = [ch["name"] for ch in spec["channels"]
                       if any(poi in [m["name"] for m in s["modifiers"]] for s in ch["samples"])]
        return SurrogateProblem(spec, "mu", [poi], ["1 (signal strength)"], box, sig_regions, prov)

    regions = list(regions)
    if not regions or len(set(regions)) != len(regions):
        raise InvalidInputError(f"regions: need distinct channel names, got {regions}")
    if max_yield is not None and not (isinstance(max_yield, (int, float)) and math.isfinite(max_yield) and max_yield > 0):
        raise InvalidInputError(f"max_yield: need a positive number of events, got {max_yield!r}")
    probe = pyhf.Workspace(_add_yield_samples(spec, regions, max_yield=max_yield or 1.0))
    pmodel = probe.model(poi_name=None)
    names = _input_names(pmodel, regions)
    if max_yield is not None:
        default = np.array([[0.0, float(max_yield)]] * len(names))
    else:
        bkg = region_backgrounds(pmodel, probe.data(pmodel), regions, zero_slots=_yield_slots(pmodel, regions))
        default = default_yield_box(bkg["observed"], bkg["background"], bkg["uncertainty"], yield_box_sigmas)
    box = _resolve_bounds(bounds, names, default)
    spec = _add_yield_samples(spec, regions, box)
    prov["yield_box"] = "user" if bounds is not None else ("max_yield" if max_yield is not None else
                                                          f"scaled: {yield_box_sigmas:g} sigma per bin")
    return SurrogateProblem(spec, "yields", names, ["events"] * len(names), box, regions, prov)


def _yield_slots(model, regions: Sequence[str]) -> list[int]:
    slots = []
    for region in regions:
        sl = model.config.par_slice(YIELD_PARAM_PREFIX + region)
        slots.extend(range(sl.start, sl.stop))
    return slots


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
        t: (n, k) labels, one column per ``output_names`` (−2ΔlnL ≥ 0, see the module docstring);
            only rows where every data set converged.
        reference_nll: {data set: NLL_ref} (−2 lnL) subtracted from the labels.
        best_fit: {data set: x̂ (d,)} unconditional best-fit inputs.
        best_fit_nll: {data set: −2 lnL at the best fit}.
        n_dropped: {data set: k} training labels for which no start converged (dropped).
        n_requested: number of training input points asked for (anchors included).
        output_names: ``("t_observed", "t_asimov", "t_asimov_prefit")`` (the last one only with
            ``prefit=True``).
        n_disagree: {data set: k} labels whose converged starts differed by more than
            ``agree_tol`` (kept at the lowest minimum; a diagnostic of local minima).
        n_neighbour: {data set: k} labels that the nearest neighbour's start rescued or lowered
            by more than ``agree_tol``.
        is_anchor: (n,) bool, the rows that are anchors (box edges, zero signal, best fits).
        x_check: (m, d) check-grid inputs (never trained on; see :func:`check_grid`).
        t_check: (m, k) their labels.
        n_dropped_check: {data set: k} check labels dropped.
        zero_signal_nll: {data set: −2 lnL at zero signal (μ = 0 / zero yields)}.
        n_reference_refits: {data set: k} free fits redone because a label lay below them.
        timing: {"one_label_s", "expected_label_time_s", "label_time_s", "n_workers", "n_labels"}.
        backgrounds: per-bin observed counts, pre-fit and post-fit (background-only fit to the
            observed data) background yields and uncertainties of the signal regions (events),
            see :func:`region_backgrounds`.
        nuisance_names: names of the profiled parameters (pyhf ``par_names`` without the inputs).
        datasets: {data set: main + auxiliary data}, to label further points consistently.
    """

    problem: SurrogateProblem
    x: np.ndarray
    t: np.ndarray
    reference_nll: dict[str, float]
    best_fit: dict[str, list[float]]
    best_fit_nll: dict[str, float]
    n_dropped: dict[str, int]
    n_requested: int
    output_names: tuple[str, ...] = ("t_observed", "t_asimov")
    n_disagree: dict[str, int] = field(default_factory=dict)
    n_neighbour: dict[str, int] = field(default_factory=dict)
    is_anchor: np.ndarray | None = None
    x_check: np.ndarray | None = None
    t_check: np.ndarray | None = None
    n_dropped_check: dict[str, int] = field(default_factory=dict)
    zero_signal_nll: dict[str, float] = field(default_factory=dict)
    n_reference_refits: dict[str, int] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    backgrounds: dict[str, Any] = field(default_factory=dict)
    nuisance_names: list[str] = field(default_factory=list)
    datasets: dict[str, list[float]] = field(default_factory=dict)


def anchor_inputs(bounds: np.ndarray, points: Sequence[np.ndarray] = (), *, include_zero: bool = True) -> np.ndarray:
    """Inputs that every label set contains: the box's edges, zero signal and the given points.

    Args:
        bounds: (d, 2) box.
        points: further points (d,) each, e.g. best fits; clipped into the box.
        include_zero: add the zero-signal point (μ = 0 / zero yields), clipped into the box.
    Returns:
        (k, d) points at least 10⁻³ of the box's width apart per input: in 1-d both ends of the box; for d ≤ 3 its 2^d corners; for d > 3
        the low and the high corner and, per axis, the low corner with that input at its upper
        edge; then zero and ``points``.
    """
    bounds = np.asarray(bounds, float)
    d = bounds.shape[0]
    lo, hi = bounds[:, 0], bounds[:, 1]
    if d <= 3:
        corners = np.array(np.meshgrid(*[[a, b] for a, b in bounds], indexing="ij")).reshape(d, -1).T
    else:
        corners = np.concatenate([lo[None], hi[None], lo + np.eye(d) * (hi - lo)])
    extra = ([np.clip(np.zeros(d), lo, hi)] if include_zero else []) + [np.clip(np.asarray(p, float), lo, hi) for p in points]
    out: list[np.ndarray] = []
    tol = 1e-3 * (hi - lo)  # closer points are one anchor (a best fit 0.003 from a bound at 0 is that bound)
    for p in list(corners) + extra:
        if not any(np.all(np.abs(p - q) <= tol) for q in out):
            out.append(p)
    return np.array(out).reshape(-1, d)


def check_grid(bounds: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """About ``n`` check points spread over the whole box (edges included).

    Regular: ``n`` points in 1-d, k^d with k = max(2, ⌊n^(1/d)⌋) for d ≤ 3; a scrambled Sobol
    sequence of ``n`` points for d > 3.  Returns (m, d).
    """
    bounds = np.asarray(bounds, float)
    d = bounds.shape[0]
    if n <= 0:
        return np.zeros((0, d))
    if d <= 3:
        k = n if d == 1 else max(2, int(math.floor(n ** (1.0 / d) + 1e-9)))
        axes = [np.linspace(a, b, k) for a, b in bounds]
        return np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T
    from scipy.stats import qmc

    u = qmc.Sobol(d, scramble=True, seed=seed).random(n)
    return bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])


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


def _workers(n_workers, client, n_jobs: int) -> int:
    """How many label jobs run at once (for the time estimate)."""
    from sbihep.parallel import default_workers

    if client is not None:
        try:
            n = int(sum(client.nthreads().values()))
        except Exception:  # a client without nthreads(): count one
            n = 1
    else:
        n = int(n_workers or default_workers())
    return max(1, min(n, max(n_jobs, 1)))


def _format_seconds(sec: float) -> str:
    return f"{sec:.3g} s" if sec < 120 else (f"{sec / 60:.3g} min" if sec < 7200 else f"{sec / 3600:.3g} h")


def _with_inputs(pars: Sequence[float], slots: Sequence[int], x: np.ndarray) -> list[float]:
    out = [float(p) for p in pars]
    for s, v in zip(slots, x):
        out[s] = float(v)
    return out


def _fit_covariance(data, model, init, fixed, bounds) -> np.ndarray | None:
    """MINUIT covariance (npars, npars; zeros for fixed parameters) of a fit from ``init``, or None."""
    import pyhf

    try:
        _, res = pyhf.infer.mle.fit(data, model, init_pars=list(init), par_bounds=bounds, fixed_params=list(fixed),
                                    return_result_obj=True)
        cov = np.asarray(res.minuit.covariance, float)
    except Exception:  # a failed fit or no covariance: post-fit uncertainties are then not recorded
        return None
    return cov if cov.shape == (model.config.npars, model.config.npars) and np.all(np.isfinite(cov)) else None


def generate_labels(
    problem: SurrogateProblem,
    n_points: int = 40,
    *,
    x: np.ndarray | None = None,
    n_check: int = 0,
    x_check: np.ndarray | None = None,
    n_starts: int = 2,
    edm_max: float = 1e-3,
    agree_tol: float = 0.02,
    negative_tol: float = 0.01,
    neighbour_start: bool = True,
    calibrate_scales: bool | None = None,
    anchors: bool = True,
    prefit: bool = True,
    seed: int = 0,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
) -> LabelSet:
    """Label ``n_points`` inputs (or the given ``x``) for the observed and the Asimov data.

    Args:
        problem: from :func:`load_problem`.
        n_points: number of training input points, the anchors included (ignored when ``x`` is
            given).
        x: (n, d) inputs to label instead of anchors + sampled points.
        n_check: label a :func:`check_grid` of about this many points over the whole box too
            (``LabelSet.x_check``, ``t_check``), for validation; never trained on.
        x_check: (m, d) check inputs instead of the grid.
        n_starts: 1 (the suggested initial parameters) or 2 (also a start from the observed data's
            global best fit); the label is the lowest converged fit (see the module docstring).
        edm_max: largest accepted estimated distance to minimum.
        agree_tol: converged starts further apart than this (in −2 lnL) count in ``n_disagree``.
        negative_tol: a label more than this below the free fit (−2 lnL) triggers a refit of the
            free fit from it (see the module docstring); smaller gaps lower the reference.
        neighbour_start: refit labels that were dropped or whose starts disagreed from the fitted
            parameters of the nearest converged input point (one fit each).
        calibrate_scales: measure the width of −2ΔlnL around each best fit with a few fits (steps
            into the box until −2ΔlnL ≈ 4) instead of trusting MINUIT's errors, which are meaningless
            for a best fit on a bound; default: in ``mu`` mode (≤ 3 fits per input and data set).
        anchors: with ``x=None``, label the box's edges, zero signal and the best fits
            (:func:`anchor_inputs`) first; False samples all ``n_points`` (the behaviour before
            issue 24, for comparisons).
        prefit: also label the pre-fit Asimov data (output ``t_asimov_prefit``, spey's ``apriori``).
        seed: sampling seed.
        n_workers, client: passed to :func:`sbihep.parallel.map_jobs`.
        progress: progress bars, and the expected label time printed to stderr before labelling.
    Raises:
        InvalidInputError: ``n_starts`` not 1 or 2, a negative ``n_check`` or ``negative_tol``.
        ConvergenceError: the unconditional or background-only fits that everything rests on failed,
            or a label stays below the free fit after refitting (a −2ΔlnL < −``negative_tol``).
    """
    import pyhf

    if n_starts not in (1, 2):
        raise InvalidInputError(f"n_starts: must be 1 or 2, got {n_starts!r}")
    if isinstance(n_check, bool) or not isinstance(n_check, (int, np.integer)) or n_check < 0:
        raise InvalidInputError(f"n_check: must be a non-negative integer, got {n_check!r}")
    if not (isinstance(negative_tol, (int, float)) and math.isfinite(negative_tol) and negative_tol >= 0):
        raise InvalidInputError(f"negative_tol: must be a non-negative number, got {negative_tol!r}")
    model = problem.model()
    slots = problem.input_slots(model)
    d = len(slots)
    observed = list(map(float, pyhf.tensorlib.tolist(pyhf.Workspace(problem.spec).data(model))))
    init = list(model.config.suggested_init())
    fixed = list(model.config.suggested_fixed())
    # free fits: the model's bounds widened to the training box (the reference is the minimum over both)
    free_bounds = [list(b) for b in model.config.suggested_bounds()]
    for s, (lo, hi) in zip(slots, problem.bounds):
        free_bounds[s] = [min(free_bounds[s][0], float(lo)), max(free_bounds[s][1], float(hi))]
    zero = np.zeros(d)
    fixed_b, bounds_b = _fixed_and_bounds(model, slots, zero)
    init_b = _with_inputs(init, slots, zero)

    r_obs = _fit(observed, model, init, fixed, free_bounds, edm_max)
    if r_obs is None:
        raise ConvergenceError("generate_labels: the unconditional fit to the observed data did not converge")
    # background-only fit to the observed data → Asimov data (as pyhf's q̃_μ calculator makes it);
    # also started from the free fit, so a local minimum of one start does not make the Asimov data
    starts_b = [init_b] + ([_with_inputs(r_obs[1], slots, zero)] if n_starts == 2 else [])
    fits_b = [_fit(observed, model, st, fixed_b, bounds_b, edm_max) for st in starts_b]
    v_b, i_b, _ = combine_starts([None if f is None else f[0] for f in fits_b], agree_tol)
    if v_b is None:
        raise ConvergenceError("generate_labels: the background-only fit to the observed data did not converge")
    bfit = fits_b[i_b]
    datasets = {"observed": observed, "asimov": list(map(float, model.expected_data(bfit[1])))}
    if prefit:
        datasets["asimov_prefit"] = list(map(float, model.expected_data(init_b)))
    names = list(datasets)

    free, zero_fit = {"observed": r_obs}, {"observed": bfit}
    for name in names[1:]:
        r = _fit(datasets[name], model, init, fixed, free_bounds, edm_max)
        if r is None:
            raise ConvergenceError(f"generate_labels: the unconditional fit to the {name} data did not converge")
        free[name] = r
        zero_fit[name] = _fit(datasets[name], model, init_b, fixed_b, bounds_b, edm_max)
    best_nll = {k: free[k][0] for k in names}
    best = {k: np.asarray(free[k][1])[slots] for k in names}
    best_pars = {k: list(map(float, free[k][1])) for k in names}
    width = problem.bounds[:, 1] - problem.bounds[:, 0]
    scales = {k: np.maximum(np.asarray(free[k][2])[slots], 1e-3 * width) for k in names}

    starts = [init] if n_starts == 1 else [init, best_pars["observed"]]
    ctx = _Context(problem, datasets, starts, edm_max, agree_tol)
    if x is None:
        if calibrate_scales is None:
            calibrate_scales = problem.mode == "mu"
        centres = ["observed", "asimov"]
        if calibrate_scales:
            scales.update({k: _calibrate_scale(ctx, k, best[k], scales[k], best_nll[k], problem.bounds) for k in centres})
        anc = anchor_inputs(problem.bounds, [best[k] for k in names]) if anchors else np.zeros((0, d))
        n_sample = max(int(n_points) - len(anc), 0)
        sampled = sample_inputs(problem.bounds, [best[k] for k in centres], [scales[k] for k in centres], n_sample,
                                seed=seed) if n_sample else np.zeros((0, d))
        x = np.concatenate([anc, sampled])
        is_anchor = np.arange(len(x)) < len(anc)
    else:
        x = np.asarray(x, float).reshape(-1, d)
        is_anchor = np.zeros(len(x), bool)
    if x_check is None:
        x_check = check_grid(problem.bounds, n_check, seed=seed)
    x_check = np.asarray(x_check, float).reshape(-1, d)
    x_all = np.concatenate([x, x_check])
    n_train = len(x)

    # time one label, print what the rest will take, then label
    n_eff = _workers(n_workers, client, len(x_all) - 1)
    t0 = time.perf_counter()
    results = [_label_point(ctx, x_all[0])]
    one = time.perf_counter() - t0
    expected = one * (len(x_all) - 1) / n_eff
    message = (f"surrogate labels: {len(x_all)} input points ({n_train} training, {len(x_check)} check) x "
               f"{len(names)} data sets x {len(starts)} start(s); one label took {_format_seconds(one)}, "
               f"expected {_format_seconds(one + expected)} in all on {n_eff} worker(s)")
    _log.info(message)
    if progress:
        print(message, file=sys.stderr, flush=True)
    results += map_jobs(_label_point, [(ctx, xi) for xi in x_all[1:]], n_workers=n_workers, client=client,
                        progress=progress, desc="surrogate labels")

    # the zero-signal and free fits are converged fits at fixed inputs too: one more start of those labels
    tol = 1e-9 * np.maximum(width, 1e-300)
    for i, xi in enumerate(x_all):
        for name in names:
            for known, where in ((zero_fit[name], zero), (free[name], best[name])):
                if known is None or not np.all(np.abs(xi - where) <= tol):
                    continue
                r = results[i][name]
                if r["value"] is None or known[0] < r["value"]:
                    r.update(value=float(known[0]), pars=[float(p) for p in known[1]])
    n_disagree = {k: sum(bool(r[k]["disagree"]) for r in results[:n_train]) for k in names}
    n_neighbour = {k: 0 for k in names}
    if neighbour_start:
        n_neighbour = _neighbour_pass(ctx, x_all, results, agree_tol, n_workers, client, progress)

    n_refits = _settle_reference(ctx, model, x_all, results, best_nll, best, best_pars, fixed, free_bounds, slots,
                                 negative_tol, n_workers, client, progress)
    zero_rows = [i for i, xi in enumerate(x_all) if np.all(np.abs(xi) <= tol)]
    for i in zero_rows:
        v = results[i]["observed"]["value"]
        if v is not None and v < bfit[0] - negative_tol:
            raise ConvergenceError(
                f"generate_labels: the background-only fit to the observed data (-2 lnL {bfit[0]:.6g}) stopped above the "
                f"zero-signal label ({v:.6g}); the Asimov data built from it is not the background-only best fit. "
                "Rerun with n_starts=2 or check the workspace for local minima")

    raw = np.array([[r[k]["value"] if r[k]["value"] is not None else np.nan for k in names]
                    for r in results]).reshape(-1, len(names))
    keep = np.all(np.isfinite(raw), axis=1)
    ref = {}
    for j, k in enumerate(names):
        low = float(np.nanmin(raw[:, j])) if np.isfinite(raw[:, j]).any() else best_nll[k]
        ref[k] = min(best_nll[k], low)  # within negative_tol (fit tolerance): the lowest label is the minimum
    t_all = raw - np.array([ref[k] for k in names])
    timing = {"one_label_s": one, "expected_label_time_s": one + expected, "label_time_s": time.perf_counter() - t0,
              "n_workers": n_eff, "n_labels": int(len(x_all))}
    tr, ch = keep[:n_train], keep[n_train:]
    bkg = _backgrounds(model, observed, problem, slots, bfit, fixed_b, bounds_b)
    return LabelSet(
        problem=problem, x=x[tr], t=t_all[:n_train][tr], reference_nll=ref,
        best_fit={k: [float(v) for v in best[k]] for k in names},
        best_fit_nll=best_nll, n_dropped={k: int(np.isnan(raw[:n_train, j]).sum()) for j, k in enumerate(names)},
        n_requested=n_train, output_names=tuple("t_" + k for k in names),
        n_disagree=n_disagree, n_neighbour=n_neighbour, is_anchor=is_anchor[tr],
        x_check=x_check[ch], t_check=t_all[n_train:][ch],
        n_dropped_check={k: int(np.isnan(raw[n_train:, j]).sum()) for j, k in enumerate(names)},
        zero_signal_nll={k: (float(zero_fit[k][0]) if zero_fit[k] is not None else None) for k in names},
        n_reference_refits=n_refits, timing=timing, backgrounds=bkg,
        nuisance_names=[n for i, n in enumerate(model.config.par_names) if i not in set(slots)],
        datasets=datasets,
    )


def _backgrounds(model, observed, problem, slots, bfit, fixed_b, bounds_b) -> dict[str, Any]:
    """Per-bin observed counts and pre-/post-fit backgrounds ± uncertainties of the signal regions."""
    names = ([f"{r}[{i}]" if model.config.channel_nbins[r] > 1 else r for r in problem.regions
              for i in range(model.config.channel_nbins[r])])
    pre = region_backgrounds(model, observed, problem.regions, zero_slots=slots)
    out: dict[str, Any] = {"bins": names, "unit": "events", "observed": pre["observed"].tolist(),
                           "background_prefit": pre["background"].tolist(),
                           "background_prefit_uncertainty": pre["uncertainty"].tolist(),
                           "prefit_uncertainty": "linearised: every constrained parameter shifted by its prior width, "
                                                 "shifts added in quadrature (free normalisations held at their initial values)"}
    cov = _fit_covariance(observed, model, bfit[1], fixed_b, bounds_b)
    npar = model.config.npars
    post = region_backgrounds(model, observed, problem.regions, pars=bfit[1],
                              covariance=cov if cov is not None else np.zeros((npar, npar)), zero_slots=slots)
    out["background_postfit"] = post["background"].tolist()
    out["background_postfit_uncertainty"] = post["uncertainty"].tolist() if cov is not None else None
    out["postfit"] = "background-only fit to the observed data; uncertainty sqrt(J C J^T) with MINUIT's covariance C"
    return out


def _settle_reference(ctx: _Context, model, x_all, results, best_nll, best, best_pars, fixed, free_bounds, slots,
                      negative_tol, n_workers, client, progress) -> dict[str, int]:
    """Refit the free fit from any label below it by more than ``negative_tol`` (in place; see the module docstring).

    Returns {data set: number of free refits}.
    Raises:
        ConvergenceError: the refit does not reach the label, or labels stay below after 3 rounds.
    """
    counts = {k: 0 for k in ctx.datasets}
    for name, data in ctx.datasets.items():
        for _ in range(4):
            finite = [(r[name]["value"], i) for i, r in enumerate(results) if r[name]["value"] is not None]
            if not finite:
                break
            low, i = min(finite)
            if low >= best_nll[name] - negative_tol:
                break
            if counts[name] == 3:
                raise ConvergenceError(
                    f"generate_labels: the {name} label at inputs {x_all[i].tolist()} stays {best_nll[name] - low:.4g} below "
                    f"the free fit after {counts[name]} refits (a -2 Delta lnL < -{negative_tol:g}); the fits do not settle")
            r = _fit(data, model, results[i][name]["pars"], fixed, free_bounds, ctx.edm_max)
            if r is None or r[0] > low + negative_tol:
                got = "did not converge" if r is None else f"reached -2 lnL {r[0]:.6g}"
                raise ConvergenceError(
                    f"generate_labels: the {name} label at inputs {x_all[i].tolist()} (-2 lnL {low:.6g}) lies "
                    f"{best_nll[name] - low:.4g} below the free fit ({best_nll[name]:.6g}), i.e. -2 Delta lnL < "
                    f"-{negative_tol:g}; the free fit restarted from that label {got}. The likelihood has minima the "
                    "fits do not resolve; a surrogate of it would be wrong")
            counts[name] += 1
            _log.warning("generate_labels: the %s label at %s lay %.4g below the free fit; the global minimum moved "
                         "to inputs %s, relabelling", name, x_all[i].tolist(), best_nll[name] - low,
                         np.asarray(r[1])[slots].tolist())
            best_nll[name], best[name], best_pars[name] = r[0], np.asarray(r[1])[slots], [float(p) for p in r[1]]
            refits = map_jobs(_neighbour_fit, [(ctx, xi, name, best_pars[name]) for xi in x_all], n_workers=n_workers,
                              client=client, progress=progress, desc=f"surrogate labels (relabel {name})")
            for res, rf in zip(results, refits):
                if rf is not None and (res[name]["value"] is None or rf[0] < res[name]["value"]):
                    res[name].update(value=rf[0], pars=rf[1])
    return counts


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
