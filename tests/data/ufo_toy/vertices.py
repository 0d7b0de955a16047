from object_library import all_vertices, Vertex
import particles as P
import couplings as C
import lorentz as L

V_1 = Vertex(name = 'V_1', particles = [ P.e__plus__, P.e__minus__, P.a ], color = [ '1' ],
             lorentz = [ L.FFV1, L.FFV2 ], couplings = {(0,0):C.GC_1,(0,1):C.GC_2})

V_2 = Vertex(name = 'V_2', particles = [ P.e__plus__, P.e__minus__, P.a ], color = [ '1' ],
             lorentz = [ L.FFV2 ], couplings = {(0,0):C.GC_3})

V_3 = Vertex(name = 'V_3', particles = [ P.u__tilde__, P.u, P.a ], color = [ 'Identity(1,2)' ],
             lorentz = [ L.FFV1 ], couplings = {(0,0):C.GC_4})

V_4 = Vertex(name = 'V_4', particles = [ P.e__plus__, P.e__minus__, P.a ], color = [ '1' ],
             lorentz = [ L.FFV1 ], couplings = {(0,0):C.GC_5})
