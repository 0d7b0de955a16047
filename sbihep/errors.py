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
    "IntegrityError",
    "ExtrapolationWarning",
    "UnverifiedFileWarning",
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
    """A file whose content no longer matches the content hash recorded when sbihep wrote it
    (edited, truncated or corrupted after saving)."""


class ConvergenceError(SbihepError, RuntimeError):
    """A numerical procedure (fit, root finding, integration) did not converge."""


class ExtrapolationWarning(UserWarning):
    """A learned object is evaluated outside the range it was trained on."""


class UnverifiedFileWarning(UserWarning):
    """A file loads without an integrity check: it carries no content hash (written by an older sbihep)
    or the check was switched off."""
