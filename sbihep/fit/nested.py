"""Nested sampling of a posterior with several modes (dynesty), for ``sample_posterior(method="nested")``.

Nested sampling integrates the evidence Z = ∫ L π dθ by shrinking a set of live points drawn from the
prior towards higher likelihood; modes are found from the prior and kept by the bound, not by a
chain that must cross between them, and every draw carries an importance weight.  The sampler is
`dynesty <https://github.com/joshspeagle/dynesty>`_ (Speagle 2020, MNRAS 493, 3132), static nested
sampling with its multi-ellipsoid bound (``bound="multi"``: the live points are clustered into
ellipsoids, so separated modes get separate ellipsoids).

Why dynesty (measured on the OpWB quadratic SMEFiT likelihood, 1D, ~12 µs per −ln L call):

- **multimodality**: the multi-ellipsoid bound splits modes by itself; the two OpWB modes came out
  with masses 0.48–0.53 (exact 0.490) for 3 seeds at 250 live points, ~3.6 s and 1.1·10⁴ calls each;
- **evidence**: ln Z and its error (here ln Z = −8.2 ± 0.13 at 250 live points), which emcee cannot give;
- **licence and weight**: MIT, pure Python on numpy/scipy (already dependencies), no compiled code —
  ultranest (GPL-3, more robust MLFriends region but Cython and HDF5 extras, slower per iteration)
  and nautilus-sampler (MIT; a neural-network-boosted importance sampler needing scikit-learn, whose
  network training dominates on likelihoods as cheap as ours) were the alternatives;
- **maintenance**: dynesty 3.1 (2026), long-lived, widely used in astrophysics and HEP, seedable
  through a ``numpy.random.Generator``.

Cost and limits: mode masses from nested sampling carry a statistical error of about
√(m(1−m)/n_live) (the live points split between the modes at random), reported as
``basin_mass_error`` from 16 resampled runs (``dynesty.utils.resample_run``); the per-iteration
overhead of dynesty (~0.3 ms) dominates on our cheap likelihoods, so a run costs seconds, not
milliseconds.

Priors: nested sampling needs a map from the unit cube; sampling is done from a *reference*
density q (uniform within finite bounds; a normal around the basins, truncated at a finite bound,
where a bound is infinite), and the log-likelihood handed to dynesty is ln p̃ + ln(default uniform
prior) − ln q, so the result is the posterior with the user's priors and

    ln Z = ln ∫ exp(−nll(θ)) Π_i π_i(θ_i) dθ

with default (uniform) priors normalised over their bounds, explicit priors as given, and a
constrained parameter's constraint as it enters −ln L (no further prior).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["run_nested", "reference_density"]

#: width of the normal reference of a parameter with an infinite bound, in units of its largest error.
REFERENCE_SIGMAS = 10.0
#: resampled runs for the error of the mode masses.
N_RESAMPLE = 16


def reference_density(likelihood, free, priors, centers, covs):
    """The unit-cube map and the log-likelihood correction of nested sampling.

    Returns:
        (transform, log_correction): ``transform(u)`` maps u ∈ (0, 1)^k to θ (shape (k,)) and
        ``log_correction(θ)`` = ln(default uniform prior) − ln q(θ), to be added to ln p̃.
    """
    from scipy.stats import norm, truncnorm

    maps, corrections = [], []
    for i, name in enumerate(free):
        p = likelihood.parameters[name]
        low, high = (float(b) for b in p.bounds)
        default_uniform = name not in priors and p.constraint is None
        if math.isfinite(low) and math.isfinite(high):
            width = high - low
            maps.append(lambda u, low=low, width=width: low + width * u)
            corrections.append((lambda x: 0.0) if default_uniform else (lambda x, lw=math.log(width): lw))
        else:
            center = float(np.mean(centers[:, i]))
            scale = REFERENCE_SIGMAS * float(np.sqrt(np.max(covs[:, i, i]))) + float(np.ptp(centers[:, i]))
            a, b = (low - center) / scale, (high - center) / scale
            dist = truncnorm(a, b, loc=center, scale=scale) if (math.isfinite(a) or math.isfinite(b)) else norm(center, scale)
            maps.append(lambda u, dist=dist: float(dist.ppf(u)))
            corrections.append(lambda x, dist=dist: -float(dist.logpdf(x)))

    def transform(u: np.ndarray) -> np.ndarray:
        return np.array([m(float(v)) for m, v in zip(maps, u)])

    def log_correction(x: np.ndarray) -> float:
        return float(sum(c(float(v)) for c, v in zip(corrections, x)))

    return transform, log_correction


def run_nested(*, likelihood, free, log_post, fits, centers, covs, inv_covs, seed, progress, priors, n_live,
               dlogz) -> dict:
    """Run dynesty and return the pieces of a :func:`~sbihep.fit.bayes.sample_posterior` Dataset."""
    import dynesty
    from dynesty.utils import resample_run

    from sbihep.errors import InvalidInputError
    from sbihep.fit.bayes import _classify, _empirical_covariances

    k = len(free)
    if int(n_live) < 2 * k + 2 or int(n_live) < 20:
        raise InvalidInputError(f"sample_posterior: n_live must be ≥ max(2·k + 2, 20), got {n_live!r}")
    if not dlogz > 0:
        raise InvalidInputError(f"sample_posterior: dlogz must be > 0, got {dlogz!r}")
    transform, log_correction = reference_density(likelihood, free, priors, centers, covs)

    def loglike(x: np.ndarray) -> float:
        value = log_post(x)
        return value + log_correction(x) if math.isfinite(value) else -1e300

    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    sampler = dynesty.NestedSampler(loglike, transform, k, nlive=int(n_live), bound="multi", sample="auto", rstate=rng)
    sampler.run_nested(dlogz=dlogz, print_progress=progress)
    res = sampler.results
    weights = res.importance_weights()
    x = np.asarray(res.samples, dtype=float)
    n_basins = len(fits)
    labels = _classify(x, centers, inv_covs)
    # reclassify once with the basins' covariances from the equal-weight draws (HESSE can be degenerate)
    eq = x[np.minimum(np.searchsorted(np.cumsum(weights), (np.arange(x.shape[0]) + 0.5) / x.shape[0]), x.shape[0] - 1)]
    eq_labels = _classify(eq, centers, inv_covs)
    inv_covs = np.linalg.inv(_empirical_covariances([eq[eq_labels == b] for b in range(n_basins)], covs))
    labels = _classify(x, centers, inv_covs)
    masses = np.array([weights[labels == b].sum() for b in range(n_basins)])
    resampled = []
    for _ in range(N_RESAMPLE):
        r = resample_run(res, rstate=rng)
        w = r.importance_weights()
        lab = _classify(np.asarray(r.samples, dtype=float), centers, inv_covs)
        resampled.append([w[lab == b].sum() for b in range(n_basins)])
    mass_error = np.std(np.array(resampled), axis=0, ddof=1)
    # equal weights: systematic resampling of the weighted draws
    n_out = x.shape[0]
    positions = (rng.random() + np.arange(n_out)) / n_out
    idx = np.minimum(np.searchsorted(np.cumsum(weights), positions), n_out - 1)
    lp = np.array([log_post(v) for v in x])
    messages = []
    visits = np.array([int((labels[idx] == b).sum()) for b in range(n_basins)])
    for b in range(n_basins):
        if visits[b] == 0 and fits[b].nll - fits[0].nll < 10.0:
            messages.append(f"basin {b} (−ln L {fits[b].nll - fits[0].nll:.2f} above the lowest) holds no draw of the "
                            "nested sampler; increase n_live")
    return dict(samples=x[idx], log_posterior=lp[idx], labels=labels[idx], masses=masses, mass_error=mass_error,
                visits=visits, rhat=np.full(k, math.nan), tau=np.full(k, math.nan), messages=messages,
                source="nested sampling", tau_ok=False,
                attrs={"method": "nested", "log_evidence": float(res.logz[-1]),
                       "log_evidence_error": float(res.logzerr[-1]), "n_live": int(n_live),
                       "n_calls": int(np.sum(res.ncall)), "n_effective": float(1.0 / np.sum(weights**2)),
                       "dlogz": float(dlogz)})
