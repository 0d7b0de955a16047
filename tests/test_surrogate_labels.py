"""The label rule of sbihep.surrogates.labels: lowest converged start, drop only when none converged,
disagreements counted (not dropped), and the nearest-neighbour start."""

from __future__ import annotations

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")
iminuit = pytest.importorskip("iminuit")

from sbihep.surrogates import labels as labels_mod  # noqa: E402
from sbihep.surrogates.labels import combine_starts, generate_labels, load_problem  # noqa: E402

from _pyhf_toy import toy_spec  # noqa: E402


def double_well(a: float):
    """f(θ) = (θ² − 1)² + a θ: two local minima near θ = ±1, f(−1) − f(+1) ≈ −2a."""
    return lambda th: (th[0] ** 2 - 1.0) ** 2 + a * th[0]


def _minuit(f, start):
    m = iminuit.Minuit(f, [start])
    m.errordef = iminuit.Minuit.LEAST_SQUARES
    m.migrad()
    return float(m.fval) if m.valid and m.fmin.edm < 1e-6 else None


def test_rule_on_a_toy_with_two_local_minima():
    a = 0.008  # minima 2a = 0.016 apart: below a 0.02 "agreement" scale, like the ATLAS 3L workspace
    f = double_well(a)
    lower = float(f(np.array([-1.0 - a / 8])))  # f near its global minimum at θ ≈ −1 − a/8
    fits = [_minuit(f, 1.3), _minuit(f, -1.3)]  # the two starts fall into different minima
    assert None not in fits and abs(fits[0] - fits[1]) == pytest.approx(2 * a, rel=0.05)
    value, index, disagree = combine_starts(fits, agree_tol=0.01)
    assert index == 1 and value == pytest.approx(lower, abs=1e-6) and disagree  # lowest, flagged
    assert combine_starts(fits, agree_tol=0.02)[2] is False  # within tolerance: no flag
    # one start failed: the converged one is the label; none converged: dropped
    assert combine_starts([None, fits[0]], 0.02) == (fits[0], 1, False)
    assert combine_starts([None, None], 0.02) == (None, -1, False)
    assert combine_starts([float("nan"), 2.0], 0.02) == (2.0, 1, False)


@pytest.fixture(scope="module")
def problem_and_exact():
    problem = load_problem(toy_spec(), bounds=[[0.0, 8.0]])
    x = np.array([[0.5], [1.5], [3.0]])
    exact = generate_labels(problem, x=x, n_workers=1, progress=False)
    assert exact.n_dropped == {"observed": 0, "asimov": 0, "asimov_prefit": 0} and exact.n_disagree == {"observed": 0, "asimov": 0, "asimov_prefit": 0}
    return problem, x, exact


def _is_suggested_start(model, init) -> bool:
    slot = model.config.poi_index
    sugg = np.delete(np.asarray(model.config.suggested_init(), float), slot)
    return bool(np.allclose(np.delete(np.asarray(init, float), slot), sugg))


def test_local_minimum_of_one_start_is_not_dropped(problem_and_exact, monkeypatch):
    """The suggested start lands 0.03 too high (a local minimum): the labels keep the lower start's
    value, are counted as disagreements and are NOT dropped (the old rule dropped them)."""
    problem, x, exact = problem_and_exact
    real_fit = labels_mod._fit

    def local_minima(data, model, init, fixed, bounds, edm_max):
        r = real_fit(data, model, init, fixed, bounds, edm_max)
        if r is not None and fixed[model.config.poi_index] and _is_suggested_start(model, init):
            return r[0] + 0.03, r[1], r[2]
        return r

    monkeypatch.setattr(labels_mod, "_fit", local_minima)
    out = generate_labels(problem, x=x, n_workers=1, progress=False, agree_tol=0.02, neighbour_start=False)
    assert out.n_dropped == {"observed": 0, "asimov": 0, "asimov_prefit": 0}
    assert out.n_disagree == {"observed": 3, "asimov": 3, "asimov_prefit": 3}
    np.testing.assert_allclose(out.t, exact.t, atol=2e-3)
    # with one start only there is nothing to compare: the local minimum is the label
    one = generate_labels(problem, x=x, n_starts=1, n_workers=1, progress=False, neighbour_start=False)
    np.testing.assert_allclose(one.t - exact.t, 0.03, atol=2e-3)


