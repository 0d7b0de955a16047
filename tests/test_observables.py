"""Named observables: hand-computed values, invariances, parity, and the CP-odd W h angle.

Independent references:

* η = ln((|p| + pz)/(|p| − pz))/2 and y = ln((E + pz)/(E − pz))/2 evaluated by hand for chosen momenta.
* Transverse mass of massless particles: mT² = 2 pT₁ pT₂ (1 − cos Δφ).
* Collins–Soper angles from the light-cone formulae of J.C. Collins and D.E. Soper, PRD 16 (1977) 2219:
  cos θ = s · 2 (l⁺ v⁻ − l⁻ v⁺)/(Q √(Q² + Q_T²)),  p^± = (E ± p_z)/√2,
  tan φ = (√(Q² + Q_T²)/Q) · (Δ⃗ · R̂_T)/(Δ⃗ · Q̂_T),  Δ = l − v,  R̂_T = unit(s ẑ × Q⃗),
  with s = sign(Q_z) the beam orientation (the quadrant taken from the signs of the two dot products).
* Helicity-frame and plane angles: events built in the frame where the answer is known, then boosted.
"""

import math

import pytest
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events.observables import available, compute, parse
from sbihep.physics.lorentz import boost
from sbihep.physics.processes.wh_lvbb import WHToLNuBB

torch.set_num_threads(1)
F64 = torch.float64
WH_ROLES = ("q", "qbar", "l", "v", "b", "bbar")


def vec(*rows):
    """Events (N, n, 4) from nested lists [[E, px, py, pz], …] per event."""
    return torch.tensor(rows, dtype=F64)


def massless(direction, energy):
    d = torch.as_tensor(direction, dtype=F64)
    return torch.cat([torch.tensor([energy], dtype=F64), energy * d / d.norm()])


def boost_events(momenta, beta):
    """Boost every particle of every event by the velocity beta (3,) or (N, 3)."""
    beta = torch.as_tensor(beta, dtype=F64)
    if beta.ndim == 1:
        beta = beta.expand(momenta.shape[0], 3)
    return boost(momenta, beta[:, None, :].expand(momenta.shape[:-1] + (3,)))


def wh_events(n, seed, sqrt_s=1000.0):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 8, dtype=F64, generator=gen)
    return WHToLNuBB().phase_space(r, sqrt_s)


def same_angle(a, b, atol=1e-9):
    return torch.allclose(torch.sin(a), torch.sin(b), atol=atol) and torch.allclose(torch.cos(a), torch.cos(b), atol=atol)


# --------------------------------------------------------------------------------------
# Hand-built events
# --------------------------------------------------------------------------------------
def test_back_to_back_pair_along_x():
    p = vec([[50.0, 50.0, 0.0, 0.0], [50.0, -50.0, 0.0, 0.0]])
    out = compute(["pt(l)", "eta(l)", "phi(l)", "phi(v)", "m(l,v)", "mT(l,v)", "dphi(l,v)", "dR(l,v)", "cos_cs(l,v)", "phi_cs(l,v)"], p, ("l", "v"))
    expected = {"pt(l)": 50.0, "eta(l)": 0.0, "phi(l)": 0.0, "phi(v)": math.pi, "m(l,v)": 100.0, "mT(l,v)": 100.0,
                "dphi(l,v)": math.pi, "dR(l,v)": math.pi, "cos_cs(l,v)": 0.0, "phi_cs(l,v)": 0.0}
    for name, value in expected.items():
        assert out[name].dtype == F64 and out[name].shape == (1,)
        assert out[name].item() == pytest.approx(value, abs=1e-12), name


def test_pair_at_rest_collins_soper_is_the_lab_frame():
    # Pair at rest (no p_T, no p_z): the CS frame is the lab frame with beam +z.
    theta, phi = 0.7, -2.1
    direction = [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)]
    l = massless(direction, 40.0)
    v = torch.cat([l[:1], -l[1:]])
    out = compute(["cos_cs(l,v)", "phi_cs(l,v)", "cos_helicity(v,l)"], torch.stack([l, v])[None], ("l", "v"))
    assert out["cos_cs(l,v)"].item() == pytest.approx(math.cos(theta), abs=1e-12)
    assert out["phi_cs(l,v)"].item() == pytest.approx(phi, abs=1e-12)
    # At rest in the lab the pair has no direction: z′ falls back to the beam, so θ(v) = π − θ.
    assert out["cos_helicity(v,l)"].item() == pytest.approx(-math.cos(theta), abs=1e-12)


