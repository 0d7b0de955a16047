"""Parametrised detector: strict cards, identity of the perfect detector, resolutions, tagging rates,
MET and determinism.  Statistical checks use fixed seeds and compare with the card's parameters
within a few standard errors (σ of a sample standard deviation ≈ σ/√(2N); binomial √(p(1−p)/N))."""

import math

import pytest
import torch

from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.events.detector import Detector, DetectorCard, builtin_cards, classify_role
from sbihep.physics.processes.wh_lvbb import WHToLNuBB

torch.set_num_threads(1)
F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def wh_events(n, seed):
    proc = WHToLNuBB()
    momenta, _ = proc.phase_space(torch.rand(n, 8, dtype=F64, generator=gen(seed)), 1000.0)
    return momenta, proc.roles()


def fixed_events(n, particles):
    """n copies of the same final state [[E, px, py, pz], …]."""
    return torch.tensor(particles, dtype=F64).expand(n, -1, -1).clone()


def default_with(**sections):
    return DetectorCard.builtin("default").replace(**sections)


# --------------------------------------------------------------------------------------
# Cards
# --------------------------------------------------------------------------------------
def test_builtin_cards_load_and_round_trip():
    assert {"default", "perfect"} <= set(builtin_cards())
    for name in ("default", "perfect"):
        card = DetectorCard.builtin(name)
        assert card.name == name
        assert DetectorCard.from_toml(card.to_toml()) == card
    assert DetectorCard.builtin("perfect").jets.eta_max == math.inf


def test_card_from_a_file(tmp_path):
    path = tmp_path / "card.toml"
    path.write_text(DetectorCard.builtin("default").to_toml())
    assert DetectorCard.from_toml(path) == DetectorCard.builtin("default")
    assert DetectorCard.from_toml(str(path)) == DetectorCard.builtin("default")
    assert Detector(str(path)).card == DetectorCard.builtin("default")


def edited(old, new):
    text = DetectorCard.builtin("default").to_toml()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "text, message",
    [
        (edited("pt_min = 25.0", "pt_min = 25.0\nptmin = 3.0"), r"unknown key\(s\) \['ptmin'\] in \[leptons\]"),
        (edited("[btag]", "[btag]\ncolour = 1"), r"unknown key\(s\) \['colour'\] in \[btag\]"),
        (edited("[selection]", "[calorimeter]\nx = 1\n[selection]"), r"unknown top-level key\(s\) or section\(s\) \['calorimeter'\]"),
        (edited("mistag_c = 0.1", ""), r"\[btag\] is missing required field\(s\) \['mistag_c'\]"),
        (edited('name = "default"', ""), r"missing required section\(s\) or field\(s\) \['name'\]"),
        (edited("energy_resolution_constant = 0.05", "energy_resolution_constant = -0.05"), r"\[jets\] energy_resolution_constant must be a finite resolution ≥ 0"),
        (edited("resolution_stochastic = 0.5", "resolution_stochastic = inf"), r"\[met\] resolution_stochastic must be a finite resolution"),
        (edited("efficiency = 0.7", "efficiency = 1.2"), r"\[btag\] efficiency must be a probability in \[0, 1\]"),
        (edited("efficiency = 0.7", 'efficiency = "high"'), r"\[btag\] efficiency must be a number"),
        (edited("efficiency = 0.7", "efficiency = true"), r"\[btag\] efficiency must be a number"),
        (edited("n_btag_min = 0", "n_btag_min = 1.5"), r"\[selection\] n_btag_min must be a non-negative integer"),
        (edited("eta_max = 2.5", "eta_max = 0.0"), r"\[leptons\] eta_max must be > 0"),
        (edited("met_min = 0.0", "met_min = nan"), r"\[selection\] met_min is NaN"),
        (edited("[trigger]", "[trigger"), "not valid TOML"),
    ],
)
def test_strict_card_errors_name_the_problem(text, message):
    with pytest.raises(InvalidInputError, match=message):
        DetectorCard.from_toml(text)


def test_card_source_errors():
    with pytest.raises(InvalidInputError, match="no such file"):
        DetectorCard.from_toml("/nonexistent/card.toml")
    with pytest.raises(DataFormatError):
        DetectorCard.from_toml("name = \n")
    with pytest.raises(InvalidInputError, match="no built-in detector card 'cms'"):
        DetectorCard.builtin("cms")
    with pytest.raises(InvalidInputError, match="no section 'muons'"):
        DetectorCard.builtin("default").replace(muons={"eta_max": 2.0})


