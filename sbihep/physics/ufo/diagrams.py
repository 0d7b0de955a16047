"""Tree-level Feynman diagrams of a UFO model (unitary gauge), with fermion signs and shared subtrees.

Conventions
-----------
External legs are numbered 0..n−1 in process order (initial first) and every leg is treated as
*outgoing* (crossing): an incoming particle of PDG code p is the outgoing leg −p (p if
self-conjugate).  ``external`` is that all-outgoing tuple.

A diagram is a tree rooted at the interaction that holds the *last* leg n−1.  Every other line is a
subtree, a :class:`Line`: the external legs below it (``legs``, a subset of 0..n−2), the interaction
at its top (``interaction``), and what hangs on each canonical leg of that interaction
(``children``: a Line per leg, ``None`` at the open leg that goes up to the parent).  ``particle`` is
the PDG label of the open leg at the top vertex (all-outgoing UFO labels), so the propagator is that
of ``particle`` and the parent vertex takes the line on a leg labelled with its antiparticle
(:attr:`Line.parent_label`).  An external line has ``interaction=None``, ``children=()`` and
``particle`` = its all-outgoing code, and attaches to a vertex leg with that same label.  Lines are
immutable, hashable and equal when the subtrees are equal; the generator builds each subtree once and
shares it between diagrams, so an evaluator can memoise per Line (:meth:`DiagramSet.lines` lists them
children first).

Algorithm (Berends–Giele-style recursion producing explicit diagrams): for every subset S of legs
{0..n−2}, by increasing size, the currents J(S) are all subtrees with legs S: for each interaction and
each choice of its open leg (the first leg of each distinct label — the UFO Feynman rule is symmetric
in identical legs), the remaining legs take currents J(B₁) … J(B_k) of a partition of S, in every
assignment, except that legs with the same label take their blocks in increasing order of the
blocks' smallest leg (one canonical way, so no diagram is counted twice).  The diagrams are the
currents of S = {0..n−2} whose open leg carries the label of leg n−1.  Vertices of any number of legs
are handled the same way.  Lines that break a constraint are dropped as soon as they are built:
coupling orders above an upper bound, excluded particles (``/``), forbidden s-channels (``$$``), and
lines incompatible with a required s-channel.

s-channel: an internal line is s-channel when its legs contain none of the initial legs or all of
them.  A required s-channel ``(pdg, legs)`` (a decay chain) demands the internal line that carries
exactly those external legs, with the particle ``pdg`` flowing towards them; a bare ``pdg`` (MadGraph's
``a b > x > c d``) demands some s-channel line of ``pdg`` flowing from the initial to the final state.

Coupling orders
---------------
A diagram's orders are the sums over its interactions.  Applied in this order:

1. every model ``CouplingOrder`` with ``expansion_order`` < 99 bounds the diagram's order (SMEFTsim's
   ``NPprop`` has 0: its propagator-correction particles never appear unless asked for);
2. EFT orders (``eft_orders``, default ``("NP",)``) above ``max_eft_order`` (default 1) are dropped —
   the amplitude is linear in the Wilson coefficients;
3. amplitude-level constraints (``QED<=4``, ``NP==1`` …) bound the diagram's orders;
4. squared constraints (``NP^2==2``, ``QED^2<=8``) act on pairs of diagrams: a diagram is kept when
   some diagram (itself included) passing 1–3 forms a pair whose summed orders satisfy every squared
   constraint;
5. when the user constrained no order other than EFT ones (``eft_orders`` and the orders that only EFT
   couplings carry, such as SMEFTsim's per-operator ``NPcHWB``), a WEIGHTED rule in MadGraph's spirit
   applies, with WEIGHTED = Σ hierarchy × order over the non-EFT orders: the SM diagrams (all EFT
   orders 0) are those of minimal WEIGHTED W₀; the diagrams with EFT orders k (NP = 1 …) are those
   with WEIGHTED ≤ max(W₀, W_k), W_k the minimum at that EFT order.  So the EFT dressing of every SM
   topology is kept, and so are EFT-only topologies of the lowest weight: SMEFTsim gives its
   dimension-6 couplings extra QED powers (cG's g g g vertex is NP=1, QED=2), so one minimum over all
   diagrams would drop the cG diagrams of g g → g g g, and in u d → u d h it would keep only the cHG
   gluon-exchange diagram (WEIGHTED 4) and drop SM and EFT vector-boson fusion (6).  It is a default,
   not physics: EFT topologies heavier than both minima are still dropped — in g g → t t~ with NP ≤ 1
   the ctG diagrams (WEIGHTED 4) stay but the cG and cHG ones (5 and 6) go; write the orders out
   (``g g > t t~ NP<=1 QED<=2 SMHLOOP=0`` keeps all 11).  Once the user
   constrains a non-EFT order (``QCD=0``), the constraints are applied as given and nothing is
   minimised.  MadGraph itself minimises WEIGHTED (over all orders, NP included) only when no order
   at all is given, so ``NP<=1`` there switches minimisation off; sbihep keeps it for the non-EFT
   orders, so that loop-induced ``SMHLOOP`` vertices (H g g …) and higher-QED topologies stay out by
   default.

Fermion sign
------------
Each fermion line is followed through the diagram: at a vertex along the interaction's
:attr:`~sbihep.physics.ufo.interactions.Interaction.fermion_pairs` (row leg ↔ column leg, read from
the spinor-index chains of its Lorentz structures), across an internal line from a column slot
(label X < 0) to the row slot of the next vertex (label X̄ > 0).  A line ends at two external legs:
its *row end* is the leg whose all-outgoing code is a fermion (PDG > 0; the row spinor ū or v̄), its
*column end* the one with an antifermion code (u or v).  With the chains written (r₁, c₁), (r₂, c₂) …,
the sign is the parity of the permutation that sorts [r₁, c₁, r₂, c₂, …] (independent of the order of
the chains, since each pair moves as a block), times the terms' signs (all +1).

Worked example, e⁺e⁻ → e⁺e⁻ (legs 0 e⁺ in, 1 e⁻ in, 2 e⁺ out, 3 e⁻ out; all outgoing: 11, −11, −11,
11, so the row ends are legs 0 and 3).  s-channel photon: chains (0, 1) and (3, 2) →
[0, 1, 3, 2], one transposition, sign −1.  t-channel photon: chains (0, 2) and (3, 1) → [0, 2, 3, 1],
a 3-cycle, sign +1.  The relative sign −1 between the two is Bhabha's.

Four-fermion vertices: the sign follows the spinor chains of the Lorentz structure, not the
positions of the fermions in the vertex.  In SMEFTsim 3.0.2 many four-lepton and four-quark vertices
list their particles as, e.g., [μ⁺, e⁻, e⁺, μ⁻] with structures that chain e⁻ → e⁺ and μ⁻ → μ⁺
(legs (2, 3), (4, 1)), whereas MadGraph/ALOHA pair fermions by position ((2, 1), (4, 3)); the two
readings differ by a sign.  The chain reading is the consistent one: (i) the model's couplings on
those vertices are +i c/Λ², the same sign as on positionally chained vertices (``cle`` on
[μ⁺, e⁻, e⁺, μ⁻], ``ceu`` on [e⁺, e⁻, u~, u]), i.e. i × the Lagrangian coefficient times the
structure as written, each bilinear a chain; (ii) on the same vertex SMEFTsim writes the cll term
crossed, (ē γ P_L e)(μ̄ γ P_L μ), and the cll1 term positionally, (ē γ P_L μ)(μ̄ γ P_L e), both with
2i c/Λ²; for anticommuting fields the two operators are equal (Fierz), and with chain signs the two
diagrams of e⁺e⁻ → μ⁺μ⁻ agree for any spinors, whereas by position they would be opposite
(``tests/test_ufo_diagrams.py::test_fermion_sign_is_consistent_with_fierz``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from sbihep.errors import InvalidInputError, ModelFormatError, UnknownParameterError, UnsupportedProcessError
from sbihep.physics.ufo.interactions import Interaction, model_interactions
from sbihep.physics.ufo.process_spec import DecayChain, OrderConstraint, ProcessNode, ProcessSpec, Subprocess

__all__ = ["Line", "Diagram", "DiagramSet", "generate_diagrams", "diagrams_for", "fermion_sign"]


@dataclass(frozen=True, eq=True)
class Line:
    """A line of a diagram and the subtree below it.

    Attributes:
        legs: sorted external legs below this line (whose momenta flow out of the diagram through it).
        particle: PDG label of the line as an outgoing leg of its subtree's top vertex; for an
            external line, the leg's all-outgoing code.
        interaction: index of the top interaction; None for an external line.
        children: aligned with that interaction's canonical legs: the Line on each leg, None at the
            open leg (the one going to the parent); () for an external line.
        parent_label: label of the parent vertex's leg this line attaches to (``particle`` for an
            external line, its antiparticle for an internal one).
        orders: coupling orders summed over the subtree (sorted, zeros dropped).
    """

    legs: tuple[int, ...]
    particle: int
    interaction: int | None
    children: tuple["Line | None", ...] = ()
    parent_label: int = 0
    orders: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.legs, self.particle, self.interaction, self.children)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @property
    def is_external(self) -> bool:
        return self.interaction is None

    def internal_lines(self) -> Iterable["Line"]:
        """Every internal line of the subtree, itself included, children first."""
        for c in self.children:
            if c is not None and c.interaction is not None:
                yield from c.internal_lines()
        if self.interaction is not None:
            yield self


@dataclass(frozen=True)
class Diagram:
    """One tree-level diagram.

    Attributes:
        interaction: index of the root interaction (the one holding the last external leg).
        lines: aligned with the root interaction's canonical legs, every leg filled (one is the
            external line of leg n−1).
        sign: the fermion sign ±1 (see the module docstring).
        orders: coupling orders of the diagram (sorted, zeros dropped).
    """

    interaction: int
    lines: tuple[Line, ...]
    sign: int
    orders: tuple[tuple[str, int], ...]

    def internal_lines(self) -> tuple[Line, ...]:
        """Every internal line, children before parents, each once."""
        seen: dict[Line, None] = {}
        for line in self.lines:
            for sub in line.internal_lines():
                seen.setdefault(sub, None)
        return tuple(seen)

    def propagators(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """(PDG code, legs) of every internal line: the propagator is that of the code."""
        return tuple((line.particle, line.legs) for line in self.internal_lines())

    def order(self, name: str) -> int:
        return dict(self.orders).get(name, 0)


@dataclass(frozen=True)
class DiagramSet:
    """The diagrams of one (all-outgoing) external state.

    Attributes:
        external: all-outgoing PDG codes of legs 0..n−1.
        n_initial: the number of initial legs (1 for a decay, 2 for scattering).
        interactions: the model's interactions (``Diagram.interaction`` and ``Line.interaction`` index it).
        diagrams: the diagrams.
        identical_factor: Π n_k! over identical final-state particles (divide |M|² summed over
            helicities by it, or the phase-space integral).
        process: a readable form of the process (``"u d~ > w+ z"``).
    """

    external: tuple[int, ...]
    n_initial: int
    interactions: tuple[Interaction, ...]
    diagrams: tuple[Diagram, ...]
    identical_factor: int
    process: str = ""

    def lines(self) -> tuple[Line, ...]:
        """Every distinct internal line of all diagrams, children before parents (evaluation order;
        a subtree shared by several diagrams appears once)."""
        seen: dict[Line, None] = {}
        for d in self.diagrams:
            for line in d.lines:
                for sub in line.internal_lines():
                    seen.setdefault(sub, None)
        return tuple(seen)

    def __len__(self) -> int:
        return len(self.diagrams)


# ------------------------------------------------------------------------------------------------
# fermion sign
# ------------------------------------------------------------------------------------------------
def _parity(seq: Sequence[int]) -> int:
    inv = sum(1 for i in range(len(seq)) for j in range(i + 1, len(seq)) if seq[i] > seq[j])
    return -1 if inv % 2 else 1


def fermion_sign(diagram_lines: Sequence[Line], root: int, interactions: Sequence[Interaction],
                 fermion_legs: Sequence[int]) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The fermion sign of a diagram and its chains (row end, column end), see the module docstring.

    Args:
        diagram_lines: the root's lines (aligned with its canonical legs).
        root: index of the root interaction.
        interactions: the model's interactions.
        fermion_legs: external legs that are fermions.

    Returns:
        (sign, chains sorted by row end).

    Raises:
        ModelFormatError: a fermion line that enters a vertex on a leg without a fermion pair, or on a
            column slot from a column slot (inconsistent fermion flow).
    """
    # vertex instances: 0 = root, then every internal line object
    vertices: list[tuple[int, tuple[Line | None, ...]]] = [(root, tuple(diagram_lines))]
    index: dict[int, int] = {}  # id(line) → vertex number
    parent_of: dict[int, tuple[int, int]] = {}  # vertex number → (parent vertex, leg at parent)
    ext_at: dict[int, tuple[int, int]] = {}  # external leg → (vertex, leg)
    stack = [0]
    while stack:
        v = stack.pop()
        _, children = vertices[v]
        for leg, child in enumerate(children):
            if child is None:
                continue
            if child.interaction is None:
                ext_at[child.legs[0]] = (v, leg)
            else:
                w = len(vertices)
                vertices.append((child.interaction, child.children))
                index[id(child)] = w
                parent_of[w] = (v, leg)
                stack.append(w)

    def across(v: int, leg: int) -> tuple[str, Any]:
        child = vertices[v][1][leg]
        if child is None:  # open leg → parent
            return ("vertex", parent_of[v])
        if child.interaction is None:
            return ("external", child.legs[0])
        w = index[id(child)]
        open_leg = vertices[w][1].index(None)
        return ("vertex", (w, open_leg))

    chains = []
    for start in sorted(fermion_legs):
        v, leg = ext_at[start]
        inter = interactions[vertices[v][0]]
        if inter.particles[leg] < 0:
            continue  # a column end: reached from its row end
        while True:
            inter = interactions[vertices[v][0]]
            pair = [p for p in inter.fermion_pairs if p[0] == leg]
            if not pair:
                raise ModelFormatError(f"interaction {inter.index} {inter.particles}: a fermion line enters on leg {leg}, "
                                       f"which is not the row leg of a fermion pair {inter.fermion_pairs}")
            kind, where = across(v, pair[0][1])
            if kind == "external":
                chains.append((start, where))
                break
            v, leg = where
    if 2 * len(chains) != len(list(fermion_legs)):
        raise ModelFormatError(f"fermion lines of a diagram do not close: chains {chains} for external fermions "
                               f"{sorted(fermion_legs)}")
    chains.sort()
    return _parity([x for ch in chains for x in ch]), tuple(chains)


