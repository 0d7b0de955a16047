"""A hand-written stand-in for a madjax process package (MadGraph's ``output madjax`` layout).

Layout, as the madjax plugin writes it:

* ``model/parameters.py``: ``calculate_full_parameters(slha)`` with ``slha`` a dict
  {(block, id): value} of external parameters (missing entries take their defaults), returning a
  dict of every model parameter and coupling;
* ``processes/all_processes.py``: one ``Matrix_<process>`` class per process with
  ``get_external_masses(params)`` → ((initial masses), (final masses)) and ``smatrix(p, params)``
  → the helicity-summed, spin-averaged |M|² at one phase-space point p (n × (E, px, py, pz)).

The physics is e⁻ e⁺ → μ⁻ μ⁺ through γ and Z with the e–μ contact operators cll, cle, cee
(param-card block ``eecontact``, entries 1, 2, 3, in TeV⁻²), written from the chiral helicity
amplitudes of massless fermions — independently of sbihep's HELAS-style code, which it is
tested against.
"""
