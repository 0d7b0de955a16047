"""Exact SU(3) colour algebra for UFO models: colour strings → dense tensors, colour networks, colour bases.

A UFO vertex carries its colour structures as strings (Degrande et al., arXiv:1108.2040, sec. 2.3) such
as ``'T(3,2,1)'``, ``'f(-1,1,2)*f(3,4,-1)'`` or ``'Identity(1,2)*Identity(3,4)'``.  A positive index n is
the colour index of vertex leg n (1-based), a negative index is a dummy summed over; its
representation follows from the slot it sits in.  :func:`parse_colour` reads such a string with
:mod:`ast` (nothing is executed) and turns it into a dense ``complex128`` tensor with one axis per
vertex leg — length 3 for a (anti)triplet, 8 for an octet and 1 for a colourless leg, so that the axes
line up with the legs:

======================  =======================================================================
factor                  meaning
======================  =======================================================================
``Identity(i, j)``      δ_ij: one leg of colour 3 and one of colour −3, or two octets
``T(a, i, j)``          (T^a)_ij, T^a = λ^a/2; a an octet, i a leg of colour 3, j one of colour −3;
                        ``T(a1, …, ak, i, j)`` is the product (T^{a1}⋯T^{ak})_ij
``f(a, b, c)``          f^{abc}, from [T^a, T^b] = i f^{abc} T^c
``d(a, b, c)``          d^{abc}, from {T^a, T^b} = δ^{ab}/3 + d^{abc} T^c
``Epsilon(i, j, k)``    ε_ijk (ε_123 = 1) on three legs of colour 3
``EpsilonBar(i, j, k)`` ε^ijk on three legs of colour −3
``1``                   the colour singlet
======================  =======================================================================

Numeric factors may be integers, floats, ``complex(a, b)``, ``I`` (= i), ``sqrt``/``cmath.sqrt`` of a
number, with ``+ − * /`` and ``**`` between numbers.  Sextet structures (``T6``, ``K6``, ``K6Bar``,
legs of colour ±6) are not supported (:class:`~sbihep.errors.ModelFormatError`).

Index conventions for building diagrams: the leg of colour 3 carries the first matrix index of T,
the leg of colour −3 the second (UFO vertex ``[u~, u, g]`` has ``'T(3,2,1)'``: leg 2 is the u, colour 3).
An internal line between a leg labelled X of one vertex and a leg labelled X̄ of another joins a 3-axis
with a −3-axis (or two octet axes): sharing one label between the two axes in :func:`contract` is the
colour propagator δ.

:func:`contract` evaluates a network of such tensors (pairwise, greedily, with a size guard) and
:func:`colour_basis` picks a basis of the span of a set of diagram colour tensors, with each diagram's
coefficients in it and the colour matrix Σ_colours b_c b_c'^*, exact up to rounding
(:meth:`ColourBasis.rational_matrix` gives it as fractions).
"""

from __future__ import annotations

import ast
import math
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Hashable, Sequence

import numpy as np

from sbihep.errors import ConvergenceError, InvalidInputError, ModelFormatError, ShapeError

__all__ = [
    "SU3_GENERATORS",
    "STRUCTURE_CONSTANTS_F",
    "SYMMETRIC_D",
    "LEVI_CIVITA_3",
    "COLOUR_FACTORS",
    "MAX_CONTRACTION_SIZE",
    "ColourFactor",
    "ColourTerm",
    "ColourExpression",
    "parse_colour_expression",
    "parse_colour",
    "contract",
    "ColourBasis",
    "colour_basis",
]


# --------------------------------------------------------------------------------------
# SU(3) constants
# --------------------------------------------------------------------------------------
def _gell_mann() -> np.ndarray:
    lam = np.zeros((8, 3, 3), dtype=np.complex128)
    lam[0, 0, 1] = lam[0, 1, 0] = 1.0
    lam[1, 0, 1], lam[1, 1, 0] = -1j, 1j
    lam[2, 0, 0], lam[2, 1, 1] = 1.0, -1.0
    lam[3, 0, 2] = lam[3, 2, 0] = 1.0
    lam[4, 0, 2], lam[4, 2, 0] = -1j, 1j
    lam[5, 1, 2] = lam[5, 2, 1] = 1.0
    lam[6, 1, 2], lam[6, 2, 1] = -1j, 1j
    lam[7] = np.diag([1.0, 1.0, -2.0]) / math.sqrt(3.0)
    return lam


