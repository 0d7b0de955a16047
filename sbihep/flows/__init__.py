"""Conditional normalising flows (zuko) and what is built on them: neutrino-momentum regression.

:class:`ConditionalFlow` is the generic q(x | context) with optional set embeddings of variable-length
object lists; :mod:`sbihep.flows.neutrino` has the analytic W-mass-constraint solution and the
:class:`NeutrinoFlow` posterior of the neutrino momentum given the reconstructed event.
"""

from sbihep.flows.conditional import FLOW_KINDS, ConditionalFlow
from sbihep.flows.neutrino import NeutrinoFlow, neutrino_features, w_mass_neutrino_pz

__all__ = ["FLOW_KINDS", "ConditionalFlow", "NeutrinoFlow", "neutrino_features", "w_mass_neutrino_pz"]