def test_eta_rapidity_and_mass_by_hand():
    p = vec([[50.0, 30.0, 0.0, 40.0], [13.0, 3.0, 0.0, 5.0], [10.0, 0.0, 6.0, -6.0]])
    roles = ("a", "b", "c")
    out = compute(["eta(a)", "y(b)", "y(c)", "m(b)", "phi(c)", "e(b)", "deta(a,c)", "m(a,b,c)", "m(a+b,c)"], p, roles)
    assert out["eta(a)"].item() == pytest.approx(math.log(3.0), abs=1e-12)  # (50 + 40)/(50 − 40) = 9
    assert out["y(b)"].item() == pytest.approx(math.log(1.5), abs=1e-12)  # ½ ln(18/8)
    assert out["y(c)"].item() == pytest.approx(-math.log(2.0), abs=1e-12)  # ½ ln(4/16)
    assert out["m(b)"].item() == pytest.approx(math.sqrt(169 - 9 - 25), abs=1e-12)
    assert out["phi(c)"].item() == pytest.approx(math.pi / 2, abs=1e-12)
    assert out["e(b)"].item() == 13.0
    eta_c = 0.5 * math.log((math.sqrt(72) - 6) / (math.sqrt(72) + 6))
    assert out["deta(a,c)"].item() == pytest.approx(math.log(3.0) - eta_c, abs=1e-12)
    total = p.sum(1)[0]
    m_total = math.sqrt(total[0] ** 2 - total[1] ** 2 - total[2] ** 2 - total[3] ** 2)
    assert out["m(a,b,c)"].item() == pytest.approx(m_total, rel=1e-12)
    assert out["m(a+b,c)"].item() == pytest.approx(m_total, rel=1e-12)


def test_transverse_mass_of_massless_pairs():
    gen = torch.Generator().manual_seed(3)
    dirs = torch.randn(200, 2, 3, dtype=F64, generator=gen)
    energies = 10 + 100 * torch.rand(200, 2, 1, dtype=F64, generator=gen)
    p = torch.cat([energies, energies * dirs / dirs.norm(dim=-1, keepdim=True)], -1)
    out = compute(["mT(l,v)", "dphi(l,v)", "pt(l)", "pt(v)"], p, ("l", "v"))
    expected = torch.sqrt(2 * out["pt(l)"] * out["pt(v)"] * (1 - torch.cos(out["dphi(l,v)"])))
    assert torch.allclose(out["mT(l,v)"], expected, rtol=1e-10, atol=1e-9)
    assert (out["dphi(l,v)"] > -math.pi).all() and (out["dphi(l,v)"] <= math.pi).all()


def test_edge_cases_are_finite():
    p = vec([[100.0, 0.0, 0.0, 100.0], [5.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 100.0], [0.0, 0.0, 0.0, 0.0]])
    names = ["eta(a)", "y(a)", "phi(a)", "eta(b)", "y(b)", "dR(a,b)", "mT(a,b)", "cos_cs(a,c)", "phi_cs(a,c)",
             "phi_helicity(a,c)", "cos_helicity(a,b)", "phi_helicity(a,b)", "dphi_planes(a,c;b,d)", "m(a,c)", "eta(d)"]
    out = compute(names, p, ("a", "b", "c", "d"))
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    assert out["eta(a)"].item() > 25 and out["y(a)"].item() > 25  # along the beam: large and finite
    assert out["eta(b)"].item() == 0.0 and out["y(b)"].item() == 0.0 and out["phi(a)"].item() == 0.0
    assert out["cos_cs(a,c)"].item() == 0.0 and out["m(a,c)"].item() == 0.0  # collinear massless pair: no rest frame


# --------------------------------------------------------------------------------------
# Collins–Soper against the light-cone formulae
# --------------------------------------------------------------------------------------
def collins_soper_reference(l, v):
    q = l + v
    q2 = q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(-1)
    qt = torch.hypot(q[:, 1], q[:, 2])
    s = torch.sign(q[:, 3])
    plus = lambda p: (p[:, 0] + p[:, 3]) / math.sqrt(2)  # noqa: E731
    minus = lambda p: (p[:, 0] - p[:, 3]) / math.sqrt(2)  # noqa: E731
    cos = s * 2 * (plus(l) * minus(v) - minus(l) * plus(v)) / (torch.sqrt(q2) * torch.sqrt(q2 + qt**2))
    delta = (l - v)[:, 1:3]
    q_hat = q[:, 1:3] / qt[:, None]
    r_hat = s[:, None] * torch.stack([-q_hat[:, 1], q_hat[:, 0]], -1)  # s ẑ × Q̂_T
    phi = torch.atan2(torch.sqrt(q2 + qt**2) * (delta * r_hat).sum(-1), torch.sqrt(q2) * (delta * q_hat).sum(-1))
    return cos, phi


