"""Unfolding benchmarks: the OmniFold Gaussian toy, W → ℓν transverse mass, simulation correction.

Gaussian toy (Andreassen et al., arXiv:1911.09107): simulation truth N(0.2, 0.8), data truth N(0, 1),
smearing σ = 0.5, N events each.  Prints, per iteration, the unfolded mean and width of OmniFold,
iterative generative unfolding (IcINN-style prior removal) and IBU (pyunfold, binned) next to the exact
Gaussian sequence (iteration 1 = the prior-dependent single pass N(0.056, 0.909)); the triangular
discriminator (×10³) and Wasserstein-1 distance to the data truth.

Coverage (``--coverage``): P independent pseudo-experiments of the Gaussian toy, each with fresh data
AND fresh simulation (n events each).  Per pseudo-experiment: OmniFold's nominal spectrum and its
bootstrap σ from R replicas that Poisson-resample data and simulation and retrain every classifier;
IBU's spectrum with pyunfold's propagated errors (data only, and data ⊕ response-matrix statistics)
and with the Poisson bootstrap of data and simulation (``ibu(..., n_bootstrap=B)``).  Against the expected truth counts, against the
truth histogram of the same pseudo-data, and bias-free (around the mean over pseudo-experiments):
bias, true spread, ⟨σ⟩/spread and 1σ coverage (:func:`sbihep.flows.unfolding_metrics.bias_variance`).

W → ℓν (``--physics``): pp → W → ℓν at 13 TeV with the default detector; unfold the transverse mass
mT(ℓ, ν) from the reco mT(ℓ, MET) with OmniFold, iterative generative unfolding (NSF on log mT,
``support=[(0, None)]``; efficiency through ``reweight_truth``) and IBU, the simulation's truth spectrum
distorted by per-event weights exp(−(mT − 60 GeV)/40 GeV) so that the prior is wrong; efficiency from
the detector selection (no event with truth mT < 50 GeV passes it, so spectra are compared for truth
mT ≥ 50 GeV).  Per method: triangular discriminator Δ and W₁ against the data's truth, Σ/N_truth, and
per bin (unfolded − truth)/σ with σ from IBU's Poisson bootstrap (``ibu(..., n_bootstrap=B)``; for IBU
itself these are its pulls).

Simulation correction: a correlated 3-d toy (simulation and data Gaussians with different means,
widths and correlations, plus a non-linear term in the data), one flow with condition c ∈ {0, 1};
classifier AUC between corrected simulation and independent data (target < 0.52).

    python benchmarks/bench_unfolding.py                  # N = 10^5
    python benchmarks/bench_unfolding.py --quick          # N = 2·10^4, fewer replicas
    python benchmarks/bench_unfolding.py --physics        # add the W → ℓν section
    python benchmarks/bench_unfolding.py --physics --skip-gaussian --skip-correction   # W → ℓν only (≈ 5 min, one core)
    python benchmarks/bench_unfolding.py --coverage --skip-gaussian --skip-correction   # the coverage study only

Runs with torch.set_num_threads(1) on CPU.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy import stats

from sbihep.flows.correction import SimulationCorrection
from sbihep.flows.generative_unfolding import generative_unfolding_replicas, iterative_generative_unfolding
from sbihep.flows.ibu import ibu
from sbihep.flows.omnifold import omnifold, omnifold_replicas
from sbihep.flows.unfolding_metrics import bias_variance, classifier_auc, coverage, triangular_discriminator, wasserstein_1d
from _results import write_results

torch.set_num_threads(1)
SIGMA = 0.5


def exact_sequence(mu, s, mu_d, s_d, sigma, n):
    out, s2 = [], s * s
    for _ in range(n):
        k = s2 / (s2 + sigma**2)
        mu, s2 = k * mu_d + (1 - k) * mu, k * k * (s_d**2 + sigma**2) + k * sigma**2
        out.append((mu, math.sqrt(s2)))
    return out


def moments(values, weights=None):
    m = float(np.average(values, weights=weights))
    return m, float(np.sqrt(np.average((values - m) ** 2, weights=weights)))


def gaussian(args, fig):
    n, iters = args.n, args.iterations
    rng = np.random.default_rng(1)
    z_sim = rng.normal(0.2, 0.8, n)
    x_sim = z_sim + rng.normal(0, SIGMA, n)
    z_data = rng.normal(0.0, 1.0, n)
    x_data = z_data + rng.normal(0, SIGMA, n)
    fig["gauss_n_events"] = n
    exact = exact_sequence(0.2, 0.8, 0.0, 1.0, SIGMA, iters)  # population values
    bins = np.linspace(-3.0, 3.0, 13)  # the simulation (N(0.2, 0.8)) has hardly any events below −3
    truth_hist = np.histogram(z_data, bins)[0].astype(float)
    classifier = dict(hidden=(32, 32), epochs=args.epochs)
    methods = set(args.methods.split(","))

    def report(tag, it, m, s, hist, w1):
        fig[f"gauss_{tag}_mean_it{it}"], fig[f"gauss_{tag}_std_it{it}"] = m, s
        fig[f"gauss_{tag}_triangular_x1e3_it{it}"] = 1e3 * triangular_discriminator(hist, truth_hist)
        if w1 is not None:
            fig[f"gauss_{tag}_wasserstein_it{it}"] = w1
        print(f"  {tag:10s} it {it}: mean {m:+.4f} (exact {exact[it - 1][0]:+.4f})  std {s:.4f} (exact {exact[it - 1][1]:.4f})"
              f"  Δ×1e3 {fig[f'gauss_{tag}_triangular_x1e3_it{it}']:.3f}" + (f"  W1 {w1:.4f}" if w1 is not None else ""), flush=True)

    for it, (m, s) in enumerate(exact, 1):
        fig[f"gauss_exact_mean_it{it}"], fig[f"gauss_exact_std_it{it}"] = m, s
    fig["gauss_prior_triangular_x1e3"] = 1e3 * triangular_discriminator(np.histogram(z_sim, bins)[0], truth_hist)
    fig["gauss_prior_wasserstein"] = wasserstein_1d(z_sim, z_data)
    fig["gauss_data_truth_mean"], fig["gauss_data_truth_std"] = moments(z_data)

    if "omnifold" in methods:
        t0 = time.perf_counter()
        res = omnifold(z_sim, x_sim, x_data, iterations=iters, seed=0, quiet=True, ensemble=args.ensemble, **classifier)
        fig["gauss_omnifold_s"] = time.perf_counter() - t0
        for it in range(1, iters + 1):
            w = res.unfolded_weights(it)
            report("omnifold", it, *moments(z_sim, w), np.histogram(z_sim, bins, weights=w)[0], wasserstein_1d(z_sim, z_data, w))
    if "generative" in methods:
        generative(args, fig, z_sim, x_sim, x_data, z_data, bins, report)
    if "ibu" in methods:
        ibu_section(args, fig, z_sim, x_sim, x_data, bins, report)


def generative(args, fig, z_sim, x_sim, x_data, z_data, bins, report):
    iters = args.iterations
    t0 = time.perf_counter()
    gen = iterative_generative_unfolding(
        z_sim, x_sim, x_data, iterations=iters, seed=0, quiet=True,
        flow=dict(kind="maf", transforms=1, hidden=(32, 32)),
        flow_training=dict(epochs=args.epochs, batch_size=1024, learning_rate=3e-3),
        classifier=dict(hidden=(32, 32)), classifier_training=dict(epochs=args.epochs),
    )
    fig["gauss_generative_s"] = time.perf_counter() - t0
    for it in range(1, iters + 1):
        s_, w_ = gen.flat(it - 1)
        report("generative", it, *moments(s_[:, 0], w_), np.histogram(s_[:, 0], bins, weights=w_)[0], wasserstein_1d(s_[:, 0], z_data, w_))


def ibu_section(args, fig, z_sim, x_sim, x_data, bins, report):
    iters = args.iterations
    unf = ibu(z_sim, x_sim, x_data, bins_truth=bins, bins_reco=np.linspace(-3.5, 3.5, 15), iterations=iters)
    centres = 0.5 * (bins[1:] + bins[:-1])
    for it in range(1, iters + 1):
        h = unf["unfolded"].sel(iteration=it).values
        m = float(np.average(centres, weights=h))
        report("ibu_binned", it, m, float(np.sqrt(np.average((centres - m) ** 2, weights=h))), h, None)


def _toy(seed, n):
    rng = np.random.default_rng(seed)
    z_sim, z_data = rng.normal(0.2, 0.8, n), rng.normal(0.0, 1.0, n)
    return z_sim, z_sim + rng.normal(0, SIGMA, n), z_data, z_data + rng.normal(0, SIGMA, n)


def _summarise(fig, tag, unfolded, errors, expected, realised, regularised=None):
    """Figures of bias_variance against the expected truth, the pseudo-data's own truth and (optionally)
    the expectation of the regularised (finitely iterated) unfolding."""
    targets = {"expected": expected, "realised": realised}
    if regularised is not None:
        targets["regularised"] = regularised
    for name, truth in targets.items():
        bv = bias_variance(unfolded, truth, errors)
        for key in ("coverage", "coverage_without_bias", "pull_mean", "pull_rms", "bias_over_spread_rms", "error_ratio_mean"):
            fig[f"cov_{tag}_{name}_{key}"] = round(bv.attrs[key], 4)
        if name == "expected":
            fig[f"cov_{tag}_bias_counts"] = np.round(bv["bias"].values, 1).tolist()
            fig[f"cov_{tag}_spread_counts"] = np.round(bv["spread"].values, 1).tolist()
            fig[f"cov_{tag}_mean_error_counts"] = np.round(bv["mean_error"].values, 1).tolist()
        print(f"  {tag:22s} vs {name:11s}: coverage {bv.attrs['coverage']:.3f} (bias-free {bv.attrs['coverage_without_bias']:.3f}, "
              f"expected {bv.attrs['expected_coverage']:.3f})  pull mean {bv.attrs['pull_mean']:+.2f} rms {bv.attrs['pull_rms']:.2f}  "
              f"<σ>/spread {bv.attrs['error_ratio_mean']:.2f}  rms(bias/spread) {bv.attrs['bias_over_spread_rms']:.2f}", flush=True)


def coverage_study(args, fig):
    n, iters, n_pseudo, n_rep = args.coverage_n, args.coverage_iterations, args.pseudo, args.coverage_replicas
    bins = np.linspace(-2.5, 2.5, 11)  # the simulation N(0.2, 0.8) has ~4·10⁻⁴ of its events below −2.5: no support for a bin there
    bins_reco = np.linspace(-3.0, 3.0, 13)
    expected = n * np.diff(stats.norm.cdf(bins))
    m_it, s_it = exact_sequence(0.2, 0.8, 0.0, 1.0, SIGMA, iters)[-1]
    regularised = n * np.diff(stats.norm.cdf(bins, m_it, s_it))  # what OmniFold converges to at iteration `iters`
    fig.update(cov_n_events=n, cov_iterations=iters, cov_pseudo_experiments=n_pseudo, cov_omnifold_replicas=n_rep,
               cov_ibu_pseudo_experiments=args.pseudo_ibu, cov_ibu_replicas=args.ibu_replicas, cov_epochs=args.coverage_epochs)
    classifier = dict(hidden=(32, 32), epochs=args.coverage_epochs, learning_rate=3e-3)

    # IBU: cheap, many pseudo-experiments
    t0 = time.perf_counter()
    rows = {"u": [], "stat": [], "statsys": [], "boot": [], "real": []}
    for p in range(args.pseudo_ibu):
        z_s, x_s, z_d, x_d = _toy(50_000 + p, n)
        # the library's Poisson bootstrap of data and simulation (ibu(..., n_bootstrap=B))
        u = ibu(z_s, x_s, x_d, bins_truth=bins, bins_reco=bins_reco, iterations=iters, n_bootstrap=args.ibu_replicas,
                seed=90_000 + p).isel(iteration=-1)
        rows["u"].append(u["unfolded"].values)
        rows["stat"].append(u["stat_error"].values)
        rows["statsys"].append(np.hypot(u["stat_error"].values, u["sys_error"].values))
        rows["real"].append(np.histogram(z_d, bins)[0])
        rows["boot"].append(u["bootstrap_error"].values)
    a = {k: np.array(v, dtype=float) for k, v in rows.items()}
    fig["cov_ibu_s"] = round(time.perf_counter() - t0, 1)
    for tag, err in (("ibu_pyunfold_stat", a["stat"]), ("ibu_pyunfold_stat_sys", a["statsys"]), ("ibu_bootstrap", a["boot"])):
        _summarise(fig, tag, a["u"], err, expected, a["real"])

    # OmniFold: nominal + R bootstrap replicas (data and simulation Poisson-resampled, classifiers retrained)
    t0 = time.perf_counter()
    nominal, sigma, real = [], [], []
    for p in range(n_pseudo):
        z_s, x_s, z_d, x_d = _toy(50_000 + p, n)
        res = omnifold(z_s, x_s, x_d, iterations=iters, seed=10 * p, quiet=True, **classifier)
        nominal.append(np.histogram(z_s, bins, weights=res.unfolded_weights(-1))[0])
        reps = omnifold_replicas(z_s, x_s, x_d, n_replicas=n_rep, bootstrap=True, seed=7 * p + 1, progress=False, iterations=iters,
                                 quiet=True, **classifier)[:, -1]
        sigma.append(np.std([np.histogram(z_s, bins, weights=w)[0] for w in reps], 0, ddof=1))
        real.append(np.histogram(z_d, bins)[0])
        print(f"    OmniFold pseudo-experiment {p + 1}/{n_pseudo} ({time.perf_counter() - t0:.0f} s)", flush=True)
    fig["cov_omnifold_s"] = round(time.perf_counter() - t0, 1)
    _summarise(fig, "omnifold_bootstrap", np.array(nominal, float), np.array(sigma), expected, np.array(real, float), regularised)


def correction(args, fig):
    n = args.n_correction
    rng = np.random.default_rng(3)
    cov_s = np.array([[1.0, 0.4, 0.0], [0.4, 1.0, 0.3], [0.0, 0.3, 1.0]])
    cov_d = np.array([[1.4, 0.8, 0.2], [0.8, 1.1, 0.5], [0.2, 0.5, 0.8]])

    def sim(k):
        return rng.multivariate_normal([0, 0, 0], cov_s, k)

    def data(k):
        x = rng.multivariate_normal([0.3, -0.2, 0.1], cov_d, k)
        x[:, 2] += 0.3 * x[:, 0] ** 2 - 0.3 * 1.4  # a non-linear correlation
        return x

    train_sim, train_data, test_sim, test_data = sim(n), data(n), sim(n), data(n)
    t0 = time.perf_counter()
    corr = SimulationCorrection(3, kind="nsf", transforms=3, hidden=(64, 64), seed=0)
    corr.fit(train_sim, train_data, epochs=args.epochs_flow, batch_size=512, learning_rate=2e-3, quiet=True)
    fig["correction_fit_s"] = time.perf_counter() - t0
    out = corr.correct(test_sim)
    half = n // 2
    fig["correction_auc_before"] = classifier_auc(test_sim[:half], test_data[:half], seed=1, epochs=args.epochs)
    fig["correction_auc_after"] = classifier_auc(out[:half], test_data[half:], seed=1, epochs=args.epochs)
    fig["correction_n_events"] = n
    print(f"  correction (3-d, N = {n}): AUC sim vs data {fig['correction_auc_before']:.4f} → corrected vs data "
          f"{fig['correction_auc_after']:.4f}", flush=True)


def physics(args, fig):
    from sbihep.events.generate import generate
    from sbihep.events.reco import parton_observables
    from sbihep.physics.processes import get_process

    process = get_process("w_lv")
    n, iters = args.n_physics, args.physics_iterations
    t0 = time.perf_counter()

    def sample(seed):
        ev = generate(process, 13000.0, n, seed=seed, detector="default", observables=["mT(l,met)"],
                      detector_seed=seed + 1, progress=False)
        reco_mt = ev.observables().sel(observable="mT(l,met)").values
        truth_mt = parton_observables(ev, ["mT(l,v)"], process).observables().sel(observable="mT(l,v)").values
        return truth_mt, reco_mt, ev.data["passed"].values.astype(bool)

    z_s, x_s, p_s = sample(21)
    z_d, x_d, p_d = sample(22)
    fig["w_generation_s"] = time.perf_counter() - t0
    fig.update(w_n_events=n, w_iterations=iters, w_epochs=args.epochs, w_flow_epochs=args.physics_flow_epochs,
               w_ibu_bootstrap_replicas=args.physics_bootstrap, w_efficiency=float(p_d.mean()), w_n_selected_data=int(p_d.sum()))
    w0 = np.exp(-(z_s - 60.0) / 40.0)
    w0 *= len(z_s) / w0.sum()
    data = x_d[p_d]
    bins = np.array([50.0, 55, 60, 65, 70, 75, 80, 85, 100])  # truth mT < 50 GeV is never selected (pT thresholds)
    fig["w_bins_gev"] = bins.tolist()
    fiducial_s, fiducial_d = z_s >= bins[0], z_d >= bins[0]
    truth_hist = np.histogram(z_d, bins)[0].astype(float)
    fig["w_truth_counts"] = truth_hist.tolist()

    # IBU with the Poisson bootstrap of data and simulation: the per-bin σ every method is compared against
    t1 = time.perf_counter()
    unf = ibu(z_s, x_s, data, passed=p_s, sim_weights=w0, bins_truth=bins, bins_reco=np.linspace(40, 100, 16), iterations=iters,
              n_bootstrap=args.physics_bootstrap, seed=5).isel(iteration=-1)
    fig["w_ibu_s"] = time.perf_counter() - t1
    sigma = unf["bootstrap_error"].values
    fig["w_ibu_bootstrap_sigma_counts"] = np.round(sigma, 1).tolist()

    def report(tag, hist, w1=None):
        """Δ, W₁, total and per-bin (unfolded − truth)/σ_IBU-bootstrap of one unfolded (K,) spectrum."""
        fig[f"w_{tag}_triangular_x1e3"] = 1e3 * triangular_discriminator(hist, truth_hist)
        fig[f"w_{tag}_total_over_truth"] = float(hist.sum() / truth_hist.sum())
        dev = (hist - truth_hist) / sigma
        fig[f"w_{tag}_deviation_over_ibu_sigma"] = np.round(dev, 2).tolist()
        fig[f"w_{tag}_chi2_ibu_sigma"] = float(np.sum(dev**2))
        if w1 is not None:
            fig[f"w_{tag}_wasserstein_gev"] = w1
        print(f"  {tag:22s} Δ×1e3 {fig[f'w_{tag}_triangular_x1e3']:7.3f}" + (f"  W1 {w1:.3f} GeV" if w1 is not None else " " * 16)
              + f"  Σ/N_truth {fig[f'w_{tag}_total_over_truth']:.3f}  (u − t)/σ_IBU {np.array2string(dev, precision=1)}"
              f"  χ² {fig[f'w_{tag}_chi2_ibu_sigma']:.1f}/{len(dev)}", flush=True)

    def replica_report(tag, nominal, replicas, seconds):
        """σ per bin from the replicas' spread; pulls (nominal − truth)/σ and their 1σ coverage."""
        own_sigma = replicas.std(0, ddof=1)
        pull = (nominal - truth_hist) / own_sigma
        fig[f"w_{tag}_replicas"] = len(replicas)
        fig[f"w_{tag}_replica_sigma_counts"] = np.round(own_sigma, 1).tolist()
        fig[f"w_{tag}_replica_sigma_over_ibu_sigma"] = np.round(own_sigma / sigma, 2).tolist()
        fig[f"w_{tag}_pulls_own_sigma"] = np.round(pull, 2).tolist()
        fig[f"w_{tag}_pull_coverage_1sigma"] = coverage(pull, 1.0)
        fig[f"w_{tag}_replicas_s"] = seconds
        print(f"  {tag} replicas ({len(replicas)}): σ/σ_IBU {np.array2string(own_sigma / sigma, precision=2)}  pulls"
              f" {np.array2string(pull, precision=1)}  1σ coverage {fig[f'w_{tag}_pull_coverage_1sigma']:.2f}  ({seconds:.0f} s)", flush=True)

    report("prior", np.histogram(z_s, bins, weights=w0)[0] * (truth_hist.sum() / np.histogram(z_s, bins, weights=w0)[0].sum()),
           wasserstein_1d(z_s[fiducial_s], z_d[fiducial_d], w0[fiducial_s]))
    ibu_hist = unf["unfolded"].values
    report("ibu", ibu_hist)
    pull = (ibu_hist - truth_hist) / sigma
    fig["w_ibu_pull_coverage_1sigma"] = coverage(pull, 1.0)
    fig["w_ibu_pyunfold_stat_sigma_counts"] = np.round(unf["stat_error"].values, 1).tolist()

    t1 = time.perf_counter()
    omnifold_options = dict(passed=p_s, iterations=iters, hidden=(32, 32), epochs=args.epochs)
    res = omnifold(z_s, x_s, data, sim_weights=w0, seed=0, quiet=True, **omnifold_options)
    fig["w_omnifold_s"] = time.perf_counter() - t1
    for it in (1, iters):
        w = res.unfolded_weights(it)
        report(f"omnifold_it{it}", np.histogram(z_s, bins, weights=w)[0], wasserstein_1d(z_s[fiducial_s], z_d[fiducial_d], w[fiducial_s]))

    # iterative generative unfolding: NSF on log mT (support (0, ∞) for truth and reco), the efficiency
    # carried by reweighting all simulated truth events (reweight_truth) instead of 1/ε(z) sample weights
    t1 = time.perf_counter()
    generative_options = dict(
        passed=p_s, iterations=iters, n_samples=2, support=[(0.0, None)], reco_support=[(0.0, None)], reweight_truth=True,
        flow=dict(kind="nsf", transforms=3, hidden=(64, 64), bins=12),
        flow_training=dict(epochs=args.physics_flow_epochs, batch_size=512, learning_rate=2e-3),
        classifier=dict(hidden=(64, 64)), classifier_training=dict(epochs=args.epochs, learning_rate=3e-3),
    )
    gen = iterative_generative_unfolding(z_s, x_s, data, sim_weights=w0, seed=0, quiet=True, **generative_options)
    fig["w_generative_s"] = time.perf_counter() - t1
    selected_truth = np.histogram(z_d[p_d], bins)[0].astype(float)
    for it, tag in ((1, "generative_single_pass"), (iters, f"generative_it{iters}")):
        w = gen.truth_weights[it - 1]
        report(tag, np.histogram(z_s, bins, weights=w)[0], wasserstein_1d(z_s[fiducial_s], z_d[fiducial_d], w[fiducial_s]))
        # the flow's own samples describe the truth of the selected events
        smp, sw = gen.flat(it - 1)
        fig[f"w_{tag}_samples_vs_selected_truth_triangular_x1e3"] = 1e3 * triangular_discriminator(
            np.histogram(smp[:, 0], bins, weights=sw)[0], selected_truth)
        fig[f"w_{tag}_samples_vs_selected_truth_wasserstein_gev"] = wasserstein_1d(smp[:, 0], z_d[p_d], sw)
        print(f"    its samples vs the selected events' truth: Δ×1e3 {fig[f'w_{tag}_samples_vs_selected_truth_triangular_x1e3']:.3f}"
              f"  W1 {fig[f'w_{tag}_samples_vs_selected_truth_wasserstein_gev']:.3f} GeV", flush=True)
    if args.physics_replicas:
        # bootstrap replicas (data and simulation Poisson-resampled, networks retrained): each method's own
        # per-bin uncertainty, and the coverage of the truth by the nominal result ± that σ
        t1 = time.perf_counter()
        reps = omnifold_replicas(z_s, x_s, data, n_replicas=args.physics_replicas, sim_weights=w0, seed=100, progress=False, **omnifold_options)
        nominal = np.histogram(z_s, bins, weights=res.unfolded_weights(iters))[0]
        replica_report("omnifold", nominal, np.stack([np.histogram(z_s, bins, weights=w)[0] for w in reps[:, -1]]), time.perf_counter() - t1)
        t1 = time.perf_counter()
        reps = generative_unfolding_replicas(z_s, x_s, data, n_replicas=args.physics_replicas, sim_weights=w0, seed=100, progress=False, **generative_options)
        nominal = np.histogram(z_s, bins, weights=gen.truth_weights[-1])[0]
        replica_report("generative", nominal, np.stack([np.histogram(z_s, bins, weights=r.truth_weights[-1])[0] for r in reps]), time.perf_counter() - t1)
    fig["w_physics_s"] = time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument("--n", type=int, default=100_000, help="events per sample of the Gaussian toy")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=30, help="classifier epochs")
    parser.add_argument("--ensemble", type=int, default=3, help="OmniFold classifiers per step (logits averaged)")
    parser.add_argument("--n-correction", type=int, default=50_000)
    parser.add_argument("--epochs-flow", type=int, default=40)
    parser.add_argument("--physics", action="store_true", help="add the W → ℓν section")
    parser.add_argument("--n-physics", type=int, default=100_000, help="generated W → ℓν events per sample (simulation, data)")
    parser.add_argument("--physics-iterations", type=int, default=4)
    parser.add_argument("--physics-flow-epochs", type=int, default=30)
    parser.add_argument("--physics-bootstrap", type=int, default=20, help="IBU bootstrap replicas in the W → ℓν section")
    parser.add_argument("--physics-replicas", type=int, default=0,
                        help="bootstrap replicas (retrained) of OmniFold and the generative unfolding in the W → ℓν section")
    parser.add_argument("--skip-gaussian", action="store_true")
    parser.add_argument("--methods", default="omnifold,generative,ibu", help="Gaussian-toy sections to run")
    parser.add_argument("--skip-correction", action="store_true")
    parser.add_argument("--coverage", action="store_true", help="add the coverage study over pseudo-experiments")
    parser.add_argument("--coverage-n", type=int, default=10_000, help="events per sample in the coverage study")
    parser.add_argument("--coverage-iterations", type=int, default=4)
    parser.add_argument("--coverage-epochs", type=int, default=15, help="classifier epochs in the coverage study (learning rate 3e-3)")
    parser.add_argument("--pseudo", type=int, default=10, help="OmniFold pseudo-experiments (fresh data and simulation)")
    parser.add_argument("--coverage-replicas", type=int, default=8, help="OmniFold bootstrap replicas per pseudo-experiment")
    parser.add_argument("--pseudo-ibu", type=int, default=200, help="IBU pseudo-experiments")
    parser.add_argument("--ibu-replicas", type=int, default=20, help="IBU bootstrap replicas per pseudo-experiment")
    parser.add_argument("--output", default=__file__, help="results JSON (default benchmarks/results/bench_unfolding.json)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.iterations, args.n_correction, args.n_physics = 20_000, 4, 10_000, 20_000
        args.physics_flow_epochs = 20
        args.epochs, args.epochs_flow = 20, 25
        args.coverage_n, args.pseudo, args.coverage_replicas, args.pseudo_ibu, args.ibu_replicas = 5000, 4, 4, 50, 10
    fig: dict = {"quick": int(args.quick)}
    t0 = time.perf_counter()
    sections = [("Gaussian toy", gaussian, not args.skip_gaussian), ("simulation correction", correction, not args.skip_correction),
                ("W → ℓν", physics, args.physics), ("coverage over pseudo-experiments", coverage_study, args.coverage)]
    for title, section, wanted in sections:
        if wanted:
            print(title, flush=True)
            section(args, fig)
            fig["total_s"] = time.perf_counter() - t0
            write_results(args.output, fig, merge=True)  # after every section (a later failure keeps the figures); keys of other runs stay


if __name__ == "__main__":
    main()