# --------------------------------------------------------------------------------------
# Roles and inputs
# --------------------------------------------------------------------------------------
def test_role_classification():
    assert classify_role("l") == ("lepton", "") and classify_role("mu+") == ("lepton", "")
    assert classify_role("v")[0] == "neutrino" and classify_role("ve~")[0] == "neutrino"
    assert classify_role("bbar") == ("jet", "b") and classify_role("c") == ("jet", "c") and classify_role("g") == ("jet", "light")
    with pytest.raises(InvalidInputError, match="'t' is a top quark, not a final-state object"):
        classify_role("t")
    with pytest.raises(InvalidInputError, match="cannot classify role 'x'"):
        classify_role("x")


def test_bad_apply_inputs():
    momenta, roles = wh_events(4, seed=1)
    detector = Detector("default")
    with pytest.raises(InvalidInputError, match="'t' is a top quark"):
        detector.apply(momenta[:, :4], ("g", "g", "t", "tbar"), gen(0), n_initial=2)
    with pytest.raises(InvalidInputError, match="generator"):
        detector.apply(momenta, roles, 3, n_initial=2)
    with pytest.raises(ShapeError, match="float64"):
        detector.apply(momenta.float(), roles, gen(0), n_initial=2)
    with pytest.raises(InvalidInputError, match="roles must name each"):
        detector.apply(momenta, roles[2:], gen(0))
    with pytest.raises(InvalidInputError, match="n_initial"):
        detector.apply(momenta, roles, gen(0), n_initial=7)


# --------------------------------------------------------------------------------------
# Perfect detector and MET
# --------------------------------------------------------------------------------------
def test_perfect_detector_is_the_identity():
    momenta, roles = wh_events(500, seed=2)
    reco = Detector("perfect").apply(momenta, roles, gen(3), n_initial=2)
    assert reco.roles == ("l", "b", "bbar") and reco.slots == (2, 4, 5)
    assert torch.equal(reco.momenta, momenta[:, [2, 4, 5]])
    assert reco.accepted.all() and reco.passed.all() and reco.triggered.all()
    assert torch.equal(reco.btagged, torch.tensor([False, True, True]).expand(500, -1))
    # MET is the neutrino p_T: the partonic events have no initial-state p_T.
    assert torch.allclose(reco.met, momenta[:, 3, 1:3], atol=1e-9)
    assert torch.allclose(reco.met_pt, torch.hypot(momenta[:, 3, 1], momenta[:, 3, 2]), atol=1e-9)


def test_recoil_identity_with_smeared_objects():
    momenta, roles = wh_events(500, seed=4)
    card = default_with(met={"resolution_stochastic": 0.0, "resolution_constant": 0.0},
                        leptons={"eta_max": math.inf}, jets={"eta_max": math.inf})
    reco = Detector(card).apply(momenta, roles, gen(5), n_initial=2)
    assert not torch.equal(reco.momenta, momenta[:, [2, 4, 5]])  # smeared
    assert torch.allclose(reco.met, -reco.momenta[..., 1:3].sum(1), atol=1e-12)


def test_met_noise_has_the_card_width():
    n = 20000
    particles = [[100.0, 60.0, 0.0, 80.0], [50.0, -50.0, 0.0, 0.0], [30.0, 0.0, 30.0, 0.0]]  # l, b, v
    card = DetectorCard.builtin("perfect").replace(met={"resolution_stochastic": 0.5, "resolution_constant": 3.0})
    reco = Detector(card).apply(fixed_events(n, particles), ("l", "b", "v"), gen(6))
    noise = reco.met + reco.momenta[..., 1:3].sum(1)  # recoil identity: what is left is the noise
    sigma = math.hypot(0.5 * math.sqrt(60.0 + 50.0), 3.0)
    for component in (0, 1):
        assert abs(noise[:, component].mean().item()) < 4 * sigma / math.sqrt(n)
        assert noise[:, component].std().item() == pytest.approx(sigma, rel=4 / math.sqrt(2 * n))


# --------------------------------------------------------------------------------------
# Resolutions and efficiencies
# --------------------------------------------------------------------------------------
def test_jet_energy_and_lepton_pt_resolutions():
    n = 20000
    card = DetectorCard.builtin("default")
    particles = [[100.0, 0.0, 60.0, 80.0], [500.0, 300.0, 400.0, 0.0]]  # b jet E = 100 GeV, lepton pT = 500 GeV
    reco = Detector(card).apply(fixed_events(n, particles), ("b", "l"), gen(7))
    jet_sigma = math.hypot(card.jets.energy_resolution_stochastic / math.sqrt(100.0), card.jets.energy_resolution_constant) * 100.0
    lepton_sigma = math.hypot(card.leptons.pt_resolution_constant, card.leptons.pt_resolution_slope * 500.0) * 500.0
    energy = reco.momenta[:, 0, 0]
    pt = torch.hypot(reco.momenta[:, 1, 1], reco.momenta[:, 1, 2])
    tolerance = 4 / math.sqrt(2 * n)
    assert energy.std().item() == pytest.approx(jet_sigma, rel=tolerance)
    assert abs(energy.mean().item() - 100.0) < 4 * jet_sigma / math.sqrt(n)
    assert pt.std().item() == pytest.approx(lepton_sigma, rel=tolerance)
    assert abs(pt.mean().item() - 500.0) < 4 * lepton_sigma / math.sqrt(n)
    # Directions are kept.
    direction = reco.momenta[:, 0, 1:] / reco.momenta[:, 0, 1:].norm(dim=-1, keepdim=True)
    assert torch.allclose(direction, torch.tensor([0.0, 0.6, 0.8], dtype=F64).expand(n, -1), atol=1e-12)


