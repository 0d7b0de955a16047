"""UFO Lorentz structures as symbolic tensor expressions.

A UFO ``Lorentz`` object carries a ``structure`` string such as ``'Gamma(3,2,-1)*ProjM(-1,1)'`` or
``'P(-1,1)*P(-1,2)*Metric(3,4) - P(3,1)*P(4,2)'`` (Degrande et al., arXiv:1108.2040, sec. 2.4).
:func:`parse_structure` reads it with :mod:`ast` (nothing is executed) and expands it into a sum of
terms, each a complex coefficient times a product of tensor factors:

=========================  ==================================================================
factor                     meaning (all Lorentz indices written upper; see below)
=========================  ==================================================================
``Gamma(μ, i, j)``         (γ^μ)_{ij}
``Gamma5(i, j)``           (γ⁵)_{ij}, γ⁵ = iγ⁰γ¹γ²γ³
``ProjM(i, j)``            ((1 − γ⁵)/2)_{ij}
``ProjP(i, j)``            ((1 + γ⁵)/2)_{ij}
``Identity(i, j)``         δ_{ij} (spinor indices)
``IdentityL(μ, ν)``        δ^μ_ν (Lorentz indices)
``C(i, j)``                charge-conjugation matrix C = iγ²γ⁰
``Sigma(μ, ν, i, j)``      (σ^{μν})_{ij}, σ^{μν} = (i/2)[γ^μ, γ^ν]
``Metric(μ, ν)``           g^{μν}, metric (+, −, −, −)
``P(μ, n)``                p_n^μ, the momentum of leg n, flowing *into* the vertex
``Epsilon(μ, ν, ρ, σ)``    ε^{μνρσ} with ε^{0123} = −1 (ε_{0123} = +1), as in
                           :func:`sbihep.physics.lorentz.levi_civita`
=========================  ==================================================================

Index rules (UFO): a positive index n is the open index of leg n (a Lorentz index for a spin-1
leg, a Dirac index for a spin-½ leg); a negative index is a dummy that appears exactly twice in a
term and is summed (for Lorentz dummies with the metric, i.e. one copy is lowered).  The second
argument of ``P`` is a leg number, not an index.  ``X**k`` repeats a factor; a dummy that occurs
once in X is contracted between the copies (so ``P(-1,1)**2`` is p₁²), a dummy that X already
contracts is renamed in each copy.

Coefficients may be integers, floats, ``complex(a, b)``, ``cmath.sqrt(x)``/``sqrt(x)`` and
``cmath.pi``; anything else is a :class:`~sbihep.errors.DataFormatError` naming the structure.
"""

from __future__ import annotations

import ast
import cmath
import threading
from dataclasses import dataclass
from typing import Iterable

from sbihep.errors import DataFormatError

__all__ = [
    "LORENTZ_FACTORS",
    "Factor",
    "Term",
    "LorentzExpression",
    "parse_structure",
    "linear_combination",
    "relabel_legs",
]

#: name → tuple of slot kinds: "L" Lorentz index, "S" spinor (Dirac) index, "leg" a leg number.
LORENTZ_FACTORS: dict[str, tuple[str, ...]] = {
    "Gamma": ("L", "S", "S"),
    "Gamma5": ("S", "S"),
    "ProjM": ("S", "S"),
    "ProjP": ("S", "S"),
    "Identity": ("S", "S"),
    "IdentityL": ("L", "L"),
    "C": ("S", "S"),
    "Sigma": ("L", "L", "S", "S"),
    "Metric": ("L", "L"),
    "P": ("L", "leg"),
    "Epsilon": ("L", "L", "L", "L"),
}


