"""Train an estimator from a TOML configuration (what ``sbihep train CONFIG.toml -o DIR`` does).

A configuration (see ``examples/train_wh_alices.toml``; parsing is strict: unknown keys, missing
fields and wrong types are errors that name the key)::

    seed = 0                        # optional; seeds the sample, the splits and the networks
    [data]
    events = "wh_events.nc"         # an EventSet file (relative to the config's folder), or
    # simulation = "card.toml"      # a simulation card (sbihep simulate's format) generated first
    features = "parton"             # "parton": the complete parton-level set of the process, or a list
                                    # of observables stored in the EventSet (reco level: `passed` events)
    test_fraction = 0.3             # events held out for the validation metrics
    [parameters]                    # θ and its training bounds; other operators stay at the SM
    cHW = [-1.0, 1.0]
    [estimator]
    kind = "ratio"                  # "ratio" or "score"
    method = "alices"               # carl rolr rascal alice alices cascal (ratio) | sally (score)
    hidden = [64, 64]
    activation = "tanh"
    architecture = "mlp"            # ratio: "mlp" or "morphing" (exact EFT polynomial in θ; SM at θ = 0)
    # order = "quadratic"           # morphing: the EFT order ("quadratic" or "linear")
    # normalisation = "sm_sample"   # morphing: Ẑ(θ) from "sm_sample", "cross_section" (exact) or "learned"
    alpha = 1.0                     # weight of the score term (rascal, alices, cascal)
    # score_units = "theta"         # or "bounds": score term per half-width of the training bounds
    n_members = 1                   # > 1: an ensemble
    bootstrap = false
    [sample]
    n_samples = 20000               # resampled rows; or instead
    # theta_per_event = 4           # a weighted sample: every training event once with K θ₀ draws
    prior = "uniform"               # or "gaussian" with prior_sigma
    theta1 = "sm"                   # "sm", "prior" (doubly parametrised) or {cHW = 0.5}
    theta_ref = {}                  # score estimators: the reference point (default SM)
    [training]                      # options of sbihep.estimators.train.train
    epochs = 50
    batch_size = 128
    [validation]
    grid_points = 3                 # θ₀ values per parameter for MSE(ln r̂)
    [export]
    onnx = true                     # also write DIR/estimator.onnx

The output directory (written atomically) holds ``estimator/`` (the saved estimator or ensemble),
``metrics.json``, ``train.toml`` (the configuration) and ``estimator.onnx`` when asked.  With
``features = "parton"`` the features carry the whole parton-level event, so the exact ln r(x|θ₀, θ₁) is
the joint ratio computed from the amplitudes, and the metrics include MSE(ln r̂) against it on the
held-out events (SM-weighted, averaged over a θ₀ grid); for a score estimator, MSE(t̂) against the
exact t(x|θ_ref).

The most accurate ratio set-up measured on WH (``benchmarks/RESULTS.md``) is ``architecture =
"morphing"``, ``normalisation = "cross_section"``, ``score_units = "bounds"`` and ``theta_per_event = 4``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sbihep._atomic import atomic_destination
from sbihep._toml import did_you_mean, is_toml_path, read_toml
from sbihep._version import __version__
from sbihep.config import _check_table
from sbihep.errors import InvalidInputError

__all__ = ["TrainConfig", "check_output_directory", "load_train_config", "run_training", "summary_table"]

_TOP = {"seed": int, "data": dict, "parameters": dict, "estimator": dict, "sample": dict, "training": dict,
        "validation": dict, "export": dict}  # fmt: skip
_DATA = {"events": str, "simulation": str, "features": (str, list), "test_fraction": (int, float)}
_ESTIMATOR = {"kind": str, "method": str, "hidden": list, "activation": str, "alpha": (int, float), "n_members": int,
              "bootstrap": bool, "log_r_clip": (int, float), "architecture": str, "order": str, "normalisation": str,
              "score_units": str}  # fmt: skip
_SAMPLE = {"n_samples": int, "theta_per_event": int, "prior": str, "prior_sigma": (int, float, dict), "theta1": (str, dict),
           "theta_ref": dict}  # fmt: skip
_TRAINING = {"epochs": int, "batch_size": int, "learning_rate": (int, float), "final_learning_rate": (int, float),
             "weight_decay": (int, float), "validation_fraction": (int, float), "early_stopping_patience": int,
             "clip_grad_norm": (int, float), "device": str}  # fmt: skip
_VALIDATION = {"grid_points": int, "max_events": int}
_EXPORT = {"onnx": bool}
_SCORE_METHODS = ("sally",)


@dataclass
class TrainConfig:
    """A checked training configuration (see the module docstring); ``base`` resolves relative paths."""

    data: dict
    parameters: dict[str, tuple[float, float]]
    estimator: dict
    sample: dict
    training: dict
    validation: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    seed: int = 0
    base: Path = Path(".")
    text: str = ""
    path: Path | None = None  # the configuration file (None for TOML text)


def _fail(where: str, message: str):
    raise InvalidInputError(f"{where}: {message}")


def load_train_config(source: str | Path) -> TrainConfig:
    """Read and check a training configuration from a file path or TOML text."""
    from sbihep.estimators.ratio import METHODS

    table, where = read_toml(source, "training config")
    _check_table(table, _TOP, where)
    for section in ("data", "parameters", "estimator", "sample"):
        if section not in table:
            _fail(where, f"the [{section}] section is required")
    data, est, sample = table["data"], table["estimator"], table["sample"]
    _check_table(data, _DATA, f"{where} [data]")
    _check_table(est, _ESTIMATOR, f"{where} [estimator]")
    _check_table(sample, _SAMPLE, f"{where} [sample]")
    training, validation, export = table.get("training", {}), table.get("validation", {}), table.get("export", {})
    _check_table(training, _TRAINING, f"{where} [training]")
    _check_table(validation, _VALIDATION, f"{where} [validation]")
    _check_table(export, _EXPORT, f"{where} [export]")
    if ("events" in data) == ("simulation" in data):
        _fail(f"{where} [data]", "give exactly one of 'events' (an EventSet file) or 'simulation' (a simulation card)")
    features = data.get("features", "parton")
    if isinstance(features, str) and features != "parton" or isinstance(features, list) and (not features or not all(isinstance(f, str) for f in features)):
        _fail(f"{where} [data]", f"'features' must be \"parton\" or a non-empty list of observable names, got {features!r}")
    if not 0 < data.get("test_fraction", 0.3) < 1:
        _fail(f"{where} [data]", f"'test_fraction' must lie in (0, 1), got {data['test_fraction']!r}")
    parameters = {}
    for name, bounds in table["parameters"].items():
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds) and bounds[0] < bounds[1]):
            _fail(f"{where} [parameters]", f"{name!r} must be [low, high] with low < high, got {bounds!r}")
        parameters[name] = (float(bounds[0]), float(bounds[1]))
    if not parameters:
        _fail(f"{where} [parameters]", "name at least one parameter with its training bounds, e.g. cHW = [-1.0, 1.0]")
    for key in ("kind", "method"):
        if key not in est:
            _fail(f"{where} [estimator]", f"missing required field {key!r}")
    if est["kind"] not in ("ratio", "score"):
        _fail(f"{where} [estimator]", f"'kind' must be \"ratio\" or \"score\", got {est['kind']!r}{did_you_mean(est['kind'], ('ratio', 'score'))}")
    allowed = METHODS if est["kind"] == "ratio" else _SCORE_METHODS
    if est["method"] not in allowed:
        _fail(f"{where} [estimator]", f"'method' of a {est['kind']} estimator must be one of {list(allowed)}, got {est['method']!r}"
                                      f"{did_you_mean(est['method'], allowed)}")
    if "activation" in est:
        from sbihep.estimators.base import _ACTIVATIONS

        if est["activation"] not in _ACTIVATIONS:
            _fail(f"{where} [estimator]", f"'activation' must be one of {sorted(_ACTIVATIONS)}, got {est['activation']!r}"
                                          f"{did_you_mean(est['activation'], _ACTIVATIONS)}")
    if "hidden" in est and not (est["hidden"] and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in est["hidden"])):
        _fail(f"{where} [estimator]", f"'hidden' must be a list of positive layer widths, got {est['hidden']!r}")
    if est.get("architecture", "mlp") not in ("mlp", "morphing") or (est["kind"] == "score" and "architecture" in est):
        _fail(f"{where} [estimator]", f"'architecture' is \"mlp\" or \"morphing\" and only for ratio estimators, got {est.get('architecture')!r}")
    _check_ratio_options(est, f"{where} [estimator]")
    if est.get("n_members", 1) < 1:
        _fail(f"{where} [estimator]", f"'n_members' must be ≥ 1, got {est['n_members']!r}")
    if "theta_per_event" in sample:
        if est["kind"] != "ratio":
            _fail(f"{where} [sample]", "'theta_per_event' (a weighted sample) is for ratio estimators")
        if "n_samples" in sample:
            _fail(f"{where} [sample]", "give 'n_samples' (resampled rows) or 'theta_per_event' (every event once, weighted), not both")
        if sample["theta_per_event"] < 1:
            _fail(f"{where} [sample]", f"'theta_per_event' must be ≥ 1, got {sample['theta_per_event']!r}")
        if sample.get("theta1") == "prior":
            _fail(f"{where} [sample]", "theta1 = \"prior\" (doubly parametrised) needs resampled rows ('n_samples'), not 'theta_per_event'")
    elif "n_samples" not in sample:
        _fail(f"{where} [sample]", "missing required field 'n_samples' (or 'theta_per_event' for a weighted sample)")
    elif sample["n_samples"] < 4:
        _fail(f"{where} [sample]", f"'n_samples' must be ≥ 4, got {sample['n_samples']!r}")
    if sample.get("prior", "uniform") not in ("uniform", "gaussian"):
        _fail(f"{where} [sample]", f"'prior' must be \"uniform\" or \"gaussian\", got {sample['prior']!r}")
    theta1 = sample.get("theta1", "sm")
    if isinstance(theta1, str) and theta1 not in ("sm", "prior"):
        _fail(f"{where} [sample]", f"'theta1' must be \"sm\", \"prior\" or a table of values, got {theta1!r}")
    if est["kind"] == "score" and "theta1" in sample:
        _fail(f"{where} [sample]", "'theta1' is for ratio estimators; score estimators take 'theta_ref'")
    for key in ("theta1", "theta_ref"):
        value = sample.get(key)
        if isinstance(value, dict):
            for name, v in value.items():
                if name not in parameters:
                    _fail(f"{where} [sample]", f"{key}.{name}: not one of the [parameters] {sorted(parameters)}")
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    _fail(f"{where} [sample]", f"{key}.{name} must be a number, got {v!r}")
    for key, value in training.items():
        if key in ("epochs", "batch_size") and value < 1:
            _fail(f"{where} [training]", f"{key!r} must be ≥ 1, got {value!r}")
    if validation.get("grid_points", 3) < 2:
        _fail(f"{where} [validation]", f"'grid_points' must be ≥ 2, got {validation['grid_points']!r}")
    _check_training_values(training, f"{where} [training]")
    if not 0 <= table.get("seed", 0) < 2**32:
        _fail(where, f"'seed' must lie in [0, 2**32), got {table['seed']!r}")
    is_file = is_toml_path(source)  # read_toml's rule
    base, text = (Path(source).parent, Path(source).read_text(encoding="utf-8")) if is_file else (Path("."), str(source))
    return TrainConfig(data=dict(data, features=features), parameters=parameters, estimator=dict(est), sample=dict(sample),
                       training=dict(training), validation=dict(validation), export=dict(export), seed=int(table.get("seed", 0)),
                       base=base, text=text, path=Path(source) if is_file else None)  # fmt: skip


def _check_training_values(training: dict, where: str) -> None:
    """Ranges of the [training] options, checked before any sampling or training starts."""
    positive = ("learning_rate", "final_learning_rate", "clip_grad_norm")
    for key, value in training.items():
        if isinstance(value, float) and not math.isfinite(value):
            _fail(where, f"{key!r} must be finite, got {value!r}")
        if key in positive and not value > 0:
            _fail(where, f"{key!r} must be > 0, got {value!r}")
        if key == "weight_decay" and value < 0:
            _fail(where, f"'weight_decay' must be ≥ 0, got {value!r}")
        if key == "validation_fraction" and not 0 < value < 1:
            _fail(where, f"'validation_fraction' must lie in (0, 1), got {value!r}")
        if key == "early_stopping_patience" and value < 1:
            _fail(where, f"'early_stopping_patience' must be ≥ 1, got {value!r}")
    if "device" in training:
        from sbihep.estimators.train import resolve_device

        try:
            resolve_device(training["device"])
        except InvalidInputError as exc:
            _fail(where, str(exc))


def _check_ratio_options(est: dict, where: str) -> None:
    """The ratio-only fields of [estimator]: order and normalisation (morphing only), score_units."""
    from sbihep.estimators.ratio import NORMALISATIONS

    morphing = est.get("architecture", "mlp") == "morphing"
    for key, allowed, needs_morphing in (("order", ("quadratic", "linear"), True), ("normalisation", NORMALISATIONS, True),
                                         ("score_units", ("theta", "bounds"), False)):  # fmt: skip
        if key not in est:
            continue
        if est["kind"] != "ratio" or (needs_morphing and not morphing):
            what = "ratio estimators with architecture = \"morphing\"" if needs_morphing else "ratio estimators"
            _fail(where, f"{key!r} is for {what}")
        if est[key] not in allowed:
            _fail(where, f"{key!r} must be one of {list(allowed)}, got {est[key]!r}")


# ---- the run ---------------------------------------------------------------------------------------
def _events(cfg: TrainConfig, quiet: bool):
    from sbihep.events.eventset import EventSet

    if "events" in cfg.data:
        path = cfg.base / cfg.data["events"]
        if not path.exists():
            _fail("[data] events", f"no such EventSet file {str(path)!r}")
        return EventSet.load(path)
    from sbihep.config import SimulationCard

    card = cfg.base / cfg.data["simulation"]
    if not card.is_file():
        _fail("[data] simulation", f"no such simulation card {str(card)!r}")
    return SimulationCard.from_toml(card).run(progress=not quiet)


def _prepare(cfg: TrainConfig, events):
    """(events with features, feature names, parameter space, whether the exact ratio is known)."""
    from sbihep.physics.processes import get_process

    process = get_process(events.process)
    unknown = sorted(set(cfg.parameters) - set(events.operators))
    if unknown:
        _fail("[parameters]", f"{unknown} are not operators of the EventSet{did_you_mean(unknown[0], events.operators)} "
                              f"(process {events.process!r} has {events.operators})")
    space = process.parameter_space(cfg.parameters).subset(cfg.parameters)
    features = cfg.data["features"]
    if features == "parton":
        from sbihep.events import reco

        try:
            events, names = reco.parton_features(events, process)
        except InvalidInputError as exc:
            _fail("[data] features", f"\"parton\" is not available here ({exc}); list observables instead")
        return events, names, space, True
    if "x" not in events.data:
        _fail("[data] features", "the EventSet has no observables; use features = \"parton\" or generate with observables")
    have = [str(o) for o in events.data["observable"].values]
    missing = [f for f in features if f not in have]
    if missing:
        _fail("[data] features", f"{missing} are not in the EventSet (it has {have})")
    if "passed" in events.data:
        events = events.select(events.data["passed"].values)
    return events, list(features), space, False


def _build_sample(cfg: TrainConfig, events, names, space, seed: int):
    from sbihep.events import augment

    s = cfg.sample
    if cfg.estimator["kind"] == "score":
        data = augment.score_training_sample(events, s["n_samples"], theta_ref=s.get("theta_ref") or None, features=names, seed=seed)
        return data.sel(parameter=list(space.names))
    prior = augment.uniform_prior(space) if s.get("prior", "uniform") == "uniform" else augment.gaussian_prior(space, s.get("prior_sigma", 1.0))
    theta1 = s.get("theta1", "sm")
    theta1 = prior if theta1 == "prior" else ({} if theta1 == "sm" else dict(theta1))
    if "theta_per_event" in s:
        data = augment.weighted_ratio_training_sample(events, prior, s["theta_per_event"], theta1=theta1, features=names, seed=seed)
    else:
        data = augment.ratio_training_sample(events, prior, s["n_samples"], theta1=theta1, features=names, seed=seed)
    return data.sel(parameter=list(space.names))


def _make_estimator(cfg: TrainConfig, names, space):
    from sbihep.estimators.ensemble import Ensemble
    from sbihep.estimators.ratio import RatioEstimator
    from sbihep.estimators.score import ScoreEstimator

    e = cfg.estimator
    shape = {"hidden": tuple(e.get("hidden", (64, 64))), "activation": e.get("activation", "tanh")}
    if e["kind"] == "score":
        cls, extra = ScoreEstimator, {"theta_ref": cfg.sample.get("theta_ref") or None}
    else:
        cls, extra = RatioEstimator, {"architecture": e.get("architecture", "mlp"), "order": e.get("order", "quadratic")}
    n_members = e.get("n_members", 1)
    if n_members == 1:
        return cls(names, space, seed=cfg.seed, **shape, **extra)
    return Ensemble.build(cls, names, space, n_members=n_members, seed=cfg.seed, **shape, **extra)


def _history_row(label: str, h) -> dict:
    best = h.best_epoch
    return {
        "member": label,
        "final_train_loss": h.train_loss[-1] if h.train_loss else math.nan,
        "final_validation_loss": h.validation_loss[-1] if h.validation_loss else math.nan,
        "best_validation_loss": h.validation_loss[best] if best >= 0 else math.nan,
        "best_epoch": best,
        "epochs": len(h.train_loss),
        "stopped_early": bool(h.stopped_early),
        "samples_per_s": h.samples_per_second,
        "seconds": h.seconds,
    }


def _exact_metrics(cfg: TrainConfig, estimator, test_events, names, space) -> dict:
    """MSE of ln r̂ (or t̂) against the exact parton-level truth on SM-weighted held-out events."""
    from sbihep.estimators.ensemble import Ensemble
    from sbihep.events import augment

    max_events = cfg.validation.get("max_events", 20000)
    if test_events.n_events > max_events:
        test_events = test_events.select(np.arange(test_events.n_events) < max_events)
    x = test_events.observables().sel(observable=names).values
    members = estimator.members if isinstance(estimator, Ensemble) else [estimator]
    out: dict[str, Any] = {"n_test_events": int(test_events.n_events)}
    if cfg.estimator["kind"] == "score":
        ref = space.validate(cfg.sample.get("theta_ref") or {})
        w = test_events.weights(ref).numpy()
        w = w / w.sum()
        cols = [test_events.operators.index(n) for n in space.names]
        exact = test_events.joint_score(ref).numpy()[:, cols]
        mse = lambda t: float(np.sum(w * ((t - exact) ** 2).sum(1)))  # noqa: E731
        out["mse_score"] = mse(estimator.score(x))
        out["exact_score_variance"] = float(np.sum(w * ((exact - (w @ exact)) ** 2).sum(1)))
        if len(members) > 1:
            out["mse_score_members"] = [mse(m.score(x)) for m in members]
        return out
    w = test_events.weights({}).numpy()
    w = w / w.sum()
    grid = augment.grid(space, cfg.validation.get("grid_points", 3))
    thetas = grid(int(cfg.validation.get("grid_points", 3)) ** len(space), np.random.default_rng(0))
    theta1 = cfg.sample.get("theta1", "sm")
    theta1 = {} if not isinstance(theta1, dict) else theta1
    exact = np.stack([test_events.log_joint_ratio(dict(zip(space.names, row)), theta1).numpy() for row in thetas])
    th1 = space.validate(theta1)

    def mse(est) -> float:
        learned = est.log_ratio_grid(x, thetas, th1).values
        return float(np.sum(w * (learned - exact) ** 2, axis=1).mean())

    out["mse_log_r"] = mse(estimator)
    out["exact_log_r_variance"] = float(np.mean(np.sum(w * (exact - (exact @ w)[:, None]) ** 2, axis=1)))
    out["n_theta_grid"] = int(len(thetas))
    if len(members) > 1:
        out["mse_log_r_members"] = [mse(m) for m in members]
        out["mean_std_log_r"] = float(np.sum(w * estimator.log_ratio_grid(x, thetas, th1, with_std=True)["std"].values, axis=1).mean())
    return out


def check_output_directory(cfg: TrainConfig, output: str | Path) -> Path:
    """``output`` can take the run's directory: absent, empty, or an earlier ``sbihep train`` output —
    never a file (``-o card.toml`` used to delete the card) nor a directory holding the run's inputs.

    Raises:
        InvalidInputError: naming ``-o/--output`` and what is in the way.
    """
    from sbihep._outputs import check_output, is_training_output

    output = check_output(output, kind="directory", is_ours=is_training_output, what="training output directory")
    inputs = [cfg.path] if cfg.path is not None else []
    inputs += [cfg.base / cfg.data[k] for k in ("events", "simulation") if k in cfg.data]
    out = output.resolve()
    for item in inputs:
        item = Path(item).resolve()
        if item == out or out in item.parents:
            raise InvalidInputError(f"-o/--output: {str(output)!r} contains the input {str(item)!r}, which replacing the "
                                    "directory would delete; write to another directory")
    return output


def run_training(cfg: TrainConfig, output: str | Path, *, quiet: bool = False) -> dict:
    """Run a checked configuration: sample, train, validate, save into the directory ``output``
    (checked first with :func:`check_output_directory`).

    Returns the metrics (also written to ``output/metrics.json``).
    """
    from sbihep.estimators.ensemble import Ensemble

    check_output_directory(cfg, output)
    t0 = time.perf_counter()
    events = _events(cfg, quiet)
    events, names, space, parton_level = _prepare(cfg, events)
    train_ev, test_ev = events.split((1 - cfg.data.get("test_fraction", 0.3), cfg.data.get("test_fraction", 0.3)), seed=cfg.seed)
    data = _build_sample(cfg, train_ev, names, space, cfg.seed + 1)
    estimator = _make_estimator(cfg, names, space)
    options = {k: (float(v) if k in ("learning_rate", "final_learning_rate", "weight_decay", "validation_fraction", "clip_grad_norm") else v)
               for k, v in cfg.training.items()}  # fmt: skip
    fit_args = (cfg.estimator["method"],) if cfg.estimator["kind"] == "ratio" else ()
    fit_kwargs = {"alpha": float(cfg.estimator.get("alpha", 1.0)), "log_r_clip": float(cfg.estimator.get("log_r_clip", 10.0)),
                  **{k: cfg.estimator[k] for k in ("score_units", "normalisation") if k in cfg.estimator}} if fit_args else {}
    if isinstance(estimator, Ensemble):
        histories = estimator.fit(data, *fit_args, bootstrap=cfg.estimator.get("bootstrap", False), seed=cfg.seed, quiet=quiet, **fit_kwargs, **options)
    else:
        if cfg.estimator.get("bootstrap", False):
            _fail("[estimator]", "'bootstrap' needs n_members > 1")
        histories = [estimator.fit(data, *fit_args, seed=cfg.seed, quiet=quiet, **fit_kwargs, **options)]
    metrics: dict[str, Any] = {
        "sbihep_version": __version__,
        "kind": cfg.estimator["kind"],
        "method": cfg.estimator["method"],
        "features": names,
        "parameters": list(space.names),
        "n_training_samples": int(data.sizes["sample"]),
        "effective_sample_size": float(data.attrs.get("effective_sample_size", math.nan)),
        "n_train_events": int(train_ev.n_events),
        "members": [_history_row(str(k), h) for k, h in enumerate(histories)],
        "histories": [{"train_loss": h.train_loss, "validation_loss": h.validation_loss} for h in histories],
        "parton_level_truth": parton_level,
    }
    if parton_level:
        metrics["exact"] = _exact_metrics(cfg, estimator, test_ev, names, space)
    metrics["seconds"] = time.perf_counter() - t0
    output = Path(output)
    with atomic_destination(output) as tmp:
        tmp.mkdir(parents=True)
        estimator.save(tmp / "estimator")
        if cfg.export.get("onnx", False):
            from sbihep.estimators.onnx_export import export_onnx

            export_onnx(estimator, tmp / "estimator.onnx", extra={"training_config": cfg.text})
        (tmp / "train.toml").write_text(cfg.text, encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def summary_table(metrics: Mapping) -> str:
    """A fixed-width text table of the validation metrics of :func:`run_training`."""
    lines = [f"{metrics['kind']} estimator, method {metrics['method']}, {len(metrics['features'])} features, "
             f"parameters {', '.join(metrics['parameters'])}; {metrics['n_training_samples']} training samples"]  # fmt: skip
    lines.append(f"{'member':>6} {'epochs':>6} {'best ep':>7} {'final train':>12} {'final val':>12} {'best val':>12} {'samples/s':>10}")
    for row in metrics["members"]:
        lines.append(
            f"{row['member']:>6} {row['epochs']:>6d} {row['best_epoch']:>7d} {row['final_train_loss']:>12.5g} "
            f"{row['final_validation_loss']:>12.5g} {row['best_validation_loss']:>12.5g} {row['samples_per_s']:>10.0f}"
        )
    exact = metrics.get("exact")
    if exact is None:
        lines.append("MSE against the exact truth: n/a (features are not the complete parton-level event)")
    elif "mse_log_r" in exact:
        lines.append(f"MSE(ln r) vs exact = {exact['mse_log_r']:.5g} (Var of exact ln r {exact['exact_log_r_variance']:.4g}; "
                     f"{exact['n_theta_grid']} theta0 x {exact['n_test_events']} SM-weighted held-out events)")  # fmt: skip
        if "mse_log_r_members" in exact:
            lines.append(f"  members: {', '.join(f'{v:.5g}' for v in exact['mse_log_r_members'])}; mean ensemble std of ln r {exact['mean_std_log_r']:.4g}")
    else:
        lines.append(f"MSE(score) vs exact = {exact['mse_score']:.5g} (Var of exact score {exact['exact_score_variance']:.4g}; {exact['n_test_events']} held-out events)")
        if "mse_score_members" in exact:
            lines.append(f"  members: {', '.join(f'{v:.5g}' for v in exact['mse_score_members'])}")
    lines.append(f"total {metrics['seconds']:.1f} s")
    return "\n".join(lines)
