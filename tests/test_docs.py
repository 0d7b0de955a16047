"""The documentation site builds without warnings, and the pages that list things list all of them.

``mkdocs build --strict`` fails on any warning: a broken link, a page missing from the nav, an API
reference (``::: sbihep.module``) that mkdocstrings cannot resolve or a docstring it cannot parse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "WARNING" not in log, log[-5000:]
    return out


def test_site_builds_strict_with_api_reference(site):
    assert (site / "index.html").is_file()
    fit_page = (site / "reference" / "fit" / "index.html").read_text()
    for anchor in ("sbihep.fit.scan.profile_scan", "sbihep.fit.minimize.minimize", "sbihep.fit.neyman.neyman_belt"):
        assert f'id="{anchor}"' in fit_page, anchor
    estimators_page = (site / "reference" / "estimators" / "index.html").read_text()
    assert 'id="sbihep.estimators.ratio.RatioEstimator"' in estimators_page
    for page in ("core", "physics", "events", "surrogates"):
        assert (site / "reference" / page / "index.html").is_file()


def test_every_referenced_module_exists():
    import importlib

    for page in (DOCS / "reference").glob("*.md"):
        for module in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            importlib.import_module(module)


def test_cli_page_documents_every_command_and_option():
    import typer

    from sbihep.cli import app

    text = (DOCS / "guide" / "cli.md").read_text()
    sections = dict(re.findall(r"^## (sbihep[\w -]*)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))

    def walk(command: click.Command, path: str) -> None:
        if hasattr(command, "commands"):  # a group (typer may ship its own click, so no isinstance)
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            if path != "sbihep":
                return
        assert path in sections, f"docs/guide/cli.md has no section '## {path}'"
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--") and o != "--help"]
            for opt in longs[:1]:
                assert opt in sections[path], f"'{path}' does not document {opt}"

    root = typer.main.get_command(app)
    assert {"fit", "train", "import-lhe", "surrogate"} <= set(root.commands)
    walk(root, "sbihep")


def test_conventions_and_process_tables_are_complete():
    import sbihep.errors
    from sbihep.physics.processes import PROCESSES

    conventions = (DOCS / "conventions.md").read_text()
    for name in sbihep.errors.__all__:
        assert f"| `{name}` |" in conventions, f"conventions.md: error class {name} missing from the table"
    processes = (DOCS / "guide" / "processes.md").read_text()
    for name, cls in PROCESSES.items():
        row = next((line for line in processes.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"processes.md: process {name} missing from the table"
        for op in cls.operators:
            assert f"`{op}`" in row, f"processes.md: operator {op} of {name} missing"
