"""SM inputs and derived couplings are mutually consistent."""

import math

import pytest

from sbihep.errors import UnknownParameterError
from sbihep.physics.couplings import DEFAULT_SM as SM
from sbihep.physics.couplings import operator, operator_parameter


def test_derived_electroweak_couplings():
    assert SM.vev == pytest.approx(246.22, abs=0.01)
    assert SM.g == pytest.approx(2 * SM.m_W / SM.vev, rel=1e-15)
    assert SM.e == pytest.approx(SM.g * math.sqrt(1 - (SM.m_W / SM.m_Z) ** 2), rel=1e-15)
    assert 1 / SM.alpha == pytest.approx(132.1, abs=0.5)  # the tree-level m_W-scheme value
    # tree-level relation G_F/√2 = g²/(8 m_W²)
    assert SM.G_F / math.sqrt(2) == pytest.approx(SM.g**2 / (8 * SM.m_W**2), rel=1e-14)


def test_partial_widths_do_not_exceed_total_widths():
    beta = math.sqrt(1 - 4 * SM.m_b**2 / SM.m_H**2)
    width_h_bb = 3 * SM.G_F * SM.m_H * SM.m_b_yukawa**2 * beta**3 / (4 * math.sqrt(2) * math.pi)
    assert 0.3 < width_h_bb / SM.width_H < 0.7  # LO with the MS-bar Yukawa; measured BR ≈ 0.58
    width_w_enu = SM.G_F * SM.m_W**3 / (6 * math.sqrt(2) * math.pi)
    assert width_w_enu / SM.width_W == pytest.approx(0.108, abs=0.005)


def test_ckm_unitarity_and_alpha_s():
    for up in "uc":
        assert sum(SM.ckm(up, d) ** 2 for d in "dsb") == pytest.approx(1.0, rel=1e-14)
    assert SM.ckm("u", "d") * SM.ckm("c", "d") + SM.ckm("u", "s") * SM.ckm("c", "s") == pytest.approx(0.0, abs=1e-15)
    assert SM.alpha_s(SM.m_Z) == pytest.approx(0.118, rel=1e-14)
    assert SM.alpha_s(SM.m_t) < SM.alpha_s(SM.m_Z) < SM.alpha_s(10.0)
    with pytest.raises(UnknownParameterError):
        SM.ckm("u", "t")


def test_operator_lookup():
    assert operator("cHWtil").cp_odd and not operator("cHW").cp_odd
    assert operator_parameter("ctG").bounds == (-2.0, 2.0)
    with pytest.raises(UnknownParameterError, match="known operators"):
        operator("cHX")
