from object_library import all_parameters, Parameter
from function_library import complexconjugate, reglog

ZERO = Parameter(name = 'ZERO', nature = 'internal', type = 'real', value = '0.0', texname = '0')

aEWM1 = Parameter(name = 'aEWM1', nature = 'external', type = 'real', value = 127.9,
                  texname = '\\text{aEWM1}', lhablock = 'SMINPUTS', lhacode = [ 1 ])

Me = Parameter(name = 'Me', nature = 'external', type = 'real', value = 0.000511,
               texname = 'M_e', lhablock = 'MASS', lhacode = [ 11 ])

cX = Parameter(name = 'cX', nature = 'external', type = 'real', value = 0.0,
               texname = 'c_X', lhablock = 'NEWCOUP', lhacode = [ 1 ])

cY = Parameter(name = 'cY', nature = 'external', type = 'real', value = 0.0,
               texname = 'c_Y', lhablock = 'NEWCOUP', lhacode = [ 2 ])

Lam = Parameter(name = 'Lam', nature = 'external', type = 'real', value = 1000.0,
                texname = '\\Lambda', lhablock = 'NEWCOUP', lhacode = [ 3 ])

ee = Parameter(name = 'ee', nature = 'internal', type = 'real',
               value = '2*cmath.sqrt(1/aEWM1)*cmath.sqrt(cmath.pi)', texname = 'e')

# defined before the parameter it uses: the reader sorts by dependency
eshift = Parameter(name = 'eshift', nature = 'internal', type = 'real',
                   value = 'ee*(1 + dX)', texname = 'e\'')

dX = Parameter(name = 'dX', nature = 'internal', type = 'real',
               value = 'cX/Lam**2*1e4', texname = '\\delta_X')

ye = Parameter(name = 'ye', nature = 'internal', type = 'real',
               value = 'reglog(Me+1)/cmath.sqrt(2)', texname = 'y_e')