def random_drell_yan(n, seed):
    """Massless pairs with random mass, p_T and p_z (both signs)."""
    gen = torch.Generator().manual_seed(seed)
    mass = 60 + 60 * torch.rand(n, dtype=F64, generator=gen)
    d = torch.randn(n, 3, dtype=F64, generator=gen)
    d = d / d.norm(dim=-1, keepdim=True)
    l = torch.cat([mass[:, None] / 2, mass[:, None] / 2 * d], -1)
    v = torch.cat([l[:, :1], -l[:, 1:]], -1)
    beta = torch.cat([0.6 * torch.rand(n, 2, dtype=F64, generator=gen) - 0.3, 1.6 * torch.rand(n, 1, dtype=F64, generator=gen) - 0.8], -1)
    return boost_events(torch.stack([l, v], 1), beta)


def test_collins_soper_matches_light_cone_formulae():
    p = random_drell_yan(500, seed=11)
    out = compute(["cos_cs(l,v)", "phi_cs(l,v)"], p, ("l", "v"))
    cos, phi = collins_soper_reference(p[:, 0], p[:, 1])
    assert torch.allclose(out["cos_cs(l,v)"], cos, atol=1e-10)
    assert same_angle(out["phi_cs(l,v)"], phi, atol=1e-9)


def test_invariance_under_longitudinal_boosts():
    p = random_drell_yan(300, seed=5)
    forward = p[:, :, 3].sum(1) > 0
    p = p[forward]  # boost along the pair's own p_z so that the beam orientation stays
    names = ["m(l,v)", "mT(l,v)", "cos_cs(l,v)", "phi_cs(l,v)", "pt(l)", "dphi(l,v)", "dR(l,v)", "deta(l,v)"]
    before = compute(names, p, ("l", "v"))
    after = compute(names, boost_events(p, [0.0, 0.0, 0.7]), ("l", "v"))
    for name in names:
        assert torch.allclose(before[name], after[name], rtol=1e-9, atol=1e-9), name
    momenta, _ = wh_events(200, seed=2)
    names = ["phi_helicity(l,v;b,bbar)", "cos_helicity(l,v;b,bbar)", "dphi_planes(l,v;b,bbar)", "m(l,v,b,bbar)", "mT(l,v)"]
    before = compute(names, momenta, WH_ROLES)
    after = compute(names, boost_events(momenta, [0.0, 0.0, 0.5]), WH_ROLES)
    for name in names:
        assert same_angle(before[name], after[name]) if "phi" in name else torch.allclose(before[name], after[name], rtol=1e-9), name


# --------------------------------------------------------------------------------------
# Helicity frame and decay planes
# --------------------------------------------------------------------------------------
def test_helicity_angles_of_a_w_moving_along_x():
    # W at rest with the lepton at (θ, φ) w.r.t. z′ = x̂, y′ = ẑ × x̂ = ŷ, x′ = y′ × z′ = −ẑ; then boost along +x.
    theta = torch.tensor([0.3, 1.2, 2.5, 1.0], dtype=F64)
    phi = torch.tensor([0.4, -1.1, 2.9, -3.0], dtype=F64)
    x_axis, y_axis, z_axis = torch.tensor([0.0, 0, -1], dtype=F64), torch.tensor([0.0, 1, 0], dtype=F64), torch.tensor([1.0, 0, 0], dtype=F64)
    d = (torch.cos(theta)[:, None] * z_axis + (torch.sin(theta) * torch.cos(phi))[:, None] * x_axis
         + (torch.sin(theta) * torch.sin(phi))[:, None] * y_axis)
    l = torch.cat([torch.full((4, 1), 40.0, dtype=F64), 40.0 * d], -1)
    v = torch.cat([l[:, :1], -l[:, 1:]], -1)
    p = boost_events(torch.stack([l, v], 1), [0.6, 0.0, 0.0])
    out = compute(["cos_helicity(l,v)", "phi_helicity(l,v)"], p, ("l", "v"))
    assert torch.allclose(out["cos_helicity(l,v)"], torch.cos(theta), atol=1e-12)
    assert torch.allclose(out["phi_helicity(l,v)"], phi, atol=1e-12)


