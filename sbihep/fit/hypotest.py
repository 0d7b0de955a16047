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

Every conditional (fixed-μ) fit is started twice — from the free fit and from the nearest μ already
fitted on the same data set — and the lower minimum is kept (``two_starts=True``), so a fit that
lands in a local minimum from one start does not pass unnoticed; the number of points where the two
starts disagreed by more than ``agree_tol`` is reported.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from sbihep.errors import ConvergenceError, InvalidInputError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult, minimize
from sbihep.fit.statistic import toy_seed
from sbihep.parallel import map_jobs

__all__ = ["HypoTestResult", "hypotest", "ProfiledData", "TEST_STATS", "CALCTYPES"]

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


class ProfiledData:
    """One data set's free fit and its conditional (fixed-POI) fits, cached by μ.

    Each conditional fit starts from the free fit and from the nearest μ fitted before (two starts,
    the lower minimum kept) unless ``two_starts=False`` (then only the nearest).

    Args:
        likelihood: the likelihood of the data set.
        poi: the tested parameter.
        start: start of the free fit (default: the likelihood's).
        fit_kwargs: passed to :func:`~sbihep.fit.minimize.minimize`.
        two_starts: see above.
        agree_tol: two starts disagree when their −lnL differ by more than this.
        on_failure: ``"raise"`` (ConvergenceError) or ``"flag"`` (see :attr:`converged`).
    """

    def __init__(self, likelihood: Likelihood, poi: str, *, start: Mapping[str, float] | None = None,
                 fit_kwargs: Mapping[str, Any] | None = None, two_starts: bool = True, agree_tol: float = 1e-3,
                 on_failure: str = "raise", on_fit=None) -> None:
        self.likelihood, self.poi = likelihood, poi
        self.fit_kwargs = {k: v for k, v in (fit_kwargs or {}).items() if k not in ("hesse", "on_failure", "start", "fixed")}
        self.user_fixed = dict((fit_kwargs or {}).get("fixed") or {})
        self.two_starts, self.agree_tol, self.on_failure = bool(two_starts), float(agree_tol), on_failure
        self.on_fit = on_fit
        self.converged = True
        self.n_disagreements = 0
        self.disagreements: list[tuple[float, float, float]] = []  # (μ, kept −lnL, other −lnL)
        self.n_fits = 0
        self.free = self._minimize(start=self._free_values(start) if start else None)
        self.mu_hat = float(self.free.values[poi])
        self._cache: dict[float, FitResult] = {}
        if self.free.converged is False:
            self.converged = False

    def _free_values(self, values: Mapping[str, float]) -> dict[str, float]:
        fixed = {**self.likelihood.fixed, **self.user_fixed}
        return {k: v for k, v in values.items() if k not in fixed and k in self.likelihood.parameters}

    def _minimize(self, *, start=None, fixed=None) -> FitResult:
        fit = minimize(self.likelihood, start=start, fixed={**self.user_fixed, **(fixed or {})}, hesse=False,
                       on_failure="flag", **self.fit_kwargs)
        self.n_fits += 1
        if self.on_fit is not None:
            self.on_fit()
        if not fit.converged:
            if self.on_failure == "raise":
                raise ConvergenceError(f"{self.poi} = {fixed.get(self.poi) if fixed else 'free'}: fit did not converge: {fit.message}")
            self.converged = False
        return fit

    def conditional(self, mu: float) -> FitResult:
        """The fit at POI = ``mu`` (cached)."""
        mu = float(mu)
        if mu in self._cache:
            return self._cache[mu]
        starts = []
        if self._cache:
            nearest = min(self._cache, key=lambda m: abs(m - mu))
            starts.append(self._free_values(self._cache[nearest].values))
        if self.two_starts or not starts:
            starts.append(self._free_values(self.free.values))
        fits = [self._minimize(start={**s, self.poi: mu}, fixed={self.poi: mu}) for s in starts]
        ok = [f for f in fits if f.converged] or fits
        best = min(ok, key=lambda f: f.nll)
        if len(fits) == 2 and abs(fits[0].nll - fits[1].nll) > self.agree_tol:
            self.n_disagreements += 1
            other = max(fits, key=lambda f: f.nll)
            self.disagreements.append((mu, best.nll, other.nll))
        self._cache[mu] = best
        return best

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
    two_starts: bool = True,
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
        two_starts: start each conditional fit from the free fit and from the nearest μ fitted.
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
    data = ProfiledData(likelihood, poi, fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol)
    if calctype == "asymptotics":
        background = data.conditional(0.0)
        asimov = ProfiledData(likelihood.asimov(background.values), poi, start=background.values,
                              fit_kwargs=fit_kwargs, two_starts=two_starts, agree_tol=agree_tol)
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