# ------------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------------
def _order_vector(orders: Iterable[tuple[str, int]], names: dict[str, int]) -> tuple[int, ...]:
    v = [0] * len(names)
    for k, n in orders:
        v[names[k]] += n
    return tuple(v)


def _order_items(vec: Sequence[int], names: Sequence[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((names[i], int(x)) for i, x in enumerate(vec) if x))


def _as_constraints(orders: Any) -> list[OrderConstraint]:
    if orders is None:
        return []
    if isinstance(orders, Mapping):
        out = []
        for k, v in orders.items():
            squared = k.endswith("^2")
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidInputError(f"orders: value of {k!r} must be an int (an upper bound), got {v!r}; "
                                        "use OrderConstraint for other relations")
            out.append(OrderConstraint(k[:-2] if squared else k, "<=", v, squared))
        return out
    out = []
    for c in orders:
        if not isinstance(c, OrderConstraint):
            raise InvalidInputError(f"orders: expected OrderConstraint objects or a mapping name → int, got {c!r}")
        out.append(c)
    return out


def _upper(c: OrderConstraint) -> int | None:
    if c.relation in ("<=", "=="):
        return c.value
    if c.relation == "<":
        return c.value - 1
    return None


def _describe(model: Any, external: Sequence[int], n_initial: int) -> str:
    def name(code: int) -> str:
        try:
            return model.particle_by_pdg(code).name
        except UnknownParameterError:
            return str(code)

    def anti(code: int) -> int:
        try:
            return code if model.particle_by_pdg(code).selfconjugate else -code
        except UnknownParameterError:
            return -code

    ini = [name(anti(c)) for c in external[:n_initial]]
    fin = [name(c) for c in external[n_initial:]]
    return f"{' '.join(ini)} > {' '.join(fin)}"


def _eft_like(model: Any, eft_orders: Sequence[str]) -> set[str]:
    """EFT orders plus the orders only couplings that carry an EFT order carry (SMEFTsim's NPcXX)."""
    eft = set(eft_orders)
    carriers: dict[str, bool] = {}
    for c in model.couplings.values():
        is_eft = any(c.order.get(o, 0) > 0 for o in eft)
        for o, n in c.order.items():
            if n > 0:
                carriers[o] = carriers.get(o, True) and is_eft
    return eft | {o for o, only in carriers.items() if only}


def generate_diagrams(model: Any, external: Sequence[int], *, n_initial: int = 2, orders: Any = (),
                      excluded: Iterable[int] = (), forbidden_s_channels: Iterable[int] = (),
                      required_s_channels: Iterable[Any] = (), eft_orders: Sequence[str] = ("NP",),
                      max_eft_order: int = 1) -> DiagramSet:
    """Every tree-level diagram of an external state (see the module docstring).

    Args:
        model: a :class:`~sbihep.physics.ufo.model.UFOModel`.
        external: all-outgoing PDG codes of legs 0..n−1 (initial legs crossed: an incoming u is −2).
        n_initial: how many of the legs are initial (1 decay, 2 scattering).
        orders: :class:`~sbihep.physics.ufo.process_spec.OrderConstraint` objects, or a mapping
            name → upper bound (``{"QCD": 0, "NP^2": 2}``).
        excluded: PDG codes that may not be internal lines (both signs are excluded).
        forbidden_s_channels: PDG codes that may not be s-channel lines (both signs).
        required_s_channels: items ``(pdg, legs)`` — the line carrying exactly these external legs is
            ``pdg`` flowing towards them — or a PDG code / a set of PDG codes (some s-channel line of
            one of them, flowing from the initial to the final state).
        eft_orders: the coupling orders that count EFT insertions.
        max_eft_order: the largest EFT order a diagram may have.

    Returns:
        A :class:`DiagramSet`.

    Raises:
        UnknownParameterError: a PDG code the model lacks, or an unknown coupling order.
        InvalidInputError: fewer than three legs, a bad ``n_initial``, a state that does not
            conserve electric charge, or no diagram at all (the message names the process).
        UnsupportedProcessError: a diagram (or an external leg) that needs a Majorana fermion.
    """
    external = tuple(int(c) for c in external)
    n = len(external)
    if n < 3:
        raise InvalidInputError(f"external: a process needs at least 3 legs, got {external}")
    if n_initial not in (1, 2) or n_initial >= n:
        raise InvalidInputError(f"n_initial: must be 1 or 2 (and fewer than the {n} legs), got {n_initial!r}")
    particles = [model.particle_by_pdg(c) for c in external]
    process = _describe(model, external, n_initial)
    if abs(sum(p.charge for p in particles)) > 1e-9:
        raise InvalidInputError(f"process {process!r}: electric charge is not conserved")
    for p in particles:
        if p.is_fermion and p.selfconjugate:
            raise UnsupportedProcessError(f"process {process!r}: {p.name} is a Majorana fermion; sbihep's diagrams support Dirac fermions only")
        if p.spin == -1 or p.goldstoneboson:
            raise InvalidInputError(f"process {process!r}: {p.name} is a ghost or Goldstone boson (sbihep works in unitary gauge)")

    interactions = model_interactions(model)
    order_names = sorted(model.orders)
    name_index = {k: i for i, k in enumerate(order_names)}
    for inter in interactions:
        for k, _ in inter.orders:
            if k not in name_index:
                name_index[k] = len(order_names)
                order_names.append(k)
    constraints = _as_constraints(orders)
    for c in constraints:
        if c.name not in name_index:
            raise UnknownParameterError(f"orders: {c.name!r} is not a coupling order of model {model.name}")
    for e in eft_orders:
        if e not in name_index:
            raise UnknownParameterError(f"eft_orders: {e!r} is not a coupling order of model {model.name}")
    n_orders = len(order_names)
    bound = [10**9] * n_orders
    for k, o in model.orders.items():
        if o.expansion_order < 99:
            bound[name_index[k]] = min(bound[name_index[k]], o.expansion_order)
    for e in eft_orders:
        bound[name_index[e]] = min(bound[name_index[e]], max_eft_order)
    for c in constraints:
        u = _upper(c)
        if u is not None:
            bound[name_index[c.name]] = min(bound[name_index[c.name]], u)

    def anti(code: int) -> int:
        return code if model.particle_by_pdg(code).selfconjugate else -code

    excluded_set = {c for x in excluded for c in (int(x), anti(int(x)))}
    forbidden_set = {c for x in forbidden_s_channels for c in (int(x), anti(int(x)))}
    n_rest = n - 1
    full = (1 << n_rest) - 1
    all_legs = (1 << n) - 1
    initial_mask = (1 << n_initial) - 1

    def is_s_channel(mask: int) -> bool:
        return (mask & initial_mask) == 0 or (mask & initial_mask) == initial_mask

    # required s-channels
    required_exact: list[tuple[int, int]] = []  # (pdg flowing towards the legs, mask of legs)
    required_any: list[set[int]] = []
    for item in required_s_channels:
        if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], int):
            pdg, legs = int(item[0]), tuple(int(x) for x in item[1])
            if not legs or any(x < 0 or x >= n for x in legs):
                raise InvalidInputError(f"required_s_channels: legs {legs} out of range for {n} legs")
            mask = sum(1 << x for x in set(legs))
            if mask & initial_mask and (mask & initial_mask) != initial_mask:
                raise InvalidInputError(f"required_s_channels: legs {legs} hold only some initial legs; not an s-channel")
            model.particle_by_pdg(pdg)
            required_exact.append((pdg, mask))
        elif isinstance(item, (set, frozenset, list, tuple)):
            required_any.append({int(x) for x in item})
        else:
            model.particle_by_pdg(int(item))
            required_any.append({int(item)})
    # a required (pdg, legs) as a condition on the subtree with legs ⊆ {0..n−2}: (mask, label the
    # subtree's open leg must carry)
    req_lines: list[tuple[int, int]] = []
    for pdg, mask in required_exact:
        if mask >> (n - 1) & 1:  # contains the root leg: the complementary subtree, pdg flows out of it
            req_lines.append((all_legs & ~mask, pdg))
        else:  # pdg flows into the subtree: its open leg is labelled anti(pdg)
            req_lines.append((mask, anti(pdg)))
    def compatible(mask: int, particle: int) -> bool:
        for rmask, rparticle in req_lines:
            if mask == rmask:
                if particle != rparticle:
                    return False
            elif mask & rmask and not (mask & rmask == mask or mask & rmask == rmask):
                return False
        return True

    # interactions: open-leg options
    options = []  # (interaction, open leg, other legs, other labels)
    for inter in interactions:
        seen_labels = set()
        for k, x in enumerate(inter.particles):
            if x in seen_labels:
                continue
            seen_labels.add(x)
            others = tuple(j for j in range(len(inter.particles)) if j != k)
            options.append((inter, k, others, tuple(inter.particles[j] for j in others),
                            _order_vector(inter.orders, name_index)))

    # currents[mask]: parent label → list of Line
    currents: dict[int, dict[int, list[Line]]] = {}
    order_vec: dict[int, tuple[int, ...]] = {}  # id(line) → order vector
    for i in range(n_rest):
        line = Line((i,), external[i], None, (), external[i])
        currents[1 << i] = {external[i]: [line]}
        order_vec[id(line)] = (0,) * n_orders

    def submasks(mask: int):
        sub = (mask - 1) & mask
        while sub:
            yield sub
            sub = (sub - 1) & mask

    majorana_used = []
    masks = sorted(range(1, full + 1), key=lambda m: (bin(m).count("1"), m))
    for mask in masks:
        size = bin(mask).count("1")
        if size < 2:
            continue
        labels_here: set[int] = set()
        for sub in submasks(mask):
            labels_here.update(currents.get(sub, {}).keys())
        result: dict[int, list[Line]] = {}
        legs_tuple = tuple(i for i in range(n_rest) if mask >> i & 1)
        is_root = mask == full
        s_chan = is_s_channel(mask)
        for inter, k, others, labels, ovec in options:
            m = len(others)
            if m > size or not all(lab in labels_here for lab in labels):
                continue
            x = inter.particles[k]
            if is_root:
                if x != external[n - 1]:
                    continue
            else:
                if x in excluded_set or (s_chan and x in forbidden_set) or not compatible(mask, x):
                    continue
            if any(o > b for o, b in zip(ovec, bound)):
                continue
            # assign blocks to the other legs
            chosen: list[Line] = []

            def assign(j: int, remaining: int, last_min: dict[int, int], acc: tuple[int, ...]):
                lab = labels[j]
                if j == m - 1:
                    blocks = [remaining] if remaining else []
                else:
                    blocks = [b for b in submasks(remaining)] + [remaining]
                    blocks = [b for b in blocks if b != remaining]
                for b in blocks:
                    lows = (b & -b).bit_length() - 1
                    if lab in last_min and lows <= last_min[lab]:
                        continue
                    cands = currents.get(b, {}).get(lab)
                    if not cands:
                        continue
                    new_min = dict(last_min)
                    new_min[lab] = lows
                    for c in cands:
                        cv = order_vec[id(c)]
                        tot = tuple(a + q for a, q in zip(acc, cv))
                        if any(t > bb for t, bb in zip(tot, bound)):
                            continue
                        chosen.append(c)
                        if j == m - 1:
                            yield tuple(chosen), tot
                        else:
                            yield from assign(j + 1, remaining & ~b, new_min, tot)
                        chosen.pop()

            for kids, tot in assign(0, mask, {}, ovec):
                children: list[Line | None] = [None] * len(inter.particles)
                for j, c in zip(others, kids):
                    children[j] = c
                line = Line(legs_tuple, x, inter.index, tuple(children), anti(x), _order_items(tot, order_names))
                order_vec[id(line)] = tot
                if inter.majorana:
                    majorana_used.append(inter)
                result.setdefault(anti(x), []).append(line)
        if result:
            currents[mask] = result

    roots = [line for lines in currents.get(full, {}).values() for line in lines]
    last = Line((n - 1,), external[n - 1], None, (), external[n - 1])

    def uses_majorana(line: Line) -> bool:
        return any(interactions[sub.interaction].majorana for sub in line.internal_lines())

    # required "any" s-channels and exact ones that the root leg's complement cannot express
    def satisfies(line: Line) -> bool:
        internal = list(line.internal_lines())[:-1]  # the root vertex itself is not a line
        masks_present = {}
        for sub in internal:
            mk = sum(1 << x for x in sub.legs)
            masks_present[mk] = sub.particle
        for rmask, rparticle in req_lines:
            if masks_present.get(rmask) != rparticle:
                return False
        for alts in required_any:
            ok = False
            for sub in internal:
                mk = sum(1 << x for x in sub.legs)
                if not is_s_channel(mk):
                    continue
                flow = anti(sub.particle) if not mk & initial_mask else sub.particle
                if flow in alts:
                    ok = True
                    break
            if not ok:
                return False
        return True

    candidates = []
    for line in roots:
        if not satisfies(line):
            continue
        vec = order_vec[id(line)]
        if not all(c.allows(vec[name_index[c.name]]) for c in constraints if not c.squared):
            continue
        candidates.append((line, vec))

    squared = [c for c in constraints if c.squared]
    if squared:
        vecs = sorted({v for _, v in candidates})
        good = set()
        for a in vecs:
            for b in vecs:
                if all(c.allows(a[name_index[c.name]] + b[name_index[c.name]]) for c in squared):
                    good.add(a)
                    break
        candidates = [(l, v) for l, v in candidates if v in good]

    eft = _eft_like(model, eft_orders)
    if candidates and not any(c.name not in eft for c in constraints):
        weights = {k: o.hierarchy for k, o in model.orders.items() if k not in eft}

        def weighted(vec: Sequence[int]) -> int:
            return sum(weights.get(order_names[i], 0) * x for i, x in enumerate(vec))

        eft_idx = [name_index[e] for e in eft_orders]

        def level(vec: Sequence[int]) -> tuple[int, ...]:
            return tuple(vec[i] for i in eft_idx)

        wmin: dict[tuple[int, ...], int] = {}
        for _, v in candidates:
            key = level(v)
            wmin[key] = min(wmin.get(key, 10**9), weighted(v))
        base = wmin.get((0,) * len(eft_idx))
        limit = {k: (w if base is None else max(w, base)) for k, w in wmin.items()}
        candidates = [(l, v) for l, v in candidates if weighted(v) <= limit[level(v)]]

    fermions = [i for i, p in enumerate(particles) if p.is_fermion]
    diagrams = []
    for line, vec in candidates:
        if uses_majorana(line):
            raise UnsupportedProcessError(f"process {process!r}: a diagram needs a Majorana-fermion vertex "
                                          f"({interactions[line.interaction].particles}); not supported")
        lines = tuple(last if c is None else c for c in line.children)
        sign, _ = fermion_sign(lines, line.interaction, interactions, fermions)
        diagrams.append(Diagram(line.interaction, lines, sign, _order_items(vec, order_names)))
    if not diagrams:
        cons = ", ".join(map(str, constraints)) or "none"
        raise InvalidInputError(f"process {process!r}: no tree-level diagram in model {model.name} "
                                f"(coupling-order constraints: {cons}; excluded: {sorted(excluded_set) or 'none'}; "
                                f"max {'/'.join(eft_orders)} order {max_eft_order})")
    final = Counter(external[n_initial:])
    identical = math.prod(math.factorial(v) for v in final.values())
    return DiagramSet(external, n_initial, interactions, tuple(diagrams), identical, process)


