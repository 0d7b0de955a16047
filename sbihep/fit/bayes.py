"""Bayesian posteriors that see every mode: emcee ensembles started in every basin, or nested sampling.

    ln p(θ | data) = −nll(θ) + Σ_i ln π_i(θ_i) + const

over the free parameters.  Priors π_i: uniform within the parameter's bounds unless given; a
parameter with a Gaussian constraint already carries it in the likelihood (its
:class:`~sbihep.fit.constraint.ConstraintTerm`), which then acts as its prior — it is not added
twice.  An unconstrained parameter with an infinite bound needs an explicit prior.

Which sampler (``sample_posterior(method=...)``):

- ``"emcee"`` (default): the basins of −ln L are found first (:func:`~sbihep.fit.basins.find_minima`),
  and for *each* basin ``n_chains`` independently started emcee ensembles sample it.  emcee's
  affine-invariant stretch move cannot carry walkers between well-separated modes (a proposal lies on
  the line through two walkers, scaled by 1/2…2; between modes it lands in the valley and is
  rejected), so the share of walkers in a mode says nothing about its mass.  The mode masses are
  therefore the basins' *evidences* Z_b = ∫_basin p̃(θ) dθ, each estimated from its own chains by the
  Gelfand–Dey estimator with a truncated-normal reference (Geweke 1999), and the draws are resampled
  to equal weights in proportion to them.  Convergence inside each basin is checked with the
  rank-normalised split-R̂ of Vehtari et al. (2021) across its independently started ensembles
  (each ensemble one sequence: its walkers' draws in step order).  Precise when
  every basin is found and is roughly elliptical; it relies on ``find_minima`` to see every basin.
- ``"nested"``: static nested sampling with dynesty's multi-ellipsoid bound
  (:mod:`sbihep.fit.nested`): finds modes by itself, from the prior, and returns ln Z with its error.
  Use it for the evidence, to cross-check a multimodal emcee result, or when you do not trust the
  basin search (many parameters, basins far apart, curved/banana-shaped basins).  Its mode masses
  carry a statistical error of about √(m(1−m)/n_live) (±0.022 for two equal modes at n_live = 500),
  reported as ``basin_mass_error``.

Both return the same ``xarray.Dataset`` (equal-weight draws; see :func:`sample_posterior`).
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Literal, Mapping, Sequence

import numpy as np

from sbihep.errors import InvalidInputError, PosteriorWarning, UnknownParameterError
from sbihep.fit.intervals import ONE_SIGMA, Interval
from sbihep.fit.likelihood import Likelihood
from sbihep.fit.minimize import FitResult

__all__ = ["RHAT_THRESHOLD", "sample_posterior", "credible_interval", "normal_prior", "split_rhat"]

#: split-R̂ above which chains are said to disagree (Vehtari et al. 2021 recommend 1.01).
RHAT_THRESHOLD = 1.01
#: fraction of a basin's draws that may end up nearer another basin before the basins count as connected.
ESCAPE_FRACTION = 0.05
#: standard error of a basin's mass (between chains) above which the chains are said to disagree.
MASS_ERROR_MAX = 0.01
QUANTILES = (0.02275, 0.15866, 0.5, 0.84134, 0.97725)


def normal_prior(mean: float, sigma: float) -> Callable[[float], float]:
    """ln N(x | mean, sigma) as a prior callable."""
    if not sigma > 0:
        raise InvalidInputError(f"normal_prior: sigma must be > 0, got {sigma!r}")
    norm = math.log(sigma * math.sqrt(2 * math.pi))
    return lambda x: -0.5 * ((x - mean) / sigma) ** 2 - norm


class _LogPosterior:
    """ln p̃(x) = −nll + Σ ln π_i for free parameters x (shape (k,)); −inf outside the bounds."""

    def __init__(self, likelihood: Likelihood, free: list[str], base: dict, priors: dict) -> None:
        self.likelihood, self.free, self.priors = likelihood, free, priors
        self.bounds = np.array([likelihood.parameters[n].bounds for n in free], dtype=float)
        names = likelihood.names
        self._full = np.array([float(base[n]) for n in names])
        self._index = np.array([names.index(n) for n in free], dtype=int)
        self._prior_index = [(free.index(n), p) for n, p in priors.items() if n in free]

    def __call__(self, x: np.ndarray) -> float:
        if np.any(x < self.bounds[:, 0]) or np.any(x > self.bounds[:, 1]):
            return -math.inf
        full = self._full.copy()
        full[self._index] = x
        try:
            value = -self.likelihood.nll_vector(full)
        except InvalidInputError:  # e.g. negative weights far out: zero density there
            return -math.inf
        for i, prior in self._prior_index:
            value += prior(float(x[i]))
        return value if math.isfinite(value) else -math.inf


def _prepare(likelihood: Likelihood, priors, fixed, where: str):
    priors = dict(priors or {})
    unknown = [n for n in priors if n not in likelihood.parameters]
    if unknown:
        raise UnknownParameterError(f"{where}: priors for unknown parameters {unknown}")
    all_fixed = {**likelihood.fixed, **(fixed or {})}
    free = [n for n in likelihood.names if n not in all_fixed]
    for name in free:
        p = likelihood.parameters[name]
        if name not in priors and p.constraint is None and not all(map(math.isfinite, p.bounds)):
            raise InvalidInputError(f"{where}: parameter {name!r} has infinite bounds {p.bounds}: give it a prior")
    return free, priors


def _get_basins(likelihood: Likelihood, fixed, basins, seed: int) -> list[FitResult]:
    from sbihep.fit.basins import find_minima
    from sbihep.fit.minimize import minimize

    if basins is None or basins is True:
        return find_minima(likelihood, fixed=fixed, seed=seed)
    if basins is False:
        return [minimize(likelihood, fixed=fixed)]
    basins = list(basins)
    if not basins or not all(isinstance(b, FitResult) for b in basins):
        raise InvalidInputError("sample_posterior: basins must be None/True/False or a non-empty list of FitResults")
    return basins


def _basin_covariance(likelihood: Likelihood, fit: FitResult, free: list[str]) -> np.ndarray:
    """(k, k) covariance of a basin in ``free`` order: HESSE where positive definite, else a diagonal.

    A coordinate whose minimum sits on a bound has no meaningful HESSE error there (the likelihood
    may keep rising through the bound); its variance is raised to (10% of the bound width)² so that
    the starting ball and the basin classification are not squeezed onto the bound.
    """
    k = len(free)
    cov = None
    if fit.covariance is not None and tuple(fit.free) == tuple(free):
        c = np.asarray(fit.covariance, dtype=float).reshape(k, k)
        if np.all(np.isfinite(c)) and np.all(np.linalg.eigvalsh(0.5 * (c + c.T)) > 0):
            cov = 0.5 * (c + c.T)
    if cov is None:
        diag = []
        for n in free:
            e = fit.errors.get(n, math.nan)
            low, high = likelihood.parameters[n].bounds
            if not (math.isfinite(e) and e > 0):
                e = 1e-2 * (high - low) if math.isfinite(high - low) else 1e-3
            diag.append(e * e)
        cov = np.diag(diag)
    for i, n in enumerate(free):
        low, high = likelihood.parameters[n].bounds
        width = high - low
        x = fit.values[n]
        if math.isfinite(width) and min(abs(x - low), abs(high - x)) < 1e-6 * width:
            floor = (0.1 * width) ** 2
            if cov[i, i] < floor:
                scale = math.sqrt(floor / cov[i, i])
                cov[i, :] *= scale
                cov[:, i] *= scale
    return cov


def _empirical_covariances(draws: list[np.ndarray], fallback: np.ndarray) -> np.ndarray:
    """Per basin, the covariance of its draws where it is usable (finite, positive definite), else the
    fallback (HESSE): the classification of draws to basins then follows the basins' real shapes."""
    out = fallback.copy()
    for b, x in enumerate(draws):
        if x is None or x.shape[0] < 10 * (x.shape[1] + 1):
            continue
        c = np.atleast_2d(np.cov(x, rowvar=False))
        if np.all(np.isfinite(c)) and np.all(np.linalg.eigvalsh(c) > 0):
            out[b] = c
    return out