@dataclass(frozen=True)
class Factor:
    """One tensor factor, e.g. ``Gamma(3, 2, -1)`` → Factor("Gamma", (3, 2, -1))."""

    name: str
    args: tuple[int, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return LORENTZ_FACTORS[self.name]

    def indices(self) -> list[tuple[int, str]]:
        """(index, kind) of every index slot (the leg-number slot of ``P`` excluded)."""
        return [(a, k) for a, k in zip(self.args, self.kinds) if k != "leg"]

    def __str__(self) -> str:
        return f"{self.name}({','.join(map(str, self.args))})"


@dataclass(frozen=True)
class Term:
    """coefficient × Π factors."""

    coefficient: complex
    factors: tuple[Factor, ...]

    def dummies(self) -> dict[int, int]:
        """negative index → number of occurrences."""
        count: dict[int, int] = {}
        for f in self.factors:
            for a, _ in f.indices():
                if a < 0:
                    count[a] = count.get(a, 0) + 1
        return count

    def __str__(self) -> str:
        body = "*".join(map(str, self.factors)) or "1"
        return f"({self.coefficient})*{body}"


@dataclass(frozen=True)
class LorentzExpression:
    """A parsed structure: Σ_terms coefficient × Π factors.

    Attributes:
        terms: the expanded terms (like terms are not merged; zero coefficients are dropped).
        source: the structure string it came from.
    """

    terms: tuple[Term, ...]
    source: str = ""

    def legs_with_indices(self) -> dict[int, str]:
        """leg number (1-based, as in the string) → "L" or "S" for every positive index used."""
        out: dict[int, str] = {}
        for t in self.terms:
            for f in t.factors:
                for a, k in f.indices():
                    if a > 0:
                        if out.setdefault(a, k) != k:
                            raise DataFormatError(
                                f"Lorentz structure {self.source!r}: index {a} is used both as a Lorentz and as a spinor index"
                            )
        return out

    def momentum_legs(self) -> set[int]:
        """Legs (1-based) whose momentum P(·, n) appears."""
        return {f.args[1] for t in self.terms for f in t.factors if f.name == "P"}


# --------------------------------------------------------------------------------------
# Expansion into terms
# --------------------------------------------------------------------------------------
def _error(source: str, message: str) -> DataFormatError:
    return DataFormatError(f"Lorentz structure {source!r}: {message}")


def _multiply(left: list[Term], right: list[Term]) -> list[Term]:
    return [Term(a.coefficient * b.coefficient, a.factors + b.factors) for a in left for b in right]


def _rename(term: Term, mapping: dict[int, int]) -> Term:
    def new_args(f: Factor) -> tuple[int, ...]:
        return tuple(mapping.get(a, a) if k != "leg" else a for a, k in zip(f.args, f.kinds))

    return Term(term.coefficient, tuple(Factor(f.name, new_args(f)) for f in term.factors))


def _power(base: list[Term], exponent: int, source: str, next_dummy: list[int]) -> list[Term]:
    """base**exponent with dummy bookkeeping (see module docstring)."""
    result = [Term(1.0 + 0j, ())]
    for copy in range(exponent):
        renamed = []
        for t in base:
            closed = [a for a, n in t.dummies().items() if n == 2]
            if copy > 0 and closed:
                mapping = {}
                for a in closed:
                    next_dummy[0] -= 1
                    mapping[a] = next_dummy[0]
                t = _rename(t, mapping)
            renamed.append(t)
        result = _multiply(result, renamed)
    return result


_STATE = threading.local()  # .tensorful: ids of the nodes of the tree being parsed that contain a tensor factor


def _mark_tensorful(tree: ast.AST) -> set[int]:
    """ids of every node whose subtree calls a Lorentz factor (so it is not a number)."""
    marked: set[int] = set()

    def visit(node: ast.AST) -> bool:
        has = any([visit(child) for child in ast.iter_child_nodes(node)])
        if isinstance(node, ast.Call) and _call_name(node) in LORENTZ_FACTORS:
            has = True
        if has:
            marked.add(id(node))
        return has

    visit(tree)
    return marked


def _number(node: ast.AST, source: str) -> complex | None:
    """The value of a purely numeric sub-expression, or None if it contains tensors."""
    if id(node) in getattr(_STATE, "tensorful", ()):
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex)) and not isinstance(node.value, bool):
        return complex(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _number(node.operand, source)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cmath" and node.attr == "pi":
        return complex(cmath.pi)
    if isinstance(node, ast.Call):
        fname = _call_name(node)
        if fname in ("complex", "sqrt", "cmath.sqrt"):
            vals = [_number(a, source) for a in node.args]
            if node.keywords or any(v is None for v in vals):
                raise _error(source, f"{fname}() takes numeric arguments only")
            if fname == "complex":
                if len(vals) not in (1, 2) or any(v.imag for v in vals):
                    raise _error(source, "complex() takes one or two real numbers")
                return complex(vals[0].real, vals[1].real if len(vals) == 2 else 0.0)
            if len(vals) != 1:
                raise _error(source, "sqrt() takes one argument")
            return cmath.sqrt(vals[0])
        return None
    if isinstance(node, ast.BinOp):
        a, b = _number(node.left, source), _number(node.right, source)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            if b == 0:
                raise _error(source, "division by zero")
            return a / b
        if isinstance(node.op, ast.Pow):
            return a**b
        raise _error(source, f"unsupported operator {type(node.op).__name__}")
    return None


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        return f"{node.func.value.id}.{node.func.attr}"
    return "<call>"


def _int_arg(node: ast.AST, source: str, fname: str) -> int:
    value = _number(node, source)
    if value is None or value.imag or value.real != int(value.real):
        raise _error(source, f"{fname}(): arguments must be integers, got {ast.unparse(node)!r}")
    return int(value.real)


def _expand(node: ast.AST, source: str, next_dummy: list[int]) -> list[Term]:
    value = _number(node, source)
    if value is not None:
        return [Term(value, ())] if value != 0 else []
    if isinstance(node, ast.Call):
        fname = _call_name(node)
        if fname not in LORENTZ_FACTORS:
            raise _error(source, f"unknown function {fname}(); known: {sorted(LORENTZ_FACTORS)}")
        kinds = LORENTZ_FACTORS[fname]
        if node.keywords or len(node.args) != len(kinds):
            raise _error(source, f"{fname}() takes {len(kinds)} integer arguments, got {ast.unparse(node)!r}")
        args = tuple(_int_arg(a, source, fname) for a in node.args)
        for a, k in zip(args, kinds):
            if k == "leg" and a <= 0:
                raise _error(source, f"{fname}(): the second argument of P is a leg number (≥ 1), got {a}")
            if a == 0:
                raise _error(source, f"{fname}(): index 0 is not a UFO index")
        return [Term(1.0 + 0j, (Factor(fname, args),))]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        terms = _expand(node.operand, source, next_dummy)
        return terms if isinstance(node.op, ast.UAdd) else [Term(-t.coefficient, t.factors) for t in terms]
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, (ast.Add, ast.Sub)):
            left = _expand(node.left, source, next_dummy)
            right = _expand(node.right, source, next_dummy)
            if isinstance(node.op, ast.Sub):
                right = [Term(-t.coefficient, t.factors) for t in right]
            return left + right
        if isinstance(node.op, ast.Mult):
            return _multiply(_expand(node.left, source, next_dummy), _expand(node.right, source, next_dummy))
        if isinstance(node.op, ast.Div):
            denominator = _number(node.right, source)
            if denominator is None:
                raise _error(source, "only division by a number is allowed")
            if denominator == 0:
                raise _error(source, "division by zero")
            return [Term(t.coefficient / denominator, t.factors) for t in _expand(node.left, source, next_dummy)]
        if isinstance(node.op, ast.Pow):
            exponent = _number(node.right, source)
            if exponent is None or exponent.imag or exponent.real != int(exponent.real) or exponent.real < 0:
                raise _error(source, "a tensor may only be raised to a non-negative integer power")
            return _power(_expand(node.left, source, next_dummy), int(exponent.real), source, next_dummy)
        raise _error(source, f"unsupported operator {type(node.op).__name__}")
    raise _error(source, f"unsupported syntax {ast.unparse(node)!r}")


