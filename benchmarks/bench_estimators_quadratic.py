"""Quadratic EFT classifier (arXiv:2007.10356) on WH → ℓνbb̄ at parton level against the exact log r.

Same events, features, parameter space, θ grid (3×3×3 over cHW, cHWtil ∈ [−1, 1], cHq3 ∈ [−0.2, 0.2])
and metric as bench_estimators.py: MSE(log r̂) = mean over the grid of the SM-weighted mean over test
events of (log r̂(x|θ₀, SM) − log r(z|θ₀, SM))², where x carries the complete parton-level information
so that the exact r(x) = r(z) is known from the amplitudes.  Writes
benchmarks/results/bench_estimators_quadratic.json.

    python benchmarks/bench_estimators_quadratic.py                  # 10⁴ and 10⁵ training events
    python benchmarks/bench_estimators_quadratic.py --quick          # 10⁴ events, 20 epochs
    python benchmarks/bench_estimators_quadratic.py --sizes 10000 --epochs 30 --loss cross_entropy

Runs with torch.set_num_threads(1) on CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbihep.errors import SbihepError
from sbihep.estimators.quadratic import QuadraticEFTClassifier
from sbihep.events import augment, reco
from sbihep.events import eft as eft_math
from sbihep.fit import Likelihood, NormalisedLogRatio, UnbinnedTerm, exact_unbinned_term, minimize, profile_interval
from sbihep.fit.morphing import EventSetSigma
from sbihep.events.generate import generate
from sbihep.physics.processes import get_process
from _results import write_results

torch.set_num_threads(1)


LUMI_IFB = 300.0


def learned_log_ratio(estimator, operators):
    """A fit-speed log ρ̂(x|θ) callable of a :class:`QuadraticEFTClassifier` or a morphing-architecture
    ``RatioEstimator`` (anything with ``coefficients(x)`` and ``order``): the coefficient functions are
    θ-independent, so they are evaluated once per data array and every θ costs one (N, M) product.  The
    θ-only term log Ẑ(θ) is left out: :class:`NormalisedLogRatio` normalises it away."""
    cache: dict = {}

    def log_ratio(x, theta):
        if cache.get("x") is not x:
            cache["x"], cache["c"] = x, estimator.coefficients(x).values
        m = eft_math.monomials(np.array([theta.get(o, 0.0) for o in operators]), estimator.order).numpy()
        return np.log(np.clip(cache["c"] @ m, 1e-300, None))

    return log_ratio


def exact_log_rho(event_sets, features):
    """The exact log ρ(x|θ) = log dσ(x|θ)/dσ(x|SM) of the events behind each feature array of
    ``event_sets`` (x = z at parton level), as a ``log_ratio(x, theta)`` callable that recognises those
    arrays — to run the exact ratio through the learned ratio's normalisation."""
    table = [(ev.observables().sel(observable=features).values, ev.coefficients().numpy(), list(ev.operators), ev.order)
             for ev in event_sets]

    def log_ratio(x, theta):
        for arr, c, operators, order in table:
            if x is arr or (x.shape == arr.shape and np.array_equal(x, arr)):
                m = eft_math.monomials(np.array([theta.get(o, 0.0) for o in operators]), order).numpy()
                return np.log(c @ m) - np.log(c[:, 0])
        raise ValueError("exact_log_rho: features of an event set it was not built with")

    return log_ratio