def _classify(x: np.ndarray, centers: np.ndarray, inv_covs: np.ndarray) -> np.ndarray:
    """Index of the nearest basin (Mahalanobis distance in each basin's own covariance), shape (n,)."""
    d = x[:, None, :] - centers[None, :, :]
    d2 = np.einsum("nbi,bij,nbj->nb", d, inv_covs, d)
    return np.argmin(d2, axis=1)


def _log_evidence_gd(x: np.ndarray, lp: np.ndarray, inside, rng: np.random.Generator, alpha: float = 0.5) -> float:
    """ln ∫_R p̃ from draws x (n, k) of p̃ restricted to a region R, with ln p̃ = ``lp`` (n,).

    Gelfand–Dey: 1/Z = E_p[q/p̃] / Q, with q the normal of the draws' mean and covariance truncated
    to its central ellipsoid of probability ``alpha`` and Q = ∫_R q (Monte Carlo, ``inside(y)`` tests
    membership of R, bounds included).  Returns NaN when too few draws fall in the ellipsoid.
    """
    from scipy.special import logsumexp
    from scipy.stats import chi2

    n, k = x.shape
    if n < 10 * (k + 1):
        return math.nan
    mu = x.mean(axis=0)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return math.nan
    r2 = chi2.ppf(alpha, k)
    z = np.linalg.solve(chol, (x - mu).T).T
    d2 = np.sum(z * z, axis=1)
    keep = d2 <= r2
    if keep.sum() < 10:
        return math.nan
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    log_q = -0.5 * d2[keep] - 0.5 * (k * math.log(2 * math.pi) + log_det) - math.log(alpha)
    y = rng.standard_normal((4000, k))
    y = y[np.sum(y * y, axis=1) <= r2]
    q_inside = float(np.mean(inside(mu + y @ chol.T)))
    if q_inside <= 0:
        return math.nan
    return math.log(q_inside) - (logsumexp(log_q - lp[keep]) - math.log(n))


