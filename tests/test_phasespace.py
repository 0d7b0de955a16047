"""Tests of sbihep.physics.phasespace: analytic volumes, conservation, inverses, gradients, errors."""

import math

import pytest
import torch
from scipy.integrate import quad

from sbihep.errors import InvalidInputError, ShapeError, ThresholdError
from sbihep.physics import phasespace as ps
from sbihep.physics.lorentz import mass2

torch.set_num_threads(1)

F64 = torch.float64


def uniform(n_events, width, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_events, width, dtype=F64, generator=generator)


def mc_mean_and_error(values):
    return values.mean().item(), values.std().item() / math.sqrt(values.numel())


def phi2(s, m1, m2):
    """Analytic two-body volume √λ / (8π s) as a Python float."""
    lam = (s - (m1 + m2) ** 2) * (s - (m1 - m2) ** 2)
    return math.sqrt(max(lam, 0.0)) / (8.0 * math.pi * s)


def assert_conserves(momenta, total, rtol=1e-10):
    scale = total[..., 0].abs().max()
    assert (momenta.sum(1) - total).abs().max() <= rtol * scale


def assert_on_shell(momenta, masses, rtol=1e-10):
    masses = torch.as_tensor(masses, dtype=F64)
    deviation = (mass2(momenta) - masses**2).abs()
    assert (deviation <= rtol * momenta[..., 0] ** 2 + 1e-12).all(), deviation.max()


def at_rest(sqrt_s, n_events):
    total = torch.zeros(n_events, 4, dtype=F64)
    total[:, 0] = sqrt_s
    return total


# ------------------------------------------------------------------------------------------ RAMBO


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_rambo_massless_weight_is_the_analytic_volume(n):
    sqrt_s = 250.0
    momenta, weight = ps.rambo(uniform(2000, 4 * n, seed=n), sqrt_s, [0.0] * n)
    expected = (2 * math.pi) ** (4 - 3 * n) * (math.pi / 2) ** (n - 1) * sqrt_s ** (2 * n - 4)
    expected /= math.factorial(n - 1) * math.factorial(n - 2)
    assert momenta.shape == (2000, n, 4) and weight.shape == (2000,)
    assert torch.allclose(weight, torch.full_like(weight, expected), rtol=1e-12, atol=0)
    assert_conserves(momenta, at_rest(sqrt_s, 2000))
    assert_on_shell(momenta, [0.0] * n)
    assert (momenta[..., 0] >= 0).all()


def test_rambo_accepts_per_event_energies():
    sqrt_s = torch.linspace(50.0, 500.0, 100, dtype=F64)
    momenta, weight = ps.rambo(uniform(100, 12, seed=1), sqrt_s, [0.0, 0.0, 0.0])
    assert torch.allclose(weight, ps.massless_phase_space_volume(3, sqrt_s), rtol=1e-12, atol=0)
    assert torch.allclose(momenta[..., 0].sum(1), sqrt_s, rtol=1e-12, atol=0)


def test_rambo_massive_two_body_weight_is_exact_per_event():
    sqrt_s, m1, m2 = 100.0, 10.0, 30.0
    momenta, weight = ps.rambo(uniform(1000, 8, seed=2), sqrt_s, [m1, m2])
    assert torch.allclose(weight, torch.full_like(weight, phi2(sqrt_s**2, m1, m2)), rtol=1e-12, atol=0)
    assert_on_shell(momenta, [m1, m2])
    assert_conserves(momenta, at_rest(sqrt_s, 1000))


def test_rambo_massive_momenta_conserve_and_are_on_shell():
    masses = [0.0, 4.7, 0.0, 80.4]
    momenta, _ = ps.rambo(uniform(5000, 16, seed=3), 300.0, masses)
    assert_conserves(momenta, at_rest(300.0, 5000))
    assert_on_shell(momenta, masses)


