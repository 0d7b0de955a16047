"""The main demo (``sbihep demo``): a WH → ℓνb b̄ SMEFT analysis end to end on embedded defaults.

Steps (each a function below; :func:`run_demo` chains them):

1. σ(θ) of pp → W±H → eν b b̄ at 13 TeV as an exact polynomial in cHW, cHWtil, cHq3 (VEGAS).
2. Unweighted events with exact per-event EFT coefficients through the default detector card, with
   reco-level observables (:func:`generate_events`); the CP-odd signed lepton azimuth reweighted
   exactly to cHWtil = ±1 (:func:`plot_cp_odd_angle`).
3. The events that pass the detector selection are split into a training and a test sample
   (:func:`split_events`).
4. A :class:`~sbihep.estimators.quadratic.QuadraticEFTClassifier` learns ρ(x|θ) = dσ(x|θ)/dσ(x|SM)
   over (cHW, cHWtil) from reco-level features x of the training events, with their exact per-event
   EFT weights as labels (:func:`train_estimator`).
5. Three expected likelihoods of the *same* selected test events at ``lumi_ifb`` (default 300 fb⁻¹),
   Asimov data at the SM, cHq3 held at 0, all with the same extended term σ_fid(θ) of the test events
   (:func:`build_likelihoods`):

   * ``exact``: the exact parton-level unbinned likelihood of the events' z — the information limit
     of the selected sample (no reco-level analysis of these events can do better in expectation);
   * ``learned``: the unbinned likelihood of the learned reco-level ratio ρ̂(x|θ), normalised on the
     test events themselves, r̂(x|θ) = ρ̂(x|θ)/Ê_SM[ρ̂(x|θ)] — the same construction as the exact term,
     whose σ(θ) also comes from the test events.  (An independent, smaller reference sample would put
     its statistical fluctuation into a term linear in θ and shift the expected minimum away from the
     SM by more than the size of the region: with N ≈ 10⁴ expected events the reference would need
     ≫ N events.)  Then −2ΔlnL = 2N·KL(p̂_SM ‖ p̂_θ) ≥ 0 is smallest at the SM, as for the exact term;
   * ``histogram``: a binned Poisson likelihood of one standard observable (default pT(b b̄), the
     reconstructed Higgs pT), with exact polynomial templates.

6. −2ΔlnL on one 2D grid over (cHW, cHWtil) for each (:func:`scan_likelihoods`), the area of each
   95% CL region (−2ΔlnL < χ²₂⁻¹(0.95) = 5.99, :func:`contour_area`), a netCDF file, a plot and a
   summary (:class:`DemoResult`).

The expected order is area(exact) ≤ area(learned) < area(histogram); the learned/exact ratio is the
gap to the information limit (detector smearing, the unmeasured neutrino pz and imperfect training).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events.eventset import HASH_ATTR, content_hash
from sbihep.params import Parameter, ParameterSpace

__all__ = [
    "CP_ODD_ANGLE",
    "DemoResult",
    "DemoSettings",
    "METHODS",
    "RECO_OBSERVABLES",
    "LearnedLogRatio",
    "build_likelihoods",
    "contour_area",
    "cp_asymmetries",
    "generate_events",
    "plot_constraints",
    "plot_cp_odd_angle",
    "reco_features",
    "run_demo",
    "scan_box",
    "scan_likelihoods",
    "split_events",
    "train_estimator",
    "write_constraints",
]

PROCESS = "wh_lvbb"
SQRT_S_GEV = 13000.0
POIS = ("cHW", "cHWtil")
METHODS = ("exact", "learned", "histogram")
CL = 0.95
#: The CP-odd angle: the signed lepton azimuth in the W helicity frame (charge-signed), reco level.
CP_ODD_ANGLE = "phi_helicity(l,met;b,bbar)"
#: Reco-level observables computed at generation (the neutrino is the missing transverse momentum).
RECO_OBSERVABLES = (
    "pt(l)", "eta(l)", "mT(l,met)", "pt(met)", "m(b,bbar)", "pt(b+bbar)", "eta(b+bbar)", "dphi(l,b+bbar)",
    "cos_helicity(l,met;b,bbar)", CP_ODD_ANGLE,
)  # fmt: skip


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and choices of the demo (the defaults are the full demo; :meth:`quick` a small one).

    Attributes:
        n_events: unweighted events generated (about 54% pass the default detector selection).
        n_eval: integrand evaluations per VEGAS iteration of the σ(θ) step.
        fractions: (training, test) fractions of the selected events.
        epochs, batch_size, hidden, learning_rate: the estimator's training.
        lumi_ifb: integrated luminosity of the expected constraints (fb⁻¹).
        histogram: the standard observable of the binned likelihood; n_bins its bins (equal SM
            expected counts per bin).
        grid_points: points per axis of the 2D scans.
        box_margin: the scan box is this factor times the widest 95% CL profile interval.
        train_scale: the training points are the 3×3 grid over ± train_scale × the scan box.
    """

    n_events: int = 500_000
    n_eval: int = 20_000
    fractions: tuple[float, float] = (0.65, 0.35)
    epochs: int = 60
    batch_size: int = 256
    hidden: tuple[int, ...] = (100, 100)
    learning_rate: float = 2e-3
    lumi_ifb: float = 300.0
    histogram: str = "pt(b+bbar)"
    n_bins: int = 10
    grid_points: int = 61
    box_margin: float = 1.25
    train_scale: float = 1.0

    @classmethod
    def quick(cls) -> "DemoSettings":
        """A small demo for tests and a first look (about a minute on one core)."""
        return cls(n_events=30_000, n_eval=2_000, epochs=15, hidden=(64, 64), grid_points=41)

    def check(self) -> "DemoSettings":
        """Validate; returns self.  Raises InvalidInputError naming the bad field."""
        if int(self.n_events) != self.n_events or self.n_events < 1000:
            raise InvalidInputError(f"n_events must be an integer ≥ 1000, got {self.n_events!r}")
        if len(self.fractions) != 2 or any(f <= 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-9:
            raise InvalidInputError(f"fractions must be two positive numbers summing to 1, got {self.fractions!r}")
        for name in ("n_eval", "epochs", "batch_size", "n_bins", "grid_points"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.grid_points < 11:
            raise InvalidInputError(f"grid_points must be ≥ 11, got {self.grid_points}")
        if not (math.isfinite(self.lumi_ifb) and self.lumi_ifb > 0):
            raise InvalidInputError(f"lumi_ifb must be finite and > 0, got {self.lumi_ifb!r}")
        if self.histogram not in RECO_OBSERVABLES:
            raise InvalidInputError(f"histogram must be one of {RECO_OBSERVABLES}, got {self.histogram!r}")
        if not (math.isfinite(self.train_scale) and self.train_scale > 0):
            raise InvalidInputError(f"train_scale must be finite and > 0, got {self.train_scale!r}")
        if not self.box_margin >= 1.0:
            raise InvalidInputError(f"box_margin must be ≥ 1, got {self.box_margin!r}")
        return self


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        output_dir: the folder of the outputs.
        paths: output name → path ("events", "cp_odd_plot", "constraints", "contour_plot", "estimator").
        areas: method → area of the expected 95% CL region in the (cHW, cHWtil) plane (TeV⁻⁴).
        scans: the netCDF content: dims (cHW, cHWtil), ``twice_delta_nll_<method>`` per method.
        settings: the sizes used; seed: the seed.
        counts: events generated / selected / in each sample; expected selected events at the luminosity.
        timings_s: wall time of each step (s).
    """

    output_dir: Path
    paths: dict[str, Path]
    areas: dict[str, float]
    scans: xr.Dataset
    settings: DemoSettings
    seed: int
    counts: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """area(learned)/area(exact) − 1: how far the learned reco-level analysis is from the limit."""
        return self.areas["learned"] / self.areas["exact"] - 1.0

    def summary(self) -> str:
        """A table of the three areas with the gap to the information limit, and the output paths."""
        lines = [
            f"Expected 95% CL regions in (cHW, cHWtil) [TeV^-4], {self.settings.lumi_ifb:g} fb^-1, Asimov at the SM, cHq3 = 0,",
            f"{int(self.counts.get('test', 0))} selected test events ({self.counts.get('expected_events', float('nan')):.0f} expected):",
            f"  {'method':52s} {'area':>10s} {'/ exact':>8s}",
        ]
        labels = {
            "exact": "exact parton-level likelihood (information limit)",
            "learned": "learned reco-level likelihood (quadratic EFT clf.)",
            "histogram": f"histogram of {self.settings.histogram} ({self.settings.n_bins} bins)",
        }
        for method in METHODS:
            lines.append(f"  {labels[method]:52s} {self.areas[method]:10.4g} {self.areas[method] / self.areas['exact']:8.3f}")
        lines.append(
            f"The learned likelihood's region is {self.gap:+.1%} larger than the information limit and "
            f"{1 - self.areas['learned'] / self.areas['histogram']:.1%} smaller than the histogram's."
        )
        if self.gap < 0:
            lines.append("  (smaller than the limit: the learned ratio is over-confident here; train on more events)")
        lines.append("Outputs:")
        for name, path in self.paths.items():
            lines.append(f"  {name:13s} {path}")
        return "\n".join(lines)


# ---- steps 1–2: events ---------------------------------------------------------------------
def generate_events(n_events: int, seed: int, *, progress: bool = True):
    """Step 2: ``n_events`` unweighted WH → eν b b̄ events (13 TeV, SM generation point, quadratic EFT
    coefficients of cHW, cHWtil, cHq3) through the default detector card, with :data:`RECO_OBSERVABLES`
    and the lepton charge ``charge(l)`` in ``x``.  Returns the EventSet (all events, ``passed`` mask)."""
    from sbihep.events.generate import generate
    from sbihep.events.reco import lepton_charges
    from sbihep.physics.processes import get_process

    process = get_process(PROCESS)
    events = generate(process, SQRT_S_GEV, int(n_events), seed=int(seed), detector="default",
                      observables=list(RECO_OBSERVABLES), progress=progress)
    return events.with_observables({"charge(l)": lepton_charges(events, process).numpy()})


def reco_features(events) -> tuple[np.ndarray, list[str]]:
    """The estimator's reco-level features: (N, 12) float64 array and their names — the observables of
    :data:`RECO_OBSERVABLES` except the CP-odd angle φ, which enters as (cos φ, sin φ), and the lepton
    charge."""
    x = events.observables()
    names = [o for o in RECO_OBSERVABLES if o != CP_ODD_ANGLE] + ["charge(l)"]
    missing = sorted(set(names + [CP_ODD_ANGLE]) - set(map(str, x["observable"].values)))
    if missing:
        raise InvalidInputError(f"events: observables {missing} are missing (generate them with generate_events)")
    phi = x.sel(observable=CP_ODD_ANGLE).values
    values = np.column_stack([x.sel(observable=names).values, np.cos(phi), np.sin(phi)])
    return values, names + [f"cos {CP_ODD_ANGLE}", f"sin {CP_ODD_ANGLE}"]


def _with_features(events):
    values, names = reco_features(events)
    return events.with_observables({n: values[:, k] for k, n in enumerate(names) if n.startswith(("cos ", "sin "))}), names


def split_events(events, fractions: Sequence[float], seed: int):
    """Step 3: the selected events (``passed``) with the estimator features added, split at random into
    (training, test) EventSets; each part's weights are rescaled to estimate σ_fid(θ)."""
    if "passed" not in events.data:
        raise InvalidInputError("events: no detector selection (`passed`); generate with a detector")
    selected = events.select(events.data["passed"].values)
    selected, _ = _with_features(selected)
    return selected.split(tuple(fractions), seed=int(seed) + 1)


def plot_cp_odd_angle(events, path, observable: str = CP_ODD_ANGLE) -> Path:
    """The signed lepton azimuth at reco level at the SM and reweighted exactly to cHWtil = ±1 (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = events.observables().sel(observable=observable).values
    bins = np.linspace(-np.pi, np.pi, 13)
    fig, ax = plt.subplots(figsize=(6, 4))
    for theta, color, linestyle in (({}, "k", "-"), ({"cHWtil": 1.0}, "C0", "--"), ({"cHWtil": -1.0}, "C3", ":")):
        w = events.weights(theta).numpy() * 1000.0
        hist, _ = np.histogram(x, bins, weights=w)
        label = ", ".join(f"{k} = {v:g}" for k, v in theta.items()) or "SM"
        ax.stairs(hist / np.diff(bins), bins, color=color, linestyle=linestyle, label=label)
    ax.set_xlabel(r"signed lepton azimuth $\phi$ in the W helicity frame")
    ax.set_ylabel(r"d$\sigma$/d$\phi$ [fb]")
    ax.set_title(r"pp $\to$ W$^\pm$H $\to$ e$\nu$b$\bar{b}$, 13 TeV, reco level")
    ax.legend()
    return _save_png(fig, path)


def cp_asymmetries(events, observable: str = CP_ODD_ANGLE) -> dict[str, tuple[float, float]]:
    """label → (σ × acceptance in fb, A = [σ(φ>0) − σ(φ<0)]/σ) at the SM and cHWtil = ±1."""
    x = events.observables().sel(observable=observable).values
    out = {}
    for theta in ({}, {"cHWtil": 1.0}, {"cHWtil": -1.0}):
        w = events.weights(theta).numpy()
        label = ", ".join(f"{k}={v:g}" for k, v in theta.items()) or "SM"
        out[label] = (float(w.sum() * 1000.0), float((w * (x > 0)).sum() - (w * (x < 0)).sum()) / float(w.sum()))
    return out


# ---- step 4: the estimator ------------------------------------------------------------------
def _space(box: Mapping[str, float], unit: str = "TeV^-2") -> ParameterSpace:
    return ParameterSpace([Parameter(name, 0.0, (-float(box[name]), float(box[name])), unit=unit) for name in POIS])


def train_estimator(train_events, features: Sequence[str], box: Mapping[str, float], settings: DemoSettings, *,
                    seed: int = 0, progress: bool = True):
    """Step 4: a quadratic EFT classifier of ρ(x|cHW, cHWtil) on the reco-level ``features`` of the
    training events; training points: the 3×3 grid over ±``box`` (parameter → half-width) without the SM."""
    from sbihep.estimators.quadratic import QuadraticEFTClassifier

    estimator = QuadraticEFTClassifier(list(features), _space(box), hidden=tuple(settings.hidden), seed=int(seed))
    history = estimator.fit(train_events, epochs=settings.epochs, batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, final_learning_rate=1e-4, seed=int(seed),
                            early_stopping_patience=8, device="auto", quiet=not progress)
    return estimator, history


class LearnedLogRatio:
    """``(x, theta) -> (n,)`` log ρ̂(x|θ) of a trained quadratic EFT classifier, fast in a fit: the
    coefficient functions are θ-independent, so they are evaluated once per data array (identity-cached)
    and each θ costs an (n, M) product.  Operators missing from θ are 0."""

    def __init__(self, estimator) -> None:
        from sbihep.events import eft as eft_math

        self.estimator, self._monomials = estimator, eft_math.monomials
        self.operators = list(estimator.space.names)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, x, theta: Mapping[str, float]) -> np.ndarray:
        entry = self._cache.get(id(x))
        if entry is None or entry[0] is not x:
            entry = (x, self.estimator.coefficients(x).values)
            self._cache[id(x)] = entry
        m = self._monomials(np.array([float(theta.get(o, 0.0)) for o in self.operators]), self.estimator.order).numpy()
        return np.log(np.clip(entry[1] @ m, 1e-300, None))


# ---- step 5: likelihoods ----------------------------------------------------------------------
def _equal_count_edges(values: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges with about equal SM weight per bin; the outer edges enclose every event."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    inner = np.interp(np.arange(1, n_bins) / n_bins, cumulative, values[order])
    edges = np.unique(np.concatenate([[values.min() - 1.0], inner, [values.max() + 1.0]]))
    if len(edges) < 3:
        raise InvalidInputError(f"histogram: the observable takes too few distinct values for {n_bins} bins")
    return edges


def build_likelihoods(test_events, estimator, features: Sequence[str], settings: DemoSettings,
                      bounds: float = 10.0) -> dict:
    """Step 5: method → :class:`~sbihep.fit.Likelihood` of the SM Asimov data of ``test_events`` at
    ``settings.lumi_ifb`` over cHW, cHWtil ∈ [−bounds, bounds] (cHq3 = 0).  ``estimator`` may be None
    (then no "learned" entry)."""
    from sbihep.fit import BinnedTerm, Likelihood, NormalisedLogRatio, UnbinnedTerm, exact_unbinned_term
    from sbihep.fit.morphing import EventSetSigma

    lumi = settings.lumi_ifb
    pois = {name: (-bounds, bounds) for name in POIS}
    out = {"exact": Likelihood([exact_unbinned_term(test_events, lumi, pois=pois)])}
    if estimator is not None:
        x = test_events.observables().sel(observable=list(features)).values
        w_sm = test_events.weights({}).numpy()
        ratio = NormalisedLogRatio(LearnedLogRatio(estimator), x, w_sm)  # see the module docstring
        counts = w_sm * 1000.0 * lumi
        out["learned"] = Likelihood([UnbinnedTerm(ratio, x, sigma_pb=EventSetSigma(test_events), lumi_ifb=lumi,
                                                  parameters=_space({n: bounds for n in POIS}), weights=counts)])
    values = test_events.observables().sel(observable=settings.histogram).values
    edges = _equal_count_edges(values, test_events.weights({}).numpy(), settings.n_bins)
    out["histogram"] = Likelihood([BinnedTerm.from_eventset(test_events, {settings.histogram: edges}, lumi, pois=pois)])
    return out


def scan_box(likelihoods: Mapping, margin: float = 1.25) -> dict[str, float]:
    """Half-width per POI of a scan box centred on the SM that holds every 95% CL region: ``margin``
    times the largest |end| of the 1D profile intervals at −2ΔlnL = χ²₂⁻¹(0.95) (the projections of
    the 2D regions)."""
    from scipy import stats

    from sbihep.fit import minimize, profile_interval

    cl_1d = float(stats.chi2.cdf(stats.chi2.ppf(CL, 2), 1))
    box = {name: 0.0 for name in POIS}
    for likelihood in likelihoods.values():
        best = minimize(likelihood)
        for name in POIS:
            interval = profile_interval(likelihood, name, cl_1d, best_fit=best)
            box[name] = max(box[name], abs(interval.low), abs(interval.high))
    return {name: margin * value for name, value in box.items()}


# ---- step 6: scans, areas, outputs --------------------------------------------------------------
def scan_likelihoods(likelihoods: Mapping, box: Mapping[str, float], n_points: int, *, progress: bool = True) -> dict:
    """method → 2D profile scan (:func:`~sbihep.fit.profile_scan` Dataset) over the same grid
    cHW × cHWtil ∈ [−box, box]² with ``n_points`` per axis."""
    from sbihep._progress import tqdm

    from sbihep.fit import minimize, profile_scan

    grid = {name: np.linspace(-box[name], box[name], int(n_points)) for name in POIS}
    scans = {}
    for method, likelihood in tqdm(likelihoods.items(), desc="2D scans", disable=not progress):
        scans[method] = profile_scan(likelihood, grid, best_fit=minimize(likelihood))
    return scans


def contour_area(q: xr.DataArray, level: float | None = None, refine: int = 8) -> float:
    """Area of {−2ΔlnL < level} on a 2D grid (units of the two coordinates multiplied).

    A bicubic spline through ``q`` is evaluated at the centres of cells ``refine`` times finer than the
    grid, and the area is the cell area times the number of centres below ``level`` (default
    χ²₂⁻¹(0.95) = 5.99).

    Raises:
        ShapeError: q not 2D, or an axis with fewer than 4 points or not increasing.
        InvalidInputError: non-finite values, or a region that reaches the grid's edge (the area would be
            a lower bound).
    """
    from scipy import interpolate, stats

    level = float(stats.chi2.ppf(CL, 2)) if level is None else float(level)
    if q.ndim != 2:
        raise ShapeError(f"contour_area: q must be 2D, has dims {list(q.dims)}")
    dx, dy = q.dims
    x, y = np.asarray(q[dx], dtype=float), np.asarray(q[dy], dtype=float)
    z = np.asarray(q, dtype=float)
    if len(x) < 4 or len(y) < 4 or np.any(np.diff(x) <= 0) or np.any(np.diff(y) <= 0):
        raise ShapeError("contour_area: each axis needs ≥ 4 increasing coordinates")
    if not np.all(np.isfinite(z)):
        raise InvalidInputError("contour_area: q has non-finite values")
    edge = np.concatenate([z[0], z[-1], z[:, 0], z[:, -1]])
    if np.any(edge < level):
        raise InvalidInputError(f"contour_area: the region −2ΔlnL < {level:.3g} reaches the edge of the grid; widen it")
    spline = interpolate.RectBivariateSpline(x, y, z, kx=3, ky=3)
    hx, hy = (x[-1] - x[0]) / ((len(x) - 1) * refine), (y[-1] - y[0]) / ((len(y) - 1) * refine)
    xs = x[0] + hx * (np.arange((len(x) - 1) * refine) + 0.5)
    ys = y[0] + hy * (np.arange((len(y) - 1) * refine) + 0.5)
    return float(np.count_nonzero(spline(xs, ys) < level) * hx * hy)


def write_constraints(scans: Mapping[str, xr.Dataset], areas: Mapping[str, float], path, attrs: Mapping) -> Path:
    """The netCDF file: dims (cHW, cHWtil), ``twice_delta_nll_<method>`` per method (with its best fit
    and area as attributes), global attrs; written atomically.  Returns the path."""
    first = next(iter(scans.values()))
    data = {}
    for method, scan in scans.items():
        best = {f"best_fit_{n}": float(scan["best_fit"].sel(parameter=n)) for n in POIS}
        data[f"twice_delta_nll_{method}"] = (POIS, np.asarray(scan["twice_delta_nll"].transpose(*POIS)),
                                             {"long_name": f"-2 Delta ln L, {method}", "area_95cl": areas[method], **best})
    ds = xr.Dataset(data, coords={n: np.asarray(first[n]) for n in POIS})
    ds["cHW"].attrs["units"] = ds["cHWtil"].attrs["units"] = "TeV^-2"
    ds.attrs.update({f"area_95cl_{m}": float(a) for m, a in areas.items()})
    ds.attrs.update({k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in attrs.items()})
    ds.attrs[HASH_ATTR] = content_hash(ds)  # the digest EventSet files carry; check with verify_content_hash
    path = Path(path)
    with atomic_destination(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def plot_constraints(scans: Mapping[str, xr.Dataset], areas: Mapping[str, float], path, title: str = "") -> Path:
    """The three expected 95% CL contours with the SM point (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sbihep.fit import plot_contours_2d

    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    names = {"exact": "exact parton level (limit)", "learned": "learned reco level", "histogram": "histogram"}
    for method, color in zip(METHODS, ("k", "C0", "C3")):
        if method in scans:
            plot_contours_2d(scans[method], cls=(CL,), ax=ax, mark_best=False, color=color,
                             label=f"{names[method]}, area {areas[method]:.3g},")
    ax.plot([0.0], [0.0], "*", color="C1", markersize=11, label="SM")
    ax.set_xlabel(r"$c_{HW}$ [TeV$^{-2}$]")
    ax.set_ylabel(r"$c_{H\tilde{W}}$ [TeV$^{-2}$]")
    ax.set_title(title, fontsize=9)
    low, high = ax.get_ylim()
    ax.set_ylim(low, low + 1.4 * (high - low))  # room for the legend above the contours
    ax.legend(fontsize=8, loc="upper right")
    return _save_png(fig, path)


def run_demo(
    output_dir="sbihep-demo",
    *,
    n_events: int | None = None,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    settings: DemoSettings | None = None,
    echo: Callable[[str], None] | None = print,
    cross_section: bool = True,
) -> DemoResult:
    """Run the whole demo (see the module docstring) and write its outputs into ``output_dir``.

    Args:
        output_dir: folder for the outputs (created).
        n_events: events to generate (default: ``settings.n_events``).
        seed: the one seed (generation, detector, split, network initialisation and training).
        quick: use :meth:`DemoSettings.quick` (when ``settings`` is not given).
        progress: tqdm progress bars for generation, training and scans.
        settings: sizes and choices (default: the full demo, or the quick one).
        echo: where the step-by-step report goes (None: silent).
        cross_section: run step 1 (σ(θ) by VEGAS, printed only).

    Returns:
        :class:`DemoResult` (areas, the scans, the output paths).

    Raises:
        InvalidInputError: bad settings.
    """
    from sbihep.physics.processes import get_process

    say = echo or (lambda _text: None)
    settings = settings or (DemoSettings.quick() if quick else DemoSettings())
    if n_events is not None:
        settings = replace(settings, n_events=int(n_events))
    settings.check()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    paths: dict[str, Path] = {}
    wh = get_process(PROCESS)

    if cross_section:
        from sbihep.physics.xsec import cross_section as xsec

        start = time.perf_counter()
        say(f"1. Cross section of {PROCESS} at √s = 13 TeV with its exact dependence on {', '.join(wh.operators)}:")
        result = xsec(wh, SQRT_S_GEV, n_evaluations=settings.n_eval, seed=int(seed), progress=progress)
        say(result.describe())
        for op in wh.operators:
            value, error = result({op: 1.0})
            say(f"  sigma({op}=1) / sigma_SM = {value / result.sm_pb:.4f} ± {error / result.sm_pb:.1e}")
        timings["cross_section"] = time.perf_counter() - start

    start = time.perf_counter()
    say(f"\n2. Generating {settings.n_events} WH events (default detector card, exact per-event EFT weights):")
    events = generate_events(settings.n_events, seed, progress=progress)
    passed = events.select(events.data["passed"].values)
    paths["events"] = passed.save(out / "wh_events.nc")
    say(f"  {events}; {len(passed)} pass the selection -> {paths['events']}")
    say("  The CP-odd operator seen through the signed lepton azimuth (same events, reweighted exactly):")
    for label, (sigma_fb, asymmetry) in cp_asymmetries(passed).items():
        say(f"  {label:12s} sigma x acceptance = {sigma_fb:7.3f} fb, asymmetry A(sign phi) = {asymmetry:+.4f}")
    paths["cp_odd_plot"] = plot_cp_odd_angle(passed, out / "wh_cp_odd_angle.png")
    timings["generation"] = time.perf_counter() - start

    train_ev, test_ev = split_events(passed, settings.fractions, seed)
    _, features = reco_features(test_ev)
    expected = test_ev.sigma() * 1000.0 * settings.lumi_ifb
    counts = {"generated": events.n_events, "selected": len(passed), "train": train_ev.n_events,
              "test": test_ev.n_events, "expected_events": expected}
    say(f"\n3. Selected events split into {train_ev.n_events} training and {test_ev.n_events} test events (the "
        f"expected constraints are those of the test events); at {settings.lumi_ifb:g} fb^-1 the selection "
        f"expects {expected:.0f} SM events.")

    start = time.perf_counter()
    box = scan_box(build_likelihoods(test_ev, None, features, settings), settings.box_margin)
    timings["scan_box"] = time.perf_counter() - start
    start = time.perf_counter()
    say(f"\n4. Training a quadratic EFT classifier on {len(features)} reco-level features "
        f"(training points cHW ∈ ±{settings.train_scale * box['cHW']:.3g}, cHWtil ∈ ±{settings.train_scale * box['cHWtil']:.3g}, {settings.epochs} epochs at most):")
    train_box = {name: settings.train_scale * value for name, value in box.items()}
    estimator, history = train_estimator(train_ev, features, train_box, settings, seed=seed, progress=progress)
    paths["estimator"] = estimator.save(out / "wh_quadratic_eft_estimator")
    say(f"  {len(history.train_loss)} epochs, {history.samples_per_second:.0f} events/s -> {paths['estimator']}")
    timings["training"] = time.perf_counter() - start

    start = time.perf_counter()
    say(f"\n5. Expected 2D constraints ({settings.grid_points}² grid): exact parton-level, learned reco-level, "
        f"histogram of {settings.histogram}:")
    likelihoods = build_likelihoods(test_ev, estimator, features, settings)
    for _attempt in range(4):
        scans = scan_likelihoods(likelihoods, box, settings.grid_points, progress=progress)
        try:
            areas = {m: contour_area(scans[m]["twice_delta_nll"]) for m in METHODS}
            break
        except InvalidInputError:  # a region reaches the edge (the learned one can be wider than the box)
            box = {name: 1.6 * value for name, value in box.items()}
    else:
        raise InvalidInputError("run_demo: a 95% CL region keeps reaching the edge of the scan grid")
    timings["scans"] = time.perf_counter() - start
    attrs = {
        "description": "expected 95% CL regions of pp -> W H -> e nu b bbar at 13 TeV, Asimov data at the SM, cHq3 = 0",
        "lumi_ifb": settings.lumi_ifb, "cl": CL, "threshold_twice_delta_nll": _chi2_95(),
        "area_units": "TeV^-4", "gap_learned_over_exact_minus_1": (areas["learned"] / areas["exact"]) - 1.0,
        "histogram_observable": settings.histogram, "histogram_bins": settings.n_bins, "features": list(features),
        "estimator": "QuadraticEFTClassifier", "n_test_events": test_ev.n_events, "expected_events": expected,
        "seed": int(seed), "sbihep_version": __version__,
        "exact_limit": "exact parton-level likelihood of the same selected test events",
    }
    paths["constraints"] = write_constraints(scans, areas, out / "wh_constraints.nc", attrs)
    title = (f"pp → W±H → eνbb̄, 13 TeV, {settings.lumi_ifb:g} fb⁻¹, expected {100 * CL:g}% CL (Asimov SM)")
    paths["contour_plot"] = plot_constraints(scans, areas, out / "wh_constraints.png", title)
    result = DemoResult(out.resolve(), {k: Path(v).resolve() for k, v in paths.items()}, areas,
                        xr.load_dataset(paths["constraints"], engine="h5netcdf"), settings, int(seed), counts, timings)
    say("\n6. " + result.summary())
    return result


def _chi2_95() -> float:
    from scipy import stats

    return float(stats.chi2.ppf(CL, 2))


def _save_png(fig, path) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_destination(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
