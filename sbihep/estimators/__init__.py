"""Learned likelihood ratios and scores: ratio (CARL, ROLR, RASCAL, ALICE, ALICES, CASCAL), score
(SALLY), the Fisher information, toys with exact likelihoods, and the one trainer."""

from sbihep.estimators import information
from sbihep.estimators.base import ExtrapolationWarning
from sbihep.estimators.ratio import METHODS, SCORE_METHODS, RatioEstimator
from sbihep.estimators.score import ScoreEstimator
from sbihep.estimators.toys import GaussianToy
from sbihep.estimators.train import TrainingHistory, train

__all__ = [
    "ExtrapolationWarning",
    "GaussianToy",
    "METHODS",
    "SCORE_METHODS",
    "RatioEstimator",
    "ScoreEstimator",
    "TrainingHistory",
    "information",
    "train",
]
