"""Exact Neyman belts for counting models (neyman_belt(..., method="exact")) and the calibrated
construction on exact lattice probabilities.

Small OnOff (b = 12, s = 5, τ = 1) keeps the lattice at about a thousand count vectors; the large
LF2I OnOff (b = 70, s = 15) uses the closed-form fits of tests/test_fit_neyman_nuisance.py.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from sbihep.errors import InvalidInputError
from sbihep.fit import CountingTerm, GaussianTerm, Likelihood, neyman_belt
from sbihep.fit.coverage import NeymanMethod, covered
from sbihep.fit.intervals import ONE_SIGMA
from sbihep.fit.neyman_nuisance import TIE_TOLERANCE, calibrated_thresholds, discrete_quantile
from sbihep.params import Parameter, ParameterSpace

sys.path.insert(0, str(Path(__file__).parent))
S, B = 5.0, 12.0


def small_onoff(n_on=15.0, n_off=12.0):
    space = ParameterSpace([Parameter("mu", 1.0, (0.0, 5.0)), Parameter("nu", 1.0, (0.6, 1.4), kind="nuisance")])
    return Likelihood([CountingTerm([n_on, n_off], [{"nu": B, "mu": S}, {"nu": B}], space)])


def test_weighted_discrete_quantile_counts_left_out_probability_as_rejected():
    v = np.array([0.0, 1.0, 2.0, np.nan])
    w = np.array([0.5, 0.2, 0.2, 0.1])
    assert discrete_quantile(v, 0.5, weights=w) == 0.0
    assert discrete_quantile(v, 0.6827, weights=w) == 1.0
    assert discrete_quantile(v, 0.9, weights=w) == 2.0
    assert np.isnan(discrete_quantile(v, 0.95, weights=w))  # the NaN entry's 0.1 is never accepted


@pytest.fixture(scope="module")
def exact_belt():
    return neyman_belt(small_onoff(), {"mu": [0.0]}, nuisance_grid={"nu": [0.6, 1.0, 1.4]}, method="exact",
                       cls=(ONE_SIGMA,), exact_tail=1e-4)


def test_exact_belt_holds_the_poisson_lattice_with_exact_probabilities(exact_belt):
    belt = exact_belt
    assert belt.attrs["method"] == "exact"
    # fits flagged failed (counts 0, minimum in a corner of the bounds) are rare and count as rejected
    failed = np.isnan(belt["statistic"].values) & (belt["weight"].values > 0)
    assert float((belt["weight"].values * failed).sum(axis=-1).max()) < 2e-3
    assert float(belt["missing_probability"].max()) <= 1e-4
    for a, mu in enumerate([0.0]):
        counts = belt["lattice_counts"].values[a]
        ok = np.isfinite(counts[:, 0])
        for b, nu in enumerate([0.6, 1.0, 1.4]):
            w = belt["weight"].values[a, b]
            pmf = stats.poisson.pmf(counts[ok, 0], nu * B + mu * S) * stats.poisson.pmf(counts[ok, 1], nu * B)
            np.testing.assert_allclose(w[ok], pmf, rtol=1e-10)
            assert 1 - w.sum() == pytest.approx(float(belt["missing_probability"].values[a, b]), abs=1e-12)
    # t at a lattice point is the profile-likelihood ratio of those counts (closed form at μ = 0: ν̂̂ = (n_on+n_off)/2b)
    counts = belt["lattice_counts"].values[0]
    i = int(np.flatnonzero((counts[:, 0] == 21) & (counts[:, 1] == 9))[0])
    nu0 = np.clip(30 / (2 * B), 0.6, 1.4)
    nll0 = 2 * nu0 * B - 21 * math.log(nu0 * B) - 9 * math.log(nu0 * B)
    nuf = np.clip(9 / B, 0.6, 1.4)
    muf = np.clip((21 - nuf * B) / S, 0, 5)
    nllf = (nuf * B + muf * S) + nuf * B - 21 * math.log(nuf * B + muf * S) - 9 * math.log(nuf * B)
    assert belt["statistic"].values[0, 1, i] == pytest.approx(2 * (nll0 - nllf), abs=2e-3)
    assert belt["profiled_nuisance"].values[0, 1, i, 0] == pytest.approx(nu0, abs=1e-3)
    # the stored critical value is the exact conservative quantile
    t, w = belt["statistic"].values[0, 0], belt["weight"].values[0, 0]
    c = float(belt["critical_value"].values[0, 0, 0])
    assert w[t <= c].sum() >= ONE_SIGMA > w[t < c - 1e-9].sum()


def test_calibrated_construction_on_an_exact_belt_covers_at_every_node(exact_belt):
    """Node coverage, summed over the lattice with the decisions covered() takes on each count
    vector (fits, the data's own ν̂̂), is ≥ cl at every node: exact, no toy margin."""
    lik = small_onoff()
    method = NeymanMethod(exact_belt, ONE_SIGMA, construction="calibrated")
    counts = exact_belt["lattice_counts"].values[0]
    ok = np.isfinite(counts[:, 0])
    dec = np.array([covered(Likelihood([lik.terms[0].with_counts(c)]), {"mu": 0.0, "nu": 1.0}, [method], polish=True)[0]
                    for c in counts[ok]])
    dec = np.nan_to_num(dec)  # a failed fit counts as not covered
    for b in range(3):
        w = exact_belt["weight"].values[0, b][ok]
        assert np.sum(w * dec) >= ONE_SIGMA - 1e-9


def test_exact_method_refuses_what_it_cannot_enumerate():
    space = ParameterSpace([Parameter("mu", 0.0, (-5, 5))])
    gauss = Likelihood([GaussianTerm([0.0], [[1.0]], [0.0], space, linear={"mu": [1.0]})])
    with pytest.raises(InvalidInputError, match="CountingTerm"):
        neyman_belt(gauss, {"mu": [0.0]}, method="exact")
    with pytest.raises(InvalidInputError, match="max_lattice_points"):
        neyman_belt(small_onoff(), {"mu": [0.0]}, method="exact", max_lattice_points=10)
    with pytest.raises(InvalidInputError, match="method"):
        neyman_belt(small_onoff(), {"mu": [0.0]}, method="exakt")
    with pytest.raises(InvalidInputError, match="exact_tail"):
        neyman_belt(small_onoff(), {"mu": [0.0]}, method="exact", exact_tail=0.5)


def test_calibrated_on_exact_onoff_probabilities_covers_between_nodes_without_toy_margin():
    """LF2I OnOff at μ = 0 (closed-form t and ν̂̂ on the lattice, exact probabilities, 17 ν nodes):
    coverage ≥ cl − 0.002 at 41 true ν, nodes and between them, and overcoverage ≤ 0.035 (the
    data's point masses force +2.2% even for the test that knows ν, at ν = 0.6).  Fails on the old
    code, which ignored the lattice probabilities (and added a 1000-toy margin)."""
    import test_fit_neyman_nuisance as onoff

    mu = 0.0
    nodes = np.linspace(0.6, 1.4, 17)
    fine = np.linspace(0.6, 1.4, 41)
    t = np.maximum(2 * (onoff.nll(mu, onoff.nu_hat(mu)) - onoff.free_nll()), 0.0).ravel()
    nh = onoff.nu_hat(mu).ravel()
    keep = np.zeros(t.shape, dtype=bool)
    for nu in fine:
        keep |= onoff.prob(mu, nu).ravel() > 1e-8
    t, nh = t[keep], nh[keep]
    P = np.array([onoff.prob(mu, nu).ravel()[keep] for nu in nodes])
    n = t.size
    belt = xr.Dataset({"statistic": (("mu", "nu", "toy"), np.broadcast_to(t, (1, 17, n)).copy()),
                       "weight": (("mu", "nu", "toy"), P[None]),
                       "profiled_nuisance": (("mu", "nu", "toy", "nuisance"), np.broadcast_to(nh[:, None], (1, 17, n, 1)).copy())},
                      coords={"mu": [mu], "nu": nodes, "cl": [0.5], "nuisance": ["nu"]},
                      attrs={"tested": "mu", "nuisances": "nu"})
    h = calibrated_thresholds(belt, ONE_SIGMA)[0]
    accepted = t <= np.interp(nh, nodes, h) + TIE_TOLERANCE
    cov = np.array([onoff.prob(mu, nu).ravel()[keep][accepted].sum() for nu in fine]) - ONE_SIGMA
    assert cov.min() > -0.002, cov
    assert cov.max() < 0.035, cov


def _weighted_belt(t, w, nu_hat, nodes):
    """A hand-made exact nuisance belt over one tested point mu = 0 (t, w, nu_hat: (n_nodes, n))."""
    t, w, nu_hat = (np.asarray(x, dtype=float) for x in (t, w, nu_hat))
    return xr.Dataset({"statistic": (("mu", "nu", "toy"), t[None]), "weight": (("mu", "nu", "toy"), w[None]),
                       "profiled_nuisance": (("mu", "nu", "toy", "nuisance"), nu_hat[None, :, :, None])},
                      coords={"mu": [0.0], "nu": np.asarray(nodes, dtype=float), "cl": [0.5], "nuisance": ["nu"]},
                      attrs={"tested": "mu", "nuisances": "nu"})


def _node_coverage(belt, h):
    nodes = np.asarray(belt["nu"], dtype=float)
    t, w = belt["statistic"].values[0], belt["weight"].values[0]
    nh = belt["profiled_nuisance"].values[0, :, :, 0]
    return np.array([np.sum(w[j][t[j] <= np.interp(nh[j], nodes, h) + TIE_TOLERANCE]) for j in range(len(nodes))])


def test_calibrated_reaches_the_target_at_a_node_whose_data_read_only_other_nodes():
    """Node ν = 0's data sets all have ν̂̂ = 1 (they read only h(ν = 1)): its own h cannot help,
    and the old raising passes stalled and returned h with coverage 0 there, silently.  Now h(1)
    is raised until node 0 is covered, then lowered as far as both targets allow: h(1) = 2."""
    belt = _weighted_belt(t=[[0.5, 1.0, 2.0, 3.0], [0.0, 0.1, 0.2, 5.0]], w=np.full((2, 4), 0.25),
                          nu_hat=np.ones((2, 4)), nodes=[0.0, 1.0])
    h = calibrated_thresholds(belt, 0.7)[0]
    cov = _node_coverage(belt, h)
    assert np.all(cov >= 0.7), (h, cov)
    assert cov[0] == pytest.approx(0.75)
    assert h[1] == pytest.approx(2.0 - TIE_TOLERANCE, abs=1e-6)  # the lowering leaves no slack


def test_calibrated_warns_where_failed_fits_leave_less_than_cl():
    """An exact node whose failed fits (t NaN) carry 50% of the probability cannot reach cl = 0.68:
    said with a CoverageWarning instead of a silently low coverage."""
    from sbihep.errors import CoverageWarning

    belt = _weighted_belt(t=[[0.1, 0.2, np.nan, np.nan], [0.1, 0.2, 0.3, 0.4]], w=np.full((2, 4), 0.25),
                          nu_hat=[[0.0] * 4, [1.0] * 4], nodes=[0.0, 1.0])
    with pytest.warns(CoverageWarning, match="below cl"):
        calibrated_thresholds(belt, 0.68)


def test_calibrated_lowering_keeps_every_node_covered_on_random_belts():
    """Random exact belts (3 nodes, shared data sets, point masses at t = 0): after the lowering
    passes every node's exact coverage is still ≥ cl."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = 40
        t = np.where(rng.random((3, n)) < 0.3, 0.0, rng.exponential(1.0, (3, n)))
        w = rng.dirichlet(np.ones(n), size=3) * (1 - 1e-7)
        nh = rng.uniform(0.0, 2.0, (3, n))
        belt = _weighted_belt(t, w, nh, nodes=[0.0, 1.0, 2.0])
        for cl in (ONE_SIGMA, 0.95):
            h = calibrated_thresholds(belt, cl)[0]
            assert np.all(_node_coverage(belt, h) >= cl - 1e-9)


def test_exact_fixed_belt_accepts_data_tied_with_the_critical_atom():
    """One Poisson count n ~ Pois(3 + μ), exact belt at μ = 2, cl = 0.6: the critical value is t of
    n = 7 (P = 0.104).  The old rule t_obs ≤ c rejected n = 7 whenever its refit came out 5e-13
    higher than the lattice fit — coverage 0.497 instead of the belt's 0.602.  Now the data's
    coverage, summed over the lattice, equals the belt's, and the Neyman set of n = 7 holds μ = 2."""
    from sbihep.fit import neyman_interval

    space = ParameterSpace([Parameter("mu", 1.0, (0.0, 10.0))])

    def lik(n):
        return Likelihood([CountingTerm([n], [{"mu": 1.0, "1": 3.0}], space)])

    belt = neyman_belt(lik(3.0), {"mu": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, method="exact", cls=(0.6,), polish=True)
    k = 1
    counts, w = belt["lattice_counts"].values[k, :, 0], belt["weight"].values[k]
    t, c = belt["statistic"].values[k], float(belt["critical_value"].values[k, 0])
    ok = np.isfinite(counts)
    assert counts[ok][np.argmin(np.abs(t[ok] - c))] == 7.0
    method = NeymanMethod(belt, 0.6)
    dec = np.array([covered(lik(n), {"mu": 2.0}, [method], polish=True)[0] for n in counts[ok]])
    belt_cov = float(w[ok][t[ok] <= c].sum())
    assert belt_cov >= 0.6
    assert float(np.sum(w[ok] * np.nan_to_num(dec))) == pytest.approx(belt_cov, abs=1e-12)
    assert neyman_interval(lik(7.0), belt, 0.6, polish=True).contains(2.0)
