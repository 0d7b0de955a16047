"""The one exception hierarchy of sbihep.

Every error raised for bad input names the argument and what was wrong with it.  The classes
subclass the built-in exception a caller would naturally catch (``ValueError`` for bad input,
``RuntimeError`` for a computation that failed), so ``except ValueError`` keeps working.
"""

__all__ = [
    "SbihepError",
    "InvalidInputError",
    "ShapeError",
    "UnknownParameterError",
    "OutOfBoundsError",
    "UnphysicalMomentaError",
    "ThresholdError",
    "ConvergenceError",
    "DataFormatError",
    "ExtrapolationWarning",
    "ToyPoolWarning",
    "ClosureWarning",
    "PosteriorWarning",
    "IntegrityError",
    "OutputPathError",
    "IntegrityWarning",
    "PDFExtrapolationWarning",
    "GridResolutionWarning",
    "PrecisionWarning",
    "ModelFormatError",
    "UnsafeModelError",
    "NonlinearCouplingWarning",
    "UnsupportedProcessError",
    "SurrogateValidationWarning",
    "CoverageWarning",
    "NoDiagramWarning",
]


class SbihepError(Exception):
    """Base class of every error sbihep raises on purpose."""


class InvalidInputError(SbihepError, ValueError):
    """An argument has a value the function cannot use."""


class ShapeError(InvalidInputError):
    """A tensor or array argument has the wrong shape or dtype."""


class UnknownParameterError(InvalidInputError):
    """A parameter or operator name that the parameter space / process does not know."""


class OutOfBoundsError(InvalidInputError):
    """A parameter value lies outside its declared bounds."""


class UnphysicalMomentaError(InvalidInputError):
    """Momenta that are not finite, have negative energy, or are far off their mass shell."""


class ThresholdError(InvalidInputError):
    """A collision energy below the production threshold of the requested final state."""


class DataFormatError(InvalidInputError):
    """A file whose contents do not follow the format it claims (e.g. a broken PDF grid)."""


class IntegrityError(DataFormatError):
    """A file whose arrays no longer match the content hash recorded when sbihep wrote it (corrupted or edited)."""


class OutputPathError(InvalidInputError):
    """An output path that cannot be written (missing parent, read-only, wrong kind or suffix), or that holds
    something sbihep did not write and so will not replace."""


class ConvergenceError(SbihepError, RuntimeError):
    """A numerical procedure (fit, root finding, integration) did not converge."""


class ExtrapolationWarning(UserWarning):
    """A learned object is evaluated outside the range it was trained on."""


class ToyPoolWarning(UserWarning):
    """Toy or Asimov data (or a model's σ) drawn from a finite simulated pool carry a Monte Carlo
    uncertainty that is not small against the statistical one."""


class ClosureWarning(UserWarning):
    """A closure check found a learned likelihood biased (or overconfident) against the truth."""


class PosteriorWarning(UserWarning):
    """A posterior sample that may not represent the posterior: independently started chains disagree
    (R̂ above threshold), a basin of the likelihood was never visited, or mode masses that the sampler
    could not establish by moving between modes."""


class IntegrityWarning(UserWarning):
    """A file was loaded without checking its content (it predates content hashes, or verification was skipped)."""


class PDFExtrapolationWarning(ExtrapolationWarning):
    """A PDF is evaluated outside its grid (x below x_min, Q outside [Q_min, Q_max]): the values are frozen at the edge."""


class GridResolutionWarning(UserWarning):
    """A contour read off a grid whose spacing cannot resolve it to the requested accuracy."""


class PrecisionWarning(UserWarning):
    """A result computed in lower precision than the float64 sbihep promises (e.g. a dependency that forces complex64)."""


class ModelFormatError(DataFormatError):
    """A UFO model directory (or a restriction / param card) that sbihep cannot read: a construct outside
    what UFO files use (the message names file:line), a missing file, or an inconsistent object."""


class UnsafeModelError(ModelFormatError):
    """A UFO model file that asks for something a model file has no business doing (importing ``os``,
    calling ``__import__``, attribute access outside the model's own modules …); it is refused unexecuted."""


class NonlinearCouplingWarning(UserWarning):
    """A UFO coupling (or internal parameter) that is not linear in the chosen Wilson coefficients: its
    decomposition c₀ + Σ θᵢ cᵢ does not reproduce its value at θ = eᵢ + eⱼ."""


class UnsupportedProcessError(InvalidInputError):
    """A process that sbihep's diagram generator or amplitude engine does not handle (e.g. one whose
    diagrams need a Majorana fermion); the message names the process and what is missing."""


class SurrogateValidationWarning(UserWarning):
    """A likelihood surrogate was written although its validation missed a target (|Δt| ≥ 0.1 where
    t < 10, no validation point where t < 10, or t < −0.01 on the check grid); its metadata says
    ``passed: false`` and lists the failures."""


class CoverageWarning(UserWarning):
    """A Neyman construction cannot give its confidence level at some belt node: fits that failed
    and probability left out of an exact lattice (both counted as rejected) leave less than cl to
    accept there, so that node's coverage is below cl."""


class NoDiagramWarning(UserWarning):
    """An operator kept as θ of a generated process enters none of its diagrams, so its coefficients are
    exactly zero — usually coupling orders that exclude its vertices."""