def lepton_azimuth_reference(momenta):
    """φ of the lepton about the W direction from the (beam +z, W) plane, in the partonic frame (no boost needed)."""
    k = momenta[:, 2, 1:] + momenta[:, 3, 1:]
    z = k / k.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand_as(z), z)
    y = y / y.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(y, z)
    lepton = momenta[:, 2, 1:]
    return torch.atan2((lepton * y).sum(-1), (lepton * x).sum(-1))


def test_phi_helicity_in_the_partonic_frame_is_the_lepton_azimuth():
    momenta, _ = wh_events(300, seed=4)
    out = compute(["phi_helicity(l,v)", "phi_helicity(l,v;b,bbar)"], momenta, WH_ROLES)
    reference = lepton_azimuth_reference(momenta)
    assert same_angle(out["phi_helicity(l,v)"], reference)
    assert same_angle(out["phi_helicity(l,v;b,bbar)"], reference)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0, -1.3, math.pi])
def test_plane_angle_of_rotated_planes(alpha):
    # a, b in the xz plane (n₁ = −ŷ), c, d the mirror pair rotated by α about z (n₂ = R_α ŷ):
    # n₁ × n₂ = −sin α ẑ, n₁·n₂ = −cos α, P̂₁ = +ẑ → the angle is α + π (wrapped).
    rot = torch.tensor([[math.cos(alpha), -math.sin(alpha), 0], [math.sin(alpha), math.cos(alpha), 0], [0, 0, 1]], dtype=F64)
    a, b = massless([1, 0, 1], 30.0), massless([-1, 0, 1], 30.0)
    c = massless(rot @ torch.tensor([1.0, 0, -1], dtype=F64), 30.0)
    d = massless(rot @ torch.tensor([-1.0, 0, -1], dtype=F64), 30.0)
    p = torch.stack([a, b, c, d])[None]
    p = boost_events(p, [0.2, -0.3, 0.4])  # the angle is defined in the rest frame: any frame gives it
    out = compute(["dphi_planes(a,b;c,d)"], p, ("a", "b", "c", "d"))["dphi_planes(a,b;c,d)"]
    expected = torch.tensor([alpha + math.pi], dtype=F64)
    assert same_angle(out, expected, atol=1e-10)
    assert -math.pi < out.item() <= math.pi


# --------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------
def test_cp_odd_angles_flip_under_parity_and_even_ones_do_not():
    momenta, _ = wh_events(300, seed=8)
    gen = torch.Generator().manual_seed(9)
    beta = torch.cat([0.4 * torch.rand(300, 2, dtype=F64, generator=gen) - 0.2, 1.4 * torch.rand(300, 1, dtype=F64, generator=gen) - 0.7], -1)
    momenta = boost_events(momenta, beta)  # give the system p_T and p_z of either sign
    mirrored = torch.cat([momenta[..., :1], -momenta[..., 1:]], -1)
    odd = ["phi_cs(l,v)", "phi_helicity(l,v;b,bbar)", "dphi_planes(l,v;b,bbar)"]
    even = ["pt(l)", "m(b,bbar)", "mT(l,v)", "dR(b,bbar)", "dphi(l,v)", "cos_cs(l,v)", "cos_helicity(l,v;b,bbar)", "e(b)"]
    before, after = compute(odd + even, momenta, WH_ROLES), compute(odd + even, mirrored, WH_ROLES)
    for name in odd:
        assert same_angle(after[name], -before[name]), name
        assert (before[name].abs() > 1e-3).float().mean() > 0.9, name  # not trivially zero
    for name in even:
        assert torch.allclose(after[name], before[name], rtol=1e-10, atol=1e-10), name


# --------------------------------------------------------------------------------------
# The CP-odd interference of cHWtil
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("subprocess, charge", [("W+", 1.0), ("W-", -1.0)])
def test_cp_odd_interference_follows_the_signed_helicity_azimuth(subprocess, charge):
    """∫ A_cHWtil dΦ ≈ 0 while ∫ sign(q φ) A_cHWtil dΦ is significantly positive; the b b̄ plane of the
    scalar h carries no CP information, so the plane-angle asymmetry is consistent with zero."""
    proc = WHToLNuBB()
    momenta, weight = wh_events(20000, seed=21)
    a_tilde = proc.eft_decomposition(momenta, order="linear", subprocess=subprocess, validate=False).linear[:, 1] * weight
    out = compute(["phi_helicity(l,v;b,bbar)", "dphi_planes(l,v;b,bbar)"], momenta, WH_ROLES, charge=charge)

    def mean_and_error(x):
        return x.mean().item(), x.std().item() / math.sqrt(len(x))

    plain, plain_err = mean_and_error(a_tilde)
    signed, signed_err = mean_and_error(torch.sign(out["phi_helicity(l,v;b,bbar)"]) * a_tilde)
    planes, planes_err = mean_and_error(torch.sign(out["dphi_planes(l,v;b,bbar)"]) * a_tilde)
    assert abs(plain) < 4 * plain_err
    assert signed > 10 * signed_err and signed > 0.9 * a_tilde.abs().mean().item()  # A ∝ sin φ almost event by event
    assert abs(planes) < 4 * planes_err


