"""minimize on a pyhf model whose μ̂ sits on its bound 0 (as for stau highMass): still converged and
usable, flagged at_bound with a NaN error for μ (before: converged with μ's error ~0)."""

import math

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")

from sbihep.fit import Likelihood, PyhfTerm, cls_upper_limit, minimize  # noqa: E402


def test_pyhf_mu_hat_on_its_bound():
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    data = np.array([41.0, 40.0] + model.config.auxdata)  # below the background: μ̂ < 0 unconstrained
    lik = Likelihood([PyhfTerm.from_model(model, data)])
    assert not lik.has_analytic_grad
    fit = minimize(lik)
    assert fit.converged and fit.at_bound == ("mu",) and fit.values["mu"] == 0.0
    assert math.isnan(fit.errors["mu"])
    assert all(math.isfinite(fit.errors[n]) and fit.errors[n] > 0 for n in fit.free if n != "mu")
    # the conditional fit at μ = 0 is the same point
    cond = minimize(lik, fixed={"mu": 0.0}, hesse=False)
    assert cond.converged and cond.nll == pytest.approx(fit.nll, abs=1e-5)
    ul = cls_upper_limit(lik, tolerance=1e-4, expected=False)
    assert math.isfinite(ul.observed) and ul.observed > 0 and ul.best_fit == 0.0