def test_rambo_massive_three_body_volume_matches_recursive_factorisation():
    sqrt_s, (m1, m2, m3) = 100.0, (10.0, 20.0, 30.0)
    s = sqrt_s**2
    # Φ_3(s) = ∫ ds23/(2π) Φ_2(s; m1, √s23) Φ_2(s23; m2, m3)
    expected, _ = quad(
        lambda s23: phi2(s, m1, math.sqrt(s23)) * phi2(s23, m2, m3) / (2 * math.pi),
        (m2 + m3) ** 2,
        (sqrt_s - m1) ** 2,
        epsrel=1e-12,
    )
    _, weight = ps.rambo(uniform(200_000, 12, seed=4), sqrt_s, [m1, m2, m3])
    mean, error = mc_mean_and_error(weight)
    assert abs(mean - expected) < 3 * error, (mean, error, expected)
    assert error < 2e-3 * expected


def finite_difference_gradient(function, r, step=1e-6):
    gradient = torch.zeros_like(r)
    flat, flat_gradient = r.view(-1), gradient.view(-1)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += step
        down[i] -= step
        flat_gradient[i] = (function(up.view_as(r)) - function(down.view_as(r))) / (2 * step)
    return gradient


@pytest.mark.parametrize("masses", [[0.0, 0.0, 0.0, 0.0], [0.0, 4.7, 10.0, 80.4]])
def test_rambo_gradient_matches_finite_differences(masses):
    sqrt_s = 300.0

    def smooth_function(r):
        momenta, weight = ps.rambo(r, sqrt_s, masses)
        observable = (momenta[:, 0, 0] * momenta[:, 1, 3] + momenta[:, 2, 1] ** 2) / sqrt_s**2
        return (observable * weight / ps.massless_phase_space_volume(4, sqrt_s)).sum()

    r = 0.1 + 0.8 * uniform(3, 16, seed=5)
    r.requires_grad_(True)
    (gradient,) = torch.autograd.grad(smooth_function(r), r)
    reference = finite_difference_gradient(smooth_function, r.detach())
    assert torch.allclose(gradient, reference, rtol=1e-6, atol=1e-6 * reference.abs().max().item())


# ------------------------------------------------------------------------------- two-body decay


def boosted_parents(n_events, parent_mass, seed):
    generator = torch.Generator().manual_seed(seed)
    momentum = 300.0 * (2 * torch.rand(n_events, 3, dtype=F64, generator=generator) - 1)
    energy = torch.sqrt(parent_mass**2 + (momentum**2).sum(-1))
    return torch.cat([energy.unsqueeze(-1), momentum], dim=-1)


def test_two_body_decay_is_on_shell_conserving_and_invertible():
    n_events = 2000
    parent_mass = torch.linspace(30.0, 200.0, n_events, dtype=F64)
    parent = boosted_parents(n_events, parent_mass, seed=6)
    m1 = torch.full((n_events,), 4.7, dtype=F64)
    r = uniform(n_events, 2, seed=7)
    p1, p2, weight = ps.two_body_decay_from_random(parent, m1, 10.0, r)

    assert torch.allclose(p1 + p2, parent, rtol=0, atol=1e-10 * parent[:, 0].max().item())
    assert_on_shell(torch.stack([p1, p2], 1), [4.7, 10.0])
    p_star = torch.sqrt((parent_mass**2 - 14.7**2) * (parent_mass**2 - 5.3**2)) / (2 * parent_mass)
    assert torch.allclose(weight, p_star / (4 * math.pi * parent_mass), rtol=1e-10, atol=0)

    cos_theta, phi, r_back = ps.inverse_two_body_decay(parent, p1)
    assert torch.allclose(r_back, r, rtol=0, atol=1e-12)
    assert torch.allclose(cos_theta, 2 * r[:, 0] - 1, rtol=0, atol=2e-12)
    assert torch.allclose(phi, 2 * math.pi * r[:, 1], rtol=0, atol=1e-11)


def test_two_body_decay_at_rest_uses_the_lab_axes():
    parent = at_rest(100.0, 1)
    p1, p2, _ = ps.two_body_decay(parent, 0.0, 0.0, torch.tensor([1.0], dtype=F64), torch.tensor([0.0], dtype=F64))
    assert torch.allclose(p1, torch.tensor([[50.0, 0.0, 0.0, 50.0]], dtype=F64), atol=1e-12)
    assert torch.allclose(p2, torch.tensor([[50.0, 0.0, 0.0, -50.0]], dtype=F64), atol=1e-12)


