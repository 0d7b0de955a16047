"""MadGraph-style parameter cards (SLHA/LHA blocks): read a ``param_card.dat`` or ``restrict_*.dat``.

A card is a sequence of ``Block NAME`` sections whose lines are ``code [code …] value [# comment]``, and
``DECAY pdg width`` lines (optionally followed by branching-ratio lines, which are skipped).  Block names
are case-insensitive (stored lower-case); ``QNUMBERS`` blocks (quantum numbers of new states) are skipped.
"""

from __future__ import annotations

from pathlib import Path

from sbihep.errors import ModelFormatError

__all__ = ["read_card", "parse_card"]


def _number(text: str, where: str) -> float:
    try:
        return float(text.replace("d", "e").replace("D", "e"))
    except ValueError:
        raise ModelFormatError(f"{where}: {text!r} is not a number") from None


def parse_card(text: str, name: str = "<card>") -> dict[tuple[str, tuple[int, ...]], float]:
    """Parse card text into ``{(block, codes): value}`` with ``block`` lower-case (``"decay"`` for widths).

    Raises:
        ModelFormatError: a malformed line (names ``name:line``) or an entry given twice.
    """
    entries: dict[tuple[str, tuple[int, ...]], float] = {}
    block: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{name}:{lineno}"
        words = line.split()
        head = words[0].lower()
        if head == "block":
            if len(words) < 2:
                raise ModelFormatError(f"{where}: 'Block' without a name")
            block = words[1].lower()
            continue
        if head == "decay":
            if len(words) < 3:
                raise ModelFormatError(f"{where}: DECAY line needs a pdg code and a width, got {raw.strip()!r}")
            try:
                pdg = int(words[1])
            except ValueError:
                raise ModelFormatError(f"{where}: {words[1]!r} is not a pdg code") from None
            key = ("decay", (pdg,))
            if key in entries:
                raise ModelFormatError(f"{where}: DECAY {pdg} given twice")
            entries[key] = _number(words[2], where)
            block = "decay-table"  # branching-ratio lines follow
            continue
        if block is None:
            raise ModelFormatError(f"{where}: entry outside any Block: {raw.strip()!r}")
        if block in ("decay-table", "qnumbers"):
            continue
        try:
            codes = tuple(int(w) for w in words[:-1])
        except ValueError:
            raise ModelFormatError(f"{where}: expected 'code … value' in block {block.upper()}, got {raw.strip()!r}") from None
        if not codes:
            raise ModelFormatError(f"{where}: entry without a code in block {block.upper()}: {raw.strip()!r}")
        key = (block, codes)
        if key in entries:
            raise ModelFormatError(f"{where}: entry {block.upper()} {' '.join(map(str, codes))} given twice")
        entries[key] = _number(words[-1], where)
    return entries


def read_card(path: str | Path) -> dict[tuple[str, tuple[int, ...]], float]:
    """Read a card file (see :func:`parse_card`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFormatError(f"card: {path} is not a file")
    return parse_card(path.read_text(errors="replace"), path.name)
