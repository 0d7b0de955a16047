"""Atomic writes: a file or directory appears at its path complete, or not at all.

A write goes to a hidden sibling temporary ``.<name>.sbihep-<host>-<pid>-<uuid>.tmp`` that is moved onto
the target when complete.  An existing directory (a zarr store, an estimator folder) is replaced by
swapping the two in one step where the system can (Linux ``renameat2(RENAME_EXCHANGE)``, ext4, xfs, btrfs,
tmpfs), so the target always holds a complete version; elsewhere the old one is first moved aside to
``.<name>.sbihep-<host>-<pid>-<uuid>.old`` and the new one moved in (two steps: a process killed between
them leaves the target missing until the next write restores it, see below).  A process killed mid-write
(SIGKILL, power loss) cannot clean up, so leftovers are handled by the *next* write to the same target
(:func:`remove_stale_temporaries`, called by :func:`atomic_destination` before the body runs):

* a temporary whose writer is gone — same host and its process id no longer exists — is deleted; a
  temporary of a live process (a concurrent writer) is left alone, as is every name that does not match
  sbihep's own pattern exactly;
* a temporary written on another host (shared file systems) is deleted only when nothing in it changed
  for :data:`FOREIGN_STALE_SECONDS`; one in the pattern of earlier sbihep versions (``.<name>.<uuid>.tmp``,
  no process id) when nothing in it changed for :data:`LEGACY_STALE_SECONDS`;
* a stale ``.old`` directory when the target is missing (the writer died between moving the old version
  aside and moving the new one in) is moved back onto the target — the previous complete output is
  restored rather than deleted.

Temporaries still open when the interpreter exits normally (a write abandoned by a thread) are removed
by an ``atexit`` hook.  :func:`check_output_path` checks an output path before any work starts.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import hashlib
import os
import re
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sbihep.errors import OutputPathError

__all__ = ["atomic_destination", "check_output_path", "remove_stale_temporaries", "FOREIGN_STALE_SECONDS", "LEGACY_STALE_SECONDS"]

#: a temporary written on another host is removed only when unchanged for this long (s).
FOREIGN_STALE_SECONDS = 24 * 3600.0
#: a temporary in the old pattern without a process id is removed only when unchanged for this long (s).
LEGACY_STALE_SECONDS = 3600.0

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_ACTIVE: set[Path] = set()
_LOCK = threading.Lock()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: object = None  # None: not looked up yet; False: unavailable


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where the C library or the file system does not offer it (the caller then falls back
    to two renames); other failures raise OSError.
    """
    global _renameat2
    if _renameat2 is None:
        try:
            function = ctypes.CDLL(None, use_errno=True).renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            function.restype = ctypes.c_int
            _renameat2 = function
        except (AttributeError, OSError, TypeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.sbihep-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}.{suffix}")


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"^\.{re.escape(name)}\.(?:sbihep-(?P<host>[0-9a-f]{{8}})-(?P<pid>[0-9]+)-[0-9a-f]{{32}}|(?P<legacy>[0-9a-f]{{32}}))"
        r"\.(?P<kind>tmp|old)$"
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (owned by someone else) or cannot tell: keep
    return True


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for entry in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
                except OSError:
                    pass
    return newest


