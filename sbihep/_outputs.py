"""Output paths checked before any work starts, so that no command runs for an hour to fail on its
``-o`` at the end, and no ``-o`` ever deletes or replaces something that is not sbihep's own output.

:func:`check_output` looks at the suffix, the parent folder (exists, is a folder, writable) and what
is already at the path: absent is fine; an existing path is replaced only when it has the kind asked
for (file or directory) and the ``is_ours`` predicate recognises it as an sbihep output of that kind
(e.g. a netCDF/HDF5 file, a zarr store, a training-output directory with its metrics.json); an empty
directory holds nothing to lose and may be replaced as well.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal, Sequence

from sbihep.errors import OutputPathError

__all__ = [
    "check_output",
    "is_netcdf_file",
    "is_zarr_store",
    "is_training_output",
    "is_onnx_surrogate",
]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_netcdf_file(path: Path) -> bool:
    """A regular file that starts like netCDF-4/HDF5 or netCDF classic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head.startswith(_HDF5_MAGIC) or head[:3] == b"CDF"


def is_zarr_store(path: Path) -> bool:
    """A directory with a zarr v2 group (``.zgroup``) or a zarr v3 ``zarr.json``."""
    return path.is_dir() and ((path / ".zgroup").is_file() or (path / "zarr.json").is_file())


def is_training_output(path: Path) -> bool:
    """A directory written by ``sbihep train`` (metrics.json, train.toml and estimator/)."""
    return path.is_dir() and (path / "metrics.json").is_file() and (path / "train.toml").is_file() and (path / "estimator").is_dir()


def is_onnx_surrogate(path: Path) -> bool:
    """A file that carries sbihep surrogate metadata (the bytes ``sbihep.format``)."""
    try:
        return path.is_file() and b"sbihep.format" in path.read_bytes()
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    *,
    kind: Literal["file", "directory"],
    suffixes: Sequence[str] | None = None,
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "output",
    argument: str = "-o/--output",
) -> Path:
    """Check ``path`` as a place to write a ``kind`` (see the module docstring); returns it as a Path.

    Args:
        suffixes: allowed suffixes (``(".nc", ".zarr")``); None: any.
        is_ours: recognises an existing sbihep output of this kind (which may then be replaced);
            None: an existing path of the right kind is never replaced.
        what: what is written, for the messages (``"EventSet file"``).
        argument: the option's name, for the messages.
    Raises:
        OutputPathError: naming ``argument`` and the path (an InvalidInputError).
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise OutputPathError(f"{argument}: need a path for the {what}, got {path!r}")
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{argument}: {str(path)!r} must end in {' or '.join(suffixes)} (the {what}), not {path.suffix or 'no suffix'!r}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputPathError(f"{argument}: the folder {str(parent)!r} for {str(path)!r} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{argument}: {str(parent)!r} (the parent of {str(path)!r}) is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{argument}: the folder {str(parent)!r} is not writable")
    if not (path.exists() or path.is_symlink()):
        return path
    if path.is_symlink():
        raise OutputPathError(f"{argument}: {str(path)!r} is a symbolic link; refusing to replace it (give another path)")
    if kind == "file" and path.is_dir():
        raise OutputPathError(f"{argument}: {str(path)!r} is an existing directory, not a {what}; refusing to replace it")
    if kind == "directory" and not path.is_dir():
        raise OutputPathError(f"{argument}: {str(path)!r} is an existing file, not a directory; refusing to replace it "
                                f"with the {what} (give a new directory name)")
    if kind == "directory" and not any(path.iterdir()):
        return path
    if is_ours is None or not is_ours(path):
        raise OutputPathError(f"{argument}: {str(path)!r} exists and is not an sbihep {what}; refusing to replace it "
                                "(delete it yourself or give another path)")
    if not os.access(path, os.W_OK):
        raise OutputPathError(f"{argument}: {str(path)!r} is read-only")
    return path
