"""Event generation: VEGAS-adapted importance sampling, unweighting, exact EFT weights per event.

For each subprocess of a process (e.g. W⁺ and W⁻, whose final states differ):

1. adapt a VEGAS map (``vegas`` package, Lepage 1978) to the event weight at the generation point
   θ_gen, seeded so that it is reproducible;
2. sample that map with our own random numbers in chunks, every chunk seeded from
   (seed, subprocess, chunk) — so the events are identical whether the chunks run in this process,
   in local worker processes or on a dask cluster (:mod:`sbihep.parallel`);
3. weighted mode: event i gets coefficients c_i = jac_i · f_i / N (pb), f the packed EFT integrand
   of :class:`~sbihep.physics.xsec.PhaseSpaceIntegrand`, so that w_i(θ) = c_i·m(θ) for every θ;
4. unweighted mode: accept event i with probability min(1, w_i(θ_gen)/w_max), w_max the smallest
   weight above which at most ``max_overweight`` (10⁻³) of σ lies, and rescale the survivors'
   coefficients so that each carries ∝ max(w_max, w_i): equal weights σ_k/n_k except for the rare
   overweight events, which stay proportionally heavier (exactly unbiased); their weights at any
   other θ stay exact (reweighting).

Subprocesses contribute n_k ∝ σ_k(θ_gen) unweighted events.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from sbihep._checks import check_counts
from sbihep.errors import InvalidInputError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet, _parameter_mapping
from sbihep.parallel import map_jobs
from sbihep.physics.phasespace import boost_partonic_to_lab
from sbihep.physics.processes.base import EFTOrder, Process, check_order
from sbihep.physics.xsec import PhaseSpaceIntegrand

__all__ = ["generate", "GenerationReport", "SYSTEMATICS"]

#: nuisance name → the μ_F multipliers of its (+1σ, −1σ) variations.
SYSTEMATICS: dict[str, tuple[float, float]] = {"mu_f": (2.0, 0.5)}


@dataclass
class GenerationReport:
    """What happened while generating one subprocess."""

    subprocess: str
    sigma_pb: float
    sigma_error_pb: float
    n_weighted: int
    n_unweighted: int
    max_weight_pb: float  # w_max used for unweighting (the largest weight when weighted)
    efficiency: float  # ⟨min(1, w/w_max)⟩: accepted fraction of weighted points
    overweight_fraction: float  # Σ max(0, w − w_max) / σ: the part of σ above w_max

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _weighted_chunk(
    integrand: PhaseSpaceIntegrand, vegas_map, seed: tuple[int, ...], n_points: int, muf_factors: tuple[float, ...] = ()
) -> dict:
    """Sample ``n_points`` from the VEGAS map; returns numpy arrays (module-level: picklable job)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    y = rng.random((n_points, integrand.dim))
    x = np.empty_like(y)
    jac = np.empty(n_points)
    vegas_map.map(y, x, jac)
    np.clip(x, 0.0, 1.0, out=x)
    with torch.no_grad():
        record = integrand.events(torch.from_numpy(x), muf_factors)
    out = {key: value.numpy() for key, value in record.items()}
    out["coefficients"] = out["coefficients"] * jac[:, None]
    if muf_factors:
        out["coefficients_muf"] = np.moveaxis(out["coefficients_muf"] * jac[None, :, None], 0, 1)  # (N, V, M)
    out["uniform"] = rng.random(n_points)  # for accept/reject, drawn with the chunk
    return out


def _adapt_map(integrand: PhaseSpaceIntegrand, theta_m: np.ndarray, n_adapt: int, n_per_iteration: int, seed: int):
    import vegas

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xADA]))
    integrator = vegas.Integrator([[0.0, 1.0]] * integrand.dim, ran_array_generator=rng.random)

    @vegas.lbatchintegrand
    def weight_at_theta(r):
        with torch.no_grad():
            return np.abs(integrand.evaluate(torch.from_numpy(np.asarray(r))).numpy() @ theta_m)

    if n_adapt > 0:
        integrator(weight_at_theta, nitn=n_adapt, neval=n_per_iteration)
    return integrator.map


