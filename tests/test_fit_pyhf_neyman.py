"""Neyman belt and coverage for a pyhf model through PyhfTerm.toy (impossible before: no toy())."""

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")

from sbihep.fit import Likelihood, NeymanMethod, PyhfTerm, WilksMethod, coverage, neyman_belt, neyman_interval  # noqa: E402
from sbihep.fit.intervals import ONE_SIGMA  # noqa: E402


def test_neyman_belt_and_coverage_on_a_pyhf_model():
    pyhf.set_backend("numpy")
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    data = np.array([60.0, 58.0] + model.config.auxdata)
    lik = Likelihood([PyhfTerm.from_model(model, data)])
    grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    belt = neyman_belt(lik, {"mu": grid}, n_toys=60, cls=(ONE_SIGMA,), seed=4, tolerance=0.1)
    assert int(belt["n_failed"].sum()) == 0
    crit = np.asarray(belt["critical_value"]).ravel()
    # away from the bound μ = 0 the 68% critical value is close to Wilks' 1 (a Gaussian-like model)
    assert np.all((crit[1:] > 0.5) & (crit[1:] < 1.8))
    iv = neyman_interval(lik, belt, ONE_SIGMA, tolerance=0.1)
    assert iv.low < 0.8 < iv.high
    truth = dict(zip(lik.names, [0.8, 1.0, 1.0]))
    cov = coverage(lik, truth, {"neyman": NeymanMethod(belt, ONE_SIGMA), "wilks": WilksMethod(("mu",), ONE_SIGMA)},
                   n_toys=80, seed=9, tolerance=0.1)
    for label in ("neyman", "wilks"):
        p = float(cov["coverage"].sel(interval_method=label))
        err = float(cov["coverage_error"].sel(interval_method=label))
        assert abs(p - ONE_SIGMA) < 3.5 * err + 0.02
