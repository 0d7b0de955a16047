"""Fitting: likelihood terms as functions of named parameters, minimisation, scans and intervals.

``fit/`` knows nothing of how a term was obtained: it sees objects with a ``parameters``
ParameterSpace and an ``nll(theta)`` method (see :mod:`sbihep.fit.likelihood`).
"""

from sbihep.fit.basins import find_minima
from sbihep.fit.bayes import credible_interval, normal_prior, sample_posterior
from sbihep.fit.bayes import split_rhat
from sbihep.fit.binned import BinnedTerm
from sbihep.fit.closure import ClosureResult, closure_check
from sbihep.fit.constraint import ConstraintTerm
from sbihep.fit.confidence_set import ConfidenceSet
from sbihep.fit.counting import CountingTerm
from sbihep.fit.coverage import NeymanMethod, WilksMethod, binomial_interval, coverage
from sbihep.fit.coverage import covered
from sbihep.fit.exact import ExactLogRatio, exact_features, exact_unbinned_term
from sbihep.fit.gaussian import GaussianTerm
from sbihep.fit.hypotest import HypoTestResult, hypotest
from sbihep.fit.intervals import Interval, UpperLimit, cls_upper_limit, profile_interval, wilks_contours, wilks_interval
from sbihep.fit.likelihood import Likelihood, LikelihoodTerm
from sbihep.fit.minimize import FitResult, minimize
from sbihep.fit.morphing import EventSetMorphing, EventSetSigma
from sbihep.fit.operator_names import SMEFIT_TO_SMEFTSIM, smefit_to_smeftsim_matrix, smefit_values, smeftsim_name
from sbihep.fit.neyman import critical_value, neyman_belt, neyman_contours, neyman_expected, neyman_interval, neyman_region
from sbihep.fit.neyman_nuisance import CONSTRUCTIONS, NuisanceConstruction, calibrated_thresholds
from sbihep.fit.plots import plot_contours_2d, plot_corner, plot_scan_1d
from sbihep.fit.pyhf_term import PyhfTerm
from sbihep.fit.scan import profile_scan
from sbihep.fit.scan import auto_grid, conditional_fit
from sbihep.fit.intervals import GridResolutionWarning
from sbihep.fit.smefit import SmefitDataset, read_smefit_dataset, smefit_covariance, smefit_term
from sbihep.fit.statistic import profile_statistic
from sbihep.fit.statistic import profile_fit, toy_stream
from sbihep.fit.surrogate_term import SurrogateTerm
from sbihep.fit.unbinned import EventSetToys, NormalisedLogRatio, UnbinnedTerm
from sbihep.fit.unbinned import POOL_MC_THRESHOLD

__all__ = [
    "CONSTRUCTIONS",
    "CountingTerm",
    "NuisanceConstruction",
    "calibrated_thresholds",
    "covered",
    "profile_fit",
    "toy_stream",
    "BinnedTerm",
    "ClosureResult",
    "ConfidenceSet",
    "GridResolutionWarning",
    "auto_grid",
    "conditional_fit",
    "ConstraintTerm",
    "EventSetMorphing",
    "EventSetSigma",
    "EventSetToys",
    "ExactLogRatio",
    "FitResult",
    "GaussianTerm",
    "HypoTestResult",
    "Interval",
    "Likelihood",
    "LikelihoodTerm",
    "NeymanMethod",
    "NormalisedLogRatio",
    "POOL_MC_THRESHOLD",
    "PyhfTerm",
    "SMEFIT_TO_SMEFTSIM",
    "SmefitDataset",
    "SurrogateTerm",
    "UnbinnedTerm",
    "UpperLimit",
    "WilksMethod",
    "binomial_interval",
    "closure_check",
    "cls_upper_limit",
    "coverage",
    "credible_interval",
    "critical_value",
    "exact_features",
    "exact_unbinned_term",
    "find_minima",
    "hypotest",
    "minimize",
    "neyman_belt",
    "neyman_contours",
    "neyman_expected",
    "neyman_interval",
    "neyman_region",
    "normal_prior",
    "plot_contours_2d",
    "plot_corner",
    "plot_scan_1d",
    "profile_interval",
    "profile_scan",
    "profile_statistic",
    "read_smefit_dataset",
    "sample_posterior",
    "smefit_covariance",
    "smefit_term",
    "smefit_to_smeftsim_matrix",
    "smefit_values",
    "smeftsim_name",
    "split_rhat",
    "wilks_contours",
    "wilks_interval",
]
