"""Statistics that never mislead: the figures of the fit-robustness issue, one section at a time.

Each section lives in ``benchmarks/fit_robustness/<section>.py`` and exposes ``run(args) -> dict``
(flat keys, units in the key names).  The figures of every section run are merged into
``benchmarks/results/bench_fit_robustness.json``, so sections can be run (and re-run) separately:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_robustness.py --section intervals
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_robustness.py --section all

Sections: see ``SECTIONS`` (a section whose module is missing is reported, not skipped silently).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_results  # noqa: E402

#: section name → module under benchmarks/fit_robustness/
SECTIONS = ("intervals", "smefit", "opwb", "onoff", "cls", "pyhf_neyman", "closure", "opwb_posterior")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", action="append", choices=(*SECTIONS, "all"), required=True,
                    help="section(s) to run; repeat the flag or give 'all'")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (figures not for RESULTS)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_fit_robustness.json)")
    args = ap.parse_args()
    sections = SECTIONS if "all" in args.section else tuple(dict.fromkeys(args.section))
    figures: dict = {}
    for name in sections:
        module = importlib.import_module(f"fit_robustness.{name}")
        t0 = time.perf_counter()
        result = module.run(args)
        result[f"{name}_wall_s"] = round(time.perf_counter() - t0, 2)
        for key, value in result.items():
            print(f"{key}: {value}")
        figures.update(result)
    write_results(args.out or __file__, figures, merge=True)


if __name__ == "__main__":
    main()
