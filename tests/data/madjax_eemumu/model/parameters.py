"""External parameters → all model parameters, as madjax's ``model/parameters.py`` provides.

Input scheme {G_F, m_W, m_Z}: v = (√2 G_F)^(−1/2), g = 2 m_W / v, c_W = m_W/m_Z, e = g s_W,
g_Z = g / c_W.  The chiral couplings of the charged leptons (T³ = −½, Q = −1) to γ and Z enter the
vertex as i γ^μ (g_L P_L + g_R P_R).
"""

import math

DEFAULTS = {
    ("sminputs", 2): 1.1663788e-5,  # G_F (GeV^-2)
    ("mass", 23): 91.1876,  # m_Z
    ("mass", 24): 80.369,  # m_W
    ("decay", 23): 2.4955,  # Γ_Z
    ("eecontact", 1): 0.0,  # cll (TeV^-2)
    ("eecontact", 2): 0.0,  # cle
    ("eecontact", 3): 0.0,  # cee
}


def calculate_full_parameters(slha):
    """slha: {(block, id): value} → {name: value} (unknown keys raise KeyError)."""
    unknown = [key for key in slha if key not in DEFAULTS]
    if unknown:
        raise KeyError(f"unknown external parameters {unknown}")
    get = lambda key: slha.get(key, DEFAULTS[key])  # noqa: E731
    gf, mz, mw, wz = get(("sminputs", 2)), get(("mass", 23)), get(("mass", 24)), get(("decay", 23))
    vev = (math.sqrt(2.0) * gf) ** -0.5
    g = 2.0 * mw / vev
    cw = mw / mz
    sw2 = 1.0 - cw * cw
    ee = g * math.sqrt(sw2)
    gz = g / cw
    t3, charge = -0.5, -1.0
    inv_lambda2 = 1.0e-6  # 1 / (1 TeV)^2 in GeV^-2
    return {
        "ZERO": 0.0,
        "MZ": mz,
        "WZ": wz,
        "GAL": -ee * charge,
        "GAR": -ee * charge,
        "GZL": -gz * (t3 - charge * sw2),
        "GZR": -gz * (-charge * sw2),
        "CLL": get(("eecontact", 1)) * inv_lambda2,
        "CLR": get(("eecontact", 2)) * inv_lambda2,
        "CRR": get(("eecontact", 3)) * inv_lambda2,
    }
