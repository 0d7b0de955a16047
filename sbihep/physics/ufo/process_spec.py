"""Process specification in MadGraph syntax, expanded into subprocesses of a UFO model.

Syntax (as MadGraph 5 reads ``generate``):

* ``a b > c d …`` — a 2 → n process (``a > c d`` — a 1 → n decay); particle names are the model's
  (``W+``, ``e-``, ``b~`` …), matched exactly or, when unambiguous, case-insensitively (``w+`` = ``W+``);
* multiparticle labels: ``p``, ``j`` (g u c d s u~ c~ d~ s~, plus b b~ when the model's b quark is
  massless — MadGraph's rule, so a massless-b model gets the 5-flavour proton), ``l+`` (e+ mu+), ``l-``
  (e- mu-), ``vl`` (ve vm vt), ``vl~`` (ve~ vm~ vt~), found by PDG code; user labels via
  ``multiparticles={"q": "u d", …}`` override them;
* ``a b > x > c d`` — required s-channel ``x`` (every label between the first and last ``>``);
* ``/ x y`` — exclude x and y (and their antiparticles) from every propagator;
* ``$$ x`` — no s-channel x propagator (diagrams removed); ``$ x`` — s-channel x kept but vetoed
  on-shell (MadGraph's bwcutoff region), recorded for the phase space;
* coupling orders: ``QCD=0`` (MadGraph: ``=`` means ≤), ``NP<=1``, ``QED==2``, squared orders
  ``QED^2==4``, ``NP^2<=2`` (orders of |M|², i.e. of interference terms); also the ``orders=`` argument
  (``{"QCD": 0}`` means ≤ 0; a string value such as ``"==1"`` gives the relation);
* decay chains: ``p p > w+ h, w+ > e+ ve, h > b b~`` (comma-separated decays of the core process's
  final-state particles) and parentheses for decays of decay products:
  ``p p > t t~, (t > w+ b, w+ > e+ ve), (t~ > w- b~, w- > j j)``.  One decay listed for a label decays
  every particle of that label; as many decays as particles assigns them in order.

Expansion: every combination of label members that conserves electric charge and colour triality
(and, for a 1 → 2 decay, has a vertex in the model) becomes a :class:`Subprocess`; final states that
differ only by the order of particles of the *same* label are one subprocess; two subprocesses that
differ by swapping the initial partons are one subprocess with ``mirror=True`` and both beam
assignments in ``beams`` (MadGraph's mirror processes).  Whether diagrams exist at the requested
coupling orders is decided by the diagram generator, not here.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep._toml import did_you_mean
from sbihep.physics.ufo.model import UFOModel
from sbihep.physics.ufo.objects import Particle

__all__ = [
    "OrderConstraint",
    "ProcessNode",
    "DecayChain",
    "Subprocess",
    "ProcessSpec",
    "default_multiparticles",
    "parse_process",
]

_RELATIONS = ("<=", ">=", "==", "<", ">")


@dataclass(frozen=True)
class OrderConstraint:
    """A coupling-order constraint: ``name relation value`` on the amplitude (``squared=False``) or on
    |M|² (``squared=True``, MadGraph's ``NAME^2``)."""

    name: str
    relation: str
    value: int
    squared: bool = False

    def allows(self, order: int) -> bool:
        """Whether an amplitude (or |M|² term) of this order passes."""
        return {"<=": order <= self.value, ">=": order >= self.value, "==": order == self.value,
                "<": order < self.value, ">": order > self.value}[self.relation]

    def __str__(self) -> str:
        return f"{self.name}{'^2' if self.squared else ''}{self.relation}{self.value}"


@dataclass(frozen=True)
class ProcessNode:
    """One ``initial > final`` piece of the process string (the core process or one decay), unexpanded.

    Attributes:
        initial, final: labels as written (particle names or multiparticle labels).
        required_s_channels: labels written between two ``>``.
        excluded: PDG codes excluded from propagators (``/``; particles and antiparticles).
        forbidden_s_channels: PDG codes that may not appear as s-channel propagators (``$$``).
        onshell_vetoed: PDG codes whose s-channel propagators must stay off shell (``$``).
        orders: coupling-order constraints written in this piece.
        decays: the decays of this piece's final-state particles.
        text: the piece as written.
    """

    initial: tuple[str, ...]
    final: tuple[str, ...]
    required_s_channels: tuple[str, ...] = ()
    excluded: tuple[int, ...] = ()
    forbidden_s_channels: tuple[int, ...] = ()
    onshell_vetoed: tuple[int, ...] = ()
    orders: tuple[OrderConstraint, ...] = ()
    decays: tuple["ProcessNode", ...] = ()
    text: str = ""


@dataclass(frozen=True)
class DecayChain:
    """A decay of one final-state particle, expanded: ``parent → products``, each product possibly
    decayed further (``decays``: index in ``products`` → chain)."""

    parent: int
    products: tuple[int, ...]
    decays: tuple[tuple[int, "DecayChain"], ...] = ()
    node: ProcessNode | None = field(default=None, compare=False, repr=False)

    def external(self) -> tuple[int, ...]:
        """The stable particles this chain ends in, decays expanded in place."""
        sub = dict(self.decays)
        out: list[int] = []
        for i, pdg in enumerate(self.products):
            out.extend(sub[i].external() if i in sub else (pdg,))
        return tuple(out)


@dataclass(frozen=True)
class Subprocess:
    """One partonic subprocess.

    Attributes:
        initial: PDG codes of the incoming particles (one for a decay process, two for scattering).
        final: PDG codes of the core process's final state.
        decays: index in ``final`` → :class:`DecayChain` for decayed particles.
        beams: the assignments of the initial particles to (beam 1, beam 2): ``((a, b),)``, or
            ``((a, b), (b, a))`` for a mirrored subprocess.
        mirror: the subprocess also runs with the initial partons swapped (same |M|², momenta p₁ ↔ p₂).
        names: model names of ``initial + external_final``.
    """

    initial: tuple[int, ...]
    final: tuple[int, ...]
    decays: tuple[tuple[int, DecayChain], ...] = ()
    beams: tuple[tuple[int, ...], ...] = ()
    mirror: bool = False
    names: tuple[str, ...] = ()

    @property
    def external_final(self) -> tuple[int, ...]:
        """The stable final state (decay products in place of the decayed particles)."""
        sub = dict(self.decays)
        out: list[int] = []
        for i, pdg in enumerate(self.final):
            out.extend(sub[i].external() if i in sub else (pdg,))
        return tuple(out)

    @property
    def external(self) -> tuple[int, ...]:
        """``initial + external_final``."""
        return self.initial + self.external_final

    def key(self) -> tuple:
        return (self.initial, self.final, self.decays)


@dataclass(frozen=True)
class ProcessSpec:
    """A parsed and expanded process.

    Attributes:
        text: the process string.
        model_name, model_hash: the model it was expanded in.
        core: the :class:`ProcessNode` of the core process (its ``decays`` hold the decay pieces).
        orders: the core process's coupling-order constraints (string and ``orders=`` argument merged).
        operators: Wilson coefficients (external parameters) to keep as θ.
        multiparticles: label → PDG codes of every label the string used.
        subprocesses: the expanded subprocesses.
    """

    text: str
    model_name: str
    model_hash: str
    core: ProcessNode
    orders: tuple[OrderConstraint, ...]
    operators: tuple[str, ...]
    multiparticles: dict[str, tuple[int, ...]]
    subprocesses: tuple[Subprocess, ...]

    @property
    def initial_flavours(self) -> tuple[tuple[int, ...], ...]:
        """Every (beam 1, beam 2) flavour pair of every subprocess."""
        return tuple(b for s in self.subprocesses for b in s.beams)


_DEFAULT_PDGS = {
    "p": (21, 2, 4, 1, 3, -2, -4, -1, -3),
    "j": (21, 2, 4, 1, 3, -2, -4, -1, -3),
    "l+": (-11, -13),
    "l-": (11, 13),
    "vl": (12, 14, 16),
    "vl~": (-12, -14, -16),
}


def default_multiparticles(model: UFOModel) -> dict[str, tuple[int, ...]]:
    """MadGraph's default labels for ``model`` (PDG codes the model has; b b~ in p, j when m_b = 0)."""
    out: dict[str, tuple[int, ...]] = {}
    present = {p.pdg_code for p in model.particles}
    b_massless = False
    if 5 in present:
        try:
            b_massless = model.evaluate().mass(model.particle_by_pdg(5)) == 0.0
        except InvalidInputError:
            b_massless = False
    for label, pdgs in _DEFAULT_PDGS.items():
        codes = list(pdgs)
        if label in ("p", "j") and b_massless:
            codes += [5, -5]
        out[label] = tuple(c for c in codes if c in present)
    return out


_TOKEN = re.compile(
    r"(?P<order>[A-Za-z][A-Za-z0-9_]*(?:\^2)?(?:<=|>=|==|=|<|>)-?\d+)"
    r"|(?P<sym>\$\$|\$|>|,|\(|\)|/)"
    r"|(?P<label>[A-Za-z0-9_+\-~*@]+)"
    r"|(?P<space>\s+)"
    r"|(?P<bad>.)"
)


def _syntax(text: str, pos: int, what: str) -> InvalidInputError:
    return InvalidInputError(f"process: {what} at position {pos}:\n  {text}\n  {' ' * pos}^")


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            continue
        if kind == "bad":
            raise _syntax(text, m.start(), f"unexpected character {m.group()!r}")
        out.append((kind, m.group(), m.start()))
    return out


def _parse_order(token: str, text: str, pos: int) -> OrderConstraint:
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)(\^2)?(<=|>=|==|=|<|>)(-?\d+)", token)
    if not m:
        raise _syntax(text, pos, f"malformed coupling-order constraint {token!r}")
    relation = "<=" if m.group(3) == "=" else m.group(3)
    return OrderConstraint(m.group(1), relation, int(m.group(4)), bool(m.group(2)))