def _check_terms(terms: Iterable[Term], source: str) -> None:
    for t in terms:
        seen: dict[int, list[str]] = {}
        for f in t.factors:
            for a, k in f.indices():
                seen.setdefault(a, []).append(k)
        for a, kinds in seen.items():
            if a < 0 and len(kinds) != 2:
                raise _error(source, f"dummy index {a} appears {len(kinds)} times in term {t} (must be twice)")
            if a > 0 and len(kinds) != 1:
                raise _error(source, f"leg index {a} appears {len(kinds)} times in term {t} (must be once)")
            if len(set(kinds)) != 1:
                raise _error(source, f"index {a} is used both as a Lorentz and as a spinor index in term {t}")


def parse_structure(structure: str) -> LorentzExpression:
    """Parse a UFO Lorentz structure string into a :class:`LorentzExpression`.

    Args:
        structure: the ``structure`` attribute of a UFO ``Lorentz`` object, e.g. ``'Gamma(3,2,1)'``.
    Returns:
        The expanded expression (a structure that is identically ``0`` has no terms).
    Raises:
        DataFormatError: syntax that is not a UFO Lorentz structure, an unknown function, or an index
            pattern that breaks the UFO rules (a dummy not appearing exactly twice, a leg index
            appearing twice in a term, an index of mixed kind).
    """
    if not isinstance(structure, str) or not structure.strip():
        raise DataFormatError(f"Lorentz structure must be a non-empty string, got {structure!r}")
    try:
        tree = ast.parse(structure.strip(), mode="eval")
    except SyntaxError as exc:
        raise _error(structure, f"not a valid expression ({exc.msg})") from None
    used = [a for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, int) for a in [n.value]]
    next_dummy = [-1000 - max([abs(u) for u in used] + [0])]
    _STATE.tensorful = _mark_tensorful(tree)
    try:
        terms = [t for t in _expand(tree.body, structure, next_dummy) if t.coefficient != 0]
    finally:
        _STATE.tensorful = set()
    _check_terms(terms, structure)
    return LorentzExpression(tuple(terms), structure)