def split_rhat(draws: np.ndarray) -> float:
    """Rank-normalised split-R̂ (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021) of one quantity.

    Args:
        draws: (n_chains, n_draws) — each row a sequence (here: one walker of one chain); ≥ 4 draws.

    Returns:
        max(bulk R̂, folded R̂): each chain is split in halves, the draws replaced by the normal
        scores of their ranks over all draws, and the classic Gelman–Rubin R̂ is taken of those
        (bulk) and of the scores of |draw − median| (tails).  1 for chains that agree; NaN when
        every draw is equal.
    """
    from scipy.stats import norm, rankdata

    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2 or draws.shape[1] < 4:
        raise InvalidInputError(f"split_rhat: draws must have shape (n_chains, n_draws ≥ 4), got {draws.shape}")
    half = draws.shape[1] // 2
    split = np.concatenate([draws[:, :half], draws[:, -half:]], axis=0)

    def rhat(values: np.ndarray) -> float:
        if np.ptp(values) == 0:
            return math.nan
        ranks = rankdata(values, method="average").reshape(values.shape)
        z = norm.ppf((ranks - 0.375) / (values.size + 0.25))
        m, n = z.shape
        means = z.mean(axis=1)
        within = z.var(axis=1, ddof=1).mean()
        between = n * means.var(ddof=1)
        var_plus = (n - 1) / n * within + between / n
        return float(math.sqrt(var_plus / within)) if within > 0 else math.inf

    bulk = rhat(split)
    fold = rhat(np.abs(split - np.median(split)))
    return float(np.nanmax([bulk, fold])) if not (math.isnan(bulk) and math.isnan(fold)) else math.nan


def _summaries(chain: np.ndarray) -> dict:
    return {
        "mean": (("parameter",), chain.mean(axis=0)),
        "std": (("parameter",), chain.std(axis=0)),
        "median": (("parameter",), np.median(chain, axis=0)),
        "quantiles": (("parameter", "quantile"), np.quantile(chain, QUANTILES, axis=0).T),
    }


