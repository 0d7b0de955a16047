"""pyhf workspace → trained, validated, exported −2ΔlnL surrogate in one call.

>>> path = train_surrogate("BkgOnly.json", patch="DS_100_1_Staus", output="model.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sbihep.surrogates.labels import LabelSet, generate_labels, load_problem
from sbihep.surrogates.network import MLPConfig, SurrogateEnsemble, train_ensemble

__all__ = ["validate", "split_labels", "train_surrogate"]


def validate(ensemble: SurrogateEnsemble, x: np.ndarray, t: np.ndarray, *, t_max: float = 10.0) -> dict[str, float]:
    """Agreement of the surrogate with held-out labels.

    Args:
        x: (n, d) inputs.  t: (n, 2) labels [observed, Asimov].
        t_max: the "small −2ΔlnL" region: metrics ``*_small`` use points with label < t_max.
    Returns:
        flat dict: n_points, max/mean |Δt| (all and small) per output, mean predicted std.
    """
    pred, std = ensemble.predict(x)
    out: dict[str, float] = {"n_points": int(len(x))}
    for j, name in enumerate(("observed", "asimov")):
        err = np.abs(pred[:, j] - t[:, j])
        small = t[:, j] < t_max
        out[f"{name}_max_abs_err"] = float(err.max()) if len(err) else float("nan")
        out[f"{name}_max_abs_err_t_lt_{t_max:g}"] = float(err[small].max()) if small.any() else float("nan")
        out[f"{name}_mean_abs_err_t_lt_{t_max:g}"] = float(err[small].mean()) if small.any() else float("nan")
        out[f"{name}_mean_std"] = float(std[:, j].mean()) if len(std) else float("nan")
    return out


def split_labels(labels: LabelSet, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, t_train, x_test, t_test), a random split of the labelled points."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels.x))
    n_test = int(round(test_fraction * len(perm)))
    te, tr = perm[:n_test], perm[n_test:]
    return labels.x[tr], labels.t[tr], labels.x[te], labels.t[te]


def train_surrogate(
    workspace: str | Path | dict,
    *,
    output: str | Path,
    patch: str | None = None,
    patchset: str | Path | dict | None = None,
    regions: Sequence[str] | None = None,
    bounds: Sequence[Sequence[float]] | None = None,
    n_points: int = 60,
    n_starts: int = 2,
    test_fraction: float = 0.15,
    config: MLPConfig | None = None,
    seed: int = 0,
    n_workers: int | None = None,
    client: Any = None,
    device: str = "auto",
    quiet: bool = False,
    labels: LabelSet | None = None,
) -> tuple[Path, dict]:
    """Label, train, validate on held-out labels and export to ONNX.

    Returns:
        (path of the ONNX file, validation metrics dict as stored in its metadata).
    """
    if labels is None:
        problem = load_problem(workspace, patch=patch, patchset=patchset, regions=regions, bounds=bounds)
        labels = generate_labels(problem, n_points, n_starts=n_starts, seed=seed, n_workers=n_workers,
                                 client=client, progress=not quiet)
    x_tr, t_tr, x_te, t_te = split_labels(labels, test_fraction, seed)
    ensemble, info = train_ensemble(x_tr, t_tr, config, seed=seed, device=device, quiet=quiet)
    metrics = {"held_out": validate(ensemble, x_te, t_te) if len(x_te) else {},
               "train": validate(ensemble, x_tr, t_tr), "member_val_loss": info["val_loss"]}
    from sbihep.surrogates.onnx import export_onnx

    path = export_onnx(ensemble, labels, output, validation=metrics)
    return path, metrics
