"""SALLY's share of the truth Fisher information at the SM, WH → ℓνbb̄ at parton level (x = z).

Same events, features, split and operators (cHW, cHWtil, cHq3) as bench_estimators.py.  At parton level
the joint score is the score, so SALLY is a deterministic regression of t(x) = ∇_θ log p(x|θ)|_SM and
every lost percent is regression error.  For each training set-up the script reports the fraction of
the truth information (diagonal, and det^(1/3)) under the two estimates of the information in t̂:

* ``projection`` — L σ C_{t t̂} C_{t̂ t̂}⁻¹ C_{t̂ t}: the information of the statistic t̂ (the default of
  :func:`sbihep.estimators.information.sally_information`; ≤ the truth, blind to a linear
  recalibration of t̂);
* ``moment`` — L σ E[t̂ t̂ᵀ]: right only for a calibrated t̂ (it rewards regression noise).

Set-ups: ``baseline`` — the earlier recipe (a resampled training sample, drawn with replacement, tanh
(128, 128, 128)); ``events`` — :meth:`ScoreEstimator.fit_events` (every training event once, weighted)
with SiLU (128, 128, 128); optionally (``--quadratic``) the quadratic EFT classifier's score α̂(x) at
the SM (its offset −σ₁/σ₀ does not change the projection estimate).  Fractions are given with the rate
information (``full``) and for the kinematic part alone (``kinematic``).  Writes
benchmarks/results/bench_estimators_sally.json.

    python benchmarks/bench_estimators_sally.py                 # 10⁵ training events, 50 epochs
    python benchmarks/bench_estimators_sally.py --quick         # 3·10⁴ events, 30 epochs
    python benchmarks/bench_estimators_sally.py --n-train 30000 100000 --setups events --quadratic

Runs with torch.set_num_threads(1) on CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbihep.estimators import information as info
from sbihep.estimators.quadratic import QuadraticEFTClassifier
from sbihep.estimators.score import ScoreEstimator
from sbihep.events import augment, reco
from sbihep.events.generate import generate
from sbihep.physics.processes import get_process
from _results import write_results

torch.set_num_threads(1)
LUMI_IFB = 300.0
SETUPS = {"baseline": "tanh", "events": "silu"}


def fractions(results, key, statistic_info, truth, names):
    frac = info.information_fraction(statistic_info, truth)
    for name in names:
        results[f"{key}_fraction_{name}"] = float(frac["diagonal"].sel(parameter=name))
    results[f"{key}_fraction_det"] = float(frac["determinant"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3·10⁴ training events, 30 epochs")
    parser.add_argument("--n-events", type=int, default=200_000, help="generated events (70%% train, 30%% test)")
    parser.add_argument("--n-train", type=int, nargs="+", default=None, help="training events (≤ 70%% of --n-events)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128, 128])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--quadratic", action="store_true", help="also the quadratic EFT classifier's score")
    args = parser.parse_args()
    sizes = args.n_train or ([30_000] if args.quick else [100_000])
    epochs = args.epochs or (30 if args.quick else 50)

    process = get_process("wh_lvbb")
    t0 = time.perf_counter()
    events = generate(process, 13000.0, args.n_events, seed=11, n_adapt=5, n_per_iteration=10000, progress=False)
    events, features = reco.parton_features(events, process)
    space = process.parameter_space({"cHW": (-1.0, 1.0), "cHWtil": (-1.0, 1.0), "cHq3": (-0.2, 0.2)})
    train_ev, test_ev = events.split((0.7, 0.3), seed=0)
    x_test = test_ev.observables().sel(observable=features).values
    names = list(space.names)
    results: dict = {"torch_threads": 1, "n_events": args.n_events, "n_test_events": test_ev.n_events, "epochs": epochs,
                     "hidden": "x".join(map(str, args.hidden)), "generation_s": time.perf_counter() - t0}
    truth = {"full": info.truth_information(test_ev, lumi_ifb=LUMI_IFB),
             "kinematic": info.truth_information(test_ev, lumi_ifb=LUMI_IFB, include_rate=False)}
    for name in names:
        results[f"truth_fisher_{name}_per_unit2"] = float(truth["full"].sel(parameter_i=name, parameter_j=name))
    print(f"bench_estimators_sally: {args.n_events} events ({test_ev.n_events} test), epochs {epochs}, hidden {args.hidden}, 1 thread", flush=True)

    for n in sizes:
        if n > train_ev.n_events:
            parser.error(f"--n-train {n} exceeds the {train_ev.n_events} training events")
        fraction = n / train_ev.n_events
        subset = train_ev if fraction >= 1 else train_ev.split((fraction, 1 - fraction), seed=1)[0]
        runs = {}
        for setup in args.setups:
            est = ScoreEstimator(features, space, hidden=tuple(args.hidden), activation=SETUPS[setup], seed=0)
            options = dict(epochs=epochs, batch_size=128, final_learning_rate=1e-4, early_stopping_patience=15, quiet=True)
            if setup == "baseline":  # the earlier recipe: n draws with replacement from all training events
                history = est.fit(augment.score_training_sample(train_ev, n, features=features, seed=7), **options)
            else:
                history = est.fit_events(subset, **options)
            results[f"sally_{setup}_train_s_n{n}"] = history.seconds
            runs[setup] = lambda include_rate, method, est=est: info.sally_information(
                est, test_ev, x_test, lumi_ifb=LUMI_IFB, include_rate=include_rate, method=method)
        if args.quadratic:
            quad = QuadraticEFTClassifier(features, space, hidden=tuple(args.hidden), seed=0)
            history = quad.fit(subset, epochs=epochs, batch_size=128, final_learning_rate=1e-4, early_stopping_patience=15, quiet=True)
            results[f"quadratic_train_s_n{n}"] = history.seconds
            alpha = quad.coefficients(x_test).sel(component=names).values
            runs["quadratic"] = lambda include_rate, method, alpha=alpha: info.score_information(
                test_ev, alpha if method == "projection" else alpha - np.array(quad.sigma_coefficients[1 : 1 + len(names)]) / quad.sigma_coefficients[0],
                lumi_ifb=LUMI_IFB, include_rate=include_rate, method=method)
        for setup, information in runs.items():
            for method in ("projection", "moment"):
                for part, include_rate in (("full", True), ("kinematic", False)):
                    fractions(results, f"sally_{setup}_{method}_{part}_n{n}", information(include_rate, method), truth[part], names)
            for part in ("full", "kinematic"):
                line = "  ".join(f"{method} " + " ".join(f"{results[f'sally_{setup}_{method}_{part}_n{n}_fraction_{k}']:.3f}" for k in [*names, "det"])
                                 for method in ("projection", "moment"))
                print(f"  n={n:6d} {setup:9s} {part:9s} (cHW cHWtil cHq3 det): {line}", flush=True)
    write_results(__file__, results)


if __name__ == "__main__":
    main()
