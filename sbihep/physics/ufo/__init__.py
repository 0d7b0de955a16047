"""UFO models: read a model directory without executing it, evaluate its parameters and couplings as
functions of the inputs and the Wilson coefficients, and specify processes in MadGraph syntax.

Modules: :mod:`~sbihep.physics.ufo.objects` (sbihep's UFO object library), :mod:`~sbihep.physics.ufo.reader`
(the ast-based reader), :mod:`~sbihep.physics.ufo.expressions` (safe expression compiler),
:mod:`~sbihep.physics.ufo.cards` (param / restriction cards), :mod:`~sbihep.physics.ufo.model`
(:class:`UFOModel`, :func:`load_ufo`), :mod:`~sbihep.physics.ufo.process_spec` (:func:`parse_process`).
"""

from sbihep.physics.ufo.model import CouplingDecomposition, ModelValues, UFOModel, load_ufo
from sbihep.physics.ufo.process_spec import (
    DecayChain,
    OrderConstraint,
    ProcessNode,
    ProcessSpec,
    Subprocess,
    default_multiparticles,
    parse_process,
)

__all__ = [
    "load_ufo",
    "UFOModel",
    "ModelValues",
    "CouplingDecomposition",
    "parse_process",
    "ProcessSpec",
    "ProcessNode",
    "Subprocess",
    "DecayChain",
    "OrderConstraint",
    "default_multiparticles",
]
