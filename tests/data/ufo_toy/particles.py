from __future__ import division
from object_library import all_particles, Particle
import parameters as Param

a = Particle(pdg_code = 22, name = 'a', antiname = 'a', spin = 3, color = 1, mass = Param.ZERO,
             width = Param.ZERO, texname = 'a', antitexname = 'a', charge = 0, LeptonNumber = 0)

e__minus__ = Particle(pdg_code = 11, name = 'e-', antiname = 'e+', spin = 2, color = 1, mass = Param.Me,
                      width = Param.ZERO, texname = 'e-', antitexname = 'e+', charge = -1, LeptonNumber = 1)

e__plus__ = e__minus__.anti()

u = Particle(pdg_code = 2, name = 'u', antiname = 'u~', spin = 2, color = 3, mass = Param.ZERO,
             width = Param.ZERO, texname = 'u', antitexname = 'u~', charge = 2/3, LeptonNumber = 0)

u__tilde__ = u.anti()
