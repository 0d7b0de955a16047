# A minimal synthetic UFO model (QED of one lepton plus a toy Wilson coefficient) for sbihep's reader tests.
import particles
import couplings
import lorentz
import parameters
import vertices
import coupling_orders
import function_library

all_particles = particles.all_particles
all_vertices = vertices.all_vertices
all_couplings = couplings.all_couplings
all_lorentz = lorentz.all_lorentz
all_parameters = parameters.all_parameters
all_orders = coupling_orders.all_orders
all_functions = function_library.all_functions

try:
   import decays
except ImportError:
   pass
else:
   all_decays = decays.all_decays

gauge = [0]
__author__ = "sbihep tests"
