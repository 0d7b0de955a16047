"""Reading TOML cards given either as a file path or as the TOML text itself, and checking their tables.

Which is which (a card *path* containing ``=`` used to be parsed as TOML text):

* a ``Path``, a ``str`` naming an existing file, or a ``str`` ending in ``.toml`` is a **path**;
* :class:`TomlText` (a ``str`` subclass) or a ``str`` with a newline that names no file is **TOML text**;
* any other ``str`` (one line, not ``.toml``, no such file) is a path, reported as missing with a hint
  on how to pass text.

:func:`check_table` checks one table against a schema: unknown keys are errors with a did-you-mean
(difflib), and every value must have the schema's type (booleans are never numbers).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path

from sbihep.errors import DataFormatError, InvalidInputError

__all__ = ["TomlText", "read_toml", "is_toml_path", "check_table", "did_you_mean"]


class TomlText(str):
    """Marks a string as TOML text (never a path), e.g. ``SimulationCard.from_toml(TomlText('process = "ee_mumu"'))``."""


def is_toml_path(source) -> bool:
    """Whether :func:`read_toml` reads ``source`` as a file path (see the module docstring)."""
    if isinstance(source, TomlText):
        return False
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str):
        return False
    try:
        if Path(source).is_file():
            return True
    except (OSError, ValueError):  # a very long TOML text or one with NUL bytes is no valid path
        pass
    return source.rstrip().lower().endswith(".toml") or "\n" not in source


def read_toml(source: str | Path, what: str) -> tuple[dict, str]:
    """Parse a TOML card; returns (table, where) with ``where`` naming the file or ``what``.

    Missing files raise InvalidInputError, invalid TOML (and non-UTF-8 files) DataFormatError.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidInputError(f"{what} must be a path or TOML text, got {type(source).__name__}")
    if is_toml_path(source):
        path = Path(source)
        if not path.is_file():
            hint = "" if str(path).lower().endswith(".toml") else " (to pass TOML text, use a multi-line string or sbihep._toml.TomlText)"
            raise InvalidInputError(f"{what}: no such file {str(path)!r}{hint}")
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{path}: {what} is not UTF-8 text ({exc})") from exc
        except OSError as exc:
            raise InvalidInputError(f"{what}: cannot read {str(path)!r} ({exc.strerror or exc})") from exc
    else:
        text, where = str(source), what
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as exc:
        raise DataFormatError(f"{where} is not valid TOML: {exc}") from exc


def did_you_mean(name: str, allowed, n: int = 1) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name (up to ``n`` of them, closest first), or
    ``""`` (case-insensitive: ``cLL`` → ``cll``)."""
    lowered: dict[str, str] = {}
    for a in allowed:
        lowered.setdefault(str(a).lower(), str(a))
    key = str(name).lower()
    if key in lowered and lowered[key] != str(name):
        return f" (did you mean {lowered[key]!r}?)"
    close = difflib.get_close_matches(key, list(lowered), n=n, cutoff=0.6)
    return f" (did you mean {', '.join(repr(lowered[c]) for c in close)}?)" if close else ""


def _type_name(expected) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return expected.__name__


def check_table(table: dict, schema: dict, where: str) -> None:
    """Every key of ``table`` must be in ``schema`` (key → type or tuple of types) with a value of that type.

    Raises:
        InvalidInputError: naming the key, with a did-you-mean for unknown keys.
    """
    if not isinstance(table, dict):
        raise InvalidInputError(f"{where} must be a table, got {type(table).__name__} {table!r}")
    for key, value in table.items():
        if key not in schema:
            raise InvalidInputError(f"{where}: unknown key {key!r}{did_you_mean(key, schema)}; allowed: {sorted(schema)}")
        expected = schema[key]
        if isinstance(value, bool) and not (expected is bool or isinstance(expected, tuple) and bool in expected):
            raise InvalidInputError(f"{where}: {key!r} must be {_type_name(expected)}, got a boolean")
        if not isinstance(value, expected):
            raise InvalidInputError(f"{where}: {key!r} must be {_type_name(expected)}, got {type(value).__name__} {value!r}")
