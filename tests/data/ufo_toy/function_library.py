import cmath
from object_library import all_functions, Function

complexconjugate = Function(name = 'complexconjugate',
                            arguments = ('z',),
                            expression = 'z.conjugate()')

reglog = Function(name = 'reglog',
                  arguments = ('z'),
                  expression = '(0.0 if z==0.0 else cmath.log(z.real))')
