"""Safe compilation of UFO expression strings (parameter values, coupling values, library functions).

UFO writes every internal parameter and coupling as a Python expression string, e.g.
``'(ee*complex(0,1))/3.'`` or ``'cmath.sqrt(1 - sth2)'``.  sbihep never ``eval``\\ s such a string as it
stands: it is parsed with :mod:`ast`, every node is checked against a whitelist, names are resolved to
the model's parameters or to a fixed table of numerical functions, and only then is the checked tree
compiled — into one function that evaluates the whole chain (external inputs → internal parameters →
couplings) on numpy ``complex128`` arrays of any shape, so many input points (e.g. many Wilson
coefficient vectors) are evaluated in one call.

Allowed: numbers, the names of parameters, ``+ - * / **``, unary ``-``/``+``/``not``, comparisons,
``a if c else b`` (evaluated element-wise), ``and``/``or``, calls of

* ``cmath.<f>`` for f in :data:`CMATH_FUNCTIONS` and the constants ``cmath.pi``, ``cmath.e``;
* ``complex(re, im)``, ``abs``, ``min``/``max`` (element-wise, two arguments);
* the functions of the model's ``function_library.py`` (compiled by the same rules; inside them the
  arguments may use ``.real``, ``.imag`` and ``.conjugate()``), falling back to sbihep's own versions of
  the standard UFO library (:data:`STANDARD_FUNCTIONS`) when a model does not define one.

Anything else (other attributes, subscripts, lambdas, comprehensions, strings, ``__import__`` …) is
refused with :class:`~sbihep.errors.UnsafeModelError` naming the object and its file:line.
"""

from __future__ import annotations

import ast
import sys
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from sbihep.errors import ModelFormatError, UnsafeModelError

__all__ = [
    "CMATH_FUNCTIONS",
    "STANDARD_FUNCTIONS",
    "parse_expression",
    "free_names",
    "compile_function_library",
    "ChainCompiler",
]

#: cmath functions an expression may call (as ``cmath.<name>``), mapped to their numpy versions.
def _complex_domain(fn: Callable) -> Callable:
    """Like cmath: the argument is taken as complex, so sqrt(−1) = i and log(−1) = iπ (numpy on real
    arrays would give nan)."""

    def wrapped(z):
        return fn(np.asarray(z, dtype=np.complex128))

    wrapped.__name__ = getattr(fn, "__name__", "f")
    return wrapped


CMATH_FUNCTIONS: dict[str, Callable] = {
    name: _complex_domain(fn)
    for name, fn in {
        "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log10": np.log10,
        "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
        "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
        "atanh": np.arctanh,
    }.items()
}  # fmt: skip
CMATH_FUNCTIONS["phase"] = np.angle
_CMATH_CONSTANTS = {"pi": np.pi, "e": np.e}


def _as_complex(x):
    return np.asarray(x, dtype=np.complex128)


def _pow(a, b):
    if isinstance(b, (int, float)) and float(b).is_integer() and abs(b) <= 8:
        return _as_complex(a) ** int(b)  # exact repeated multiplication for the common small powers
    return np.power(_as_complex(a), b)


def _where(cond, a, b):
    return np.where(np.real(cond) != 0 if np.iscomplexobj(cond) else cond, a, b)


#: sbihep's versions of the standard UFO ``function_library`` (element-wise on complex arrays).
STANDARD_FUNCTIONS: dict[str, Callable] = {
    "complexconjugate": np.conj,
    "conjugate": np.conj,
    "re": np.real,
    "im": np.imag,
    "sec": lambda z: 1.0 / np.cos(np.real(z)),
    "csc": lambda z: 1.0 / np.sin(np.real(z)),
    "cot": lambda z: 1.0 / np.tan(np.real(z)),
    "asec": lambda z: np.arccos(_as_complex(1.0 / np.real(z))),
    "acsc": lambda z: np.arcsin(_as_complex(1.0 / np.real(z))),
    "theta_function": lambda x, y, z: _where(x, y, z),
    "cond": lambda c, a, b: np.where(c == 0.0, a, b),
    "reglog": lambda z: np.where(z == 0.0, 0.0, np.log(_as_complex(np.where(z == 0.0, 1.0, np.real(z))))),
    "Theta": lambda x: np.where(np.real(x) > 0, 1.0, 0.0),
    "Kronecker": lambda a, b: np.where(a == b, 1.0, 0.0),
}

