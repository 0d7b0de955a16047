"""Ratio and score estimators against exact truth: Gaussian toy and WH → ℓνbb̄ at parton level.

Prints MSE(log r̂) against the exact log r over a θ grid for every ratio method and training-set size,
the fraction of the parton-level Fisher information that SALLY recovers, and the training throughput
of the first-order losses (CARL, ROLR, ALICE) against their second-derivative versions (CASCAL,
RASCAL, ALICES).  Writes benchmarks/results/bench_estimators.json (flat keys, units in the names).

    python benchmarks/bench_estimators.py            # full sizes
    python benchmarks/bench_estimators.py --quick    # reduced sizes

Runs with torch.set_num_threads(1) on CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbihep.estimators import METHODS, RatioEstimator
from sbihep.estimators.ratio import SCORE_METHODS
from sbihep.estimators import information as info
from sbihep.estimators.score import ScoreEstimator
from sbihep.estimators.toys import GaussianToy
from _results import write_results
from bench_estimators_quadratic import expected_intervals, learned_log_ratio

from sbihep.events import augment, reco
from sbihep.events.generate import generate
from sbihep.physics.processes import get_process

torch.set_num_threads(1)
FIRST_TO_SECOND = {"carl": "cascal", "rolr": "rascal", "alice": "alices"}



def gaussian_toy(sizes, epochs, results, throughput):
    toy = GaussianToy()
    x = np.random.default_rng(123).normal(0, toy.sigma_total, 5000)
    grid = np.linspace(-2, 2, 17)
    exact = np.stack([toy.log_ratio(x, t, 0.0) for t in grid])
    for n in sizes:
        data = toy.ratio_training_sample(n, seed=n)
        for method in METHODS:
            est = RatioEstimator(["x"], toy.space, hidden=(64, 64), seed=0)
            h = est.fit(data, method, epochs=epochs, batch_size=128, final_learning_rate=1e-4, early_stopping_patience=10, quiet=True)
            learned = est.log_ratio_grid(x[:, None], grid[:, None]).values
            results[f"gauss_{method}_mse_log_r_n{n}"] = float(np.mean((learned - exact) ** 2))
            throughput.setdefault(method, []).append(h.samples_per_second)


def wh(n_events, sizes, epochs, sally_samples, results, throughput, methods=METHODS, hidden=(100, 100), patience=10, sally=True, architecture="mlp",
       theta_per_event=None, score_units="theta", prior_kind="uniform", activation="tanh", normalisation="sm_sample", alpha=1.0,
       expected_widths=False):
    """The WH part. ``sizes``: resampled training samples, or with ``theta_per_event`` = K the number of
    training events, each with K θ₀ (weighted samples, no resampling).  ``prior_kind``: θ₀ uniform in the
    box, or cycling through its 3ⁿ grid (the quadratic EFT classifier's training points).  Besides the
    27-point grid metric, every run also reports the same metric on 27 θ₀ drawn uniformly in the box
    (``..._offgrid``), so that training at the grid points cannot flatter the figure.  ``expected_widths``:
    also the 68% CL profile widths of every trained ratio against the exact likelihood
    (:func:`bench_estimators_quadratic.expected_intervals`; test events halved into Asimov data and the
    SM reference sample that normalises r̂)."""
    process = get_process("wh_lvbb")
    t0 = time.perf_counter()
    events = generate(process, 13000.0, n_events, seed=11, n_adapt=5, n_per_iteration=10000, progress=False)
    events, features = reco.parton_features(events, process)
    results["wh_generation_s"] = time.perf_counter() - t0
    bounds = {"cHW": (-1.0, 1.0), "cHWtil": (-1.0, 1.0), "cHq3": (-0.2, 0.2)}
    space = process.parameter_space(bounds)
    train_ev, test_ev = events.split((0.7, 0.3), seed=0)
    # test: events at θ₁ = SM (weighted), a 3×3×3 grid of θ₀; exact r from the amplitudes (x = z)
    w_sm = test_ev.weights({}).numpy()
    w_sm = w_sm / w_sm.sum()
    x_test = test_ev.observables().sel(observable=features).values
    grid = augment.grid(space, 3)(27, np.random.default_rng(0))
    exact = np.stack([test_ev.log_joint_ratio(dict(zip(space.names, row)), {}).numpy() for row in grid])
    offgrid = augment.uniform_prior(space)(27, np.random.default_rng(2024))
    exact_off = np.stack([test_ev.log_joint_ratio(dict(zip(space.names, row)), {}).numpy() for row in offgrid])
    results["wh_exact_mean_square_log_r_offgrid"] = float(np.sum(w_sm * exact_off**2, axis=1).mean())
    prior = augment.uniform_prior(space) if prior_kind == "uniform" else augment.grid(space, 3)
    for n in sizes:
        if theta_per_event:
            if n > train_ev.n_events:
                raise SystemExit(f"--wh-sizes {n} exceeds the {train_ev.n_events} training events (weighted samples use each event once)")
            subset = train_ev if n == train_ev.n_events else train_ev.split((n / train_ev.n_events, 1 - n / train_ev.n_events), seed=1)[0]
            data = augment.weighted_ratio_training_sample(subset, prior, theta_per_event, features=features, seed=5)
        else:
            data = augment.ratio_training_sample(train_ev, prior, n, features=features, seed=n)
        for method in methods:
            est = RatioEstimator(features, space, hidden=tuple(hidden), seed=0, architecture=architecture, activation=activation)
            h = est.fit(data, method, epochs=epochs, batch_size=128, final_learning_rate=1e-4, early_stopping_patience=patience, quiet=True,
                        score_units=score_units, normalisation=normalisation, alpha=alpha)
            learned = est.log_ratio_grid(x_test, grid).values
            key = wh_key(method, architecture, theta_per_event, score_units, prior_kind, activation, normalisation, alpha)
            results[f"{key}_mse_log_r_n{n}"] = float(np.sum(w_sm * (learned - exact) ** 2, axis=1).mean())
            learned_off = est.log_ratio_grid(x_test, offgrid).values
            results[f"{key}_mse_log_r_offgrid_n{n}"] = float(np.sum(w_sm * (learned_off - exact_off) ** 2, axis=1).mean())
            results[f"{key}_train_s_n{n}"] = h.seconds
            throughput.setdefault(method, []).append(h.samples_per_second)
            print(f"  WH {architecture} {method:7s} n={n:6d}: MSE(log r) = {results[f'{key}_mse_log_r_n{n}']:.4f}, off the grid "
                  f"{results[f'{key}_mse_log_r_offgrid_n{n}']:.4f} ({h.seconds:.0f} s)", flush=True)
            if expected_widths:
                data_ev, reference_ev = test_ev.split((0.5, 0.5), seed=2)
                morphing = architecture == "morphing"
                log_ratio = learned_log_ratio(est, space.names) if morphing else (lambda x, theta: est.log_ratio(x, theta))
                widths = expected_intervals(log_ratio, data_ev, features, reference_ev, log_rho=morphing)
                results.update({k.replace("wh_", f"{key}_", 1) + f"_n{n}": v for k, v in widths.items()})
                labels = [k.split("_over_exact")[0].split(f"ratio_{space.names[0]}_")[1] for k in widths
                          if k.startswith(f"wh_expected_68cl_width_ratio_{space.names[0]}_")]
                for label in labels:
                    print(f"  expected 68% CL widths, {label} / exact: " + ", ".join(
                        f"{p} {widths[f'wh_expected_68cl_width_ratio_{p}_{label}_over_exact']:.3f}" for p in space.names), flush=True)
    if not sally:
        return
    # SALLY at the SM
    data = augment.score_training_sample(train_ev, sally_samples, features=features, seed=7)
    sally = ScoreEstimator(features, space, hidden=(128, 128, 128), seed=0)
    sally.fit(data, epochs=3 * epochs, batch_size=128, final_learning_rate=1e-4, early_stopping_patience=15, quiet=True)
    truth_kin = info.truth_information(test_ev, lumi_ifb=300, include_rate=False)
    sally_kin = info.sally_information(sally, test_ev, x_test, lumi_ifb=300, include_rate=False)
    truth = info.truth_information(test_ev, lumi_ifb=300)
    full = info.sally_information(sally, test_ev, x_test, lumi_ifb=300)
    for label, est_i, tru_i in (("", full, truth), ("_kinematic", sally_kin, truth_kin)):
        frac = info.information_fraction(est_i, tru_i)
        for name in space.names:
            results[f"wh_sally_fisher{label}_fraction_{name}"] = float(frac["diagonal"].sel(parameter=name))
        results[f"wh_sally_fisher{label}_fraction_det"] = float(frac["determinant"])
    for name in space.names:
        results[f"wh_rate_fisher_fraction_{name}"] = float(info.rate_information(test_ev, lumi_ifb=300).sel(parameter_i=name, parameter_j=name) / truth.sel(parameter_i=name, parameter_j=name))


def wh_key(method, architecture="mlp", theta_per_event=None, score_units="theta", prior_kind="uniform", activation="tanh",
           normalisation="sm_sample", alpha=1.0) -> str:
    """The results-key prefix of one WH setting (the defaults add nothing, so earlier keys keep their names)."""
    return ("wh" + ("" if architecture == "mlp" else f"_{architecture}") + (f"_weighted{theta_per_event}" if theta_per_event else "")
            + ("" if prior_kind == "uniform" else f"_{prior_kind}prior") + ("" if activation == "tanh" else f"_{activation}")
            + ("" if normalisation == "sm_sample" or architecture == "mlp" else f"_{normalisation}")
            + ("" if score_units == "theta" or method not in SCORE_METHODS else f"_{score_units}")
            + ("" if alpha == 1.0 or method not in SCORE_METHODS else f"_alpha{alpha:g}") + f"_{method}")


def write_atomic(results: dict) -> None:
    write_results(__file__, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument("--wh-only", action="store_true", help="only the WH part: ratio methods at --wh-sizes, no SALLY")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--wh-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--architecture", default="mlp", choices=("mlp", "morphing"), help="the ratio networks' potential (WH part)")
    parser.add_argument("--theta-per-event", type=int, default=None,
                        help="WH: weighted samples (every event once with K θ₀, no resampling); --wh-sizes then counts events (≤ 140000)")
    parser.add_argument("--score-units", default="theta", choices=("theta", "bounds"), help="units of the score term (RatioEstimator.fit)")
    parser.add_argument("--prior", default="uniform", choices=("uniform", "grid"),
                        help="WH θ₀: uniform in the box, or cycling through its 3ⁿ grid (the quadratic EFT classifier's points)")
    parser.add_argument("--normalisation", default="sm_sample", choices=("sm_sample", "cross_section", "learned"),
                        help="morphing architecture: where Ẑ(θ) = σ(θ)/σ(SM) comes from (RatioEstimator.fit)")
    parser.add_argument("--expected-widths", action="store_true",
                        help="WH: 68%% CL profile widths of each learned ratio against the exact likelihood (300 fb⁻¹, Asimov SM)")
    parser.add_argument("--alpha", type=float, default=1.0, help="weight of the score term (rascal, alices, cascal; WH part)")
    parser.add_argument("--activation", default="tanh", choices=("tanh", "silu", "softplus"), help="WH ratio networks' activation")
    args = parser.parse_args()
    if args.quick:
        toy_sizes, wh_events, wh_sizes, epochs, sally_n = (1000, 10000), 40000, (10000,), 30, 25000
    else:
        toy_sizes, wh_events, wh_sizes, epochs, sally_n = (1000, 10000, 100000), 200000, (10000, 100000), 50, 100000
    wh_sizes = tuple(args.wh_sizes or wh_sizes)
    epochs = args.epochs or epochs
    mode = "WH only" if args.wh_only else ("quick" if args.quick else "full")
    print(f"bench_estimators ({mode}): torch.set_num_threads(1), device cpu, hidden {args.hidden}, epochs {epochs}", flush=True)
    results: dict = {"torch_threads": 1, "quick": int(args.quick), "hidden": "x".join(map(str, args.hidden)), "epochs": epochs}
    throughput: dict = {}
    if args.wh_only:
        wh(wh_events, wh_sizes, epochs, sally_n, results, throughput, methods=args.methods, hidden=args.hidden,
           patience=args.patience, sally=False, architecture=args.architecture, theta_per_event=args.theta_per_event, score_units=args.score_units,
           prior_kind=args.prior, activation=args.activation, normalisation=args.normalisation, alpha=args.alpha,
           expected_widths=args.expected_widths)

        def key(m):
            return wh_key(m, args.architecture, args.theta_per_event, args.score_units, args.prior, args.activation, args.normalisation, args.alpha)

        settings = {k: results.pop(k) for k in ("epochs", "hidden")}
        results.update({f"{key(m)}_{k}_n{n}": v for m in args.methods for n in wh_sizes for k, v in settings.items()})
        write_results(__file__.replace(".py", "_wh.py"), results, merge=True)  # a separate JSON: the full run's stays intact
        for m in args.methods:
            print(f"{m:8s}" + "".join(f"{results[f'{key(m)}_mse_log_r_n{n}']:14.4f}" for n in wh_sizes))
        return
    gaussian_toy(toy_sizes, epochs, results, throughput)
    wh(wh_events, wh_sizes, epochs, sally_n, results, throughput, hidden=args.hidden, patience=args.patience)
    for method, rates in throughput.items():
        results[f"{method}_throughput_samples_per_s"] = float(np.median(rates))
    for first, second in FIRST_TO_SECOND.items():
        results[f"{second}_over_{first}_cost_ratio"] = results[f"{first}_throughput_samples_per_s"] / results[f"{second}_throughput_samples_per_s"]
    write_atomic(results)

    print("\nMSE(log r̂) against the exact log r (Gaussian toy: 17 θ₀ × 5000 x; WH: 27 θ₀ × SM-weighted test events)")
    print(f"{'method':8s}" + "".join(f"{f'toy n={n}':>14s}" for n in toy_sizes) + "".join(f"{f'WH n={n}':>14s}" for n in wh_sizes))
    for m in METHODS:
        row = [results[f"gauss_{m}_mse_log_r_n{n}"] for n in toy_sizes] + [results[f"wh_{m}_mse_log_r_n{n}"] for n in wh_sizes]
        print(f"{m:8s}" + "".join(f"{v:14.4f}" for v in row))
    print("\nSALLY Fisher information fraction at the SM (diagonal; det^(1/n)), full / kinematic part:")
    for label in ("", "_kinematic"):
        print("  " + (label or "_full")[1:] + ": " + ", ".join(f"{k.split('_')[-1]} {v:.3f}" for k, v in results.items() if k.startswith(f"wh_sally_fisher{label}_fraction_")))
    print("\nthroughput (samples/s, median over runs) and second/first-order cost ratio:")
    for first, second in FIRST_TO_SECOND.items():
        print(f"  {first:6s} {results[f'{first}_throughput_samples_per_s']:9.0f}   {second:7s} {results[f'{second}_throughput_samples_per_s']:9.0f}   ratio {results[f'{second}_over_{first}_cost_ratio']:.2f}")


if __name__ == "__main__":
    main()