def linear_combination(parts: Iterable[tuple[complex, LorentzExpression]]) -> LorentzExpression:
    """Σ c_s · expression_s as one expression (for fusing the structures of one vertex).

    Args:
        parts: (coefficient, expression) pairs; coefficients are Python numbers.
    Returns:
        The combined expression; its ``source`` joins the sources.
    """
    terms: list[Term] = []
    sources = []
    for c, expr in parts:
        if not isinstance(expr, LorentzExpression):
            raise DataFormatError(f"linear_combination: expected LorentzExpression, got {type(expr).__name__}")
        c = complex(c)
        sources.append(f"({c})*({expr.source})")
        terms += [Term(c * t.coefficient, t.factors) for t in expr.terms if c * t.coefficient != 0]
    return LorentzExpression(tuple(terms), " + ".join(sources))


def relabel_legs(expression: LorentzExpression, mapping: dict[int, int]) -> LorentzExpression:
    """The same structure with legs renumbered: leg n (1-based) becomes ``mapping[n]``.

    Renames the open indices and the leg argument of ``P``; legs absent from ``mapping`` keep their
    number.  Use it to put a vertex's legs in the order a diagram meets them (e.g. SMEFTsim writes
    the RL four-lepton term as FFFF17 on [μ⁺, μ⁻, e⁺, e⁻]).

    Raises:
        DataFormatError: ``mapping`` is not one-to-one.
    """
    full = {n: mapping.get(n, n) for n in set(mapping) | set(mapping.values())}
    if len(set(full.values())) != len(full) or any(not isinstance(v, int) or v < 1 for v in full.values()):
        raise DataFormatError(f"relabel_legs: mapping {mapping} must be a one-to-one map of leg numbers ≥ 1")
    terms = []
    for t in expression.terms:
        factors = []
        for f in t.factors:
            args = tuple(full.get(a, a) if (k == "leg" or a > 0) else a for a, k in zip(f.args, f.kinds))
            factors.append(Factor(f.name, args))
        terms.append(Term(t.coefficient, tuple(factors)))
    return LorentzExpression(tuple(terms), f"relabel({expression.source}, {mapping})")
