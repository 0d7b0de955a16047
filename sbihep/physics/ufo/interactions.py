"""A UFO model's vertices merged into interactions: the Feynman rules the diagram generator uses.

A UFO vertex lists its particles (all outgoing), colour structures, Lorentz structures and a coupling
for each (colour, Lorentz) pair.  SMEFTsim splits one particle content over several vertices (the SM
piece and each operator's piece, with different coupling orders), and a key may hold a list of
couplings.  :func:`model_interactions` flattens every vertex into :class:`InteractionTerm` objects —
one per (colour, Lorentz, coupling) — and groups them into :class:`Interaction` objects by
(particle multiset, coupling orders), so one interaction is one vertex of a diagram with one set of
coupling orders:

* the canonical leg order of an interaction is the particle order of the first vertex of its group;
  a term of another vertex records in :attr:`InteractionTerm.leg_order` where each canonical leg sits in
  its own vertex, and :meth:`InteractionTerm.structure` returns its Lorentz structure relabelled to the
  canonical legs;
* fermion lines: the spinor-index chains of each Lorentz structure are followed through the terms of
  :func:`~sbihep.physics.ufo.lorentz_expr.parse_structure` (``Gamma(μ,i,j)``, ``ProjM(i,j)`` …: row
  index i, column index j; a negative index continues the chain).  Each chain joins a *row* leg (a ψ̄
  slot) to a *column* leg (a ψ slot); :attr:`Interaction.fermion_pairs` lists them as (row leg,
  column leg).  Every term of one structure must chain the same way, the row leg must be labelled
  with a fermion (PDG > 0) and the column leg with an antifermion (PDG < 0) — the slot rule of
  :mod:`sbihep.physics.ufo.lorentz_compile` — or :class:`~sbihep.errors.ModelFormatError` names the
  vertex.  A term joins an interaction only if, after the leg mapping (chosen among the permutations
  of identical particles), its chains equal the interaction's fermion pairs; otherwise it starts an
  interaction of its own.  So :attr:`InteractionTerm.sign` is always +1.

  Checked on both SMEFTsim 3.0.2 models (U35 and top, restriction ``restrict_massless.dat``;
  ``tests/test_ufo_diagrams.py`` pins it): every fermion structure obeys the slot rule and every
  two-fermion structure chains (row f₂, column f₁), f₁ … the fermion legs in particle order, as
  MadGraph/ALOHA read them.  Of the four-fermion structures, 304 of 485 (U35) and 347 of 451 (top)
  chain (f₂ → f₁), (f₄ → f₃) as ALOHA pairs them; the other 181 and 104 chain *crossed*,
  (f₂ → f₃), (f₄ → f₁) — e.g. ``FFFF3 = Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-3,1)*ProjM(-2,3)`` on
  [μ⁺, e⁻, e⁺, μ⁻] is (ē γ P_L e)(μ̄ γ P_L μ).  sbihep takes the fermion pairs from the chains, so
  those vertices get the pairs (1, 2), (3, 0); reading them by position would flip the sign of their
  diagrams (see :mod:`sbihep.physics.ufo.diagrams` for why the chain reading is the consistent one).
* skipped: vertices with a ghost (spin −1) or a Goldstone boson (sbihep works in unitary gauge);
  couplings the restriction removed (absent from ``model.couplings``) or identically zero: zero at
  :meth:`~sbihep.physics.ufo.model.UFOModel.evaluate` *and* at a second point where every input the
  restriction did not fix is moved (multiplied by a seeded factor in [0.9, 1.1], and shifted by up to
  0.01 when it is 0 — so a Wilson coefficient that is merely 0 by default is kept).
* Majorana fermions (self-conjugate spin ½): their interactions are kept with ``majorana=True`` and no
  fermion pairs; the diagram generator refuses a diagram that needs one
  (:class:`~sbihep.errors.UnsupportedProcessError`).

Colour: :attr:`InteractionTerm.colour` is the vertex's colour string in the vertex's own leg numbers;
:meth:`InteractionTerm.leg_mapping` maps those (1-based) to the canonical ones.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from sbihep.errors import InvalidInputError, ModelFormatError
from sbihep.physics.ufo import objects as O
from sbihep.physics.ufo.lorentz_expr import LorentzExpression, parse_structure, relabel_legs

__all__ = ["InteractionTerm", "Interaction", "model_interactions", "spinor_chains"]

#: factor name → positions of its (row, column) spinor arguments.
_SPINOR_SLOTS = {"Gamma": (1, 2), "Gamma5": (0, 1), "ProjM": (0, 1), "ProjP": (0, 1), "Identity": (0, 1),
                 "Sigma": (2, 3), "C": (0, 1)}


@dataclass(frozen=True)
class InteractionTerm:
    """One (colour structure, Lorentz structure, coupling) term of an interaction.

    Attributes:
        vertex: the UFO vertex the term comes from.
        colour_index: index into ``vertex.color``.
        lorentz_index: index into ``vertex.lorentz``.
        coupling: the coupling's name (a key holding a list of couplings gives one term per coupling).
        leg_order: for canonical leg i of the interaction, the 0-based position in ``vertex.particles``.
        sign: ±1 multiplying the term (always +1: terms whose fermion chains do not match the
            interaction's start their own interaction).
    """

    vertex: O.Vertex
    colour_index: int
    lorentz_index: int
    coupling: str
    leg_order: tuple[int, ...]
    sign: int = 1

    def leg_mapping(self) -> dict[int, int]:
        """vertex leg (1-based, as in the UFO strings) → canonical leg (1-based)."""
        return {pos + 1: i + 1 for i, pos in enumerate(self.leg_order)}

    def structure(self) -> LorentzExpression:
        """The Lorentz structure, parsed and relabelled to the canonical legs."""
        expr = _parsed(self.vertex.lorentz[self.lorentz_index].structure)
        mapping = self.leg_mapping()
        if all(k == v for k, v in mapping.items()):
            return expr
        return relabel_legs(expr, mapping)

    @property
    def colour(self) -> str:
        """The colour structure string, in the vertex's own (1-based) leg numbers."""
        return self.vertex.color[self.colour_index]

    @property
    def lorentz(self) -> O.Lorentz:
        return self.vertex.lorentz[self.lorentz_index]

    def __repr__(self) -> str:
        return (f"InteractionTerm({self.vertex.name}, colour={self.colour!r}, lorentz={self.lorentz.name}, "
                f"coupling={self.coupling}, leg_order={self.leg_order})")


@dataclass(frozen=True)
class Interaction:
    """A vertex of the diagrams: one particle content with one set of coupling orders.

    Attributes:
        index: position in :func:`model_interactions`'s tuple.
        particles: PDG codes (all outgoing), in canonical leg order.
        orders: coupling orders of every term, sorted by name, zeros dropped.
        terms: the terms (Σ coupling × colour × Lorentz is the Feynman rule, with no extra i).
        fermion_pairs: (row leg, column leg) canonical 0-based leg pairs joined by a fermion line
            through this vertex, sorted.
        spins: 2S+1 of each canonical leg.
        majorana: whether a leg is a self-conjugate fermion (then ``fermion_pairs`` is empty).
    """

    index: int
    particles: tuple[int, ...]
    orders: tuple[tuple[str, int], ...]
    terms: tuple[InteractionTerm, ...]
    fermion_pairs: tuple[tuple[int, int], ...]
    spins: tuple[int, ...] = ()
    majorana: bool = False

    @property
    def couplings(self) -> tuple[str, ...]:
        """Names of the couplings of the terms (in term order, repeated when a coupling multiplies several)."""
        return tuple(t.coupling for t in self.terms)

    def __repr__(self) -> str:
        return f"Interaction({self.index}, {self.particles}, orders={dict(self.orders)}, {len(self.terms)} terms)"


_PARSED: dict[str, LorentzExpression] = {}


def _parsed(structure: str) -> LorentzExpression:
    expr = _PARSED.get(structure)
    if expr is None:
        expr = _PARSED[structure] = parse_structure(structure)
    return expr


def spinor_chains(expression: LorentzExpression, *, where: str = "") -> tuple[tuple[int, int], ...] | None:
    """The fermion lines of a Lorentz structure: (row leg, column leg) pairs of 1-based legs, sorted.

    Follows the spinor indices of every term (row index of a matrix → its column index → the matrix
    whose row index is that dummy …) from a positive row index to a positive column index.

    Args:
        expression: a parsed structure.
        where: what to name in error messages (e.g. the vertex).

    Returns:
        The pairs (the same for every term), or None for a structure without terms (identically zero).

    Raises:
        ModelFormatError: terms that chain differently, a charge-conjugation matrix ``C`` (Majorana or
            fermion-number-violating flow), or an index pattern that is not a chain.
    """
    src = f"{where}: " if where else ""
    found: tuple[tuple[int, int], ...] | None = None
    for term in expression.terms:
        nxt: dict[int, int] = {}
        for f in term.factors:
            slots = _SPINOR_SLOTS.get(f.name)
            if slots is None:
                continue
            if f.name == "C":
                raise ModelFormatError(f"{src}Lorentz structure {expression.source!r} uses the charge-conjugation "
                                       "matrix C (Majorana / fermion-number-violating flow), which sbihep does not support")
            r, c = f.args[slots[0]], f.args[slots[1]]
            if r in nxt:
                raise ModelFormatError(f"{src}Lorentz structure {expression.source!r}: spinor index {r} is a row index twice in term {term}")
            nxt[r] = c
        cols = list(nxt.values())
        if len(set(cols)) != len(cols):
            raise ModelFormatError(f"{src}Lorentz structure {expression.source!r}: a spinor index is a column index twice in term {term}")
        pairs = []
        used = 0
        for start in sorted(k for k in nxt if k > 0):
            idx, steps = nxt[start], 1
            while idx < 0:
                if idx not in nxt:
                    raise ModelFormatError(f"{src}Lorentz structure {expression.source!r}: the spinor chain from leg "
                                           f"{start} runs into dummy {idx} as a column index twice (not a chain) in term {term}")
                idx, steps = nxt[idx], steps + 1
            pairs.append((start, idx))
            used += steps
        if used != len(nxt):
            raise ModelFormatError(f"{src}Lorentz structure {expression.source!r}: term {term} has a closed spinor "
                                   "loop or a chain that starts at a dummy index")
        key = tuple(sorted(pairs))
        if found is None:
            found = key
        elif key != found:
            raise ModelFormatError(f"{src}Lorentz structure {expression.source!r}: its terms chain the fermion legs "
                                   f"differently ({found} and {key}); sbihep needs one chaining per structure")
    return found


def _zero_couplings(model: Any) -> set[str]:
    """Couplings of ``model`` that vanish identically given its fixed inputs (see the module docstring)."""
    values = model.evaluate().couplings
    zero = {n for n, v in values.items() if v == 0}
    if not zero:
        return set()
    names = [p.name for p in model.external_parameters]
    x0 = model._input_vector()
    rng = np.random.default_rng(20261207)
    x1 = x0.copy()
    for i, n in enumerate(names):
        if n in model.fixed:
            continue
        x1[i] = x0[i] * (1.0 + 0.1 * rng.uniform(-1, 1))
        if x0[i] == 0:
            x1[i] = 0.01 * rng.uniform(0.5, 1.0)
    try:
        _, couplings = model.evaluate_batch(np.stack([x1], axis=1))
    except InvalidInputError:
        return zero
    out = model.coupling_order
    moved = {out[i] for i in range(len(out)) if out[i] in zero and couplings[i, 0] != 0 and np.isfinite(couplings[i, 0])}
    return zero - moved


def _vertex_pairs(vertex: O.Vertex, lorentz_index: int) -> tuple[tuple[int, int], ...] | None:
    """(row, column) 0-based positions in vertex.particles of the fermion lines of one Lorentz structure."""
    where = f"{vertex.source} vertex {vertex.name} ({' '.join(p.name for p in vertex.particles)})"
    chains = spinor_chains(_parsed(vertex.lorentz[lorentz_index].structure), where=where)
    if chains is None:
        return None
    fermions = [i for i, p in enumerate(vertex.particles) if p.is_fermion]
    pairs = tuple(sorted((r - 1, c - 1) for r, c in chains))
    covered = sorted(i for pr in pairs for i in pr)
    if covered != fermions:
        raise ModelFormatError(f"{where}: Lorentz structure {vertex.lorentz[lorentz_index].name} chains legs "
                               f"{[(r + 1, c + 1) for r, c in pairs]}, but the fermion legs are {[i + 1 for i in fermions]}")
    for r, c in pairs:
        if vertex.particles[r].pdg_code < 0 or vertex.particles[c].pdg_code > 0:
            raise ModelFormatError(
                f"{where}: Lorentz structure {vertex.lorentz[lorentz_index].name} joins row leg {r + 1} "
                f"({vertex.particles[r].name}) to column leg {c + 1} ({vertex.particles[c].name}); sbihep needs a fermion "
                "(PDG > 0) on the row slot and an antifermion on the column slot")
    return pairs


def aloha_pairs(vertex: O.Vertex) -> tuple[tuple[int, int], ...]:
    """The fermion lines as MadGraph/ALOHA read them: fermion legs f₁ … in particle order, (row f₂,
    column f₁), (row f₄, column f₃) … as 0-based positions, sorted."""
    f = [i for i, p in enumerate(vertex.particles) if p.is_fermion]
    return tuple(sorted((f[k + 1], f[k]) for k in range(0, len(f) - 1, 2)))


def _mappings(canonical: tuple[int, ...], particles: tuple[int, ...]):
    """Every leg_order (canonical leg i → position in ``particles``) matching the PDG codes."""
    positions: dict[int, list[int]] = {}
    for pos, pdg in enumerate(particles):
        positions.setdefault(pdg, []).append(pos)
    groups = sorted(positions)
    canon_slots = {pdg: [i for i, q in enumerate(canonical) if q == pdg] for pdg in groups}
    for choice in itertools.product(*(itertools.permutations(positions[pdg]) for pdg in groups)):
        order = [0] * len(canonical)
        for pdg, perm in zip(groups, choice):
            for slot, pos in zip(canon_slots[pdg], perm):
                order[slot] = pos
        yield tuple(order)


_CACHE: "weakref.WeakKeyDictionary[Any, tuple[Interaction, ...]]" = weakref.WeakKeyDictionary()


def model_interactions(model: Any) -> tuple[Interaction, ...]:
    """The model's vertices merged into interactions (cached per model object; see the module docstring).

    Args:
        model: a :class:`~sbihep.physics.ufo.model.UFOModel`.

    Returns:
        The interactions, ``index`` = position, in the order their first vertex appears in the model.

    Raises:
        ModelFormatError: a Lorentz structure whose fermion chains sbihep cannot read (named vertex).
    """
    cached = _CACHE.get(model)
    if cached is not None:
        return cached
    zero = _zero_couplings(model)
    # group key → list of [canonical particles, fermion pairs, majorana, spins, terms]
    groups: dict[tuple, list[list]] = {}
    order_of_groups: list[tuple[tuple, int]] = []
    for vertex in model.vertices:
        parts = vertex.particles
        if any(p.spin == -1 or p.goldstoneboson for p in parts):
            continue
        majorana = any(p.is_fermion and p.selfconjugate for p in parts)
        codes = tuple(p.pdg_code for p in parts)
        for (ci, li), cs in sorted(vertex.couplings.items()):
            for coupling in (cs if isinstance(cs, list) else [cs]):
                if coupling.name not in model.couplings or coupling.name in zero:
                    continue
                orders = tuple(sorted((k, v) for k, v in coupling.order.items() if v != 0))
                key = (tuple(sorted(codes)), orders)
                pairs = None if majorana else _vertex_pairs(vertex, li)
                if pairs is None and not majorana and any(p.is_fermion for p in parts):
                    continue  # structure identically zero
                candidates = groups.setdefault(key, [])
                placed = False
                for entry in candidates:
                    canonical, canon_pairs = entry[0], entry[1]
                    for leg_order in _mappings(canonical, codes):
                        if not majorana:
                            inverse = {pos: i for i, pos in enumerate(leg_order)}
                            mapped = tuple(sorted((inverse[r], inverse[c]) for r, c in pairs))
                            if mapped != canon_pairs:
                                continue
                        entry[4].append(InteractionTerm(vertex, ci, li, coupling.name, leg_order))
                        placed = True
                        break
                    if placed:
                        break
                if not placed:
                    spins = tuple(p.spin for p in parts)
                    entry = [codes, pairs if pairs is not None else (), majorana, spins,
                             [InteractionTerm(vertex, ci, li, coupling.name, tuple(range(len(codes))))]]
                    candidates.append(entry)
                    order_of_groups.append((key, len(candidates) - 1))
    out = []
    for key, k in order_of_groups:
        codes, pairs, majorana, spins, terms = groups[key][k]
        out.append(Interaction(len(out), codes, key[1], tuple(terms), tuple(pairs), spins, majorana))
    result = tuple(out)
    _CACHE[model] = result
    return result
