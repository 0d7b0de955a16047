"""The robustness suite's outcome marker and its per-case records.

Every test in ``tests/robustness/`` carries exactly one

    @pytest.mark.robustness(entry="<entry point>", outcome="error" | "warning" | "correct")

either on the test function or on one ``pytest.param`` of its parametrisation: ``entry`` is the public
entry point the case goes through (``"EventSet.load"``, ``"sbihep train"``), ``outcome`` the class the
case asserts — an sbihep error naming the argument/file, a loud warning, or the correct result.  A
test without the marker, with two of them, or with other arguments is a collection error (the suite's
table must count every case once).

Tests that guard data against loss (kill -9 mid-write, ``-o`` paths that must not replace what is
there) carry ``@pytest.mark.data_safety`` as well: a failure of one of them is counted as data loss.

With the environment variable ``SBIHEP_ROBUSTNESS_RECORDS`` set to a path, one JSON line per case is
appended there (entry, outcome, status, the kind of exception a failing case ended with);
``benchmarks/bench_robustness.py`` runs the suite that way and builds its table from the lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

OUTCOMES = ("error", "warning", "correct")
RECORDS_ENV = "SBIHEP_ROBUSTNESS_RECORDS"
HERE = Path(__file__).resolve().parent

_records: dict[str, dict] = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "robustness(entry, outcome): a robustness case — the entry point it exercises and the outcome class it "
        "asserts ('error', 'warning' or 'correct'); counted by benchmarks/bench_robustness.py",
    )
    config.addinivalue_line(
        "markers", "data_safety: a robustness case that guards data against loss (killed writes, output paths)"
    )


def _in_suite(item) -> bool:
    try:
        return Path(str(item.path)).resolve().is_relative_to(HERE)
    except (AttributeError, OSError):
        return False


def robustness_marker(item):
    """The one robustness marker of ``item`` (its entry and outcome), or None."""
    marks = list(item.iter_markers("robustness"))
    return marks[0] if len(marks) == 1 else None


def _problem(item) -> str | None:
    marks = list(item.iter_markers("robustness"))
    if not marks:
        return "has no @pytest.mark.robustness(entry=..., outcome=...)"
    if len(marks) > 1:
        return f"has {len(marks)} robustness markers (one per case)"
    mark = marks[0]
    if mark.args or set(mark.kwargs) != {"entry", "outcome"}:
        return "robustness marker needs exactly the keyword arguments entry= and outcome="
    if not isinstance(mark.kwargs["entry"], str) or not mark.kwargs["entry"].strip():
        return "robustness marker: entry must be a non-empty string"
    if mark.kwargs["outcome"] not in OUTCOMES:
        return f"robustness marker: outcome must be one of {OUTCOMES}, got {mark.kwargs['outcome']!r}"
    return None


def pytest_collection_modifyitems(config, items):
    bad = [f"{item.nodeid}: {problem}" for item in items if _in_suite(item) and (problem := _problem(item))]
    if bad:
        raise pytest.UsageError("robustness cases without a valid outcome marker:\n  " + "\n  ".join(bad))


def _exception_kind(excinfo) -> str:
    """How a failing case ended: 'did_not' (pytest.raises/warns saw nothing), 'assertion', 'sbihep'
    (an sbihep error or warning, of the wrong class or where none was expected), 'skip', or 'other'
    (a raw exception from Python or a dependency)."""
    from sbihep import errors

    exc = excinfo.value
    if isinstance(exc, pytest.skip.Exception):
        return "skip"
    if isinstance(exc, pytest.fail.Exception):
        return "did_not" if str(exc).lstrip().startswith("DID NOT") else "assertion"
    if isinstance(exc, AssertionError):
        return "assertion"
    sbihep_classes = tuple(getattr(errors, name) for name in errors.__all__)
    if isinstance(exc, sbihep_classes):
        return "sbihep"
    return "other"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not os.environ.get(RECORDS_ENV) or not _in_suite(item):
        return
    report = outcome.get_result()
    mark = robustness_marker(item)
    record = _records.setdefault(item.nodeid, {
        "nodeid": item.nodeid,
        "entry": mark.kwargs.get("entry") if mark else None,
        "outcome": mark.kwargs.get("outcome") if mark else None,
        "data_safety": item.get_closest_marker("data_safety") is not None,
        "status": "passed",
    })
    if report.skipped and record["status"] == "passed":
        record["status"] = "skipped"
    elif report.failed and record["status"] != "failed":
        record["status"] = "failed"
        record["phase"] = report.when
        if call.excinfo is not None:
            record["exception"] = f"{call.excinfo.type.__module__}.{call.excinfo.type.__qualname__}"
            record["exception_kind"] = _exception_kind(call.excinfo)
            record["message"] = str(call.excinfo.value)[:300]
    if report.when == "teardown":
        with open(os.environ[RECORDS_ENV], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_records.pop(item.nodeid)) + "\n")