def _is_stale(candidate: Path, match: re.Match, now: float) -> bool:
    with _LOCK:
        if candidate in _ACTIVE:
            return False
    if match.group("legacy"):
        return now - _newest_mtime(candidate) > LEGACY_STALE_SECONDS
    if match.group("host") != _HOST:
        return now - _newest_mtime(candidate) > FOREIGN_STALE_SECONDS
    pid = int(match.group("pid"))
    if pid == os.getpid():
        return True  # ours but not in flight: left by an abandoned write of this process
    return not _pid_alive(pid)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that interrupted writes to ``path`` left behind; returns what was removed.

    Only siblings named exactly in sbihep's temporary pattern for ``path`` are considered, and only stale
    ones (see the module docstring) are touched.  When ``path`` is missing and a stale ``.old`` version
    of it exists, the newest such version is moved back to ``path`` instead of being deleted.
    """
    path = Path(path)
    parent = path.parent
    pattern = _pattern(path.name)
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    now = time.time()
    stale: list[tuple[Path, re.Match]] = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and _is_stale(Path(entry.path), match, now):
            stale.append((Path(entry.path), match))
    removed: list[Path] = []
    if not (path.exists() or path.is_symlink()):
        olds = sorted((p for p, m in stale if m.group("kind") == "old"), key=_newest_mtime)
        if olds:
            try:
                os.replace(olds[-1], path)
                stale = [(p, m) for p, m in stale if p != olds[-1]]
            except OSError:
                pass
    for candidate, _ in stale:
        _remove(candidate)
        removed.append(candidate)
    return removed


@atexit.register
def _clean_on_exit() -> None:
    with _LOCK:
        leftovers = list(_ACTIVE)
        _ACTIVE.clear()
    for tmp in leftovers:
        if tmp.name.endswith(".old"):
            continue  # possibly the only copy of the previous output: the next write restores or removes it
        _remove(tmp)


def _describe(path: Path) -> str:
    return "a directory" if path.is_dir() else "a file"


def check_output_path(
    path: str | os.PathLike,
    *,
    kind: str = "file",
    suffixes: Sequence[str] = (),
    is_own: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> Path:
    """Check an output path before any work starts; returns it as a Path.

    Args:
        path: where the output will be written.
        kind: ``"file"`` or ``"directory"``: what will be written there.
        suffixes: allowed endings of the name (e.g. ``(".nc", ".zarr")``); empty = any.
        is_own: for an existing ``path``, whether it is sbihep's own output of this kind (then it may be
            replaced); None = any existing entry of the right kind may be replaced.
        what: how the path is named in messages (e.g. ``"-o"``, ``"path"``).

    Raises:
        OutputPathError: a wrong suffix; a parent folder that is missing, not a folder or not writable;
            an existing entry of the other kind (a directory where a file goes, or a file that a
            directory would replace); an existing entry that ``is_own`` rejects.
    """
    path = Path(path)
    if kind not in ("file", "directory"):
        raise ValueError(f"kind must be 'file' or 'directory', got {kind!r}")
    if suffixes and not any(path.name.endswith(s) for s in suffixes):
        raise OutputPathError(f"{what}: {str(path)!r} must end in {' or '.join(suffixes)}")
    if not path.name or path.name in (".", ".."):
        raise OutputPathError(f"{what}: {str(path)!r} does not name a {kind}")
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"{what}: the folder {str(parent)!r} of {str(path)!r} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{what}: {str(parent)!r} (the parent of {str(path)!r}) is not a folder")
    probe = parent / f".{path.name}.sbihep-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        reason = "is read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else f"cannot be written ({exc.strerror})"
        raise OutputPathError(f"{what}: the folder {str(parent)!r} {reason}, so {str(path)!r} cannot be written") from None
    os.close(fd)
    _remove(probe)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise OutputPathError(f"{what}: {str(path)!r} is an existing directory; a file cannot replace it")
        if kind == "directory" and not path.is_dir():
            raise OutputPathError(
                f"{what}: {str(path)!r} is an existing file; sbihep will not replace a file with a directory"
            )
        if is_own is not None and not is_own(path):
            raise OutputPathError(
                f"{what}: {str(path)!r} exists and is not an output of this kind written by sbihep; "
                "refusing to replace it (remove it yourself or choose another name)"
            )
    return path


@contextmanager
def atomic_destination(path: str | os.PathLike, *, is_own: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path to write to; on success move it onto ``path``.

    Works for files (one atomic ``os.replace``) and directories such as zarr stores (swapped with
    the old directory in one step where the system can, else the old one is moved aside first; the
    old version is then removed).  If the body raises, the temporary is deleted
    and ``path`` is left as it was.  Stale temporaries of earlier, interrupted writes to ``path``
    are removed first (:func:`remove_stale_temporaries`).

    Args:
        path: the target.
        is_own: when given and ``path`` exists, a check that it is sbihep's own output; if not,
            :class:`~sbihep.errors.OutputPathError` is raised before the body runs.

    Raises:
        OutputPathError: the write would replace a directory by a file or a file by a directory, or
            ``is_own`` rejects the existing ``path`` (nothing is replaced in either case).
    """
    path = Path(path)
    remove_stale_temporaries(path)
    if is_own is not None and (path.exists() or path.is_symlink()) and not is_own(path):
        raise OutputPathError(
            f"{str(path)!r} exists and is not an output of this kind written by sbihep; refusing to replace it"
        )
    tmp = _sibling(path, "tmp")
    with _LOCK:
        _ACTIVE.add(tmp)
    try:
        yield tmp
        if path.exists() and not path.is_symlink() and path.is_dir() != tmp.is_dir():
            raise OutputPathError(
                f"{str(path)!r} is {_describe(path)}; sbihep will not replace it with {_describe(tmp)} "
                "(nothing was replaced)"
            )
        if tmp.is_dir() and path.exists() and _exchange(tmp, path):
            pass  # the target holds the new version; tmp the previous one (removed below, or as stale by the next write)
        elif tmp.is_dir() and path.exists():
            old = _sibling(path, "old")
            with _LOCK:
                _ACTIVE.add(old)
            try:
                os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    os.replace(old, path)  # put the previous version back
                    raise
                _remove(old)
            finally:
                with _LOCK:
                    _ACTIVE.discard(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
        with _LOCK:
            _ACTIVE.discard(tmp)
