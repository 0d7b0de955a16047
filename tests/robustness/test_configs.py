"""Strict TOML cards: the `sbihep fit` configuration and the detector card (issue 19, "strict configs").

Every case is a real mistake a user makes in a card; the outcome class is an sbihep error naming the
table and key (with a did-you-mean for misspelt names), found *before* any work starts — or, for the
valid variants, the correct result.  Cases marked "issue 19" fail on the code before the fix: there
`load_config` returned such configs unchecked (a typo dropped the luminosity nuisance, fitted at the SM
or ran 200 toys) or the run died in a raw KeyError / ValueError / TypeError.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sbihep._toml import TomlText
from sbihep.cli import app
from sbihep.errors import DataFormatError, InvalidInputError, SbihepError
from sbihep.events.detector import Detector, DetectorCard, builtin_cards
from sbihep.fit import run as fit_run
from sbihep.fit.run import build_likelihood, load_config, run_config

torch.set_num_threads(1)
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

FIT = """\
[model]
kind = "unbinned_exact"
lumi_ifb = 1.0
lumi_uncertainty = 0.025
pois = { cll = [-1.0, 1.0] }

[model.generate]
process = "ee_mumu"
sqrt_s_gev = 250.0
n_events = 200
seed = 1
n_adapt = 1
n_per_iteration = 500

[data]
asimov = { cll = 0.0 }

[scan]
cll = { low = -0.1, high = 0.1, points = 5 }

