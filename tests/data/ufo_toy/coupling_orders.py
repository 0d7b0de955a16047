from object_library import all_orders, CouplingOrder

QED = CouplingOrder(name = 'QED', expansion_order = 99, hierarchy = 1)
NP = CouplingOrder(name = 'NP', expansion_order = 99, hierarchy = 1)