class _Parser:
    def __init__(self, text: str, resolve):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.resolve = resolve  # label, pos -> tuple of pdg codes (raises on unknown)

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def labels(self) -> list[tuple[str, int]]:
        out = []
        while self.peek()[0] == "label":
            _, value, pos = self.take()
            self.resolve(value, pos)
            out.append((value, pos))
        return out

    def chain(self, decay: bool) -> ProcessNode:
        start = self.peek()[2]
        groups = [self.labels()]
        if not groups[0]:
            raise _syntax(self.text, self.peek()[2], "expected particle names")
        while self.peek()[1] == ">":
            self.take()
            nxt = self.labels()
            if not nxt:
                raise _syntax(self.text, self.peek()[2], "expected particle names after '>'")
            groups.append(nxt)
        if len(groups) < 2:
            raise _syntax(self.text, self.peek()[2], "expected '>'")
        excluded: list[int] = []
        forbidden: list[int] = []
        vetoed: list[int] = []
        orders: list[OrderConstraint] = []
        while True:
            kind, value, pos = self.peek()
            if value in ("/", "$", "$$"):
                self.take()
                targets = self.labels()
                if not targets:
                    raise _syntax(self.text, self.peek()[2], f"expected particle names after {value!r}")
                codes = [c for lab, p in targets for c in self.resolve(lab, p)]
                codes = sorted(set(codes) | {self.resolve.anti(c) for c in codes})
                {"/": excluded, "$": vetoed, "$$": forbidden}[value].extend(codes)
            elif kind == "order":
                self.take()
                orders.append(_parse_order(value, self.text, pos))
            else:
                break
        initial = tuple(lab for lab, _ in groups[0])
        if decay and len(initial) != 1:
            raise _syntax(self.text, groups[0][0][1], "a decay must have exactly one initial particle")
        if not decay and len(initial) not in (1, 2):
            raise _syntax(self.text, groups[0][0][1], "a process needs one or two initial particles")
        end = self.peek()[2]
        return ProcessNode(
            initial=initial,
            final=tuple(lab for lab, _ in groups[-1]),
            required_s_channels=tuple(lab for g in groups[1:-1] for lab, _ in g),
            excluded=tuple(sorted(set(excluded))),
            forbidden_s_channels=tuple(sorted(set(forbidden))),
            onshell_vetoed=tuple(sorted(set(vetoed))),
            orders=tuple(orders),
            text=self.text[start:end].strip(),
        )

    def decay_list(self, closing: str | None) -> list[ProcessNode]:
        out = []
        while self.peek()[1] == ",":
            self.take()
            out.append(self.decay_item())
        if closing is None and self.peek()[0] != "end":
            raise _syntax(self.text, self.peek()[2], f"unexpected {self.peek()[1]!r}")
        return out

    def decay_item(self) -> ProcessNode:
        if self.peek()[1] == "(":
            _, _, pos = self.take()
            node = self.chain(decay=True)
            subs = self.decay_list(")")
            if self.peek()[1] != ")":
                raise _syntax(self.text, self.peek()[2], f"missing ')' for the '(' at position {pos}")
            self.take()
            return ProcessNode(**{**node.__dict__, "decays": tuple(subs)})
        return self.chain(decay=True)

    def process(self) -> ProcessNode:
        core = self.chain(decay=False)
        decays = self.decay_list(None)
        return ProcessNode(**{**core.__dict__, "decays": tuple(decays)})


