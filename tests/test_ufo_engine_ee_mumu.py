"""e⁺e⁻ → μ⁺μ⁻ built from SMEFTsim Lorentz structures with the UFO engine vs the hand-written process."""

import importlib.util
import math
from pathlib import Path

import torch

from sbihep.physics.processes import EEToMuMu

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location("_ufo_ee_mumu", Path(__file__).resolve().parents[1] / "benchmarks" / "_ufo_ee_mumu.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
UFOEngineEEToMuMu = _mod.UFOEngineEEToMuMu


def momenta(n=400, sqrt_s=250.0, seed=3):
    ref = EEToMuMu()
    r = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p, _ = ref.phase_space(r, sqrt_s)
    # exact special directions: μ⁻ along +z and −z (helas uses the exact spinor limits there)
    for i, sign in ((0, 1.0), (1, -1.0)):
        e = sqrt_s / 2
        p[i, 2] = torch.tensor([e, 0.0, 0.0, sign * e], dtype=torch.float64)
        p[i, 3] = torch.tensor([e, 0.0, 0.0, -sign * e], dtype=torch.float64)
    return p


def test_amplitudes_and_eft_coefficients_match_handwritten():
    ref, new = EEToMuMu(), UFOEngineEEToMuMu()
    p = momenta()
    a, b = ref.amplitudes(p).components, new.amplitudes(p).components
    assert a.shape == b.shape
    assert ((a - b).abs() <= 1e-12 * a.abs().amax(dim=(1, 2, 3), keepdim=True)).all()
    d_ref, d_new = ref.eft_decomposition(p), new.eft_decomposition(p)
    for x, y in ((d_ref.constant, d_new.constant), (d_ref.linear, d_new.linear), (d_ref.quadratic, d_new.quadratic)):
        assert ((x - y).abs() <= 1e-12 * x.abs().max()).all()
    theta = {"cll": 0.7, "cle": -1.3, "cee": 2.1}
    m_ref, m_new = ref.matrix_element2(p, theta), new.matrix_element2(p, theta)
    assert ((m_ref - m_new).abs() / m_ref).max() < 1e-12


def test_lorentz_invariance_of_me2_under_random_boosts():
    new = UFOEngineEEToMuMu()
    p = momenta(64, 500.0)
    gen = torch.Generator().manual_seed(5)
    beta = torch.randn(3, generator=gen, dtype=torch.float64)
    beta = 0.9 * beta / beta.norm()
    gamma = 1 / math.sqrt(1 - float(beta @ beta))
    lam = torch.eye(4, dtype=torch.float64)
    lam[0, 0] = gamma
    lam[0, 1:] = lam[1:, 0] = gamma * beta
    lam[1:, 1:] += (gamma - 1) * torch.outer(beta, beta) / float(beta @ beta)
    theta = {"cll": 1.0, "cle": 0.5, "cee": -2.0}
    m0 = new.matrix_element2(p, theta, validate=False)
    m1 = new.matrix_element2(p @ lam.T, theta, validate=False)
    assert ((m0 - m1).abs() / m0).max() < 1e-12


def test_momentum_gradient_is_finite_and_matches_handwritten():
    ref, new = EEToMuMu(), UFOEngineEEToMuMu()
    p = momenta(32)
    grads = []
    for proc in (ref, new):
        q = p.clone().requires_grad_(True)
        proc.matrix_element2(q, {"cll": 0.3}, validate=False).sum().backward()
        grads.append(q.grad)
    assert torch.isfinite(grads[1]).all()  # incl. the legs along ±z
    assert ((grads[0] - grads[1]).abs() <= 1e-10 * grads[0].abs().max()).all()
