"""Neutrino p_z regression: conditional flow vs the W-mass-constraint quadratic.

Processes pp → W → eν and pp → W±H → eν b b̄ at 13 TeV (``sbihep.events.generate.generate``), SM.
For each setting a :class:`sbihep.flows.NeutrinoFlow` (target p_z) is trained on the events that pass
the selection of a training sample and evaluated on an independent test sample:

* resolution — interquartile range of p_z(estimate) − p_z(true) for the flow (median of its
  samples; its mode, the sample of highest flow density; and its "branch" estimate, the median of the
  samples on the more populated side of the two roots) and for the smaller-|p_z| root of the
  quadratic; ratio quadratic/flow (target ≥ 1.4);
* calibration — PIT u = F̂(p_z,true | event): exact, from the flow's CDF (:meth:`NeutrinoFlow.pit`), and
  the randomised sample PIT of the posterior draws (:func:`sbihep.flows.neutrino.sample_pit`, no
  discreteness floor); KS p-values of u against U(0,1), the fraction of true values inside the central
  68 % interval, and the train − validation NLL gap at the restored epoch (over-fitting);
* zero-resolution limit (``perfect`` card: MET = true neutrino p_T) — the posterior must be
  bimodal at the two roots: fraction of samples within max(2 GeV, 5 % of the root separation) of
  either root, the mean posterior weight on the small root vs the frequency with which the true
  neutrino is the small root, and the fraction of events whose posterior puts ≥ 10 % on each root.

Usage:  python benchmarks/bench_flows_neutrino.py [--quick] [--n-train 40000] [--n-test 10000] [--epochs 60]
        [--settings w_default,w_perfect,wh_default] [--pz-tails asinh|linear] [--merge]
Writes benchmarks/results/bench_flows_neutrino.json (flat keys with units).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from _results import RESULTS_DIR, write_results
from scipy import stats

from sbihep.events.generate import generate
from sbihep.flows.neutrino import NeutrinoFlow, neutrino_features, required_observables, sample_pit, true_neutrino, w_mass_neutrino_pz
from sbihep.physics.processes import get_process

SQRT_S_GEV = 13000.0
RESULTS = RESULTS_DIR / "bench_flows_neutrino.json"


def iqr(values: np.ndarray) -> float:
    q25, q75 = np.percentile(values, [25, 75])
    return float(q75 - q25)


def events_for(process: str, card: str, n: int, seed: int, jets):
    return generate(
        get_process(process), SQRT_S_GEV, n, seed=seed, detector=card, observables=required_observables(jets), progress=False,
    )


def run_setting(tag: str, process: str, card: str, jets, args, figures: dict) -> None:
    start = time.perf_counter()
    train = events_for(process, card, args.n_train, 11, jets)
    test = events_for(process, card, args.n_test, 12, jets)
    t_gen = time.perf_counter() - start
    flow = NeutrinoFlow(target="pz", jets=jets, kind="nsf", transforms=args.transforms, hidden=(args.width, args.width), bins=args.bins,
                        pz_tails=args.pz_tails, seed=0)
    start = time.perf_counter()
    history = flow.fit_events(train, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                              early_stopping_patience=args.patience, quiet=True, seed=0)
    t_fit = time.perf_counter() - start

    inp = neutrino_features(test, jets)
    keep = inp["passed"]
    inp = {k: v[keep] for k, v in inp.items() if k != "passed"}
    truth = true_neutrino(test)[keep, 3]
    small, large, is_complex = w_mass_neutrino_pz(inp["lepton"], inp["met_xy"])
    start = time.perf_counter()
    samples = flow.sample_momenta(inp, args.n_samples, seed=5)[..., 3]  # (S, N)
    t_sample = time.perf_counter() - start
    median = np.median(samples, 0)
    mode = flow.point_estimate(inp, args.n_samples, seed=5, method="mode")[:, 0]
    branch = flow.point_estimate(inp, args.n_samples, seed=5, method="branch")[:, 0]
    pit = flow.pit(inp, truth)  # exact: the flow's CDF at the truth
    pit_samples = sample_pit(samples, truth, seed=6)
    q16, q84 = np.quantile(samples, [0.16, 0.84], axis=0)

    f = figures
    f[f"{tag}_n_train_generated"] = args.n_train
    f[f"{tag}_n_test_generated"] = args.n_test
    f[f"{tag}_epochs_max"] = args.epochs
    f[f"{tag}_flow"] = (f"NSF transforms={args.transforms} hidden=({args.width},{args.width}) bins={args.bins} lr={args.learning_rate} "
                        f"batch={args.batch_size} patience={args.patience} pz_tails={args.pz_tails}")
    f[f"{tag}_n_posterior_samples"] = args.n_samples
    f[f"{tag}_n_train_passed"] = int(flow.training["n_samples"])
    f[f"{tag}_n_test_passed"] = int(keep.sum())
    f[f"{tag}_epochs_run"] = len(history.train_loss)
    f[f"{tag}_best_epoch"] = history.best_epoch
    f[f"{tag}_nll_gap_validation_minus_train"] = round(history.validation_loss[history.best_epoch] - history.train_loss[history.best_epoch], 4)
    f[f"{tag}_test_nll_per_gev"] = round(float(-np.mean(flow.log_prob(truth[:, None], flow.context(inp)))), 4)
    f[f"{tag}_generation_s"] = round(t_gen, 1)
    f[f"{tag}_training_s"] = round(t_fit, 1)
    f[f"{tag}_sampling_us_per_event_sample"] = round(1e6 * t_sample / samples.size, 2)
    f[f"{tag}_complex_fraction"] = round(float(is_complex.mean()), 4)
    f[f"{tag}_iqr_quadratic_small_root_gev"] = round(iqr(small - truth), 2)
    f[f"{tag}_iqr_flow_median_gev"] = round(iqr(median - truth), 2)
    f[f"{tag}_iqr_ratio_quadratic_over_flow"] = round(iqr(small - truth) / iqr(median - truth), 3)
    f[f"{tag}_iqr_flow_mode_gev"] = round(iqr(mode - truth), 2)
    f[f"{tag}_iqr_ratio_quadratic_over_flow_mode"] = round(iqr(small - truth) / iqr(mode - truth), 3)
    f[f"{tag}_iqr_flow_branch_gev"] = round(iqr(branch - truth), 2)
    f[f"{tag}_iqr_ratio_quadratic_over_flow_branch"] = round(iqr(small - truth) / iqr(branch - truth), 3)
    f[f"{tag}_median_abs_residual_quadratic_gev"] = round(float(np.median(np.abs(small - truth))), 2)
    f[f"{tag}_median_abs_residual_flow_gev"] = round(float(np.median(np.abs(median - truth))), 2)
    f[f"{tag}_median_abs_residual_flow_mode_gev"] = round(float(np.median(np.abs(mode - truth))), 2)
    f[f"{tag}_true_is_small_root_fraction"] = round(float((np.abs(truth - small) < np.abs(truth - large)).mean()), 4)
    f[f"{tag}_pit_ks_pvalue"] = float(f"{stats.kstest(pit, 'uniform').pvalue:.3g}")
    f[f"{tag}_pit_ks_statistic"] = round(float(stats.kstest(pit, "uniform").statistic), 4)
    f[f"{tag}_sample_pit_ks_pvalue"] = float(f"{stats.kstest(pit_samples, 'uniform').pvalue:.3g}")
    f[f"{tag}_sample_pit_ks_statistic"] = round(float(stats.kstest(pit_samples, "uniform").statistic), 4)
    f[f"{tag}_coverage_68_fraction"] = round(float(((truth >= q16) & (truth <= q84)).mean()), 4)
    f[f"{tag}_pit_histogram_10bins"] = np.histogram(pit, bins=10, range=(0, 1))[0].tolist()

    if card == "perfect":
        real = ~is_complex
        window = np.maximum(2.0, 0.05 * np.abs(large - small))[None]
        near_small = np.abs(samples - small[None]) < window
        near_large = np.abs(samples - large[None]) < window
        near_true = np.abs(samples - truth[None]) < window
        f[f"{tag}_samples_near_a_root_fraction"] = round(float((near_small | near_large)[:, real].mean()), 4)
        f[f"{tag}_samples_near_true_root_fraction"] = round(float(near_true[:, real].mean()), 4)
        weight_small = near_small.mean(0)[real]
        f[f"{tag}_posterior_weight_small_root_mean"] = round(float(weight_small.mean()), 4)
        f[f"{tag}_bimodal_events_fraction"] = round(float(((near_small.mean(0) >= 0.1) & (near_large.mean(0) >= 0.1))[real].mean()), 4)
    for key in [k for k in f if k.startswith(tag)]:
        print(f"{key:55s} {f[key]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute per setting on one core)")
    parser.add_argument("--n-train", type=int, default=40_000, help="generated training events (before selection)")
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--transforms", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--bins", type=int, default=16)
    parser.add_argument("--n-samples", type=int, default=200)
    parser.add_argument("--patience", type=int, default=15, help="early-stopping patience (epochs)")
    parser.add_argument("--pz-tails", default="asinh", choices=("asinh", "linear"), help="NeutrinoFlow's p_z coordinate beyond the roots")
    parser.add_argument("--settings", default="w_default,w_perfect,wh_default", help="comma-separated subset")
    parser.add_argument("--merge", action="store_true", help="keep the other settings' figures already in the results file")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.n_samples = 8000, 3000, 30, 100
    torch.set_num_threads(1)
    figures: dict = {}
    if args.merge and RESULTS.exists():
        figures.update(json.loads(RESULTS.read_text()))
    figures["machine"] = f"{platform.node()} {platform.machine()} ({os.cpu_count()} cores), torch threads 1"
    settings = {
        "w_default": ("w_lv", "default", ()),
        "w_perfect": ("w_lv", "perfect", ()),
        "wh_default": ("wh_lvbb", "default", ("b", "bbar")),
    }
    for tag in args.settings.split(","):
        if tag not in settings:
            raise SystemExit(f"unknown setting {tag!r}; choose from {sorted(settings)}")
        run_setting(tag, *settings[tag], args, figures)
    write_results(__file__, figures)


if __name__ == "__main__":
    main()