def _node_sets(node: ProcessNode | None) -> tuple[set[int], set[int]]:
    if node is None:
        return set(), set()
    exc, forb = set(node.excluded), set(node.forbidden_s_channels)
    for d in node.decays:
        e, f = _node_sets(d)
        exc |= e
        forb |= f
    return exc, forb


def diagrams_for(model: Any, subprocess: Subprocess, spec: ProcessSpec, *, eft_orders: Sequence[str] = ("NP",),
                 max_eft_order: int = 1) -> DiagramSet:
    """The diagrams of one subprocess of a parsed process (:func:`~sbihep.physics.ufo.process_spec.parse_process`).

    Initial particles are crossed to all-outgoing legs; the core process's coupling-order
    constraints apply to the whole diagram (constraints written inside a decay are not applied);
    ``/`` and ``$$`` of the core process and of every decay apply to every line; each decay
    ``X > a b`` becomes a required s-channel: the internal line carrying exactly the external legs of
    a, b (decay products of products included) is an X.  Required s-channels written between two
    ``>`` of the core process become "some s-channel line of that particle".

    Args:
        model: the model the process was parsed in.
        subprocess: one of ``spec.subprocesses``.
        spec: the parsed process.
        eft_orders: as in :func:`generate_diagrams`.
        max_eft_order: as in :func:`generate_diagrams`.

    Returns:
        A :class:`DiagramSet` (legs: the initial particles, then ``subprocess.external_final``).

    Raises:
        InvalidInputError: no diagram, or a state that does not conserve charge (as :func:`generate_diagrams`).
        UnknownParameterError: an unknown particle or coupling order.
        UnsupportedProcessError: a diagram that needs a Majorana fermion.
    """
    def anti(code: int) -> int:
        return code if model.particle_by_pdg(code).selfconjugate else -code

    external = tuple(anti(c) for c in subprocess.initial) + tuple(subprocess.external_final)
    required: list[Any] = []

    def walk(chain: DecayChain, start: int) -> int:
        sub = dict(chain.decays)
        pos = start
        for i, _ in enumerate(chain.products):
            pos += walk(sub[i], pos) if i in sub else 1
        required.append((chain.parent, tuple(range(start, pos))))
        return pos - start

    decays = dict(subprocess.decays)
    pos = len(subprocess.initial)
    for k, _ in enumerate(subprocess.final):
        pos += walk(decays[k], pos) if k in decays else 1
    for label in spec.core.required_s_channels:
        codes = spec.multiparticles.get(label)
        if codes is None:
            codes = (model.particle(label).pdg_code,)
        required.append(frozenset(codes))
    excluded, forbidden = _node_sets(spec.core)
    return generate_diagrams(model, external, n_initial=len(subprocess.initial), orders=spec.orders,
                             excluded=excluded, forbidden_s_channels=forbidden, required_s_channels=required,
                             eft_orders=eft_orders, max_eft_order=max_eft_order)
