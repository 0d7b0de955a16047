"""Calibration of classifier-based ratio estimators, reliability diagrams and the expected calibration error.

A ratio estimator is a classifier in disguise: ŝ(x) = 1/(1 + r̂(x|θ₀, θ₁)) estimates P(y = 1 | x) for
a balanced sample with y = 0 for x ~ θ₀ and y = 1 for x ~ θ₁, and is calibrated when
P(y = 1 | ŝ) = ŝ.  A network that ranks events well but whose outputs are too flat or too steep
(e.g. r̂ = r^0.5) is fixed by learning the monotone map ŝ → P(y = 1 | ŝ) on a held-out labelled sample
(Cranmer, Pavez, Louppe, arXiv:1506.02169):

* ``"histogram"``: bins of ŝ with equal counts; the frequency of y = 1 in each bin, interpolated
  linearly between the bins' mean ŝ;
* ``"isotonic"``: the best non-decreasing fit of y against ŝ (pool-adjacent-violators, weighted
  least squares; written here on numpy, no scikit-learn), with blocks merged to at least
  N/(2·n_bins) events (PAV's tiny pure-class blocks in the tails would give ln r = ±ln N),
  interpolated linearly between blocks.

Each bin or block's frequency is the smoothed (k + ½)/(n + 1), so one-class bins give finite ratios.

The calibrated ratio is r̂_cal = (1 − p)/p · n₁/n₀ with p the calibrated P(y = 1 | ŝ) and n₀, n₁ the
class counts of the calibration sample.  The maps work on logit ŝ = −ln r̂, which orders events as ŝ
does without saturating in floating point.  For a parametrised estimator the calibration pools the
samples of all θ₀: it is exact when ŝ is a monotone function of the true r(x|θ₀, θ₁) jointly in
(x, θ₀), as for any estimator r̂ = f(r) with f increasing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import xarray as xr

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, InvalidInputError, ShapeError

__all__ = [
    "CALIBRATION_METHODS",
    "CalibratedRatioEstimator",
    "Calibrator",
    "calibrate",
    "classifier_output",
    "classifier_outputs",
    "expected_calibration_error",
    "isotonic_regression",
    "reliability_curve",
    "reliability_diagram",
]

CALIBRATION_METHODS = ("histogram", "isotonic")


# ---- building blocks ----------------------------------------------------------------------------
def classifier_output(log_r, prior_ratio: float = 1.0) -> np.ndarray:
    """ŝ = 1/(1 + r̂·n₀/n₁) = P̂(y = 1 | x) from ln r̂ (N,); ``prior_ratio`` = n₀/n₁ of the sample."""
    log_r = np.asarray(log_r, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(np.clip(log_r + np.log(prior_ratio), -700, 700)))


def _labels(y, n: int, argument: str = "y") -> np.ndarray:
    y = np.asarray(getattr(y, "values", y), dtype=np.float64).reshape(-1)
    if y.shape != (n,):
        raise ShapeError(f"{argument}: expected {n} labels, got shape {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInputError(f"{argument}: labels must be 0 (x ~ θ₀) or 1 (x ~ θ₁)")
    return y


def _scores(s, argument: str = "s_hat") -> np.ndarray:
    s = np.asarray(getattr(s, "values", s), dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise InvalidInputError(f"{argument}: contains NaN or infinite values")
    return s


def isotonic_regression(values, targets, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares non-decreasing fit of ``targets`` as a function of ``values``.

    Pool-adjacent-violators on the points sorted by value (ties pooled first).
    Returns (block_values, block_fits, block_weights): the weighted mean value, fitted target and
    total weight of each block, block_values increasing and block_fits non-decreasing.
    """
    v = _scores(values, "values")
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if t.shape != v.shape or w.shape != v.shape:
        raise ShapeError(f"values, targets and weights need one length, got {v.shape}, {t.shape}, {w.shape}")
    if len(v) == 0 or (w < 0).any() or w.sum() <= 0:
        raise InvalidInputError("isotonic_regression: need at least one point and non-negative weights with a positive sum")
    order = np.argsort(v, kind="stable")
    v, t, w = v[order], t[order], w[order]
    # pool exact ties in the value first (a function cannot take two values at one point)
    unique, start = np.unique(v, return_index=True)
    wsum = np.add.reduceat(w, start)
    tsum = np.add.reduceat(w * t, start)
    vsum = np.add.reduceat(w * v, start)
    # stack of blocks: (Σw, Σw·t, Σw·v)
    bw, bt, bv = [], [], []
    for i in range(len(unique)):
        cw, ct, cv = wsum[i], tsum[i], vsum[i]
        while bw and bt[-1] * cw >= ct * bw[-1]:  # previous mean ≥ current mean: pool
            cw, ct, cv = cw + bw.pop(), ct + bt.pop(), cv + bv.pop()
        bw.append(cw)
        bt.append(ct)
        bv.append(cv)
    bw_a = np.array(bw)
    safe = np.where(bw_a > 0, bw_a, 1.0)
    return np.array(bv) / safe, np.array(bt) / safe, bw_a


