"""LF2I OnOff: coverage of Neyman sets with a nuisance parameter over a 5×5 grid of true (μ, ν).

N_on ~ Pois(ν b + μ s), N_off ~ Pois(ν τ b), s = 15, b = 70, τ = 1, μ ∈ [0, 5], ν ∈ [0.6, 1.4]
(Dalmasso et al., arXiv:2107.03920), as a :class:`~sbihep.fit.CountingTerm`.  One EXACT nuisance
belt (``neyman_belt(..., method="exact")``: every (N_on, N_off) of non-negligible probability fitted
once and weighed with its Poisson probability at each node of a (μ, ν) grid, 33 ν nodes; no toy
noise in the critical values) serves three constructions of
:mod:`sbihep.fit.neyman_nuisance`: ``calibrated`` (the new default), ``berger_boos`` (γ = 0.01) and
``profile`` (the profile construction, each data set tested against the critical value at its own
ν̂̂ — how it is used).

Coverage is computed EXACTLY: every (N_on, N_off) of non-negligible probability is handed to
:func:`sbihep.fit.covered` (the per-data-set decision that :func:`sbihep.fit.coverage` applies to
each toy: fits, the toy's own ν̂̂ and nuisance set), and the decisions are summed with their
Poisson probabilities.  The probability the lattice leaves out (≤ 6e-4, reported) is never
renormalised away: it counts as not covered in the tables and the undercoverage figures, and as
covered in the overcoverage figures, so that both are bounds.  The toy figures (≥ 2000 toys per
truth point, independent streams from :func:`sbihep.fit.toy_stream` with purpose "coverage") reuse
those decisions: a toy's decision depends only on its counts, so this equals running ``coverage``.
Since the decisions at a tested μ do not depend on the true ν, the exact coverage is also given on
a fine ν grid (33 values, between the belt's nodes too).  The *oracle* — the test that knows the
true ν (t against the exact quantile of t at the true (μ, ν)) — shows how much overcoverage the
discreteness of t itself forces.

All fits use ``polish=True``: MIGRAD alone (``hesse=False``) can stop on a parameter bound with
the gradient pointing inwards and report convergence (e.g. counts (21, 9) of a b = 12 OnOff at
μ = 0: ν̂̂ = 1.4 instead of 1.25), which would make wrong decisions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from sbihep.fit import CountingTerm, Likelihood, NeymanMethod, covered, minimize, neyman_belt, toy_stream
from sbihep.fit.intervals import ONE_SIGMA
from sbihep.fit.neyman_nuisance import TIE_TOLERANCE, discrete_quantile
from sbihep.params import Parameter, ParameterSpace
from sbihep.parallel import map_jobs

S, B, TAU = 15.0, 70.0, 1.0
MU_BOUNDS, NU_BOUNDS = (0.0, 5.0), (0.6, 1.4)
TRUE_MU = (0.0, 1.25, 2.5, 3.75, 5.0)
TRUE_NU = (0.6, 0.8, 1.0, 1.2, 1.4)
CLS = (ONE_SIGMA, 0.95)
CONSTRUCTIONS = ("calibrated", "berger_boos", "profile")
FINE_NU = np.linspace(*NU_BOUNDS, 33)
FIT = {"polish": True}


def onoff_likelihood(n_on: float = 85.0, n_off: float = 70.0) -> Likelihood:
    space = ParameterSpace([Parameter("mu", 1.0, MU_BOUNDS), Parameter("nu", 1.0, NU_BOUNDS, kind="nuisance")])
    return Likelihood([CountingTerm([n_on, n_off], [{"nu": B, "mu": S}, {"nu": TAU * B}], space, labels=["on", "off"])])


def lattice(mu: float, floor: float) -> np.ndarray:
    """(n, 2) counts whose probability exceeds ``floor`` at (mu, ν) for some true ν of the table."""
    keep = set()
    for nu in FINE_NU[::2]:
        on = np.arange(0, 400)
        p_on = stats.poisson.pmf(on, nu * B + mu * S)
        p_off = stats.poisson.pmf(on, nu * TAU * B)
        joint = p_on[:, None] * p_off[None, :]
        keep.update(map(tuple, np.argwhere(joint > floor).tolist()))
    return np.array(sorted(keep), dtype=float)


def _decide(lik: Likelihood, counts: np.ndarray, mu: float, methods) -> np.ndarray:
    term = lik.terms[0]
    out = np.empty((len(counts), len(methods)))
    for i, c in enumerate(counts):
        toy = Likelihood([term.with_counts(c)], auto_constraints=False)
        free = minimize(toy, hesse=False, on_failure="flag", **FIT)
        out[i] = covered(toy, {"mu": mu, "nu": 1.0}, methods, free_fit=free, **FIT)
    return out


def run(args) -> dict:
    quick = bool(getattr(args, "quick", False))
    workers = int(getattr(args, "workers", 1) or 1)
    n_cov = 2000
    nu_nodes = np.linspace(*NU_BOUNDS, 9 if quick else 33)
    floor = 1e-5 if quick else 1e-6
    lik = onoff_likelihood()
    belt = neyman_belt(lik, {"mu": np.array(TRUE_MU)}, nuisance_grid={"nu": nu_nodes}, method="exact",
                       exact_tail=1e-4 if quick else 1e-6, cls=CLS, n_workers=workers, **FIT)
    labels, methods = [], []
    for cl in CLS:
        for c in CONSTRUCTIONS:
            labels.append(f"{c}_{round(100 * cl)}")
            methods.append(NeymanMethod(belt, cl, construction=c, gamma=0.01))
            methods[-1]._construction()  # calibrate once here: the cached construction travels to the workers
    exact = {lab: np.full((5, 5), np.nan) for lab in labels}  # left-out probability counted as not covered
    exact_high = {lab: np.full((5, 5), np.nan) for lab in labels}  # ... and as covered
    toys = {lab: np.full((5, 5), np.nan) for lab in labels}
    fine = {lab: np.full((5, FINE_NU.size), np.nan) for lab in labels}
    fine_high = {lab: np.full((5, FINE_NU.size), np.nan) for lab in labels}
    oracle = {cl: np.full((5, 5), np.nan) for cl in CLS}
    missing_prob, n_failed, n_points = 0.0, 0, 0
    for a, mu in enumerate(TRUE_MU):
        pts = lattice(mu, floor)
        n_points += len(pts)
        chunks = np.array_split(np.arange(len(pts)), max(1, 4 * workers))
        res = map_jobs(_decide, [(lik, pts[c], mu, methods) for c in chunks if c.size], n_workers=workers,
                       progress=False, desc="OnOff lattice")
        dec = np.concatenate(res)
        n_failed += int(np.isnan(dec).any(axis=1).sum())
        table = {tuple(p): d for p, d in zip(pts.astype(int).tolist(), dec)}
        for b_, nu in enumerate(FINE_NU):
            w = stats.poisson.pmf(pts[:, 0], nu * B + mu * S) * stats.poisson.pmf(pts[:, 1], nu * TAU * B)
            for j, lab in enumerate(labels):
                ok = np.isfinite(dec[:, j])
                fine[lab][a, b_] = float(np.sum(w[ok] * dec[ok, j]))  # left-out probability counts as not covered
                fine_high[lab][a, b_] = fine[lab][a, b_] + 1.0 - float(np.sum(w[ok]))  # ... as covered
        for b_, nu in enumerate(TRUE_NU):  # the oracle: t against the exact quantile at the true (μ, ν)
            node = belt.sel(mu=mu, nu=nu, method="nearest")
            t, w = np.asarray(node["statistic"], float), np.asarray(node["weight"], float)
            for cl in CLS:
                q = discrete_quantile(t, cl, weights=w)
                oracle[cl][a, b_] = float(np.sum(w[t <= q + TIE_TOLERANCE])) - cl
        for b_, nu in enumerate(TRUE_NU):
            w = stats.poisson.pmf(pts[:, 0], nu * B + mu * S) * stats.poisson.pmf(pts[:, 1], nu * TAU * B)
            missing_prob = max(missing_prob, 1.0 - float(w.sum()))
            for j, lab in enumerate(labels):
                ok = np.isfinite(dec[:, j])
                # bounds, not a renormalised ratio: the probability outside the lattice (and of failed
                # fits) is counted once as not covered (for undercoverage) and once as covered (for
                # overcoverage), so neither figure is optimistic
                exact[lab][a, b_] = float(np.sum(w[ok] * dec[ok, j]))
                exact_high[lab][a, b_] = exact[lab][a, b_] + 1.0 - float(np.sum(w[ok]))
            truth = {"mu": mu, "nu": nu}
            hits = np.zeros(len(labels))
            for i in range(n_cov):
                counts = lik.toy(truth, toy_stream(12345, "coverage", truth, i)).terms[0].counts
                key = tuple(int(x) for x in counts)
                d = table.get(key)
                if d is None:
                    d = _decide(lik, np.array([counts]), mu, methods)[0]
                hits += np.nan_to_num(d)
            for j, lab in enumerate(labels):
                toys[lab][a, b_] = hits[j] / n_cov
    out: dict = {"onoff_belt_method": "exact", "onoff_belt_lattice_points_max": int(belt.attrs["n_toys"]),
                 "onoff_belt_missing_probability_max": float(belt["missing_probability"].max()),
                 "onoff_belt_failed_fits": int(belt["n_failed"].sum()), "onoff_belt_nu_nodes": len(nu_nodes),
                 "onoff_coverage_toys_per_point": n_cov, "onoff_lattice_points": n_points,
                 "onoff_lattice_missing_probability_max": missing_prob, "onoff_lattice_failed_fits": n_failed,
                 "onoff_berger_boos_gamma": 0.01}
    for cl in CLS:
        tag = round(100 * cl)
        for c in CONSTRUCTIONS:
            dev = exact[f"{c}_{tag}"] - cl
            dev_high = exact_high[f"{c}_{tag}"] - cl
            prefix = "onoff" if c == "calibrated" else f"onoff_{c}"
            out[f"{prefix}_worst_undercoverage_{tag}"] = round(float(max(0.0, -dev.min())), 5)
            out[f"{prefix}_worst_overcoverage_{tag}"] = round(float(max(0.0, dev_high.max())), 5)
            lo_at, hi_at = np.unravel_index(np.argmin(dev), dev.shape), np.unravel_index(np.argmax(dev_high), dev.shape)
            out[f"{prefix}_worst_undercoverage_{tag}_at_mu_nu"] = f"{TRUE_MU[lo_at[0]]},{TRUE_NU[lo_at[1]]}"
            out[f"{prefix}_worst_overcoverage_{tag}_at_mu_nu"] = f"{TRUE_MU[hi_at[0]]},{TRUE_NU[hi_at[1]]}"
            rest = dev_high.copy()
            rest[hi_at] = -np.inf
            out[f"{prefix}_second_worst_overcoverage_{tag}"] = round(float(max(0.0, rest.max())), 5)
            out[f"{prefix}_exact_coverage_minus_cl_{tag}_table"] = _table(dev)
            tdev = toys[f"{c}_{tag}"] - cl
            out[f"{prefix}_toy_coverage_minus_cl_{tag}_table"] = _table(tdev)
            out[f"{prefix}_toy_worst_undercoverage_{tag}"] = round(float(max(0.0, -tdev.min())), 5)
            fdev = fine[f"{c}_{tag}"] - cl
            out[f"{prefix}_fine_nu_worst_undercoverage_{tag}"] = round(float(max(0.0, -fdev.min())), 5)
            out[f"{prefix}_fine_nu_worst_overcoverage_{tag}"] = round(float(max(0.0, (fine_high[f"{c}_{tag}"] - cl).max())), 5)
        out[f"onoff_oracle_exact_coverage_minus_cl_{tag}_table"] = _table(oracle[cl])
        out[f"onoff_oracle_worst_overcoverage_{tag}"] = round(float(max(0.0, oracle[cl].max())), 5)
    out["onoff_construction"] = (f"calibrated (sbihep default) on the exact belt, {len(nu_nodes)} nu nodes; onoff_profile_*: "
                                 "the profile construction (exact node quantiles at the data's own nu-hat-hat); "
                                 "onoff_berger_boos_*: Berger-Boos, gamma 0.01")
    out["onoff_exact_tables"] = ("exact coverage minus cl with the left-out lattice probability counted as not covered; "
                                 "worst_overcoverage counts it as covered (onoff_lattice_missing_probability_max)")
    out["onoff_fine_nu_grid"] = f"{FINE_NU.size} values in [{NU_BOUNDS[0]}, {NU_BOUNDS[1]}] at each true mu"
    out["onoff_table_layout"] = "rows mu=" + ",".join(map(str, TRUE_MU)) + "; columns nu=" + ",".join(map(str, TRUE_NU))
    return out


def _table(dev: np.ndarray) -> str:
    return " | ".join(" ".join(f"{v:+.4f}" for v in row) for row in dev)


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    for k, v in run(ap.parse_args()).items():
        print(f"{k}: {v}")
    _ = math
