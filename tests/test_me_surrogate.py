"""Two-stage unweighting with a matrix-element surrogate is exactly unbiased, whatever the surrogate.

Toy: r ∈ [0, 1)², w_kin = 1 + r₁ (the "cheap" factor), |M|² = f(r)/(1 + r₁) with
f(r) = 3 r₀² · 5 e^{−5 r₁}/(1 − e^{−5}), so σ = ∫ f = 1 exactly, r₀ has density 3 r₀² and r₁ density
5 e^{−5 r₁}/(1 − e^{−5}) (direct unweighting efficiency ≈ 1/15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.surrogates.matrix_element import (
    IntegrandProblem,
    MESurrogate,
    predicted_gain,
    train_me_surrogate,
    unweight_direct,
    unweight_two_stage,
)

torch.set_num_threads(1)
NORM1 = 1.0 - np.exp(-5.0)


class Toy:
    dim = 2

    def sample(self, n, rng):
        r = rng.random((n, 2))
        return {"r": r, "w_kin": 1.0 + r[:, 1]}

    @staticmethod
    def log_me(r):
        return np.log(3 * r[:, 0] ** 2 * 5 * np.exp(-5 * r[:, 1]) / NORM1 / (1.0 + r[:, 1]))

    def exact(self, sample):
        r = sample["r"]
        return {"weight": sample["w_kin"] * np.exp(self.log_me(r)), "r0_copy": r[:, 0].copy()}


def good_surrogate(r):  # 10 % wiggles around the truth
    return Toy.log_me(r) + 0.1 * np.sin(6.0 * r[:, 0])


def uninformative_surrogate(r):  # knows nothing: stage 1 keeps ≈ 3/4, stage 2 does all the work
    return np.zeros(len(r))


def terrible_surrogate(r):  # peaks at r₁ = 1 where the truth peaks at r₁ = 0 (ratio spans e^±5)
    return Toy.log_me(np.stack([r[:, 0], 1.0 - r[:, 1]], 1)) + np.log((2.0 - r[:, 1]) / (1.0 + r[:, 1]))


def _edges(which):
    q = np.linspace(0, 1, 11)
    return q ** (1 / 3) if which == 0 else -np.log(1 - q * NORM1) / 5


def _chi2_vs_truth(sample, which):
    """Weighted χ² of the r₀ or r₁ histogram against its exact density (10 equiprobable bins)."""
    x, w = sample.r[:, which], sample.weights
    W, _ = np.histogram(x, _edges(which), weights=w)
    p = 0.1
    chi2 = np.sum((W - w.sum() * p) ** 2 / (p * np.sum(w**2)))
    return stats.chi2.sf(chi2, 9)


def _chi2_two_samples(a, b, values):
    """Two-sample weighted χ² on 10 bins at the pooled deciles of ``values(sample)``."""
    xa, xb = values(a), values(b)
    edges = np.quantile(np.concatenate([xa, xb]), np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    ha, _ = np.histogram(xa, edges, weights=a.weights / a.weights.sum())
    hb, _ = np.histogram(xb, edges, weights=b.weights / b.weights.sum())
    va, _ = np.histogram(xa, edges, weights=(a.weights / a.weights.sum()) ** 2)
    vb, _ = np.histogram(xb, edges, weights=(b.weights / b.weights.sum()) ** 2)
    return stats.chi2.sf(np.sum((ha - hb) ** 2 / (va + vb)), 9)


OBSERVABLES = {"r0": lambda s: s.r[:, 0], "r1": lambda s: s.r[:, 1], "r0*r1": lambda s: s.r[:, 0] * s.r[:, 1],
               "r0-r1": lambda s: s.r[:, 0] - s.r[:, 1]}


@pytest.fixture(scope="module")
def samples():
    kw = dict(n_pilot=20_000, chunk_size=20_000, quiet=True)
    return {
        "direct": unweight_direct(Toy(), 4000, seed=1, **kw),
        "good": unweight_two_stage(Toy(), good_surrogate, 4000, seed=2, **kw),
        "uninformative": unweight_two_stage(Toy(), uninformative_surrogate, 4000, seed=5, **kw),
        "terrible": unweight_two_stage(Toy(), terrible_surrogate, 1500, seed=3, **kw),
    }


def test_two_stage_matches_exact_distributions_and_sigma(samples):
    for name in ("direct", "good", "uninformative", "terrible"):
        s = samples[name]
        rep = s.report
        assert len(s.r) == (1500 if name == "terrible" else 4000) and s.weights.sum() == pytest.approx(rep.sigma_pb, rel=1e-12)
        # σ = 1 exactly
        assert abs(rep.sigma_pb - 1.0) < 3 * rep.sigma_error_pb, (name, rep.sigma_pb, rep.sigma_error_pb)
        assert rep.sigma_error_pb < 0.03
        for which in (0, 1):
            assert _chi2_vs_truth(s, which) > 0.01, (name, which)
        # the records of exact() follow the accepted events
        np.testing.assert_array_equal(s.records["r0_copy"], s.r[:, 0])
    for name in ("good", "uninformative", "terrible"):
        for obs, fn in OBSERVABLES.items():
            assert _chi2_two_samples(samples[name], samples["direct"], fn) > 0.01, (name, obs)


def test_efficiencies_reflect_surrogate_quality(samples):
    d, g, u, t = (samples[k].report for k in ("direct", "good", "uninformative", "terrible"))
    assert d.efficiency_stage2 == 1.0 and 0.04 < d.efficiency < 0.09  # ≈ 1/15 (with overweights)
    assert g.efficiency_stage2 > 0.75  # a 10 % surrogate: most survivors are kept
    assert abs(g.efficiency_stage1 - d.efficiency) < 0.02  # stage 1 ≈ direct unweighting
    # a poor surrogate only costs efficiency: stage 2 rejects what stage 1 should have
    assert u.efficiency_stage1 > 0.7 and u.efficiency_stage2 < 0.1
    assert t.efficiency < 0.05 * g.efficiency
    for rep in (d, g, u):
        assert rep.overweight_fraction < 0.01


def test_perfect_surrogate_and_cost_model():
    s = unweight_two_stage(Toy(), Toy.log_me, 500, seed=4, n_pilot=5000, chunk_size=5000, quiet=True)
    assert s.report.efficiency_stage2 == 1.0 and s.report.x_max == pytest.approx(1.0)
    # predicted gain: exact weights 100× costlier than sampling+surrogate, ε = 5 %: ≈ 1/(0.05 + 0.01·1.05)
    gain = predicted_gain(0.05, 0.05, 1.0, t_sample=1.0, t_surrogate=0.0, t_exact=100.0)
    assert gain == pytest.approx((101 / 0.05) / ((1 + 0.05 * 100) / 0.05))
    assert predicted_gain(0.05, 0.05, 1.0, 0.0, 0.0, 1.0) == pytest.approx(20.0)  # → ε₂/ε_direct


def test_bad_input():
    with pytest.raises(InvalidInputError, match="n_events"):
        unweight_direct(Toy(), 0, quiet=True)
    with pytest.raises(InvalidInputError, match="max_overweight"):
        unweight_two_stage(Toy(), good_surrogate, 10, max_overweight=1.5, quiet=True)
    with pytest.raises(InvalidInputError, match="surrogate"):
        unweight_two_stage(Toy(), None, 10, quiet=True)
    with pytest.raises(InvalidInputError, match="surrogate"):
        unweight_two_stage(Toy(), lambda r: np.full(len(r), np.nan), 10, n_pilot=100, quiet=True)
    with pytest.raises(ShapeError, match="surrogate"):
        unweight_two_stage(Toy(), lambda r: np.zeros((len(r), 2)), 10, n_pilot=100, quiet=True)

    class Negative(Toy):
        def exact(self, sample):
            return {"weight": -np.ones(len(sample["r"]))}

    with pytest.raises(InvalidInputError, match="weights"):
        unweight_direct(Negative(), 10, n_pilot=100, quiet=True)
    with pytest.raises(ShapeError, match="r"):
        MESurrogate(2)(np.zeros((3, 3)))


def test_ttbar_gg_surrogate_unbiased_and_round_trip(tmp_path):
    from sbihep.physics.processes.ttbar import TTbar
    from sbihep.physics.xsec import PhaseSpaceIntegrand

    problem = IntegrandProblem(PhaseSpaceIntegrand(TTbar(), 13_000.0, "quadratic", subprocess="gg"))
    sur = train_me_surrogate(problem, 4000, hidden=(32, 32), epochs=30, batch_size=256, seed=0, device="cpu",
                             quiet=True, metadata={"process": "ttbar", "subprocess": "gg", "sqrt_s_gev": 13000.0})
    assert sur.training["validation_rms_log"] < 0.3 * sur.target_std  # learned, if roughly (4000 points)
    kw = dict(n_pilot=4000, chunk_size=10_000, quiet=True)
    two = unweight_two_stage(problem, sur, 300, seed=1, **kw)
    direct = unweight_direct(problem, 300, seed=2, **kw)
    r2, rd = two.report, direct.report
    assert abs(r2.sigma_pb - rd.sigma_pb) < 3 * np.hypot(r2.sigma_error_pb, rd.sigma_error_pb)
    assert 0.02 < rd.efficiency < 0.08  # flat sampling: ε ≈ 4 %
    assert r2.n_survivors < 0.2 * r2.n_points  # exact |M|² computed for a small fraction of the points
    # exact EFT coefficients ride along: the weight at θ_gen (SM) is the first coefficient
    assert two.records["coefficients"].shape == (300, 3) and two.records["momenta"].shape == (300, 4, 4)
    sur.save(tmp_path / "me")
    again = MESurrogate.load(tmp_path / "me")
    np.testing.assert_array_equal(again(two.r), sur(two.r))
    assert again.metadata["process"] == "ttbar"
