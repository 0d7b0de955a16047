"""Minimise −ln L: iminuit (MIGRAD, MINOS) by default, scipy as an option; every fit checked.

A fit goes through three stages:

1. **The optimiser**: MIGRAD (restarted once, then once with strategy 2, when it stops above the
   EDM limit) must report a valid minimum (EDM below 0.002·tol·errordef, no call limit reached); a
   scipy fit must report success *and* have an EDM below the same limit at its end point (which
   catches optimisers that stop at the start point while claiming success).  With several starts,
   the best minimum must be reached by at least ``min_agree`` starts.
2. **The external-coordinate stage** (:func:`_finish`): the Hessian of −ln L in the parameters
   themselves (not MINUIT's internal sine-transformed ones), by central differences of the analytic
   gradient (2k gradient calls), or of −ln L itself when there is no analytic gradient and at most
   :data:`FD_HESSIAN_MAX_FREE` free parameters.  With it

   - a box-constrained Newton *polish* moves the end point to the minimum to EDM ≲ 1e-12: MIGRAD's
     tolerance leaves ~1e-3 σ, and how far it stops depends on the bounds through the sine transform
     (SMEFiT's linear fixture fits were 2e-3 relative off with bounds (−1, 1)); one Newton step in
     the parameters is exact for a Gaussian likelihood and quadratically convergent otherwise;
   - parameters whose minimum lies **on a bound** (the Newton step would cross it) are put exactly
     on the bound and reported in :attr:`FitResult.at_bound`; their symmetric error is NaN (the
     uncertainty is one-sided: use :func:`~sbihep.fit.intervals.profile_interval` or MINOS), the
     covariance of the others is conditional on them, and the fit stays converged;
   - convergence requires a **positive-definite Hessian** in the remaining free directions: an
     eigen-direction of the scaled Hessian D·H·D (D = diag(H)^−½) with eigenvalue below 1e-4 of the
     largest is tested by a second difference of −ln L one scaled unit along it; a curvature below
     :data:`FLAT_RTOL` of the largest is a **flat direction** (named as a combination of the
     parameters in :attr:`FitResult.flat_directions`) and the fit is *not converged*; a negative one
     is not a minimum.

   Without an analytic gradient and with more free parameters (e.g. pyhf models) the stage uses
   2k function calls: diagonal second derivatives, which catch minima on a bound and parameters
   −ln L does not depend on; with ``hesse=True`` MINUIT's HESSE covariance is inverted for the
   flat-direction test.
3. **The global stage** (``global_search``): :func:`~sbihep.fit.basins.find_minima` from a spread
   Sobol design; the distinct minima within ``local_minima_threshold`` in −2ΔlnL are reported in
   :attr:`FitResult.local_minima`, and a lower minimum than the local fit's replaces it, which the
   result says (:attr:`FitResult.moved_to_global`, a note).  ``"auto"`` runs it only for a
   top-level fit: ``hesse=True``, no ``fixed`` parameters given, at most
   :data:`AUTO_GLOBAL_MAX_FREE` free parameters.  Inner loops (scan points, toys, CLs root finding)
   pass ``hesse=False`` and so never run it; pass ``global_search=False`` to be explicit.

A fit failing a check raises :class:`~sbihep.errors.ConvergenceError`, or comes back with
``converged=False`` and the reason when ``on_failure="flag"``; it never passes silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from sbihep._checks import check_counts
from sbihep.errors import ConvergenceError, InvalidInputError, OutOfBoundsError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood

__all__ = ["AUTO_GLOBAL_MAX_FREE", "FD_HESSIAN_MAX_FREE", "FLAT_RTOL", "LOCAL_MINIMA_THRESHOLD", "FitResult",
           "minimize"]

#: errordef of −ln L: a 1σ interval is where −ln L rises by 0.5.
ERRORDEF = 0.5
#: ``global_search="auto"`` runs the global stage for top-level fits with at most this many free parameters.
AUTO_GLOBAL_MAX_FREE = 8
#: without an analytic gradient, the full finite-difference Hessian (1 + k² calls) up to this many free parameters.
FD_HESSIAN_MAX_FREE = 12
#: a direction whose curvature (scaled Hessian) is below this fraction of the largest is flat.
FLAT_RTOL = 1e-6
#: default −2ΔlnL up to which local minima are reported: χ²₁⁻¹(0.9545) = 4.0 (the 2σ interval threshold).
LOCAL_MINIMA_THRESHOLD = 4.0
#: the Newton polish stops at this model decrease of −ln L (|Δθ| ≈ 1.4e-6 σ).
POLISH_EDM = 1e-12


@dataclass
class FitResult:
    """The outcome of :func:`minimize`.

    Attributes:
        values: best-fit θ by name (fixed parameters included).
        errors: symmetric (HESSE) errors by name; 0 for fixed; NaN when not computed and for a
            parameter whose minimum is on a bound (see ``at_bound``).
        covariance: (k, k) covariance of the k free parameters in ``free`` order (None without HESSE);
            rows/columns of parameters at a bound are NaN, the rest is conditional on them.
        free: names of the free parameters.
        nll: −ln L at the minimum.
        converged: whether every check passed.
        message: the reason when not converged (empty otherwise).
        edm: estimated distance to minimum (units of −ln L), after the Newton polish.
        n_calls: function evaluations of the best start (optimiser only).
        n_starts: starts tried; n_agree: starts that reached the best −ln L within ``agree_tol``.
        method: ``"minuit"`` or ``"scipy:<method>"``.
        fixed: fixed parameters and their values.
        minos: name → (lower, upper) MINOS errors (signed: lower < 0 < upper).
        start_nlls: −ln L reached from each start.
        at_bound: free parameters whose minimum lies on one of their bounds (value exactly the bound).
        flat_directions: descriptions ("0.707·a − 0.707·b") of directions along which −ln L is flat
            at the minimum; non-empty means ``converged=False``.
        local_minima: from the global stage: the distinct minima with −2ΔlnL below the threshold,
            lowest (this result's) first; empty when the stage did not run.
        moved_to_global: the global stage found a lower minimum than the local fit, and this result
            is that minimum.
        notes: remarks on a converged fit (minimum on a bound, global stage moved, ...).
    """

    values: dict[str, float]
    errors: dict[str, float]
    covariance: np.ndarray | None
    free: tuple[str, ...]
    nll: float
    converged: bool
    message: str
    edm: float
    n_calls: int
    n_starts: int
    n_agree: int
    method: str
    fixed: dict[str, float] = field(default_factory=dict)
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    start_nlls: tuple[float, ...] = ()
    at_bound: tuple[str, ...] = ()
    flat_directions: tuple[str, ...] = ()
    local_minima: tuple["FitResult", ...] = ()
    moved_to_global: bool = False
    notes: tuple[str, ...] = ()

    def to_dataset(self):
        """The result as an ``xarray.Dataset`` over dim ``parameter`` (covariance over ``parameter``,
        ``parameter_2``; free parameters only), with the scalars as attributes."""
        import xarray as xr

        names = list(self.values)
        ds = xr.Dataset(
            {
                "value": ("parameter", [self.values[n] for n in names]),
                "error": ("parameter", [self.errors.get(n, math.nan) for n in names]),
                "fixed": ("parameter", [n in self.fixed for n in names]),
                "at_bound": ("parameter", [n in self.at_bound for n in names]),
            },
            coords={"parameter": names},
        )
        if self.covariance is not None:
            ds["covariance"] = xr.DataArray(
                self.covariance,
                dims=("parameter_free", "parameter_free_2"),
                coords={"parameter_free": list(self.free), "parameter_free_2": list(self.free)},
            )
        ds.attrs.update(
            nll=self.nll, converged=int(self.converged), message=self.message, edm=self.edm,
            n_calls=self.n_calls, n_starts=self.n_starts, n_agree=self.n_agree, method=self.method,
            flat_directions="; ".join(self.flat_directions), n_local_minima=len(self.local_minima),
            moved_to_global=int(self.moved_to_global), notes="; ".join(self.notes),
        )
        return ds


@dataclass
class _Attempt:
    x: np.ndarray
    nll: float
    ok: bool
    message: str
    edm: float
    n_calls: int
    covariance: np.ndarray | None
    minos: dict
    scale: np.ndarray | None = None  # the optimiser's own error estimates (step sizes of the Hessian)


@dataclass
class _Finished:
    x: np.ndarray
    nll: float
    problems: list
    edm: float
    covariance: np.ndarray | None
    at_bound: tuple
    flat: tuple


def minimize(
    likelihood: Likelihood,
    *,
    start: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
    method: Literal["minuit", "scipy"] = "minuit",
    scipy_method: str = "L-BFGS-B",
    n_starts: int = 1,
    seed: int | np.random.Generator | None = 0,
    min_agree: int | None = None,
    agree_tol: float = 1e-3,
    tolerance: float = 0.1,
    strategy: int = 1,
    max_calls: int | None = None,
    hesse: bool = True,
    minos: Sequence[str] = (),
    on_failure: Literal["raise", "flag"] = "raise",
    global_search: bool | Literal["auto"] = "auto",
    local_minima_threshold: float = LOCAL_MINIMA_THRESHOLD,
    polish: bool | Literal["auto"] = "auto",
) -> FitResult:
    """Find the minimum of −ln L over the free parameters (see the module docstring for the checks).

    Args:
        likelihood: the likelihood.
        start: starting values by name (others: :meth:`Likelihood.start_point`).
        fixed: parameters held fixed, name → value, in addition to ``likelihood.fixed``.
        method: ``"minuit"`` (MIGRAD, MINOS) or ``"scipy"``.
        scipy_method: the ``scipy.optimize.minimize`` method (bounded ones: L-BFGS-B, SLSQP, TNC,
            trust-constr, Powell).
        n_starts: number of starts: the given one, then random ones drawn within the bounds.
        seed: seed or Generator of the random starts (and of the global stage's Sobol design).
        min_agree: starts that must reach the best minimum (default: 2 if n_starts ≥ 2, else 1).
        agree_tol: two minima agree when their −ln L differ by less than this.
        tolerance: MINUIT tolerance; the EDM limit is 0.002 · tolerance · 0.5.
        strategy: MINUIT strategy (0, 1, 2).
        max_calls: limit on function calls per start (default: MINUIT's own).
        hesse: compute the covariance (from the external-coordinate Hessian; MINUIT's HESSE for
            models without analytic gradient and more than :data:`FD_HESSIAN_MAX_FREE` free parameters).
        minos: names for MINOS errors (minuit only).
        on_failure: ``"raise"`` a ConvergenceError, or ``"flag"`` the result as not converged.
        global_search: run the global stage (:func:`~sbihep.fit.basins.find_minima`): True, False, or
            ``"auto"`` = only when ``hesse`` is True, no ``fixed`` is given and at most
            :data:`AUTO_GLOBAL_MAX_FREE` parameters are free.  Callers in inner loops pass False.
        local_minima_threshold: −2ΔlnL below which the global stage's minima are reported
            (default 4.0 = χ²₁⁻¹(0.9545)).
        polish: run the Newton polish in external coordinates (the Hessian checks run regardless);
            ``"auto"`` = when ``hesse`` is True (a best fit whose values are reported; inner-loop fits
            with ``hesse=False`` keep MIGRAD's precision, EDM < 0.002·tol·0.5, and save its cost).

    Raises:
        UnknownParameterError / OutOfBoundsError: a start or fixed value with an unknown name or out
            of bounds.
        InvalidInputError: bad options, or nothing left free.
        ConvergenceError: the fit failed a check and ``on_failure="raise"``.
    """
    if not isinstance(likelihood, Likelihood):
        raise InvalidInputError(f"minimize: likelihood must be a Likelihood, got {type(likelihood).__name__}")
    if method not in ("minuit", "scipy"):
        raise InvalidInputError(f"minimize: method must be 'minuit' or 'scipy', got {method!r}")
    if on_failure not in ("raise", "flag"):
        raise InvalidInputError(f"minimize: on_failure must be 'raise' or 'flag', got {on_failure!r}")
    if int(n_starts) != n_starts or n_starts < 1:
        raise InvalidInputError(f"minimize: n_starts must be a positive integer, got {n_starts!r}")
    if polish not in (True, False, "auto"):
        raise InvalidInputError(f"minimize: polish must be True, False or 'auto', got {polish!r}")
    polish = hesse if polish == "auto" else polish
    if global_search not in (True, False, "auto"):
        raise InvalidInputError(f"minimize: global_search must be True, False or 'auto', got {global_search!r}")
    if not (isinstance(local_minima_threshold, (int, float)) and local_minima_threshold > 0):
        raise InvalidInputError(f"minimize: local_minima_threshold must be a positive number, got {local_minima_threshold!r}")
    space = likelihood.parameters
    all_fixed = dict(likelihood.fixed)
    all_fixed.update(_checked(space, fixed, "fixed"))
    x0_named = likelihood.start_point()
    x0_named.update(_checked(space, start, "start"))
    x0_named.update(all_fixed)
    names = space.names
    free = tuple(n for n in names if n not in all_fixed)
    if not free:  # nothing to minimise: the "fit" is the evaluation at the fixed point
        value = likelihood.nll(x0_named)
        return FitResult(values=dict(x0_named), errors={n: 0.0 for n in names}, covariance=None, free=(),
                         nll=value, converged=True, message="", edm=0.0, n_calls=1, n_starts=1, n_agree=1,
                         method="none (all parameters fixed)", fixed=all_fixed, start_nlls=(value,))
    unknown_minos = [n for n in minos if n not in free]
    if unknown_minos:
        raise UnknownParameterError(f"minimize: minos names {unknown_minos} are not free parameters {list(free)}")
    if minos and method != "minuit":
        raise InvalidInputError("minimize: minos needs method='minuit'")
    if min_agree is None:
        min_agree = 2 if n_starts >= 2 else 1
    if not 1 <= min_agree <= n_starts:
        raise InvalidInputError(f"minimize: min_agree must lie in [1, n_starts={n_starts}], got {min_agree}")

    bounds = np.array([space[n].bounds for n in free], dtype=float)
    free_idx = np.array([names.index(n) for n in free])
    base = np.array([x0_named[n] for n in names], dtype=float)
    if not isinstance(seed, np.random.Generator) and seed is not None:
        check_counts(("minimize: seed", seed, 0))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    starts = [base[free_idx]] + [_random_start(base[free_idx], bounds, rng) for _ in range(n_starts - 1)]

    def full(x_free: np.ndarray) -> np.ndarray:
        x = base.copy()
        x[free_idx] = x_free
        return x

    fun = lambda x: likelihood.nll_vector(full(x))  # noqa: E731
    grad = lambda x: likelihood.grad_vector(full(x), wrt=free)[free_idx]  # noqa: E731
    analytic = grad if likelihood.has_analytic_grad else None
    # where the external Hessian comes from: gradient differences, function differences, or MINUIT's HESSE
    hessian_grad = grad if method == "scipy" else analytic
    full_hessian = hessian_grad is not None or len(free) <= FD_HESSIAN_MAX_FREE
    edm_max = 0.002 * tolerance * ERRORDEF
    attempts = []
    for x_start in starts:
        if method == "minuit":
            attempts.append(
                _run_minuit(fun, analytic, x_start, bounds, free, tolerance, strategy, max_calls,
                            hesse and not full_hessian, minos)
            )
        else:
            attempts.append(_run_scipy(fun, grad, x_start, bounds, scipy_method, max_calls))

    nlls = np.array([a.nll if math.isfinite(a.nll) else math.inf for a in attempts])
    best_i = int(np.argmin(nlls))
    best = attempts[best_i]
    n_agree = int(np.sum(np.abs(nlls - nlls[best_i]) < agree_tol))
    problems = [best.message] if best.message else []
    if best.ok and n_agree < min_agree:
        problems.append(f"only {n_agree} of {n_starts} starts reached the best minimum −lnL = {best.nll:.6g} "
                        f"(need {min_agree}); −lnL per start: {np.round(nlls, 4).tolist()}")
    x_best, nll_best, edm_best, covariance = best.x, float(best.nll), float(best.edm), best.covariance
    at_bound: tuple = ()
    flat: tuple = ()
    notes: list = []
    if math.isfinite(best.nll) and np.all(np.isfinite(best.x)):
        done = _finish(fun, hessian_grad, best, bounds, free, full_hessian, hesse, polish and best.ok,
                       edm_max if method == "scipy" else None)
        x_best, nll_best, covariance, at_bound, flat = done.x, done.nll, done.covariance, done.at_bound, done.flat
        edm_best = done.edm if math.isfinite(done.edm) else edm_best
        problems.extend(done.problems)
    converged = not problems
    values = dict(zip(names, full(x_best).tolist()))
    errors = {n: (0.0 if n in all_fixed else math.nan) for n in names}
    if covariance is not None:
        for k, n in enumerate(free):
            c = covariance[k, k]
            errors[n] = float(math.sqrt(c)) if math.isfinite(c) and c >= 0 else math.nan
    for n in at_bound:
        errors[n] = math.nan
    if at_bound:
        where = ", ".join(f"{n} = {values[n]:.6g}" for n in at_bound)
        notes.append(f"minimum on a bound: {where}; the error there is NaN (one-sided: use profile_interval or MINOS)")
    message = "; ".join(problems)
    result = FitResult(
        values=values, errors=errors, covariance=covariance, free=free, nll=float(nll_best),
        converged=converged, message="" if converged else message, edm=float(edm_best),
        n_calls=best.n_calls, n_starts=n_starts, n_agree=n_agree,
        method="minuit" if method == "minuit" else f"scipy:{scipy_method}", fixed=all_fixed,
        minos=best.minos, start_nlls=tuple(float(v) for v in nlls), at_bound=at_bound, flat_directions=flat,
        notes=tuple(notes),
    )
    run_global = global_search is True or (
        global_search == "auto" and hesse and not fixed and len(free) <= AUTO_GLOBAL_MAX_FREE
    )
    if run_global:
        result = _global_stage(likelihood, result, fixed, seed, agree_tol, local_minima_threshold,
                               dict(method=method, scipy_method=scipy_method, tolerance=tolerance,
                                    strategy=strategy, max_calls=max_calls, polish=polish))
        if minos and result.moved_to_global:  # MINOS errors of the local fit do not belong to the new minimum
            result.minos = minimize(likelihood, start={n: result.values[n] for n in free}, fixed=fixed,
                                    method=method, tolerance=tolerance, strategy=strategy, minos=minos,
                                    on_failure="flag", global_search=False).minos
    if not result.converged and on_failure == "raise":
        raise ConvergenceError(f"minimize ({result.method}): fit did not converge: {result.message}")
    return result


def _global_stage(likelihood, local: FitResult, fixed, seed, agree_tol, threshold, fit_kwargs) -> FitResult:
    """Explore the other basins from ``local``; return the global minimum with ``local_minima`` set."""
    from dataclasses import replace

    from sbihep.fit.basins import explore_minima

    sobol_seed = seed if isinstance(seed, (int, np.integer)) else 0
    try:
        minima = explore_minima(likelihood, local, fixed=fixed, seed=int(sobol_seed), agree_tol=agree_tol, **fit_kwargs)
    except ConvergenceError:
        return local
    best = minima[0]
    kept = tuple(m for m in minima if 2.0 * (m.nll - best.nll) < threshold)
    if local.converged and best.nll >= local.nll - agree_tol:
        # the local fit is (within agree_tol) the global minimum: keep it, with the others beside it
        others = tuple(m for m in kept if not _same_point(m, local))
        return replace(local, local_minima=(local, *others))
    if local.converged:
        moved = (f"global search: a lower minimum (−lnL {best.nll:.8g}) than the local fit's ({local.nll:.8g}, at "
                 f"{_describe_point(local)}) was found and is returned")
    else:
        moved = (f"global search: the local fit did not converge ({local.message}); the lowest converged minimum "
                 f"from the spread starts is returned")
    return replace(best, local_minima=kept, moved_to_global=True, notes=(*best.notes, moved),
                   n_starts=local.n_starts, n_agree=local.n_agree, start_nlls=local.start_nlls)


def _same_point(a: FitResult, b: FitResult) -> bool:
    for n in a.free:
        sigma = a.errors.get(n, math.nan)
        tol = 0.05 * sigma if math.isfinite(sigma) and sigma > 0 else 1e-6 * max(1.0, abs(a.values[n]))
        if abs(a.values[n] - b.values[n]) > tol:
            return False
    return True


def _describe_point(fit: FitResult) -> str:
    return ", ".join(f"{n} = {fit.values[n]:.6g}" for n in fit.free[:8]) + (" ..." if len(fit.free) > 8 else "")


def _checked(space, values: Mapping[str, float] | None, argument: str) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"minimize: {argument} must be a mapping name → value, got {type(values).__name__}")
    out = {}
    for name, value in values.items():
        if name not in space:
            raise UnknownParameterError(f"minimize: {argument} names unknown parameter {name!r}; known: {list(space.names)}")
        try:
            out[name] = space[name].check(value)
        except OutOfBoundsError as exc:
            raise OutOfBoundsError(f"minimize: {argument}: {exc}") from None
    return out


def _random_start(x0: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform within finite bounds; x0 ± N(0, max(1, |x0|)) (clipped) where a bound is infinite."""
    low, high = bounds[:, 0], bounds[:, 1]
    finite = np.isfinite(low) & np.isfinite(high)
    x = x0 + rng.normal(size=x0.shape) * np.maximum(1.0, np.abs(x0))
    x[finite] = rng.uniform(low[finite], high[finite])
    return np.clip(x, low, high)


def _inside(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Move a start sitting exactly on a finite bound slightly inside: MINUIT's bound transformation
    has zero derivative there and can stall."""
    low, high = bounds[:, 0], bounds[:, 1]
    width = np.where(np.isfinite(high - low), high - low, 1.0)
    x = x.copy()
    x = np.where(x <= low, low + 1e-3 * width, x)
    return np.where(x >= high, high - 1e-3 * width, x)


def _run_minuit(fun, grad, x0, bounds, free, tolerance, strategy, max_calls, hesse, minos) -> _Attempt:
    """MIGRAD (with reruns); with an analytic gradient that fails, once more with MINUIT's own numerical one.

    MINUIT seeds its first step from the second derivatives it estimates; with a user gradient on a
    steep likelihood (~10⁵ events) and steps far wider than the errors that first Newton step can leave
    the parameter space (NaN parameters). The numerical-gradient path adapts its steps and recovers.
    """
    attempt = _minuit_once(fun, grad, x0, bounds, free, tolerance, strategy, max_calls, hesse, minos)
    if grad is not None and not attempt.ok:
        fallback = _minuit_once(fun, None, x0, bounds, free, tolerance, strategy, max_calls, hesse, minos)
        if fallback.ok or not math.isfinite(attempt.nll) or fallback.nll < attempt.nll:
            return fallback
    return attempt


def _minuit_once(fun, grad, x0, bounds, free, tolerance, strategy, max_calls, hesse, minos) -> _Attempt:
    from iminuit import Minuit

    def safe_fun(x):  # NaN parameters (a diverged step) make an invalid point, not an exception
        return fun(x) if np.all(np.isfinite(x)) else math.nan

    def safe_grad(x):
        return grad(x) if np.all(np.isfinite(x)) else np.full(len(x), math.nan)

    m = Minuit(safe_fun, _inside(x0, bounds), grad=None if grad is None else safe_grad, name=list(free))
    m.errordef = Minuit.LIKELIHOOD
    m.limits = [tuple(b) for b in bounds]
    m.tol = tolerance
    m.strategy = strategy
    m.print_level = 0
    m.migrad(ncall=max_calls)
    # MIGRAD often stops with a too large EDM on many-parameter likelihoods with flat directions;
    # restarting it from where it stopped (then with strategy 2) is the standard remedy.
    for retry_strategy in (strategy, 2):
        if m.fmin.is_valid or m.fmin.has_reached_call_limit:
            break
        m.strategy = retry_strategy
        m.migrad(ncall=max_calls)
    fmin = m.fmin
    reasons = []
    if fmin.has_reached_call_limit:
        reasons.append(f"call limit reached after {fmin.nfcn} calls")
    if fmin.is_above_max_edm:
        reasons.append(f"EDM {fmin.edm:.3g} above {0.002 * tolerance * ERRORDEF:.3g}")
    if not fmin.is_valid and not reasons:
        reasons.append("MIGRAD reports an invalid minimum")
    scale = np.array(m.errors, dtype=float)
    covariance, merrors = None, {}
    if hesse and fmin.is_valid:
        m.hesse()
        if not m.accurate:
            reasons.append("HESSE covariance not accurate (not positive definite or forced)")
        covariance = np.array(m.covariance, dtype=float)
    if minos and m.valid:
        m.minos(*minos)
        for name in minos:
            me = m.merrors[name]
            if not me.is_valid:
                reasons.append(f"MINOS failed for {name}")
            merrors[name] = (float(me.lower), float(me.upper))
    return _Attempt(np.array(m.values, dtype=float), float(m.fval), not reasons, "; ".join(reasons),
                    float(m.fmin.edm), int(m.nfcn), covariance, merrors, scale)


def _run_scipy(fun, grad, x0, bounds, scipy_method, max_calls) -> _Attempt:
    """scipy.optimize.minimize; its EDM test is done by :func:`_finish` (external Hessian)."""
    import scipy.optimize

    calls = [0]

    def counted(x):
        calls[0] += 1
        return fun(x)

    opts = {"maxiter": max_calls} if max_calls else {}
    sp_bounds = [(None if not math.isfinite(lo) else lo, None if not math.isfinite(hi) else hi) for lo, hi in bounds]
    res = scipy.optimize.minimize(counted, x0, jac=grad, bounds=sp_bounds, method=scipy_method, options=opts)
    x = np.clip(np.asarray(res.x, dtype=float), bounds[:, 0], bounds[:, 1])
    reasons = [] if res.success else [f"scipy {scipy_method}: {res.message}"]
    if not res.success:
        reasons[-1] += f" after {getattr(res, 'nit', '?')} iterations"
    return _Attempt(x, float(fun(x)), not reasons, "; ".join(reasons), math.nan, calls[0], None, {})


# --- the external-coordinate stage ------------------------------------------------------------------


def _widths(bounds: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(bounds[:, 1] - bounds[:, 0]), bounds[:, 1] - bounds[:, 0], np.inf)


def _steps(x: np.ndarray, scale: np.ndarray, bounds: np.ndarray, rel: float) -> np.ndarray:
    """Finite-difference steps rel·σ, σ the scale estimate, kept within a quarter of the bound width."""
    mag = np.maximum(np.abs(x), 1.0)
    s = np.where(np.isfinite(scale) & (scale > 0), scale, 1e-2 * mag)
    h = np.clip(rel * s, 1e-9 * mag, 1e-2 * mag)
    return np.minimum(h, 0.25 * _widths(bounds))


def _rescaled_steps(x, h, diag, bounds, rel):
    """Steps rel·H_ii^−½ where the current ones are more than 10× off that (100× larger where
    H_ii ≤ 0, which a too small step's rounding noise can give); None when all are fine."""
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(diag > 0, rel / np.sqrt(np.abs(diag)), 100.0 * h)
    off = (h > 10.0 * target) | (h < 0.1 * target)
    if not off.any():
        return None
    mag = np.maximum(np.abs(x), 1.0)
    new = np.where(off, np.minimum(np.minimum(target, 1e-2 * mag), 0.25 * _widths(bounds)), h)
    return None if np.allclose(new, h) else new


def _hessian(fun, grad, x: np.ndarray, h: np.ndarray, bounds: np.ndarray):
    """(H, g or None) at x: central differences of ``grad`` (2k calls) or of ``fun`` (1 + k² calls).

    The stencil is centred at x moved inside the bounds by h (so that no point leaves them); the
    Hessian there differs from the one at x by O(h · third derivative).  With ``fun`` alone the
    gradient at x is returned too (from the same stencil, carried back to x with H).
    """
    k = x.shape[0]
    c = np.clip(x, bounds[:, 0] + h, bounds[:, 1] - h)
    H = np.empty((k, k))
    if grad is not None:
        for i in range(k):
            up, down = c.copy(), c.copy()
            up[i] += h[i]
            down[i] -= h[i]
            H[:, i] = (grad(up) - grad(down)) / (2.0 * h[i])
        return 0.5 * (H + H.T), None
    f0 = fun(c)
    fp, fm = np.empty(k), np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        fp[i], fm[i] = fun(c + e), fun(c - e)
        H[i, i] = (fp[i] - 2.0 * f0 + fm[i]) / h[i] ** 2
    for i in range(k):
        for j in range(i):
            e = np.zeros(k)
            e[i], e[j] = h[i], h[j]
            H[i, j] = H[j, i] = (fun(c + e) + fun(c - e) - fp[i] - fm[i] - fp[j] - fm[j] + 2.0 * f0) / (2.0 * h[i] * h[j])
    g = (fp - fm) / (2.0 * h) + H @ (x - c)
    return H, g


def _fd_gradient(fun, x: np.ndarray, h: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Central-difference gradient (2k calls); at a bound the second-order one-sided formula
    (−3f(x) + 4f(x ± h) − f(x ± 2h)) / ±2h (a first-order one would be off by H_ii·h/2)."""
    g = np.empty(x.shape[0])
    f0 = None
    for i in range(x.shape[0]):
        e = np.zeros(x.shape[0])
        e[i] = h[i]
        if x[i] - h[i] >= bounds[i, 0] and x[i] + h[i] <= bounds[i, 1]:
            g[i] = (fun(x + e) - fun(x - e)) / (2.0 * h[i])
            continue
        side = 1.0 if x[i] + 2.0 * h[i] <= bounds[i, 1] else -1.0
        f0 = fun(x) if f0 is None else f0
        g[i] = side * (-3.0 * f0 + 4.0 * fun(x + side * e) - fun(x + 2.0 * side * e)) / (2.0 * h[i])
    return g


def _box_newton(x: np.ndarray, g: np.ndarray, H: np.ndarray, bounds: np.ndarray):
    """The Newton step d minimising gᵀd + ½dᵀHd within the bounds (active set), and the active
    mask (−1 lower bound, +1 upper, 0 free); None when H is not positive definite on the free set."""
    k = x.shape[0]
    low, high = bounds[:, 0], bounds[:, 1]
    active = np.zeros(k, dtype=int)
    d = np.zeros(k)
    for _ in range(2 * k + 4):
        free = active == 0
        d = np.where(active < 0, low - x, np.where(active > 0, high - x, 0.0))
        if free.any():
            rhs = -(g[free] + H[np.ix_(free, ~free)] @ d[~free])
            try:
                chol = np.linalg.cholesky(H[np.ix_(free, free)])
            except np.linalg.LinAlgError:
                return None
            d[free] = np.linalg.solve(chol.T, np.linalg.solve(chol, rhs))
        new = x + d
        crossing = free & ((new < low) | (new > high))
        if crossing.any():
            # add the free parameter that leaves its box first along d
            frac = np.where(new < low, (low - x) / np.where(d != 0, d, 1.0), (high - x) / np.where(d != 0, d, 1.0))
            frac = np.where(crossing, frac, np.inf)
            i = int(np.argmin(frac))
            active[i] = -1 if new[i] < low[i] else 1
            continue
        r = g + H @ d  # model gradient at x + d: at a lower bound it must point up (r ≥ 0), at an upper down
        wrong = ((active < 0) & (r < 0)) | ((active > 0) & (r > 0))
        if wrong.any():
            i = int(np.argmax(np.where(wrong, np.abs(r), -np.inf)))
            active[i] = 0
            continue
        return d, active
    return d, active


def _finish(fun, grad, attempt: _Attempt, bounds, free, full_hessian: bool, hesse: bool, polish: bool,
            edm_check: float | None) -> _Finished:
    """Hessian in external coordinates, at-bound parameters, Newton polish, positive-definiteness."""
    x = attempt.x.copy()
    f = float(attempt.nll)
    problems: list = []
    k = x.shape[0]
    scale = attempt.scale if attempt.scale is not None else np.full(k, math.nan)
    if not full_hessian:
        return _finish_diagonal(fun, attempt, bounds, free, hesse)
    rel = 1e-3 if grad is not None else 1e-2
    h = _steps(x, scale, bounds, rel)
    H, g_fd = _hessian(fun, grad, x, h, bounds)
    if np.all(np.isfinite(H)):  # steps far from the curvature scale (MINUIT's errors shrink near a bound): redo once
        h_new = _rescaled_steps(x, h, np.diag(H), bounds, rel)
        if h_new is not None:
            h = h_new
            H, g_fd = _hessian(fun, grad, x, h, bounds)
    if not np.all(np.isfinite(H)) and grad is not None:  # an unusable analytic gradient: do without it
        grad, rel = None, 1e-2
        if k > FD_HESSIAN_MAX_FREE:
            return _finish_diagonal(fun, attempt, bounds, free, hesse)
        h = _steps(x, scale, bounds, rel)
        H, g_fd = _hessian(fun, None, x, h, bounds)
    if not np.all(np.isfinite(H)):
        return _Finished(x, f, ["the Hessian in the parameters is not finite at the minimum"], math.nan,
                         None, (), ())

    def gradient(at, first=False):
        if grad is not None:
            return np.asarray(grad(at), dtype=float)
        return g_fd if first else _fd_gradient(fun, at, h, bounds)

    g = gradient(x, first=True)
    step = _box_newton(x, g, H, bounds) if np.all(np.isfinite(g)) else None
    edm = math.nan
    active = np.zeros(k, dtype=int)
    if step is not None:
        d, active = step
        edm = max(-(g @ d + 0.5 * d @ H @ d), 0.0)
        if edm_check is not None and edm > edm_check:
            problems.append(f"EDM {edm:.3g} above {edm_check:.3g} at the optimiser's end point")
            polish = False
        for _ in range(4 if polish else 0):
            if edm < POLISH_EDM:
                break
            t, moved = 1.0, False
            for _ in range(6):
                trial = np.clip(x + t * d, bounds[:, 0], bounds[:, 1])
                if t == 1.0:
                    trial = np.where(active < 0, bounds[:, 0], np.where(active > 0, bounds[:, 1], trial))
                f_trial = float(fun(trial))
                if math.isfinite(f_trial) and f_trial <= f + 1e-15 * max(1.0, abs(f)):
                    x, f, moved = trial, f_trial, True
                    break
                t *= 0.5
            if not moved:
                break
            g = gradient(x)
            step = _box_newton(x, g, H, bounds) if np.all(np.isfinite(g)) else None
            if step is None:
                break
            d, active = step
            edm = max(-(g @ d + 0.5 * d @ H @ d), 0.0)
        # a parameter is on its bound when the constrained Newton solution keeps it there: put it exactly
        # there.  It counts as at_bound (one-sided, error NaN) when the bound holds it back: the model
        # gradient there, r_i = (g + H d)_i, times σ_i = H_ii^−½ exceeds 1e-4 (the unconstrained minimum
        # lies beyond the bound by more than ~1e-4 σ); otherwise it is treated as interior.
        r = g + H @ d
        on_bound = active != 0
        snapped = np.where(active < 0, bounds[:, 0], np.where(active > 0, bounds[:, 1], x))
        if on_bound.any() and np.any(snapped != x):
            f_snap = float(fun(snapped))
            if math.isfinite(f_snap) and f_snap <= f + 1e-9 * max(1.0, abs(f)):
                x, f = snapped, min(f, f_snap)
            else:
                on_bound = np.zeros(k, dtype=bool)
    else:
        if edm_check is not None:
            problems.append("EDM undefined at the optimiser's end point: the Hessian there is not positive definite")
        r = g
        on_bound = _on_bound_by_gradient(x, g, bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(np.diag(H) > 0, 1.0 / np.sqrt(np.abs(np.diag(H))), np.inf)
    with np.errstate(invalid="ignore"):
        on_bound = on_bound & (np.abs(r) * sigma > 1e-4)
    inner = ~on_bound
    flat, bad = _flat_directions(fun, x, f, H, inner, bounds, free)
    if flat:
        problems.append("flat direction(s) of −ln L at the minimum (the data do not determine them): " + "; ".join(flat))
    problems.extend(bad)
    covariance = None
    if hesse and not flat and not bad:
        covariance = np.full((k, k), math.nan)
        if inner.any():
            covariance[np.ix_(inner, inner)] = np.linalg.inv(H[np.ix_(inner, inner)])
    at_bound = tuple(n for n, b in zip(free, on_bound) if b)
    return _Finished(x, f, problems, edm, covariance, at_bound, tuple(flat))


def _on_bound_by_gradient(x, g, bounds) -> np.ndarray:
    width = np.where(np.isfinite(_widths(bounds)), _widths(bounds), 1.0)
    near_low = (x - bounds[:, 0] <= 1e-8 * width) & (g > 0)
    near_high = (bounds[:, 1] - x <= 1e-8 * width) & (g < 0)
    return near_low | near_high


def _finish_diagonal(fun, attempt: _Attempt, bounds, free, hesse: bool) -> _Finished:
    """The cheap stage for many parameters without gradient: 2k calls for g_i and H_ii (one-sided
    within the bounds); parameters within 1e-2 σ_i of a bound with the gradient pointing out are
    put on the bound; H_ii ≤ 0 is a parameter −ln L does not depend on.  With MINUIT's HESSE
    covariance, its inverse gets the flat-direction test."""
    x = attempt.x.copy()
    f = float(attempt.nll)
    k = x.shape[0]
    scale = attempt.scale if attempt.scale is not None else np.full(k, math.nan)
    # steps of 0.1 σ: −ln L of large models (pyhf) carries rounding noise up to ~1e-5, and these
    # second derivatives serve the diagnostics only (the covariance is HESSE's)
    h = _steps(x, scale, bounds, 0.1)
    for _ in range(3):  # larger steps where MINUIT's errors (squeezed near a bound) made them far too small
        c = np.clip(x, bounds[:, 0] + h, bounds[:, 1] - h)
        f0 = float(fun(c))
        g, hdiag = np.empty(k), np.empty(k)
        for i in range(k):
            up, down = c.copy(), c.copy()
            up[i] += h[i]
            down[i] -= h[i]
            fp, fm = float(fun(up)), float(fun(down))
            hdiag[i] = (fp - 2.0 * f0 + fm) / h[i] ** 2
            g[i] = (fp - fm) / (2.0 * h[i]) + hdiag[i] * (x[i] - c[i])
        h_new = _rescaled_steps(x, h, hdiag, bounds, 0.1) if np.all(np.isfinite(hdiag)) else None
        if h_new is None or not np.any(h_new > h):
            break
        h = np.maximum(h, h_new)
    problems = []
    no_curve = [n for n, v in zip(free, hdiag) if not v > 0]
    if no_curve:
        problems.append(f"−ln L does not curve upwards along {no_curve} at the minimum (flat or a maximum)")
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(hdiag > 0, 1.0 / np.sqrt(np.abs(hdiag)), np.inf)
        held = np.abs(g) * sigma > 1e-4  # the bound holds the parameter back (as in _finish)
    low_side = (x - bounds[:, 0] <= 1e-2 * sigma) & (g > 0) & held
    high_side = (bounds[:, 1] - x <= 1e-2 * sigma) & (g < 0) & held
    on_bound = low_side | high_side
    if on_bound.any():
        trial = np.where(low_side, bounds[:, 0], np.where(high_side, bounds[:, 1], x))
        f_trial = float(fun(trial))
        if math.isfinite(f_trial) and f_trial <= f + 1e-9 * max(1.0, abs(f)):
            x, f = trial, min(f, f_trial)
        else:
            on_bound = np.zeros(k, dtype=bool)
    covariance = attempt.covariance
    flat: list = []
    if covariance is not None:
        inner = ~on_bound
        covariance = covariance.copy()
        covariance[on_bound, :] = math.nan
        covariance[:, on_bound] = math.nan
        if inner.any():
            try:
                H = np.full((k, k), math.nan)
                H[np.ix_(inner, inner)] = np.linalg.inv(attempt.covariance[np.ix_(inner, inner)])
                flat, bad = _flat_directions(fun, x, f, H, inner, bounds, free)
                problems.extend(bad)
            except np.linalg.LinAlgError:
                problems.append("HESSE covariance is singular")
        if flat:
            problems.append("flat direction(s) of −ln L at the minimum (the data do not determine them): " + "; ".join(flat))
    at_bound = tuple(n for n, b in zip(free, on_bound) if b)
    return _Finished(x, f, problems, math.nan, covariance, at_bound, tuple(flat))


def _flat_directions(fun, x, f, H, inner, bounds, free):
    """(flat direction descriptions, other problems) of H on the ``inner`` parameters.

    Scaled Hessian R = D H D with D = diag(H)^−½; every eigen-direction with eigenvalue below 1e-4
    of the largest is checked by the second difference of −ln L one scaled unit along it (shrunk to
    stay within the bounds): |curvature| ≤ FLAT_RTOL · λ_max is flat, negative is not a minimum.
    """
    idx = np.flatnonzero(inner)
    if idx.size == 0:
        return [], []
    Hi = H[np.ix_(idx, idx)]
    diag = np.diag(Hi)
    names = [free[i] for i in idx]
    if not np.all(diag > 0):
        bad = [n for n, v in zip(names, diag) if not v > 0]
        return [f"{n} (no curvature)" for n in bad], []
    D = 1.0 / np.sqrt(diag)
    R = D[:, None] * Hi * D[None, :]
    lam, vec = np.linalg.eigh(R)
    lam_max = float(lam[-1])
    flat, bad = [], []
    for j in np.flatnonzero(lam < 1e-4 * lam_max):
        v = np.zeros(x.shape[0])
        v[idx] = D * vec[:, j]  # one scaled unit along the eigen-direction, in the parameters
        curvature, t = _curvature_along(fun, x, f, v, bounds)
        noise = 64.0 * np.finfo(float).eps * max(1.0, abs(f)) / t ** 2
        if abs(curvature) <= max(FLAT_RTOL * lam_max, noise):
            flat.append(_combination(names, D * vec[:, j]) + f" (curvature {curvature:.2g} vs largest {lam_max:.3g})")
        elif curvature < 0:
            bad.append(f"not a minimum: −ln L curves downwards along {_combination(names, D * vec[:, j])}")
        elif lam[j] <= 0:
            bad.append(f"the Hessian in the parameters is not positive definite along {_combination(names, D * vec[:, j])}")
    return flat, bad


def _curvature_along(fun, x, f, v, bounds):
    """(second derivative of fun along v, step t): central with t ≤ 1 when x ± t·v fits within the
    bounds, else one-sided (x, x + t·v, x + 2t·v) on the side that fits."""
    def inside(p):
        return bool(np.all(p >= bounds[:, 0]) and np.all(p <= bounds[:, 1]))

    t = 1.0
    for _ in range(30):
        if inside(x + t * v) and inside(x - t * v):
            return (float(fun(x + t * v)) - 2.0 * f + float(fun(x - t * v))) / t ** 2, t
        for s in (1.0, -1.0):
            if inside(x + 2 * s * t * v):
                return (f - 2.0 * float(fun(x + s * t * v)) + float(fun(x + 2 * s * t * v))) / t ** 2, t
        t *= 0.5
    return math.nan, t


def _combination(names, v) -> str:
    """'0.707·a − 0.707·b': the unit vector v in the parameters, terms ≥ 1% of the largest."""
    v = np.asarray(v, dtype=float)
    v = v / np.linalg.norm(v)
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    order = np.argsort(-np.abs(v))
    parts = []
    for i in order:
        if abs(v[i]) < 0.01 * np.max(np.abs(v)):
            break
        sign = "−" if v[i] < 0 else "+"
        parts.append((sign, f"{abs(v[i]):.3g}·{names[i]}"))
        if len(parts) == 8:
            break
    text = parts[0][1] if parts[0][0] == "+" else "−" + parts[0][1]
    return text + "".join(f" {s} {p}" for s, p in parts[1:])
