"""The fault and bad-input suite as a table: cases per entry point and outcome class, and what went wrong.

Runs ``tests/robustness/`` with pytest in a subprocess; the suite's conftest writes one JSON line per case
(its ``@pytest.mark.robustness(entry=..., outcome=...)`` marker and how it ended), so every marked case
counts, whichever file it lives in.  Classes of failure:

* ``silent_wrong``: a case expecting an error or warning where nothing was raised or warned
  (pytest's "DID NOT RAISE" / "DID NOT WARN", or a CLI command that succeeded), or a case expecting the
  correct result whose assertion on the result failed (a wrong number returned without complaint);
* ``raw_tracebacks``: a case that ended in an exception that is not sbihep's (numpy, torch, KeyError…);
* ``misleading_errors``: an sbihep error of the wrong class, or one whose message lacks what the case
  asks it to name, or an sbihep error where the correct result was expected;
* ``data_loss``: any failure of a ``data_safety`` case (kill -9 mid-write, output paths): the previous
  output or a file that was not sbihep's was lost or replaced, or temporaries were left behind.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_robustness.py

writes ``benchmarks/results/bench_robustness.json`` (flat keys, ``robustness_cases_<entry>_<outcome>``
per entry point) and prints the table in markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_results  # noqa: E402

OUTCOMES = ("error", "warning", "correct")
FAILURE_CLASSES = ("silent_wrong", "raw_tracebacks", "misleading_errors", "data_loss")


def key_of(entry: str) -> str:
    """``"EventSet.load"`` → ``"eventset_load"``; ``"sbihep import-lhe"`` → ``"sbihep_import_lhe"``."""
    return re.sub(r"[^0-9a-z]+", "_", entry.lower()).strip("_")


def failure_class(record: dict) -> str | None:
    """Which failure class a case's record falls in (None for a passed or skipped case)."""
    if record["status"] != "failed":
        return None
    if record.get("data_safety"):
        return "data_loss"
    kind = record.get("exception_kind", "other")
    if kind == "did_not":
        return "silent_wrong"
    if kind == "assertion":
        return "silent_wrong" if record["outcome"] == "correct" else "misleading_errors"
    if kind == "sbihep":
        return "misleading_errors"
    return "raw_tracebacks"


def run_suite(records: Path, paths: list[str], extra: list[str]) -> tuple[int, float]:
    env = dict(os.environ, SBIHEP_ROBUSTNESS_RECORDS=str(records), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               MKL_NUM_THREADS=os.environ.get("MKL_NUM_THREADS", "1"),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths, *extra], cwd=ROOT, env=env)
    return proc.returncode, time.perf_counter() - t0


def summarise(records: list[dict]) -> dict:
    run = [r for r in records if r["status"] != "skipped"]
    figures: dict = {
        "robustness_cases": len(run),
        "robustness_skipped": len(records) - len(run),
        "robustness_passed": sum(r["status"] == "passed" for r in run),
    }
    classes = collections.Counter(failure_class(r) for r in run)
    for name in FAILURE_CLASSES:
        figures[f"robustness_{name}"] = classes.get(name, 0)
    for outcome in OUTCOMES:
        figures[f"robustness_cases_{outcome}"] = sum(r["outcome"] == outcome for r in run)
    figures["robustness_cases_data_safety"] = sum(bool(r.get("data_safety")) for r in run)
    per = collections.Counter((r["entry"], r["outcome"]) for r in run)
    for (entry, outcome), n in sorted(per.items()):
        figures[f"robustness_cases_{key_of(entry)}_{outcome}"] = n
    return figures


def table(records: list[dict]) -> str:
    run = [r for r in records if r["status"] != "skipped"]
    entries = sorted({r["entry"] for r in run}, key=str.lower)
    head = "| entry point | error | warning | correct | cases | failed |\n|---|---:|---:|---:|---:|---:|"
    rows = []
    for entry in entries:
        mine = [r for r in run if r["entry"] == entry]
        counts = [sum(r["outcome"] == o for r in mine) for o in OUTCOMES]
        rows.append(f"| `{entry}` | " + " | ".join(str(c) for c in counts) + f" | {len(mine)} | {sum(r['status'] == 'failed' for r in mine)} |")
    totals = [sum(r["outcome"] == o for r in run) for o in OUTCOMES]
    rows.append("| **all** | " + " | ".join(f"**{c}**" for c in totals) + f" | **{len(run)}** | **{sum(r['status'] == 'failed' for r in run)}** |")
    return "\n".join([head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default=None, help="read this JSON-lines file of an earlier run instead of running the suite")
    ap.add_argument("--paths", nargs="*", default=["tests/robustness"], help="what pytest runs (default tests/robustness)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_robustness.json)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    if args.records:
        path, returncode, wall = Path(args.records), None, None
    else:
        path = Path(tempfile.mkstemp(prefix="sbihep-robustness-", suffix=".jsonl")[1])
        path.write_text("")
        returncode, wall = run_suite(path, args.paths, args.pytest_args)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        sys.exit(f"no case records in {path} (pytest exit code {returncode}): did collection fail?")
    figures = summarise(records)
    if wall is not None:
        figures["robustness_suite_wall_s"] = round(wall, 1)
        figures["robustness_pytest_exit_code"] = returncode
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed:
        print(f"FAILED [{failure_class(r)}] {r['nodeid']}: {r.get('exception')}: {r.get('message', '')[:160]}")
    print()
    print(table(records))
    print()
    for key in ("robustness_cases", *(f"robustness_{c}" for c in FAILURE_CLASSES), "robustness_skipped"):
        print(f"{key}: {figures[key]}")
    write_results(args.out or __file__, figures)
    if not args.records:
        path.unlink()


if __name__ == "__main__":
    main()