def _equal_weight_index(labels: np.ndarray, masses: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of ``n_out`` draws, basin b taking round(m_b·n_out) of them (largest remainder),
    spread evenly along its own draws (no randomness; a single basin keeps every draw once)."""
    raw = masses * n_out
    counts = np.floor(raw).astype(int)
    for b in np.argsort(-(raw - counts))[: n_out - counts.sum()]:
        counts[b] += 1
    out = []
    for b, count in enumerate(counts):
        pool = np.flatnonzero(labels == b)
        if count and pool.size:
            out.append(pool[(np.arange(count) * pool.size) // count])
    return np.concatenate(out) if out else np.arange(0)


def sample_posterior(
    likelihood: Likelihood,
    *,
    priors: Mapping[str, Callable[[float], float]] | None = None,
    fixed: Mapping[str, float] | None = None,
    method: Literal["emcee", "nested"] = "emcee",
    basins: bool | Sequence[FitResult] | None = None,
    n_chains: int = 4,
    n_walkers: int | None = None,
    n_steps: int = 2000,
    n_burn: int = 500,
    thin: int = 1,
    n_live: int = 500,
    dlogz: float = 0.01,
    rhat_threshold: float = RHAT_THRESHOLD,
    seed: int = 0,
    progress: bool = False,
):
    """Sample the posterior of the free parameters, every basin of the likelihood included.

    Args:
        likelihood: the likelihood.
        priors: name → ln π(value) callables (e.g. :func:`normal_prior`); default uniform in bounds.
        fixed: parameters held fixed (besides ``likelihood.fixed``).
        method: ``"emcee"`` (default: ensembles in every basin, masses from the basins' evidences) or
            ``"nested"`` (dynesty nested sampling, ln Z; see :mod:`sbihep.fit.bayes` for when to use which).
        basins: None/True: found by :func:`~sbihep.fit.basins.find_minima`; False: only the global
            fit's basin (the old single-mode behaviour); or a list of FitResults (e.g. from find_minima).
        n_chains: independently started ensembles per basin (emcee), compared by R̂ (≥ 2).
        n_walkers: walkers per ensemble (default max(4·k, 8), k free parameters).
        n_steps, n_burn, thin: steps per walker, of which the first ``n_burn`` are dropped.
        n_live, dlogz: live points and stopping criterion of nested sampling.
        rhat_threshold: split-R̂ above which chains disagree (warning; default 1.01).
        seed: seed of the basin search, starts, samplers and resampling.

    Returns:
        ``xarray.Dataset`` of equal-weight draws:

        - ``samples`` (``draw``, ``parameter``), ``log_posterior`` (``draw``: −nll + Σ ln π of
            explicit priors), ``draw_basin`` (``draw``: index of the nearest basin);
        - per parameter ``mean``, ``std``, ``median``, ``quantiles`` (``quantile`` at 2.275, 15.87,
            50, 84.13, 97.725%), ``autocorr_steps`` (emcee: max over ensembles; NaN for nested), ``rhat``
            (emcee: max over basins of the split-R̂ within a basin; NaN for nested);
        - per basin (``basin`` dim, lowest −ln L first): ``basin_location`` (``basin``, ``parameter``),
            ``basin_nll``, ``basin_mass`` (posterior probability, sums to 1), ``basin_mass_error``
            (emcee: standard error between the chains; nested: from resampled runs),
            ``basin_mass_laplace`` (exp(−nll)·π·√det(2πΣ), normalised), ``basin_visits`` (draws in the basin);
        - attrs: ``method``, ``n_basins``, ``mode_masses_from`` (``"single basin"``, ``"basin
            evidences"`` (emcee), ``"nested sampling"``), ``converged`` (1 when no warning was
            raised), ``warnings`` ("; "-joined messages), ``rhat_max``, ``rhat_threshold``,
            ``autocorr_reliable`` (emcee: 1 only when converged *and* every ensemble ran more than 50
            autocorrelation times (0 for nested: no chain) — emcee's own τ is computed per walker and cannot see a walker
            stuck in one mode), ``acceptance_fraction``, ``n_walkers``, ``n_chains``, ``n_steps``,
            ``n_burn``, ``seed``; nested adds ``log_evidence``, ``log_evidence_error``, ``n_live``,
            ``n_calls``.

    Warns:
        PosteriorWarning: split-R̂ above ``rhat_threshold``; a basin never visited; walkers that
            moved between basins (> 5% of a basin's draws: basins not separated, masses uncertain);
            chains whose basin masses disagree (standard error > 0.01).

    Raises:
        InvalidInputError: an unconstrained parameter with an infinite bound and no prior,
            ``n_burn`` ≥ ``n_steps``, an unknown ``method``, ``n_chains`` < 2 or bad ``basins``.
        UnknownParameterError: a prior for an unknown parameter.
    """
    if method not in ("emcee", "nested"):
        raise InvalidInputError(f"sample_posterior: method must be 'emcee' or 'nested', got {method!r}")
    free, priors = _prepare(likelihood, priors, fixed, "sample_posterior")
    if method == "emcee":
        if not 0 <= n_burn < n_steps:
            raise InvalidInputError(f"sample_posterior: need 0 ≤ n_burn < n_steps, got {n_burn}, {n_steps}")
        if int(n_chains) < 2:
            raise InvalidInputError(f"sample_posterior: n_chains must be ≥ 2 (R̂ compares chains), got {n_chains!r}")
    if not free:
        raise InvalidInputError("sample_posterior: no free parameters to sample")
    fits = _get_basins(likelihood, fixed, basins, seed)
    base = {**likelihood.start_point(), **dict(fits[0].values), **likelihood.fixed, **(fixed or {})}
    log_post = _LogPosterior(likelihood, free, base, priors)
    centers = np.array([[f.values[n] for n in free] for f in fits])
    covs = np.array([_basin_covariance(likelihood, f, free) for f in fits])
    inv_covs = np.linalg.inv(covs)
    lp_min = np.array([log_post(c) for c in centers])
    log_laplace = lp_min + 0.5 * np.linalg.slogdet(2 * math.pi * covs)[1]
    log_laplace = np.where(np.isfinite(log_laplace), log_laplace, -math.inf)
    laplace = np.exp(log_laplace - np.max(log_laplace))
    laplace = laplace / laplace.sum()
    common = dict(likelihood=likelihood, free=free, log_post=log_post, fits=fits, centers=centers, covs=covs,
                  inv_covs=inv_covs, seed=seed, progress=progress)
    if method == "emcee":
        out = _run_emcee(**common, n_chains=int(n_chains), n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn,
                         thin=thin, rhat_threshold=rhat_threshold)
    else:
        from sbihep.fit.nested import run_nested

        out = run_nested(**common, priors=priors, n_live=n_live, dlogz=dlogz)
    return _assemble(out, free, fits, laplace, rhat_threshold, seed)


def _run_emcee(*, likelihood, free, log_post, fits, centers, covs, inv_covs, seed, progress, n_chains, n_walkers,
               n_steps, n_burn, thin, rhat_threshold) -> dict:
    import emcee

    k = len(free)
    n_basins = len(fits)
    w = int(n_walkers or max(4 * k, 8))
    if w < 2 * k or w < 4:
        raise InvalidInputError(f"sample_posterior: n_walkers must be ≥ max(2·k, 4) = {max(2 * k, 4)}, got {n_walkers!r}")
    bounds = log_post.bounds
    streams = np.random.SeedSequence(seed).spawn(n_basins * n_chains + 1)
    inside_rng = np.random.default_rng(streams[-1])
    per_basin = []  # per basin: list over chains of (chain (steps, walkers, k), logp (steps, walkers))
    acceptance, taus = [], []
    for b in range(n_basins):
        chol = np.linalg.cholesky(covs[b])
        runs = []
        for c in range(n_chains):
            rng = np.random.default_rng(streams[b * n_chains + c])
            start = _start_ball(centers[b], chol, bounds, w, rng, log_post)
            sampler = emcee.EnsembleSampler(w, k, log_post)
            sampler.random_state = np.random.RandomState(int(rng.integers(2**31 - 1))).get_state()
            sampler.run_mcmc(start, n_steps, progress=progress)
            chain = sampler.get_chain(discard=n_burn, thin=thin)
            logp = sampler.get_log_prob(discard=n_burn, thin=thin)
            runs.append((chain, logp))
            acceptance.append(float(np.mean(sampler.acceptance_fraction)))
            taus.append(sampler.get_autocorr_time(discard=n_burn, quiet=True, tol=0))
        per_basin.append(runs)
    tau = np.nanmax(np.array(taus), axis=0)
    n_kept = n_steps - n_burn
    started = [np.concatenate([chain.reshape(-1, k) for chain, _ in runs]) for runs in per_basin]
    own0 = [x[_classify(x, centers, inv_covs) == b] for b, x in enumerate(started)]
    inv_covs = np.linalg.inv(_empirical_covariances(own0, covs))
    messages: list[str] = []
    # --- R̂ inside each basin: one sequence per independently started ensemble (its walkers' draws
    # in step order), draws that left the basin removed, cut to a common length
    rhat_b = np.full((n_basins, k), math.nan)
    for b, runs in enumerate(per_basin):
        seqs = []
        for chain, logp in runs:
            flat = chain.reshape(-1, k)  # step-major: step t's walkers, then step t + 1's
            seqs.append(flat[(_classify(flat, centers, inv_covs) == b) & np.isfinite(logp.reshape(-1))])
        length = min(len(q) for q in seqs)
        if length >= 4:
            rhat_b[b] = [split_rhat(np.stack([q[:length, i] for q in seqs])) for i in range(k)]
    finite = np.where(np.isnan(rhat_b), -np.inf, rhat_b)
    rhat = np.where(np.isfinite(finite.max(axis=0)), finite.max(axis=0), math.nan)
    for b in range(n_basins):
        for i in range(k):
            if rhat_b[b, i] > rhat_threshold:
                messages.append(f"chains disagree in basin {b} (at {_where(free, centers[b])}): R̂({free[i]}) = "
                                f"{rhat_b[b, i]:.3f} > {rhat_threshold}; run longer (n_steps)")
    # --- draws that stay in their basin; evidences per basin (pooled and per chain)
    def inside_of(b):
        return lambda y: (np.all((y >= bounds[:, 0]) & (y <= bounds[:, 1]), axis=1)
                          & (_classify(y, centers, inv_covs) == b))

    xs, lps, labels = [], [], []
    log_z = np.full(n_basins, -math.inf)
    log_z_chain = np.full((n_chains, n_basins), -math.inf)
    visits = np.zeros(n_basins, dtype=int)
    for b, runs in enumerate(per_basin):
        x = np.concatenate([chain.reshape(-1, k) for chain, _ in runs])
        lp = np.concatenate([logp.reshape(-1) for _, logp in runs])
        own = (_classify(x, centers, inv_covs) == b) & np.isfinite(lp)
        visits[b] = int(own.sum())
        escaped = 1.0 - own.mean()
        if visits[b] == 0:
            messages.append(f"basin {b} (at {_where(free, centers[b])}) never visited: every walker started there left it")
            continue
        if escaped > ESCAPE_FRACTION and n_basins > 1:
            messages.append(f"{100 * escaped:.1f}% of the draws started in basin {b} moved to another basin: the basins "
                            "are not separated and their masses are uncertain; use method='nested'")
        xs.append(x[own]), lps.append(lp[own]), labels.append(np.full(visits[b], b))
        if n_basins > 1:
            log_z[b] = _log_evidence_gd(x[own], lp[own], inside_of(b), inside_rng)
            for c, (chain, logp) in enumerate(runs):
                xc, lpc = chain.reshape(-1, k), logp.reshape(-1)
                ok = (_classify(xc, centers, inv_covs) == b) & np.isfinite(lpc)
                log_z_chain[c, b] = _log_evidence_gd(xc[ok], lpc[ok], inside_of(b), inside_rng)
    if n_basins > 1:
        for b in range(n_basins):
            if visits[b] and not math.isfinite(log_z[b]):
                messages.append(f"the evidence of basin {b} could not be estimated from its draws; its mass is 0")
        masses = _normalise(log_z)
        chain_masses = np.array([_normalise(row) for row in log_z_chain])
        mass_error = np.nanstd(chain_masses, axis=0, ddof=1) / math.sqrt(n_chains)
        if np.nanmax(mass_error) > MASS_ERROR_MAX:
            messages.append(f"the chains' basin masses disagree: standard error up to {np.nanmax(mass_error):.3f} "
                            f"> {MASS_ERROR_MAX}; run longer or use method='nested'")
        source = "basin evidences"
    else:
        masses, mass_error, source = np.array([1.0]), np.array([0.0]), "single basin"
    x_all, lp_all, lab_all = np.concatenate(xs), np.concatenate(lps), np.concatenate(labels)
    idx = _equal_weight_index(lab_all, masses, lab_all.size)
    reliable = bool(np.all(n_kept > 50 * tau))
    return dict(samples=x_all[idx], log_posterior=lp_all[idx], labels=lab_all[idx], masses=masses,
                mass_error=mass_error, visits=visits, rhat=rhat, tau=tau, messages=messages, source=source,
                tau_ok=reliable, attrs={"method": "emcee", "acceptance_fraction": float(np.mean(acceptance)),
                                        "n_walkers": w, "n_chains": n_chains, "n_steps": n_steps, "n_burn": n_burn})


def _normalise(log_z: np.ndarray) -> np.ndarray:
    log_z = np.where(np.isfinite(log_z), log_z, -math.inf)
    if not np.any(np.isfinite(log_z)):
        return np.full(log_z.shape, math.nan)
    p = np.exp(log_z - np.max(log_z))
    return p / p.sum()


def _start_ball(center, chol, bounds, w, rng, log_post) -> np.ndarray:
    """w starts drawn from N(center, Σ) (overdispersed against a 0.1σ ball, as R̂ wants); a start out of
    bounds or at zero density is pulled towards the centre until it is valid."""
    k = center.size
    start = center + rng.standard_normal((w, k)) @ chol.T
    for j in range(w):
        for shrink in (1.0, 0.5, 0.25, 0.1, 0.03, 0.01):
            x = center + shrink * (start[j] - center)
            if np.all(x >= bounds[:, 0]) and np.all(x <= bounds[:, 1]) and math.isfinite(log_post(x)):
                start[j] = x
                break
        else:
            start[j] = np.clip(center + 1e-6 * (start[j] - center), bounds[:, 0], bounds[:, 1])
    return start


def _where(free, x) -> str:
    return ", ".join(f"{n}={v:.4g}" for n, v in zip(free, x))


def _assemble(out: dict, free, fits, laplace, rhat_threshold, seed):
    import xarray as xr

    messages = out["messages"]
    for message in messages:
        warnings.warn(f"sample_posterior: {message}", PosteriorWarning, stacklevel=3)
    chain = out["samples"]
    converged = not messages
    rhat = out["rhat"]
    data = {
        "samples": (("draw", "parameter"), chain),
        "log_posterior": (("draw",), out["log_posterior"]),
        "draw_basin": (("draw",), out["labels"].astype(int)),
        **_summaries(chain),
        "autocorr_steps": (("parameter",), out["tau"]),
        "rhat": (("parameter",), rhat),
        "basin_location": (("basin", "parameter"), np.array([[f.values[n] for n in free] for f in fits])),
        "basin_nll": (("basin",), np.array([f.nll for f in fits])),
        "basin_mass": (("basin",), out["masses"]),
        "basin_mass_error": (("basin",), out["mass_error"]),
        "basin_mass_laplace": (("basin",), laplace),
        "basin_visits": (("basin",), out["visits"]),
    }
    rhat_max = float(np.nanmax(rhat)) if np.any(np.isfinite(rhat)) else math.nan
    attrs = {**out["attrs"], "n_basins": len(fits), "mode_masses_from": out["source"], "converged": int(converged),
             "warnings": "; ".join(messages), "rhat_max": rhat_max, "rhat_threshold": rhat_threshold,
             "autocorr_reliable": int(converged and out["tau_ok"]), "seed": seed}
    return xr.Dataset(data, coords={"parameter": free, "quantile": list(QUANTILES), "basin": np.arange(len(fits))},
                      attrs=attrs)


def credible_interval(posterior, parameter: str, cl: float = ONE_SIGMA) -> Interval:
    """Central credible interval (equal tails) of one parameter from :func:`sample_posterior`.

    For a posterior with several modes the central interval can span the valley between them; look
    at ``basin_mass`` and the draws per ``basin`` for the modes themselves.
    """
    if parameter not in posterior["parameter"].values:
        raise UnknownParameterError(f"credible_interval: {parameter!r} was not sampled; sampled: {posterior['parameter'].values.tolist()}")
    if not 0 < cl < 1:
        raise InvalidInputError(f"credible_interval: cl must lie in (0, 1), got {cl!r}")
    x = posterior["samples"].sel(parameter=parameter).values
    low, high = np.quantile(x, [(1 - cl) / 2, (1 + cl) / 2])
    return Interval(parameter, float(np.median(x)), float(low), float(high), cl, method="bayes-central")