def _merge_small_blocks(knots, fits, weights, *, min_weight: float):
    """Merge adjacent isotonic blocks (left to right) until each holds at least ``min_weight``;
    merging neighbours of a non-decreasing sequence keeps it non-decreasing."""
    out_v, out_t, out_w = [], [], []
    cv = ct = cw = 0.0
    for v, t, w in zip(knots, fits, weights):
        cv, ct, cw = cv + v * w, ct + t * w, cw + w
        if cw >= min_weight:
            out_v.append(cv), out_t.append(ct), out_w.append(cw)
            cv = ct = cw = 0.0
    if cw > 0:
        if out_w:  # leftover at the top end joins the last block
            out_v[-1], out_t[-1], out_w[-1] = out_v[-1] + cv, out_t[-1] + ct, out_w[-1] + cw
        else:
            out_v, out_t, out_w = [cv], [ct], [cw]
    w = np.array(out_w)
    return np.array(out_v) / w, np.array(out_t) / w, w


def expected_calibration_error(s_hat, y, *, n_bins: int = 15) -> float:
    """ECE = Σ_b (n_b/N) |mean(y)_b − mean(ŝ)_b| over ``n_bins`` equal-width bins of ŝ in [0, 1]."""
    curve = reliability_curve(s_hat, y, n_bins=n_bins)
    n = curve["count"].values
    gap = np.abs(curve["observed"].values - curve["predicted"].values)
    return float(np.sum(np.where(n > 0, n * np.nan_to_num(gap), 0.0)) / n.sum())


