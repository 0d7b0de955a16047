"""Learned likelihood ratios and scores: ratio (CARL, ROLR, RASCAL, ALICE, ALICES, CASCAL), the
quadratic EFT classifier, DCTR reweighting, score (SALLY, SALLINO), ensembles, calibration, ONNX
export, set embeddings, the Fisher information, toys with exact likelihoods (Gaussian, Galton board),
and the one trainer.  Posteriors through the ``sbi`` package (NPE, NLE, NRE with SBC/TARP diagnostics)
live in :mod:`sbihep.estimators.posterior`; their names are importable from here too, lazily (``sbi`` is
imported on first use only)."""

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
from sbihep.estimators.galton import GaltonBoard
from sbihep.estimators.onnx_export import OnnxEstimator, export_onnx, load_onnx
from sbihep.estimators.quadratic import QuadraticEFTClassifier
from sbihep.estimators.ratio import METHODS, SCORE_METHODS, RatioEstimator
from sbihep.estimators.reweight import DCTRReweighter
from sbihep.estimators.score import Sallino, ScoreEstimator
from sbihep.estimators.toys import GaussianToy
from sbihep.estimators.train import TrainingHistory, train

__all__ = [
    "CalibratedRatioEstimator",
    "Calibrator",
    "DCTRReweighter",
    "DeepSetEmbedding",
    "Ensemble",
    "ExtrapolationWarning",
    "GaltonBoard",
    "GaussianToy",
    "METHODS",
    "OnnxEstimator",
    "QuadraticEFTClassifier",
    "RatioEstimator",
    "SCORE_METHODS",
    "Sallino",
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

_POSTERIOR_NAMES = ("EventSetSimulator", "FunctionSimulator", "GaussianToySimulator", "PosteriorResult", "SetEmbedding",
                    "calibration_issues", "diagnose", "fit_posterior", "load_posterior")
__all__ += list(_POSTERIOR_NAMES)


def __getattr__(name: str):
    if name in _POSTERIOR_NAMES:
        from sbihep.estimators import posterior

        return getattr(posterior, name)
    raise AttributeError(f"module 'sbihep.estimators' has no attribute {name!r}")