def test_drop_only_when_no_start_converges_and_neighbour_rescue(problem_and_exact, monkeypatch):
    """At μ = 3 both standard starts fail; at μ = 1.5 only the suggested one fails.  μ = 1.5 is kept
    from its other start; μ = 3 is dropped without the neighbour start and rescued with it."""
    problem, x, exact = problem_and_exact
    real_fit = labels_mod._fit
    model = problem.model()
    obs = list(map(float, pyhf.tensorlib.tolist(pyhf.Workspace(problem.spec).data(model))))
    best = real_fit(obs, model, model.config.suggested_init(), model.config.suggested_fixed(),
                    model.config.suggested_bounds(), 1e-3)[1]
    slot = model.config.poi_index

    def flaky(data, model, init, fixed, bounds, edm_max):
        if fixed[slot]:
            mu = init[slot]
            from_best = np.allclose(np.delete(np.asarray(init, float), slot), np.delete(best, slot))
            if mu == 3.0 and (_is_suggested_start(model, init) or from_best):
                return None
            if mu == 1.5 and _is_suggested_start(model, init):
                return None
        return real_fit(data, model, init, fixed, bounds, edm_max)

    monkeypatch.setattr(labels_mod, "_fit", flaky)
    out = generate_labels(problem, x=x, n_workers=1, progress=False, neighbour_start=False)
    assert out.n_dropped == {"observed": 1, "asimov": 1, "asimov_prefit": 1}
    assert out.x[:, 0].tolist() == [0.5, 1.5]
    np.testing.assert_allclose(out.t, exact.t[:2], atol=2e-3)
    rescued = generate_labels(problem, x=x, n_workers=1, progress=False, neighbour_start=True)
    assert rescued.n_dropped == {"observed": 0, "asimov": 0, "asimov_prefit": 0}
    assert rescued.n_neighbour == {"observed": 1, "asimov": 1, "asimov_prefit": 1}
    np.testing.assert_allclose(rescued.t, exact.t, atol=2e-3)


def test_sample_inputs_keep_points_off_a_bound():
    """A centre on the box's lower bound (a best fit at μ = 0) gets its near points inside the box, spread."""
    x = labels_mod.sample_inputs(np.array([[0.0, 10.0]]), [np.array([0.0])], [np.array([0.5])], 20, frac_near=0.5, seed=3)
    near = x[10:, 0]
    assert (near >= 0).all() and (near <= 2.0).all()
    assert len(np.unique(near)) == 10 and (near > 0).all()  # no pile-up at the bound


def test_scales_calibrated_by_fits_when_the_best_fit_sits_on_a_bound():
    """Observed deficit: μ̂ = 0 on the bound, where MINUIT's error says nothing; the calibrated scale makes
    the near points cover the region −2ΔlnL ≲ 16 that the surrogate has to describe."""
    problem = load_problem(toy_spec(observed=(44.0, 26.0)), bounds=[[0.0, 20.0]])
    labels = generate_labels(problem, 16, n_workers=1, progress=False, seed=0)
    assert labels.best_fit["observed"][0] == pytest.approx(0.0, abs=1e-3)
    near_small = (labels.t[:, 0] < 16).sum()
    assert near_small >= 10, labels.t[:, 0]  # 11 of the 16 points are near points
    assert len(np.unique(np.round(labels.x[:, 0], 9))) == len(labels.x)  # no duplicated inputs
    assert labels.t[:, 0].max() > 16  # and the box beyond is covered too


def test_sample_inputs_stratified_near_each_centre_in_one_dimension():
    x = labels_mod.sample_inputs(np.array([[0.0, 10.0]]), [np.array([1.0]), np.array([0.0])],
                                 [np.array([0.25]), np.array([0.5])], 26, frac_near=10 / 13, seed=0)
    first, second = np.sort(x[6::2, 0]), np.sort(x[7::2, 0])  # near points alternate between the centres
    assert first.min() >= 0.0 and first.max() <= 2.0 and second.max() <= 2.0
    # one point in each tenth of each centre's interval: no gap wider than two strata
    assert np.diff(np.concatenate([[0.0], first, [2.0]])).max() < 2 * 0.2
    assert np.diff(np.concatenate([[0.0], second, [2.0]])).max() < 2 * 0.2