def test_btag_rates_are_binomial():
    n = 20000
    card = DetectorCard.builtin("default")
    central = [100.0, 0.0, 100.0, 0.0]
    forward = [100.0 * math.cosh(3.0), 100.0, 0.0, 100.0 * math.sinh(3.0)]  # η = 3: outside the tagger
    roles = ("b", "c", "g", "l", "b")
    reco = Detector(card).apply(fixed_events(n, [central] * 4 + [forward]), roles, gen(8))
    for slot, rate in ((0, card.btag.efficiency), (1, card.btag.mistag_c), (2, card.btag.mistag_light)):
        measured = reco.btagged[:, slot].double().mean().item()
        assert abs(measured - rate) < 4 * math.sqrt(rate * (1 - rate) / n), roles[slot]
    assert not reco.btagged[:, 3].any() and not reco.btagged[:, 4].any()
    # Tags of different jets are independent.
    both = (reco.btagged[:, 0] & reco.btagged[:, 1]).double().mean().item()
    expected = card.btag.efficiency * card.btag.mistag_c
    assert abs(both - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_acceptance_trigger_and_selection():
    c3, s3 = 100.0 * math.cosh(3.0), 100.0 * math.sinh(3.0)
    particles = [  # l, b, bbar, v with Σ p_T = 0
        [[100.0, 0, 100, 0], [100.0, 100, 0, 0], [100.0, -100, 0, 0], [100.0, 0, -100, 0]],  # all central, MET 100
        [[20.0, 0, 20, 0], [100.0, 80, 60, 0], [100.0, -100, 0, 0], [math.hypot(20, 80), 20, -80, 0]],  # soft lepton
        [[c3, 100, 0, s3], [100.0, 0, 100, 0], [100.0, 0, -100, 0], [100.0, -100, 0, 0]],  # lepton at η = 3
    ]
    momenta = torch.tensor(particles, dtype=F64)
    roles = ("l", "b", "bbar", "v")
    card = DetectorCard.builtin("perfect").replace(
        leptons={"eta_max": 2.5, "pt_min": 25.0}, trigger={"single_lepton_pt": 27.0, "met": math.inf}
    )
    reco = Detector(card).apply(momenta, roles, gen(9))
    assert reco.accepted.tolist() == [[True, True, True], [False, True, True], [False, True, True]]
    assert reco.triggered.tolist() == [True, False, False] and reco.passed.tolist() == [True, False, False]
    # The lepton outside the acceptance is not measured: it cancels the neutrino in MET.
    assert torch.allclose(reco.met_pt, torch.tensor([100.0, math.hypot(20, 80), 0.0], dtype=F64), atol=1e-12)
    # A MET trigger fires on the soft-lepton event only when its threshold is below 82 GeV.
    assert Detector(card.replace(trigger={"met": 150.0})).apply(momenta, roles, gen(9)).triggered.tolist() == [True, False, False]
    reco = Detector(card.replace(trigger={"met": 50.0})).apply(momenta, roles, gen(9))
    assert reco.triggered.tolist() == [True, True, False] and reco.passed.tolist() == [True, False, False]
    # b-tag and MET requirements of the selection.
    assert Detector(card.replace(selection={"n_btag_min": 2})).apply(momenta, roles, gen(9)).passed.tolist() == [True, False, False]
    assert not Detector(card.replace(selection={"n_btag_min": 3})).apply(momenta, roles, gen(9)).passed.any()
    assert not Detector(card.replace(selection={"met_min": 150.0})).apply(momenta, roles, gen(9)).passed.any()


def test_same_seed_same_result_different_seed_different_result():
    momenta, roles = wh_events(200, seed=10)
    detector = Detector("default")
    a = detector.apply(momenta, roles, gen(11), n_initial=2)
    b = detector.apply(momenta, roles, gen(11), n_initial=2)
    c = detector.apply(momenta, roles, gen(12), n_initial=2)
    for field in ("momenta", "accepted", "btagged", "met", "triggered", "passed"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.momenta, c.momenta) and not torch.equal(a.met, c.met)
