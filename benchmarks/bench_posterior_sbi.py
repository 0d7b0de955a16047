"""sbi posteriors (NPE, NLE, NRE) against exact posteriors: Gaussian toy and sets of WH → ℓνbb̄ events.

* Gaussian toy (σ_total = 0.5, 4 draws per observation, θ ∈ [−2, 2]): for each method and number of
  training simulations, the posterior mean bias and width ratio std̂/std_exact averaged over 10
  observations (exact posterior: truncated normal), the training time, and the SBC/TARP summaries
  (KS p-value of the SBC ranks, TARP area-to-curve) on held-out simulations.
* WH → ℓνbb̄ at parton level (if not --no-wh): observations are sets of 50 events drawn by exact
  reweighting to θ = (cHW, cHWtil); NPE with a DeepSet embedding of (pT_ℓ, pT_W) per event.  The
  parton-level posterior on the finite event sample (each set's likelihood is Π_j w_j(θ)/σ(θ), which
  uses the full kinematics z of every event, not only the two observables) is computed on a grid: it
  is a lower bound on the width any posterior given (pT_ℓ, pT_W) can reach, so
  ``wh_npe_width_ratio_*`` (NPE std / parton-level std) ≥ 1 even for a perfect NPE.  SBC/TARP as above.

    python benchmarks/bench_posterior_sbi.py            # 10³ and 10⁴ simulations
    python benchmarks/bench_posterior_sbi.py --quick    # 10³ only, fewer held-out simulations
    python benchmarks/bench_posterior_sbi.py --methods nle,nre --n-diagnostic 0 --no-wh   # widths only

NLE/NRE diagnostics sample every held-out posterior by rejection/MCMC and cost minutes of CPU.

Writes benchmarks/results/bench_posterior_sbi.json (flat keys, units in the names).  CPU, one thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
import warnings

import numpy as np
import torch

from sbihep.estimators import posterior as P
from sbihep.estimators.toys import GaussianToy
from _results import write_results

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=UserWarning)


def gaussian_toy(sizes, n_diagnostic, methods, epochs, results):
    sim = P.GaussianToySimulator(GaussianToy(sigma_z=0.4, sigma_x=0.3), n_obs=4)
    rng = np.random.default_rng(123)
    observations = sim(rng.uniform(-1.5, 1.5, (10, 1)), rng)
    for method in methods:
        for n in sizes:
            network = {"hidden_features": 50} if method == "nre" else {"hidden_features": 50, "num_transforms": 3}
            start = time.process_time()
            result = P.fit_posterior(
                method, sim, n_simulations=n, network=network, training={"max_num_epochs": epochs, "learning_rate": 1e-3},
                sample_with=None if method == "npe" else "rejection", n_diagnostic=n_diagnostic, n_posterior_samples=200, seed=0, quiet=True,
            )
            seconds = time.process_time() - start
            bias, ratio = [], []
            for xo in observations:
                exact = sim.exact_posterior(xo)
                s = result.summary(xo, 2000, seed=1)
                bias.append((float(s["mean"][0]) - exact.mean()) / exact.std())
                ratio.append(float(s["std"][0]) / exact.std())
            d = result.diagnostics
            key = f"toy_{method}_n{n}"
            results[f"{key}_width_ratio"] = float(np.mean(ratio))
            results[f"{key}_width_ratio_spread"] = float(np.std(ratio))
            results[f"{key}_mean_bias_sigma"] = float(np.mean(np.abs(bias)))
            results[f"{key}_fit_and_diagnostics_cpu_s"] = seconds
            results[f"{key}_epochs"] = int(result.history.attrs["epochs_trained"])
            if d is not None:
                results[f"{key}_sbc_ks_pvalue"] = float(d["sbc_ks_pvalue"][0])
                results[f"{key}_tarp_atc"] = float(d["tarp_atc"])
            print(f"toy {method.upper()} n={n}: std/exact {np.mean(ratio):.3f} ± {np.std(ratio):.3f}, |bias| {np.mean(np.abs(bias)):.3f} σ, "
                  f"SBC KS p {results.get(f'{key}_sbc_ks_pvalue', float('nan')):.3f}, TARP ATC {results.get(f'{key}_tarp_atc', float('nan')):+.3f}, "
                  f"{seconds:.0f} s CPU ({results[f'{key}_epochs']} epochs)", flush=True)


def wh_sets(n_sims, n_events_per_set, n_base, n_diagnostic, epochs, results):
    from sbihep.events import eft as eft_math
    from sbihep.events.generate import generate
    from sbihep.physics.lorentz import pt
    from sbihep.physics.processes import get_process

    wh = get_process("wh_lvbb")
    start = time.process_time()
    sample = generate(wh, 13000.0, n_base, seed=21, n_adapt=4, n_per_iteration=8000, progress=False)
    p, roles = sample.momenta(), sample.roles
    lep, nu = p[:, roles.index("l")], p[:, roles.index("v")]
    events = sample.with_observables({"pt_l": pt(lep), "pt_W": pt(lep + nu)})
    space = wh.parameter_space({"cHW": (-1.0, 1.0), "cHWtil": (-1.0, 1.0)}).subset(["cHW", "cHWtil"])
    sim = P.EventSetSimulator(events, ["pt_l", "pt_W"], n_events_per_set, space)
    results["wh_generation_cpu_s"] = time.process_time() - start

    start = time.process_time()
    result = P.fit_posterior(
        "npe", sim, n_simulations=n_sims, embedding={"type": "deepset", "n_out": 16, "hidden": [64, 64], "pooling": "mean"},
        network={"hidden_features": 50, "num_transforms": 3}, training={"max_num_epochs": epochs, "learning_rate": 1e-3},
        n_diagnostic=n_diagnostic, n_posterior_samples=200, seed=0, quiet=True,
    )
    results["wh_npe_fit_and_diagnostics_cpu_s"] = time.process_time() - start

    # parton-level posterior on the finite sample (uses z, so narrower than p(θ|x)): p(set|θ) = Π_j w_{i_j}(θ)/σ(θ), flat prior on the grid
    axis = np.linspace(-1, 1, 81)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    full = np.zeros((len(grid), len(events.operators)))
    for j, name in enumerate(space.names):
        full[:, events.operators.index(name)] = grid[:, j]
    w = eft_math.weights_at(events.coefficients(), torch.from_numpy(full)).numpy()  # (grid, events)
    log_w = np.log(np.clip(w, 1e-300, None)) - np.log(w.sum(1, keepdims=True))
    lookup = {tuple(row): i for i, row in enumerate(np.asarray(events.observables().sel(observable=["pt_l", "pt_W"]).values))}
    rng = np.random.default_rng(5)
    ratios = []
    for theta in ([0.0, 0.0], [0.5, -0.5], [-0.6, 0.3]):
        x = sim(np.array([theta]), rng)[0]
        idx = [lookup[tuple(e)] for e in x.reshape(n_events_per_set, 2)]
        logl = log_w[:, idx].sum(1)
        post = np.exp(logl - logl.max())
        post /= post.sum()
        mean = post @ grid
        std = np.sqrt(post @ (grid - mean) ** 2)
        s = result.summary(x, 4000, seed=2)
        ratios.append(s["std"].values / std)
        print(f"WH set at θ={theta}: parton-level std {np.round(std, 3)}, NPE std {np.round(s['std'].values, 3)}, "
              f"parton-level mean {np.round(mean, 3)}, NPE mean {np.round(s['mean'].values, 3)}", flush=True)
    ratios = np.array(ratios)
    for j, name in enumerate(space.names):
        results[f"wh_npe_width_ratio_{name}"] = float(ratios[:, j].mean())
        if result.diagnostics is not None:
            results[f"wh_npe_sbc_ks_pvalue_{name}"] = float(result.diagnostics["sbc_ks_pvalue"][j])
    if result.diagnostics is not None:
        results["wh_npe_tarp_atc"] = float(result.diagnostics["tarp_atc"])
    results["wh_events_per_set"] = n_events_per_set
    results["wh_n_simulations"] = n_sims
    print(f"WH NPE+DeepSet ({n_sims} sets of {n_events_per_set}): std/parton-level {np.round(ratios.mean(0), 3)}, "
          f"SBC KS p {np.round(result.diagnostics['sbc_ks_pvalue'].values, 3) if result.diagnostics is not None else '—'}, "
          f"TARP ATC {results.get('wh_npe_tarp_atc', float('nan')):+.3f}, {results['wh_npe_fit_and_diagnostics_cpu_s']:.0f} s CPU", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10³ simulations only, fewer held-out simulations")
    parser.add_argument("--methods", default="npe,nle,nre")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--sizes", default=None, help="toy training sizes, e.g. 1000,10000")
    parser.add_argument("--n-diagnostic", type=int, default=None, help="held-out simulations for SBC/TARP (0: none)")
    parser.add_argument("--no-wh", action="store_true")
    parser.add_argument("--wh-sims", type=int, default=None, help="training sets for the WH example")
    parser.add_argument("--tag", default="", help="write results/bench_posterior_sbi<tag>.json")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else ([1000] if args.quick else [1000, 10000])
    n_diag = args.n_diagnostic if args.n_diagnostic is not None else (100 if args.quick else 300)
    results: dict = {"quick": int(args.quick), "max_epochs": args.epochs, "n_diagnostic": n_diag}
    gaussian_toy(sizes, n_diag, [m for m in args.methods.split(",") if m], args.epochs, results)
    if not args.no_wh:
        wh_sims = args.wh_sims or (2000 if args.quick else 10000)
        wh_sets(wh_sims, 50, 3000 if args.quick else 20000, n_diag, args.epochs, results)
    write_results(__file__ if not args.tag else str(Path(__file__).parent / "results" / f"bench_posterior_sbi{args.tag}.json"), results)


if __name__ == "__main__":
    main()
