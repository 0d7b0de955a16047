"""kill -9 during every kind of write sbihep does (see ``_writers.py`` for the kinds and kill points).

For each writer kind a child process writes a new version of the target and receives SIGKILL mid-write.
Then: the previous version (if there was one) is still at the target, complete, and loads with its
integrity checks on; without a previous version, nothing is at the target; and the next write to the same
target removes the killed write's temporaries and leaves exactly the new version.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _writers import KINDS  # noqa: E402

from sbihep._atomic import remove_stale_temporaries  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).resolve().parent / "_writers.py"


def _cases():
    for kind, (_, is_dir, _, _) in KINDS.items():
        modes = ["body", "swap", "body-fresh"] + (["aside"] if is_dir else [])
        for mode in modes:
            yield pytest.param(kind, mode, id=f"{kind}-{mode}",
                               marks=[pytest.mark.robustness(entry=f"kill -9: {kind}", outcome="correct"), pytest.mark.data_safety])


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def _kill_mid_write(kind: str, target: Path, mode: str, version: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(WRITER), kind, str(target), mode.removesuffix("-fresh"), str(version)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=target.parent)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline().strip() if ready else b"(no answer in 300 s)"
        if line != b"ready":
            proc.kill()
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the writer did not reach its kill point: {line!r}\n{err.decode()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kind, mode", list(_cases()))
def test_kill_9_mid_write_keeps_the_previous_version(kind, mode, tmp_path):
    name, is_dir, write, load = KINDS[kind]
    target = tmp_path / name
    fresh = mode == "body-fresh"
    before = None
    if not fresh:
        write(target, 1)
        before = load(target)
    _kill_mid_write(kind, target, mode, 2)
    assert any(".sbihep-" in s for s in _siblings(target)), "the kill left no temporary: it did not hit mid-write"
    if fresh:
        assert not (target.exists() or target.is_symlink()), "a partial target exists after the kill"
    elif mode == "aside":
        # killed between the two renames: the previous version waits beside the target and comes back
        assert not target.exists()
        remove_stale_temporaries(target)
        assert load(target) == before
    else:
        assert load(target) == before, "the previous version changed"
    write(target, 3)
    assert _siblings(target) == [], "the next write left the killed write's temporaries"
    after = load(target)
    assert after != before
    assert target.is_dir() == is_dir