def _snap(x: np.ndarray) -> np.ndarray:
    """Real part of x with rounding-level entries set to exact zero (the structural zeros)."""
    if np.max(np.abs(x.imag)) > 1e-14:
        raise RuntimeError("SU(3) constant came out complex; the Gell-Mann matrices are wrong")
    out = x.real.copy()
    out[np.abs(out) < 1e-14] = 0.0
    return out


def _constants() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = _gell_mann() / 2.0
    tr3 = np.einsum("aij,bjk,cki->abc", t, t, t)  # Tr(T^a T^b T^c)
    # Tr([T^a,T^b] T^c) = i f^{abc}/2 and Tr({T^a,T^b} T^c) = d^{abc}/2 (as Tr(T^a T^b) = δ^{ab}/2).
    f = _snap(-2j * (tr3 - tr3.transpose(1, 0, 2)))
    d = _snap(2.0 * (tr3 + tr3.transpose(1, 0, 2)))
    eps = np.zeros((3, 3, 3))
    for (i, j, k), sign in {(0, 1, 2): 1, (1, 2, 0): 1, (2, 0, 1): 1, (0, 2, 1): -1, (2, 1, 0): -1, (1, 0, 2): -1}.items():
        eps[i, j, k] = sign
    for a in (t, f, d, eps):
        a.setflags(write=False)
    return t, f, d, eps


_T, _F, _D, _EPS = _constants()

SU3_GENERATORS: np.ndarray = _T
"""(8, 3, 3) complex128, read-only: T^a = λ^a/2 (the Gell-Mann matrices over two), Tr(T^a T^b) = δ^{ab}/2."""

STRUCTURE_CONSTANTS_F: np.ndarray = _F
"""(8, 8, 8) float64, read-only: f^{abc} with [T^a, T^b] = i f^{abc} T^c (f^{123} = 1), computed as
−2i Tr([T^a, T^b] T^c)."""

SYMMETRIC_D: np.ndarray = _D
"""(8, 8, 8) float64, read-only: d^{abc} with {T^a, T^b} = δ^{ab}/3 + d^{abc} T^c, computed as
2 Tr({T^a, T^b} T^c)."""

LEVI_CIVITA_3: np.ndarray = _EPS
"""(3, 3, 3) float64, read-only: ε_ijk with ε_123 = 1."""

#: Largest number of entries :func:`contract` lets a result or an intermediate have (2²⁴ ≈ 1.7·10⁷,
#: 256 MiB in complex128).
MAX_CONTRACTION_SIZE = 2**24

#: UFO colour function → slot kinds ("8" octet, "3" a leg of colour 3, "-3" of colour −3, "I" either
#: half of a δ); ``T`` takes one or more octet slots before its two matrix slots.
COLOUR_FACTORS: dict[str, tuple[str, ...]] = {
    "Identity": ("I", "I"),
    "T": ("8", "3", "-3"),
    "f": ("8", "8", "8"),
    "d": ("8", "8", "8"),
    "Epsilon": ("3", "3", "3"),
    "EpsilonBar": ("-3", "-3", "-3"),
}
_SEXTET_FACTORS = ("T6", "K6", "K6Bar", "Epsilon6", "Identity6")
_DIMENSION = {1: 1, 3: 3, -3: 3, 8: 8}


