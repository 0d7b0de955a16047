"""Matrix-element surrogate + two-stage unweighting vs direct unweighting for p p → t t̄ (g g, 13 TeV).

Prints and records: the surrogate's training cost and accuracy, both stages' efficiencies, σ from
both methods, χ² p-values (two-stage vs direct) on partonic observables, the measured cost per
unweighted event and gain, and the gain the cost model predicts for costlier matrix elements.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_me_surrogate.py --quick
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_me_surrogate.py --vegas   # defaults: 2e5 training points, (32, 32, 32)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import stats

from _results import write_results
from sbihep.physics.processes.ttbar import TTbar
from sbihep.physics.xsec import PhaseSpaceIntegrand
from sbihep.surrogates.matrix_element import (
    IntegrandProblem,
    predicted_gain,
    train_me_surrogate,
    unweight_direct,
    unweight_two_stage,
)


def observables(sample) -> dict[str, np.ndarray]:
    p = sample.records["momenta"]  # partonic frame, (n, 4, 4): g g t tbar
    top = p[:, 2]
    m_tt = np.sqrt(np.maximum((p[:, 2] + p[:, 3])[:, 0] ** 2 - np.sum((p[:, 2] + p[:, 3])[:, 1:] ** 2, 1), 0))
    pt = np.hypot(top[:, 1], top[:, 2])
    cos = top[:, 3] / np.linalg.norm(top[:, 1:], axis=1)
    return {"m_tt_gev": m_tt, "pt_top_gev": pt, "cos_theta_star": cos}


def chi2_p(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, bins: int = 10) -> float:
    """Two-sample weighted χ² p-value on ``bins`` bins at the pooled quantiles."""
    edges = np.quantile(np.concatenate([a, b]), np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    wa, wb = wa / wa.sum(), wb / wb.sum()
    ha, hb = np.histogram(a, edges, weights=wa)[0], np.histogram(b, edges, weights=wb)[0]
    va, vb = np.histogram(a, edges, weights=wa**2)[0], np.histogram(b, edges, weights=wb**2)[0]
    return float(stats.chi2.sf(np.sum((ha - hb) ** 2 / (va + vb)), bins - 1))


def compare(tag: str, problem, surrogate, n_events: int, n_pilot: int, figures: dict) -> None:
    two = unweight_two_stage(problem, surrogate, n_events, seed=11, n_pilot=n_pilot, quiet=True)
    direct = unweight_direct(problem, n_events, seed=12, n_pilot=n_pilot, quiet=True)
    r2, rd = two.report, direct.report
    t_sample = (r2.seconds_sample + rd.seconds_sample) / (r2.n_points + rd.n_points)
    t_sur = r2.seconds_surrogate / r2.n_points
    t_exact = (r2.seconds_exact + rd.seconds_exact) / (r2.n_survivors + rd.n_points)
    gain = rd.seconds_per_event / r2.seconds_per_event
    pulls = (r2.sigma_pb - rd.sigma_pb) / np.hypot(r2.sigma_error_pb, rd.sigma_error_pb)
    print(f"[{tag}] direct: eff {rd.efficiency:.4f}, sigma {rd.sigma_pb:.2f} ± {rd.sigma_error_pb:.2f} pb, "
          f"{rd.seconds_per_event * 1e6:.0f} us/event")
    print(f"[{tag}] two-stage: eff1 {r2.efficiency_stage1:.4f}, eff2 {r2.efficiency_stage2:.3f}, x_max {r2.x_max:.3f}, "
          f"overweight {r2.overweight_fraction:.2g}, sigma {r2.sigma_pb:.2f} ± {r2.sigma_error_pb:.2f} pb (pull {pulls:+.2f}), "
          f"{r2.seconds_per_event * 1e6:.0f} us/event")
    print(f"[{tag}] per point: sample {t_sample * 1e6:.2f} us, surrogate {t_sur * 1e6:.2f} us, exact {t_exact * 1e6:.2f} us "
          f"(t_exact/t_surrogate = {t_exact / t_sur:.1f}); measured gain {gain:.2f}x")
    oa, ob = observables(two), observables(direct)
    for name in oa:
        p = chi2_p(oa[name], two.weights, ob[name], direct.weights)
        print(f"[{tag}] chi2 p-value two-stage vs direct, {name}: {p:.3f}")
        figures[f"{tag}_chi2_p_{name}"] = p
    model = {k: predicted_gain(rd.efficiency, r2.efficiency_stage1, r2.efficiency_stage2, t_sample, t_sur, k * t_exact)
             for k in (1, 10, 100, 1000)}
    print(f"[{tag}] cost model gain at t_exact x1/x10/x100/x1000: " + ", ".join(f"{v:.2f}" for v in model.values())
          + f" (limit eff2/eff_direct = {r2.efficiency_stage2 / rd.efficiency:.1f})")
    figures.update({
        f"{tag}_efficiency_direct": rd.efficiency, f"{tag}_efficiency_stage1": r2.efficiency_stage1,
        f"{tag}_efficiency_stage2": r2.efficiency_stage2, f"{tag}_efficiency_two_stage": r2.efficiency,
        f"{tag}_x_max": r2.x_max, f"{tag}_overweight_fraction_two_stage": r2.overweight_fraction,
        f"{tag}_sigma_direct_pb": rd.sigma_pb, f"{tag}_sigma_direct_error_pb": rd.sigma_error_pb,
        f"{tag}_sigma_two_stage_pb": r2.sigma_pb, f"{tag}_sigma_two_stage_error_pb": r2.sigma_error_pb,
        f"{tag}_us_per_event_direct": rd.seconds_per_event * 1e6, f"{tag}_us_per_event_two_stage": r2.seconds_per_event * 1e6,
        f"{tag}_gain_measured": gain, f"{tag}_us_per_point_sample": t_sample * 1e6,
        f"{tag}_us_per_point_surrogate": t_sur * 1e6, f"{tag}_us_per_point_exact": t_exact * 1e6,
        **{f"{tag}_gain_model_exact_x{k}": v for k, v in model.items()},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (≈ 1–2 min)")
    ap.add_argument("--n-train", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--n-events", type=int, default=4000)
    ap.add_argument("--n-pilot", type=int, default=20_000)
    ap.add_argument("--vegas", action="store_true", help="also compare with points from an adapted VEGAS map")
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 32, 32], help="surrogate MLP widths (cost per point vs accuracy)")
    ap.add_argument("--output", default=__file__, help="results JSON (default results/bench_me_surrogate.json)")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.epochs, args.n_events, args.n_pilot = 8000, 40, 1000, 10_000
    torch.set_num_threads(1)

    integrand = PhaseSpaceIntegrand(TTbar(), 13_000.0, "quadratic", subprocess="gg")
    figures: dict = {"n_train": args.n_train, "n_events": args.n_events, "n_pilot": args.n_pilot, "sqrt_s_gev": 13000.0,
                     "surrogate_hidden": "x".join(map(str, args.hidden))}
    flat = IntegrandProblem(integrand)
    t0 = time.perf_counter()
    sur = train_me_surrogate(flat, args.n_train, hidden=tuple(args.hidden), epochs=args.epochs, batch_size=256, seed=0, device="cpu", quiet=True)
    t_train = time.perf_counter() - t0
    print(f"surrogate: {args.n_train} points, {sur.training['epochs']} epochs, {t_train:.1f} s "
          f"(exact weights {sur.training['seconds_exact']:.2f} s); validation rms of log(f f |M|^2) "
          f"{sur.training['validation_rms_log']:.3f}")
    figures.update({"train_seconds": t_train, "train_validation_rms_log": sur.training["validation_rms_log"]})
    compare("flat", flat, sur, args.n_events, args.n_pilot, figures)

    if args.vegas:
        import vegas

        theta_m = flat.theta_m
        rng = np.random.default_rng(5)
        integ = vegas.Integrator([[0.0, 1.0]] * integrand.dim, ran_array_generator=rng.random)

        @vegas.lbatchintegrand
        def f(r):
            with torch.no_grad():
                return integrand.evaluate(torch.from_numpy(np.asarray(r))).numpy() @ theta_m

        integ(f, nitn=8, neval=20_000)
        mapped = IntegrandProblem(integrand, vegas_map=integ.map)
        compare("vegas", mapped, sur, args.n_events, args.n_pilot, figures)
    write_results(args.output, figures)


if __name__ == "__main__":
    main()
