"""Fisher information of a statistic (``score_information``): exact identities on a synthetic EventSet.

The EventSet is a 1D toy with known score: x ~ N(0, 1) at the SM and per-event coefficients
(1, x, x² − 1)/N over the monomials (1, a, b) at linear order, so p(x|θ) ∝ φ(x)(1 + a x + b (x² − 1))
and the exact score at the SM is t = (x − x̄, x² − 1 − mean) (x̄, mean: weighted sample means).
"""

import numpy as np
import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators import information as info
from sbihep.events.eventset import EventSet

torch.set_num_threads(1)
LUMI = 1.0


def toy_events(n=20_000, seed=0):
    x = np.random.default_rng(seed).normal(size=n)
    coefficients = np.stack([np.ones(n), x, x**2 - 1], axis=1) / n
    momenta = np.zeros((n, 1, 4))
    momenta[:, 0, 0] = 1.0
    events = EventSet.from_arrays(momenta=momenta, roles=["a"], coefficients=coefficients, operators=["a", "b"], order="linear")
    return events.with_observables({"x": x}), x


@pytest.fixture(scope="module")
def toy():
    return toy_events()


def test_projection_recovers_the_truth_for_any_invertible_linear_map_of_the_score(toy):
    events, x = toy
    truth = info.truth_information(events, lumi_ifb=LUMI).values
    # the exact score up to an invertible linear map and offsets: the information is the truth …
    s = np.stack([2 * x + 1, 3 * x**2 - x + 5], axis=1)
    proj = info.score_information(events, s, lumi_ifb=LUMI).values
    np.testing.assert_allclose(proj, truth, rtol=1e-9, atol=1e-12 * np.abs(truth).max())
    # … while the plain second moment calls a rescaled score more informative than the truth
    moment = info.score_information(events, s, lumi_ifb=LUMI, include_rate=False, method="moment").values
    assert moment[0, 0] > 4 * truth[0, 0]
    # the exact score itself: both estimates equal the truth
    t = events.joint_score().numpy()
    for method in ("projection", "moment"):
        np.testing.assert_allclose(info.score_information(events, t, lumi_ifb=LUMI, method=method).values, truth, rtol=1e-9)


def test_projection_of_a_noisy_score_and_of_one_observable(toy):
    events, x = toy
    kin = info.truth_information(events, lumi_ifb=LUMI, include_rate=False).values
    sigma_pb = events.sigma()
    assert kin[0, 0] / (1000 * sigma_pb) == pytest.approx(1.0, abs=0.03)  # Var x = 1
    assert kin[1, 1] / (1000 * sigma_pb) == pytest.approx(2.0, abs=0.08)  # Var(x² − 1) = 2
    # t̂ = t + independent noise of variance τ²: the fraction is 1/(1 + τ²) (here 0.8), while the
    # second moment reports 1 + τ² (more than the truth)
    noisy = x + np.random.default_rng(1).normal(scale=0.5, size=len(x))
    proj = info.score_information(events, noisy, lumi_ifb=LUMI, include_rate=False).values
    assert proj[0, 0] / kin[0, 0] == pytest.approx(0.8, abs=0.01)
    # the statistic x alone carries (almost) no information on b: Cov(x, x²) = E[x³] = 0
    assert proj[1, 1] / kin[1, 1] < 0.01
    # never more than the truth (matrix sense), for any statistic
    s = np.stack([np.sin(x), np.abs(x), x**3], axis=1)
    gap = kin - info.score_information(events, s, lumi_ifb=LUMI, include_rate=False).values
    assert np.linalg.eigvalsh(gap).min() > -1e-10 * np.abs(kin).max()


def test_projection_on_bin_indicators_is_the_histogram_information(toy):
    events, x = toy
    edges = np.array([-np.inf, -1.5, -0.7, 0.0, 0.4, 1.1, 2.0, np.inf])
    indicators = (np.digitize(x, edges[1:-1])[:, None] == np.arange(len(edges) - 1)[None]).astype(float)
    hist = info.histogram_information(events, "x", edges, lumi_ifb=LUMI).values
    proj = info.score_information(events, indicators, lumi_ifb=LUMI).values  # redundant columns: pseudo-inverse
    np.testing.assert_allclose(proj, hist, rtol=1e-9, atol=1e-12 * np.abs(hist).max())


def test_score_information_rejects_bad_input(toy):
    events, x = toy
    with pytest.raises(InvalidInputError, match="method"):
        info.score_information(events, x, lumi_ifb=LUMI, method="square")
    with pytest.raises(ShapeError, match="statistic"):
        info.score_information(events, x[:-1], lumi_ifb=LUMI)
    with pytest.raises(ShapeError, match="one column per parameter"):
        info.score_information(events, x, lumi_ifb=LUMI, method="moment")
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        info.score_information(events, bad, lumi_ifb=LUMI)
    with pytest.raises(InvalidInputError, match="lumi_ifb"):
        info.score_information(events, x, lumi_ifb=0.0)
