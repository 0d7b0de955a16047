"""Ratio estimators on the generalised Galton board (arXiv:1805.12244) against the exact DP likelihood.

Prints MSE(log r̂) = mean over a θ₀ grid of Σ_x p(x|θ₁) (log r̂(x|θ₀, θ₁) − log r(x|θ₀, θ₁))² — an exact
expectation over the 21 bins, no test-sample noise — for CARL, ROLR, RASCAL, ALICE, ALICES and CASCAL
at each training-set size, θ₁ = 0.  (The paper reports RASCAL/ROLR ≈ 0.002 at 10⁴ samples; its θ grid
and evaluation differ in detail.)  Writes benchmarks/results/bench_estimators_galton.json.

    python benchmarks/bench_estimators_galton.py                 # 10⁴ samples, 50 epochs
    python benchmarks/bench_estimators_galton.py --quick         # 2000 samples, 20 epochs
    python benchmarks/bench_estimators_galton.py --sizes 1000 10000 100000 --epochs 50
    python benchmarks/bench_estimators_galton.py --paper-setting   # the paper's test point, see below

``--paper-setting`` reproduces the evaluation of the authors' notebook (simulator-mining-example): θ₀ and
θ₁ both drawn in [−1, −0.4] (doubly parametrised), the error measured at the single pair θ₀ = −0.8,
θ₁ = −0.6 — a mild ratio (|log r| ≲ 1), unlike the default grid whose far θ₀ reach |log r| ≈ 7–11 in
rarely populated bins.  (The notebook estimates p(x|θ) from 2×10⁴ samples; here it is exact.)

Runs with torch.set_num_threads(1) on CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbihep.estimators import METHODS, RatioEstimator
from sbihep.estimators.galton import GaltonBoard
from _results import write_results

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2000 samples, 20 epochs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--paper-setting", action="store_true", help="θ in [−1, −0.4], doubly parametrised, MSE at θ₀ = −0.8, θ₁ = −0.6")
    args = parser.parse_args()
    sizes, epochs = ([2000], 20) if args.quick else (args.sizes, args.epochs)
    if args.paper_setting:
        board, grid, theta1, prefix = GaltonBoard(bounds=(-1.0, -0.4)), np.array([-0.8]), -0.6, "galton_paper"
        label = "θ in [-1, -0.4], doubly parametrised, test pair θ₀ = -0.8, θ₁ = -0.6"
    else:
        board, grid, theta1, prefix = GaltonBoard(), np.linspace(-1, 1, 21), 0.0, "galton"
        label = f"θ₀ grid of {len(grid)} in [-1, 1], θ₁ = 0"
    bins = np.arange(board.n_bins)
    p1 = board.probabilities(theta1).values[0]
    exact = np.stack([board.log_ratio(bins, t, theta1) for t in grid])
    print(f"bench_estimators_galton: {board!r}, {label}, epochs {epochs}, threads 1", flush=True)
    results: dict = {"torch_threads": 1, "epochs": epochs, "quick": int(args.quick),
                     f"{prefix}_exact_mean_square_log_r": float(np.mean(np.sum(p1 * exact**2, axis=1)))}
    for n in sizes:
        data = board.ratio_training_sample(n, theta1=None if args.paper_setting else 0.0, seed=n)
        for method in args.methods:
            est = RatioEstimator(["x"], board.space, hidden=(64, 64), seed=0)
            t0 = time.perf_counter()
            est.fit(data, method, epochs=epochs, batch_size=64, learning_rate=2e-3, final_learning_rate=1e-4, early_stopping_patience=15, quiet=True)
            learned = np.stack([est.log_ratio(bins[:, None].astype(float), [t], [theta1]) for t in grid])
            mse = float(np.mean(np.sum(p1 * (learned - exact) ** 2, axis=1)))
            results[f"{prefix}_{method}_mse_log_r_n{n}"] = mse
            results[f"{prefix}_{method}_train_s_n{n}"] = time.perf_counter() - t0
            print(f"  n={n:7d} {method:7s} MSE(log r) = {mse:.4f}  ({results[f'{prefix}_{method}_train_s_n{n}']:.0f} s)", flush=True)
    print(f"\nfor scale: Σ_x p(x|θ₁) (log r)² averaged over the θ₀ = {results[f'{prefix}_exact_mean_square_log_r']:.3f}")
    write_results(__file__, results, merge=True)


if __name__ == "__main__":
    main()
