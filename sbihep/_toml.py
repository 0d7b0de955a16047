"""Reading TOML cards given either as a file path or as the TOML text itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sbihep.errors import DataFormatError, InvalidInputError

__all__ = ["read_toml"]


def read_toml(source: str | Path, what: str) -> tuple[dict, str]:
    """Parse a TOML card; returns (table, where) with ``where`` naming the file or ``what``.

    A ``Path``, or a ``str`` with neither a newline nor an ``=``, is a file path; any other ``str``
    is the TOML text.  Missing files raise InvalidInputError, invalid TOML DataFormatError.
    """
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and "=" not in source):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"{what}: no such file {str(path)!r}")
        text, where = path.read_text(encoding="utf-8"), str(path)
    elif isinstance(source, str):
        text, where = source, what
    else:
        raise InvalidInputError(f"{what} must be a path or TOML text, got {type(source).__name__}")
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as exc:
        raise DataFormatError(f"{where} is not valid TOML: {exc}") from exc
