"""Statistics that never mislead: the figures of the fit-robustness issue, one section at a time.

Each section lives in ``benchmarks/fit_robustness/<section>.py`` and exposes ``run(args) -> dict``
(flat keys, units in the key names).  The figures of every section run are merged into
``benchmarks/results/bench_fit_robustness.json``, so sections can be run (and re-run) separately:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_robustness.py --section intervals
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_robustness.py --section all

Sections: see ``SECTIONS`` (a section whose module is missing is reported, not skipped silently).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sections import run_sections  # noqa: E402

#: section name → module under benchmarks/fit_robustness/
SECTIONS = ("intervals", "smefit", "opwb", "onoff", "cls", "pyhf_neyman", "closure", "opwb_posterior")


def main() -> None:
    run_sections(__file__, "fit_robustness", SECTIONS, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
