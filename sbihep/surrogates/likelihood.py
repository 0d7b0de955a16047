"""pyhf workspace → trained, validated, exported −2ΔlnL surrogate in one call.

>>> path, metrics = train_surrogate("BkgOnly.json", patch="DS_100_1_Staus", output="model.onnx")  # doctest: +SKIP
>>> metrics["passed"], metrics["failures"]                                                      # doctest: +SKIP

Validation (stored in the file's ``sbihep.validation``):

* ``held_out``: labels never trained on, drawn among the labelled points where some output has
  t < ``t_max`` (10) — the region the targets are about — so a held-out set without such points
  cannot happen by chance;
* ``check_grid``: labels on a grid over the whole box (:func:`~sbihep.surrogates.labels.check_grid`),
  never trained on;
* ``min_t_on_check_grid`` and ``t_at_best_fit``: the network on a dense grid over the box
  (:func:`dense_grid`, no fits) — its lowest value (−2ΔlnL ≥ 0 is the truth) — and at the best fits
  (truth 0);
* ``targets``, ``passed`` and ``failures``: max |Δt| where t < 10 below ``target_abs_dt`` (0.1) on
  the held-out labels and on the check grid, for every output; ``min_t_on_check_grid`` ≥
  −``target_min_t`` (0.01).  A metric that cannot be computed (no point with t < 10) is ``None``
  and a failure, never NaN.

A surrogate that misses a target is still written (with ``passed: false``), and
:class:`~sbihep.errors.SurrogateValidationWarning` is issued; ``sbihep surrogate train`` then exits
with status 3.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sbihep.errors import InvalidInputError, SurrogateValidationWarning
from sbihep.surrogates.labels import LabelSet, generate_labels, load_problem
from sbihep.surrogates.network import MLPConfig, SurrogateEnsemble, train_ensemble

__all__ = ["validate", "split_labels", "dense_grid", "validation_report", "train_surrogate"]

_DEFAULT_NAMES = ("observed", "asimov", "asimov_prefit")


def _names(k: int, output_names: Sequence[str] | None) -> list[str]:
    if output_names is not None:
        return [n.removeprefix("t_") for n in output_names]
    return list(_DEFAULT_NAMES[:k]) if k <= 3 else [f"output{j}" for j in range(k)]


def validate(ensemble: SurrogateEnsemble, x: np.ndarray, t: np.ndarray, *, t_max: float = 10.0,
             output_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Agreement of the surrogate with labels it was not trained on.

    Args:
        x: (n, d) inputs.  t: (n, k) labels, one column per output.
        t_max: the "small −2ΔlnL" region: metrics ``*_t_lt_{t_max}`` use points with label < t_max.
        output_names: names of the k outputs (``t_observed`` …); default observed, asimov,
            asimov_prefit.
    Returns:
        flat dict: n_points; per output the number of points with t < t_max, max/mean |Δt| (all and
        small) and the mean predicted std.  A metric without points is ``None`` (never NaN).
    """
    x = np.asarray(x, float).reshape(len(x), -1) if len(x) else np.zeros((0, ensemble.config.n_inputs))
    t = np.asarray(t, float).reshape(len(x), -1) if len(x) else np.zeros((0, ensemble.config.n_outputs))
    if len(x):
        pred, std = ensemble.predict(x)
    else:
        pred = std = np.zeros((0, t.shape[1]))
    out: dict[str, Any] = {"n_points": int(len(x))}
    for j, name in enumerate(_names(t.shape[1], output_names)):
        err = np.abs(pred[:, j] - t[:, j])
        small = t[:, j] < t_max
        out[f"{name}_n_t_lt_{t_max:g}"] = int(small.sum())
        out[f"{name}_max_abs_err"] = float(err.max()) if len(err) else None
        out[f"{name}_max_abs_err_t_lt_{t_max:g}"] = float(err[small].max()) if small.any() else None
        out[f"{name}_mean_abs_err_t_lt_{t_max:g}"] = float(err[small].mean()) if small.any() else None
        out[f"{name}_mean_std"] = float(std[:, j].mean()) if len(std) else None
    return out


