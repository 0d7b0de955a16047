"""Matrix elements for any tree-level UFO process: the figures of issue 20, one section at a time.

Each section lives in ``benchmarks/ufo_amplitudes/<section>.py`` and exposes ``run(args) -> dict`` (flat
keys, units in the key names).  The figures are merged into ``benchmarks/results/bench_ufo_amplitudes.json``:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ufo_amplitudes.py --section reader

The UFO models are read from ``--ufo-dir`` (default ``../shared/data/ufo`` next to the repository).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sections import run_sections  # noqa: E402

#: section name → module under benchmarks/ufo_amplitudes/
SECTIONS = ("reader", "handwritten", "checks", "speed")


def _ufo_dir(ap) -> None:
    ap.add_argument("--ufo-dir", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"))
    ap.add_argument("--points", type=int, default=20, help="phase-space points per process (section checks)")


def main() -> None:
    run_sections(__file__, "ufo_amplitudes", SECTIONS, __doc__.splitlines()[0], _ufo_dir)


if __name__ == "__main__":
    main()
