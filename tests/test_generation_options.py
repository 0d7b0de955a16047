"""generate(): systematics as nuisance parameters, detector and observables, run cards and the CLI."""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sbihep.cli import app
from sbihep.config import SimulationCard
from sbihep.errors import DataFormatError, InvalidInputError
from sbihep.events.eventset import EventSet
from sbihep.events.generate import generate
from sbihep.events.reco import parton_observables
from sbihep.physics.lorentz import mass
from sbihep.physics.processes import get_process
from sbihep.physics.processes.wh_lvbb import WHToLNuBB
from sbihep.physics.xsec import cross_section

torch.set_num_threads(1)
FAST = dict(n_adapt=3, n_per_iteration=6000, progress=False)


@pytest.fixture(scope="module")
def with_scale_variation():
    return generate(get_process("wh_lvbb"), 13000.0, 3000, seed=31, systematics=("mu_f",), **FAST)


def test_nuisance_morphing_is_exact_at_plus_minus_one(with_scale_variation):
    events = with_scale_variation
    assert events.nuisances == {"mu_f": ["mu_f_up", "mu_f_down"]}
    space = events.nuisance_space()
    assert space["mu_f"].kind == "nuisance" and space["mu_f"].constraint.sigma == 1.0
    theta = {"cHW": 0.7}
    for nu, variation in ((1.0, "mu_f_up"), (-1.0, "mu_f_down")):
        stored = torch.from_numpy(events.data["eft_variations"].sel(variation=variation).values)
        from sbihep.events.eft import weights_at

        expected = weights_at(stored, events.theta_vector(theta))
        assert torch.allclose(events.weights(theta, {"mu_f": nu}), expected, rtol=1e-12)
    assert torch.equal(events.weights(theta, {"mu_f": 0.0}), events.weights(theta))
    with pytest.raises(InvalidInputError, match="unknown nuisance"):
        events.weights(theta, {"jes": 1.0})


def test_scale_variation_matches_cross_section_at_doubled_scale(with_scale_variation):
    class DoubledScale(WHToLNuBB):
        def factorisation_scale(self, momenta):
            return 2.0 * super().factorisation_scale(momenta)

    xs = cross_section(DoubledScale(), 13000.0, n_evaluations=8000, n_adapt=3, n_iterations=3, seed=2, progress=False)
    value, error = xs({"cHW": 0.5})
    w = with_scale_variation.weights({"cHW": 0.5}, {"mu_f": 1.0}).numpy()
    sample, sample_error = w.sum(), w.std() * math.sqrt(len(w)) + 3e-3 * w.sum()
    assert abs(sample - value) < 3 * math.hypot(error, sample_error), (sample, value)
    nominal = with_scale_variation.sigma({"cHW": 0.5})
    assert abs(sample / nominal - 1) > 0.005  # the variation is a real effect (a few % at LO)


def test_perfect_detector_reproduces_parton_level_observables():
    wh = get_process("wh_lvbb")
    names = ["pt(l)", "m(b,bbar)", "phi_helicity(l,met;b,bbar)"]
    reco = generate(wh, 13000.0, 300, seed=5, detector="perfect", observables=names, **FAST)
    parton = parton_observables(reco, ["pt(l)", "m(b,bbar)", "phi_helicity(l,v;b,bbar)"], process=wh)
    x_reco, x_parton = reco.observables().values, parton.observables().values
    assert np.allclose(x_reco[:, :2], x_parton[:, :2], rtol=1e-12)
    # the CP-odd angle from (l, met) equals the one from (l, v) when MET is the neutrino pT and pz(v) is not needed
    assert "[leptons]" in reco.data.attrs["detector_card"] and reco.data["passed"].dtype == bool
    p = reco.momenta()
    assert np.allclose(x_parton[:, 1], mass(p[:, 4] + p[:, 5]).numpy(), rtol=1e-12)


CARD = """
process = "ee_mumu"
sqrt_s_gev = 250.0
n_events = 300
seed = 3
observables = ["pt(mu-)", "cos_cs(mu-,mu+)"]
[generation]
n_adapt = 2
n_per_iteration = 2000
"""


def test_simulation_card_and_cli(tmp_path):
    card = SimulationCard.from_toml(CARD)
    assert card.process == "ee_mumu" and card.generation["n_adapt"] == 2
    path = tmp_path / "run.toml"
    path.write_text(CARD)
    out = tmp_path / "events.nc"
    result = CliRunner().invoke(app, ["simulate", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "unweighting efficiency" in result.output
    events = EventSet.load(out)
    assert len(events) == 300 and list(events.observables()["observable"].values) == ["pt(mu-)", "cos_cs(mu-,mu+)"]


@pytest.mark.parametrize(
    "text, message",
    [
        (CARD + "\nfoo = 1\n", "unknown key 'foo'"),
        ('process = "ee_mumu"\nn_events = 10\n', "missing required"),
        (CARD.replace("n_events = 300", 'n_events = "many"'), "n_events"),
        (CARD + "\n[detector]\nseed = 1\n", "card"),
        ("process = [\n", "not valid TOML"),  # one-line text is a path since issue 19; text needs a newline or TomlText
    ],
)
def test_simulation_card_errors(text, message):
    with pytest.raises((InvalidInputError, DataFormatError), match=message):
        SimulationCard.from_toml(text)


def test_cli_reports_bad_card(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(CARD.replace('"ee_mumu"', '"zz_4l"'))
    result = CliRunner().invoke(app, ["simulate", str(path), "-o", str(tmp_path / "x.nc")])
    assert result.exit_code == 2 and "unknown process" in result.output
    assert not (tmp_path / "x.nc").exists()
