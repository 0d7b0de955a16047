"""Matrix elements for any tree-level UFO process: the figures of issue 20, one section at a time.

Each section lives in ``benchmarks/ufo_amplitudes/<section>.py`` and exposes ``run(args) -> dict`` (flat
keys, units in the key names).  The figures are merged into ``benchmarks/results/bench_ufo_amplitudes.json``:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ufo_amplitudes.py --section reader

The UFO models are read from ``--ufo-dir`` (default ``../shared/data/ufo`` next to the repository).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_results  # noqa: E402

#: section name → module under benchmarks/ufo_amplitudes/
SECTIONS = ("reader",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", action="append", choices=(*SECTIONS, "all"), required=True,
                    help="section(s) to run; repeat the flag or give 'all'")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (figures not for RESULTS)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ufo-dir", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"))
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_ufo_amplitudes.json)")
    args = ap.parse_args()
    sections = SECTIONS if "all" in args.section else tuple(dict.fromkeys(args.section))
    figures: dict = {}
    for name in sections:
        module = importlib.import_module(f"ufo_amplitudes.{name}")
        t0 = time.perf_counter()
        result = module.run(args)
        result[f"{name}_wall_s"] = round(time.perf_counter() - t0, 2)
        for key, value in result.items():
            print(f"{key}: {value}")
        figures.update(result)
    write_results(args.out or __file__, figures, merge=True)


if __name__ == "__main__":
    main()
