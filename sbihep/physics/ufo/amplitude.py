"""Evaluate the tree diagrams of one subprocess on batched wavefunctions: events × helicities × EFT components.

:class:`TreeAmplitude` takes a :class:`~sbihep.physics.ufo.diagrams.DiagramSet` (all tree diagrams of
one all-outgoing external state) and the Wilson coefficients θ to keep, and evaluates

    M_{h,c}(p; θ) = M⁰_{h,c}(p) + Σ_i θ_i M^i_{h,c}(p)

for every helicity configuration h that can be non-zero and every colour-basis element c, in the
layout of :class:`~sbihep.physics.processes.base.Amplitudes` (components (K, N, H, C), K = 1 + n).

How
---
* **Couplings** are exactly linear in θ (:meth:`~sbihep.physics.ufo.model.UFOModel.coupling_decomposition`),
  so every coupling is a vector of K components (g₀, ∂g/∂θ₁, …).  Every off-shell current carries
  a leading component axis too; at a vertex the components multiply with the product rule
  truncated at first order in θ (a product of two θ-dependent factors would be a double insertion,
  dimension 8, which SMEFT at dimension 6 drops).  Currents of subtrees without any θ-dependent
  coupling keep a component axis of length 1, so SM parts cost what they cost without EFT.
* **Colour**: the terms of an interaction are grouped by their colour tensor; a diagram with a
  choice of colour term at each vertex is one *colour-resolved diagram* with an exact colour tensor
  (:func:`~sbihep.physics.ufo.colour.contract`), expressed in a basis of their span
  (:func:`~sbihep.physics.ufo.colour.colour_basis`); the colour matrix of that basis is exact.
* **Shared subtrees**: a subtree that occurs in several diagrams is evaluated once per call
  (memoised on the :class:`~sbihep.physics.ufo.diagrams.Line` and its colour choice).
* **Helicities** are a batch axis: the external wavefunctions are gathered into the (N, H, 4)
  layout of all helicity configurations, and configurations that vanish at random phase-space
  points for every component are pruned when the amplitude is built.
* **Momenta** follow the UFO convention of :mod:`~sbihep.physics.ufo.lorentz_compile`: at each vertex
  the momentum of a line is the one flowing *into* the vertex, i.e. Σ over the line's external legs
  of (p for an incoming leg, −p for an outgoing one).  A line whose legs include every incoming leg
  takes the (equal, by momentum conservation) sum of the outgoing legs on its other side instead, so
  that an s-channel resonance sees the invariant mass of its decay products: near a narrow pole
  (h → b b̄, m_H/Γ_H ≈ 3·10⁴) the rounding of momentum conservation in a phase-space generator
  (~1e-13 GeV) would otherwise change |M|² at the 1e-10 level.
* **Propagators** carry the model's widths in s-channel lines and zero width in t-channel lines
  (MadGraph's default ``zerowidth_tchannel``); ``t_channel_widths=True`` keeps them everywhere.

Overall factor: the UFO couplings and propagators carry their factors of i, so the product of
Feynman rules is iM; M = −i × (that product) × the diagram's fermion sign.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.physics.processes.base import Amplitudes
from sbihep.physics.ufo.lorentz_compile import CompiledLorentz, compile_lorentz
from sbihep.physics.ufo.wavefunctions import external_wavefunctions, helicity_values

__all__ = ["TreeAmplitude", "VertexPiece"]

CDTYPE = torch.complex128
_COLOUR_DIM = {1: 1, 3: 3, -3: 3, 8: 8}
#: compiled vertices shared by every amplitude of the session: (spins, ((structure, leg order), …)) → CompiledLorentz
_COMPILED: dict[tuple, CompiledLorentz] = {}


@dataclass
class VertexPiece:
    """The terms of one interaction that share one colour tensor, fused into one compiled vertex.

    Attributes:
        interaction: index of the interaction.
        parts: the piece's Lorentz structures (canonical leg order) compiled in groups of equal
            momentum degree, each with the rows of ``couplings`` it takes.
        couplings: (S, K) complex128, S structures × K components (g₀, ∂g/∂θ₁, …) of each coupling
            (times the term's sign).
        colour: colour tensor over the interaction's canonical legs (one axis per leg, length 1, 3 or 8).
        active: the components k ≥ 1 (operators) whose couplings are not all zero.
    """

    interaction: int
    parts: tuple[tuple[CompiledLorentz, torch.Tensor], ...]
    couplings: torch.Tensor
    colour: np.ndarray
    active: tuple[int, ...] = ()


@dataclass(eq=False)
class _Node:
    """A colour-resolved subtree: a Line with one piece chosen at every vertex of it."""

    line: Any
    piece: VertexPiece | None  # None: external leg
    children: tuple["_Node | None", ...] = ()
    mass: float = 0.0
    width: float = 0.0
    active: tuple[int, ...] = ()


def _momentum_degrees(expression) -> frozenset:
    """The numbers of momenta P(μ, N) in the terms of a Lorentz expression."""
    return frozenset(sum(1 for f in term.factors if f.name == "P") for term in expression.terms)


def _colour_rep(particle) -> int:
    rep = int(particle.color)
    if rep not in _COLOUR_DIM:
        raise InvalidInputError(f"particle {particle.name}: colour representation {rep} is not supported (only 1, 3, 3̄, 8)")
    return rep


class TreeAmplitude:
    """All tree diagrams of one subprocess, compiled for batched evaluation.

    Events are evaluated in chunks of :attr:`chunk_size` (0: one batch).

    Args:
        model: the :class:`~sbihep.physics.ufo.model.UFOModel` (its inputs fix masses, widths and the
            SM part of the couplings; Wilson coefficients not in ``operators`` stay at the model's values).
        diagrams: the :class:`~sbihep.physics.ufo.diagrams.DiagramSet` of the subprocess.
        operators: the Wilson coefficients θ to keep as components (may be empty).
        decomposition: a :class:`~sbihep.physics.ufo.model.CouplingDecomposition` for exactly these
            operators (built when omitted).
        t_channel_widths: keep the widths in t-channel propagators.
        prune_helicities: drop helicity configurations that vanish (checked at random points in a
            random Lorentz frame: a massive leg's helicity is frame dependent).
        prune_sqrt_s: √s (GeV) of the random check points; default 2 × threshold + 500 GeV.
        fuse: evaluate each topology's SM diagram and its single EFT insertions as one diagram
            (:mod:`~sbihep.physics.ufo.fusion`; exact, and much faster with many operators).

    Attributes:
        external: all-outgoing PDG codes of the legs; ``incoming`` the physical PDG codes of the
            initial legs; ``masses`` (n,) the on-shell masses (GeV).
        helicities: (H, n) int tensor, the kept helicity configurations (physical helicities).
        colour: the :class:`~sbihep.physics.ufo.colour.ColourBasis`.
        average: 1 / (initial spins × initial colours × identical-particle factor).
        n_resolved: number of colour-resolved diagrams.
    """

    #: events per evaluation chunk (memory traffic, not arithmetic, bounds the speed on CPUs)
    chunk_size: int = 4096

    def __init__(
        self,
        model,
        diagrams,
        operators: Sequence[str] = (),
        *,
        decomposition=None,
        t_channel_widths: bool = False,
        prune_helicities: bool = True,
        prune_sqrt_s: float | None = None,
        fuse: bool = True,
    ) -> None:
        from sbihep.physics.ufo.colour import colour_basis, contract, parse_colour

        self.model = model
        self.diagrams = diagrams
        self.operators = tuple(operators)
        self.n_components = 1 + len(self.operators)
        self.t_channel_widths = bool(t_channel_widths)
        if not diagrams.diagrams:
            raise InvalidInputError("TreeAmplitude: the diagram set is empty")
        dec = decomposition if decomposition is not None else model.coupling_decomposition(self.operators)
        if tuple(dec.operators) != tuple(model.input_parameter(o).name for o in self.operators):
            raise InvalidInputError(f"TreeAmplitude: the decomposition is for {list(dec.operators)}, not {list(self.operators)}")
        self._decomposition = dec
        values = model.evaluate()
        self._model_values = values
        self.external = tuple(int(x) for x in diagrams.external)
        self.n_initial = int(diagrams.n_initial)
        self.n_legs = len(self.external)
        self._particles = [model.particle_by_pdg(pdg) for pdg in self.external]
        self.masses = tuple(float(values.mass(p)) for p in self._particles)
        self.incoming = tuple(self._physical_pdg(i) for i in range(self.n_initial))

        # ---- vertex pieces: terms grouped by colour tensor, Lorentz fused with couplings ----------
        # ---- diagrams of one topology (SM and single EFT insertions) fused into one --------------
        if fuse:
            from sbihep.physics.ufo.fusion import eft_order_of, fuse_diagrams

            def is_eft(interaction) -> bool:  # an insertion whose θ dependence the components carry
                return eft_order_of(interaction) and all(
                    self._coupling_components(t.coupling)[0] == 0 for t in interaction.terms)

            fused = fuse_diagrams(diagrams, is_eft)
            self._interactions, self._diagrams = fused.interactions, fused.diagrams
        else:
            self._interactions, self._diagrams = tuple(diagrams.interactions), tuple(diagrams.diagrams)
        self._pieces: dict[int, list[VertexPiece]] = {}
        used = {d.interaction for d in self._diagrams}
        for d in self._diagrams:
            for line in d.lines:
                used |= {x.interaction for x in line.internal_lines()}
        for index in sorted(used):
            self._pieces[index] = self._build_pieces(self._interactions[index], parse_colour)

        # ---- colour-resolved diagrams ------------------------------------------------------------
        self._node_cache: dict[Any, list[_Node]] = {}
        resolved: list[tuple[Any, VertexPiece, tuple[_Node, ...]]] = []
        for diagram in self._diagrams:
            options = [self._nodes(line) for line in diagram.lines]
            for piece in self._pieces[diagram.interaction]:
                for children in itertools.product(*options):
                    resolved.append((diagram, piece, children))
        self._resolved = resolved
        self.n_resolved = len(resolved)
        present: set[int] = set()
        for _, piece, children in resolved:
            present |= set(piece.active).union(*[c.active for c in children])
        #: the operators θ that enter at least one diagram (the others have exactly zero coefficients)
        self.operators_present = tuple(op for k, op in enumerate(self.operators, start=1) if k in present)
        tensors = [self._colour_tensor(piece, children, contract) for _, piece, children in resolved]
        self.colour = colour_basis(tensors)
        signs = torch.tensor([float(d.sign) for d, _, _ in resolved], dtype=torch.float64)
        coefficients = torch.as_tensor(np.array(self.colour.coefficients), dtype=CDTYPE)
        self._colour_coefficients = -1j * signs[:, None].to(CDTYPE) * coefficients  # (D, C), with M = −i × product
        self._colour_matrix = torch.as_tensor(np.array(self.colour.matrix))

        # ---- averaging ---------------------------------------------------------------------------
        spins, colours = 1, 1
        for i in range(self.n_initial):
            p = self._particles[i]
            spins *= len(helicity_values(p.spin, self.masses[i]))
            colours *= _COLOUR_DIM[_colour_rep(p)]
        self.average = 1.0 / (spins * colours * int(diagrams.identical_factor))

        # ---- helicities --------------------------------------------------------------------------
        self._leg_helicities = [helicity_values(p.spin, m) for p, m in zip(self._particles, self.masses)]
        configs = list(itertools.product(*self._leg_helicities))
        self.helicities = torch.tensor(configs, dtype=torch.int64).reshape(len(configs), self.n_legs)
        self.n_helicities_total = len(configs)
        if prune_helicities:
            self._prune_helicities(prune_sqrt_s)

    # ---- construction helpers ---------------------------------------------------------------------
    def _physical_pdg(self, leg: int) -> int:
        p = self._particles[leg]
        if leg < self.n_initial and not p.selfconjugate:
            return -p.pdg_code
        return p.pdg_code

    def _coupling_components(self, name: str) -> np.ndarray:
        dec = self._decomposition
        column = dec.index(name)
        return np.concatenate([[dec.constant[column]], dec.linear[:, column]]).astype(np.complex128)

    def _build_pieces(self, interaction, parse_colour) -> list[VertexPiece]:
        particles = [self.model.particle_by_pdg(pdg) for pdg in interaction.particles]
        spins = tuple(int(p.spin) for p in particles)
        groups: dict[bytes, tuple[np.ndarray, list]] = {}
        for term in interaction.terms:
            vertex = term.vertex
            reps = [_colour_rep(p) for p in vertex.particles]
            tensor = parse_colour(vertex.color[term.colour_index], reps)
            tensor = np.ascontiguousarray(np.transpose(tensor, term.leg_order))
            key = tensor.shape.__repr__().encode() + tensor.tobytes()
            groups.setdefault(key, (tensor, []))[1].append(term)
        pieces = []
        for tensor, terms in groups.values():
            # terms with the same Lorentz structure on the same legs add their couplings: one structure each
            by_structure: dict[tuple, list] = {}
            for t in terms:
                lorentz = t.vertex.lorentz[t.lorentz_index]
                entry = by_structure.setdefault((lorentz.name, lorentz.structure, t.leg_order), [t, 0])
                entry[1] = entry[1] + float(t.sign) * self._coupling_components(t.coupling)
            structures = [t.structure() for t, _ in by_structure.values()]
            couplings = np.stack([c for _, c in by_structure.values()])  # (S, K)
            keep = np.any(couplings != 0, axis=1)
            if not keep.any():
                continue
            structures = [x for x, k in zip(structures, keep) if k]
            couplings = couplings[keep]
            keys = [k for k, c in zip(by_structure, keep) if c]
            # structures of different momentum degree are compiled apart: a tensor train shared by, say,
            # the SM metric term and a P³ EFT structure carries rounding relative to the larger (E² more
            # at E ~ 250 GeV, 1e-11 … 1e-9 of the SM part in e+e- → W+W- with cW)
            by_degree: dict[frozenset, list[int]] = {}
            for i, expr in enumerate(structures):
                by_degree.setdefault(_momentum_degrees(expr), []).append(i)
            parts = []
            for rows in by_degree.values():
                signature = (spins, tuple((keys[i][1], keys[i][2]) for i in rows))
                lorentz = _COMPILED.get(signature)
                if lorentz is None:
                    name = "+".join(keys[i][0] for i in rows)
                    lorentz = _COMPILED[signature] = compile_lorentz([structures[i] for i in rows], spins, name)
                parts.append((lorentz, torch.tensor(rows, dtype=torch.int64)))
            active = tuple(int(k) for k in np.flatnonzero(np.any(couplings != 0, axis=0)) if k > 0)
            pieces.append(VertexPiece(interaction.index, tuple(parts), torch.as_tensor(couplings), tensor, active))
        return pieces

    def _nodes(self, line) -> list[_Node]:
        """Every colour-resolved version of a line (memoised)."""
        cached = self._node_cache.get(line)
        if cached is not None:
            return cached
        if line.interaction is None:
            nodes = [_Node(line, None)]
        else:
            options = [[None] if child is None else self._nodes(child) for child in line.children]
            nodes = []
            for piece in self._pieces.get(line.interaction, []):
                for children in itertools.product(*options):
                    mass, width = self._propagator(line)
                    active = tuple(sorted(set(piece.active).union(*[c.active for c in children if c is not None])))
                    nodes.append(_Node(line, piece, tuple(children), mass, width, active))
        self._node_cache[line] = nodes
        return nodes

    def _colour_tensor(self, piece: VertexPiece, children: Sequence[_Node], contract) -> np.ndarray:
        factors: list[tuple[np.ndarray, tuple]] = []

        def label(node: _Node) -> Any:
            if node.piece is None:
                return ("ext", node.line.legs[0])
            return ("line", id(node))

        def add(node_piece: VertexPiece, kids: Sequence[_Node | None], own: Any) -> None:
            labels = tuple(own if kid is None else label(kid) for kid in kids)
            factors.append((node_piece.colour, labels))
            for kid in kids:
                if kid is not None and kid.piece is not None:
                    add(kid.piece, kid.children, label(kid))

        add(piece, children, None)
        return contract(factors, [("ext", i) for i in range(self.n_legs)])

    # ---- evaluation -------------------------------------------------------------------------------
    def _external(self, momenta: torch.Tensor, plan: "_HelicityPlan", gauge_leg: int | None = None) -> list[torch.Tensor]:
        """Wavefunctions (1, N, h_i, 4) (or (1, N, h_i) for scalars) of every leg i on its own distinct
        helicities; the vector leg ``gauge_leg`` gets its momentum instead of its polarisation (Ward identities)."""
        out = []
        for leg, p in enumerate(self._particles):
            k = momenta[:, leg]
            values = tuple(u[0] for u in plan.configurations((leg,)))
            if leg == gauge_leg:
                if p.spin != 3:
                    raise InvalidInputError(f"gauge_leg {leg} is not a vector boson ({p.name})")
                out.append(k.to(CDTYPE)[None, :, None, :].expand(1, k.shape[0], len(values), 4))
                continue
            incoming = leg < self.n_initial
            if p.spin == 2:
                column = self.external[leg] < 0  # label is an antiparticle: ψ slot
                kind = ("u" if incoming else "v") if column else ("vbar" if incoming else "ubar")
            else:
                kind = "in" if incoming else "out"
            out.append(external_wavefunctions(k, p.spin, kind, self.masses[leg], values)[None])  # (1, N, h_i, [4])
        return out

    def _line_momenta(self, momenta: torch.Tensor):
        sign = torch.ones(self.n_legs, dtype=momenta.dtype, device=momenta.device)
        sign[self.n_initial:] = -1.0
        incoming = momenta * sign[None, :, None]  # (N, n, 4): momentum flowing into the diagram
        cache: dict[tuple[int, ...], torch.Tensor] = {}

        def get(legs: tuple[int, ...]) -> torch.Tensor:
            if legs not in cache:
                if all(i in legs for i in range(self.n_initial)):
                    # An s-channel line on the side of the initial state: its momentum is that of the
                    # final-state legs on the other side (equal by momentum conservation, which phase-space
                    # generators keep only to rounding, ~1e-13 GeV); a resonance decaying into those legs
                    # then sees the invariant mass of its decay products, as its phase space sampled it.
                    rest = [i for i in range(self.n_legs) if i not in legs]
                    cache[legs] = momenta[:, rest].sum(1)[:, None, :]  # (N, 1, 4)
                else:
                    cache[legs] = incoming[:, list(legs)].sum(1)[:, None, :]  # (N, 1, 4)
            return cache[legs]

        return get

    def _is_t_channel(self, legs: tuple[int, ...]) -> bool:
        n_in = sum(1 for leg in legs if leg < self.n_initial)
        return 0 < n_in < self.n_initial

    def _vertex(self, piece: VertexPiece, inputs: list[torch.Tensor | None], active: list[tuple[int, ...]],
                moms: list, open_leg: int | None, mass: float = 0.0, width: float = 0.0,
                q: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The product rule truncated at first order in θ, on sparse components.

        Each input carries the SM part and the components of the operators in its ``active`` tuple
        (leading axis 1 + len(active)); the result carries those of the union with the piece's own.
        ``q`` is the open line's own momentum (for its propagator).
        """
        def call(wfs, couplings):
            total = None
            for i, (lor, rows) in enumerate(piece.parts):
                c = couplings.index_select(0, rows)
                if total is not None or i < len(piece.parts) - 1:
                    if not bool(c.ne(0).any()):  # e.g. an EFT-only structure in an SM-coupling call: zero
                        continue
                if open_leg is None:
                    value = lor.amplitude(wfs, moms, c)
                else:
                    value = lor.offshell(open_leg, wfs, moms, mass, width, c, q=q)
                total = value if total is None else total + value
            return total

        spins = piece.parts[0][0].spins

        union = tuple(sorted(set(piece.active).union(*[a for a in active if a])))
        sm = [None if x is None else x[0] for x in inputs]
        base = call(sm, piece.couplings[:, (0, *piece.active)])  # (*b, 1 + len(piece.active), [4])
        base = torch.movedim(base, -2 if (open_leg is not None and spins[open_leg] != 1) else -1, 0)
        if not any(active):  # no input carries θ components: the piece's own are all there is
            return base, union
        where = {k: i + 1 for i, k in enumerate(union)}
        out = base.new_zeros((1 + len(union),) + base.shape[1:])
        out[0] = base[0]
        if piece.active:
            out[[where[k] for k in piece.active]] += base[1:]
        for j, x in enumerate(inputs):
            if x is None or not active[j]:
                continue
            wfs = [None if y is None else (x[1:] if i == j else y[0]) for i, y in enumerate(inputs)]
            out[[where[k] for k in active[j]]] += call(wfs, piece.couplings[:, 0])
        return out, union

    def _evaluate_node(self, node: _Node, ext: list[torch.Tensor], moms, memo: dict) -> torch.Tensor:
        if node.piece is None:
            return ext[node.line.legs[0]]
        value = memo.get(id(node))
        if value is not None:
            return value
        inputs, vertex_moms, open_leg = [], [], None
        legs = tuple(node.line.legs)
        for leg, child in enumerate(node.children):
            if child is None:
                open_leg = leg
                inputs.append(None)
                vertex_moms.append(None)
            else:
                value = self._evaluate_node(child, ext, moms, memo)
                inputs.append(value.index_select(2, memo["plan"].gather(legs, tuple(child.line.legs))))
                vertex_moms.append(moms(tuple(child.line.legs)))
        active = [() if c is None else c.active for c in node.children]
        q = None if open_leg is None else moms(tuple(node.line.legs))  # the line's own momentum, not Σ children
        value, union = self._vertex(node.piece, inputs, active, vertex_moms, open_leg, node.mass, node.width, q)
        if union != node.active:  # pragma: no cover - construction guarantees it
            raise AssertionError("component bookkeeping")
        memo[id(node)] = value
        return value

    def _propagator(self, line) -> tuple[float, float]:
        """Mass and width (GeV) of an internal line's propagator."""
        particle = self.model.particle_by_pdg(line.particle)
        mass, width = float(self._model_values.mass(particle)), float(self._model_values.width(particle))
        if self._is_t_channel(tuple(line.legs)) and not self.t_channel_widths:
            width = 0.0
        return mass, width

    def detach_model(self) -> None:
        """Drop the references to the model (everything evaluation needs is compiled), e.g. before pickling."""
        self.model = None
        self._decomposition = None
        self._model_values = None

    def diagram_amplitudes(self, momenta: torch.Tensor, helicities: torch.Tensor | None = None,
                           gauge_leg: int | None = None) -> torch.Tensor:
        """Every colour-resolved diagram's amplitude (without colour, sign and −i): (D, K, N, H) complex128.

        Args:
            momenta: (N, n, 4) float64 physical momenta (GeV), incoming legs first.
            helicities: (H, n) configurations (default: the kept ones).
            gauge_leg: a vector leg whose polarisation is replaced by its momentum (Ward identities).
        """
        hel = self.helicities if helicities is None else helicities
        plan = _HelicityPlan(hel)
        ext = self._external(momenta, plan, gauge_leg)
        moms = self._line_momenta(momenta)
        memo: dict = {"plan": plan}
        K = self.n_components
        everything = tuple(range(self.n_legs))
        out = []
        for _, piece, children in self._resolved:
            inputs = [self._evaluate_node(c, ext, moms, memo).index_select(2, plan.gather(everything, tuple(c.line.legs)))
                      for c in children]
            vertex_moms = [moms(tuple(c.line.legs)) for c in children]
            amp, union = self._vertex(piece, inputs, [c.active for c in children], vertex_moms, None)  # (1 + len(union), N, H)
            if len(union) != K - 1:
                full = amp.new_zeros((K,) + amp.shape[1:])
                full[[0, *union]] = amp
                amp = full
            out.append(amp)
        return torch.stack(out)

    def components(self, momenta: torch.Tensor, helicities: torch.Tensor | None = None,
                   gauge_leg: int | None = None) -> torch.Tensor:
        """M_{k,n,h,c}: (K, N, H, C) complex128 in the colour basis (see the module docstring); arguments
        as :meth:`diagram_amplitudes`."""
        if momenta.ndim != 3 or momenta.shape[1:] != (self.n_legs, 4):
            raise ShapeError(f"momenta must have shape (N, {self.n_legs}, 4), got {tuple(momenta.shape)}")
        chunk = self.chunk_size
        if chunk and momenta.shape[0] > chunk:  # the intermediates of a chunk stay in cache: faster than one batch
            return torch.cat([self.components(part, helicities, gauge_leg) for part in momenta.split(chunk)], dim=1)
        diagrams = self.diagram_amplitudes(momenta, helicities, gauge_leg)  # (D, K, N, H)
        coeff = self._colour_coefficients.to(diagrams.device)
        return torch.einsum("dknh,dc->knhc", diagrams, coeff)

    def amplitudes(self, momenta: torch.Tensor) -> Amplitudes:
        """The :class:`~sbihep.physics.processes.base.Amplitudes` of the subprocess at (N, n, 4) momenta."""
        return Amplitudes(self.components(momenta), self._colour_matrix, self.average)

    def _prune_helicities(self, sqrt_s: float | None, n_points: int = 3, seed: int = 7) -> None:
        from sbihep.physics.phasespace import rambo

        n_final = self.n_legs - self.n_initial
        masses_in = self.masses[: self.n_initial]
        masses_out = self.masses[self.n_initial:]
        if sqrt_s is None:
            sqrt_s = 2.0 * max(sum(masses_out), sum(masses_in)) + 500.0
        if n_final < 2 or self.n_initial != 2:
            return  # a 2 → 1 or decay kinematics has no random check points here; keep every configuration
        gen = torch.Generator().manual_seed(seed)
        r = torch.rand(n_points, 4 * n_final, generator=gen, dtype=torch.float64)
        final, _ = rambo(r, sqrt_s, masses_out)
        momenta = torch.cat([_incoming_pair(sqrt_s, masses_in, n_points), final], dim=1)
        # in a random frame: the helicity of a massive leg is frame dependent (a boost not along its
        # momentum mixes its helicities), so a configuration that vanishes in the centre-of-mass frame
        # (e.g. e⁻_R e⁺_L → W⁺(+) W⁻(−)) need not vanish in the lab frame and must be kept
        from sbihep.physics.ufo.checks import random_lorentz_transforms

        momenta = torch.einsum("nij,nkj->nki", random_lorentz_transforms(n_points, seed), momenta)
        comps = self.components(momenta, self.helicities)  # (K, N, H, C)
        size = comps.abs().pow(2).sum(dim=(0, 3)).amax(0)  # (H,)
        keep = size > 1e-24 * float(size.max())
        if not bool(keep.any()):
            raise InvalidInputError("TreeAmplitude: every helicity configuration vanishes at the check points "
                                    "(the process has no tree-level amplitude with these couplings)")
        self.helicities = self.helicities[keep]


class _HelicityPlan:
    """Which helicity configurations each subtree needs: a subtree over legs S depends only on the
    helicities of S, so it is evaluated once per distinct sub-configuration and gathered where a
    parent needs it (helicities stay a batch axis, without repeating work)."""

    def __init__(self, helicities: torch.Tensor) -> None:
        self.rows = [tuple(int(h) for h in r) for r in helicities.tolist()]
        self.device = helicities.device
        self._sub: dict[tuple[int, ...], tuple[list[tuple[int, ...]], dict[tuple[int, ...], int]]] = {}
        self._gather: dict[tuple, torch.Tensor] = {}

    def configurations(self, legs: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The distinct helicity configurations of ``legs``, in order of first appearance."""
        return self._index(legs)[0]

    def _index(self, legs: tuple[int, ...]):
        if legs not in self._sub:
            unique = list(dict.fromkeys(tuple(r[i] for i in legs) for r in self.rows))
            self._sub[legs] = (unique, {u: k for k, u in enumerate(unique)})
        return self._sub[legs]

    def gather(self, parent: tuple[int, ...], child: tuple[int, ...]) -> torch.Tensor:
        """For each configuration of ``parent``, the index of its restriction to ``child``."""
        key = (parent, child)
        if key not in self._gather:
            position = [parent.index(leg) for leg in child]
            lookup = self._index(child)[1]
            self._gather[key] = torch.tensor([lookup[tuple(u[i] for i in position)] for u in self._index(parent)[0]],
                                             dtype=torch.int64, device=self.device)
        return self._gather[key]


def _incoming_pair(sqrt_s: float, masses: Sequence[float], n: int) -> torch.Tensor:
    """Two incoming momenta along ±z in their centre-of-mass frame: (n, 2, 4)."""
    m1, m2 = (float(masses[0]), float(masses[1])) if len(masses) == 2 else (float(masses[0]), 0.0)
    s = sqrt_s * sqrt_s
    e1 = (s + m1 * m1 - m2 * m2) / (2 * sqrt_s)
    e2 = (s + m2 * m2 - m1 * m1) / (2 * sqrt_s)
    pz = np.sqrt(max(e1 * e1 - m1 * m1, 0.0))
    p = torch.tensor([[e1, 0.0, 0.0, pz], [e2, 0.0, 0.0, -pz]], dtype=torch.float64)
    return p[None].expand(n, 2, 4).clone()