def split_labels(labels: LabelSet, test_fraction: float, seed: int = 0, *,
                 t_max: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, t_train, x_test, t_test): held-out labels drawn where some output has t < ``t_max``.

    Anchors (box edges, zero signal, best fits) are always trained on.  The test set is
    ``round(test_fraction · n)`` points (n = all labels), drawn at random among the non-anchor
    labels with min over outputs of t below ``t_max`` — at least one such point when any exists,
    and at most half of them, so the held-out metrics measure the region the targets are about.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise InvalidInputError(f"test_fraction: must lie in [0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    n = len(labels.x)
    anchor = np.zeros(n, bool) if getattr(labels, "is_anchor", None) is None else np.asarray(labels.is_anchor, bool)
    small = np.flatnonzero(~anchor & (np.min(labels.t, axis=1) < t_max))
    n_test = int(round(test_fraction * n)) if test_fraction > 0 else 0
    if test_fraction > 0 and len(small):
        n_test = min(max(n_test, 1), max(len(small) // 2, 1))
    else:
        n_test = 0
    te = np.sort(rng.choice(small, size=n_test, replace=False)) if n_test else np.zeros(0, int)
    tr = np.setdiff1d(np.arange(n), te)
    return labels.x[tr], labels.t[tr], labels.x[te], labels.t[te]


def dense_grid(bounds: np.ndarray, n: int = 20001, *, seed: int = 0) -> np.ndarray:
    """About ``n`` points over the box for network-only checks: a regular grid (k^d ≤ n) for
    d ≤ 3, else the box's corners (d ≤ 12) or its low/high corners, plus ``n`` uniform random
    points.  Returns (m, d)."""
    bounds = np.asarray(bounds, float)
    d = bounds.shape[0]
    if d <= 3:
        k = max(2, int(math.floor(n ** (1.0 / d) + 1e-9)))
        axes = [np.linspace(a, b, k) for a, b in bounds]
        return np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T
    if d <= 12:
        corners = np.array(np.meshgrid(*[[a, b] for a, b in bounds], indexing="ij")).reshape(d, -1).T
    else:
        corners = bounds.T.copy()
    u = np.random.default_rng(seed).uniform(size=(n, d))
    return np.concatenate([corners, bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])])


def validation_report(ensemble: SurrogateEnsemble, labels: LabelSet, x_test: np.ndarray, t_test: np.ndarray,
                      x_train: np.ndarray, t_train: np.ndarray, *, t_max: float = 10.0, target_abs_dt: float = 0.1,
                      target_min_t: float = 0.01, n_dense: int = 20001) -> dict[str, Any]:
    """All validation metrics, the targets and whether they are met (see the module docstring)."""
    names = list(getattr(labels, "output_names", None) or ("t_observed", "t_asimov"))
    short = _names(len(names), names)
    key = f"max_abs_err_t_lt_{t_max:g}"
    out: dict[str, Any] = {
        "held_out": validate(ensemble, x_test, t_test, t_max=t_max, output_names=names),
        "train": validate(ensemble, x_train, t_train, t_max=t_max, output_names=names),
    }
    x_check = getattr(labels, "x_check", None)
    out["check_grid"] = (validate(ensemble, x_check, labels.t_check, t_max=t_max, output_names=names)
                         if x_check is not None and len(x_check) else None)
    grid = dense_grid(labels.problem.bounds, n_dense)
    pred = ensemble.predict(grid)[0]
    out["min_t_on_check_grid"] = float(pred.min())
    out["min_t_on_check_grid_per_output"] = {n: float(pred[:, j].min()) for j, n in enumerate(short)}
    out["n_dense_check_points"] = int(len(grid))
    at_best = {}
    lo, hi = labels.problem.bounds[:, 0], labels.problem.bounds[:, 1]
    for j, n in enumerate(short):
        xb = np.asarray(labels.best_fit.get(n, []), float)
        if xb.shape == (len(lo),) and np.all((xb >= lo) & (xb <= hi)):
            at_best[n] = float(ensemble.predict(xb[None, :])[0][0, j])
    out["t_at_best_fit"] = at_best
    out["targets"] = {f"max_abs_dt_t_lt_{t_max:g}": target_abs_dt, "min_t_on_check_grid": -target_min_t}
    failures = []
    if out["check_grid"] is None:
        failures.append("check_grid: no check labels over the box (generate_labels(..., n_check=...)); "
                        "the accuracy away from the training labels is unmeasured")
    for part in ("held_out", "check_grid"):
        if out[part] is None:
            continue
        for n in short:
            value = out[part][f"{n}_{key}"]
            if value is None:
                failures.append(f"{part}: no point with t_{n} < {t_max:g} (the accuracy there is unmeasured)")
            elif not value < target_abs_dt:
                failures.append(f"{part}: max |dt_{n}| where t < {t_max:g} is {value:.3g} (target < {target_abs_dt:g})")
    if not out["min_t_on_check_grid"] >= -target_min_t:
        failures.append(f"min t on the dense check grid is {out['min_t_on_check_grid']:.3g} (target >= {-target_min_t:g})")
    out["failures"] = failures
    out["passed"] = not failures
    return out


def train_surrogate(
    workspace: str | Path | dict,
    *,
    output: str | Path,
    patch: str | None = None,
    patchset: str | Path | dict | None = None,
    regions: Sequence[str] | None = None,
    bounds: Sequence[Sequence[float]] | dict[str, Sequence[float]] | None = None,
    n_points: int = 60,
    n_starts: int = 2,
    n_check: int | None = None,
    prefit: bool = True,
    test_fraction: float = 0.15,
    config: MLPConfig | None = None,
    seed: int = 0,
    n_workers: int | None = None,
    client: Any = None,
    device: str = "auto",
    quiet: bool = False,
    labels: LabelSet | None = None,
    target_abs_dt: float = 0.1,
) -> tuple[Path, dict]:
    """Label, train, validate (held-out labels, check grid over the box, t ≥ 0) and export to ONNX.

    Args:
        n_points: training labels (anchors included).
        n_check: check-grid labels over the whole box for validation; default max(10, n_points // 3).
        prefit: also label and learn the pre-fit Asimov data (spey's ``apriori``).
        labels: use these labels instead of labelling (their check grid, if any, is used).
        target_abs_dt: the accuracy target, max |Δt| where t < 10.
        config: the network (:class:`~sbihep.surrogates.network.MLPConfig`); its ``n_outputs`` is set
            from the labels (2, or 3 with ``prefit``).
        Others: see :func:`~sbihep.surrogates.labels.load_problem`,
            :func:`~sbihep.surrogates.labels.generate_labels`,
            :func:`~sbihep.surrogates.network.train_ensemble`.
    Returns:
        (path of the ONNX file, validation metrics dict as stored in its metadata; ``passed`` and
        ``failures`` say whether the targets were met).
    Warns:
        SurrogateValidationWarning: a validation target was missed (the file is still written, with
            ``passed: false``).
    """
    if labels is None:
        problem = load_problem(workspace, patch=patch, patchset=patchset, regions=regions, bounds=bounds)
        if n_check is None:
            n_check = max(10, n_points // 3)
        labels = generate_labels(problem, n_points, n_check=n_check, n_starts=n_starts, prefit=prefit, seed=seed,
                                 n_workers=n_workers, client=client, progress=not quiet)
    x_tr, t_tr, x_te, t_te = split_labels(labels, test_fraction, seed)
    if config is not None and config.n_outputs != t_tr.shape[1]:
        # the outputs are the labels' (observed, Asimov, and the pre-fit Asimov with prefit=True), not a choice
        config = dataclasses.replace(config, n_outputs=int(t_tr.shape[1]))
    ensemble, info = train_ensemble(x_tr, t_tr, config, seed=seed, device=device, quiet=quiet)
    metrics = validation_report(ensemble, labels, x_te, t_te, x_tr, t_tr, target_abs_dt=target_abs_dt)
    metrics["member_val_loss"] = info["val_loss"]
    from sbihep.surrogates.onnx import export_onnx

    path = export_onnx(ensemble, labels, output, validation=metrics)
    if not metrics["passed"]:
        warnings.warn(f"train_surrogate: {Path(path).name} misses its validation targets: " + "; ".join(metrics["failures"]),
                      SurrogateValidationWarning, stacklevel=2)
    return path, metrics
