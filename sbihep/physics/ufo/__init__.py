"""UFO models: reading (model files, restriction cards) and evaluating (Lorentz structures, wavefunctions).

The evaluation engine of this package (one concept per module):

* :mod:`~sbihep.physics.ufo.lorentz_expr` — parse UFO Lorentz structure strings;
* :mod:`~sbihep.physics.ufo.lorentz_compile` — compile them into batched vertex amplitudes and
  off-shell currents;
* :mod:`~sbihep.physics.ufo.wavefunctions` — external wavefunctions, events × helicities;
* :mod:`~sbihep.physics.ufo.propagators` — spin-0, ½ and 1 propagators with fixed widths.
"""

from sbihep.physics.ufo.lorentz_compile import CompiledLorentz, compile_lorentz
from sbihep.physics.ufo.lorentz_expr import LorentzExpression, linear_combination, parse_structure, relabel_legs
from sbihep.physics.ufo.wavefunctions import external_wavefunctions, helicity_values

__all__ = [
    "CompiledLorentz",
    "compile_lorentz",
    "LorentzExpression",
    "parse_structure",
    "linear_combination",
    "relabel_legs",
    "external_wavefunctions",
    "helicity_values",
]
