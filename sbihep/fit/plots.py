"""Plots of profile scans: 1D −2ΔlnL curves and 2D Wilks contours (matplotlib, Agg-safe).

Each function takes a Dataset from :func:`~sbihep.fit.scan.profile_scan` and returns the
``matplotlib.figure.Figure`` (nothing is shown or saved).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sbihep.errors import InvalidInputError
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, wilks_contours, wilks_threshold

__all__ = ["plot_scan_1d", "plot_contours_2d"]


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


def plot_contours_2d(scan, *, cls: Sequence[float] = (ONE_SIGMA, TWO_SIGMA), ax=None, mark_best: bool = True):
    """Wilks contours (χ²₂ thresholds) of a 2D profile scan, with the best fit marked."""
    q = scan["twice_delta_nll"]
    if q.ndim != 2:
        raise InvalidInputError(f"plot_contours_2d: scan must be 2D, has dims {list(q.dims)}")
    dx, dy = q.dims
    fig, ax = _figure(ax)
    styles = ["-", "--", ":", "-."]
    for i, (cl, lines) in enumerate(wilks_contours(scan, cls).items()):
        for k, line in enumerate(lines):
            ax.plot(line[:, 0], line[:, 1], styles[i % 4], color="C0", label=f"{100 * cl:.3g}% CL" if k == 0 else None)
    if mark_best and "best_fit" in scan:
        ax.plot(float(scan["best_fit"].sel(parameter=dx)), float(scan["best_fit"].sel(parameter=dy)), "k+", label="best fit")
    ax.set_xlabel(dx)
    ax.set_ylabel(dy)
    ax.legend()
    return fig