# ------------------------------------------------------------------------ invariant-mass sampling


def test_breit_wigner_weight_times_propagator_is_the_arctan_integral():
    mass, width, m2_min, m2_max = 80.4, 2.1, 40.0**2, 150.0**2
    s, weight = ps.breit_wigner_mass2(uniform(10_000, 1, seed=8), mass, width, m2_min, m2_max)
    propagator2 = 1.0 / ((s - mass**2) ** 2 + (mass * width) ** 2)
    mw = mass * width
    expected = (math.atan((m2_max - mass**2) / mw) - math.atan((m2_min - mass**2) / mw)) / (2 * math.pi * mw)
    assert ((s >= m2_min) & (s <= m2_max)).all()
    assert torch.allclose(weight * propagator2, torch.full_like(s, expected), rtol=1e-12, atol=0)


def test_breit_wigner_integrates_a_smooth_function():
    mass, width, m2_min, m2_max = 125.0, 10.0, 100.0**2, 160.0**2
    s, weight = ps.breit_wigner_mass2(uniform(100_000, 1, seed=9), mass, width, m2_min, m2_max)

    def integrand(x):
        return (x / mass**2) ** 2 / ((x - mass**2) ** 2 + (mass * width) ** 2) / (2 * math.pi)

    expected, _ = quad(integrand, m2_min, m2_max, points=[mass**2], epsrel=1e-12)
    propagator2 = 1.0 / ((s - mass**2) ** 2 + (mass * width) ** 2)
    mean, error = mc_mean_and_error(weight * propagator2 * (s / mass**2) ** 2)
    assert abs(mean - expected) < 3 * error, (mean, error, expected)


