"""Closure of learned likelihoods and the Monte Carlo uncertainty of toy pools (issue 18, item 7).

1. A :class:`~sbihep.estimators.quadratic.QuadraticEFTClassifier` on the two-operator toy of
   tests/_eft_toy.py (exact dσ(x|θ)/dσ(x|SM) known), trained on a small sample (600 events, 5 epochs)
   and on a larger one (6000 events, 25 epochs), fitted as an extended unbinned likelihood to Asimov
   data of an independent 200 000-event pool at λ = 3000 expected events; ``closure_check`` against
   the exact (latent-level) likelihood at the SM and at ±2σ of each operator.
2. The unbinned m_bb model of tutorial 3 (signal strength μ, JES, background tilt, luminosity;
   λ ≈ 1320): the model's σ(μ, ν) made from pools of 2×10⁴ and 2×10⁵ events, one fixed data set.
   ``pool_uncertainty`` predicts the pool's MC error on μ̂; the spread of μ̂ over independent pools
   measures it.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def _learned_ratio(estimator, sigma_of_pool):
    """ln r̂(x|θ) of the classifier, its per-event coefficients computed once per data array."""
    from sbihep.events import eft as eft_math

    cache = {}

    def log_ratio(x, theta):
        if cache.get("x") is not x:
            cache["x"], cache["c"] = x, estimator.coefficients(x).values
        point = np.array([theta["ca"], theta["cb"]])
        rho = cache["c"] @ eft_math.monomials(point, "quadratic").numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.log(rho) - estimator.log_sigma_ratio({"ca": point[0], "cb": point[1]})
    return log_ratio


def closure_section(args) -> dict:
    import torch

    from _eft_toy import SPACE, toy_events
    from sbihep.estimators.quadratic import QuadraticEFTClassifier
    from sbihep.fit import EventSetSigma, EventSetToys, Likelihood, UnbinnedTerm, closure_check, exact_unbinned_term

    torch.set_num_threads(1)
    n_pool = 40_000 if args.quick else 200_000
    pool = toy_events(n_pool, seed=11)
    sigma = EventSetSigma(pool)
    lam = 3000.0
    lumi = lam / (1000.0 * sigma({"ca": 0.0, "cb": 0.0}))
    x = pool.observables().values
    exact = Likelihood([exact_unbinned_term(pool, lumi, pois={"ca": (-1, 1), "cb": (-1, 1)})])
    out = {"closure_pool_events": n_pool, "closure_expected_events": lam}
    sizes = {"small": (600, 5), "large": (6000, 25)} if not args.quick else {"small": (600, 3), "large": (2000, 5)}
    worst = 0.0
    for label, (n_train, epochs) in sizes.items():
        est = QuadraticEFTClassifier(["x1", "x2"], SPACE, hidden=(32, 32), seed=0)
        est.fit(toy_events(n_train, 0), epochs=epochs, batch_size=64, learning_rate=3e-3, final_learning_rate=1e-4, quiet=True)
        term = UnbinnedTerm(_learned_ratio(est, sigma), x, sigma_pb=sigma, lumi_ifb=lumi, parameters=SPACE,
                            toys=EventSetToys(pool, x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = closure_check(Likelihood([term]), exact)
        ds = result.dataset
        out[f"closure_quadratic_{label}_train_events"] = n_train
        out[f"closure_quadratic_{label}_passed"] = bool(result.passed)
        out[f"closure_quadratic_{label}_max_bias_sigma"] = round(result.max_abs_bias_sigma, 4)
        for point in ds["point"].values:
            key = "reference" if point == "reference" else point.replace("=", "_").replace("+", "p").replace("-", "m").replace(".", "p")
            for p in ds["parameter"].values:
                out[f"closure_quadratic_{label}_{key}_{p}_bias_sigma"] = round(float(ds["bias_sigma"].sel(point=point, parameter=p)), 4)
        for p in ds["parameter"].values:
            out[f"closure_quadratic_{label}_reference_{p}_width_ratio"] = round(float(ds["width_ratio"].sel(point="reference", parameter=p)), 4)
        out[f"closure_quadratic_{label}_max_exact_bias_sigma"] = float(np.abs(ds["exact_bias_sigma"]).max())
        worst = max(worst, result.max_abs_bias_sigma)
    out["closure_max_bias_sigma"] = round(worst, 4)
    out["closure_pool_yield_mc_ratio"] = round(math.sqrt(lam / EventSetToys(pool, x).n_effective({"ca": 0.0, "cb": 0.0})), 4)
    return out


# --- tutorial 3's model -------------------------------------------------------------------------
M_LOW, M_HIGH, M_H, RES = 60.0, 200.0, 125.0, 12.0
SIGMA_S, SIGMA_B, SLOPE, JES, TILT, LUMI, LUMI_REL = 0.004, 0.040, 1.0 / 50.0, 0.02, 0.3, 30.0, 0.025
NUISANCES = ("jes", "bkg_tilt")


def _features(m):
    from scipy import stats

    def signal(nu):
        peak = stats.norm(M_H * (1.0 + JES * nu), RES)
        return peak.pdf(m) / (peak.cdf(M_HIGH) - peak.cdf(M_LOW))

    def background(nu):
        norm = SLOPE / (1.0 - np.exp(-SLOPE * (M_HIGH - M_LOW)))
        return norm * np.exp(-SLOPE * (m - M_LOW)) * np.exp(nu * TILT * (m - 130.0) / 70.0)

    cols = lambda j, t: np.stack([SIGMA_B * background(t), SIGMA_S * signal(j)], axis=1)  # noqa: E731
    return np.concatenate([cols(0, 0), cols(1, 0), cols(-1, 0), cols(0, 1), cols(0, -1)], axis=1)


def _tutorial3_term(n_pool, seed):
    from sbihep.fit import EventSetToys, ExactLogRatio, UnbinnedTerm
    from sbihep.fit.morphing import EventSetMorphing
    from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

    m = np.random.default_rng(seed).uniform(M_LOW, M_HIGH, n_pool)
    pool = _features(m) * (M_HIGH - M_LOW) / n_pool
    morphing = EventSetMorphing(pool[:, :2], ("mu",), "linear", pool[:, 2:].reshape(n_pool, 4, 2),
                                {name: (2 * k, 2 * k + 1) for k, name in enumerate(NUISANCES)})
    ratio = ExactLogRatio(morphing, theta_ref={"mu": 1.0})
    space = ParameterSpace([Parameter("mu", 1.0, (0.0, 4.0))] + [
        Parameter(n, 0.0, (-5.0, 5.0), kind="nuisance", constraint=GaussianConstraint(0.0, 1.0)) for n in NUISANCES])
    return UnbinnedTerm(ratio, pool, sigma_pb=ratio.sigma, lumi_ifb=LUMI, parameters=space, lumi_uncertainty=LUMI_REL,
                        toys=EventSetToys(morphing, pool))


def _observed(seed):
    """A data set from the analytic model at μ = 1, ν = 0 (not from any pool)."""
    rng = np.random.default_rng(seed)
    n_b, n_s = rng.poisson(1000 * LUMI * SIGMA_B), rng.poisson(1000 * LUMI * SIGMA_S)
    u = rng.uniform(size=n_b)
    background = M_LOW - np.log(1 - u * (1 - np.exp(-SLOPE * (M_HIGH - M_LOW)))) / SLOPE
    signal = rng.normal(M_H, RES, 3 * n_s)
    signal = signal[(signal > M_LOW) & (signal < M_HIGH)][:n_s]
    return _features(np.concatenate([background, signal]))


def pool_section(args) -> dict:
    from sbihep.errors import ToyPoolWarning
    from sbihep.fit import Likelihood, minimize

    truth = {"mu": 1.0, "jes": 0.0, "bkg_tilt": 0.0, "lumi": 0.0}
    data = _observed(7)
    n_pools = 6 if args.quick else 20
    out = {}
    for n_pool in (20_000, 200_000):
        tag = f"{n_pool // 1000}k"
        term = _tutorial3_term(n_pool, seed=2024)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ToyPoolWarning)
            term.toy(truth, np.random.default_rng(0))
            report = term.pool_uncertainty(truth, data_from_pool=False)
        mu = report.sel(parameter="mu")
        out[f"pool_{tag}_yield_mc_ratio"] = round(report.attrs["yield_mc_ratio"], 4)
        out[f"pool_{tag}_mu_stat_error"] = round(float(mu["stat_error"]), 4)
        out[f"pool_{tag}_mu_mc_error_predicted"] = round(float(mu["mc_error"]), 4)
        out[f"pool_{tag}_mu_mc_over_stat"] = round(float(mu["mc_over_stat"]), 4)
        out[f"pool_{tag}_warned"] = any(issubclass(w.category, ToyPoolWarning) for w in caught)
        fits = []
        for k in range(n_pools if n_pool == 20_000 else max(3, n_pools // 4)):
            lik = Likelihood([_tutorial3_term(n_pool, seed=3000 + k).with_data(data)])
            fits.append(minimize(lik).values["mu"])
        out[f"pool_{tag}_mu_hat_spread_over_{len(fits)}_pools"] = round(float(np.std(fits, ddof=1)), 4)
        out[f"pool_{tag}_mu_hat_mean"] = round(float(np.mean(fits)), 4)
    return out


def run(args) -> dict:
    out = closure_section(args)
    out.update(pool_section(args))
    return out