def expected_intervals(log_ratio, test_ev, features, reference_ev, *, log_rho: bool = False) -> dict:
    """68% profile intervals of each operator (others profiled) on the SM Asimov data of the test events at
    LUMI_IFB: exact parton-level likelihood vs the learned ``log_ratio(x, theta)`` normalised on the
    independent SM events ``reference_ev`` (label ``learned``), and — to separate the estimator's error
    from that of the normalisation on a finite reference sample — the exact ratio normalised the same way
    (``exact_ratio_reference_normalised``).  ``log_rho``: ``log_ratio`` is a learned log ρ̂(x|θ) =
    log dσ̂(x|θ)/dσ̂(x|SM) (a morphing or quadratic network's polynomial); then also the learned ρ̂ with the
    test events' exact σ(θ) instead (``learned_exact_sigma``): exact and learned differ only by ρ̂ − ρ."""
    exact = Likelihood([exact_unbinned_term(test_ev, LUMI_IFB)])
    x = test_ev.observables().sel(observable=features).values
    ref_x = reference_ev.observables().sel(observable=features).values
    space = exact.terms[0].model_parameters
    asimov_counts = test_ev.weights({}).numpy() * 1000.0 * LUMI_IFB

    def normalised_likelihood(f):
        ratio = NormalisedLogRatio(f, ref_x, reference_ev.weights({}).numpy())
        return Likelihood([UnbinnedTerm(ratio, x, sigma_pb=EventSetSigma(test_ev), lumi_ifb=LUMI_IFB, parameters=space,
                                        weights=asimov_counts)])

    likelihoods = {"exact": exact, "learned": normalised_likelihood(log_ratio),
                   "exact_ratio_reference_normalised": normalised_likelihood(exact_log_rho([test_ev, reference_ev], features))}
    if log_rho:
        sigma = EventSetSigma(test_ev)
        sigma_sm = sigma({})

        def with_exact_sigma(x, theta):
            return log_ratio(x, theta) - np.log(sigma(theta) / sigma_sm)

        likelihoods["learned_exact_sigma"] = Likelihood([UnbinnedTerm(with_exact_sigma, x, sigma_pb=EventSetSigma(test_ev), lumi_ifb=LUMI_IFB,
                                                                      parameters=space, weights=asimov_counts)])
    out = {}
    for label, lik in likelihoods.items():
        best = minimize(lik)
        for name in test_ev.operators:
            try:
                iv = profile_interval(lik, name, best_fit=best)
                out[f"wh_expected_68cl_width_{name}_{label}"] = iv.high - iv.low
            except SbihepError as exc:  # record the failure, keep the other figures
                print(f"  {label} likelihood, {name}: profile interval failed: {exc}", flush=True)
                out[f"wh_expected_68cl_width_{name}_{label}"] = float("nan")
    for name in test_ev.operators:
        for label in likelihoods:
            if label != "exact":
                out[f"wh_expected_68cl_width_ratio_{name}_{label}_over_exact"] = (
                    out[f"wh_expected_68cl_width_{name}_{label}"] / out[f"wh_expected_68cl_width_{name}_exact"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10⁴ training events, 20 epochs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--loss", default="quadratic", choices=["quadratic", "cross_entropy"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100], help="hidden layer widths")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    sizes, epochs = ([10_000], 20) if args.quick else (args.sizes, args.epochs)
    n_test = 20_000
    process = get_process("wh_lvbb")
    t0 = time.perf_counter()
    events = generate(process, 13000.0, max(sizes) + n_test, seed=11, n_adapt=5, n_per_iteration=10000, progress=False)
    events, features = reco.parton_features(events, process)
    results: dict = {"torch_threads": 1, "epochs": epochs, "quick": int(args.quick), "loss": args.loss,
                     "hidden": "x".join(map(str, args.hidden)), "batch_size": args.batch_size,
                     "wh_generation_s": time.perf_counter() - t0}
    space = process.parameter_space({"cHW": (-1.0, 1.0), "cHWtil": (-1.0, 1.0), "cHq3": (-0.2, 0.2)})
    fraction = n_test / events.n_events
    train_all, test_ev = events.split((1 - fraction, fraction), seed=0)
    test_ev, reference_ev = test_ev.split((0.5, 0.5), seed=2)  # data for the expected intervals / normalisation
    w_sm = test_ev.weights({}).numpy()
    w_sm = w_sm / w_sm.sum()
    x_test = test_ev.observables().sel(observable=features).values
    grid = augment.grid(space, 3)(27, np.random.default_rng(0))
    exact = np.stack([test_ev.log_joint_ratio(dict(zip(space.names, row)), {}).numpy() for row in grid])
    print(f"bench_estimators_quadratic: WH parton level, {len(features)} features, loss {args.loss}, epochs {epochs}, threads 1", flush=True)
    for n in sizes:
        train_ev = train_all if n >= train_all.n_events else train_all.split((n / train_all.n_events, 1 - n / train_all.n_events), seed=1)[0]
        est = QuadraticEFTClassifier(features, space, hidden=tuple(args.hidden), seed=0)
        t1 = time.perf_counter()
        history = est.fit(train_ev, loss=args.loss, epochs=epochs, batch_size=args.batch_size, final_learning_rate=1e-4,
                          early_stopping_patience=args.patience, quiet=True)
        learned = est.log_ratio_grid(x_test, grid).values
        mse = float(np.sum(w_sm * (learned - exact) ** 2, axis=1).mean())
        results[f"wh_quadratic_eft_mse_log_r_n{n}"] = mse
        results[f"wh_quadratic_eft_train_s_n{n}"] = time.perf_counter() - t1
        results[f"wh_quadratic_eft_throughput_events_per_s_n{n}"] = history.samples_per_second
        results[f"wh_quadratic_eft_epochs_n{n}"] = len(history.train_loss)
        print(f"  n={train_ev.n_events:7d}: MSE(log r) = {mse:.4f} ({results[f'wh_quadratic_eft_train_s_n{n}']:.0f} s, "
              f"{history.samples_per_second:.0f} events/s for all {len(est.training['thetas'])} θ points at once)", flush=True)
    widths = expected_intervals(learned_log_ratio(est, test_ev.operators), test_ev, features, reference_ev, log_rho=True)  # the last (largest) training size
    results.update(widths)
    for name in test_ev.operators:
        print(f"  expected 68% CL width at {LUMI_IFB:g} fb⁻¹, {name}: exact {widths[f'wh_expected_68cl_width_{name}_exact']:.5f}, "
              f"learned {widths[f'wh_expected_68cl_width_{name}_learned']:.5f} "
              f"(ratio {widths[f'wh_expected_68cl_width_ratio_{name}_learned_over_exact']:.3f})", flush=True)
    results["wh_exact_mean_square_log_r"] = float(np.sum(w_sm * exact**2, axis=1).mean())
    print(f"\nfor scale: SM-weighted mean of (log r)² over the grid = {results['wh_exact_mean_square_log_r']:.3f}")
    write_results(__file__, results)


if __name__ == "__main__":
    main()
