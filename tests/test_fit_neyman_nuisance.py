"""Neyman sets with a nuisance parameter, independent toy streams, interval ends by root finding.

The LF2I OnOff model N_on ~ Pois(νb + μs), N_off ~ Pois(ντb), s = 15, b = 70, τ = 1, μ ∈ [0, 5],
ν ∈ [0.6, 1.4] has closed-form fits: ν̂̂(μ) is the positive root of
(1+τ)b ν² + [(1+τ)μs − n_on − n_off] ν − n_off μs/b = 0 clipped to the bounds (−ln L is convex in ν),
so t(μ) and ν̂̂(μ) are computed here on the whole (N_on, N_off) lattice by hand, and coverage is
summed exactly with the Poisson probabilities; the library's constructions are applied to them.
"""

import math

import numpy as np
import pytest
from scipy import stats

from sbihep.fit import CountingTerm, GaussianTerm, Likelihood, NuisanceConstruction, coverage, neyman_belt, neyman_interval, toy_stream
from sbihep.fit.coverage import NeymanMethod, covered
from sbihep.fit.intervals import ONE_SIGMA
from sbihep.fit.statistic import toy_seed
from sbihep.params import Parameter, ParameterSpace

S, B, TAU = 15.0, 70.0, 1.0
N_ON, N_OFF = np.meshgrid(np.arange(0, 200.0), np.arange(0, 160.0), indexing="ij")


def onoff(n_on=85.0, n_off=70.0):
    space = ParameterSpace([Parameter("mu", 1.0, (0.0, 5.0)), Parameter("nu", 1.0, (0.6, 1.4), kind="nuisance")])
    return Likelihood([CountingTerm([n_on, n_off], [{"nu": B, "mu": S}, {"nu": TAU * B}], space)])


def nll(mu, nu):
    lon, loff = nu * B + mu * S, nu * TAU * B
    return lon - N_ON * np.log(lon) + loff - N_OFF * np.log(loff)


def nu_hat(mu):
    a, big_a = mu * S / B, (1 + TAU) * B
    bb = big_a * a - N_ON - N_OFF
    return np.clip((-bb + np.sqrt(bb * bb + 4 * big_a * N_OFF * a)) / (2 * big_a), 0.6, 1.4)


def free_nll():
    cands = []
    nu0 = N_OFF / (TAU * B)
    mu0 = (N_ON - nu0 * B) / S
    inside = (nu0 >= 0.6) & (nu0 <= 1.4) & (mu0 >= 0) & (mu0 <= 5)
    cands.append(np.where(inside, nll(np.clip(mu0, 0, 5), np.clip(nu0, 0.6, 1.4)), np.inf))
    cands += [nll(m, nu_hat(m)) for m in (0.0, 5.0)]
    cands += [nll(np.clip((N_ON - n * B) / S, 0, 5), n) for n in (0.6, 1.4)]
    return np.min(cands, axis=0)


def prob(mu, nu):
    return stats.poisson.pmf(N_ON, nu * B + mu * S) * stats.poisson.pmf(N_OFF, nu * TAU * B)