def _chunks(n: int, size: int) -> list[int]:
    return [size] * (n // size) + ([n % size] if n % size else [])


def generate(
    process: Process,
    sqrt_s: float,
    n_events: int,
    *,
    theta: Mapping[str, float] | None = None,
    order: EFTOrder = "quadratic",
    unweighted: bool = True,
    seed: int = 0,
    n_adapt: int = 8,
    n_per_iteration: int = 20_000,
    chunk_size: int = 50_000,
    pdf=None,
    systematics: tuple[str, ...] = (),
    detector=None,
    observables: tuple[str, ...] | list[str] | None = None,
    detector_seed: int | None = None,
    max_overweight: float = 1e-3,
    n_workers: int | None = 1,
    client=None,
    progress: bool = True,
) -> EventSet:
    """Generate events of ``process`` at collider energy ``sqrt_s`` (GeV) with exact EFT weights.

    Args:
        process: a :class:`~sbihep.physics.processes.base.Process`.
        sqrt_s: collider energy (GeV).
        n_events: unweighted events to return, or weighted sampling points (``unweighted=False``).
        theta: the generation point θ_gen by name (default SM); weights are exact at every θ anyway.
        order: EFT order of the stored coefficients.
        unweighted: unweight at θ_gen (weights must be positive there).
        seed: the seed; the same seed gives the same EventSet whatever ``n_workers``/``client``.
        n_adapt, n_per_iteration: VEGAS adaptation iterations and evaluations per iteration.
        chunk_size: sampling points per job.
        pdf: PDF for hadronic processes (default: the embedded set).
        systematics: nuisance parameters to attach as per-event weight variations; available:
            ``"mu_f"`` (factorisation scale × 2 / × ½ as the ±1σ variations).
        detector: a Detector, DetectorCard, built-in card name or TOML path: adds ``passed`` and
            reco-level observables (see :func:`sbihep.events.reco.reconstruct`).
        observables: names to compute into ``x`` — at reco level with a detector, else parton level.
        detector_seed: seed of the detector smearing (default: ``seed``).
        max_overweight: unweighting uses the smallest w_max for which the weight above it is at most
            this fraction of σ; those few events keep weight w/w_max > 1 (unbiased). 0 = strict
            unweighting with the largest weight (slow for heavy-tailed weights).
        n_workers, client: passed to :func:`sbihep.parallel.map_jobs` (default: in this process).
        progress: progress bars.

    Every argument is checked before any work starts (integers where counts and seeds are meant, a
    finite θ, known systematics); the output path of a command that saves the result is checked
    with :meth:`EventSet.check_save_path` before calling this.

    Returns:
        :class:`~sbihep.events.eventset.EventSet` with attributes recording the provenance and a
        per-subprocess :class:`GenerationReport` (JSON attribute ``generation``).
    """
    order = check_order(order)
    if not isinstance(process, Process):
        raise InvalidInputError(f"process must be a Process (e.g. sbihep.physics.processes.get_process('ee_mumu')), "
                                f"got {type(process).__name__} {process!r}")
    check_counts(
        ("n_events", n_events, 1),
        ("chunk_size", chunk_size, 1),
        ("seed", seed, 0),
        ("n_adapt", n_adapt, 0),
        ("n_per_iteration", n_per_iteration, 100),
    )
    if detector_seed is not None and (
        isinstance(detector_seed, bool) or not isinstance(detector_seed, numbers.Integral) or detector_seed < 0
    ):
        raise InvalidInputError(f"detector_seed must be a non-negative integer or None, got {detector_seed!r}")
    if isinstance(max_overweight, bool) or not isinstance(max_overweight, numbers.Real) or not 0 <= max_overweight < 1:
        raise InvalidInputError(f"max_overweight must be a number in [0, 1), got {max_overweight!r}")
    if observables is not None and (isinstance(observables, str) or not all(isinstance(o, str) for o in observables)):
        raise InvalidInputError(f"observables must be a list of names, got {observables!r}")
    if observables and detector is None:  # parton level: check the names against the roles before any event
        from sbihep.events.observables import parse

        for name in observables:
            parse(name, process.roles())
    if isinstance(systematics, str):
        raise InvalidInputError(f"systematics must be a tuple of names, got the string {systematics!r}")
    n_events, chunk_size, seed, n_adapt, n_per_iteration = map(int, (n_events, chunk_size, seed, n_adapt, n_per_iteration))
    theta = _parameter_mapping(theta, "theta")  # finite real numbers by name
    unknown = sorted(set(systematics) - set(SYSTEMATICS))
    if unknown:
        raise InvalidInputError(f"unknown systematics {unknown}; available: {sorted(SYSTEMATICS)}")
    muf_factors = tuple(k for name in systematics for k in SYSTEMATICS[name])
    theta_vec = torch.as_tensor(process.parameter_space().to_vector(theta or {}), dtype=torch.float64)  # bounds checked
    theta_m = eft_math.monomials(theta_vec, order).numpy()
    subprocesses = sorted({ch.subprocess for ch in process.channels()})
    default = process.default_subprocess()
    subprocesses.remove(default)
    subprocesses.insert(0, default)

    integrands = [PhaseSpaceIntegrand(process, sqrt_s, order, pdf, subprocess=k) for k in subprocesses]
    maps = [_adapt_map(integ, theta_m, n_adapt, n_per_iteration, seed + 7919 * i) for i, integ in enumerate(integrands)]

    # σ_k at θ_gen from a pilot, to share the events between subprocesses and size the samples
    pilot = [_weighted_chunk(integ, vmap, (seed, k, 10**6), min(n_per_iteration, 20_000)) for k, (integ, vmap) in enumerate(zip(integrands, maps))]
    pilot_w = [p["coefficients"] @ theta_m for p in pilot]
    if unweighted and any((w < 0).any() for w in pilot_w):
        raise InvalidInputError(
            "event weights are negative at the generation point θ_gen (linear-order EFT far from the SM): "
            "cannot unweight; use order='quadratic', a θ_gen closer to the SM, or unweighted=False"
        )
    sigma_est = np.array([w.mean() for w in pilot_w])
    share = _largest_remainder(n_events, sigma_est / sigma_est.sum())

    records, reports = [], []
    for k, (sub, integ, vmap) in enumerate(zip(subprocesses, integrands, maps)):
        if share[k] == 0:
            continue
        if unweighted:
            w_max_pilot = _max_weight(pilot_w[k], max_overweight)
            efficiency = max(float(np.minimum(pilot_w[k] / w_max_pilot, 1.0).mean()), 1e-6)
            # the pilot sees few tail events, so its efficiency is a poor guide: cap the first pass and
            # let _sample_subprocess extend it from the acceptance it measures
            n_points = min(int(math.ceil(1.2 * share[k] / efficiency)), 10 * int(share[k])) + 100
        else:
            n_points = int(share[k])
        record, report = _sample_subprocess(
            sub, k, integ, vmap, theta_m, n_points, int(share[k]), unweighted, seed, chunk_size, n_workers, client, progress,
            muf_factors, max_overweight,
        )
        record["subprocess_index"] = np.full(len(record["coefficients"]), k, dtype=np.int16)
        records.append(_to_roles(process, sub, record, integ.hadronic))
        reports.append(report)

    merged = {key: np.concatenate([r[key] for r in records]) for key in records[0] if key != "roles"}
    roles = records[0]["roles"]
    sigma_coeffs = merged["coefficients"].sum(0)
    attrs = {
        "process": process.name,
        "sqrt_s_gev": float(sqrt_s),
        "pdf": integrands[0].pdf.name if integrands[0].pdf is not None else "",
        "theta_gen": json.dumps({op: float(v) for op, v in zip(process.operators, theta_vec.tolist())}),
        "seed": int(seed),
        "unweighted": int(bool(unweighted)),
        "generation": json.dumps([r.to_dict() for r in reports]),
        "sigma_pb": json.dumps(dict(zip(eft_math.monomial_names(process.operators, order), sigma_coeffs.tolist()))),
    }
    if systematics:
        attrs["nuisances"] = json.dumps({name: [f"{name}_up", f"{name}_down"] for name in systematics})
    events = EventSet.from_arrays(
        momenta=merged["momenta"],
        roles=roles,
        coefficients=merged["coefficients"],
        operators=process.operators,
        order=order,
        subprocess_index=merged["subprocess_index"],
        subprocesses=subprocesses,
        x1=merged.get("x1"),
        x2=merged.get("x2"),
        attrs=attrs,
        variations=merged.get("coefficients_muf"),
        variation_names=[f"{name}_{side}" for name in systematics for side in ("up", "down")],
    )
    if detector is not None:
        from sbihep.events.reco import reconstruct

        return reconstruct(events, detector, list(observables or ()), seed=seed if detector_seed is None else detector_seed, process=process)
    if observables:
        from sbihep.events.reco import parton_observables

        return parton_observables(events, list(observables), process=process)
    return events


def _max_weight(weights: np.ndarray, max_overweight: float) -> float:
    """Smallest w_max whose overweight excess Σ max(0, w_i − w_max) is ≤ max_overweight × Σ w_i."""
    if max_overweight <= 0:
        return float(weights.max())
    w = np.sort(weights)[::-1]
    above = np.cumsum(w)  # Σ of the k+1 largest weights
    k = np.arange(1, len(w) + 1)
    excess = above - k * w  # excess over w_max = w[k-1] of the k largest weights
    allowed = max_overweight * w.sum()
    index = int(np.searchsorted(excess, allowed, side="right")) - 1
    return float(w[max(index, 0)])


def _sample_subprocess(
    sub, k, integ, vmap, theta_m, n_points, n_target, unweighted, seed, chunk_size, n_workers, client, progress,
    muf_factors=(), max_overweight=1e-3,
):
    """Weighted points in chunks (seeded by chunk index), then partial unweighting if asked.

    Unweighting: event i is kept with probability min(1, w_i/w_max) and then carries weight
    ∝ max(w_max, w_i), so the rare events above w_max stay heavier and the sample is unbiased.
    If too few events are kept, further chunks (continuing the chunk numbering) are added and the
    decision is retaken over all points, so the result depends only on the seed.
    """
    chunks: list[dict] = []

    def extend(n_new: int) -> None:
        first = len(chunks)
        sizes = _chunks(n_new, chunk_size)
        jobs = [(integ, vmap, (seed, k, first + i), n, muf_factors) for i, n in enumerate(sizes)]
        chunks.extend(map_jobs(_weighted_chunk, jobs, n_workers=n_workers, client=client, progress=progress, desc=f"events {sub}"))

    extend(n_points)
    while True:
        data = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        n_total = len(data["uniform"])
        data["coefficients"] = data["coefficients"] / n_total
        if "coefficients_muf" in data:
            data["coefficients_muf"] = data["coefficients_muf"] / n_total
        weights = data["coefficients"] @ theta_m
        sigma = float(weights.sum())
        sigma_error = float(weights.std(ddof=1) * math.sqrt(n_total)) if n_total > 1 else float("nan")
        if not unweighted:
            w_max = float(weights.max())
            return data, GenerationReport(sub, sigma, sigma_error, n_total, 0, w_max, float(weights.mean() / w_max), 0.0)
        w_max = _max_weight(weights, max_overweight)
        accepted = np.flatnonzero(data["uniform"] * w_max < weights)
        if len(accepted) >= n_target:
            break
        missing = n_target - len(accepted)
        extend(int(math.ceil(1.2 * missing * n_total / max(len(accepted), 1))) + chunk_size // 10)
    keep = accepted[:n_target]
    out = {key: value[keep] for key, value in data.items() if key != "uniform"}
    carried = np.maximum(weights[keep], w_max)
    rescale = carried * (sigma / carried.sum()) / weights[keep]
    out["coefficients"] = out["coefficients"] * rescale[:, None]
    if "coefficients_muf" in out:
        out["coefficients_muf"] = out["coefficients_muf"] * rescale[:, None, None]
    efficiency = float(np.minimum(weights / w_max, 1.0).mean())
    overweight = float(np.maximum(weights - w_max, 0.0).sum() / sigma)
    report = GenerationReport(sub, sigma, sigma_error, n_total, n_target, w_max, efficiency, overweight)
    return out, report


def _to_roles(process: Process, subprocess: str, record: dict, hadronic: bool) -> dict:
    """Lab-frame momenta with the final state reordered into the default subprocess's role order."""
    momenta = torch.from_numpy(record["momenta"])
    if hadronic:
        momenta = boost_partonic_to_lab(momenta, torch.from_numpy(record["x1"]), torch.from_numpy(record["x2"]))
    canonical = process.roles(process.default_subprocess())[2:]
    own = process.roles(subprocess)[2:]
    if sorted(canonical) != sorted(own):
        raise InvalidInputError(f"{process.name}: subprocess {subprocess!r} has roles {own}, not a permutation of {canonical}")
    order = [0, 1] + [2 + own.index(role) for role in canonical]
    out = dict(record)
    out["momenta"] = momenta[:, order].numpy()
    out["roles"] = ["beam1", "beam2", *canonical]
    return out


def _largest_remainder(n: int, fractions: np.ndarray) -> np.ndarray:
    raw = n * fractions
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: n - counts.sum()]:
        counts[i] += 1
    return counts
