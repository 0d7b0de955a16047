"""Conditional normalising flows (zuko) and what is built on them: neutrino-momentum regression,
unfolding (OmniFold, iterative generative unfolding, IBU as the binned baseline) and simulation correction.

:class:`ConditionalFlow` is the generic q(x | context) with optional set embeddings of variable-length
object lists; :mod:`sbihep.flows.neutrino` has the analytic W-mass-constraint solution and the
:class:`NeutrinoFlow` posterior of the neutrino momentum given the reconstructed event.
"""

from sbihep.flows.conditional import FLOW_KINDS, ConditionalFlow
from sbihep.flows.correction import SimulationCorrection
from sbihep.flows.generative_unfolding import (
    GenerativeUnfolding,
    GenerativeUnfoldingResult,
    SupportTransform,
    generative_unfolding_replicas,
    iterative_generative_unfolding,
)
from sbihep.flows.ibu import ibu, response_matrix
from sbihep.flows.neutrino import NeutrinoFlow, neutrino_features, w_mass_neutrino_pz
from sbihep.flows.omnifold import (
    DensityRatio,
    OmniFoldResult,
    binned_spectrum,
    omnifold,
    omnifold_replicas,
    reweight_eventset,
)
from sbihep.flows.unfolding_metrics import (
    classifier_auc,
    coverage,
    expected_coverage,
    pulls,
    roc_auc,
    triangular_discriminator,
    wasserstein_1d,
)

__all__ = [
    "FLOW_KINDS",
    "ConditionalFlow",
    "DensityRatio",
    "GenerativeUnfolding",
    "GenerativeUnfoldingResult",
    "NeutrinoFlow",
    "OmniFoldResult",
    "SimulationCorrection",
    "SupportTransform",
    "binned_spectrum",
    "classifier_auc",
    "coverage",
    "expected_coverage",
    "generative_unfolding_replicas",
    "ibu",
    "iterative_generative_unfolding",
    "neutrino_features",
    "omnifold",
    "omnifold_replicas",
    "pulls",
    "response_matrix",
    "reweight_eventset",
    "roc_auc",
    "triangular_discriminator",
    "w_mass_neutrino_pz",
    "wasserstein_1d",
]