# --------------------------------------------------------------------------------------
# Parsed expressions
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColourFactor:
    """One colour tensor factor, e.g. ``T(3, 2, 1)`` → ColourFactor("T", (3, 2, 1))."""

    name: str
    args: tuple[int, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """The slot kind of every argument (see :data:`COLOUR_FACTORS`)."""
        if self.name == "T":
            return ("8",) * (len(self.args) - 2) + ("3", "-3")
        return COLOUR_FACTORS[self.name]

    def __str__(self) -> str:
        return f"{self.name}({','.join(map(str, self.args))})"


@dataclass(frozen=True)
class ColourTerm:
    """coefficient × Π factors (no factors: the number itself)."""

    coefficient: complex
    factors: tuple[ColourFactor, ...]

    def __str__(self) -> str:
        return f"({self.coefficient})*{'*'.join(map(str, self.factors)) or '1'}"


@dataclass(frozen=True)
class ColourExpression:
    """A parsed colour string: Σ_terms coefficient × Π factors (expanded; zero terms dropped).

    Attributes:
        terms: the expanded terms.
        source: the string it came from.
    """

    terms: tuple[ColourTerm, ...]
    source: str = ""

    def legs(self) -> set[int]:
        """Leg numbers (1-based, as in the string) that carry a colour index."""
        return {a for t in self.terms for f in t.factors for a in f.args if a > 0}


def _error(source: str, message: str) -> ModelFormatError:
    return ModelFormatError(f"colour structure {source!r}: {message}")


def _sextet_error(source: str) -> ModelFormatError:
    return ModelFormatError(
        f"colour structure {source!r}: sextet colour representations (6, -6; T6, K6, K6Bar) are not supported by sbihep"
    )


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("cmath", "math"):
        return f"{func.value.id}.{func.attr}"
    return None


def _index(node: ast.AST, source: str, function: str) -> int:
    value = node
    sign = 1
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(value.op, ast.USub) else 1
        value = value.operand
    if not (isinstance(value, ast.Constant) and type(value.value) is int):
        raise _error(source, f"the arguments of {function} must be integer indices, got {ast.unparse(node)!r}")
    if value.value == 0:
        raise _error(source, f"index 0 in {function}: leg indices start at 1 (negative indices are dummies)")
    return sign * value.value


def _numeric(terms: list[ColourTerm]) -> complex | None:
    """The value of a term list that is a plain number, else None."""
    if all(not t.factors for t in terms):
        return complex(sum(t.coefficient for t in terms))
    return None


def _expand(node: ast.AST, source: str) -> list[ColourTerm]:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, complex)):
            raise _error(source, f"unexpected constant {node.value!r}")
        return [ColourTerm(complex(node.value), ())]
    if isinstance(node, ast.Name):
        if node.id == "I":
            return [ColourTerm(1j, ())]
        raise _error(source, f"unknown name {node.id!r}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _expand(node.operand, source)
        return inner if isinstance(node.op, ast.UAdd) else [ColourTerm(-t.coefficient, t.factors) for t in inner]
    if isinstance(node, ast.BinOp):
        left, right = _expand(node.left, source), _expand(node.right, source)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left + [ColourTerm(-t.coefficient, t.factors) for t in right]
        if isinstance(node.op, ast.Mult):
            return [ColourTerm(a.coefficient * b.coefficient, a.factors + b.factors) for a in left for b in right]
        if isinstance(node.op, ast.Div):
            divisor = _numeric(right)
            if divisor is None:
                raise _error(source, "division by a colour tensor")
            if divisor == 0:
                raise _error(source, "division by zero")
            return [ColourTerm(t.coefficient / divisor, t.factors) for t in left]
        if isinstance(node.op, ast.Pow):
            base, exponent = _numeric(left), _numeric(right)
            if base is None or exponent is None:
                raise _error(source, "** is only allowed between numbers (write a colour product out)")
            try:
                return [ColourTerm(complex(base**exponent), ())]
            except (OverflowError, ZeroDivisionError) as exc:
                raise _error(source, f"{ast.unparse(node)!r}: {exc}") from None
        raise _error(source, f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.Call):
        name = _call_name(node)
        if node.keywords:
            raise _error(source, f"keyword arguments in {ast.unparse(node)!r}")
        if name == "complex":
            values = [_numeric(_expand(a, source)) for a in node.args]
            if len(values) != 2 or any(v is None or v.imag != 0 for v in values):
                raise _error(source, f"complex() takes two real numbers, got {ast.unparse(node)!r}")
            return [ColourTerm(complex(values[0].real, values[1].real), ())]
        if name in ("sqrt", "cmath.sqrt", "math.sqrt"):
            values = [_numeric(_expand(a, source)) for a in node.args]
            if len(values) != 1 or values[0] is None:
                raise _error(source, f"sqrt() takes one number, got {ast.unparse(node)!r}")
            return [ColourTerm(complex(values[0]) ** 0.5, ())]
        if name in _SEXTET_FACTORS:
            raise _sextet_error(source)
        if name in COLOUR_FACTORS:
            args = tuple(_index(a, source, name) for a in node.args)
            arity = len(COLOUR_FACTORS[name])
            if (name == "T" and len(args) < 3) or (name != "T" and len(args) != arity):
                expected = "at least 3" if name == "T" else str(arity)
                raise _error(source, f"{name} takes {expected} indices, got {len(args)} in {ast.unparse(node)!r}")
            return [ColourTerm(1.0 + 0j, (ColourFactor(name, args),))]
        shown = name if name is not None else ast.unparse(node.func)
        raise _error(source, f"unknown colour function {shown!r} (known: {', '.join(COLOUR_FACTORS)})")
    raise _error(source, f"construct {type(node).__name__} is not allowed in a colour structure")


_EXPRESSIONS: dict[str, ColourExpression] = {}
_TENSORS: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
_CACHE_LOCK = threading.Lock()
_TENSOR_CACHE_ENTRIES = 2**16  # tensors up to this size are cached (the 6-gluon vertex's 8⁶ ones are not)
_TENSOR_CACHE_COUNT = 4096


def parse_colour_expression(structure: str) -> ColourExpression:
    """Parse a UFO colour string into its expanded terms (without reference to the vertex's legs).

    Args:
        structure: e.g. ``'f(-1,1,2)*f(3,4,-1)'``; ``'1'`` is the singlet.

    Returns:
        The :class:`ColourExpression` (cached: the same string gives the same object).

    Raises:
        ModelFormatError: a syntax error, an unknown function or name, a wrong number of indices, a
            sextet function, or a construct outside arithmetic on numbers and colour factors.
    """
    if not isinstance(structure, str):
        raise InvalidInputError(f"structure must be a string, got {type(structure).__name__}")
    with _CACHE_LOCK:
        hit = _EXPRESSIONS.get(structure)
    if hit is not None:
        return hit
    try:
        tree = ast.parse(structure.strip(), mode="eval")
    except SyntaxError as exc:
        raise _error(structure, f"not a valid expression ({exc.msg})") from None
    terms = tuple(t for t in _expand(tree.body, structure) if t.coefficient != 0)
    expression = ColourExpression(terms, structure)
    with _CACHE_LOCK:
        _EXPRESSIONS[structure] = expression
    return expression


def _conjugate(rep: int) -> int:
    return -rep if rep in (3, -3) else rep


def _slot_reps(term: ColourTerm, reps: tuple[int, ...], source: str) -> dict[int, int]:
    """index → colour of the line it belongs to, as seen from its FIRST slot; validates the term."""
    # Every slot gets the representation of the leg / line it sits on, as seen from the factor.
    slots: list[tuple[int, str]] = [(a, k) for f in term.factors for a, k in zip(f.args, f.kinds)]
    occurrences: dict[int, list[int]] = {}
    for position, (a, _) in enumerate(slots):
        occurrences.setdefault(a, []).append(position)
    value: list[int | None] = [None] * len(slots)
    for position, (a, kind) in enumerate(slots):
        if kind != "I":
            value[position] = int(kind)
    # constraints: (p, q) with rep(q) = conj(rep(p)): the two halves of a δ, the two ends of a dummy
    pairs: list[tuple[int, int]] = []
    position = 0
    for f in term.factors:
        if f.name == "Identity":
            pairs.append((position, position + 1))
        position += len(f.args)
    for a, where in occurrences.items():
        if a > 0:
            if a > len(reps):
                raise _error(source, f"index {a} refers to leg {a}, but the vertex has {len(reps)} legs")
            if len(where) != 1:
                raise _error(source, f"leg index {a} occurs {len(where)} times in the term {term}")
            leg_rep = reps[a - 1]
            if leg_rep == 1:
                raise _error(source, f"leg {a} is colourless but carries the colour index {a} in {term}")
            p = where[0]
            if value[p] is None:
                value[p] = leg_rep
            elif value[p] != leg_rep:
                raise _error(
                    source,
                    f"index {a} sits in a slot of colour {value[p]} (in {term}) but leg {a} has colour {leg_rep}",
                )
        else:
            if len(where) != 2:
                raise _error(source, f"dummy index {a} occurs {len(where)} times in the term {term} (must be 2)")
            pairs.append((where[0], where[1]))
    changed = True
    while changed:
        changed = False
        for p, q in pairs:
            for x, y in ((p, q), (q, p)):
                if value[x] is not None:
                    want = _conjugate(value[x])
                    if value[y] is None:
                        value[y] = want
                        changed = True
                    elif value[y] != want:
                        a, b = slots[x][0], slots[y][0]
                        what = f"dummy index {a}" if a == b else f"Identity({a},{b})"
                        raise _error(
                            source,
                            f"{what} joins a colour-{value[x]} slot with a colour-{value[y]} slot in {term} "
                            f"(a δ or a summed index needs 3 with -3, or 8 with 8)",
                        )
    for position, v in enumerate(value):
        if v is None:
            raise _error(source, f"cannot tell the representation of index {slots[position][0]} in {term}")
    coloured = {i + 1 for i, r in enumerate(reps) if r != 1}
    missing = coloured - {a for a in occurrences if a > 0}
    if missing:
        raise _error(source, f"the term {term} carries no colour index for the coloured leg(s) {sorted(missing)}")
    return {a: value[where[0]] for a, where in occurrences.items()}  # type: ignore[misc]


def _factor_tensor(f: ColourFactor, index_rep: dict[int, int]) -> np.ndarray:
    if f.name == "Identity":
        return np.eye(_DIMENSION[index_rep[f.args[0]]])
    if f.name == "f":
        return STRUCTURE_CONSTANTS_F
    if f.name == "d":
        return SYMMETRIC_D
    if f.name in ("Epsilon", "EpsilonBar"):
        return LEVI_CIVITA_3
    # T(a1, …, ak, i, j) = (T^{a1} ⋯ T^{ak})_ij
    out = SU3_GENERATORS
    for _ in range(len(f.args) - 3):
        out = np.einsum("...ij,bjk->...bik", out, SU3_GENERATORS)
    return out


def _check_reps(reps: Sequence[int], structure: str) -> tuple[int, ...]:
    try:
        out = tuple(int(r) for r in reps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"reps must be a sequence of UFO colour codes (1, 3, -3, 8), got {reps!r}") from None
    for r in out:
        if r in (6, -6):
            raise _sextet_error(structure)
        if r not in _DIMENSION:
            raise ModelFormatError(f"colour structure {structure!r}: unknown colour representation {r} in reps {out} (UFO uses 1, 3, -3, 8)")
    return out


def parse_colour(structure: str, reps: Sequence[int]) -> np.ndarray:
    """A UFO vertex colour string as a dense tensor over the vertex's legs.

    Args:
        structure: the colour string, e.g. ``'T(3,2,1)'`` (see the module docstring for the factors).
        reps: the UFO colour code (``Particle.color``: 1, 3, −3 or 8) of every vertex leg, in vertex
            order (leg n of the string is ``reps[n-1]``).

    Returns:
        (d_0, …, d_{n−1}) complex128 with d = 1, 3, 3, 8 for colour 1, 3, −3, 8 (a colourless leg keeps
        an axis of length 1).  The array is read-only (small results are cached and shared; copy it
        to modify).

    Raises:
        ModelFormatError: the string does not parse (see :func:`parse_colour_expression`), an index sits
            on a leg of the wrong representation, a coloured leg carries no index in some term (or a
            colourless leg carries one), a dummy index does not occur exactly twice or joins two
            incompatible slots, or a leg has a sextet / unknown representation.
    """
    expression = parse_colour_expression(structure)
    reps_t = _check_reps(reps, structure)
    key = (structure, reps_t)
    with _CACHE_LOCK:
        hit = _TENSORS.get(key)
    if hit is not None:
        return hit
    shape = tuple(_DIMENSION[r] for r in reps_t)
    coloured = [i + 1 for i, r in enumerate(reps_t) if r != 1]
    total = np.zeros(tuple(_DIMENSION[reps_t[i - 1]] for i in coloured), dtype=np.complex128)
    for term in expression.terms:
        index_rep = _slot_reps(term, reps_t, structure)
        factors = [(_factor_tensor(f, index_rep), tuple(("leg", a) if a > 0 else ("dummy", a) for a in f.args)) for f in term.factors]
        value = contract(factors, [("leg", i) for i in coloured]) if factors else np.ones(())
        total = total + term.coefficient * value
    result = np.ascontiguousarray(total.reshape(shape))
    result.setflags(write=False)
    if result.size <= _TENSOR_CACHE_ENTRIES:
        with _CACHE_LOCK:
            if len(_TENSORS) < _TENSOR_CACHE_COUNT:
                _TENSORS[key] = result
    return result


# --------------------------------------------------------------------------------------
# Contraction of colour networks
# --------------------------------------------------------------------------------------
def _size(labels: Sequence[Hashable], dims: dict[Hashable, int]) -> int:
    out = 1
    for lab in labels:
        out *= dims[lab]
    return out


def _einsum(operands: Sequence[tuple[np.ndarray, Sequence[Hashable]]], out_labels: Sequence[Hashable]) -> np.ndarray:
    """np.einsum over few operands with the labels mapped to small ints (sublist form)."""
    ids: dict[Hashable, int] = {}
    args: list = []
    for array, labels in operands:
        args += [array, [ids.setdefault(lab, len(ids)) for lab in labels]]
    args.append([ids[lab] for lab in out_labels])
    return np.einsum(*args, optimize=True)


def contract(
    factors: Sequence[tuple[np.ndarray, Sequence[Hashable]]],
    open_labels: Sequence[Hashable],
    *,
    max_size: int = MAX_CONTRACTION_SIZE,
) -> np.ndarray:
    """Contract a colour network: Σ over every shared label of Π factors.

    Pairs are contracted greedily (at each step the pair sharing a label whose result is smallest;
    disconnected pieces are joined last by outer products), each step one ``np.einsum`` with integer
    sublists, so networks of any number of labels work.

    Args:
        factors: a sequence of ``(tensor, labels)``, one hashable label per tensor axis.  A label on
            two axes (of the same or of different tensors) is summed over; a label on one axis must be
            in ``open_labels``.
        open_labels: the labels of the result's axes, in order; each must occur on exactly one axis.
        max_size: the largest result or intermediate (number of entries) allowed.

    Returns:
        The contracted tensor, one axis per open label, of the dtype NumPy gives the factors (float64
        for f / d / ε networks, complex128 as soon as a T enters); a 0-d array when nothing is open
        (an empty network is 1).

    Raises:
        ShapeError: a tensor whose number of axes is not its number of labels, or a summed label on
            axes of different lengths.
        InvalidInputError: an unhashable label, a label on more than two axes, an open label that is
            not on exactly one axis (or is repeated in ``open_labels``), a label on one axis that is
            not open, or a result / intermediate above ``max_size`` entries (the message gives the size).
    """
    operands: list[tuple[np.ndarray, list[Hashable]]] = []
    dims: dict[Hashable, int] = {}
    count: dict[Hashable, int] = {}
    for k, item in enumerate(factors):
        try:
            tensor, labels = item
        except (TypeError, ValueError):
            raise InvalidInputError(f"factors[{k}] must be a (tensor, labels) pair") from None
        tensor = np.asarray(tensor)
        labels = list(labels)
        if tensor.ndim != len(labels):
            raise ShapeError(f"factors[{k}]: a tensor of shape {tensor.shape} needs {tensor.ndim} labels, got {len(labels)}")
        for axis, lab in enumerate(labels):
            try:
                hash(lab)
            except TypeError:
                raise InvalidInputError(f"factors[{k}]: label {lab!r} of axis {axis} is not hashable") from None
            if lab in dims and dims[lab] != tensor.shape[axis]:
                raise ShapeError(f"factors[{k}]: label {lab!r} has length {tensor.shape[axis]} on axis {axis} but {dims[lab]} elsewhere")
            dims[lab] = tensor.shape[axis]
            count[lab] = count.get(lab, 0) + 1
        operands.append((tensor, labels))
    open_list = list(open_labels)
    if len(set(open_list)) != len(open_list):
        raise InvalidInputError(f"open_labels {open_list!r} repeat a label")
    for lab, n in count.items():
        if n > 2:
            raise InvalidInputError(f"label {lab!r} is on {n} axes (a colour index is shared by at most two)")
        if n == 1 and lab not in open_list:
            raise InvalidInputError(f"label {lab!r} is on one axis only and not in open_labels")
    for lab in open_list:
        if count.get(lab, 0) != 1:
            raise InvalidInputError(f"open label {lab!r} is on {count.get(lab, 0)} axes (must be exactly one)")
    size = _size(open_list, dims)
    if size > max_size:
        raise InvalidInputError(f"the contraction result would have {size} entries (> max_size = {max_size})")
    if not operands:
        return np.ones(())

    # traces inside one operand first
    for k, (tensor, labels) in enumerate(operands):
        if len(set(labels)) != len(labels):
            keep = [lab for lab in labels if labels.count(lab) == 1]
            operands[k] = (_einsum([(tensor, labels)], keep), keep)

    while len(operands) > 1:
        best: tuple[int, int, int, int] | None = None  # (result size − input sizes, result size, i, j)
        for i in range(len(operands)):
            li = set(operands[i][1])
            for j in range(i + 1, len(operands)):
                lj = set(operands[j][1])
                if not li & lj:
                    continue
                out = (li | lj) - (li & lj)
                s = _size(out, dims)
                cost = s - operands[i][0].size - operands[j][0].size
                if best is None or (cost, s) < best[:2]:
                    best = (cost, s, i, j)
        if best is None:  # disconnected pieces: outer product of the two smallest
            order = sorted(range(len(operands)), key=lambda n: operands[n][0].size)
            i, j = sorted(order[:2])
            s = operands[i][0].size * operands[j][0].size
        else:
            _, s, i, j = best
        if s > max_size:
            raise InvalidInputError(f"an intermediate of the colour contraction would have {s} entries (> max_size = {max_size})")
        (a, la), (b, lb) = operands[i], operands[j]
        out_labels = [lab for lab in la if lab not in lb] + [lab for lab in lb if lab not in la]
        merged = (_einsum([(a, la), (b, lb)], out_labels), out_labels)
        operands = [op for n, op in enumerate(operands) if n not in (i, j)] + [merged]
    tensor, labels = operands[0]
    return _einsum([(tensor, labels)], open_list)


# --------------------------------------------------------------------------------------
# Colour basis and colour matrix
# --------------------------------------------------------------------------------------
def _as_fraction_matrix(matrix: np.ndarray, scale: float, max_denominator: int, what: str) -> tuple[tuple[Fraction, ...], ...]:
    out = []
    for row in matrix:
        fractions_row = []
        for x in row:
            q = Fraction(float(x)).limit_denominator(max_denominator)
            if abs(float(q) - float(x)) > 1e-12 * scale:
                raise InvalidInputError(
                    f"{what} entry {float(x)!r} is not a fraction with denominator ≤ {max_denominator} "
                    f"(nearest {q} differs by {abs(float(q) - float(x)):.3g})"
                )
            fractions_row.append(q)
        out.append(tuple(fractions_row))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class ColourBasis:
    """A basis of the span of a set of colour tensors, and the colour matrix in it.

    With D diagram colour tensors t_d (each of the external legs' colour shape) and a basis b_c of their
    span, t_d = Σ_c coefficients[d, c] b_c, and the colour-summed square of an amplitude written as
    M = Σ_c A_c b_c is |M|² = Σ_{cc'} A_c matrix[c, c'] A_c'^*.

    :class:`sbihep.physics.processes.base.Amplitudes` takes ``matrix`` as it is: its
    :meth:`~sbihep.physics.processes.base.Amplitudes.gram` and ``Process.matrix_element2`` compute
    Σ_{cc'} X_c C_cc' conj(Y_c').

    Attributes:
        basis: (C, *shape) complex128, the basis tensors (a subset of the given tensors).
        coefficients: (D, C) complex128, each given tensor in the basis (a zero tensor: all zero).
        matrix: (C, C) Hermitian, matrix[c, c'] = Σ_colours basis[c] · conj(basis[c']); float64 when its
            imaginary part is below 1e-14 of its largest entry, else complex128.
        indices: (C,) positions of the basis tensors among the given ones.
    """

    basis: np.ndarray
    coefficients: np.ndarray
    matrix: np.ndarray
    indices: tuple[int, ...]

    @property
    def size(self) -> int:
        """C, the dimension of the span."""
        return len(self.indices)

    def diagram_matrix(self) -> np.ndarray:
        """(D, D) complex128: Σ_colours t_d · conj(t_d') = coefficients · matrix · coefficientsᴴ."""
        return self.coefficients @ self.matrix @ self.coefficients.conj().T

    def rational_matrix(self, max_denominator: int = 10**6) -> tuple[tuple[Fraction, ...], ...]:
        """``matrix`` as nested tuples of :class:`fractions.Fraction` (rows first).

        Args:
            max_denominator: the largest denominator tried (``Fraction.limit_denominator``).

        Returns:
            C tuples of C fractions, each reproducing its float entry to 1e-12 of the largest entry.

        Raises:
            InvalidInputError: the matrix is complex (use :meth:`rational_matrix_parts`) or an entry is
                not such a fraction.
        """
        if np.iscomplexobj(self.matrix):
            raise InvalidInputError("the colour matrix is complex: use rational_matrix_parts() for its real and imaginary parts")
        scale = float(np.max(np.abs(self.matrix))) if self.matrix.size else 1.0
        return _as_fraction_matrix(self.matrix, scale, max_denominator, "colour matrix")

    def rational_matrix_parts(self, max_denominator: int = 10**6) -> tuple[tuple[tuple[Fraction, ...], ...], tuple[tuple[Fraction, ...], ...]]:
        """(real part, imaginary part) of ``matrix``, each as nested tuples of fractions (see :meth:`rational_matrix`)."""
        scale = float(np.max(np.abs(self.matrix))) if self.matrix.size else 1.0
        m = np.asarray(self.matrix, dtype=np.complex128)
        return (
            _as_fraction_matrix(m.real, scale, max_denominator, "colour matrix (real part)"),
            _as_fraction_matrix(m.imag, scale, max_denominator, "colour matrix (imaginary part)"),
        )


def _row_norms2(x: np.ndarray) -> np.ndarray:
    """Σ_m |x[d, m]|² per row of a C-contiguous complex (D, M) array, without temporaries."""
    flat = x.view(np.float64) if x.flags.c_contiguous else np.ascontiguousarray(x).view(np.float64)
    return np.einsum("dm,dm->d", flat, flat)


def colour_basis(tensors: Sequence[np.ndarray], *, rtol: float = 1e-9) -> ColourBasis:
    """Choose a well-conditioned basis among colour tensors and express every tensor in it.

    Pivoted Gram–Schmidt: at each step the tensor least explained by the basis so far (largest
    residual norm relative to its own norm; ties to the earlier one) joins it, until every residual is
    below ``rtol`` of its tensor.  The coefficients then solve t_d = Σ_c coefficients[d, c] b_c by QR.

    Args:
        tensors: D arrays of one shape (the external legs' colour axes), D ≥ 1.
        rtol: a tensor whose residual is below ``rtol`` times its norm counts as dependent.

    Returns:
        The :class:`ColourBasis`.

    Raises:
        ShapeError: no tensors, tensors of different shapes, or non-finite entries.
        InvalidInputError: ``rtol`` outside (0, 1).
        ConvergenceError: a tensor that the basis reproduces only to worse than 1e-12 of its norm
            (numerically ambiguous rank: the tensors are not exact colour structures).
    """
    if not (0.0 < float(rtol) < 1.0):
        raise InvalidInputError(f"rtol must lie in (0, 1), got {rtol!r}")
    arrays = [np.asarray(t) for t in tensors]
    if not arrays:
        raise ShapeError("tensors is empty: need at least one colour tensor")
    shape = arrays[0].shape
    for k, a in enumerate(arrays):
        if a.shape != shape:
            raise ShapeError(f"tensors[{k}] has shape {a.shape}, tensors[0] has {shape}")
    n_tensors = len(arrays)
    full = np.empty((n_tensors, int(np.prod(shape, dtype=np.int64))), dtype=np.complex128)  # (D, M)
    for k, a in enumerate(arrays):
        full[k] = a.reshape(-1)
    if not np.all(np.isfinite(full)):
        raise ShapeError("tensors contain non-finite entries")
    # Colour configurations where every tensor vanishes change no norm or inner product: drop them
    # (most of them for f / T networks), which makes everything below several times cheaper.
    v = np.ascontiguousarray(full[:, np.any(full != 0, axis=0)])
    norms = np.sqrt(_row_norms2(v))
    scale = float(norms.max()) if n_tensors else 0.0
    nonzero = norms > 1e-13 * scale if scale > 0 else np.zeros(n_tensors, dtype=bool)
    residual = v.copy()
    q_vectors: list[np.ndarray] = []
    chosen: list[int] = []
    safe_norms = np.where(nonzero, norms, 1.0)
    while True:
        rel = np.where(nonzero, np.sqrt(_row_norms2(residual)) / safe_norms, 0.0)
        best = float(rel.max())
        if best <= rtol:
            break
        pick = int(np.flatnonzero(rel >= best * (1.0 - 1e-6))[0])
        q = residual[pick].copy()
        for _ in range(2):  # re-orthogonalise against the basis so far
            for p in q_vectors:
                q -= p * np.vdot(p, q)
        q /= np.sqrt(_row_norms2(q[None, :])[0])
        overlap = residual @ q.conj()  # (D,)
        for k in np.flatnonzero(overlap):
            residual[k] -= overlap[k] * q
        q_vectors.append(q)
        chosen.append(pick)
    n_basis = len(chosen)
    b = v[chosen].T  # (M', C)
    if n_basis:
        qm, rm = np.linalg.qr(b)
        coefficients = np.linalg.solve(rm, qm.conj().T @ v.T).T  # (D, C)
        coefficients[~nonzero] = 0.0
        # rounding-level coefficients are structural zeros (the reconstruction is checked below)
        row_scale = np.max(np.abs(coefficients), axis=1, keepdims=True)
        coefficients.real[np.abs(coefficients.real) < 1e-14 * row_scale] = 0.0
        coefficients.imag[np.abs(coefficients.imag) < 1e-14 * row_scale] = 0.0
        err = np.sqrt(_row_norms2(v - coefficients @ b.T))
    else:
        coefficients = np.zeros((n_tensors, 0), dtype=np.complex128)
        err = norms
    bad = np.flatnonzero(err > 1e-12 * np.maximum(norms, 1e-13 * scale))
    if bad.size:
        k = int(bad[0])
        raise ConvergenceError(
            f"colour_basis: tensors[{k}] is reproduced only to {err[k] / norms[k]:.3g} of its norm by the basis "
            f"{chosen} (rtol = {rtol}): the tensors are not exact colour structures or are nearly dependent"
        )
    matrix = b.T @ b.conj()
    matrix = 0.5 * (matrix + matrix.conj().T)
    mscale = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    if matrix.size == 0 or float(np.max(np.abs(matrix.imag))) <= 1e-14 * mscale:
        matrix = np.ascontiguousarray(matrix.real)
    basis = np.ascontiguousarray(full[chosen].reshape((n_basis, *shape)))
    for a in (basis, coefficients, matrix):
        a.setflags(write=False)
    return ColourBasis(basis=basis, coefficients=coefficients, matrix=matrix, indices=tuple(chosen))
