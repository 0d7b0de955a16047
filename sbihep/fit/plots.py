"""Plots of profile scans (1D −2ΔlnL curves, 2D Wilks contours) and posterior corner plots
(matplotlib, Agg-safe).

Each function takes a Dataset from :func:`~sbihep.fit.scan.profile_scan` and returns the
``matplotlib.figure.Figure`` (nothing is shown or saved).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sbihep.errors import InvalidInputError
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, wilks_contours, wilks_threshold

__all__ = ["plot_scan_1d", "plot_contours_2d", "plot_corner"]


def _figure(ax):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    return fig, fig.add_subplot()


def plot_scan_1d(scan, *, cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA), ax=None, label: str | None = None):
    """−2ΔlnL against the scanned parameter, with the Wilks thresholds of ``cls`` as dashed lines;
    points whose fit did not converge are marked with red crosses."""
    q = scan["twice_delta_nll"]
    if q.ndim != 1:
        raise InvalidInputError(f"plot_scan_1d: scan must be 1D, has dims {list(q.dims)}")
    (dim,) = q.dims
    fig, ax = _figure(ax)
    x, y = np.asarray(scan[dim]), np.asarray(q)
    ok = np.asarray(scan["converged"], dtype=bool)
    ax.plot(x[ok], y[ok], "-", label=label)
    if (~ok).any():
        ax.plot(x[~ok], y[~ok], "rx", label="not converged")
    for cl in cls:
        level = wilks_threshold(cl, 1)
        ax.axhline(level, ls="--", lw=0.8, color="grey")
        ax.annotate(f"{100 * cl:.3g}%", (x.min(), level), va="bottom", fontsize=8)
    ax.set_xlabel(dim)
    ax.set_ylabel(r"$-2\Delta\ln L$")
    if label or (~ok).any():
        ax.legend()
    return fig


def plot_contours_2d(scan, *, cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA), ax=None, mark_best: bool = True,
                     color: str = "C0", label: str | None = None, likelihood=None):
    """Wilks contours (χ²₂ thresholds) of a 2D profile scan, with the best fit marked.

    With ``likelihood`` the contours are refined by root finding (see
    :func:`~sbihep.fit.intervals.wilks_contours`); disjoint regions are drawn as separate lines.

    Overlay several results by passing the same ``ax`` with a different ``color`` and ``label``
    (the legend then reads e.g. "exact 95.4% CL").
    """
    q = scan["twice_delta_nll"]
    if q.ndim != 2:
        raise InvalidInputError(f"plot_contours_2d: scan must be 2D, has dims {list(q.dims)}")
    dx, dy = q.dims
    fig, ax = _figure(ax)
    styles = ["-", "--", ":", "-."]
    prefix = f"{label} " if label else ""
    for i, (cl, lines) in enumerate(wilks_contours(scan, cls, likelihood=likelihood).items()):
        for k, line in enumerate(lines):
            ax.plot(line[:, 0], line[:, 1], styles[i % 4], color=color, label=f"{prefix}{100 * cl:.3g}% CL" if k == 0 else None)
    if mark_best and "best_fit" in scan:
        ax.plot(float(scan["best_fit"].sel(parameter=dx)), float(scan["best_fit"].sel(parameter=dy)), "+", color=color,
                label=f"{prefix}best fit")
    ax.set_xlabel(dx)
    ax.set_ylabel(dy)
    ax.legend()
    return fig


def plot_corner(posterior, parameters: Sequence[str] | None = None, *, bins: int = 40, truths=None):
    """Corner plot of a :func:`~sbihep.fit.bayes.sample_posterior` Dataset: 1D histograms on the
    diagonal (dashed: the 15.87/50/84.13% quantiles), 2D histograms below it.

    Args:
        parameters: which sampled parameters (default all).
        truths: optional name → value, drawn as lines.
    """
    from matplotlib.figure import Figure

    names = list(parameters or posterior["parameter"].values.tolist())
    unknown = [n for n in names if n not in posterior["parameter"].values]
    if unknown:
        raise InvalidInputError(f"plot_corner: parameters {unknown} were not sampled")
    k = len(names)
    fig = Figure(figsize=(2.2 * k + 0.6, 2.2 * k + 0.6))
    axes = fig.subplots(k, k, squeeze=False)
    samples = {n: posterior["samples"].sel(parameter=n).values for n in names}
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(samples[xj], bins=bins, histtype="step", color="k")
                for q in np.quantile(samples[xj], [0.15866, 0.5, 0.84134]):
                    ax.axvline(q, ls="--", color="C0", lw=0.8)
                ax.set_yticks([])
            else:
                ax.hist2d(samples[xj], samples[yi], bins=bins, cmap="Greys")
                if truths and yi in truths:
                    ax.axhline(truths[yi], color="C3", lw=0.8)
            if truths and xj in truths:
                ax.axvline(truths[xj], color="C3", lw=0.8)
            if i == k - 1:
                ax.set_xlabel(xj)
            if j == 0 and i > 0:
                ax.set_ylabel(yi)
    fig.tight_layout()
    return fig
