"""Interval accuracy: every interval function on exact Gaussian, Poisson and two-minimum likelihoods.

Likelihoods (exact answers in closed form or by 1D root finding on the exact −2ΔlnL):

- ``gaussian``: n ~ N(μ s + b, σ²) with b ~ N(b₀, σ_b²) profiled: μ̂ ± z σ_μ, σ_μ = √(σ² + σ_b²)/s;
- ``poisson``: n ~ Pois(μ s + b) (a Poisson term written here), q(μ) = 2[λ − n + n ln(n/λ)], λ = μs + b;
  ends by Brent on that formula, σ = √n / s;
- ``two_minimum``: d = θ² measured as 1 ± 0.1, q = ((θ² − 1)/0.1)²: the set is ±[√(1 − 0.1z), √(1 + 0.1z)],
  σ = 0.05;
- ``gaussian_2d``: a correlated 2D Gaussian (ellipses); the contour points' Mahalanobis radius against √t.

Functions: ``wilks_interval`` read off the grid, ``wilks_interval(likelihood=)``, ``profile_interval``
(grid-independent, once per likelihood and level), ``wilks_contours`` with and without the likelihood; on
grids of 3, 6, 11 and 101 points (per axis in 2D) and at 68.27% and 95.45%.  A case is refused when the
function raises InvalidInputError (or, for a 2D grid read, warns GridResolutionWarning); a case that is not
refused and has an end (or a contour point) more than 1e-3 σ off, or the wrong number of pieces, is
*silently wrong*.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import optimize, stats

from sbihep.errors import InvalidInputError
from sbihep.fit import GaussianTerm, Likelihood, profile_interval, profile_scan, wilks_contours, wilks_interval
from sbihep.fit.intervals import ONE_SIGMA, TWO_SIGMA, GridResolutionWarning
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

GRIDS = (3, 6, 11, 101)
CLS = (ONE_SIGMA, TWO_SIGMA)
TOL_SIGMA = 1e-3


class PoissonCount:
    """One Poisson count n with expectation μ s + b: −ln L = λ − n ln λ (+ const), with gradient."""

    def __init__(self, n: int, s: float, b: float, space: ParameterSpace):
        self.n, self.s, self.b, self.parameters = n, s, b, space

    def nll(self, theta):
        lam = theta["mu"] * self.s + self.b
        return float(lam - self.n * math.log(lam))

    def nll_grad(self, theta):
        lam = theta["mu"] * self.s + self.b
        return {"mu": float(self.s * (1.0 - self.n / lam))}


def _cases():
    # Gaussian with a profiled nuisance
    s, b0, sig, sig_b, n = 10.0, 50.0, 5.0, 3.0, 62.0
    space = ParameterSpace([Parameter("mu", 0.0, (0.0, 3.0)),
                            Parameter("b", b0, (20.0, 80.0), kind="nuisance", constraint=GaussianConstraint(b0, sig_b))])
    gauss = Likelihood([GaussianTerm([n], [[sig**2]], [0.0], space, linear={"mu": [s], "b": [1.0]})])
    mu_hat, sigma_mu = (n - b0) / s, math.sqrt(sig**2 + sig_b**2) / s
    yield "gaussian", gauss, "mu", (0.0, 3.0), sigma_mu, lambda z: [(mu_hat - z * sigma_mu, mu_hat + z * sigma_mu)]

    # Poisson
    pn, ps, pb = 12, 5.0, 4.0
    pois = Likelihood([PoissonCount(pn, ps, pb, ParameterSpace([Parameter("mu", 1.0, (0.0, 6.0))]))])
    p_hat = (pn - pb) / ps
    qp = lambda mu: 2.0 * ((mu * ps + pb) - pn + pn * math.log(pn / (mu * ps + pb)))  # noqa: E731

    def pois_exact(z):
        return [(optimize.brentq(lambda m: qp(m) - z * z, 1e-9, p_hat, xtol=1e-14),
                 optimize.brentq(lambda m: qp(m) - z * z, p_hat, 6.0, xtol=1e-14))]
    yield "poisson", pois, "mu", (0.0, 6.0), math.sqrt(pn) / ps, pois_exact

    # two minima
    dspace = ParameterSpace([Parameter("theta", 0.0, (-5.0, 5.0))])
    dw = Likelihood([GaussianTerm([1.0], [[0.01]], [0.0], dspace, quadratic={"theta*theta": [1.0]})])

    def dw_exact(z):
        a, c = math.sqrt(1 - 0.1 * z), math.sqrt(1 + 0.1 * z)
        return [(-c, -a), (a, c)]
    yield "two_minimum", dw, "theta", (-1.5, 1.5), 0.05, dw_exact


def _end_error(cs, exact, sigma) -> float:
    if len(cs.intervals) != len(exact):
        return math.inf
    return max(max(abs(iv.low - lo), abs(iv.high - hi)) / sigma for iv, (lo, hi) in zip(cs.intervals, exact))


def run(args) -> dict:
    grids = (3, 6, 11) if getattr(args, "quick", False) else GRIDS
    rows = []  # (likelihood, function, grid, cl, refused, error_sigma)

    def record(name, func, n, cl, call, exact, sigma):
        try:
            cs = call()
        except InvalidInputError:
            rows.append((name, func, n, cl, True, math.nan))
            return
        rows.append((name, func, n, cl, False, _end_error(cs, exact, sigma)))

    for name, lik, par, (lo, hi), sigma, exact_of in _cases():
        for cl in CLS:
            z = math.sqrt(stats.chi2.ppf(cl, 1))
            exact = exact_of(z)
            record(name, "profile_interval", 0, cl, lambda: profile_interval(lik, par, cl), exact, sigma)
        for n in grids:
            scan = profile_scan(lik, {par: np.linspace(lo, hi, n)})
            for cl in CLS:
                exact = exact_of(math.sqrt(stats.chi2.ppf(cl, 1)))
                record(name, "wilks_interval_grid", n, cl, lambda: wilks_interval(scan, par, cl), exact, sigma)
                record(name, "wilks_interval_likelihood", n, cl,
                       lambda: wilks_interval(scan, par, cl, likelihood=lik), exact, sigma)

    # 2D: a correlated Gaussian; error of a contour point = |Mahalanobis radius − √t| (in σ)
    a = np.array([[1.0, 0.5], [0.3, 1.0], [1.0, -1.0]])
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
    data = a @ np.array([0.3, -0.2]) + np.array([0.05, -0.1, 0.08])
    space = ParameterSpace([Parameter("c1", 0.0, (-3, 3)), Parameter("c2", 0.0, (-3, 3))])
    lik2 = Likelihood([GaussianTerm(data, cov, [0.0, 0.0, 0.0], space, linear={"c1": a[:, 0], "c2": a[:, 1]})])
    cinv = np.linalg.inv(cov)
    v = np.linalg.inv(a.T @ cinv @ a)
    best = v @ a.T @ cinv @ data
    vinv = np.linalg.inv(v)
    half = 3.8 * np.sqrt(np.diag(v))
    for n in grids:
        scan = profile_scan(lik2, {"c1": np.linspace(best[0] - half[0], best[0] + half[0], n),
                                   "c2": np.linspace(best[1] - half[1], best[1] + half[1], n)})
        for func, kwargs in (("wilks_contours_grid", {}), ("wilks_contours_likelihood", {"likelihood": lik2})):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                contours = wilks_contours(scan, CLS, **kwargs)
            refused = any(issubclass(w.category, GridResolutionWarning) for w in caught)
            for cl, lines in contours.items():
                t = stats.chi2.ppf(cl, 2)
                if not lines:
                    err = math.inf
                else:
                    pts = np.concatenate(lines) - best
                    r = np.sqrt(np.einsum("ki,ij,kj->k", pts, vinv, pts))
                    err = float(np.max(np.abs(r - math.sqrt(t)))) if len(lines) == 1 else math.inf
                rows.append(("gaussian_2d", func, n, cl, refused, math.nan if refused else err))

    accepted = [r for r in rows if not r[4]]
    errors = [r[5] for r in accepted]
    silent = [r for r in accepted if not r[5] <= TOL_SIGMA]
    out = {
        "interval_cases_count": len(rows),
        "interval_refused_count": sum(r[4] for r in rows),
        "interval_silent_wrong_count": len(silent),
        "interval_max_abs_end_error_sigma": float(max(errors)) if errors else math.nan,
    }
    for func in sorted({r[1] for r in rows}):
        sub = [r for r in rows if r[1] == func]
        acc = [r[5] for r in sub if not r[4]]
        out[f"interval_{func}_refused_count"] = sum(r[4] for r in sub)
        out[f"interval_{func}_max_end_error_sigma"] = float(max(acc)) if acc else math.nan
    for r in silent:
        print("silently wrong:", r)
    for r in rows:
        print(f"  {r[0]:<12} {r[1]:<27} grid {r[2]:>3}  cl {r[3]:.4f}  "
              + ("refused" if r[4] else f"error {r[5]:.2e} σ"))
    return out