def test_mass2_samplers_invert():
    r = uniform(1000, 1, seed=10)
    m2_max = torch.linspace(200.0**2, 900.0**2, 1000, dtype=F64)  # per-event limits
    s, _ = ps.breit_wigner_mass2(r, 91.19, 2.5, 10.0**2, m2_max)
    assert torch.allclose(ps.inverse_breit_wigner_mass2(s, 91.19, 2.5, 10.0**2, m2_max), r, rtol=0, atol=1e-12)
    s, weight = ps.uniform_mass2(r, 0.0, m2_max)
    assert torch.allclose(weight, m2_max / (2 * math.pi), rtol=1e-15, atol=0)
    assert torch.allclose(ps.inverse_uniform_mass2(s, 0.0, m2_max), r, rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------ 2 → 2, hadronic


def test_two_to_two_kinematics_weight_and_inverse():
    sqrt_s, m3, m4 = 500.0, 172.5, 172.5
    r = uniform(1000, 2, seed=11)
    momenta, weight = ps.two_to_two(r, sqrt_s, m3, m4)
    assert momenta.shape == (1000, 4, 4)
    assert torch.allclose(momenta[:, 0], torch.tensor([250.0, 0, 0, 250.0], dtype=F64).expand(1000, 4))
    assert torch.allclose(momenta[:, 1], torch.tensor([250.0, 0, 0, -250.0], dtype=F64).expand(1000, 4))
    assert_conserves(momenta[:, 2:], at_rest(sqrt_s, 1000))
    assert_on_shell(momenta, [0.0, 0.0, m3, m4])
    assert torch.allclose(weight, torch.full_like(weight, phi2(sqrt_s**2, m3, m4)), rtol=1e-12, atol=0)
    assert torch.allclose(ps.inverse_two_to_two(momenta), r, rtol=0, atol=1e-12)


def test_hadronic_momentum_fractions_estimate_the_allowed_area():
    sqrt_s_hadronic, s_hat_min = 13_000.0, 500.0**2
    tau_min = s_hat_min / sqrt_s_hadronic**2
    r = uniform(200_000, 2, seed=12)
    x1, x2, weight = ps.hadronic_momentum_fractions(r, sqrt_s_hadronic, s_hat_min)
    assert ((x1 > 0) & (x1 <= 1) & (x2 > 0) & (x2 <= 1)).all()
    assert (x1 * x2 >= tau_min * (1 - 1e-12)).all()
    mean, error = mc_mean_and_error(weight)
    expected = 1 - tau_min + tau_min * math.log(tau_min)
    assert abs(mean - expected) < 3 * error, (mean, error, expected)
    r_back = ps.inverse_hadronic_momentum_fractions(x1, x2, sqrt_s_hadronic, s_hat_min)
    assert torch.allclose(r_back[:, 0], r[:, 0], rtol=0, atol=1e-14)
    # r₁ = y/(−ln τ) + ½ loses digits as τ → 1, where the rapidity range shrinks to nothing.
    assert torch.allclose(r_back[:, 1], r[:, 1], rtol=0, atol=1e-11)


def test_boost_partonic_to_lab_gives_the_parton_momenta():
    sqrt_s_hadronic = 13_000.0
    x1, x2, _ = ps.hadronic_momentum_fractions(uniform(1000, 2, seed=13), sqrt_s_hadronic, 250.0**2, 3000.0**2)
    sqrt_s_hat = torch.sqrt(x1 * x2) * sqrt_s_hadronic
    partonic, _ = ps.two_to_two(uniform(1000, 2, seed=14), sqrt_s_hat, 91.19, 125.0)
    lab = ps.boost_partonic_to_lab(partonic, x1, x2)
    total = lab[:, 2:].sum(1)
    beam = sqrt_s_hadronic / 2
    assert torch.allclose(total[:, 0], (x1 + x2) * beam, rtol=1e-12, atol=0)
    assert torch.allclose(total[:, 3], (x1 - x2) * beam, rtol=1e-12, atol=1e-9)
    assert torch.allclose(total[:, 1:3], torch.zeros(1000, 2, dtype=F64), atol=1e-9)
    assert torch.allclose(lab[:, 0, 0], x1 * beam, rtol=1e-12, atol=0)
    assert torch.allclose(lab[:, 1, 0], x2 * beam, rtol=1e-12, atol=0)
    assert_on_shell(lab, [0.0, 0.0, 91.19, 125.0])


# ------------------------------------------------------------------- two resonances, four bodies

W_TO_LEPTONS = ps.Resonance(80.369, 2.085, 0.0, 0.0, "breit-wigner")
H_TO_BB = ps.Resonance(125.2, 4.07e-3, 4.7, 4.7, "breit-wigner")


@pytest.mark.parametrize("mode_a, mode_b", [("breit-wigner", "breit-wigner"), ("narrow", "breit-wigner"),
                                            ("flat", "narrow")])
def test_two_resonance_four_body_kinematics_and_inverse(mode_a, mode_b):
    resonance_a, resonance_b = W_TO_LEPTONS._replace(mode=mode_a), H_TO_BB._replace(mode=mode_b)
    sqrt_s = torch.linspace(300.0, 2000.0, 2000, dtype=F64)
    r = uniform(2000, 8, seed=15)
    momenta, weight = ps.two_resonance_four_body(r, sqrt_s, resonance_a, resonance_b)
    assert momenta.shape == (2000, 4, 4) and weight.shape == (2000,)
    assert (weight > 0).all()
    total = torch.zeros(2000, 4, dtype=F64)
    total[:, 0] = sqrt_s
    assert_conserves(momenta, total)
    assert_on_shell(momenta, [0.0, 0.0, 4.7, 4.7])
    if mode_a == "narrow":
        assert torch.allclose(mass2(momenta[:, 0] + momenta[:, 1]), torch.full((2000,), 80.369**2, dtype=F64))

    r_back = ps.inverse_two_resonance_four_body(momenta, sqrt_s, resonance_a, resonance_b)
    assert torch.allclose(r_back[:, 2:], r[:, 2:], rtol=0, atol=1e-12)
    # The mass columns: s comes from (p_1 + p_2)² of a boosted pair (rounding ~1e-16 E²), and a
    # Breit–Wigner of width MΓ magnifies it by 1/(π MΓ) (MΓ = 0.5 GeV² for H → b b̄).
    for column, mode in ((0, mode_a), (1, mode_b)):
        expected = torch.full_like(r[:, column], 0.5) if mode == "narrow" else r[:, column]
        assert torch.allclose(r_back[:, column], expected, rtol=0, atol=1e-9)


def test_two_resonance_factorisation_gives_the_massless_four_body_volume():
    sqrt_s = 200.0
    flat = ps.Resonance(0.0, 0.0, 0.0, 0.0, "flat")
    _, weight = ps.two_resonance_four_body(uniform(200_000, 8, seed=16), sqrt_s, flat, flat)
    mean, error = mc_mean_and_error(weight)
    expected = ps.massless_phase_space_volume(4, sqrt_s)
    assert abs(mean - expected) < 3 * error, (mean, error, expected)
    assert error < 0.01 * expected


def test_two_resonance_factorisation_matches_massive_rambo():
    sqrt_s, masses = 100.0, (5.0, 10.0, 15.0, 20.0)
    resonance_a = ps.Resonance(0.0, 0.0, masses[0], masses[1], "flat")
    resonance_b = ps.Resonance(0.0, 0.0, masses[2], masses[3], "flat")
    _, factorised = ps.two_resonance_four_body(uniform(200_000, 8, seed=17), sqrt_s, resonance_a, resonance_b)
    _, rambo = ps.rambo(uniform(200_000, 16, seed=18), sqrt_s, masses)
    (mean_f, error_f), (mean_r, error_r) = mc_mean_and_error(factorised), mc_mean_and_error(rambo)
    assert abs(mean_f - mean_r) < 3 * math.hypot(error_f, error_r), (mean_f, error_f, mean_r, error_r)


@pytest.mark.parametrize("relative_width", [1e-3, 1e-5])
def test_narrow_and_breit_wigner_modes_agree_in_the_narrow_width_limit(relative_width):
    sqrt_s = 500.0
    w_boson = W_TO_LEPTONS._replace(width=relative_width * W_TO_LEPTONS.mass)
    higgs = H_TO_BB._replace(width=relative_width * H_TO_BB.mass)
    r = uniform(20_000, 8, seed=19)

    def smooth_test_function(momenta):
        lepton, bottom = momenta[:, 0], momenta[:, 2]
        return 1.0 + (lepton[:, 1] ** 2 + lepton[:, 2] ** 2) / sqrt_s**2 + bottom[:, 3] / sqrt_s

    def propagator2(momenta, i, resonance):
        s = mass2(momenta[:, i] + momenta[:, i + 1])
        return 1.0 / ((s - resonance.mass**2) ** 2 + (resonance.mass * resonance.width) ** 2)

    momenta, weight = ps.two_resonance_four_body(r, sqrt_s, w_boson, higgs)
    with_propagators = weight * propagator2(momenta, 0, w_boson) * propagator2(momenta, 2, higgs)
    breit_wigner = (with_propagators * smooth_test_function(momenta)).mean().item()

    narrow_momenta, narrow_weight = ps.two_resonance_four_body(
        r, sqrt_s, w_boson._replace(mode="narrow"), higgs._replace(mode="narrow")
    )
    narrow = (narrow_weight * smooth_test_function(narrow_momenta)).mean().item()
    # Same random numbers, so MC noise cancels: the estimates differ by O(Γ/M) (tails cut by the
    # kinematic limits, smearing of the test function) and nothing else.
    assert abs(breit_wigner / narrow - 1) < 2 * relative_width


@pytest.mark.parametrize("mode_b", ["breit-wigner", "narrow", "flat"])
def test_two_resonance_four_body_is_differentiable(mode_b):
    higgs = H_TO_BB._replace(width=4.0, mode=mode_b)
    r = (0.1 + 0.8 * uniform(3, 8, seed=21)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: ps.two_resonance_four_body(x, 500.0, W_TO_LEPTONS, higgs), (r,), eps=1e-6, atol=1e-7, rtol=1e-6
    )


# ----------------------------------------------------------------------------------- bad input


def test_threshold_errors():
    with pytest.raises(ThresholdError, match="sqrt_s"):
        ps.rambo(uniform(10, 12, seed=0), 50.0, [10.0, 20.0, 30.0])
    with pytest.raises(ThresholdError, match="sqrt_s"):
        ps.two_to_two(uniform(10, 2, seed=0), 300.0, 172.5, 172.5)
    with pytest.raises(ThresholdError, match="sqrt_s"):
        ps.two_resonance_four_body(uniform(10, 8, seed=0), 200.0, W_TO_LEPTONS._replace(mode="narrow"),
                                   H_TO_BB._replace(mode="narrow"))
    with pytest.raises(ThresholdError, match="threshold"):
        ps.two_body_decay_from_random(at_rest(10.0, 10), 4.7, 6.0, uniform(10, 2, seed=0))


@pytest.mark.parametrize("width", [11, 13])
def test_wrong_width_of_r_names_the_expected_width(width):
    with pytest.raises(ShapeError, match=r"r must have shape \(N, 12\)"):
        ps.rambo(uniform(10, width, seed=0), 100.0, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("bad_value", [-0.1, 1.5, float("nan")])
def test_random_numbers_outside_the_unit_interval_are_rejected(bad_value):
    r = uniform(10, 8, seed=0)
    r[3, 5] = bad_value
    with pytest.raises(InvalidInputError, match="r "):
        ps.two_resonance_four_body(r, 500.0, W_TO_LEPTONS, H_TO_BB)
    with pytest.raises(InvalidInputError, match="r "):
        ps.rambo(r, 500.0, [0.0, 0.0])


def test_invalid_masses_and_particle_counts():
    with pytest.raises(InvalidInputError, match="masses"):
        ps.rambo(uniform(10, 8, seed=0), 100.0, [-1.0, 0.0])
    with pytest.raises(InvalidInputError, match="at least 2"):
        ps.rambo(uniform(10, 4, seed=0), 100.0, [0.0])
    with pytest.raises(InvalidInputError, match="m1"):
        ps.two_body_decay_from_random(at_rest(100.0, 10), -4.7, 4.7, uniform(10, 2, seed=0))
    with pytest.raises(InvalidInputError, match="daughter_mass_1"):
        ps.two_resonance_four_body(uniform(10, 8, seed=0), 500.0, W_TO_LEPTONS._replace(daughter_mass_1=-1.0),
                                   H_TO_BB)
    with pytest.raises(InvalidInputError, match="mode"):
        ps.two_resonance_four_body(uniform(10, 8, seed=0), 500.0, W_TO_LEPTONS._replace(mode="wide"), H_TO_BB)
    with pytest.raises(InvalidInputError, match="width"):
        ps.breit_wigner_mass2(uniform(10, 1, seed=0), 80.0, 0.0, 0.0, 1e4)
    with pytest.raises(InvalidInputError, match="m2_max"):
        ps.uniform_mass2(uniform(10, 1, seed=0), 1e4, 1e3)
    with pytest.raises(InvalidInputError, match="s_hat_min"):
        ps.hadronic_momentum_fractions(uniform(10, 2, seed=0), 13_000.0, 0.0)


def test_mappings_are_deterministic():
    r = uniform(100, 16, seed=20)
    first = ps.rambo(r, 300.0, [0.0, 4.7, 10.0, 80.4])
    second = ps.rambo(r.clone(), 300.0, [0.0, 4.7, 10.0, 80.4])
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_massless_parent_decays_collinearly_with_zero_weight():
    """At the edge of a sampled mass range a parent of two massless daughters can have M = 0 exactly:
    the daughters must be finite (collinear halves) with zero weight, not the 0/0 of a boost."""
    from sbihep.physics.phasespace import two_body_decay

    parent = torch.tensor([[10.0, 0.0, 0.0, 10.0], [50.0, 0.0, 30.0, 0.0]], dtype=torch.float64)
    p1, p2, weight = two_body_decay(parent, 0.0, 0.0, torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.isfinite(p1).all() and torch.isfinite(p2).all() and torch.isfinite(weight).all()
    assert torch.equal(p1[0], parent[0] / 2) and weight[0] == 0
    assert weight[1] > 0 and torch.allclose(p1[1] + p2[1], parent[1])
