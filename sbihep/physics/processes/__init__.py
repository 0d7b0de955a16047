"""The processes sbihep ships, one per module, and a registry by name.

>>> from sbihep.physics.processes import get_process, available_processes
>>> proc = get_process("ee_mumu")
"""

from __future__ import annotations

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics.processes.base import Amplitudes, EFTDecomposition, PartonicChannel, Process
from sbihep.physics.processes.ee_mumu import EEToMuMu
from sbihep.physics.processes.ttbar import TTbar
from sbihep.physics.processes.w_lv import WToLNu
from sbihep.physics.processes.wh_lvbb import QQbarToWH, WHToLNuBB

__all__ = [
    "Amplitudes",
    "EFTDecomposition",
    "PartonicChannel",
    "Process",
    "EEToMuMu",
    "WToLNu",
    "WHToLNuBB",
    "QQbarToWH",
    "TTbar",
    "PROCESSES",
    "available_processes",
    "get_process",
]

#: name → Process subclass, for the CLI and configuration files.
PROCESSES: dict[str, type[Process]] = {cls.name: cls for cls in (EEToMuMu, WToLNu, WHToLNuBB, QQbarToWH, TTbar)}


def available_processes() -> dict[str, str]:
    """name → one-line description of every registered process."""
    return {name: cls.description for name, cls in PROCESSES.items()}


def get_process(name: str, **options) -> Process:
    """Instantiate a registered process by name, passing ``options`` to its constructor."""
    try:
        cls = PROCESSES[name]
    except KeyError:
        raise UnknownParameterError(f"unknown process {name!r}; available: {sorted(PROCESSES)}") from None
    import inspect

    from sbihep._toml import did_you_mean

    try:
        inspect.signature(cls).bind(**options)
    except TypeError:
        allowed = [n for n, p in inspect.signature(cls).parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = [k for k in options if k not in allowed]
        name0 = unknown[0] if unknown else next(iter(options), "")
        raise InvalidInputError(f"process {name!r}: unknown option {name0!r}{did_you_mean(name0, allowed)}; "
                                f"it takes {allowed or 'no options'}") from None
    return cls(**options)
