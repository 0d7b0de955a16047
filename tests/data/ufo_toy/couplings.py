from object_library import all_couplings, Coupling
from function_library import complexconjugate

GC_1 = Coupling(name = 'GC_1', value = '-(ee*complex(0,1))', order = {'QED':1})
GC_2 = Coupling(name = 'GC_2', value = 'eshift*complex(0,1) - ee*complex(0,1)', order = {'QED':1, 'NP':1})
GC_3 = Coupling(name = 'GC_3', value = 'complexconjugate(complex(0,1)*ee*cY/Lam**2)', order = {'QED':1, 'NP':1})
GC_4 = Coupling(name = 'GC_4', value = '(2*ee*complex(0,1))/3.', order = {'QED':1})
GC_5 = Coupling(name = 'GC_5', value = 'ye*Me*complex(0,1)', order = {'QED':1})
