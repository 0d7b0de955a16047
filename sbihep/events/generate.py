"""Event generation: VEGAS-adapted importance sampling, unweighting, exact EFT weights per event.

For each subprocess of a process (e.g. W⁺ and W⁻, whose final states differ):

1. adapt a VEGAS map (``vegas`` package, Lepage 1978) to the event weight at the generation point
   θ_gen, seeded so that it is reproducible;
2. sample that map with our own random numbers in chunks, every chunk seeded from
   (seed, subprocess, chunk) — so the events are identical whether the chunks run in this process,
   in local worker processes or on a dask cluster (:mod:`sbihep.parallel`);
3. weighted mode: event i gets coefficients c_i = jac_i · f_i / N (pb), f the packed EFT integrand
   of :class:`~sbihep.physics.xsec.PhaseSpaceIntegrand`, so that w_i(θ) = c_i·m(θ) for every θ;
4. unweighted mode: accept event i with probability w_i(θ_gen)/w_max, w_max the largest weight of
   the weighted sample, and rescale the survivors' coefficients so that each has weight σ_k/n_k at
   θ_gen — their weights at any other θ stay exact (reweighting).

Subprocesses contribute n_k ∝ σ_k(θ_gen) unweighted events.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from sbihep.errors import InvalidInputError
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.parallel import map_jobs
from sbihep.physics.phasespace import boost_partonic_to_lab
from sbihep.physics.processes.base import EFTOrder, Process, check_order
from sbihep.physics.xsec import PhaseSpaceIntegrand

__all__ = ["generate", "GenerationReport"]


@dataclass
class GenerationReport:
    """What happened while generating one subprocess."""

    subprocess: str
    sigma_pb: float
    sigma_error_pb: float
    n_weighted: int
    n_unweighted: int
    max_weight_pb: float
    efficiency: float  # ⟨w⟩ / w_max: accepted fraction of weighted events

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _weighted_chunk(integrand: PhaseSpaceIntegrand, vegas_map, seed: tuple[int, ...], n_points: int) -> dict:
    """Sample ``n_points`` from the VEGAS map; returns numpy arrays (module-level: picklable job)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    y = rng.random((n_points, integrand.dim))
    x = np.empty_like(y)
    jac = np.empty(n_points)
    vegas_map.map(y, x, jac)
    np.clip(x, 0.0, 1.0, out=x)
    with torch.no_grad():
        record = integrand.events(torch.from_numpy(x))
    out = {key: value.numpy() for key, value in record.items()}
    out["coefficients"] = out["coefficients"] * jac[:, None]
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
        n_workers, client: passed to :func:`sbihep.parallel.map_jobs` (default: in this process).
        progress: progress bars.
    Returns:
        :class:`~sbihep.events.eventset.EventSet` with attributes recording the provenance and a
        per-subprocess :class:`GenerationReport` (JSON attribute ``generation``).
    """
    order = check_order(order)
    if int(n_events) != n_events or n_events < 1:
        raise InvalidInputError(f"n_events must be a positive integer, got {n_events!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
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
            efficiency = max(float(pilot_w[k].mean() / pilot_w[k].max()), 1e-6)
            n_points = int(math.ceil(1.3 * share[k] / efficiency)) + 100
        else:
            n_points = int(share[k])
        record, report = _sample_subprocess(
            sub, k, integ, vmap, theta_m, n_points, int(share[k]), unweighted, seed, chunk_size, n_workers, client, progress
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
    return EventSet.from_arrays(
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
    )


def _sample_subprocess(sub, k, integ, vmap, theta_m, n_points, n_target, unweighted, seed, chunk_size, n_workers, client, progress):
    jobs = [(integ, vmap, (seed, k, i), n) for i, n in enumerate(_chunks(n_points, chunk_size))]
    chunks = map_jobs(_weighted_chunk, jobs, n_workers=n_workers, client=client, progress=progress, desc=f"events {sub}")
    data = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    n_total = len(data["uniform"])
    data["coefficients"] = data["coefficients"] / n_total
    weights = data["coefficients"] @ theta_m
    sigma = float(weights.sum())
    sigma_error = float(weights.std(ddof=1) * math.sqrt(n_total)) if n_total > 1 else float("nan")
    w_max = float(weights.max())
    if not unweighted:
        report = GenerationReport(sub, sigma, sigma_error, n_total, 0, w_max, float(weights.mean() / w_max))
        return data, report
    accepted = np.flatnonzero(data["uniform"] * w_max < weights)
    if len(accepted) < n_target:
        more = int(math.ceil((n_target - len(accepted)) * 1.3 * n_total / max(len(accepted), 1))) + 100
        extra_seed = seed + 104729 * (len(accepted) + 1)
        return _sample_subprocess(sub, k, integ, vmap, theta_m, n_points + more, n_target, True, extra_seed, chunk_size, n_workers, client, progress)
    keep = accepted[:n_target]
    out = {key: value[keep] for key, value in data.items() if key != "uniform"}
    target_weight = sigma / n_target
    out["coefficients"] = out["coefficients"] * (target_weight / weights[keep])[:, None]
    report = GenerationReport(sub, sigma, sigma_error, n_total, n_target, w_max, float(weights.mean() / w_max))
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