def reliability_curve(s_hat, y, *, n_bins: int = 15) -> xr.Dataset:
    """Per bin of ŝ (equal width in [0, 1]): mean predicted ŝ, observed frequency of y = 1 and its
    binomial standard error, and the count; Dataset with dim ``bin`` and coordinate ``edges`` attrs."""
    s = _scores(s_hat)
    y = _labels(y, len(s))
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise InvalidInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    if ((s < 0) | (s > 1)).any():
        raise InvalidInputError("s_hat: classifier outputs must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(idx, s, n_bins) / count
        observed = np.bincount(idx, y, n_bins) / count
        error = np.sqrt(observed * (1 - observed) / count)
    return xr.Dataset(
        {"predicted": ("bin", predicted), "observed": ("bin", observed), "observed_error": ("bin", error), "count": ("bin", count)},
        coords={"bin": np.arange(n_bins), "low": ("bin", edges[:-1]), "high": ("bin", edges[1:])},
    )


def reliability_diagram(
    path: str | os.PathLike,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Plot observed frequency against predicted ŝ for each ``label → (s_hat, y)`` (with its ECE in the
    legend) and write the figure atomically to ``path`` (format from the suffix, e.g. .png, .pdf)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise InvalidInputError("curves: give at least one label → (s_hat, y)")
    path = Path(path)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="perfectly calibrated")
        for i, (label, (s, y)) in enumerate(curves.items()):
            c = reliability_curve(s, y, n_bins=n_bins)
            ok = c["count"].values > 0
            ece = expected_calibration_error(s, y, n_bins=n_bins)
            ax.errorbar(c["predicted"].values[ok], c["observed"].values[ok], yerr=c["observed_error"].values[ok], marker="o",
                        markersize=3, color=f"C{i}", label=f"{label} (ECE {ece:.3f})")
            ax_n.stairs(c["count"].values, np.r_[c["low"].values, 1.0], color=f"C{i}")
        ax.set_ylabel("observed frequency of y = 1 (x ~ θ₁)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax_n.set_xlabel(r"classifier output $\hat s = 1/(1+\hat r)$")
        ax_n.set_ylabel("events")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_destination(path) as tmp:
            with open(tmp, "wb") as fh:
                fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=110)
    finally:
        plt.close(fig)
    return path


# ---- calibrator ---------------------------------------------------------------------------------
class Calibrator:
    """A monotone map ln r̂ → calibrated ln r, fitted on labelled classifier outputs.

    Args:
        method: ``"histogram"`` or ``"isotonic"`` (see the module docstring).
        n_bins: bins of the histogram method (equal counts); the isotonic method merges its blocks to
            at least N/(2·n_bins) events.
    """

    def __init__(self, method: str = "isotonic", *, n_bins: int = 50) -> None:
        if method not in CALIBRATION_METHODS:
            raise InvalidInputError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
        if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2):
            raise InvalidInputError(f"n_bins must be an integer ≥ 2, got {n_bins!r}")
        self.method, self.n_bins = method, int(n_bins)
        self.knots: np.ndarray | None = None  # logit ŝ at the knots, increasing
        self.probabilities: np.ndarray | None = None  # calibrated P(y = 1) at the knots
        self.prior_ratio = 1.0  # n₀/n₁ of the calibration sample

    def fit(self, log_r_hat, y) -> "Calibrator":
        """Learn P(y = 1 | ŝ) from the estimator's ln r̂ (N,) and labels y (N,) of a held-out sample."""
        u = -_scores(log_r_hat, "log_r_hat")  # logit ŝ
        y = _labels(y, len(u))
        n1 = y.sum()
        n0 = len(y) - n1
        if n0 < 1 or n1 < 1:
            raise InvalidInputError("y: the calibration sample needs events of both classes")
        if len(u) < 2 * self.n_bins and self.method == "histogram":
            raise InvalidInputError(f"log_r_hat: {len(u)} events are too few for {self.n_bins} histogram bins")
        if self.method == "isotonic":
            knots, k1, weight = _merge_small_blocks(*isotonic_regression(u, y), min_weight=len(u) / (2 * self.n_bins))
        else:
            blocks = np.array_split(np.argsort(u, kind="stable"), self.n_bins)
            knots = np.array([u[b].mean() for b in blocks])
            k1, weight = np.array([y[b].mean() for b in blocks]), np.array([len(b) for b in blocks], dtype=float)
        # (k + 1/2)/(n + 1): finite ratios where a bin or block holds one class only
        p = (k1 * weight + 0.5) / (weight + 1.0)
        self.knots = knots
        self.probabilities = np.maximum.accumulate(p) if self.method == "isotonic" else p  # blocks of unequal size stay ordered
        self.prior_ratio = float(n0 / n1)
        return self

    def _check(self) -> None:
        if self.knots is None:
            raise InvalidInputError("the calibrator is not fitted: call fit(log_r_hat, y) first")

    def probability(self, log_r_hat) -> np.ndarray:
        """Calibrated P(y = 1 | ŝ) for ln r̂ (N,), at the calibration sample's class balance."""
        self._check()
        u = -_scores(log_r_hat, "log_r_hat")
        if len(self.knots) == 1:
            return np.full_like(u, self.probabilities[0])
        return np.interp(u, self.knots, self.probabilities)

    def __call__(self, log_r_hat) -> np.ndarray:
        """Calibrated ln r = ln[(1 − p)/p] + ln(n₁/n₀), (N,)."""
        p = self.probability(log_r_hat)
        return np.log1p(-p) - np.log(p) - np.log(self.prior_ratio)

    def calibrated_output(self, log_r_hat) -> np.ndarray:
        """Calibrated ŝ = 1/(1 + r_cal) for a balanced sample (comparable with :func:`classifier_output`)."""
        return classifier_output(self(log_r_hat))

    def to_dict(self) -> dict:
        self._check()
        return {"method": self.method, "n_bins": self.n_bins, "knots": self.knots.tolist(),
                "probabilities": self.probabilities.tolist(), "prior_ratio": self.prior_ratio}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping) -> "Calibrator":
        try:
            cal = cls(d["method"], n_bins=d["n_bins"])
            cal.knots = np.asarray(d["knots"], dtype=np.float64)
            cal.probabilities = np.asarray(d["probabilities"], dtype=np.float64)
            cal.prior_ratio = float(d["prior_ratio"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"calibration: malformed calibrator record ({type(exc).__name__}: {exc})") from exc
        if cal.knots.shape != cal.probabilities.shape or cal.knots.ndim != 1 or len(cal.knots) < 1:
            raise DataFormatError("calibration: knots and probabilities must be equal-length lists")
        return cal

    def __repr__(self) -> str:
        state = f"{len(self.knots)} knots" if self.knots is not None else "not fitted"
        return f"Calibrator({self.method!r}, {state})"


# ---- calibrated estimator -----------------------------------------------------------------------
def _ratio_rows(estimator, data: xr.Dataset) -> np.ndarray:
    """ln r̂ of every sample row (x, θ₀, θ₁) of a ratio training-sample Dataset."""
    missing = [k for k in ("x", "theta0", "theta1", "y") if k not in data]
    if missing:
        raise InvalidInputError(f"data: missing variables {missing} (expected a ratio sample with labels)")
    from sbihep.estimators.base import check_sample_labels  # torch-free module: import on use

    check_sample_labels(data, estimator.observables, estimator.space)
    return np.asarray(estimator.log_ratio(data["x"].values, data["theta0"].values, data["theta1"].values), dtype=np.float64)


class CalibratedRatioEstimator:
    """A ratio estimator (or ensemble) followed by a :class:`Calibrator`: ln r_cal = C(ln r̂(x|θ₀, θ₁)).

    ``log_ratio`` and ``log_ratio_grid`` take the arguments of the wrapped estimator (same input checks).
    """

    kind = "calibrated_ratio"

    def __init__(self, estimator, calibrator: Calibrator) -> None:
        if not hasattr(estimator, "log_ratio"):
            raise InvalidInputError(f"estimator: needs a log_ratio method, got {type(estimator).__name__}")
        calibrator._check()
        self.estimator, self.calibrator = estimator, calibrator
        self.observables, self.space = estimator.observables, estimator.space

    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """Calibrated ln r(x|θ₀, θ₁), (N,)."""
        return self.calibrator(self.estimator.log_ratio(x, theta0, theta1))

    def log_ratio_grid(self, x, thetas, theta1=None) -> xr.DataArray:
        """Calibrated ln r on a θ grid (K, n) → DataArray (theta, event)."""
        raw = self.estimator.log_ratio_grid(x, thetas, theta1)
        return raw.copy(data=self.calibrator(raw.values.ravel()).reshape(raw.shape))

    def save(self, path: str | os.PathLike) -> Path:
        """Directory with config.json (kind, sbihep version, calibrator) and the estimator in ``estimator/``."""
        path = Path(path)
        with atomic_destination(path) as tmp:
            tmp.mkdir(parents=True)
            self.estimator.save(tmp / "estimator")
            config = {"kind": self.kind, "sbihep_version": __version__, "estimator_kind": self.estimator.kind,
                      "calibrator": self.calibrator.to_dict()}  # fmt: skip
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CalibratedRatioEstimator":
        """Rebuild what :meth:`save` wrote."""
        from sbihep.estimators.ensemble import Ensemble, estimator_class

        path = Path(path)
        if not (path / "config.json").is_file():
            raise InvalidInputError(f"path: {str(path)!r} is not a saved calibrated estimator (no config.json)")
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"path: cannot read {str(path / 'config.json')!r} ({exc})") from exc
        if config.get("kind") != cls.kind:
            raise DataFormatError(f"path: {str(path)!r} holds a {config.get('kind')!r} estimator, not a {cls.kind!r} one")
        kind = config["estimator_kind"]
        inner = Ensemble.load(path / "estimator") if kind == Ensemble.kind else estimator_class(kind).load(path / "estimator")
        return cls(inner, Calibrator.from_dict(config["calibrator"]))

    def __repr__(self) -> str:
        return f"CalibratedRatioEstimator({self.estimator!r}, {self.calibrator!r})"