def closed_form_belt(mu, nus, n_toys, seed):
    """A nuisance belt at one μ whose toys are drawn from the lattice with closed-form t and ν̂̂
    (the same contents neyman_belt produces with fits, much faster)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    t = np.maximum(2 * (nll(mu, nu_hat(mu)) - free_nll()), 0.0)
    nh = nu_hat(mu)
    stat = np.empty((1, len(nus), n_toys))
    hat = np.empty((1, len(nus), n_toys, 1))
    for k, nu in enumerate(nus):
        i = np.minimum(rng.poisson(nu * B + mu * S, n_toys), N_ON.shape[0] - 1)
        j = np.minimum(rng.poisson(nu * TAU * B, n_toys), N_ON.shape[1] - 1)
        stat[0, k], hat[0, k, :, 0] = t[i, j], nh[i, j]
    crit = np.nanquantile(stat, ONE_SIGMA, axis=-1, method="inverted_cdf")[..., None]
    return xr.Dataset({"statistic": (("mu", "nu", "toy"), stat), "critical_value": (("mu", "nu", "cl"), crit),
                       "profiled_nuisance": (("mu", "nu", "toy", "nuisance"), hat)},
                      coords={"mu": [mu], "nu": nus, "cl": [ONE_SIGMA], "nuisance": ["nu"]},
                      attrs={"tested": "mu", "nuisances": "nu", "n_toys": n_toys})


def test_profile_construction_undercovers_at_the_onoff_corner_and_the_calibrated_one_does_not():
    """Exact 68.27% coverage at μ = 0: the profile construction (critical value at each data set's
    ν̂̂) undercovers at ν = 1.4 (−2.9% with exact critical values; reproduced here with 20000 toys
    per node); the calibrated construction covers at every ν within 1.5%, also between nodes.
    Fails on the old code, which had no construction with pointwise coverage."""
    mu = 0.0
    t = np.maximum(2 * (nll(mu, nu_hat(mu)) - free_nll()), 0.0)
    nh = nu_hat(mu)
    nodes = np.linspace(0.6, 1.4, 9)
    belt = closed_form_belt(mu, nodes, 20000, seed=5)
    c_prof = NuisanceConstruction(belt, ONE_SIGMA, "profile")
    c_cal = NuisanceConstruction(belt, ONE_SIGMA, "calibrated")
    nus = np.linspace(0.6, 1.4, 17)
    relevant = np.zeros(N_ON.shape, dtype=bool)
    for nu in nus:
        relevant |= prob(mu, nu) > 1e-7
    acc_prof = np.zeros(N_ON.shape, dtype=bool)
    acc_cal = np.zeros(N_ON.shape, dtype=bool)
    for i, j in np.argwhere(relevant):
        point, hat = {"mu": mu}, {"nu": float(nh[i, j])}
        acc_prof[i, j] = t[i, j] <= c_prof.critical(None, point, hat, math.nan)
        acc_cal[i, j] = t[i, j] <= c_cal.critical(None, point, hat, math.nan)
    cov_prof = np.array([prob(mu, nu)[acc_prof].sum() for nu in nus]) - ONE_SIGMA
    cov_cal = np.array([prob(mu, nu)[acc_cal].sum() for nu in nus]) - ONE_SIGMA
    assert cov_prof[-1] < -0.02  # the corner (μ, ν) = (0, 1.4)
    assert np.all(cov_cal > -0.015), cov_cal
    assert np.all(cov_cal < 0.06), cov_cal


def test_neyman_belt_with_a_nuisance_grid_on_onoff():
    nus = np.linspace(0.6, 1.4, 3)
    belt = neyman_belt(onoff(), {"mu": [0.0]}, nuisance_grid={"nu": nus}, n_toys=40, cls=(ONE_SIGMA,), seed=11)
    assert belt["statistic"].dims == ("mu", "nu", "toy") and belt["profiled_nuisance"].shape == (1, 3, 40, 1)
    assert belt.attrs["nuisances"] == "nu" and int(belt["n_failed"].sum()) == 0
    hat = belt["profiled_nuisance"].values
    assert np.all((hat >= 0.6) & (hat <= 1.4))


def test_library_decisions_match_the_closed_form_on_onoff_data():
    """covered() (fits, the toy's ν̂̂, the construction) on a few lattice points agrees with the
    closed-form t and ν̂̂ fed to the same construction; Berger–Boos accepts whenever the
    profile construction at level cl + γ does (its sup includes ν̂̂)."""
    nus = np.linspace(0.6, 1.4, 5)
    lik = onoff()
    belt = neyman_belt(lik, {"mu": [0.0, 2.5]}, nuisance_grid={"nu": nus}, n_toys=60, cls=(ONE_SIGMA,), seed=3)
    methods = [NeymanMethod(belt, ONE_SIGMA, construction=c) for c in ("calibrated", "profile", "berger_boos")]
    cal = methods[0]._construction()
    mu = 2.5
    t = np.maximum(2 * (nll(mu, nu_hat(mu)) - free_nll()), 0.0)
    nh = nu_hat(mu)
    for n_on, n_off in [(85, 70), (120, 95), (60, 50), (100, 60)]:
        toy = Likelihood([lik.terms[0].with_counts([n_on, n_off])])
        got = covered(toy, {"mu": mu, "nu": 1.0}, methods, tolerance=1e-4)
        c = cal.critical(None, {"mu": mu}, {"nu": float(nh[n_on, n_off])}, math.nan)
        if abs(t[n_on, n_off] - c) > 1e-3:
            assert got[0] == float(t[n_on, n_off] <= c), (n_on, n_off)
        assert got[2] >= got[1] or abs(t[n_on, n_off] - c) < 0.3


def test_streams_are_independent_across_points_and_reproducible():
    a = toy_stream(7, "coverage", {"mu": 0.0, "nu": 1.0}, 0).random(4)
    b = toy_stream(7, "coverage", {"mu": 0.5, "nu": 1.0}, 0).random(4)
    c = toy_stream(7, "neyman_belt", {"mu": 0.0, "nu": 1.0}, 0).random(4)
    again = toy_stream(7, "coverage", {"nu": 1.0, "mu": -0.0}, 0).random(4)
    assert not np.allclose(a, b) and not np.allclose(a, c)
    np.testing.assert_array_equal(a, again)
    # coverage at two truth points: their first toys differ (old code: identical standard normals)
    space = ParameterSpace([Parameter("mu", 0.0, (-10, 10))])
    lik = Likelihood([GaussianTerm([0.0], [[1.0]], [0.0], space, linear={"mu": [1.0]})])
    draws = {}
    for mu in (0.0, 1.0):
        rng = toy_stream(12345, "coverage", lik.parameters.validate({"mu": mu}), 0)
        draws[mu] = float(lik.toy({"mu": mu}, rng).terms[0].data[0]) - mu
    assert draws[0.0] != draws[1.0]
    old = {mu: float(lik.toy({"mu": mu}, toy_seed(12345, 0)).terms[0].data[0]) - mu for mu in (0.0, 1.0)}
    assert old[0.0] == pytest.approx(old[1.0])  # the old correlated streams, kept as stream="shared"
    wilks = {"w": __import__("sbihep.fit", fromlist=["WilksMethod"]).WilksMethod(("mu",))}
    one = coverage(lik, {"mu": 0.3}, wilks, n_toys=30, seed=4)
    two = coverage(lik, {"mu": 0.3}, wilks, n_toys=30, seed=4, n_workers=2)
    np.testing.assert_array_equal(one["covered"].values, two["covered"].values)
    # belts: same call bit-identical; two grids sharing a point value share its toys, others differ
    b1 = neyman_belt(lik, {"mu": [0.0, 1.0]}, n_toys=5, seed=1, generate_at={})
    b2 = neyman_belt(lik, {"mu": [0.0, 1.0]}, n_toys=5, seed=1, generate_at={})
    np.testing.assert_array_equal(b1["statistic"].values, b2["statistic"].values)
    assert not np.allclose(b1["statistic"].values[0], b1["statistic"].values[1])
    # two belts on other grids: old streams repeat (same t at grid index 0), independent ones do not
    s1, s2 = (neyman_belt(lik, {"mu": [m]}, n_toys=5, seed=1, generate_at={}, stream="shared") for m in (0.0, 2.0))
    np.testing.assert_allclose(s1["statistic"].values, s2["statistic"].values, atol=1e-4)  # fit tolerance
    i1, i2 = (neyman_belt(lik, {"mu": [m]}, n_toys=5, seed=1, generate_at={}) for m in (0.0, 2.0))
    assert not np.allclose(i1["statistic"].values, i2["statistic"].values)
    with pytest.raises(ValueError, match="stream"):
        coverage(lik, {"mu": 0.3}, wilks, n_toys=3, stream="other")


@pytest.mark.parametrize("n_points", [3, 6, 11])
def test_neyman_interval_ends_by_root_finding_are_exact(n_points):
    """Unbounded Gaussian, x = 0.37, σ = 1, the belt's c set to the exact χ²₁ quantile 1: the 68.27%
    interval is x ± 1 exactly; ends within 1e-3 σ on grids of 3, 6 and 11 points (old code:
    linear interpolation between grid points, and a 3-point grid failed)."""
    space = ParameterSpace([Parameter("mu", 0.0, (-10, 10))])
    lik = Likelihood([GaussianTerm([0.37], [[1.0]], [0.0], space, linear={"mu": [1.0]})])
    belt = neyman_belt(lik, {"mu": np.linspace(-3.0, 3.5, n_points)}, n_toys=3, cls=(ONE_SIGMA,), seed=0)
    belt["critical_value"][:] = 1.0
    iv = neyman_interval(lik, belt, ONE_SIGMA)
    assert iv.low_closed and iv.high_closed
    assert abs(iv.low - (0.37 - 1)) < 1e-3 and abs(iv.high - (0.37 + 1)) < 1e-3
    assert iv.best == pytest.approx(0.37, abs=1e-3)


def test_neyman_interval_returns_every_piece_of_a_disjoint_set():
    """Gaussian x = 0.37, σ = 1, c = 1 except at the last node μ = 3.5 where c = 10: the Neyman set
    is [x − 1, x + 1] ∪ [r, 3.5) with r the root of (μ − x)² = c(μ) between the last two nodes
    (c linear there).  Old code: one Interval around the best fit and a warning."""
    from sbihep.fit import ConfidenceSet
    from sbihep.fit.neyman import neyman_region

    space = ParameterSpace([Parameter("mu", 0.0, (-10, 10))])
    lik = Likelihood([GaussianTerm([0.37], [[1.0]], [0.0], space, linear={"mu": [1.0]})])
    grid = np.linspace(-3.0, 3.5, 11)
    belt = neyman_belt(lik, {"mu": grid}, n_toys=3, cls=(ONE_SIGMA,), seed=0)
    belt["critical_value"][:] = 1.0
    belt["critical_value"][-1] = 10.0
    cs = neyman_interval(lik, belt, ONE_SIGMA)
    assert isinstance(cs, ConfidenceSet) and cs.method == "neyman" and len(cs.intervals) == 2
    first, second = cs.intervals
    a, b = grid[-2], grid[-1]
    root = float(__import__("scipy").optimize.brentq(lambda m: (m - 0.37) ** 2 - (1 + 9 * (m - a) / (b - a)), a, b))
    assert abs(first.low - (0.37 - 1)) < 1e-3 and abs(first.high - (0.37 + 1)) < 1e-3
    assert abs(second.low - root) < 1e-3 and second.high == b and second.high_end == "open"
    assert cs.low == first.low and cs.high == b and not cs.high_closed  # the hull, as the old Interval
    assert cs.contains(0.37) and not cs.contains(2.0) and cs.contains(0.5 * (root + b)) and not cs.contains(root - 0.01)
    region = neyman_region(lik, belt, ONE_SIGMA)
    np.testing.assert_array_equal(region["accepted"].values, cs.contains(grid))


def test_neyman_region_with_a_nuisance_belt_matches_the_closed_form_on_onoff():
    """neyman_region on a nuisance belt: each node's decision is t_obs(μ) ≤ c(μ; ν̂̂_obs(μ)) of the
    construction, with t and ν̂̂ of the OnOff data in closed form; neyman_interval on the same belt
    is a ConfidenceSet that agrees with the region at every node."""
    from sbihep.fit import ConfidenceSet
    from sbihep.fit.neyman import neyman_region

    lik = onoff(100.0, 68.0)
    mus = np.array([0.0, 0.75, 1.5, 2.25, 3.0])
    belt = neyman_belt(lik, {"mu": mus}, nuisance_grid={"nu": np.linspace(0.6, 1.4, 3)}, n_toys=20,
                       cls=(ONE_SIGMA,), seed=5, tolerance=1e-4)
    n_on, n_off = 100, 68
    for construction in ("calibrated", "profile"):
        region = neyman_region(lik, belt, ONE_SIGMA, construction=construction, tolerance=1e-4)
        cons = NuisanceConstruction(belt, ONE_SIGMA, construction)
        for k, mu in enumerate(mus):
            t = max(2 * (nll(mu, nu_hat(mu)) - free_nll())[n_on, n_off], 0.0)
            c = cons.critical(None, {"mu": mu}, {"nu": float(nu_hat(mu)[n_on, n_off])}, math.nan)
            assert float(region["twice_delta_nll"][k]) == pytest.approx(t, abs=2e-4)
            assert float(region["critical_value"][k]) == pytest.approx(c, abs=2e-3)
            if abs(t - c) > 5e-3:
                assert bool(region["accepted"][k]) == (t <= c), (construction, mu, t, c)
        cs = neyman_interval(lik, belt, ONE_SIGMA, construction=construction, tolerance=1e-4)
        assert isinstance(cs, ConfidenceSet)
        clear = np.abs(np.asarray(region["margin"])) > 5e-3
        np.testing.assert_array_equal(cs.contains(mus)[clear], np.asarray(region["accepted"])[clear])
        assert region["accepted"].any() and not region["accepted"].all()


def test_berger_boos_takes_the_supremum_over_a_two_nuisance_confidence_set():
    """Two nuisances measured as N(x_ν, 1) and a critical-value table linear in them,
    Q(ν) = 1 + 0.3 ν₁ + 0.4 ν₂ (|g| = 0.5): the Berger–Boos c is its supremum over the disc
    |ν − ν̂̂| ≤ r, r² = χ²₂⁻¹(1 − γ) — 1 + g·ν̂̂ + |g| r — up to the refined grid's step h
    (the set is dilated by one step: within |g| h √2).  With the χ²₁ radius instead the value
    would be 0.23 lower, well outside that."""
    import xarray as xr

    space = ParameterSpace([Parameter("mu", 0.0, (-5, 5)), Parameter("n1", 0.0, (-6, 6), kind="nuisance"),
                            Parameter("n2", 0.0, (-6, 6), kind="nuisance")])
    x = np.array([0.2, 0.4, -0.3])
    lik = Likelihood([GaussianTerm(x, np.eye(3), [0.0] * 3, space,
                                   linear={"mu": [1, 0, 0], "n1": [0, 1, 0], "n2": [0, 0, 1]})])
    nus = np.linspace(-6.0, 6.0, 25)  # step 0.5; refine 4 → h = 0.125
    gamma, cl = 0.01, ONE_SIGMA
    g = np.array([0.3, 0.4])
    table = 1 + g[0] * nus[:, None] + g[1] * nus[None, :]
    crit = np.broadcast_to(table, (2, nus.size, nus.size))[..., None].copy()
    belt = xr.Dataset({"critical_value": (("mu", "n1", "n2", "cl"), crit)},
                      coords={"mu": [-1.0, 1.0], "n1": nus, "n2": nus, "cl": [cl + gamma]},
                      attrs={"tested": "mu", "nuisances": "n1,n2", "n_toys": 1})
    bb = NuisanceConstruction(belt, cl, "berger_boos", gamma=gamma)
    hat = {"n1": 0.4, "n2": -0.3}  # ν̂̂ at any μ: the nuisances decouple from μ
    cond = {"mu": 0.5, **hat}
    c = bb.critical(lik, {"mu": 0.5}, cond, lik.nll(cond)) - __import__("sbihep.fit.neyman_nuisance", fromlist=["x"]).TIE_TOLERANCE
    r2, r1 = math.sqrt(stats.chi2.ppf(1 - gamma, 2)), math.sqrt(stats.chi2.ppf(1 - gamma, 1))
    centre = 1 + g @ np.array([0.4, -0.3])
    exact = centre + 0.5 * r2
    assert exact - 1e-9 <= c <= exact + 0.5 * 0.125 * math.sqrt(2) + 1e-9
    assert c > centre + 0.5 * r1 + 0.15
    # profile construction at the same level: the table at ν̂̂ only, below the supremum
    prof = NuisanceConstruction(belt.assign_coords(cl=[cl]), cl, "profile")
    assert prof.critical(lik, {"mu": 0.5}, cond, lik.nll(cond)) - 1e-3 == pytest.approx(centre)
