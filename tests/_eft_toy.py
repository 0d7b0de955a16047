"""A toy EventSet with two operators whose dσ(x|θ)/dσ(x|SM) is known exactly (shared by estimator tests)."""

import numpy as np

from sbihep.events.eventset import EventSet
from sbihep.params import Parameter, ParameterSpace

SPACE = ParameterSpace([Parameter("ca", 0.0, (-1.0, 1.0)), Parameter("cb", 0.0, (-1.0, 1.0))])
NOISE = 0.3


def toy_events(n, seed, order="quadratic"):
    """Weighted events x = (x1, x2) ~ U(−1, 1)², w_SM = 1 + x1/2, and per-event amplitude-like weights
    w(θ)/w(SM) = (1 + θa u + θb v)² + (θa q)² with a latent u = x1 + η (η ~ N(0, 0.3²)), v = x1 x2, q = x2/2.
    Exactly: ρ(x|θ) = 1 + 2θa x1 + 2θb v + θa² (x1² + 0.09 + q²) + 2θaθb x1 v + θb² v²."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, (2, n))
    u, v, q = x1 + NOISE * rng.standard_normal(n), x1 * x2, 0.5 * x2
    w_sm = 1.0 + 0.5 * x1
    c = np.stack([np.ones(n), 2 * u, 2 * v, u**2 + q**2, 2 * u * v, v**2], 1) * w_sm[:, None]
    if order == "linear":
        c = c[:, :3]
    momenta = np.zeros((n, 1, 4))
    momenta[..., 0] = 1.0
    events = EventSet.from_arrays(momenta=momenta, roles=["p"], coefficients=c, operators=["ca", "cb"], order=order)
    return events.with_observables({"x1": x1, "x2": x2})


def exact_log_rho(x, theta, order="quadratic"):
    x1, x2 = x[:, 0], x[:, 1]
    v, q = x1 * x2, 0.5 * x2
    ta, tb = theta
    rho = 1 + 2 * ta * x1 + 2 * tb * v
    if order == "quadratic":
        rho = rho + ta**2 * (x1**2 + NOISE**2 + q**2) + 2 * ta * tb * x1 * v + tb**2 * v**2
    return np.log(rho)