def calibrate(estimator, data: xr.Dataset, method: str = "isotonic", *, n_bins: int = 50) -> CalibratedRatioEstimator:
    """Fit a :class:`Calibrator` on a held-out labelled ratio sample and wrap the estimator with it.

    Args:
        estimator: a trained ratio estimator or ensemble (anything with ``log_ratio(x, θ₀, θ₁)``).
        data: a ratio sample (:func:`sbihep.events.augment.ratio_training_sample` layout) NOT used in
            training: x (sample, observable), theta0/theta1 (sample, parameter), y (sample).
        method: ``"histogram"`` or ``"isotonic"``.
        n_bins: bins of the histogram method.
    """
    log_r = _ratio_rows(estimator, data)
    return CalibratedRatioEstimator(estimator, Calibrator(method, n_bins=n_bins).fit(log_r, data["y"].values))


def classifier_outputs(estimator, data: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(ŝ (N,), y (N,)) of an estimator on a labelled ratio sample, ŝ at the sample's class balance
    (inputs of :func:`expected_calibration_error` and :func:`reliability_diagram`)."""
    log_r = _ratio_rows(estimator, data)
    y = _labels(data["y"].values, len(log_r))
    n1 = y.sum()
    return classifier_output(log_r, (len(y) - n1) / max(n1, 1.0)), y
