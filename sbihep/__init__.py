"""sbihep: simulation-based inference and EFT fitting for particle physics.

Data flows one way: ``physics`` (|M|², θ) → ``events`` → ``estimators`` / ``flows`` /
``surrogates`` → ``fit``.  See the package README for the conventions (GeV, pb, Warsaw-basis
operator names as SMEFTsim spells them, c_i/Λ² with Λ = 1 TeV).
"""

from sbihep._version import __version__
from sbihep.errors import (
    ConvergenceError,
    InvalidInputError,
    SbihepError,
    ShapeError,
    ThresholdError,
    UnknownParameterError,
    UnphysicalMomentaError,
)
from sbihep.params import GaussianConstraint, Parameter, ParameterSpace

__all__ = [
    "__version__",
    "SbihepError",
    "InvalidInputError",
    "ShapeError",
    "UnknownParameterError",
    "UnphysicalMomentaError",
    "ThresholdError",
    "ConvergenceError",
    "Parameter",
    "ParameterSpace",
    "GaussianConstraint",
]