[neyman]
parameter = "cll"
low = -0.1
high = 0.1
points = 3
n_toys = 5
"""

HUGE = "n_events = 200000000"  # would take days: a case that fails must fail before generation


def _config(tmp_path, old=None, new=None, *, text=FIT, huge=True) -> Path:
    if huge:
        text = text.replace("n_events = 200", HUGE)
    if old is not None:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "fit.toml"
    path.write_text(text)
    return path


def _is_usage_error(res, *needles) -> bool:
    out = res.output
    return res.exit_code == 2 and "error:" in out and "Traceback" not in out and all(n in out for n in needles)


# (old, new, needles) — structural mistakes found by load_config alone
STRUCTURAL = [
    # issue 19: the three silent typos of the report
    ("lumi_uncertainty = 0.025", "lumi_uncertainy = 0.025", ["unknown key 'lumi_uncertainy'", "did you mean 'lumi_uncertainty'"]),
    ("asimov = { cll = 0.0 }", "asimovv = { cll = 0.0 }", ["unknown key 'asimovv'", "did you mean 'asimov'"]),
    ("n_toys = 5", "n_toy = 5", ["unknown key 'n_toy'", "did you mean 'n_toys'"]),
    # more misspelt keys, in every table
    ("lumi_ifb = 1.0", "lumi_fb = 1.0", ["'lumi_fb'", "did you mean 'lumi_ifb'"]),
    ("pois = {", "poi = {", ["'poi'", "did you mean 'pois'"]),
    ('kind = "unbinned_exact"', 'knd = "unbinned_exact"', ["'knd'", "did you mean 'kind'"]),
    ("seed = 1\n", "sed = 1\n", ["'sed'", "did you mean 'seed'"]),
    ("n_adapt = 1", "n_adapt = 1\nsystematic = [\"mu_f\"]", ["'systematic'", "did you mean 'systematics'"]),
    ("n_per_iteration = 500", "n_per_iter = 500", ["'n_per_iter'", "did you mean 'n_per_iteration'"]),
    ("sqrt_s_gev = 250.0", "sqrts_gev = 250.0", ["'sqrts_gev'", "did you mean 'sqrt_s_gev'"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = -0.1, high = 0.1, point = 5 }", ["'point'", "did you mean 'points'"]),
    ('parameter = "cll"', 'parameters = "cll"', ["'parameters'", "did you mean 'parameter'"]),
    ("n_toys = 5", "n_toys = 5\nworker = 2", ["'worker'", "did you mean 'workers'"]),
    ("asimov = { cll = 0.0 }", "asimov = { cll = 0.0 }\ntoyseed = 3", ["'toyseed'", "did you mean 'toy_seed'"]),
    ("[data]", "[dat]", ["unknown section [dat]", "did you mean 'data'"]),
    ("[neyman]", "[neymann]", ["unknown section [neymann]", "did you mean 'neyman'"]),
    # issue 19: mistakes that gave tracebacks (KeyError, ValueError, TypeError) instead of `error:`
    ("lumi_ifb = 1.0\n", "", ["missing required key 'lumi_ifb'"]),
    ('lumi_ifb = 1.0', 'lumi_ifb = "140"', ["'lumi_ifb' must be int or float"]),
    ("lumi_ifb = 1.0", "lumi_ifb = -1.0", ["'lumi_ifb' must be > 0"]),
    ("lumi_ifb = 1.0", "lumi_ifb = nan", ["'lumi_ifb' must be finite"]),
    ("lumi_ifb = 1.0", "lumi_ifb = true", ["'lumi_ifb' must be int or float, got a boolean"]),
    ("lumi_uncertainty = 0.025", "lumi_uncertainty = 2.5", ["'lumi_uncertainty' must lie in (0, 1)"]),
    ("lumi_uncertainty = 0.025", "lumi_uncertainty = 0.0", ["'lumi_uncertainty' must lie in (0, 1)"]),
    ("lumi_uncertainty = 0.025", 'lumi_uncertainty = "2.5%"', ["'lumi_uncertainty' must be int or float"]),
    ("pois = { cll = [-1.0, 1.0] }", "pois = { cll = [-1.0] }", ["pois", "'cll' must be [low, high]"]),
    ("pois = { cll = [-1.0, 1.0] }", "pois = { cll = [1.0, -1.0] }", ["'cll' must have low < high"]),
    ("pois = { cll = [-1.0, 1.0] }", 'pois = { cll = ["a", 1.0] }', ["'cll' must be a number"]),
    ("pois = { cll = [-1.0, 1.0] }", "pois = { cll = -1.0 }", ["'cll' must be [low, high]"]),
    ('kind = "unbinned_exact"', 'kind = "unbinned"', ["'kind' must be one of", "got 'unbinned'"]),
    ('kind = "unbinned_exact"', 'kind = "binned"', ["kind 'binned' needs `bins`"]),
    ('kind = "unbinned_exact"', 'kind = "unbinned_exact"\nbins = { "pt(mu-)" = [0.0, 50.0, 125.0] }', ["'bins' is only used by kind 'binned'"]),
    ('kind = "unbinned_exact"', 'kind = "unbinned_exact"\nfile = "s.onnx"', ["'file' is only used by kind 'surrogate'"]),
    ('kind = "unbinned_exact"', 'kind = "unbinned_exact"\nevents = "ev.nc"', ["exactly one of `events`"]),
    ("[model.generate]", "[model.generat]", ["'generat'", "did you mean 'generate'"]),
    ('process = "ee_mumu"\n', "", ["[model.generate]", "missing required key 'process'"]),
    (HUGE, "", ["missing required key 'n_events'"]),
    (HUGE, "n_events = 0", ["'n_events' must be ≥ 1"]),
    (HUGE, "n_events = 1e3", ["'n_events' must be int"]),
    ("seed = 1\n", "seed = -3\n", ["'seed' must be a seed in [0, 2**32)"]),
    ("seed = 1\n", "seed = 4294967296\n", ["'seed' must be a seed"]),
    ("n_per_iteration = 500", "n_per_iteration = 2", ["'n_per_iteration' must be ≥ 100"]),
    ("n_adapt = 1", "n_adapt = 0", ["'n_adapt' must be ≥ 1"]),
    ("n_adapt = 1", "n_adapt = 1\nn_workers = 0", ["'n_workers' must be ≥ 1"]),
    ("n_adapt = 1", "n_adapt = 1\nchunk_size = 0", ["'chunk_size' must be ≥ 1"]),
    ("sqrt_s_gev = 250.0", "sqrt_s_gev = -250.0", ["'sqrt_s_gev' must be > 0"]),
    ("sqrt_s_gev = 250.0", "sqrt_s_gev = inf", ["'sqrt_s_gev' must be finite"]),
    ("n_adapt = 1", 'n_adapt = 1\norder = "quadratc"', ["did you mean 'quadratic'"]),
    ("n_adapt = 1", "n_adapt = 1\nsystematics = [1]", ["'systematics' must be a list of strings"]),
    ("n_adapt = 1", "n_adapt = 1\ntheta = { cll = nan }", ["theta", "'cll' must be finite"]),
    ("n_adapt = 1", "n_adapt = 1\nmax_overweight = 2.0", ["'max_overweight' must lie in [0, 1)"]),
    ("asimov = { cll = 0.0 }", "asimov = { cll = nan }", ["asimov", "'cll' must be finite"]),
    ("asimov = { cll = 0.0 }", 'asimov = { cll = "0" }', ["'cll' must be a number"]),
    ("asimov = { cll = 0.0 }", "asimov = 0.0", ["'asimov' must be dict"]),
    ("asimov = { cll = 0.0 }", 'asimov = { cll = 0.0 }\ntoy_seed = "a"', ["'toy_seed' must be int"]),
    ("asimov = { cll = 0.0 }", "asimov = { cll = 0.0 }\ntoy_seed = -1", ["'toy_seed' must be a seed"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = -0.1, high = 0.1, points = 1 }", ["'points' must be ≥ 2"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", 'cll = { low = -0.1, high = 0.1, points = "5" }', ["'points' must be int"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = 0.1, high = -0.1, points = 5 }", ["needs low < high"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = -0.1, points = 5 }", ["missing key(s) ['high']"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", 'cll = "automatic"', ["'cll' must be \"auto\" or {low, high, points}"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = -0.1, high = nan, points = 5 }", ["'high' must be finite"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", 'cll = "auto"\ncle = "auto"\ncee = "auto"', ["scan one or two parameters"]),
    ('parameter = "cll"\n', "", ["[neyman]", "missing required key(s) ['parameter']"]),
    ("points = 3\n", "", ["missing required key(s) ['points']"]),
    ("points = 3\n", "points = 1\n", ["'points' must be ≥ 2"]),
    ("n_toys = 5", "n_toys = 0", ["'n_toys' must be ≥ 1"]),
    ("n_toys = 5", "n_toys = 5\nseed = -3", ["'seed' must be a seed"]),
    ("n_toys = 5", "n_toys = 5\nworkers = 0", ["'workers' must be ≥ 1"]),
    ("high = 0.1\npoints = 3", "high = -0.2\npoints = 3", ["needs low < high"]),
    ("n_toys = 5", 'n_toys = "many"', ["'n_toys' must be int"]),
]


@pytest.mark.robustness(entry="sbihep fit (config)", outcome="error")
@pytest.mark.parametrize("old, new, needles", STRUCTURAL, ids=[c[1][:40] or f"drop {c[0][:30]}" for c in STRUCTURAL])
def test_fit_config_mistakes_are_named_by_load_config(tmp_path, old, new, needles):
    path = _config(tmp_path, old, new)
    with pytest.raises(InvalidInputError) as info:
        load_config(path)
    message = str(info.value)
    assert all(n in message for n in needles), message
    assert "fit config" in message


# (old, new, needles) — names checked against the process before generation (run_config)
NAMES = [
    ("asimov = { cll = 0.0 }", "asimov = { cLL = 0.0 }", ["[data] asimov", "'cLL' is not a parameter", "did you mean 'cll'"]),
    ("asimov = { cll = 0.0 }", "asimov = { lumi = 0.0, cle = 0.0 }", ["'cle' is not a parameter"]),  # cle is not a POI here
    ("cll = { low", "cl = { low", ["[scan]", "'cl' is not a parameter"]),
    ('parameter = "cll"', 'parameter = "c_ll"', ["[neyman] parameter", "'c_ll'", "did you mean 'cll'"]),
    ("pois = { cll = [-1.0, 1.0] }", "pois = { cLL = [-1.0, 1.0] }", ["[model] pois", "'cLL'", "did you mean 'cll'"]),
    ('process = "ee_mumu"', 'process = "ee_mumuu"', ["unknown process 'ee_mumuu'", "did you mean 'ee_mumu'"]),
    ("n_adapt = 1", 'n_adapt = 1\nsystematics = ["mu_ff"]', ["unknown systematics 'mu_ff'", "did you mean 'mu_f'"]),
    ("n_adapt = 1", "n_adapt = 1\ntheta = { cLE = 0.1 }", ["theta", "'cLE' is not an operator", "did you mean 'cle'"]),
    ("n_adapt = 1", 'n_adapt = 1\ndetector = "defualt"', ["detector card 'defualt'", "did you mean 'default'"]),
    ("asimov = { cll = 0.0 }", "asimov = { mu_f = 0.5 }", ["'mu_f' is not a parameter"]),  # no systematics generated
    ('kind = "unbinned_exact"', 'kind = "binned"\nbins = { "pt(mu+)" = [0.0, 60.0, 125.0] }', ["'pt(mu+)' is not one of the observables"]),
    ("n_adapt = 1", 'n_adapt = 1\nobservables = ["pt(muon)"]', ["pt(muon)"]),
    ("asimov = { cll = 0.0 }", "asimov = { cll = 5.0 }", ["[data] asimov", "'cll' = 5.0 lies outside"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", "cll = { low = -3.0, high = 0.1, points = 5 }", ["[scan] cll", "outside"]),
    ("low = -0.1\nhigh = 0.1\npoints = 3", "low = -0.1\nhigh = 3.0\npoints = 3", ["[neyman]", "outside"]),
]


@pytest.mark.robustness(entry="sbihep fit (config)", outcome="error")
@pytest.mark.parametrize("old, new, needles", NAMES, ids=[c[1][:40] for c in NAMES])
def test_fit_config_names_are_checked_before_generation(tmp_path, monkeypatch, old, new, needles):
    """issue 19: a wrong parameter name in [data]/[scan]/[neyman] surfaced only after the events were
    generated (as a KeyError / UnknownParameterError at the end); event generation is replaced by a trap
    here, so an sbihep error proves the check came first."""
    import sbihep.events.generate as gen

    def started(*args, **kwargs):
        raise AssertionError("event generation started before the bad name was reported")

    monkeypatch.setattr(gen, "_adapt_map", started)
    path = _config(tmp_path, old, new)
    config = load_config(path)
    start = time.perf_counter()
    with pytest.raises(SbihepError) as info:
        run_config(config, path.parent)
    message = str(info.value)
    assert all(n in message for n in needles), message
    assert time.perf_counter() - start < 60


CLI_CASES = [
    ("lumi_uncertainty = 0.025", "lumi_uncertainy = 0.025", ["did you mean 'lumi_uncertainty'"]),
    ("asimov = { cll = 0.0 }", "asimovv = { cll = 0.0 }", ["did you mean 'asimov'"]),
    ("n_toys = 5", "n_toy = 5", ["did you mean 'n_toys'"]),
    ("lumi_ifb = 1.0\n", "", ["lumi_ifb"]),
    ("asimov = { cll = 0.0 }", 'asimov = { cll = 0.0 }\ntoy_seed = "a"', ["toy_seed"]),
    ("points = 3\n", "", ["points"]),
    ('parameter = "cll"', 'parameter = "cLL"', ["did you mean 'cll'"]),
    ('kind = "unbinned_exact"', 'kind = "binned"\nbins = { "pt(mu-)" = [0.0, 60.0, 125.0] }', ["pt(mu-)"]),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", 'cll = { low = -0.1, high = 0.1, points = "5" }', ["points"]),
    ('kind = "unbinned_exact"', "kind = 3", ["'kind' must be str"]),
    ("[data]", "[dta]", ["unknown section [dta]"]),
]


@pytest.mark.robustness(entry="sbihep fit", outcome="error")
@pytest.mark.parametrize("old, new, needles", CLI_CASES, ids=[c[1][:40] or f"drop {c[0][:30]}" for c in CLI_CASES])
def test_fit_cli_reports_config_mistakes(tmp_path, old, new, needles):
    """issue 19: the CLI gave a traceback (or fitted silently) for these; now `error:` and exit 2, no result
    written.  The configs have few events so that the old code fails fast instead of hanging."""
    path = _config(tmp_path, old, new, huge=False)
    out = tmp_path / "r.nc"
    res = runner.invoke(app, ["fit", str(path), "-o", str(out)])
    assert _is_usage_error(res, *needles), res.output
    assert not out.exists()


@pytest.mark.robustness(entry="sbihep fit", outcome="error")
@pytest.mark.parametrize("text, needle", [
    ("[model\nkind = 1", "not valid TOML"),
    ("", "[model] section is required"),
    ("model = 3\n", "'model' must be dict"),
    ('[model]\nkind = "surrogate"\n', "needs `file`"),
    ('[model]\nkind = "surrogate"\nfile = "s.onnx"\ndata = "asimv"\n', "did you mean 'asimov'"),
    ('[model]\nkind = "surrogate"\nfile = "s.onnx"\nlumi_ifb = 1.0\n', "not used by kind 'surrogate'"),
    ('[model]\nkind = "surrogate"\nfile = "s.onnx"\n[data]\nasimov = {}\n', "carries its own data"),
    ('[model]\nevents = "ev.nc"\n', "missing required key 'lumi_ifb'"),
    ('[model]\nlumi_ifb = 1.0\n', "exactly one of `events`"),
])
def test_fit_cli_reports_malformed_configs(tmp_path, text, needle):
    path = tmp_path / "c.toml"
    path.write_text(text)
    res = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "r.nc")])
    assert _is_usage_error(res, needle), res.output


@pytest.mark.robustness(entry="sbihep fit", outcome="error")
def test_fit_cli_missing_events_file_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nevents = "no_such_events.nc"\nlumi_ifb = 1.0\n')
    res = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "r.nc")])
    assert _is_usage_error(res, "no_such_events.nc"), res.output


@pytest.mark.robustness(entry="sbihep fit", outcome="error")
def test_fit_cli_foreign_events_file_is_named(tmp_path):
    (tmp_path / "ev.nc").write_bytes(b"not a netCDF file at all" * 10)
    path = tmp_path / "c.toml"
    path.write_text('[model]\nevents = "ev.nc"\nlumi_ifb = 1.0\n')
    res = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "r.nc")])
    assert _is_usage_error(res, "ev.nc"), res.output


@pytest.mark.robustness(entry="sbihep fit (config)", outcome="correct")
@pytest.mark.parametrize("old, new", [
    (None, None),
    ("cll = { low = -0.1, high = 0.1, points = 5 }", 'cll = "auto"'),
    ("lumi_uncertainty = 0.025\n", ""),
    ("asimov = { cll = 0.0 }", "asimov = { cll = 0.1, lumi = 0.5 }\ntoy_seed = 7"),
    ('kind = "unbinned_exact"', 'kind = "binned"\nbins = { "pt(mu-)" = [0.0, 60.0, 90.0, 125.0] }'),
    ("lumi_ifb = 1.0", "lumi_ifb = 2"),  # an integer luminosity is a number
])
def test_valid_fit_config_variants_load(tmp_path, old, new):
    text = FIT
    if old is not None and "bins" in new:
        text = text.replace("n_per_iteration = 500", 'n_per_iteration = 500\nobservables = ["pt(mu-)"]')
    config = load_config(_config(tmp_path, old, new, text=text))
    assert set(config) <= {"model", "data", "scan", "neyman"}


@pytest.mark.robustness(entry="sbihep fit", outcome="correct")
def test_fit_runs_with_the_luminosity_nuisance(tmp_path):
    """The correct key keeps its effect: the fitted parameters include the luminosity nuisance."""
    text = FIT.split("[scan]")[0]
    lik = build_likelihood(load_config(_config(tmp_path, text=text, huge=False)), tmp_path)
    assert set(lik.names) == {"cll", "lumi"}
    out = tmp_path / "r.nc"
    res = runner.invoke(app, ["fit", str(_config(tmp_path, text=text, huge=False)), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "lumi" in res.output


@pytest.mark.robustness(entry="sbihep fit (config)", outcome="correct")
def test_the_example_config_is_accepted():
    config = load_config(ROOT / "examples" / "fit_wh_exact.toml")
    fit_run.check_config(config)
    assert config["neyman"]["n_toys"] == 30


@pytest.mark.robustness(entry="sbihep fit (config)", outcome="error")
def test_load_config_accepts_text_and_rejects_non_tables():
    assert load_config(TomlText(FIT))["model"]["lumi_ifb"] == 1.0
    with pytest.raises(DataFormatError, match="not valid TOML"):
        load_config(TomlText("[model"))
    with pytest.raises(InvalidInputError, match="must be a table of sections"):
        fit_run.check_config([("model", {})])


# ---------------------------------------------------------------------------------------------
# detector cards: unknown keys with a did-you-mean, types and ranges
# ---------------------------------------------------------------------------------------------

DEFAULT_CARD = DetectorCard.builtin("default").to_toml()


def _card_text(old, new):
    assert old in DEFAULT_CARD, old
    return TomlText(DEFAULT_CARD.replace(old, new, 1))


def _first_line(prefix: str) -> str:
    return next(line for line in DEFAULT_CARD.splitlines() if line.startswith(prefix))


DETECTOR = [
    # issue 19: the detector card named unknown keys without a did-you-mean
    ("\neta_max =", "\neta_mx =", ["unknown key(s) ['eta_mx'] in [leptons]", "did you mean 'eta_max'"]),
    ("[jets]", "[jet]", ["'jet'", "did you mean 'jets'"]),
    ("[btag]", "[b_tag]", ["'b_tag'", "did you mean 'btag'"]),
    ("[met]", "[mets]", ["'mets'", "did you mean 'met'"]),
    ("name =", "nme =", ["'nme'", "did you mean 'name'"]),
    ("[selection]", "[selecton]", ["'selecton'", "did you mean 'selection'"]),
]


@pytest.mark.robustness(entry="DetectorCard", outcome="error")
@pytest.mark.parametrize("old, new, needles", DETECTOR, ids=[c[1][:20] for c in DETECTOR])
def test_detector_card_typos_have_a_did_you_mean(old, new, needles):
    if old not in DEFAULT_CARD:  # section keys are rendered with their first field after them
        pytest.fail(f"{old!r} not in the default card")
    with pytest.raises(InvalidInputError) as info:
        DetectorCard.from_toml(_card_text(old, new))
    assert all(n in str(info.value) for n in needles), str(info.value)


@pytest.mark.robustness(entry="DetectorCard", outcome="error")
@pytest.mark.parametrize("field, value, needle", [
    ("pt_resolution_constant", "-0.1", "finite resolution ≥ 0"),
    ("pt_resolution_constant", "nan", "is NaN"),
    ("pt_resolution_constant", '"0.1"', "must be a number"),
    ("pt_resolution_constant", "true", "must be a number"),
    ("eta_max", "0.0", "must be > 0"),
    ("pt_min", "-5.0", "must be ≥ 0"),
])
def test_detector_card_values_are_checked(field, value, needle):
    line = _first_line(field)
    with pytest.raises(InvalidInputError, match=needle) as info:
        DetectorCard.from_toml(_card_text(line, f"{field} = {value}"))
    assert field in str(info.value)


@pytest.mark.robustness(entry="Detector", outcome="error")
@pytest.mark.parametrize("card, needle", [
    ("defualt", "did you mean 'default'"),
    ("perfec", "did you mean 'perfect'"),
    ("no_such_card", "no built-in card of that name"),
])
def test_detector_names_have_a_did_you_mean(card, needle):
    """issue 19: `Detector("defualt")` said "no such file 'defualt'" with a hint on TOML text."""
    assert "perfect" in builtin_cards() and "default" in builtin_cards()
    with pytest.raises(InvalidInputError, match=needle):
        Detector(card)


@pytest.mark.robustness(entry="DetectorCard", outcome="error")
def test_detector_card_replace_names_the_section():
    with pytest.raises(InvalidInputError, match="did you mean 'leptons'"):
        DetectorCard.builtin("default").replace(lepton={"eta_max": 2.0})
    with pytest.raises(InvalidInputError, match="did you mean 'default'"):
        DetectorCard.builtin("defaut")
    with pytest.raises(InvalidInputError, match="must be a table"):
        DetectorCard.from_dict(["name"])


@pytest.mark.robustness(entry="DetectorCard", outcome="correct")
def test_detector_card_round_trip_is_exact():
    card = DetectorCard.builtin("default")
    assert DetectorCard.from_toml(TomlText(card.to_toml())) == card
    changed = card.replace(leptons={"eta_max": 2.0})
    assert math.isclose(changed.leptons.eta_max, 2.0) and changed.jets == card.jets
