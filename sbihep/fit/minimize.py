"""Minimise −ln L: iminuit (MIGRAD, HESSE, MINOS) by default, scipy as an option.

Every fit is checked: a MINUIT fit (MIGRAD restarted once, then once with strategy 2, when it
stops above the EDM limit) must be valid (EDM below 0.002·tol·errordef, no call limit
reached, a positive-definite covariance when HESSE runs); a scipy fit must report success *and*
pass the same EDM test computed from a finite-difference Hessian at the end point, which catches
optimisers that stop at the start point while claiming success.  With several starts, the best
minimum must be reached by at least ``min_agree`` starts.  A fit failing a check raises
:class:`~sbihep.errors.ConvergenceError`, or comes back with ``converged=False`` and the reason
when ``on_failure="flag"``; it never passes silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from sbihep.errors import ConvergenceError, InvalidInputError, OutOfBoundsError, UnknownParameterError
from sbihep.fit.likelihood import Likelihood

__all__ = ["FitResult", "minimize"]

#: errordef of −ln L: a 1σ interval is where −ln L rises by 0.5.
ERRORDEF = 0.5


@dataclass
class FitResult:
    """The outcome of :func:`minimize`.

    Attributes:
        values: best-fit θ by name (fixed parameters included).
        errors: symmetric (HESSE) errors by name; 0 for fixed, NaN when not computed.
        covariance: (k, k) covariance of the k free parameters in ``free`` order (None without HESSE).
        free: names of the free parameters.
        nll: −ln L at the minimum.
        converged: whether every check passed.
        message: the reason when not converged (empty otherwise).
        edm: estimated distance to minimum (units of −ln L).
        n_calls: function evaluations of the best start.
        n_starts: starts tried; n_agree: starts that reached the best −ln L within ``agree_tol``.
        method: ``"minuit"`` or ``"scipy:<method>"``.
        fixed: fixed parameters and their values.
        minos: name → (lower, upper) MINOS errors (signed: lower < 0 < upper).
        start_nlls: −ln L reached from each start.
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
) -> FitResult:
    """Find the minimum of −ln L over the free parameters.

    Args:
        likelihood: the likelihood.
        start: starting values by name (others: :meth:`Likelihood.start_point`).
        fixed: parameters held fixed, name → value, in addition to ``likelihood.fixed``.
        method: ``"minuit"`` (MIGRAD then HESSE/MINOS) or ``"scipy"``.
        scipy_method: the ``scipy.optimize.minimize`` method (bounded ones: L-BFGS-B, SLSQP, TNC,
            trust-constr, Powell).
        n_starts: number of starts: the given one, then random ones drawn within the bounds.
        seed: seed or Generator of the random starts.
        min_agree: starts that must reach the best minimum (default: 2 if n_starts ≥ 2, else 1).
        agree_tol: two minima agree when their −ln L differ by less than this.
        tolerance: MINUIT tolerance; the EDM limit is 0.002 · tolerance · 0.5.
        strategy: MINUIT strategy (0, 1, 2).
        max_calls: limit on function calls per start (default: MINUIT's own).
        hesse: compute the covariance (HESSE / finite-difference Hessian for scipy).
        minos: names for MINOS errors (minuit only).
        on_failure: ``"raise"`` a ConvergenceError, or ``"flag"`` the result as not converged.

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
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    starts = [base[free_idx]] + [_random_start(base[free_idx], bounds, rng) for _ in range(n_starts - 1)]

    def full(x_free: np.ndarray) -> np.ndarray:
        x = base.copy()
        x[free_idx] = x_free
        return x

    fun = lambda x: likelihood.nll_vector(full(x))  # noqa: E731
    grad = lambda x: likelihood.grad_vector(full(x), wrt=free)[free_idx]  # noqa: E731
    edm_max = 0.002 * tolerance * ERRORDEF
    attempts = []
    for x_start in starts:
        if method == "minuit":
            attempts.append(
                _run_minuit(fun, grad if likelihood.has_analytic_grad else None, x_start, bounds, free,
                            tolerance, strategy, max_calls, hesse, minos)
            )
        else:
            attempts.append(_run_scipy(fun, grad, x_start, bounds, scipy_method, max_calls, hesse, edm_max))

    nlls = np.array([a.nll if math.isfinite(a.nll) else math.inf for a in attempts])
    best_i = int(np.argmin(nlls))
    best = attempts[best_i]
    n_agree = int(np.sum(np.abs(nlls - nlls[best_i]) < agree_tol))
    message = best.message
    if best.ok and n_agree < min_agree:
        message = (f"only {n_agree} of {n_starts} starts reached the best minimum −lnL = {best.nll:.6g} "
                   f"(need {min_agree}); −lnL per start: {np.round(nlls, 4).tolist()}")
    converged = best.ok and n_agree >= min_agree
    values = dict(zip(names, full(best.x).tolist()))
    errors = {n: (0.0 if n in all_fixed else math.nan) for n in names}
    if best.covariance is not None:
        for k, n in enumerate(free):
            errors[n] = float(math.sqrt(best.covariance[k, k])) if best.covariance[k, k] >= 0 else math.nan
    result = FitResult(
        values=values, errors=errors, covariance=best.covariance, free=free, nll=float(best.nll),
        converged=converged, message="" if converged else message, edm=float(best.edm),
        n_calls=best.n_calls, n_starts=n_starts, n_agree=n_agree,
        method="minuit" if method == "minuit" else f"scipy:{scipy_method}", fixed=all_fixed,
        minos=best.minos, start_nlls=tuple(float(v) for v in nlls),
    )
    if not converged and on_failure == "raise":
        raise ConvergenceError(f"minimize ({result.method}): fit did not converge: {message}")
    return result


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
                    float(m.fmin.edm), int(m.nfcn), covariance, merrors)


def _run_scipy(fun, grad, x0, bounds, scipy_method, max_calls, hesse, edm_max) -> _Attempt:
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
    # EDM test on the parameters not sitting at a bound
    g = grad(x)
    h = _fd_hessian(grad, x, bounds)
    width = np.where(np.isfinite(bounds[:, 1] - bounds[:, 0]), bounds[:, 1] - bounds[:, 0], 1.0)
    at_bound = ((x - bounds[:, 0] < 1e-8 * width) & (g > 0)) | ((bounds[:, 1] - x < 1e-8 * width) & (g < 0))
    inner = ~at_bound
    edm = math.inf
    covariance = None
    try:
        h_in = h[np.ix_(inner, inner)]
        np.linalg.cholesky(h_in)
        edm = 0.5 * float(g[inner] @ np.linalg.solve(h_in, g[inner]))
        if hesse:
            covariance = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        reasons.append("Hessian at the end point is not positive definite")
    if edm > edm_max:
        reasons.append(f"EDM {edm:.3g} above {edm_max:.3g} after {getattr(res, 'nit', '?')} iterations")
    return _Attempt(x, float(fun(x)), not reasons, "; ".join(reasons), edm, calls[0], covariance, {})


def _fd_hessian(grad, x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Symmetrised finite-difference Hessian from the gradient, (k, k); one-sided at a bound."""
    k = x.shape[0]
    h = np.empty((k, k))
    for i in range(k):
        step = 1e-4 * max(abs(x[i]), 1.0)
        up, down = x.copy(), x.copy()
        up[i] = min(x[i] + step, bounds[i, 1])
        down[i] = max(x[i] - step, bounds[i, 0])
        h[:, i] = (grad(up) - grad(down)) / (up[i] - down[i])
    return 0.5 * (h + h.T)
