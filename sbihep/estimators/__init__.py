"""Learned likelihood ratios and scores: ratio (CARL, ROLR, RASCAL, ALICE, ALICES, CASCAL), score
(SALLY), ensembles, calibration, ONNX export, set embeddings, the Fisher information, toys with exact
likelihoods, and the one trainer."""

from sbihep.estimators import information
from sbihep.estimators.base import ExtrapolationWarning
from sbihep.estimators.calibration import (
    CalibratedRatioEstimator,
    Calibrator,
    calibrate,
    expected_calibration_error,
    reliability_diagram,
)
from sbihep.estimators.embedding import DeepSetEmbedding, SetTransformerEmbedding, pad_objects
from sbihep.estimators.ensemble import Ensemble
from sbihep.estimators.onnx_export import OnnxEstimator, export_onnx, load_onnx
from sbihep.estimators.ratio import METHODS, SCORE_METHODS, RatioEstimator
from sbihep.estimators.score import ScoreEstimator
from sbihep.estimators.toys import GaussianToy
from sbihep.estimators.train import TrainingHistory, train

__all__ = [
    "CalibratedRatioEstimator",
    "Calibrator",
    "DeepSetEmbedding",
    "Ensemble",
    "ExtrapolationWarning",
    "GaussianToy",
    "METHODS",
    "OnnxEstimator",
    "RatioEstimator",
    "SCORE_METHODS",
    "ScoreEstimator",
    "SetTransformerEmbedding",
    "TrainingHistory",
    "calibrate",
    "expected_calibration_error",
    "export_onnx",
    "information",
    "load_onnx",
    "pad_objects",
    "reliability_diagram",
    "train",
]
