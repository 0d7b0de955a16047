"""Bayesian posteriors by MCMC (emcee's affine-invariant ensemble sampler).

    ln p(θ | data) = −nll(θ) + Σ_i ln π_i(θ_i) + const

over the free parameters.  Priors π_i: uniform within the parameter's bounds unless given; a
parameter with a Gaussian constraint already carries it in the likelihood (its
:class:`~sbihep.fit.constraint.ConstraintTerm`), which then acts as its prior — it is not added
twice.  An unconstrained parameter with an infinite bound needs an explicit prior.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.fit.intervals import ONE_SIGMA, Interval
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import minimize

__all__ = ["sample_posterior", "credible_interval", "normal_prior"]


def normal_prior(mean: float, sigma: float) -> Callable[[float], float]:
    """ln N(x | mean, sigma) as a prior callable."""
    if not sigma > 0:
        raise InvalidInputError(f"normal_prior: sigma must be > 0, got {sigma!r}")
    norm = math.log(sigma * math.sqrt(2 * math.pi))
    return lambda x: -0.5 * ((x - mean) / sigma) ** 2 - norm


class _LogPosterior:
    def __init__(self, likelihood: Likelihood, free: list[str], base: dict, priors: dict) -> None:
        self.likelihood, self.free, self.base, self.priors = likelihood, free, base, priors
        self.bounds = np.array([likelihood.parameters[n].bounds for n in free])

    def __call__(self, x: np.ndarray) -> float:
        if np.any(x < self.bounds[:, 0]) or np.any(x > self.bounds[:, 1]):
            return -math.inf
        theta = {**self.base, **dict(zip(self.free, x.tolist()))}
        try:
            value = -self.likelihood.nll(theta)
        except InvalidInputError:  # e.g. negative weights far out: zero density there
            return -math.inf
        for name, prior in self.priors.items():
            value += prior(theta[name])
        return value if math.isfinite(value) else -math.inf


def sample_posterior(
    likelihood: Likelihood,
    *,
    priors: Mapping[str, Callable[[float], float]] | None = None,
    fixed: Mapping[str, float] | None = None,
    n_walkers: int | None = None,
    n_steps: int = 2000,
    n_burn: int = 500,
    thin: int = 1,
    seed: int = 0,
    progress: bool = False,
):
    """Sample the posterior of the free parameters.

    Args:
        likelihood: the likelihood.
        priors: name → ln π(value) callables (e.g. :func:`normal_prior`); default uniform in bounds.
        fixed: parameters held fixed (besides ``likelihood.fixed``).
        n_walkers: ensemble size (default max(4·k, 16), k free parameters).
        n_steps, n_burn, thin: steps per walker, of which the first ``n_burn`` are dropped.
        seed: seed of the starting ball and of the sampler.

    Returns:
        ``xarray.Dataset``: ``samples`` (``draw``, ``parameter``), ``log_posterior`` (``draw``),
        per parameter ``mean``, ``std``, ``median`` and ``quantiles`` (``parameter``, ``quantile``
        at 2.275, 15.87, 50, 84.13, 97.725%), ``autocorr_steps``; attrs ``acceptance_fraction``,
        ``n_walkers``, ``n_steps``, ``n_burn``, ``autocorr_reliable`` (0 when the chain is shorter
        than 50 autocorrelation times: treat the errors on summaries with care).

    Raises:
        InvalidInputError: an unconstrained parameter with an infinite bound and no prior, or
            ``n_burn`` ≥ ``n_steps``.
        UnknownParameterError: a prior for an unknown parameter.
    """
    import emcee
    import xarray as xr

    priors = dict(priors or {})
    unknown = [n for n in priors if n not in likelihood.parameters]
    if unknown:
        raise UnknownParameterError(f"sample_posterior: priors for unknown parameters {unknown}")
    if not 0 <= n_burn < n_steps:
        raise InvalidInputError(f"sample_posterior: need 0 ≤ n_burn < n_steps, got {n_burn}, {n_steps}")
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    free = [n for n in likelihood.names if n not in all_fixed]
    for name in free:
        p = likelihood.parameters[name]
        if name not in priors and p.constraint is None and not all(map(math.isfinite, p.bounds)):
            raise InvalidInputError(f"sample_posterior: parameter {name!r} has infinite bounds {p.bounds}: give it a prior")
    best = minimize(likelihood, fixed=fixed)
    base = dict(best.values)
    k = len(free)
    n_walkers = n_walkers or max(4 * k, 16)
    rng = np.random.default_rng(seed)
    center = np.array([best.values[n] for n in free])
    scale = np.array([best.errors[n] if math.isfinite(best.errors[n]) and best.errors[n] > 0 else 1e-3 for n in free])
    bounds = np.array([likelihood.parameters[n].bounds for n in free])
    start = np.clip(center + 0.1 * scale * rng.standard_normal((n_walkers, k)), bounds[:, 0], bounds[:, 1])
    log_post = _LogPosterior(likelihood, free, base, priors)
    sampler = emcee.EnsembleSampler(n_walkers, k, log_post)
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(start, n_steps, progress=progress)
    chain = sampler.get_chain(discard=n_burn, thin=thin, flat=True)
    logp = sampler.get_log_prob(discard=n_burn, thin=thin, flat=True)
    tau = sampler.get_autocorr_time(discard=n_burn, quiet=True, tol=0)
    reliable = bool(np.all((n_steps - n_burn) > 50 * tau))
    qs = [0.02275, 0.15866, 0.5, 0.84134, 0.97725]
    return xr.Dataset(
        {
            "samples": (("draw", "parameter"), chain),
            "log_posterior": (("draw",), logp),
            "mean": (("parameter",), chain.mean(axis=0)),
            "std": (("parameter",), chain.std(axis=0)),
            "median": (("parameter",), np.median(chain, axis=0)),
            "quantiles": (("parameter", "quantile"), np.quantile(chain, qs, axis=0).T),
            "autocorr_steps": (("parameter",), tau),
        },
        coords={"parameter": free, "quantile": qs},
        attrs={"acceptance_fraction": float(np.mean(sampler.acceptance_fraction)), "n_walkers": n_walkers,
               "n_steps": n_steps, "n_burn": n_burn, "autocorr_reliable": int(reliable), "seed": seed},
    )


def credible_interval(posterior, parameter: str, cl: float = ONE_SIGMA) -> Interval:
    """Central credible interval (equal tails) of one parameter from :func:`sample_posterior`."""
    if parameter not in posterior["parameter"].values:
        raise UnknownParameterError(f"credible_interval: {parameter!r} was not sampled; sampled: {posterior['parameter'].values.tolist()}")
    if not 0 < cl < 1:
        raise InvalidInputError(f"credible_interval: cl must lie in (0, 1), got {cl!r}")
    x = posterior["samples"].sel(parameter=parameter).values
    low, high = np.quantile(x, [(1 - cl) / 2, (1 + cl) / 2])
    return Interval(parameter, float(np.median(x)), float(low), float(high), cl, method="bayes-central")
