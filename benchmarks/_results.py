"""Shared by the benchmark scripts: write their figures to benchmarks/results/<script>.json atomically."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(script_or_path: str, figures: dict, *, merge: bool = False) -> Path:
    """Write ``figures`` (flat keys with units in their names) to results/<script stem>.json, or to
    the given ``.json`` path; with ``merge`` the keys update those already in the file (runs over
    different cases accumulate)."""
    from sbihep._atomic import atomic_destination

    given = Path(script_or_path)
    path = given if given.suffix == ".json" else RESULTS_DIR / f"{given.stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if merge and path.exists():
        figures = {**json.loads(path.read_text()), **figures}
    with atomic_destination(path) as tmp:
        tmp.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return path
