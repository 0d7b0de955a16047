"""Every kind of write sbihep does, for the kill -9 cases of test_killed_writes.py.

Each writer kind knows how to write a small *version* of its output (versions differ in content), and how
to load a written output back into a fingerprint (a string that differs between versions), using the
loader a user would use, with its integrity checks on.

Run as a script (``python _writers.py KIND TARGET MODE VERSION``) it writes version VERSION of KIND to
TARGET with a kill point armed, prints ``ready`` when it reaches that point and then waits to be killed:

* ``body``: as soon as the hidden temporary exists and holds data (part-way through writing it); if the
  write is faster than the watcher, it stops at the latest before the temporary is moved onto the target;
* ``swap``: the temporary is complete, just before it is moved (file) or swapped (directory) onto the target;
* ``aside``: (directories, without the one-step swap) after the previous version was moved aside and
  before the new one is moved in — the target is missing at that moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: _eft_toy


def _toy(version: int, n: int = 120):
    from _eft_toy import toy_events

    return toy_events(n, seed=version)


def _digest(*arrays) -> str:
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _strict():
    """Loading must not warn (an IntegrityWarning would mean the record is missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


# ---- events -------------------------------------------------------------------------------------------

def write_eventset(path: Path, version: int) -> None:
    _toy(version).save(path)


def load_eventset(path: Path) -> str:
    from sbihep.events.eventset import EventSet

    events = EventSet.load(path)
    return _digest(events.data["eft"].values, events.data["z"].values)


def write_lhe(path: Path, version: int) -> None:
    from sbihep.events.lhe import write_lhe as write

    write(_lhe_events(version), path)


def _lhe_events(version: int):
    import numpy as np

    from sbihep.events.eventset import EventSet

    rng = np.random.default_rng(version)
    n, e = 30, 125.0
    cos, phi = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    sin = np.sqrt(1 - cos**2)
    p = np.zeros((n, 4, 4))
    p[:, 0] = [e, 0, 0, e]
    p[:, 1] = [e, 0, 0, -e]
    p[:, 2] = np.column_stack([np.full(n, e), e * sin * np.cos(phi), e * sin * np.sin(phi), e * cos])
    p[:, 3] = p[:, 2] * [1, -1, -1, -1]
    c = np.abs(rng.normal(size=(n, 3))) * 0.1
    c[:, 0] += 1.0
    return EventSet.from_arrays(momenta=p, roles=["beam1", "beam2", "mu-", "mu+"], coefficients=c, operators=["cll"],
                                order="quadratic", attrs={"process": "ee_mumu", "sqrt_s_gev": 2 * e})


def load_lhe(path: Path) -> str:
    from sbihep.events.lhe import read_lhe

    events = read_lhe(path)
    return _digest(events.data["eft"].values)


def write_import_lhe(path: Path, version: int) -> None:
    """``sbihep import-lhe`` (LHE → EventSet conversion) of a file of ``version``."""
    from typer.testing import CliRunner

    import typer
    from sbihep.events.lhe import write_lhe as write
    from sbihep.events.lhe_cli import register

    source = path.parent / f"source-{version}.lhe"
    if not source.exists():
        write(_lhe_events(version), source)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(app, ["import-lhe", str(source), "-o", str(path)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output


# ---- estimators, checkpoints, ONNX --------------------------------------------------------------------

def _ratio_estimator(version: int):
    from sbihep.estimators import RatioEstimator
    from sbihep.estimators.toys import GaussianToy

    toy = GaussianToy()
    return RatioEstimator(["x"], toy.space, hidden=(8,), seed=version)


def write_estimator(path: Path, version: int) -> None:
    _ratio_estimator(version).save(path)


def load_estimator(path: Path) -> str:
    import numpy as np

    from sbihep.estimators import RatioEstimator

    with _strict():
        est = RatioEstimator.load(path)
    return _digest(est.log_ratio(np.linspace(-2, 2, 5)[:, None], {"theta": 0.3}))


def write_estimator_onnx(path: Path, version: int) -> None:
    from sbihep.estimators.onnx_export import export_onnx

    from sbihep.estimators.toys import GaussianToy

    est = _ratio_estimator(version)
    est.fit(GaussianToy().ratio_training_sample(128, seed=1), "carl", epochs=1, batch_size=64, quiet=True, seed=0)
    export_onnx(est, path)


def load_estimator_onnx(path: Path) -> str:
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return hashlib.sha256(model.SerializeToString()).hexdigest()[:16]


def write_checkpoint(path: Path, version: int) -> None:
    """A training checkpoint: a tiny fit interrupted after epoch ``version`` (resumed from the checkpoint there)."""
    import torch

    from sbihep.estimators.train import train

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    data = {"x": torch.linspace(-1, 1, 64)[:, None]}
    train(model, lambda m, b: (m(b["x"]) - 2 * b["x"]).pow(2).mean(), data, epochs=6, batch_size=16, quiet=True,
          device="cpu", seed=0, checkpoint=path, early_stopping_patience=None, callback=lambda epoch, h: epoch == version - 1)


def load_checkpoint(path: Path) -> str:
    import torch

    state = torch.load(path, weights_only=True)
    return json.dumps(sorted(state)) + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _toy_labels(version: int):
    from types import SimpleNamespace

    import numpy as np

    x = np.linspace(0.0, 8.0, 12)[:, None]
    t = np.stack([((x - 2.0) ** 2).sum(1) / 2.0, (x**2).sum(1) / 2.0], 1)
    problem = SimpleNamespace(input_names=["mu"], input_units=["1 (signal strength)"], bounds=np.array([[0.0, 8.0]]),
                              mode="mu", regions=["SR"], provenance={"workspace_sha256": f"{version:064d}"})
    return SimpleNamespace(problem=problem, x=x, t=t, reference_nll={"observed": 10.0, "asimov": 9.0},
                           best_fit={"observed": [2.0], "asimov": [0.0]}, best_fit_nll={"observed": 10.0, "asimov": 9.0},
                           n_dropped={"observed": 0, "asimov": 0}, n_requested=len(x), n_disagree={}, n_neighbour={})


def _surrogate_ensemble(version: int):
    import torch

    from sbihep.surrogates.network import MLPConfig, SurrogateEnsemble

    torch.manual_seed(version)
    return SurrogateEnsemble(MLPConfig(1, 2, [8], 2))


def write_surrogate_onnx(path: Path, version: int) -> None:
    from sbihep.surrogates.onnx import export_onnx

    export_onnx(_surrogate_ensemble(version), _toy_labels(version), path)


def load_surrogate_onnx(path: Path) -> str:
    from sbihep.surrogates.loader import SurrogateLikelihood

    with _strict():
        s = SurrogateLikelihood(path)
        t, _ = s.evaluate([[1.0], [3.0]])
    return _digest(t)


def write_surrogate_ensemble(path: Path, version: int) -> None:
    _surrogate_ensemble(version).save(path)


def load_surrogate_ensemble(path: Path) -> str:
    import numpy as np

    from sbihep.surrogates.network import SurrogateEnsemble

    mean, _ = SurrogateEnsemble.load(path).predict(np.array([[1.0], [3.0]]))
    return _digest(mean)


# ---- sbihep fit ---------------------------------------------------------------------------------------

FIT_CONFIG = textwrap.dedent(
    """
    [model]
    kind = "unbinned_exact"
    events = "{events}"
    lumi_ifb = {lumi}
    pois = {{ ca = [-1.0, 1.0] }}
    [data]
    asimov = {{ ca = 0.0 }}
    """
)


def write_fit_result(path: Path, version: int) -> None:
    """``sbihep fit config.toml -o result.nc`` (the result netCDF) for a luminosity set by ``version``."""
    from typer.testing import CliRunner

    from sbihep.cli import app

    events = path.parent / "fit-events.nc"
    if not events.exists():
        _toy(0, n=200).save(events)
    config = path.parent / f"fit-{version}.toml"
    config.write_text(FIT_CONFIG.format(events=events, lumi=1e-4 * version))
    res = CliRunner().invoke(app, ["fit", str(config), "-o", str(path)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output


def load_fit_result(path: Path) -> str:
    import xarray as xr

    from sbihep._outputs import is_netcdf_file

    assert is_netcdf_file(path)
    with xr.open_dataset(path, engine="h5netcdf") as d:
        d.load()
        return json.dumps(sorted(d.data_vars)) + _digest(*[d[v].values for v in sorted(d.data_vars) if d[v].dtype.kind == "f"])


# ---- ensembles, calibration, flows, unfolding, demo ---------------------------------------------------

def write_ensemble(path: Path, version: int) -> None:
    from sbihep.estimators import RatioEstimator
    from sbihep.estimators.ensemble import Ensemble
    from sbihep.estimators.toys import GaussianToy

    Ensemble.build(RatioEstimator, ["x"], GaussianToy().space, hidden=(8,), n_members=2, seed=version).save(path)


def load_ensemble(path: Path) -> str:
    import numpy as np

    from sbihep.estimators.ensemble import Ensemble

    with _strict():
        ens = Ensemble.load(path)
    return _digest(ens.log_ratio(np.linspace(-2, 2, 5)[:, None], {"theta": 0.3}))


def write_calibrated(path: Path, version: int) -> None:
    import numpy as np

    from sbihep.estimators.calibration import CalibratedRatioEstimator, Calibrator

    rng = np.random.default_rng(version)
    log_r = rng.normal(size=200)
    y = (rng.uniform(size=200) < 1 / (1 + np.exp(log_r))).astype(float)
    CalibratedRatioEstimator(_ratio_estimator(version), Calibrator("histogram", n_bins=5).fit(log_r, y)).save(path)


def load_calibrated(path: Path) -> str:
    import numpy as np

    from sbihep.estimators.calibration import CalibratedRatioEstimator

    with _strict():
        est = CalibratedRatioEstimator.load(path)
    return _digest(est.log_ratio(np.linspace(-2, 2, 5)[:, None], {"theta": 0.3}), est.calibrator(np.linspace(-3, 3, 7)))


def write_conditional_flow(path: Path, version: int) -> None:
    from sbihep.flows.conditional import ConditionalFlow

    ConditionalFlow(2, 1, transforms=1, hidden=(8,), bins=4, seed=version).save(path)


def load_conditional_flow(path: Path) -> str:
    import numpy as np

    from sbihep.flows.conditional import ConditionalFlow

    with _strict():
        flow = ConditionalFlow.load(path)
    return _digest(flow.log_prob(np.full((3, 2), 0.1), np.full((3, 1), 0.2)))


def write_correction(path: Path, version: int) -> None:
    from sbihep.flows.correction import SimulationCorrection

    SimulationCorrection(2, transforms=1, hidden=(8,), bins=4, seed=version).save(path)


def load_correction(path: Path) -> str:
    import numpy as np

    from sbihep.flows.correction import SimulationCorrection

    with _strict():
        corr = SimulationCorrection.load(path)
    return _digest(corr.to_latent(np.full((3, 2), 0.1), 0))


def write_density_ratio(path: Path, version: int) -> None:
    """An OmniFold step classifier (:class:`sbihep.flows.omnifold.DensityRatio`)."""
    from sbihep.flows.omnifold import DensityRatio

    DensityRatio(2, hidden=(8,), seed=version).save(path)


def load_density_ratio(path: Path) -> str:
    import numpy as np

    from sbihep.flows.omnifold import DensityRatio

    with _strict():
        r = DensityRatio.load(path)
    return _digest(r.logit(np.full((3, 2), 0.1)))


def write_constraints(path: Path, version: int) -> None:
    """The demo's constraint netCDF (:func:`sbihep.demo.write_constraints`)."""
    import numpy as np
    import xarray as xr

    from sbihep.demo import POIS, write_constraints as write

    grid = np.linspace(-1, 1, 5)
    q = version * (grid[:, None] ** 2 + grid[None, :] ** 2)
    scan = xr.Dataset({"twice_delta_nll": (POIS, q), "best_fit": ("parameter", [0.0, 0.0])},
                      coords={POIS[0]: grid, POIS[1]: grid, "parameter": list(POIS)})
    write({"exact": scan}, {"exact": 0.1 * version}, path, {"seed": version})


def load_constraints(path: Path) -> str:
    import xarray as xr

    from sbihep.events.eventset import verify_content_hash

    with xr.open_dataset(path, engine="h5netcdf") as d:
        d.load()
        verify_content_hash(d, str(path))
        return _digest(d["twice_delta_nll_exact"].values)


def write_generative_unfolding(path: Path, version: int) -> None:
    from sbihep.flows.generative_unfolding import GenerativeUnfolding

    GenerativeUnfolding(2, 2, transforms=1, hidden=(8,), bins=4, seed=version, support=[(0.0, None), (None, None)]).save(path)


def load_generative_unfolding(path: Path) -> str:
    import numpy as np

    from sbihep.flows.generative_unfolding import GenerativeUnfolding

    with _strict():
        g = GenerativeUnfolding.load(path)
    return _digest(g.unfold(np.full((3, 2), 0.1), n_samples=2, seed=0)) + json.dumps(g.support.pairs())


TRAIN_CONFIG = textwrap.dedent(
    """
    seed = {seed}
    [data]
    events = "{events}"
    [parameters]
    cHW = [-1.0, 1.0]
    [estimator]
    kind = "score"
    method = "sally"
    hidden = [8]
    [sample]
    n_samples = 256
    [training]
    epochs = 1
    """
)


def write_train_output(path: Path, version: int) -> None:
    """``sbihep train card.toml -o DIR`` (the output directory) with the seed set by ``version``."""
    from typer.testing import CliRunner

    from sbihep.cli import app

    events = path.parent / "train-events.nc"
    if not events.exists():
        from sbihep.events.generate import generate
        from sbihep.physics.processes import get_process

        generate(get_process("wh_lvbb"), 13000.0, 400, seed=21, n_adapt=3, n_per_iteration=2000, progress=False).save(events)
    card = path.parent / f"train-{version}.toml"
    card.write_text(TRAIN_CONFIG.format(events=events, seed=version))
    res = CliRunner().invoke(app, ["train", str(card), "-o", str(path)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output


def load_train_output(path: Path) -> str:
    import numpy as np

    from sbihep.estimators import ScoreEstimator

    with _strict():
        est = ScoreEstimator.load(path / "estimator")
    return _digest(est.score(np.full((3, len(est.observables)), 0.1))) + (path / "train.toml").read_text()


#: kind → (target name, is a directory, write(path, version), load(path) → fingerprint)
KINDS = {
    "eventset_nc": ("events.nc", False, write_eventset, load_eventset),
    "eventset_zarr": ("events.zarr", True, write_eventset, load_eventset),
    "lhe": ("events.lhe", False, write_lhe, load_lhe),
    "import_lhe": ("imported.nc", False, write_import_lhe, load_eventset),
    "estimator_dir": ("estimator", True, write_estimator, load_estimator),
    "estimator_onnx": ("estimator.onnx", False, write_estimator_onnx, load_estimator_onnx),
    "checkpoint": ("training.ckpt", False, write_checkpoint, load_checkpoint),
    "surrogate_onnx": ("surrogate.onnx", False, write_surrogate_onnx, load_surrogate_onnx),
    "surrogate_ensemble": ("ensemble", True, write_surrogate_ensemble, load_surrogate_ensemble),
    "fit_result": ("result.nc", False, write_fit_result, load_fit_result),
    "ensemble": ("ensemble-estimator", True, write_ensemble, load_ensemble),
    "calibrated": ("calibrated", True, write_calibrated, load_calibrated),
    "conditional_flow": ("flow", True, write_conditional_flow, load_conditional_flow),
    "correction": ("correction", True, write_correction, load_correction),
    "density_ratio": ("omnifold-step", True, write_density_ratio, load_density_ratio),
    "generative_unfolding": ("unfolder", True, write_generative_unfolding, load_generative_unfolding),
    "train_output": ("trained", True, write_train_output, load_train_output),
    "constraints": ("constraints.nc", False, write_constraints, load_constraints),
}


# ---- the killed child ---------------------------------------------------------------------------------

def _arm(target: Path, mode: str) -> None:
    """Install the kill point: print ``ready`` there and sleep until killed."""
    from sbihep import _atomic

    prefix = f".{target.name}.sbihep-"

    def stop() -> None:
        os.write(1, b"ready\n")  # fd 1 itself: a CLI runner may have replaced sys.stdout
        time.sleep(600)
        os._exit(3)

    def ours(p) -> bool:
        return Path(os.fspath(p)).name.startswith(prefix) and os.fspath(p).endswith(".tmp")

    real_replace, real_exchange = os.replace, _atomic._exchange

    def replace(src, dst, *a, **k):
        if ours(src) and Path(os.fspath(dst)) == target:
            if mode in ("body", "swap"):
                stop()
            if mode == "aside":
                stop()  # the previous version was moved aside just before (exchange disabled)
        return real_replace(src, dst, *a, **k)

    def exchange(a, b):
        if mode == "aside":
            return False
        if ours(a) and Path(b) == target:
            stop()
        return real_exchange(a, b)

    os.replace = replace
    _atomic._exchange = exchange
    if mode == "body":
        def watch() -> None:
            while True:
                for p in target.parent.iterdir():
                    if ours(p):
                        try:
                            full = any(p.iterdir()) if p.is_dir() else p.stat().st_size > 0
                        except OSError:
                            full = False
                        if full:
                            stop()
                time.sleep(0.0005)

        threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    kind, target, mode, version = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    import torch

    torch.set_num_threads(1)
    _arm(target, mode)
    KINDS[kind][2](target, version)
    print("finished without reaching the kill point", flush=True)


if __name__ == "__main__":
    main()
