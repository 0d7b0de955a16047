"""Benchmark: ONNX −2ΔlnL surrogates of the shared ATLAS pyhf workspaces vs pyhf itself.

Per (workspace, patch): label with MINUIT (2 starts), train, export, then compare on independent
held-out labels (|Δ(−2ΔlnL)| where −2ΔlnL < 10), the 95% CLs upper limit on μ (surrogate vs
``pyhf.infer.intervals.upper_limits.toms748_scan``), and the time per point (surrogate single and
batched vs one pyhf profiled fit).  Figures are printed and written, flat, to
``benchmarks/results/bench_surrogate_pyhf.json`` (atomically, after every patch).

    OMP_NUM_THREADS=1 python benchmarks/bench_surrogate_pyhf.py [--n-points 24] [--cases lowMass:DS_100_1_Staus ...]

Skips (exit 0) when ``../shared/data/workspaces`` is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "workspaces"
OUT = ROOT / "benchmarks" / "results" / "bench_surrogate_pyhf.json"

# key → (tarball, directory inside it)
WORKSPACES = {
    "1912.08479": ("1912.08479.tar.gz", "1912.08479"),
    "1911.06660-lowMass": ("1911.06660.tar.gz", "1911.06660/Region-lowMass"),
    "1911.06660-highMass": ("1911.06660.tar.gz", "1911.06660/Region-highMass"),
}
DEFAULT_CASES = [
    "1912.08479:ERJR_500p0_0p0", "1911.06660-lowMass:DS_120_1_Staus",
    "1912.08479:ERJR_200p0_100p0", "1911.06660-highMass:DS_300_1_Staus",
]


ANALYSES = {
    "1912.08479": {"experiment": "ATLAS", "arxiv": "1912.08479", "reference": "Phys. Rev. D 101 (2020) 072001",
                   "title": "Search for chargino-neutralino production in final states with three leptons (3L eRJR)"},
    "1911.06660": {"experiment": "ATLAS", "arxiv": "1911.06660", "reference": "Phys. Rev. D 101 (2020) 032009",
                   "title": "Search for direct stau production in events with two hadronic tau-leptons"},
}


def write_model_card(path: Path, key: str, patch: str | None, problem, labels, r: dict, reference_tool: str,
                     direction=None) -> Path:
    """``<model>.card.json`` beside the ONNX file: what it is, where it is valid, how it was made and checked."""
    import hashlib

    import pyhf

    from sbihep import __version__

    mode = problem.mode
    analysis = dict(ANALYSES[key.split("-")[0]], source="HEPData full likelihood (pyhf JSON: BkgOnly.json + patchset.json)",
                    workspace=key, model_parameters=int(problem.model().config.npars))
    if patch:
        analysis["patch"] = patch
    what = ("Profiled -2 Delta lnL as a function of the signal strength " + problem.input_names[0] if mode == "mu" else
            "Profiled -2 Delta lnL as a function of the signal yields (events) in " + ", ".join(problem.input_names)
            + " (model-independent: the signal enters as free yields without signal systematics; reference = zero signal)")
    card = {
        "model": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "format": "sbihep-likelihood-surrogate/1",
        "what": what + ", for the observed data and the background-only Asimov data (two outputs), with an ensemble spread per output.",
        "analysis": analysis,
        "inputs": [{"name": n, "unit": u, "valid_range": [float(a), float(b)]}
                   for n, u, (a, b) in zip(problem.input_names, problem.input_units, problem.bounds)],
        "outputs": ["t_observed", "t_asimov"],
        "validity": "Inside the training range only; the sbihep loader warns (or raises with out_of_bounds='raise') outside it.",
        "labels": {"n_requested": r["n_labels_requested"], "n_used": r["n_labels_used"],
                   "n_dropped": r["n_labels_dropped_observed"] + r["n_labels_dropped_asimov"],
                   "fitter": f"MINUIT via pyhf {pyhf.__version__} (numpy backend), validity + EDM checks, 2 starts, "
                             "lowest converged minimum kept, neighbour refits"},
        "validation_independent_test_points": {
            "n_points": r["n_test_points"], "max_abs_delta_t_observed_where_t_lt_10": round(r["max_abs_dt_observed_t_lt_10"], 4),
            "max_abs_delta_t_asimov_where_t_lt_10": round(r["max_abs_dt_asimov_t_lt_10"], 4)},
        "upper_limit_95cl_cls": {
            "surrogate": round(r["cls_ul95_surrogate"], 6),
            "reference": round(r.get("cls_ul95_pyhf", r.get("cls_ul95_exact_labels")), 6),
            "reference_tool": reference_tool, "relative_difference": round(r["cls_ul95_rel_diff"], 5)},
        "speed": {"profiled_fit_s": round(r.get("time_pyhf_profiled_fit_s", r.get("time_profiled_fit_s")), 3),
                  "surrogate_single_s": float(f"{r['time_surrogate_single_s']:.3g}"),
                  "surrogate_batched_per_point_s": float(f"{r['time_surrogate_batched_per_point_s']:.3g}"),
                  "speedup_single": float(f"{r['speedup_single']:.2g}"), "speedup_batched": float(f"{r['speedup_batched']:.2g}"),
                  "machine": "2 shared CPU cores, onnxruntime CPU, 1 intra-op thread"},
        "produced_with": {"command": "OMP_NUM_THREADS=1 python benchmarks/bench_surrogate_pyhf.py " + " ".join(sys.argv[1:]),
                          "sbihep_version": __version__, "date": time.strftime("%Y-%m-%d")},
        "licence": "CC-BY-4.0 (derived from the ATLAS HEPData workspace); cite the analysis above",
        "load": (f"from sbihep.surrogates import SurrogateLikelihood; s = SurrogateLikelihood('models/{path.name}'); "
                 + ("s.upper_limit()" if direction is None else f"s.upper_limit(direction={[round(float(v), 6) for v in direction]})")),
    }
    if direction is not None:
        card["upper_limit_95cl_cls"]["direction"] = [float(v) for v in direction]
        card["upper_limit_95cl_cls"]["direction_from_patch"] = r["cls_ul95_direction_patch"]
    out = path.with_name(path.name.removesuffix(".onnx") + ".card.json")
    _write_atomic(out, card)
    return out


def _write_atomic(path: Path, obj: dict) -> None:
    from sbihep._atomic import atomic_destination

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_destination(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _time_per_call(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _cached(cache: Path | None, name: str, make):
    """``make()``, or its pickled result from an earlier run of this script (labels cost minutes to hours)."""
    if cache is None:
        return make()
    path = cache / f"{name}.pkl"
    if path.is_file():
        print(f"  (labels from {path})", flush=True)
        return pickle.loads(path.read_bytes())
    obj = make()
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(obj, fh)
    os.replace(tmp, path)
    return obj


def run_case(ws_dir: Path, key: str, patch: str, n_points: int, n_test: int, n_workers: int, results: dict,
             models: Path, cache: Path | None = None, write_card: bool = False, reference_fitter: str = "pyhf") -> None:
    """One signal-strength surrogate.  ``reference_fitter``: "pyhf" (its ``toms748_scan``; sbihep.fit where pyhf's
    own fits fail) or "sbihep" (sbihep.fit's ``cls_upper_limit`` directly — for workspaces where pyhf's root
    finder takes hours, e.g. the stau high-mass one; bench_fit_pyhf_stau.py compares the two there)."""
    import onnxruntime as ort
    import pyhf

    from sbihep.surrogates.labels import generate_labels, load_problem
    from sbihep.surrogates.likelihood import train_surrogate
    from sbihep.surrogates.loader import SurrogateLikelihood

    tag = f"{key}_{patch}"
    t0 = time.perf_counter()
    problem = load_problem(ws_dir / "BkgOnly.json", patch=patch)
    labels = _cached(cache, f"{tag}_train_{n_points}", lambda: generate_labels(
        problem, n_points, n_starts=2, seed=1, n_workers=n_workers, progress=False))
    t_labels = time.perf_counter() - t0
    print(f"[{tag}] {len(labels.x)}/{labels.n_requested} labels in {t_labels:.0f} s, dropped {labels.n_dropped}, "
          f"disagreeing starts {labels.n_disagree}, neighbour refits {labels.n_neighbour}",
          flush=True)

    # independent test points where either label is small (from the training labels' extent)
    small = (labels.t < 12).any(axis=1)
    lo, hi = float(labels.x[small, 0].min()), float(labels.x[small, 0].max())
    x_test = np.linspace(lo, hi, n_test)[:, None]
    test = _cached(cache, f"{tag}_test_{n_points}_{n_test}", lambda: generate_labels(
        problem, x=x_test, n_starts=1, n_workers=n_workers, progress=False))
    # the test labels' reference NLL is the same global minimum up to fit noise: re-reference to the training one
    shift = np.array([test.reference_nll[k] - labels.reference_nll[k] for k in labels.reference_nll])
    t_test = test.t + shift

    t0 = time.perf_counter()
    path, metrics = train_surrogate(None, output=models / f"{tag}.onnx", labels=labels, quiet=True, seed=0)
    t_train = time.perf_counter() - t0
    s = SurrogateLikelihood(path, out_of_bounds="ignore")
    pred = s.evaluate(test.x)[0]
    err = np.abs(pred - t_test)
    err_small = np.where(t_test < 10, err, 0.0).max(axis=0)

    # pyhf reference upper limit (MINUIT), on the same model
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=0.01))
    ws = pyhf.Workspace(problem.spec)
    model, data = ws.model(), ws.data(ws.model())
    ul_sur = s.upper_limit()
    a, b = s.mu_range()
    t0 = time.perf_counter()

    def sbihep_limit() -> float:
        # sbihep's fitter on the same workspace (MINUIT with validity/EDM checks and reruns)
        from sbihep.fit import Likelihood, PyhfTerm, cls_upper_limit

        pyhf.set_backend("numpy")
        try:
            return float(cls_upper_limit(Likelihood([PyhfTerm.from_model(model, data)]), cl=0.95, expected=False).observed)
        finally:
            pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=0.01))

    quiet_pyhf = logging.getLogger("pyhf.optimize.mixins")
    level = quiet_pyhf.level
    if reference_fitter == "sbihep":
        reference = "sbihep.fit"
        ul_pyhf = sbihep_limit()
    else:
        reference = "pyhf+MINUIT"
        quiet_pyhf.setLevel(logging.CRITICAL)  # a failed pyhf fit logs the whole MINUIT state (KBs per line)
        try:
            ul_pyhf = float(pyhf.infer.intervals.upper_limits.toms748_scan(
                data, model, max(ul_sur * 0.7, a), min(ul_sur * 1.3, b), level=0.05, rtol=1e-4)[0])
        except pyhf.exceptions.FailedMinimization:
            # pyhf's own fits fail on some published workspaces (e.g. the 3L eRJR one)
            reference = "sbihep.fit (pyhf+MINUIT failed)"
            ul_pyhf = sbihep_limit()
        finally:
            quiet_pyhf.setLevel(level)
    t_ul = time.perf_counter() - t0
    print(f"[{tag}] CLs upper limit: surrogate {ul_sur:.5g}, reference ({reference}) {ul_pyhf:.5g}, {t_ul:.0f} s", flush=True)

    # speed: one profiled fit (fixed μ) vs the surrogate
    mu0 = float(labels.best_fit["observed"][0]) + 0.5
    failed_fits = []

    def one_fit():
        # pyhf's own MINUIT fit fails on some published workspaces (3L eRJR); a failed fit costs its time too
        try:
            pyhf.infer.mle.fixed_poi_fit(mu0, data, model)
        except pyhf.exceptions.FailedMinimization:
            failed_fits.append(mu0)

    quiet_pyhf.setLevel(logging.CRITICAL)
    try:
        t_fit = _time_per_call(one_fit, 3)
    finally:
        quiet_pyhf.setLevel(level)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x1 = np.array([[mu0]], np.float32)
    xb = np.linspace(a, b, 10_000, dtype=np.float32)[:, None]
    t_single = _time_per_call(lambda: sess.run(None, {"x": x1}), 300)
    t_batch = _time_per_call(lambda: sess.run(None, {"x": xb}), 10) / len(xb)

    r = {
        "n_labels_requested": labels.n_requested, "n_labels_used": int(len(labels.x)),
        "n_labels_dropped_observed": labels.n_dropped["observed"], "n_labels_dropped_asimov": labels.n_dropped["asimov"],
        "n_labels_disagree_observed": labels.n_disagree["observed"], "n_labels_disagree_asimov": labels.n_disagree["asimov"],
        "n_labels_neighbour_refits_observed": labels.n_neighbour["observed"], "n_labels_neighbour_refits_asimov": labels.n_neighbour["asimov"],
        "n_test_points": int(len(test.x)), "n_test_dropped": int(sum(test.n_dropped.values())),
        "test_mu_low": lo, "test_mu_high": hi,
        "max_abs_dt_observed_t_lt_10": float(err_small[0]), "max_abs_dt_asimov_t_lt_10": float(err_small[1]),
        "max_abs_dt_observed_all": float(err[:, 0].max()), "max_abs_dt_asimov_all": float(err[:, 1].max()),
        "mu_hat_surrogate": s.mu_hat(), "mu_hat_pyhf": float(labels.best_fit["observed"][0]),
        "cls_ul95_surrogate": ul_sur, "cls_ul95_pyhf": ul_pyhf, "cls_ul95_reference": reference,
        "cls_ul95_rel_diff": abs(ul_sur - ul_pyhf) / ul_pyhf,
        "time_labels_s": t_labels, "time_train_s": t_train, "time_pyhf_ul_s": t_ul,
        "time_pyhf_profiled_fit_s": t_fit, "time_surrogate_single_s": t_single, "time_surrogate_batched_per_point_s": t_batch,
        "speedup_single": t_fit / t_single, "speedup_batched": t_fit / t_batch, "n_timed_pyhf_fits_failed": len(failed_fits),
        "n_model_parameters": int(model.config.npars),
        "heldout_in_training_max_abs_dt_observed_t_lt_10": metrics["held_out"].get("observed_max_abs_err_t_lt_10"),
    }
    for k, v in r.items():
        results[f"{tag}.{k}"] = v
    if write_card:
        write_model_card(path, key, patch, problem, labels, r, reference)
    print(f"[{tag}] max|Δt| (t<10): obs {r['max_abs_dt_observed_t_lt_10']:.4f}  asimov {r['max_abs_dt_asimov_t_lt_10']:.4f}"
          f" | UL95 surrogate {ul_sur:.4f} pyhf {ul_pyhf:.4f} (rel {r['cls_ul95_rel_diff']:.2%})"
          f" | fit {t_fit:.2f} s, surrogate {t_single * 1e6:.1f} µs single, {t_batch * 1e9:.0f} ns batched"
          f" → ×{r['speedup_single']:.2e} / ×{r['speedup_batched']:.2e}", flush=True)


def _patch_yields(ws_dir: Path, patch: str, regions: list[str]) -> np.ndarray:
    """Nominal signal yields (events, μ = 1) of ``patch`` in each bin of ``regions``: a direction to scan."""
    import pyhf

    ws = pyhf.Workspace(json.loads((ws_dir / "BkgOnly.json").read_text()))
    spec = pyhf.PatchSet(json.loads((ws_dir / "patchset.json").read_text())).apply(ws, patch)
    poi = spec["measurements"][0]["config"]["poi"]
    out = []
    for region in regions:
        channel = next(c for c in spec["channels"] if c["name"] == region)
        signal = [s for s in channel["samples"] if any(m["name"] == poi for m in s["modifiers"])]
        out.extend(np.sum([s["data"] for s in signal], axis=0) if signal else np.zeros(len(channel["samples"][0]["data"])))
    return np.asarray(out, float)


def run_yields_case(ws_dir: Path, key: str, regions: list[str], max_yield: float, direction_patch: str, n_points: int,
                    n_test: int, n_workers: int, results: dict, models: Path, cache: Path | None = None,
                    write_card: bool = False) -> None:
    """A signal-yields surrogate (inputs: signal events per signal-region bin, as SModelS uses them).

    Validated on independent points where −2ΔlnL is small, and by the CLs upper limit on μ along the
    signal-yield direction of ``direction_patch``: the reference limit comes from exact profiled
    labels of the same model along that line (a cubic spline through 16 of them, then the same
    asymptotic q̃_μ formulas the surrogate uses, which the tests check against pyhf).
    """
    import onnxruntime as ort
    import pyhf
    from scipy.interpolate import CubicSpline
    from scipy.optimize import brentq, minimize_scalar

    from sbihep.surrogates.asymptotics import cls_from_q, qtilde_from_t
    from sbihep.surrogates.labels import _fit, _fixed_and_bounds, generate_labels, load_problem
    from sbihep.surrogates.likelihood import train_surrogate
    from sbihep.surrogates.loader import SurrogateLikelihood

    tag = f"{key}_yields_{'_'.join(r.removesuffix('_cuts') for r in regions)}"
    t0 = time.perf_counter()
    problem = load_problem(ws_dir / "BkgOnly.json", regions=regions, max_yield=max_yield)
    labels = _cached(cache, f"{tag}_train_{n_points}", lambda: generate_labels(
        problem, n_points, n_starts=2, seed=1, n_workers=n_workers, progress=False))
    t_labels = time.perf_counter() - t0
    print(f"[{tag}] {len(labels.x)}/{labels.n_requested} labels in {t_labels:.0f} s, dropped {labels.n_dropped}, "
          f"disagreeing starts {labels.n_disagree}, neighbour refits {labels.n_neighbour}", flush=True)

    small = (labels.t < 12).any(axis=1)
    lo, hi = labels.x[small].min(0), labels.x[small].max(0)
    x_test = lo + (hi - lo) * np.random.default_rng(5).uniform(size=(n_test, len(lo)))
    test = _cached(cache, f"{tag}_test_{n_points}_{n_test}", lambda: generate_labels(
        problem, x=x_test, n_starts=1, n_workers=n_workers, progress=False))
    # both reference NLLs are the free-fit minimum up to fit noise (issue 24; was the zero-signal fit): re-reference
    t_test = test.t + np.array([test.reference_nll[k] - labels.reference_nll[k] for k in labels.reference_nll])

    t0 = time.perf_counter()
    path, metrics = train_surrogate(None, output=models / f"{tag}.onnx", labels=labels, quiet=True, seed=0)
    t_train = time.perf_counter() - t0
    s = SurrogateLikelihood(path, out_of_bounds="ignore")
    err = np.abs(s.evaluate(test.x)[0] - t_test)
    err_small = np.where(t_test < 10, err, 0.0).max(axis=0)

    direction = _patch_yields(ws_dir, direction_patch, regions)
    ul_sur = s.upper_limit(direction=direction)
    mu_line = np.linspace(0.0, 1.6 * ul_sur, 16)
    t0 = time.perf_counter()
    line = _cached(cache, f"{tag}_line_{direction_patch}", lambda: generate_labels(
        problem, x=mu_line[:, None] * direction, n_starts=2, n_workers=n_workers, progress=False))
    if len(line.x) != len(mu_line):
        raise RuntimeError(f"[{tag}] reference labels along the line did not all converge ({line.n_dropped})")
    t_ul = time.perf_counter() - t0
    obs, asi = CubicSpline(mu_line, line.t[:, 0]), CubicSpline(mu_line, line.t[:, 1])
    m_obs = minimize_scalar(obs, bounds=(0.0, mu_line[-1]), method="bounded")
    m_asi = minimize_scalar(asi, bounds=(0.0, mu_line[-1]), method="bounded")
    mu_hat_ref = float(m_obs.x) if float(obs(0.0)) > float(m_obs.fun) else 0.0
    t_min_ref = float(obs(mu_hat_ref))

    def cls_ref(mu):
        q = qtilde_from_t(np.array([float(obs(mu))]), np.array([mu]), t_min_ref, mu_hat_ref)
        return float(cls_from_q(q, np.array([max(float(asi(mu)) - float(min(asi(0.0), m_asi.fun)), 0.0)]))["CLs"][0])

    ul_ref = float(brentq(lambda m: cls_ref(m) - 0.05, max(mu_hat_ref, 1e-6 * ul_sur), mu_line[-1], xtol=1e-6 * ul_sur))
    print(f"[{tag}] CLs upper limit along {direction_patch} (yields {np.round(direction, 3).tolist()}): "
          f"surrogate {ul_sur:.5g}, exact labels {ul_ref:.5g}", flush=True)

    # speed: one profiled fit at fixed yields vs the surrogate
    model = problem.model()
    slots = problem.input_slots(model)
    data = list(map(float, pyhf.tensorlib.tolist(pyhf.Workspace(problem.spec).data(model))))
    x0 = ul_sur * direction
    fixed, bounds = _fixed_and_bounds(model, slots, x0)
    init = list(model.config.suggested_init())
    for sl, v in zip(slots, x0):
        init[sl] = float(v)
    t_fit = _time_per_call(lambda: _fit(data, model, init, fixed, bounds, 1e-3), 3)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x1 = x0[None, :].astype(np.float32)
    xb = (problem.bounds[:, 0] + (problem.bounds[:, 1] - problem.bounds[:, 0])
          * np.random.default_rng(0).uniform(size=(10_000, len(slots)))).astype(np.float32)
    t_single = _time_per_call(lambda: sess.run(None, {"x": x1}), 300)
    t_batch = _time_per_call(lambda: sess.run(None, {"x": xb}), 10) / len(xb)

    r = {
        "inputs": ",".join(problem.input_names), "max_yield_events": max_yield,
        "n_labels_requested": labels.n_requested, "n_labels_used": int(len(labels.x)),
        "n_labels_dropped_observed": labels.n_dropped["observed"], "n_labels_dropped_asimov": labels.n_dropped["asimov"],
        "n_labels_disagree_observed": labels.n_disagree["observed"], "n_labels_disagree_asimov": labels.n_disagree["asimov"],
        "n_test_points": int(len(test.x)), "n_test_dropped": int(sum(test.n_dropped.values())),
        "n_test_t_lt_10_observed": int((t_test[:, 0] < 10).sum()), "n_test_t_lt_10_asimov": int((t_test[:, 1] < 10).sum()),
        "max_abs_dt_observed_t_lt_10": float(err_small[0]), "max_abs_dt_asimov_t_lt_10": float(err_small[1]),
        "cls_ul95_direction_patch": direction_patch,
        "cls_ul95_surrogate": ul_sur, "cls_ul95_exact_labels": ul_ref, "cls_ul95_rel_diff": abs(ul_sur - ul_ref) / ul_ref,
        "time_labels_s": t_labels, "time_train_s": t_train, "time_reference_line_s": t_ul,
        "time_profiled_fit_s": t_fit, "time_surrogate_single_s": t_single, "time_surrogate_batched_per_point_s": t_batch,
        "speedup_single": t_fit / t_single, "speedup_batched": t_fit / t_batch,
    }
    for k, v in r.items():
        results[f"{tag}.{k}"] = v
    if write_card:
        write_model_card(path, key, None, problem, labels, r, "exact profiled labels along the line (MINUIT, 2 starts), "
                         "cubic spline, the same asymptotic q~_mu formulas", direction=direction)
    print(f"[{tag}] max|Δt| (t<10): obs {r['max_abs_dt_observed_t_lt_10']:.4f}  asimov {r['max_abs_dt_asimov_t_lt_10']:.4f}"
          f" | UL95 rel {r['cls_ul95_rel_diff']:.2%} | fit {t_fit:.2f} s, surrogate {t_single * 1e6:.1f} µs single,"
          f" {t_batch * 1e9:.0f} ns batched → ×{r['speedup_single']:.2e} / ×{r['speedup_batched']:.2e}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=DEFAULT_CASES,
                    help="WORKSPACE_KEY:PATCH (signal-strength surrogate) or WORKSPACE_KEY:@REGION,REGION:MAX_YIELD:PATCH "
                         "(signal-yields surrogate, validated along that patch's yields)")
    ap.add_argument("--n-points", type=int, default=24)
    ap.add_argument("--n-test", type=int, default=8)
    ap.add_argument("--n-workers", type=int, default=2)
    ap.add_argument("--labels-cache", type=Path, default=None,
                    help="keep the labels here (pickles) and reuse them on the next run with the same case and sizes")
    ap.add_argument("--models-dir", type=Path, default=None, help="keep the ONNX files here (default: a temp dir)")
    ap.add_argument("--reference", choices=("pyhf", "sbihep"), default="pyhf",
                    help="signal-strength cases: the reference CLs limit from pyhf's toms748_scan (default) or from sbihep.fit")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    warnings.filterwarnings("ignore")
    results: dict = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            key, patch = case.split(":", 1)
            tarball, inner = WORKSPACES[key]
            with tarfile.open(DATA / tarball) as tar:
                members = [m for m in tar.getmembers() if m.name.removeprefix("./").startswith(inner + "/")
                           and m.name.endswith(".json") and m.name.removeprefix("./").count("/") == inner.count("/") + 1]
                tar.extractall(tmp, members=members, filter="data")
            if patch.startswith("@"):
                regions, max_yield, direction_patch = patch[1:].split(":")
                run_yields_case(Path(tmp) / inner, key, regions.split(","), float(max_yield), direction_patch,
                                args.n_points, args.n_test, args.n_workers, results, args.models_dir or Path(tmp),
                                args.labels_cache, write_card=args.models_dir is not None)
            else:
                run_case(Path(tmp) / inner, key, patch, args.n_points, args.n_test, args.n_workers, results,
                         args.models_dir or Path(tmp), args.labels_cache, write_card=args.models_dir is not None,
                         reference_fitter=args.reference)
            results["machine"] = "2 shared CPU cores, onnxruntime CPU, 1 intra-op thread"
            # merge into the file as it is now: another run of this script may have written other cases meanwhile
            merged = json.loads(OUT.read_text()) if OUT.is_file() else {}
            merged.update(results)
            _write_atomic(OUT, merged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
