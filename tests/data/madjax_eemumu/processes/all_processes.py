"""e- e+ > mu- mu+ in the madjax layout: a ``Matrix_*`` class with ``smatrix(p, model)``.

For massless fermions the amplitude with electron chirality i and muon chirality j is
M_ij = i A_ij(s) × (spinor product), A_ij = Σ_V g_i^e g_j^μ / (s − M_V² + i M_V Γ_V) + C_ij, and
the helicity sum gives Σ|spinor product|² = 4u² (i = j) or 4t² (i ≠ j), with t = (p1 − p3)² and
u = (p1 − p4)².  Averaging over the 4 initial helicities:

    |M|² = u² (|A_LL|² + |A_RR|²) + t² (|A_LR|² + |A_RL|²).
"""

import jax.numpy as jnp


def _minkowski_square(q):
    return q[0] * q[0] - q[1] * q[1] - q[2] * q[2] - q[3] * q[3]


class Matrix_1_epem_mupmum(object):
    def __init__(self):
        self.clean()

    def clean(self):
        self.jamp = []

    def get_external_masses(self, params):
        return ((params["ZERO"], params["ZERO"]), (params["ZERO"], params["ZERO"]))

    def smatrix(self, p, model):
        """|M|² summed over final and averaged over initial helicities; p: (4, 4) rows (E, px, py, pz)."""
        self.clean()
        p1, p3, p4 = p[0], p[2], p[3]
        s = _minkowski_square(p[0] + p[1])
        t = _minkowski_square(p1 - p3)
        u = _minkowski_square(p1 - p4)
        photon = 1.0 / s
        zprop = 1.0 / (s - model["MZ"] ** 2 + 1j * model["MZ"] * model["WZ"])
        a_ll = model["GAL"] * model["GAL"] * photon + model["GZL"] * model["GZL"] * zprop + model["CLL"]
        a_rr = model["GAR"] * model["GAR"] * photon + model["GZR"] * model["GZR"] * zprop + model["CRR"]
        a_lr = model["GAL"] * model["GAR"] * photon + model["GZL"] * model["GZR"] * zprop + model["CLR"]
        a_rl = model["GAR"] * model["GAL"] * photon + model["GZR"] * model["GZL"] * zprop + model["CLR"]
        ans = u * u * (jnp.abs(a_ll) ** 2 + jnp.abs(a_rr) ** 2) + t * t * (jnp.abs(a_lr) ** 2 + jnp.abs(a_rl) ** 2)
        return jnp.real(ans)
