"""Event generation for pp → W±H → eν b b̄ at 13 TeV with the default detector card.

Figures: weighted and unweighted events per second (end to end: VEGAS adaptation, sampling, exact EFT
coefficients for cHW, cHWtil, cHq3, μ_F variations, detector, 7 observables) with one worker and with
two worker processes; unweighting efficiency without VEGAS adaptation and after it; memory and disk
per event of the resulting EventSet. Torch is pinned to one thread per process.

Usage:  python benchmarks/bench_events.py [--n-unweighted 20000] [--n-weighted 200000]
Writes benchmarks/results/bench_events.json (flat keys with units).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from _results import write_results

import torch

from sbihep.events.generate import generate
from sbihep.physics.processes import get_process

OBSERVABLES = ["pt(l)", "eta(l)", "pt(met)", "mT(l,met)", "m(b,bbar)", "pt(b+bbar)", "phi_helicity(l,met;b,bbar)"]


def timed_generation(n: int, unweighted: bool, n_workers: int, n_adapt: int = 8):
    process = get_process("wh_lvbb")
    start = time.perf_counter()
    events = generate(
        process, 13000.0, n, unweighted=unweighted, seed=1, n_adapt=n_adapt, systematics=("mu_f",),
        detector="default", observables=OBSERVABLES, n_workers=n_workers, progress=False,
    )
    return events, time.perf_counter() - start


def efficiency(events) -> float:
    """σ-weighted mean of the per-subprocess unweighting efficiencies ⟨min(1, w/w_max)⟩."""
    reports = json.loads(events.data.attrs["generation"])
    return sum(r["efficiency"] * r["sigma_pb"] for r in reports) / sum(r["sigma_pb"] for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-unweighted", type=int, default=20_000)
    parser.add_argument("--n-weighted", type=int, default=200_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures: dict[str, float | str] = {
        "machine": f"{platform.node()} {platform.machine()} ({os.cpu_count()} cores), torch threads 1",
    }
    for workers in (1, 2):
        events, seconds = timed_generation(args.n_weighted, False, workers)
        figures[f"wh_weighted_events_per_s_{workers}workers"] = round(len(events) / seconds, 1)
        events, seconds = timed_generation(args.n_unweighted, True, workers)
        figures[f"wh_unweighted_events_per_s_{workers}workers"] = round(len(events) / seconds, 1)
        print(f"{workers} worker(s): weighted {figures[f'wh_weighted_events_per_s_{workers}workers']:.4g}/s, "
              f"unweighted {figures[f'wh_unweighted_events_per_s_{workers}workers']:.4g}/s")
    # at equal sample size: the unweighting efficiency of heavy-tailed weights falls as N grows
    for n_adapt in (0, 8):
        sample, _ = timed_generation(5000, True, 1, n_adapt=n_adapt)
        figures[f"wh_unweighting_efficiency_adapt{n_adapt}_5000events"] = round(efficiency(sample), 4)
    print(f"unweighting efficiency (5000 events): {figures['wh_unweighting_efficiency_adapt0_5000events']:.2%} without "
          f"VEGAS adaptation, {figures['wh_unweighting_efficiency_adapt8_5000events']:.2%} after 8 iterations")
    figures["eventset_bytes_per_event_in_memory"] = round(events.data.nbytes / len(events), 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = events.save(Path(tmp) / "events.nc")
        figures["eventset_bytes_per_event_netcdf"] = round(path.stat().st_size / len(events), 1)
    print(f"EventSet: {figures['eventset_bytes_per_event_in_memory']:.0f} bytes/event in memory, "
          f"{figures['eventset_bytes_per_event_netcdf']:.0f} bytes/event as netCDF")
    write_results(__file__, figures)


if __name__ == "__main__":
    main()
