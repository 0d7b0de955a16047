"""Shared by the benchmark scripts made of sections: ``benchmarks/<package>/<section>.py`` each exposing
``run(args) -> dict`` (flat keys, units in the key names), merged into results/<script>.json."""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Sequence

from _results import write_results


def run_sections(script: str, package: str, sections: Sequence[str], description: str,
                 add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> dict:
    """Parse ``--section`` (repeatable, or ``all``), ``--quick``, ``--workers``, ``--out`` (and the
    script's own options from ``add_arguments``), run the chosen sections in order, print their
    figures and merge them into the script's results JSON.  Returns the figures of this run."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--section", action="append", choices=(*sections, "all"), required=True,
                    help="section(s) to run; repeat the flag or give 'all'")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (figures not for RESULTS)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<script>.json)")
    if add_arguments is not None:
        add_arguments(ap)
    args = ap.parse_args()
    chosen = tuple(sections) if "all" in args.section else tuple(dict.fromkeys(args.section))
    figures: dict = {}
    for name in chosen:
        module = importlib.import_module(f"{package}.{name}")
        t0 = time.perf_counter()
        result = module.run(args)
        result[f"{name}_wall_s"] = round(time.perf_counter() - t0, 2)
        for key, value in result.items():
            print(f"{key}: {value}")
        figures.update(result)
    write_results(args.out or script, figures, merge=True)
    return figures
