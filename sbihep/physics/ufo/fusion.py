"""Fuse diagrams that differ only in which interaction sits at a vertex (SM or one EFT insertion).

SMEFTsim writes every operator's part of a vertex as its own UFO vertex with its own coupling orders,
so the diagram generator (:mod:`~sbihep.physics.ufo.diagrams`) produces, for one topology, the SM
diagram and one diagram per (vertex, operator) insertion: e⁺e⁻ → μ⁺μ⁻ at NP ≤ 1 has 26 diagrams on
three topologies.  Evaluated one by one, every insertion repeats the currents of the whole topology.

:func:`fuse_diagrams` merges such a group into ONE diagram whose vertices hold the terms of every
interaction seen at that position (relabelled to a common leg order).  The evaluator's product rule
truncated at first order in θ then gives exactly the sum of the group — provided the group is the
*complete* set of choices with at most one EFT interaction: then the fused diagram's expansion (SM
everywhere, or one EFT vertex) is term by term the group, and the double insertions it would also
contain are dropped by the truncation.  A position that only EFT interactions reach (a contact
vertex) is allowed once: the group is then every EFT interaction there with SM everywhere else.  A group that is not complete (orders that keep some
insertions and drop others) is left as it is.  Fermion signs: the SM choice's sign (for a contact
group, the first member's) is the fused diagram's; an insertion whose diagram has the opposite sign
gets its terms' sign flipped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

__all__ = ["FusedDiagrams", "fuse_diagrams", "eft_order_of"]


@dataclass(frozen=True)
class FusedDiagrams:
    """The diagrams after fusion.

    Attributes:
        interactions: the original interactions followed by the fused ones (indexed by ``index``).
        diagrams: the diagrams to evaluate (fused ones use the new interactions).
        n_original: the number of diagrams before fusion.
    """

    interactions: tuple[Any, ...]
    diagrams: tuple[Any, ...]
    n_original: int


def _key(line) -> tuple:
    return (tuple(line.legs), int(line.particle))


def _positions(diagram) -> dict[tuple, tuple[int, tuple]]:
    """Vertex position → (interaction index, the line keys attached to each canonical leg; "open" at the
    line going up).  Positions: "root", or the key of the internal line a vertex is the top of."""
    out: dict[tuple, tuple[int, tuple]] = {"root": (diagram.interaction, tuple(_key(x) for x in diagram.lines))}

    def walk(line) -> None:
        if line.interaction is None:
            return
        out[_key(line)] = (line.interaction, tuple("open" if c is None else _key(c) for c in line.children))
        for c in line.children:
            if c is not None:
                walk(c)

    for x in diagram.lines:
        walk(x)
    return out


def eft_order_of(interaction, eft_orders: Sequence[str] = ("NP",)) -> bool:
    """Whether the interaction carries one of the EFT coupling orders."""
    orders = dict(interaction.orders)
    return any(orders.get(o, 0) > 0 for o in eft_orders)


def fuse_diagrams(diagram_set, is_eft: Callable[[Any], bool] = eft_order_of) -> FusedDiagrams:
    """Fuse every complete group of same-topology diagrams (see the module docstring).

    Args:
        diagram_set: a :class:`~sbihep.physics.ufo.diagrams.DiagramSet`.
        is_eft: which interactions are EFT insertions.  They must vanish at θ = 0 with their θ
            dependence carried as components by the evaluator — otherwise the fused diagram's
            double insertions are numbers and not dropped (the evaluator passes such a predicate).
    """
    from sbihep.physics.ufo.diagrams import Diagram, Line

    interactions = list(diagram_set.interactions)
    diagrams = list(diagram_set.diagrams)
    groups: dict[frozenset, list] = {}
    for d in diagrams:
        groups.setdefault(frozenset(_positions(d)), []).append(d)
    out: list = []
    for members in groups.values():
        fused = _fuse_group(members, interactions, is_eft, Diagram, Line) if len(members) > 1 else None
        out.extend([fused] if fused is not None else members)
    return FusedDiagrams(tuple(interactions), tuple(out), len(diagrams))


def _fuse_group(members, interactions: list, is_eft, Diagram, Line):
    layouts = [_positions(d) for d in members]
    positions = sorted(layouts[0], key=repr)
    choice_of = []
    for layout in layouts:
        choice_of.append(tuple(layout[p][0] for p in positions))
    if len(set(choice_of)) != len(choice_of):
        return None
    seen: list[list[int]] = [sorted({c[i] for c in choice_of}) for i in range(len(positions))]
    sm = [[k for k in s if not is_eft(interactions[k])] for s in seen]
    eft = [[k for k in s if is_eft(interactions[k])] for s in seen]
    pure_eft = [i for i, x in enumerate(sm) if not x]  # positions only EFT interactions reach (contact terms)
    if len(pure_eft) > 1:
        return None
    complete = set() if pure_eft else set(itertools.product(*sm))
    for i, extra in enumerate(eft):
        if pure_eft and i != pure_eft[0]:
            continue
        for k in extra:
            for rest in itertools.product(*[sm[j] for j in range(len(positions)) if j != i]):
                choice = list(rest)
                choice.insert(i, k)
                complete.add(tuple(choice))
    if complete != set(choice_of):
        return None
    if pure_eft:
        reference_sign = members[0].sign
    else:
        sm_signs = {d.sign for d, c in zip(members, choice_of) if all(not is_eft(interactions[k]) for k in c)}
        if len(sm_signs) != 1:
            return None
        reference_sign = sm_signs.pop()
    flip: dict[tuple[int, int], int] = {}  # (position, interaction) → sign relative to the SM choice
    for d, c in zip(members, choice_of):
        for i, k in enumerate(c):
            if is_eft(interactions[k]):
                flip[(i, k)] = d.sign * reference_sign
    # the merged interaction at each position, its legs aligned with the first member's layout
    reference = layouts[0]
    merged_index: dict[tuple, int] = {}
    for i, position in enumerate(positions):
        ref_interaction, ref_attached = reference[position]
        terms = []
        for k in seen[i]:
            attached = next(layout[position][1] for layout in layouts if layout[position][0] == k)
            perm = [attached.index(a) for a in ref_attached]  # reference leg → leg of interaction k
            sign = flip.get((i, k), 1)
            for t in interactions[k].terms:
                terms.append(replace(t, leg_order=tuple(t.leg_order[j] for j in perm), sign=t.sign * sign))
        base = interactions[ref_interaction]
        merged = replace(base, index=len(interactions), terms=tuple(terms), orders=())
        interactions.append(merged)
        merged_index[position] = merged.index

    def rebuild(line):
        if line.interaction is None:
            return line
        children = tuple(None if c is None else rebuild(c) for c in line.children)
        return replace(line, interaction=merged_index[_key(line)], children=children)

    first = members[0]
    return Diagram(merged_index["root"], tuple(rebuild(x) for x in first.lines), reference_sign, ())
