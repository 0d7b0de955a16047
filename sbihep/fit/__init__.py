"""Fitting: likelihood terms as functions of named parameters, minimisation, scans and intervals.

``fit/`` knows nothing of how a term was obtained: it sees objects with a ``parameters``
ParameterSpace and an ``nll(theta)`` method (see :mod:`sbihep.fit.likelihood`).
"""

from sbihep.fit.constraint import ConstraintTerm
from sbihep.fit.gaussian import GaussianTerm
from sbihep.fit.intervals import Interval, UpperLimit, cls_upper_limit, profile_interval, wilks_contours, wilks_interval
from sbihep.fit.likelihood import Likelihood, LikelihoodTerm
from sbihep.fit.minimize import FitResult, minimize
from sbihep.fit.plots import plot_contours_2d, plot_scan_1d
from sbihep.fit.pyhf_term import PyhfTerm
from sbihep.fit.scan import profile_scan
from sbihep.fit.smefit import SmefitDataset, read_smefit_dataset, smefit_covariance, smefit_term

__all__ = [
    "ConstraintTerm",
    "FitResult",
    "GaussianTerm",
    "Interval",
    "Likelihood",
    "LikelihoodTerm",
    "PyhfTerm",
    "SmefitDataset",
    "UpperLimit",
    "cls_upper_limit",
    "minimize",
    "plot_contours_2d",
    "plot_scan_1d",
    "profile_interval",
    "profile_scan",
    "read_smefit_dataset",
    "smefit_covariance",
    "smefit_term",
    "wilks_contours",
    "wilks_interval",
]