def _charge_colour_ok(initial: Sequence[Particle], final: Sequence[Particle]) -> bool:
    charge = sum(p.charge for p in initial) - sum(p.charge for p in final)
    if abs(charge) > 1e-9:
        return False

    def triality(p: Particle) -> int:
        return {3: 1, -3: -1, 6: 2, -6: -2}.get(p.color, 0)

    t = sum(triality(p) for p in initial) - sum(triality(p) for p in final)
    if t % 3:
        return False
    coloured_in = [p for p in initial if p.color != 1]
    coloured_out = [p for p in final if p.color != 1]
    return not (len(coloured_in) + len(coloured_out) == 1)  # one lone coloured particle cannot be a singlet


def parse_process(process: str, model: UFOModel, *, multiparticles: Mapping[str, str | Sequence[str]] | None = None,
                  orders: Mapping[str, int | str] | None = None, operators: Sequence[str] | None = None) -> ProcessSpec:
    """Parse a MadGraph-syntax process string and expand it into subprocesses of ``model``.

    Args:
        process: e.g. ``"p p > w+ h, w+ > e+ ve, h > b b~"`` (see the module docstring).
        model: a :class:`~sbihep.physics.ufo.model.UFOModel`.
        multiparticles: extra / overriding labels, label → names (a space-separated string or a list).
        orders: coupling-order constraints on the core process, name → maximum (``{"QCD": 0, "NP": 1}``),
            or name → a string with the relation (``{"NP": "==1", "QED^2": "<=4"}``); they replace the
            string's constraints of the same name.
        operators: Wilson coefficients (external parameters of the model) to keep as θ; default none.

    Returns:
        A :class:`ProcessSpec`.

    Raises:
        InvalidInputError: malformed syntax (the message shows the position), a decay that matches no
            final-state particle, or a process no subprocess of which conserves charge and colour.
        UnknownParameterError: an unknown particle, label, coupling order or operator (with did-you-mean).
    """
    if not isinstance(process, str) or not process.strip():
        raise InvalidInputError(f"process: expected a non-empty string, got {process!r}")
    if not isinstance(model, UFOModel):
        raise InvalidInputError(f"model: expected a UFOModel (sbihep.physics.ufo.load_ufo), got {type(model).__name__}")
    labels: dict[str, tuple[int, ...]] = default_multiparticles(model)
    for label, members in (multiparticles or {}).items():
        names = members.split() if isinstance(members, str) else list(members)
        if not names:
            raise InvalidInputError(f"multiparticles: label {label!r} has no members")
        codes = []
        for n in names:
            codes.extend(labels[n] if n in labels and n not in model._by_name else (model.particle(n).pdg_code,))
        labels[label] = tuple(dict.fromkeys(codes))
    used: dict[str, tuple[int, ...]] = {}

    def resolve(label: str, pos: int) -> tuple[int, ...]:
        if label in labels and (label in (multiparticles or {}) or label not in model._by_name):
            used[label] = labels[label]
            return labels[label]
        try:
            return (model.particle(label).pdg_code,)
        except UnknownParameterError as exc:
            hint = did_you_mean(label, [*model._by_name, *labels], n=3)
            raise UnknownParameterError(f"process: unknown particle {label!r} at position {pos} in model "
                                        f"{model.name}{hint}:\n  {process}\n  {' ' * pos}^") from exc

    def anti(code: int) -> int:
        p = model.particle_by_pdg(code)
        return code if p.selfconjugate else -code

    resolve.anti = anti  # type: ignore[attr-defined]
    core = _Parser(process, resolve).process()

    # ---- coupling orders ---------------------------------------------------------------------------
    constraints = {(c.name, c.squared): c for c in core.orders}
    for name, value in (orders or {}).items():
        squared = name.endswith("^2")
        base = name[:-2] if squared else name
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidInputError(f"orders: value of {name!r} must be an int or a string like '==1', got {value!r}")
        if isinstance(value, int):
            c = OrderConstraint(base, "<=", value, squared)
        else:
            m = re.fullmatch(r"\s*(<=|>=|==|=|<|>)?\s*(-?\d+)\s*", value)
            if not m:
                raise InvalidInputError(f"orders: cannot read {value!r} for {name!r} (expected e.g. 2, '==1', '<=4')")
            c = OrderConstraint(base, "<=" if m.group(1) in (None, "=") else m.group(1), int(m.group(2)), squared)
        constraints[(base, squared)] = c

    def check_orders(node: ProcessNode) -> None:
        for c in node.orders:
            if c.name not in model.orders:
                raise UnknownParameterError(f"process: {c.name!r} is not a coupling order of model {model.name}"
                                            + did_you_mean(c.name, model.orders, n=3))
        for d in node.decays:
            check_orders(d)

    check_orders(core)
    for c in constraints.values():
        if c.name not in model.orders:
            raise UnknownParameterError(f"orders: {c.name!r} is not a coupling order of model {model.name}"
                                        + did_you_mean(c.name, model.orders, n=3))
    ops = tuple(model.input_parameter(o).name for o in (operators or ()))

    # ---- expansion ---------------------------------------------------------------------------------
    vertex_sets = {tuple(sorted(p.pdg_code for p in v.particles)) for v in model.vertices}

    def members(label: str) -> tuple[int, ...]:
        return labels[label] if label in used else (model.particle(label).pdg_code,)

    def combos(node: ProcessNode, initial_choice: tuple[int, ...] | None) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        ini_sets = [members(lab) for lab in node.initial] if initial_choice is None else [(c,) for c in initial_choice]
        fin_sets = [members(lab) for lab in node.final]
        order_in_label = [{c: k for k, c in enumerate(s)} for s in fin_sets]
        seen = set()
        out = []
        for ini in itertools.product(*ini_sets):
            for fin in itertools.product(*fin_sets):
                # canonical order within runs of the same label
                canon = list(fin)
                for lab in set(node.final):
                    idx = [k for k, l2 in enumerate(node.final) if l2 == lab]
                    vals = sorted((canon[k] for k in idx), key=lambda c, o=order_in_label[idx[0]]: o[c])
                    for k, v in zip(idx, vals):
                        canon[k] = v
                key = (ini, tuple(canon))
                if key in seen:
                    continue
                seen.add(key)
                ip = [model.particle_by_pdg(c) for c in ini]
                fp = [model.particle_by_pdg(c) for c in key[1]]
                if not _charge_colour_ok(ip, fp):
                    continue
                if len(ini) + len(key[1]) == 3:
                    vset = tuple(sorted([anti(c) for c in ini] + list(key[1])))
                    if vset not in vertex_sets:
                        continue
                out.append(key)
        return out

    def assign_decays(node: ProcessNode) -> dict[int, ProcessNode]:
        """final index → decay node."""
        out: dict[int, ProcessNode] = {}
        by_label: dict[str, list[ProcessNode]] = {}
        for d in node.decays:
            parent = d.initial[0]
            pset = set(members(parent))
            match = [lab for lab in dict.fromkeys(node.final) if set(members(lab)) == pset]
            if not match:
                raise InvalidInputError(
                    f"process: the decay '{d.text}' matches no final-state particle of '{node.text}' "
                    f"(final state: {' '.join(node.final)}); to decay a decay product, put its decay in "
                    f"parentheses with the decay that produces it, e.g. '(t > w+ b, w+ > e+ ve)'")
            by_label.setdefault(match[0], []).append(d)
        for lab, ds in by_label.items():
            idx = [k for k, l2 in enumerate(node.final) if l2 == lab]
            if len(ds) == 1:
                out.update({k: ds[0] for k in idx})
            elif len(ds) == len(idx):
                out.update(dict(zip(idx, ds)))
            else:
                raise InvalidInputError(f"process: {len(ds)} decays given for the {len(idx)} '{lab}' of '{node.text}'; "
                                        "give one (decays them all) or one per particle")
        return out

    def expand_decay(node: ProcessNode, parent: int) -> list[DecayChain]:
        chains = []
        where = assign_decays(node)
        for _, fin in combos(node, (parent,)):
            options = []
            for k in sorted(where):
                options.append([(k, ch) for ch in expand_decay(where[k], fin[k])])
            for choice in itertools.product(*options):
                chains.append(DecayChain(parent, fin, tuple(choice), node))
        return chains

    where_core = assign_decays(core)
    found: dict[tuple, Subprocess] = {}
    order_keys: list[tuple] = []
    for ini, fin in combos(core, None):
        options = []
        for k in sorted(where_core):
            options.append([(k, ch) for ch in expand_decay(where_core[k], fin[k])])
        for choice in itertools.product(*options):
            sub = Subprocess(ini, fin, tuple(choice), (ini,), False)
            key = sub.key()
            if key in found:
                continue
            if len(ini) == 2 and ini[0] != ini[1]:
                mkey = ((ini[1], ini[0]), fin, tuple(choice))
                if mkey in found:
                    m = found[mkey]
                    found[mkey] = Subprocess(m.initial, m.final, m.decays, (m.initial, ini), True, m.names)
                    continue
            names = tuple(model.particle_by_pdg(c).name for c in (*ini, *sub.external_final))
            found[key] = Subprocess(ini, fin, tuple(choice), (ini,), False, names)
            order_keys.append(key)
    subs = tuple(found[k] for k in order_keys)
    if not subs:
        raise InvalidInputError(f"process: no subprocess of '{process}' conserves electric charge and colour "
                                f"(or has a vertex, for 1 → 2 decays) in model {model.name}")
    return ProcessSpec(process, model.name, model.content_hash, core, tuple(constraints.values()), ops, used, subs)
