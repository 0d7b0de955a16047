"""UFO models: read a model directory without executing it, evaluate its parameters and couplings as
functions of the inputs and the Wilson coefficients, specify processes in MadGraph syntax, and
evaluate UFO Lorentz structures on batched wavefunctions.

Reading (one concept per module): :mod:`~sbihep.physics.ufo.objects` (sbihep's UFO object library),
:mod:`~sbihep.physics.ufo.reader` (the ast-based reader), :mod:`~sbihep.physics.ufo.expressions` (safe
expression compiler), :mod:`~sbihep.physics.ufo.cards` (param / restriction cards),
:mod:`~sbihep.physics.ufo.model` (:class:`UFOModel`, :func:`load_ufo`),
:mod:`~sbihep.physics.ufo.process_spec` (:func:`parse_process`).

Evaluating: :mod:`~sbihep.physics.ufo.lorentz_expr` (parse Lorentz structure strings),
:mod:`~sbihep.physics.ufo.lorentz_compile` (batched vertex amplitudes and off-shell currents),
:mod:`~sbihep.physics.ufo.wavefunctions` (external wavefunctions, events × helicities),
:mod:`~sbihep.physics.ufo.propagators` (spin-0, ½ and 1 propagators with fixed widths),
:mod:`~sbihep.physics.ufo.colour` (UFO colour strings as exact SU(3) tensors, colour-network contraction,
colour bases and colour matrices).

Diagrams: :mod:`~sbihep.physics.ufo.interactions` (the model's vertices merged into interactions, with
fermion pairs read from the spinor chains), :mod:`~sbihep.physics.ufo.diagrams` (all tree-level
diagrams of a process under coupling-order constraints, exclusions and required s-channels; fermion
signs; shared subtrees).

Processes: :mod:`~sbihep.physics.ufo.amplitude` (:class:`TreeAmplitude`: the diagrams of one subprocess on
batched wavefunctions, EFT components, colour and helicity sums), :mod:`~sbihep.physics.ufo.generated`
(:func:`generate_process`: any tree-level process as an sbihep Process, cached on disk),
:mod:`~sbihep.physics.ufo.checks` (Lorentz invariance, Ward identities, exact EFT dependence).
"""

from sbihep.physics.ufo.amplitude import TreeAmplitude
from sbihep.physics.ufo.colour import ColourBasis, colour_basis, contract, parse_colour
from sbihep.physics.ufo.diagrams import Diagram, DiagramSet, Line, diagrams_for, generate_diagrams
from sbihep.physics.ufo.interactions import Interaction, InteractionTerm, model_interactions
from sbihep.physics.ufo.generated import GeneratedProcess, generate_process
from sbihep.physics.ufo.lorentz_compile import CompiledLorentz, compile_lorentz
from sbihep.physics.ufo.lorentz_expr import LorentzExpression, linear_combination, parse_structure, relabel_legs
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
from sbihep.physics.ufo.wavefunctions import external_wavefunctions, helicity_values

__all__ = [
    "generate_process",
    "GeneratedProcess",
    "TreeAmplitude",
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
    "CompiledLorentz",
    "compile_lorentz",
    "LorentzExpression",
    "parse_structure",
    "linear_combination",
    "relabel_legs",
    "external_wavefunctions",
    "helicity_values",
    "parse_colour",
    "contract",
    "colour_basis",
    "ColourBasis",
    "Interaction",
    "InteractionTerm",
    "model_interactions",
    "Line",
    "Diagram",
    "DiagramSet",
    "generate_diagrams",
    "diagrams_for",
]
