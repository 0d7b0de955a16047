"""CLs at a given signal strength: ``hypotest``, with pyhf's conventions (``pyhf.infer.hypotest``).

Test statistics (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727; the POI μ is a signal strength):

- ``"qtilde"`` (eq. 16): q̃_μ = 2 [nll(μ, ν̂̂(μ)) − nll(μ̂, ν̂)] for μ̂ ≥ 0 (reference at μ = 0 when
  μ̂ < 0), and 0 when μ̂ > μ;
- ``"q"`` (eq. 14): q_μ = 2 [nll(μ, ν̂̂(μ)) − nll(μ̂, ν̂)], 0 when μ̂ > μ, with μ̂ free within the POI's
  declared bounds (as in pyhf, q_μ differs from q̃_μ only where the POI's lower bound lets μ̂ < 0).

Calculators:

- ``"asymptotics"``: the Asimov data set is generated at μ = 0 with the nuisances profiled on the
  observed data; q_A = q(μ) on it.  With t = √q − √q_A (for q̃ when q̃ > q_A: t = (q − q_A)/(2√q_A)),
  CL_{s+b} = Φ(−(t + √q_A)), CL_b = Φ(−t), CL_s = CL_{s+b}/CL_b; the expected CL_s at N σ (N > 0:
  weaker, larger CLs) is Φ(N − √q_A)/Φ(N) — pyhf's ``AsymptoticCalculator`` with
  ``calc_base_dist="normal"``.
- ``"toybased"``: toys of the s+b hypothesis at (μ, ν̂̂(μ)) and of the b hypothesis at (0, ν̂̂(0)), the
  nuisances profiled on the observed data (pyhf's ``ToyCalculator``); CL_{s+b} and CL_b are the
  fractions of s+b and b toys with q ≥ q_obs; the expected band is the −2…+2σ percentiles of CL_s
  evaluated at the b toys' q.  Toys are drawn with :meth:`Likelihood.toy`, their streams a function of
  (seed, hypothesis, toy index) only.

Starts of the conditional (fixed-μ) fits (``two_starts``):

- ``True`` (hypotest's default): every conditional fit is started from the nearest μ already fitted
  on the same data set *and* from the free fit, and the lower minimum is kept, so a fit that lands in
  a local minimum from one start does not pass unnoticed; the number of points where the two starts
  disagreed by more than ``agree_tol`` is reported.
- ``"auto"`` (:func:`~sbihep.fit.cls.cls_upper_limit`'s default): the fit starts from the nearest
  μ; the other starts — the free fit and, between two fitted μ, the far neighbour — are *probed*
  first and fitted only when the probe says they may lead lower: −ln L is evaluated at four points
  of the straight segment (μ fixed) from the fit's minimum to that start.  Within one basin that is
  convex along the segment (any basin near its minimum) −ln L does not decrease along it, so the
  other start is fitted when the segment goes below the minimum anywhere, or decreases somewhere
  (a ridge, then another basin's slope).  Also when the fit from the nearest start failed.  After
  each fit its values are tried at the two neighbouring fitted μ (one evaluation each): a
  neighbour whose −ln L is higher than there by more than ``agree_tol`` is refitted from them (its
  warm-started minimum was not the lowest), so no cached fit sits above a neighbour's solution.
  This costs ~10 likelihood evaluations per fit instead of a second fit.
- ``False``: the nearest start only.

The first μ fitted on a data set has no fitted neighbour: it starts from the free fit, and its
second start (fitted, with ``"auto"`` too: a probe along one segment did not see that basin) is
the likelihood's own start point —
on the eRJR workspace a fit at μ = 3 from the free fit alone settles 0.05 in −2 ln L above the
minimum that the start point (or the fit at μ = 2.5) leads to.

Starts that coincide (e.g. the nearest fitted μ is the free fit's own, μ̂ on a bound) are fitted
once; the free fit is the conditional fit at μ = μ̂ (no fit is made there).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import ConvergenceError, InvalidInputError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize
from sbihep.fit.statistic import toy_seed
from sbihep.parallel import map_jobs

__all__ = ["HypoTestResult", "hypotest", "ProfiledData", "asimov_free_fit", "asimov_data", "TEST_STATS", "CALCTYPES", "TWO_STARTS"]

TEST_STATS = ("qtilde", "q")
CALCTYPES = ("asymptotics", "toybased")
#: −2…+2σ percentiles (in %) of the toy-based expected band, as pyhf's.
BAND_PERCENTILES = (2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681)
BAND = (-2, -1, 0, 1, 2)


@dataclass(frozen=True)
class HypoTestResult:
    """The outcome of :func:`hypotest` at one value of the POI.

    Attributes:
        poi, poi_value: the tested parameter and value μ.
        test_stat, calctype: as passed.
        cls_obs, clsb, clb: observed CL_s, CL_{s+b}, CL_b.
        cls_expected: N → expected CL_s for N in (−2, −1, 0, 1, 2) (empty unless asked for);
            N < 0 are the smaller (stronger-exclusion) values, as pyhf's band order.
        q_obs: the test statistic on the observed data.
        q_asimov: on the Asimov data (asymptotics; NaN for toys).
        mu_hat: μ̂ on the observed data.
        n_toys: toys per hypothesis (0 for asymptotics); n_failed_toys: toys whose fits failed (left out).
        n_two_start_disagreements: conditional fits where the two starts found minima differing by
            more than ``agree_tol`` (the lower one is used).
    """

    poi: str
    poi_value: float
    test_stat: str
    calctype: str
    cls_obs: float
    clsb: float
    clb: float
    cls_expected: dict[int, float] = field(default_factory=dict)
    q_obs: float = math.nan
    q_asimov: float = math.nan
    mu_hat: float = math.nan
    n_toys: int = 0
    n_failed_toys: int = 0
    n_two_start_disagreements: int = 0

    @property
    def cls_expected_band(self) -> tuple[float, ...]:
        """The expected CL_s at −2, −1, 0, +1, +2 σ (pyhf's ``return_expected_set`` order)."""
        return tuple(self.cls_expected[n] for n in BAND)


def _check_poi(likelihood: Likelihood, poi: str | None, who: str) -> str:
    if not isinstance(likelihood, Likelihood):
        raise InvalidInputError(f"{who}: likelihood must be a Likelihood, got {type(likelihood).__name__}")
    if poi is None:
        pois = [n for n in likelihood.parameters.pois if n not in likelihood.fixed]
        if len(pois) != 1:
            raise InvalidInputError(f"{who}: give poi explicitly; the likelihood has POIs {pois}")
        poi = pois[0]
    if poi not in likelihood.parameters:
        raise UnknownParameterError(f"{who}: unknown poi {poi!r}; known: {list(likelihood.names)}")
    if poi in likelihood.fixed:
        raise InvalidInputError(f"{who}: poi {poi!r} is fixed in the likelihood")
    return poi


def _check_test_stat(test_stat: str, who: str) -> str:
    if test_stat not in TEST_STATS:
        raise InvalidInputError(f"{who}: test_stat must be one of {TEST_STATS}, got {test_stat!r}")
    return test_stat


#: Fractions of the segment from a fit's minimum to another start at which −ln L is probed ("auto").
PROBE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
TWO_STARTS = (True, False, "auto")


def check_two_starts(two_starts, who: str):
    """``two_starts`` as one of :data:`TWO_STARTS` (InvalidInputError otherwise)."""
    if two_starts is True or two_starts is False or two_starts == "auto":
        return two_starts
    raise InvalidInputError(f"{who}: two_starts must be True, False or 'auto', got {two_starts!r}")


class ProfiledData:
    """One data set's free fit and its conditional (fixed-POI) fits, cached by μ.

    The starts of each conditional fit follow ``two_starts`` (see the module docstring): ``True``
    the nearest fitted μ and the free fit, the lower minimum kept; ``"auto"`` the nearest, the
    others only when a probe of −ln L along the segment towards them says they may lead lower;
    ``False`` the nearest only.  The first μ fitted has no neighbour: its starts are the free fit
    and the likelihood's start point.

    Args:
        likelihood: the likelihood of the data set.
        poi: the tested parameter.
        start: start of the free fit (default: the likelihood's).
        fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.
        two_starts: ``True``, ``"auto"`` or ``False``.
        agree_tol: two starts disagree when their −lnL differ by more than this.
        on_failure: ``"raise"`` (ConvergenceError) or ``"flag"`` (see :attr:`converged`).
        free_fit: the free fit, when already known (e.g. :func:`asimov_free_fit`); not refitted.

    Attributes:
        n_fits: fits made; n_disagreements: conditional fits whose starts found minima differing by
            more than ``agree_tol``; n_probed_starts: extra starts fitted because a probe asked for
            them ("auto"); n_neighbour_refits: cached fits refitted from a neighbour's solution that
            was lower there; n_reused: conditional fits taken from the free fit (μ = μ̂).
    """

    def __init__(self, likelihood: Likelihood, poi: str, *, start: Mapping[str, float] | None = None,
                 fit_kwargs: Mapping[str, Any] | None = None, two_starts: bool | str = True, agree_tol: float = 1e-3,
                 on_failure: str = "raise", on_fit=None, free_fit: FitResult | None = None) -> None:
        self.likelihood, self.poi = likelihood, poi
        self.fit_kwargs = {k: v for k, v in (fit_kwargs or {}).items() if k not in ("hesse", "on_failure", "start", "fixed")}
        self.user_fixed = dict((fit_kwargs or {}).get("fixed") or {})
        self.two_starts = check_two_starts(two_starts, "ProfiledData")
        self.agree_tol, self.on_failure = float(agree_tol), on_failure
        self.on_fit = on_fit
        self.converged = True
        self.n_disagreements = 0
        self.disagreements: list[tuple[float, float, float]] = []  # (μ, kept −lnL, other −lnL)
        self.n_fits = 0
        self.n_probed_starts = 0
        self.n_neighbour_refits = 0
        self.n_reused = 0
        self._names = list(likelihood.names)
        self.free = free_fit if free_fit is not None else self._minimize(start=self._free_values(start) if start else None)
        self.mu_hat = float(self.free.values[poi])
        self._cache: dict[float, FitResult] = {}
        if self.free.converged is False:
            self.converged = False

    def _free_values(self, values: Mapping[str, float]) -> dict[str, float]:
        fixed = {**self.likelihood.fixed, **self.user_fixed}
        return {k: v for k, v in values.items() if k not in fixed and k in self.likelihood.parameters}

    def _minimize(self, *, start=None, fixed=None, check: bool = True) -> FitResult:
        fit = minimize(self.likelihood, start=start, fixed={**self.user_fixed, **(fixed or {})}, hesse=False,
                       on_failure="flag", **self.fit_kwargs)
        self.n_fits += 1
        if self.on_fit is not None:
            self.on_fit()
        if check:
            self._check(fit, fixed)
        return fit

    def _check(self, fit: FitResult, fixed) -> None:
        if not fit.converged:
            if self.on_failure == "raise":
                raise ConvergenceError(f"{self.poi} = {fixed.get(self.poi) if fixed else 'free'}: fit did not converge: {fit.message}")
            self.converged = False

    def _fit_at(self, mu: float, start: Mapping[str, float]) -> FitResult:
        # checked by the caller once every start has been tried: one failed start is not fatal
        return self._minimize(start={**start, self.poi: mu}, fixed={self.poi: mu}, check=False)

    def _vector(self, values: Mapping[str, float], mu: float) -> np.ndarray:
        x = np.array([values[n] for n in self._names], dtype=float)
        x[self._names.index(self.poi)] = mu
        return x

    def _probe(self, best: FitResult, mu: float, other: Mapping[str, float]) -> bool:
        """Whether −ln L on the segment (μ fixed) from ``best`` to the start ``other`` drops below
        ``best`` or decreases somewhere (then a fit from ``other`` may find a lower minimum)."""
        x0 = self._vector(best.values, mu)
        x1 = self._vector({**best.values, **other}, mu)
        if np.allclose(x0, x1, rtol=1e-9, atol=1e-12):
            return False
        noise = 1e-9 * max(1.0, abs(best.nll))
        previous = best.nll
        for s in PROBE_FRACTIONS:
            f = self.likelihood.nll_vector(x0 + s * (x1 - x0))
            if not math.isfinite(f):
                return True  # an undefined point between the starts: do not trust the segment
            if f < best.nll - noise or f < previous - noise:
                return True
            previous = f
        return False

    def conditional(self, mu: float) -> FitResult:
        """The fit at POI = ``mu`` (cached)."""
        mu = float(mu)
        if mu in self._cache:
            return self._cache[mu]
        if mu == self.mu_hat and self.free.converged:
            # the free fit is the conditional fit at its own μ̂ (e.g. μ̂ = 0 on the POI's bound)
            self.n_reused += 1
            self._cache[mu] = replace(self.free, fixed={**self.free.fixed, self.poi: mu},
                                      free=tuple(n for n in self.free.free if n != self.poi))
            return self._cache[mu]
        below = [m for m in self._cache if m < mu]
        above = [m for m in self._cache if m > mu]
        near = sorted(([max(below)] if below else []) + ([min(above)] if above else []), key=lambda m: abs(m - mu))
        free_start = self._free_values(self.free.values)
        starts: list[dict] = [self._free_values(self._cache[m].values) for m in near[:1]] or [free_start]
        # the second start: the free fit; for the first μ fitted (no neighbour yet), the likelihood's
        # own start point — from the free fit alone MIGRAD can settle in another basin (eRJR, μ = 3)
        second = free_start if near else self._free_values(self.likelihood.start_point())
        others = [second]
        if len(near) == 2:
            others.append(self._free_values(self._cache[near[1]].values))
        fits = [self._fit_at(mu, starts[0])]
        if self.two_starts is True:
            if not _same_start(second, starts[0], self.poi):
                starts.append(second)
                fits.append(self._fit_at(mu, second))  # unless it is the first start
        elif self.two_starts == "auto":
            others = [o for o in others if not _same_start(o, starts[0], self.poi)]
            for other in others:
                best = min([f for f in fits if f.converged] or fits, key=lambda f: f.nll)
                # the first μ is always fitted from both starts: every later fit is warm-started from
                # it, and a probe along one segment cannot see a basin behind a ridge
                if not near or not best.converged or self._probe(best, mu, other):
                    self.n_probed_starts += 1
                    starts.append(other)
                    fits.append(self._fit_at(mu, other))
        if not any(f.converged for f in fits) and not any(_same_start(free_start, st, self.poi) for st in starts):
            starts.append(free_start)
            fits.append(self._fit_at(mu, free_start))  # every start failed: the free fit's, once more
        ok = [f for f in fits if f.converged] or fits
        best = min(ok, key=lambda f: f.nll)
        self._check(best, {self.poi: mu})
        worst = max(ok, key=lambda f: f.nll)
        if len(fits) >= 2 and worst.nll - best.nll > self.agree_tol:
            self.n_disagreements += 1
            self.disagreements.append((mu, best.nll, worst.nll))
        self._cache[mu] = best
        if self.two_starts == "auto":
            self._check_neighbours(mu, best, near)
        return best

    def _check_neighbours(self, mu: float, fit: FitResult, near: Sequence[float]) -> None:
        """Refit each neighbouring cached μ where this fit's values give a lower −ln L than its minimum."""
        mine = self._free_values(fit.values)
        for m in near:
            old = self._cache[m]
            trial = self.likelihood.nll_vector(self._vector({**old.values, **mine}, m))
            if trial < old.nll - self.agree_tol:
                self.n_neighbour_refits += 1
                new = self._fit_at(m, mine)
                if new.converged and new.nll < old.nll:
                    self.n_disagreements += 1
                    self.disagreements.append((m, new.nll, old.nll))
                    self._cache[m] = new

    @property
    def fitted(self) -> dict[float, FitResult]:
        """The conditional fits so far, μ → fit."""
        return dict(self._cache)

    def reference_nll(self, test_stat: str) -> float:
        """−lnL of the denominator: the free fit, or (q̃ with μ̂ < 0) the fit at μ = 0."""
        if test_stat == "qtilde" and self.mu_hat < 0.0:
            return self.conditional(0.0).nll
        return self.free.nll

    def q(self, mu: float, test_stat: str = "qtilde") -> float:
        """q̃_μ or q_μ (0 when μ̂ > μ), clipped at 0."""
        if self.mu_hat > mu:
            return 0.0
        return max(2.0 * (self.conditional(mu).nll - self.reference_nll(test_stat)), 0.0)


def _same_start(a: Mapping[str, float], b: Mapping[str, float], poi: str) -> bool:
    """Two starts that differ at most in the POI (which the conditional fit fixes anyway)."""
    keys = (set(a) | set(b)) - {poi}
    return all(math.isclose(a.get(k, math.nan), b.get(k, math.nan), rel_tol=1e-12, abs_tol=1e-15) for k in keys)


def asimov_free_fit(asimov: Likelihood, generated_at: Mapping[str, float], *, fit_kwargs: Mapping[str, Any] | None = None,
                    rel_step: float = 1e-5, max_decrease: float = 1e-10) -> tuple[FitResult, bool]:
    """The free fit of an Asimov data set, without a fit where it is not needed.

    On Asimov data each term's data equal their expectation at the generating point θ_A, so every
    term (Poisson counts, Gaussian measurements and constraints) is at its own minimum there and θ_A
    is the global minimum of −ln L.  That is *checked*, not assumed: one- or central-difference first
    and second derivatives along every free parameter (2k + 1 evaluations, k free parameters) must
    show a positive curvature and a predicted decrease g²/(2H) below ``max_decrease`` in each
    direction (only an outward gradient allowed on a bound).  When the check fails (e.g. a learned
    term whose Asimov data are not exact) a fit started at θ_A is made.

    Returns:
        (fit, exact): the free fit, and whether it is θ_A itself (no fit made).
    """
    kwargs = {k: v for k, v in (fit_kwargs or {}).items() if k not in ("hesse", "on_failure", "start", "fixed")}
    user_fixed = dict((fit_kwargs or {}).get("fixed") or {})
    full = asimov.parameters.validate({**generated_at, **user_fixed})
    fixed = {**asimov.fixed, **user_fixed}
    names = list(asimov.names)
    x = np.array([full[n] for n in names], dtype=float)
    f0 = asimov.nll_vector(x)
    free = [n for n in names if n not in fixed]
    stationary = math.isfinite(f0)
    for n in free if stationary else ():
        i = names.index(n)
        low, high = asimov.parameters[n].bounds
        h = rel_step * max(1.0, abs(x[i]))
        up, down = x[i] + h <= high, x[i] - h >= low
        if up and down:
            fp = asimov.nll_vector(np.where(np.arange(len(x)) == i, x[i] + h, x))
            fm = asimov.nll_vector(np.where(np.arange(len(x)) == i, x[i] - h, x))
            g, curv = (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h**2
        elif up or down:  # on (or next to) a bound: one-sided, only inward descent counts
            sgn = 1.0 if up else -1.0
            f1 = asimov.nll_vector(np.where(np.arange(len(x)) == i, x[i] + sgn * h, x))
            f2 = asimov.nll_vector(np.where(np.arange(len(x)) == i, x[i] + 2 * sgn * h, x))
            g = sgn * (-3 * f0 + 4 * f1 - f2) / (2 * h)
            curv = (f0 - 2 * f1 + f2) / h**2
            if sgn * g >= 0:  # rising inwards: the bound holds the minimum in this direction
                continue
        else:
            stationary = False
            break
        if not (math.isfinite(g) and math.isfinite(curv) and curv > 0 and g * g / (2 * curv) <= max_decrease):
            stationary = False
            break
    if stationary:
        result = FitResult(values=dict(full), errors={n: math.nan for n in names}, covariance=None, free=tuple(free),
                           nll=float(f0), converged=True, message="", edm=0.0, n_calls=2 * len(free) + 1, n_starts=1,
                           n_agree=1, method="asimov-exact", fixed={n: full[n] for n in fixed})
        return result, True
    fit = minimize(asimov, start={n: full[n] for n in free}, fixed=user_fixed, hesse=False, on_failure="flag", **kwargs)
    return fit, False


def asimov_data(data: ProfiledData, *, fit_kwargs: Mapping[str, Any] | None = None, two_starts: bool | str = True,
                agree_tol: float = 1e-3, on_fit=None) -> ProfiledData:
    """The Asimov data set of the asymptotic calculator: generated at μ = 0 with the nuisances
    profiled on ``data`` (the conditional fit at 0), its free fit by :func:`asimov_free_fit`."""
    background = data.conditional(max(0.0, data.likelihood.parameters[data.poi].bounds[0]))
    lik = data.likelihood.asimov(background.values)
    free, exact = asimov_free_fit(lik, background.values, fit_kwargs=fit_kwargs)
    if not exact and on_fit is not None:
        on_fit()
    if not free.converged and data.on_failure == "raise":
        raise ConvergenceError(f"the free fit on the Asimov data did not converge: {free.message}")
    out = ProfiledData(lik, data.poi, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol,
                       on_failure=data.on_failure, on_fit=on_fit, free_fit=free)
    out.n_fits += 0 if exact else 1
    out.asimov_exact = exact
    return out


def _asymptotic_pvalues(q: float, q_a: float, test_stat: str) -> tuple[float, float, float]:
    """(CL_{s+b}, CL_b, CL_s) from q and q_A (pyhf's AsymptoticCalculator, base distribution "normal")."""
    sq, sq_a = math.sqrt(max(q, 0.0)), math.sqrt(max(q_a, 0.0))
    if test_stat == "qtilde" and sq > sq_a:
        t = (q - q_a) / (2.0 * sq_a)
    else:
        t = sq - sq_a
    clsb = float(stats.norm.cdf(-(t + sq_a)))
    clb = float(stats.norm.cdf(-t))
    return clsb, clb, (clsb / clb if clb > 0 else math.nan)


def _asymptotic_expected(q_a: float, n_sigma: float) -> float:
    """Expected CL_s at N σ: Φ(N − √q_A)/Φ(N)."""
    return float(stats.norm.cdf(n_sigma - math.sqrt(max(q_a, 0.0))) / stats.norm.cdf(n_sigma))


def _progress_default(progress: bool | None) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def _toy_q_chunk(likelihood: Likelihood, generate_at: Mapping[str, float], poi: str, mu: float, test_stat: str,
                 seed: int, hypothesis: int, indices: Sequence[int], fit_kwargs: Mapping[str, Any],
                 two_starts: bool) -> np.ndarray:
    """q(μ) on toys drawn at ``generate_at`` (a job for map_jobs): (len(indices),), NaN where a fit failed."""
    out = np.full(len(indices), np.nan)
    for i, index in enumerate(indices):
        toy = likelihood.toy(generate_at, toy_seed(seed, hypothesis, index))
        prof = ProfiledData(toy, poi, start=generate_at, fit_kwargs=fit_kwargs, two_starts=two_starts, on_failure="flag")
        q = prof.q(mu, test_stat)
        if prof.converged:
            out[i] = q
    return out


def hypotest(
    likelihood: Likelihood,
    poi_value: float | Sequence[float],
    *,
    poi: str | None = None,
    test_stat: str = "qtilde",
    calctype: str = "asymptotics",
    n_toys: int = 1000,
    seed: int = 0,
    return_expected: bool = True,
    two_starts: bool | str = True,
    agree_tol: float = 1e-3,
    n_workers: int = 1,
    executor=None,
    client=None,
    progress: bool | None = None,
    **fit_kwargs: Any,
) -> HypoTestResult | tuple[HypoTestResult, ...]:
    """CL_s (and CL_{s+b}, CL_b, the expected CL_s band) of the hypothesis POI = ``poi_value``.

    Args:
        likelihood: the likelihood of the observed data.  Asymptotics need ``asimov`` on every term,
            toys need ``toy``.
        poi_value: μ, or a sequence of μ (then a tuple of results; the fits are shared).
        poi: the tested parameter (default: the likelihood's only free POI).
        test_stat: ``"qtilde"`` (q̃_μ, the default, as pyhf's) or ``"q"`` (q_μ).
        calctype: ``"asymptotics"`` or ``"toybased"`` (see the module docstring).
        n_toys: toys per hypothesis (toybased).
        seed: seed of the toy streams (toybased).
        return_expected: also compute the expected CL_s band (−2…+2σ).
        two_starts: ``True``: start each conditional fit from the free fit and from the nearest μ
            fitted; ``"auto"``: from the nearest, the others only when a probe asks for them;
            ``False``: the nearest only (see the module docstring).
        agree_tol: two starts disagree when their −lnL differ by more than this.
        n_workers, executor, client: toys through :func:`~sbihep.parallel.map_jobs`.
        progress: a progress bar over the toys (default: when stderr is a terminal).
        **fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize` (e.g. ``tolerance``, ``fixed``).

    Returns:
        :class:`HypoTestResult` (or a tuple of them).

    Raises:
        InvalidInputError: a bad test statistic, calculator, ``n_toys`` or ``poi_value`` (outside the
            POI's bounds or below 0).
        UnknownParameterError: ``poi`` not in the likelihood.
        ConvergenceError: a fit on the observed or Asimov data does not converge.
    """
    poi = _check_poi(likelihood, poi, "hypotest")
    test_stat = _check_test_stat(test_stat, "hypotest")
    if calctype not in CALCTYPES:
        raise InvalidInputError(f"hypotest: calctype must be one of {CALCTYPES}, got {calctype!r}")
    scalar = np.ndim(poi_value) == 0
    values = [float(v) for v in np.atleast_1d(np.asarray(poi_value, dtype=float))]
    low, high = likelihood.parameters[poi].bounds
    for v in values:
        if not (math.isfinite(v) and low <= v <= high and v >= 0.0):
            raise InvalidInputError(f"hypotest: poi_value {v!r} must be ≥ 0 and within {poi}'s bounds [{low}, {high}]")
    if calctype == "toybased" and (int(n_toys) != n_toys or n_toys < 1):
        raise InvalidInputError(f"hypotest: n_toys must be a positive integer, got {n_toys!r}")
    two_starts = check_two_starts(two_starts, "hypotest")
    data = ProfiledData(likelihood, poi, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol)
    if calctype == "asymptotics":
        asimov = asimov_data(data, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol)
        results = []
        for mu in values:
            q, q_a = data.q(mu, test_stat), asimov.q(mu, test_stat)
            clsb, clb, cls = _asymptotic_pvalues(q, q_a, test_stat)
            expected = {n: _asymptotic_expected(q_a, n) for n in BAND} if return_expected else {}
            results.append(HypoTestResult(poi, mu, test_stat, calctype, cls, clsb, clb, expected, q, q_a, data.mu_hat,
                                          0, 0, data.n_disagreements + asimov.n_disagreements))
    else:
        results = [_toybased(likelihood, data, poi, mu, test_stat, int(n_toys), int(seed), return_expected, two_starts,
                             fit_kwargs, n_workers, executor, client, _progress_default(progress)) for mu in values]
    return results[0] if scalar else tuple(results)


def _toybased(likelihood, data: ProfiledData, poi, mu, test_stat, n_toys, seed, return_expected, two_starts,
              fit_kwargs, n_workers, executor, client, progress) -> HypoTestResult:
    q_obs = data.q(mu, test_stat)
    hypotheses = (data.conditional(mu).values, data.conditional(0.0).values)
    n_jobs = max(1, min(n_toys, 4 * max(int(n_workers), 1)))
    edges = np.linspace(0, n_toys, n_jobs + 1).astype(int)
    kwargs = {**fit_kwargs}
    jobs, owners = [], []
    for h, gen in enumerate(hypotheses):
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi > lo:
                # the hypothesis key includes μ so that different μ never share toys
                jobs.append((likelihood, gen, poi, mu, test_stat, seed, _hypothesis_key(h, mu), list(range(lo, hi)),
                             kwargs, two_starts))
                owners.append(h)
    parts = map_jobs(_toy_q_chunk, jobs, n_workers=n_workers, executor=executor, client=client, progress=progress,
                     desc=f"toys at {poi} = {mu:g}")
    q_sb = np.concatenate([p for p, h in zip(parts, owners) if h == 0])
    q_b = np.concatenate([p for p, h in zip(parts, owners) if h == 1])
    n_failed = int(np.isnan(q_sb).sum() + np.isnan(q_b).sum())
    q_sb, q_b = q_sb[np.isfinite(q_sb)], q_b[np.isfinite(q_b)]
    if q_sb.size == 0 or q_b.size == 0:
        raise ConvergenceError(f"hypotest: every toy fit failed at {poi} = {mu}")

    def pvalues(q):
        clsb = float(np.mean(q_sb >= q))
        clb = float(np.mean(q_b >= q))
        return clsb, clb, (clsb / clb if clb > 0 else math.nan)

    clsb, clb, cls = pvalues(q_obs)
    expected = {}
    if return_expected:
        # pyhf: CLs at every b toy's q, then the −2…+2σ percentiles of those CLs
        sorted_sb, sorted_b = np.sort(q_sb), np.sort(q_b)
        frac_sb = 1.0 - np.searchsorted(sorted_sb, q_b, side="left") / q_sb.size
        frac_b = 1.0 - np.searchsorted(sorted_b, q_b, side="left") / q_b.size
        cls_b = np.where(frac_b > 0, frac_sb / np.where(frac_b > 0, frac_b, 1.0), np.nan)
        band = np.nanpercentile(cls_b, BAND_PERCENTILES)
        expected = {n: float(v) for n, v in zip(BAND, band)}
    return HypoTestResult(poi, mu, test_stat, "toybased", cls, clsb, clb, expected, q_obs, math.nan, data.mu_hat,
                          n_toys, n_failed, data.n_disagreements)


def _hypothesis_key(h: int, mu: float) -> int:
    """An integer key of (hypothesis, μ) for the toy streams: μ's float64 bits, with the hypothesis."""
    return int(np.float64(mu).view(np.int64)) * 2 + h if mu >= 0 else h