# --------------------------------------------------------------------------------------
# Grammar, registry and errors
# --------------------------------------------------------------------------------------
def test_available_lists_every_function_with_a_description():
    listing = available()
    for name in ["pt", "eta", "phi", "y", "m", "mT", "dR", "dphi", "cos_cs", "phi_cs", "phi_helicity", "dphi_planes"]:
        assert isinstance(listing[name], str) and listing[name]


def test_roles_with_signs_and_repeated_roles():
    p = torch.tensor([[[10.0, 0, 0, 10], [10.0, 0, 0, -10], [10.0, 6, 0, 8], [10.0, -6, 0, -8]]], dtype=F64)
    roles = ("e-", "e+", "mu-", "mu+")
    out = compute(["m(mu++mu-)", "m(mu+,mu-)", "pt(e+)"], p, roles)
    assert out["m(mu++mu-)"].item() == pytest.approx(20.0) and out["m(mu+,mu-)"].item() == pytest.approx(20.0)
    assert out["pt(e+)"].item() == 0.0
    out = compute(["pt(g[1])", "m(g[0], g[1])"], p, ("g", "g", "t", "tbar"))
    assert out["pt(g[1])"].item() == 0.0 and out["m(g[0], g[1])"].item() == pytest.approx(20.0)
    assert parse("m(b + bbar, l)", WH_ROLES).groups == (((4, 5), (2,)),)


@pytest.mark.parametrize(
    "name, roles, message",
    [
        ("foo(l)", WH_ROLES, "unknown function 'foo'"),
        ("pt(tau)", WH_ROLES, "unknown role 'tau'"),
        ("m(b+x)", WH_ROLES, "unknown role 'x'"),
        ("pt(g)", ("g", "g", "t", "tbar"), "role 'g' occurs in slots"),
        ("pt(g[2])", ("g", "g", "t", "tbar"), "g[2] does not exist"),
        ("pt(l,v)", WH_ROLES, "pt takes 1"),
        ("dphi_planes(l,v,b)", WH_ROLES, "dphi_planes takes 2;2"),
        ("pt l", WH_ROLES, "not of the form"),
        ("m(b+)", WH_ROLES, "cannot read"),
    ],
)
def test_bad_names_are_reported(name, roles, message):
    momenta = torch.zeros(2, len(roles), 4, dtype=F64)
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute([name], momenta, roles)


def test_bad_inputs():
    momenta, _ = wh_events(4, seed=1)
    with pytest.raises(ShapeError, match="float64"):
        compute(["pt(l)"], momenta.float(), WH_ROLES)
    with pytest.raises(ShapeError, match=r"\(N, n, 4\)"):
        compute(["pt(l)"], momenta[0], WH_ROLES)
    with pytest.raises(InvalidInputError, match="roles must name each of the 6"):
        compute(["pt(l)"], momenta, WH_ROLES[:5])
    with pytest.raises(InvalidInputError, match="charge"):
        compute(["phi_helicity(l,v)"], momenta, WH_ROLES, charge=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="sequence"):
        compute("pt(l)", momenta, WH_ROLES)


def test_charge_flips_only_charge_odd_observables():
    momenta, _ = wh_events(50, seed=6)
    names = ["phi_helicity(l,v)", "dphi_planes(l,v;b,bbar)", "phi_cs(l,v)", "pt(l)"]
    plus, minus = compute(names, momenta, WH_ROLES), compute(names, momenta, WH_ROLES, charge=-1.0)
    assert torch.equal(minus["phi_helicity(l,v)"], -plus["phi_helicity(l,v)"])
    assert torch.equal(minus["dphi_planes(l,v;b,bbar)"], -plus["dphi_planes(l,v;b,bbar)"])
    assert torch.equal(minus["phi_cs(l,v)"], plus["phi_cs(l,v)"]) and torch.equal(minus["pt(l)"], plus["pt(l)"])
