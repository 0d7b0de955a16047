"""The OpWB quadratic fit (SMEFiT fixture ATLAS_ZH_Hbb_13TeV + CMS_ggF_aa_13TeV, OpWB alone, bounds ±2):
its 95% Wilks set is the union of two intervals.

``profile_interval`` (every basin via find_minima, ends by root finding) against a brute-force profile:
OpWB is the only parameter, so the profile is −ln L itself, evaluated on a dense grid of 400 001 points
over [−0.3, 0.1] (spacing 1e-6, ~10⁻⁴ of the pieces' lengths), the set read off it point by point.
``smefit_opwb_quadratic_set_rel_error`` is the largest relative difference of the two pieces' lengths.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats

from sbihep.fit import Likelihood, profile_interval, smefit_term
from sbihep.params import Parameter, ParameterSpace

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "smefit"


def run(args) -> dict:
    space = ParameterSpace([Parameter("OpWB", 0.0, (-2, 2))])
    term = smefit_term(["ATLAS_ZH_Hbb_13TeV", "CMS_ggF_aa_13TeV"], DATA / "commondata", DATA / "theory", space,
                       eft_order="quadratic")
    lik = Likelihood([term])
    t0 = time.perf_counter()
    cs = profile_interval(lik, "OpWB", 0.95)
    t_set = time.perf_counter() - t0

    n = 40_001 if getattr(args, "quick", False) else 400_001
    x = np.linspace(-0.3, 0.1, n)
    nll = np.array([lik.nll({"OpWB": float(v)}) for v in x])
    q = 2.0 * (nll - nll.min())
    inside = q < stats.chi2.ppf(0.95, 1)
    edges = np.flatnonzero(np.diff(inside.astype(int)))
    dense = [(float(x[a + 1]), float(x[b])) for a, b in zip(edges[::2], edges[1::2])]
    if inside[0] or inside[-1]:
        raise RuntimeError("opwb benchmark: the dense grid does not contain the 95% set")
    lengths = [iv.length for iv in cs.intervals]
    dense_lengths = [hi - lo for lo, hi in dense]
    if len(lengths) != len(dense_lengths):
        rel = float("inf")
    else:
        rel = max(abs(a - b) / b for a, b in zip(lengths, dense_lengths))
    out = {
        "smefit_opwb_quadratic_set_rel_error": float(rel),
        "smefit_opwb_quadratic_pieces_count": len(cs.intervals),
        "smefit_opwb_quadratic_dense_pieces_count": len(dense),
        "smefit_opwb_quadratic_set_time_s": round(t_set, 3),
        "smefit_opwb_quadratic_dense_spacing": float(x[1] - x[0]),
    }
    for k, (iv, (lo, hi)) in enumerate(zip(cs.intervals, dense), start=1):
        out[f"smefit_opwb_quadratic_interval{k}_low"] = iv.low
        out[f"smefit_opwb_quadratic_interval{k}_high"] = iv.high
        out[f"smefit_opwb_quadratic_interval{k}_dense_low"] = lo
        out[f"smefit_opwb_quadratic_interval{k}_dense_high"] = hi
    for k, m in enumerate(cs.minima, start=1):
        out[f"smefit_opwb_quadratic_minimum{k}"] = float(m)
    print("95% set:", cs.describe(".5f"), " dense:", " ∪ ".join(f"[{lo:.5f}, {hi:.5f}]" for lo, hi in dense))
    return out