_BUILTINS: dict[str, Callable] = {
    "complex": lambda a, b=0.0: _as_complex(a) + 1j * _as_complex(b),
    "abs": np.abs,
    "min": np.minimum,
    "max": np.maximum,
    "float": np.real,
}

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_PREFIX = "_sbufo_"


def parse_expression(text: str, where: str) -> ast.expr:
    """Parse one expression string; ``where`` (e.g. ``"couplings.py:12 GC_1"``) goes into errors."""
    if not isinstance(text, str):
        raise ModelFormatError(f"{where}: expression must be a string, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelFormatError(f"{where}: cannot parse expression {text!r}: {exc.msg}") from None
    return tree.body


def free_names(node: ast.AST) -> set[str]:
    """Bare names an expression reads (``cmath`` and attribute names excluded)."""
    out: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
    out.discard("cmath")
    return out


class _Checker(ast.NodeTransformer):
    """Whitelist check + rewrite of one expression into references the chain function provides."""

    def __init__(self, where: str, variables: set[str], functions: set[str], arguments: set[str] = frozenset()):
        self.where = where
        self.variables = variables
        self.functions = functions
        self.arguments = set(arguments)

    def refuse(self, node: ast.AST, what: str):
        col = getattr(node, "col_offset", 0)
        raise UnsafeModelError(f"{self.where}: {what} is not allowed in a UFO expression (column {col})")

    def generic_visit(self, node):  # anything without a visit_ method is refused
        self.refuse(node, f"{type(node).__name__!s} ({ast.unparse(node)!r})" if isinstance(node, ast.AST) else repr(node))

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or isinstance(node.value, (int, float, complex)):
            return node
        self.refuse(node, f"the constant {node.value!r}")

    def visit_Name(self, node):
        if not isinstance(node.ctx, ast.Load):
            self.refuse(node, "assignment")
        name = node.id
        if name.startswith(_PREFIX) or name.startswith("__"):
            self.refuse(node, f"the name {name!r}")
        if name in self.arguments or name in self.variables:
            return node
        if name in ("True", "False"):
            return ast.copy_location(ast.Constant(name == "True"), node)
        raise ModelFormatError(f"{self.where}: unknown name {name!r} (not a parameter of the model)")

    def visit_BinOp(self, node):
        if not isinstance(node.op, _BINOPS):
            self.refuse(node, f"the operator {type(node.op).__name__}")
        node.left = self.visit(node.left)
        node.right = self.visit(node.right)
        if isinstance(node.op, ast.Pow):  # in numpy complex arithmetic: no unbounded Python integers (9**9**9)
            return ast.copy_location(ast.Call(ast.Name(_PREFIX + "pow", ast.Load()), [node.left, node.right], []), node)
        return node

    def visit_UnaryOp(self, node):
        node.operand = self.visit(node.operand)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            return node
        if isinstance(node.op, ast.Not):
            return ast.copy_location(ast.Call(ast.Name(_PREFIX + "not", ast.Load()), [node.operand], []), node)
        self.refuse(node, f"the operator {type(node.op).__name__}")

    def visit_Compare(self, node):
        if len(node.ops) != 1 or not isinstance(node.ops[0], _CMPOPS):
            self.refuse(node, "a chained or non-arithmetic comparison")
        node.left = self.visit(node.left)
        node.comparators = [self.visit(c) for c in node.comparators]
        return node

    def visit_IfExp(self, node):
        args = [self.visit(node.test), self.visit(node.body), self.visit(node.orelse)]
        return ast.copy_location(ast.Call(ast.Name(_PREFIX + "where", ast.Load()), args, []), node)

    def visit_BoolOp(self, node):
        fn = _PREFIX + ("and" if isinstance(node.op, ast.And) else "or")
        values = [self.visit(v) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = ast.Call(ast.Name(fn, ast.Load()), [out, v], [])
        return ast.copy_location(out, node)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == "cmath" and node.attr in _CMATH_CONSTANTS:
            return ast.copy_location(ast.Constant(float(_CMATH_CONSTANTS[node.attr])), node)
        if isinstance(node.value, ast.Name) and node.value.id in self.arguments and node.attr in ("real", "imag"):
            return ast.copy_location(ast.Call(ast.Name(_PREFIX + node.attr, ast.Load()), [node.value], []), node)
        self.refuse(node, f"the attribute {ast.unparse(node)!r}")

    def check_callee(self, node):
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in self.functions and func.id not in _BUILTINS:
                self.refuse(node, f"the call of {func.id!r}")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            ok = (func.value.id == "cmath" and func.attr in CMATH_FUNCTIONS) or (
                func.value.id in self.arguments and func.attr == "conjugate")
            if not ok:
                self.refuse(node, f"the call {ast.unparse(func)!r}")
        else:
            self.refuse(node, f"the call {ast.unparse(func)!r}")

    def visit_Call(self, node):
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.refuse(node, "a call with keyword or starred arguments")
        func = node.func
        self.check_callee(node)
        args = [self.visit(a) for a in node.args]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id == "cmath" and func.attr in CMATH_FUNCTIONS:
                target = _PREFIX + "cm_" + func.attr
            elif func.value.id in self.arguments and func.attr == "conjugate" and not args:
                return ast.copy_location(ast.Call(ast.Name(_PREFIX + "fn_conjugate", ast.Load()), [func.value], []), node)
            else:
                self.refuse(node, f"the call {ast.unparse(func)!r}")
        elif isinstance(func, ast.Name):
            if func.id in self.functions:
                target = _PREFIX + "fn_" + func.id
            elif func.id in _BUILTINS:
                target = _PREFIX + "bi_" + func.id
            else:
                self.refuse(node, f"the call of {func.id!r}")
        else:
            self.refuse(node, f"the call {ast.unparse(func)!r}")
        return ast.copy_location(ast.Call(ast.Name(target, ast.Load()), args, []), node)


def _helpers(functions: Mapping[str, Callable]) -> dict[str, object]:
    env: dict[str, object] = {"__builtins__": {}}
    env.update({_PREFIX + "cm_" + k: v for k, v in CMATH_FUNCTIONS.items()})
    env.update({_PREFIX + "bi_" + k: v for k, v in _BUILTINS.items()})
    env.update({_PREFIX + "fn_" + k: v for k, v in functions.items()})
    env[_PREFIX + "fn_conjugate"] = np.conj
    env[_PREFIX + "where"] = _where
    env[_PREFIX + "and"] = np.logical_and
    env[_PREFIX + "or"] = np.logical_or
    env[_PREFIX + "not"] = np.logical_not
    env[_PREFIX + "real"] = np.real
    env[_PREFIX + "imag"] = np.imag
    env[_PREFIX + "asarray"] = _as_complex
    env[_PREFIX + "pow"] = _pow
    return env


def compile_function_library(functions: Sequence) -> dict[str, Callable]:
    """Compile the model's :class:`~sbihep.physics.ufo.objects.Function` objects (and the standard ones it
    does not define) into element-wise numpy callables.  A function may call functions defined before it."""
    table: dict[str, Callable] = dict(STANDARD_FUNCTIONS)
    for fn in functions:
        where = f"{fn.source} Function {fn.name!r}"
        node = parse_expression(fn.expression, where)
        checker = _Checker(where, set(), set(table), set(fn.arguments))
        body = checker.visit(node)
        lam = ast.Expression(ast.Lambda(
            ast.arguments(posonlyargs=[], args=[ast.arg(a) for a in fn.arguments], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body))
        ast.fix_missing_locations(lam)
        code = compile(lam, f"<ufo function {fn.name}>", "eval")
        table[fn.name] = eval(code, _helpers(table))  # checked tree: names resolve only to the helper table
    return table


class ChainCompiler:
    """Compile external inputs → internal parameters → outputs into one vectorised function.

    Args:
        inputs: names of the external parameters, in the order of the input array's first axis.
        internals: ``(name, expression, is_real, where)`` in any order; sorted here by dependency.
        outputs: ``(name, expression, where)`` (e.g. couplings), evaluated after every internal.
        functions: callable table from :func:`compile_function_library`.

    The compiled :meth:`__call__` takes ``x`` of shape (n_inputs, *batch) (complex128) and returns
    ``(internal_values, output_values)``, arrays of shape (n_internals, *batch) and (n_outputs, *batch),
    in the order of :attr:`internal_names` and :attr:`output_names`.  Internal parameters declared real
    have their imaginary part dropped after checking it is negligible (:attr:`max_discarded_imag` holds the
    largest relative imaginary part met in the last call, per parameter).
    """

    def __init__(self, inputs: Sequence[str], internals: Iterable[tuple[str, str, bool, str]],
                 outputs: Iterable[tuple[str, str, str]], functions: Mapping[str, Callable]):
        self.input_names = tuple(inputs)
        internals = list(internals)
        outputs = list(outputs)
        known = set(self.input_names)
        names_internal = [n for n, *_ in internals]
        dup = {n for n in names_internal if names_internal.count(n) > 1} | (known & set(names_internal))
        if dup:
            raise ModelFormatError(f"parameters defined twice: {sorted(dup)}")
        variables = known | set(names_internal)
        fnames = set(functions)
        parsed = {}
        deps = {}
        for name, expr, is_real, where in internals:
            node = _Checker(where, variables, fnames).visit(parse_expression(expr, where))
            parsed[name] = (node, is_real, where)
            deps[name] = free_names(node) & set(names_internal)
        order = self._toposort(names_internal, deps, {n: w for n, _, _, w in internals})
        self.internal_names = tuple(order)
        self.real_internal = tuple(parsed[n][1] for n in order)
        out_nodes = []
        for name, expr, where in outputs:
            out_nodes.append(_Checker(where, variables, fnames).visit(parse_expression(expr, where)))
        self.output_names = tuple(n for n, *_ in outputs)

        body: list[ast.stmt] = []
        xname = _PREFIX + "x"
        for i, name in enumerate(self.input_names):
            body.append(ast.Assign([ast.Name(name, ast.Store())],
                                   ast.Subscript(ast.Name(xname, ast.Load()), ast.Constant(i), ast.Load())))
        for name in order:
            node = parsed[name][0]
            call = ast.Call(ast.Name(_PREFIX + "asarray", ast.Load()), [node], [])
            body.append(ast.Assign([ast.Name(name, ast.Store())], call))
            if parsed[name][1]:
                body.append(ast.Expr(ast.Call(ast.Name(_PREFIX + "realcheck", ast.Load()),
                                              [ast.Constant(name), ast.Name(name, ast.Load())], [])))
                body.append(ast.Assign([ast.Name(name, ast.Store())],
                                       ast.Call(ast.Name(_PREFIX + "real", ast.Load()), [ast.Name(name, ast.Load())], [])))
        outs = [ast.Call(ast.Name(_PREFIX + "asarray", ast.Load()), [n], []) for n in out_nodes]
        body.append(ast.Return(ast.Tuple([
            ast.List([ast.Name(n, ast.Load()) for n in order], ast.Load()),
            ast.List(outs, ast.Load()),
        ], ast.Load())))
        fdef = ast.FunctionDef(
            name=_PREFIX + "chain",
            args=ast.arguments(posonlyargs=[], args=[ast.arg(xname)], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=body, decorator_list=[], returns=None)
        if sys.version_info >= (3, 12):
            fdef.type_params = []
        module = ast.Module([fdef], type_ignores=[])
        ast.fix_missing_locations(module)
        env = _helpers(functions)
        self.max_discarded_imag: dict[str, float] = {}

        def realcheck(name, value):
            value = np.asarray(value)
            im = np.abs(np.imag(value))
            scale = np.maximum(np.abs(np.real(value)), 1e-300)
            with np.errstate(all="ignore"):
                ratio = im / scale
            ratio = ratio[np.isfinite(ratio)]
            rel = float(ratio.max()) if ratio.size else 0.0
            if rel > 0:
                self.max_discarded_imag[name] = max(rel, self.max_discarded_imag.get(name, 0.0))

        env[_PREFIX + "realcheck"] = realcheck
        exec(compile(module, "<ufo parameter chain>", "exec"), env)  # checked tree, no builtins
        self._fn = env[_PREFIX + "chain"]

    @staticmethod
    def _toposort(names: list[str], deps: dict[str, set[str]], where: dict[str, str]) -> list[str]:
        done: set[str] = set()
        out: list[str] = []
        state: dict[str, int] = {}
        for start in names:
            if start in done:
                continue
            stack = [(start, iter(sorted(deps[start])))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    state[node] = 2
                    done.add(node)
                    out.append(node)
                elif state.get(nxt) == 1:
                    raise ModelFormatError(f"{where[nxt]}: parameter {nxt!r} depends on itself (through {node!r})")
                elif state.get(nxt) != 2:
                    state[nxt] = 1
                    stack.append((nxt, iter(sorted(deps[nxt]))))
        return out

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.complex128)
        if x.shape[:1] != (len(self.input_names),):
            raise ModelFormatError(f"chain input must have shape ({len(self.input_names)}, ...), got {x.shape}")
        self.max_discarded_imag = {}
        with np.errstate(all="ignore"):
            internals, outputs = self._fn(x)
        batch = x.shape[1:]
        internals = np.stack([np.broadcast_to(v, batch) for v in internals]) if internals else np.zeros((0, *batch), complex)
        outputs = np.stack([np.broadcast_to(v, batch) for v in outputs]) if outputs else np.zeros((0, *batch), complex)
        return internals, outputs
