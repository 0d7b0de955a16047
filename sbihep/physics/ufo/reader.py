"""Read a UFO model directory without executing its code.

A UFO model is a Python package (``__init__.py``, ``particles.py``, ``parameters.py``, ``couplings.py``,
``lorentz.py``, ``vertices.py``, ``coupling_orders.py``, optionally ``decays.py``, ``propagators.py``,
``function_library.py``, ``form_factors.py``, ``CT_*.py``).  Importing it would run whatever the files
contain, with the user's privileges, and SMEFTsim 3.0's ``object_library.py`` does not even import under
Python 3 (``raise UFOError, "..."``, ``dict.iteritems()``).  So sbihep parses each file with :mod:`ast`
and interprets only the statements UFO files are made of:

* ``from __future__ import …``; ``import cmath``/``math`` (usable only inside expression strings);
  ``from object_library import …`` (bound to sbihep's classes of :mod:`sbihep.physics.ufo.objects`, never
  the model's own file); ``import particles as P``, ``from function_library import re, im`` and other
  imports of the model's own modules (read by the same rules, once each);
* assignments ``name = value`` where the value is a number, string, list, tuple, dict, a name or a
  ``Module.name`` of the model, a construction ``Particle(...)``/``Parameter(...)``/… of a UFO class with
  such arguments, ``particle.anti()``, unary minus, arithmetic on numbers and ``+`` on strings;
* docstrings, and ``try: import optional_module … except ImportError: pass``.

Everything else (function or class definitions, loops, other imports, other calls or attributes, …) is
refused with :class:`~sbihep.errors.UnsafeModelError` naming ``file:line``, before anything runs.
``object_library.py`` and ``write_param_card.py`` are never read: sbihep supplies the first and does not
need the second.  ``__init__.py`` is checked (imports, assignments, optional imports) and tells which
optional modules the model has.

Python 2 vs 3: the model's data files are parsed as Python 3; ``/`` is true division (SMEFTsim's
``particles.py`` has ``from __future__ import division``; a Python-2 file without it meaning integer
division in e.g. ``charge = 2/3`` would be read as 0.666…, as UFO intends).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbihep.errors import ModelFormatError, UnsafeModelError
from sbihep.physics.ufo import objects as O

__all__ = ["RawModel", "read_ufo_directory", "model_hash", "REQUIRED_MODULES"]

#: The files every UFO model has.
REQUIRED_MODULES = ("particles", "parameters", "couplings", "lorentz", "vertices", "coupling_orders")
_OPTIONAL_MODULES = ("function_library", "propagators", "decays", "form_factors", "CT_parameters", "CT_couplings",
                     "CT_vertices")
_NEVER_READ = ("object_library", "write_param_card")
_OPAQUE_MODULES = ("cmath", "math")
_REGISTRIES = {
    "all_particles": "particles", "all_parameters": "parameters", "all_couplings": "couplings",
    "all_lorentz": "lorentz", "all_vertices": "vertices", "all_orders": "orders", "all_decays": "decays",
    "all_functions": "functions", "all_propagators": "propagators", "all_form_factors": "form_factors",
    "all_CTparameters": "ct_parameters", "all_CTvertices": "ct_vertices",
}
_KIND_TO_LIST = {
    "particle": "particles", "parameter": "parameters", "coupling": "couplings", "lorentz": "lorentz",
    "vertex": "vertices", "order": "orders", "decay": "decays", "function": "functions",
    "propagator": "propagators", "form_factor": "form_factors", "ct_parameter": "ct_parameters",
    "ct_vertex": "ct_vertices",
}


@dataclass
class RawModel:
    """Everything a UFO directory defines, as sbihep objects (expressions still strings).

    Attributes:
        path: the model directory.
        name: its folder name.
        content_hash: sha256 over the names and bytes of the model's ``.py`` files (see :func:`model_hash`).
        particles … ct_vertices: the objects in the order the files create them (UFO's ``all_*`` lists).
        modules: names of the model files read.
    """

    path: Path
    name: str
    content_hash: str
    particles: list = field(default_factory=list)
    parameters: list = field(default_factory=list)
    couplings: list = field(default_factory=list)
    lorentz: list = field(default_factory=list)
    vertices: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    decays: list = field(default_factory=list)
    functions: list = field(default_factory=list)
    propagators: list = field(default_factory=list)
    form_factors: list = field(default_factory=list)
    ct_parameters: list = field(default_factory=list)
    ct_vertices: list = field(default_factory=list)
    modules: list = field(default_factory=list)


class _Opaque:
    """A module the files may import but not use outside expression strings (cmath)."""

    def __init__(self, name: str):
        self.name = name


class _Registry:
    def __init__(self, name: str):
        self.name = name


class _Namespace:
    """A model module read by the interpreter: its top-level bindings."""

    def __init__(self, name: str):
        self.name = name
        self.bindings: dict[str, Any] = {}


def model_hash(path: str | Path) -> str:
    """sha256 over the sorted (name, bytes) of the ``*.py`` files of a UFO directory."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(path.glob("*.py")):
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


class _Interpreter:
    def __init__(self, path: Path):
        self.path = path
        self.raw = RawModel(path=path, name=path.name, content_hash=model_hash(path))
        self.loaded: dict[str, _Namespace] = {}
        self.loading: set[str] = set()

    # ---- modules -----------------------------------------------------------------------------------
    def exists(self, module: str) -> bool:
        return (self.path / f"{module}.py").is_file()

    def load(self, module: str, where: str) -> _Namespace:
        if module in self.loaded:
            return self.loaded[module]
        if module in self.loading:
            raise ModelFormatError(f"{where}: circular import of model module {module!r}")
        if module in _NEVER_READ:
            raise ModelFormatError(f"{where}: sbihep does not read {module}.py")
        file = self.path / f"{module}.py"
        if not file.is_file():
            raise ModelFormatError(f"{where}: the model has no module {module!r} ({file} missing)")
        self.loading.add(module)
        ns = _Namespace(module)
        tree = self.parse(file)
        for stmt in tree.body:
            self.statement(stmt, ns, file.name)
        self.loading.discard(module)
        self.loaded[module] = ns
        self.raw.modules.append(module)
        return ns

    def parse(self, file: Path) -> ast.Module:
        data = file.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        try:
            return ast.parse(text, filename=file.name)
        except SyntaxError as exc:
            raise ModelFormatError(f"{file.name}:{exc.lineno}: not readable as Python 3 ({exc.msg}); sbihep reads the "
                                   "model's data files with ast and never executes them") from None

    # ---- statements --------------------------------------------------------------------------------
    def refuse(self, node: ast.AST, fname: str, what: str):
        raise UnsafeModelError(f"{fname}:{getattr(node, 'lineno', '?')}: {what} is not a UFO model construct; "
                               "sbihep refuses the model without executing it")

    def statement(self, stmt: ast.stmt, ns: _Namespace, fname: str, *, in_try: bool = False) -> None:
        where = f"{fname}:{stmt.lineno}"
        if isinstance(stmt, ast.ImportFrom):
            self.import_from(stmt, ns, fname)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                name = alias.name
                if name in _OPAQUE_MODULES:
                    ns.bindings[alias.asname or name] = _Opaque(name)
                elif "." in name or not self.is_model_module(name):
                    self.refuse(stmt, fname, f"'import {name}'")
                else:
                    if not self.exists(name):
                        if in_try:
                            raise ImportError(name)
                        raise UnsafeModelError(f"{where}: 'import {name}' imports a module that is not part of the "
                                               "model; a UFO file may import only the model's own modules and cmath")
                    ns.bindings[alias.asname or name] = self.load(name, where)
        elif isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                self.refuse(stmt, fname, "an assignment to anything but one plain name")
            target = stmt.targets[0].id
            if target.startswith("__") and target not in ("__author__", "__date__", "__version__"):
                self.refuse(stmt, fname, f"assigning {target!r}")
            ns.bindings[target] = self.value(stmt.value, ns, fname)
        elif isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                return  # docstring
            if isinstance(stmt.value, ast.Call):
                self.value(stmt.value, ns, fname)  # a bare object construction
                return
            self.refuse(stmt, fname, "an expression statement")
        elif isinstance(stmt, ast.Pass):
            return
        elif isinstance(stmt, ast.Try):
            self.try_statement(stmt, ns, fname)
        else:
            self.refuse(stmt, fname, f"a {type(stmt).__name__} statement")

    def is_model_module(self, name: str) -> bool:
        return name.isidentifier() and name not in _NEVER_READ

    def import_from(self, stmt: ast.ImportFrom, ns: _Namespace, fname: str) -> None:
        where = f"{fname}:{stmt.lineno}"
        module = stmt.module or ""
        if stmt.level:
            self.refuse(stmt, fname, "a relative import")
        if module == "__future__":
            return
        if module == "object_library":
            for alias in stmt.names:
                if alias.name == "*":
                    ns.bindings.update(O.OBJECT_CLASSES)
                    ns.bindings.update({k: _Registry(k) for k in _REGISTRIES})
                elif alias.name in O.OBJECT_CLASSES:
                    ns.bindings[alias.asname or alias.name] = O.OBJECT_CLASSES[alias.name]
                elif alias.name in _REGISTRIES or alias.name == "UFOError":
                    ns.bindings[alias.asname or alias.name] = _Registry(alias.name)
                else:
                    self.refuse(stmt, fname, f"'from object_library import {alias.name}'")
            return
        if module in _OPAQUE_MODULES or "." in module or not self.is_model_module(module):
            self.refuse(stmt, fname, f"'from {module} import …'")
        if not self.exists(module):
            raise UnsafeModelError(f"{where}: 'from {module} import …' imports a module that is not part of the "
                                   "model; a UFO file may import only the model's own modules and cmath")
        other = self.load(module, where)
        for alias in stmt.names:
            if alias.name == "*":
                ns.bindings.update({k: v for k, v in other.bindings.items() if not k.startswith("_")})
            elif alias.name in other.bindings:
                ns.bindings[alias.asname or alias.name] = other.bindings[alias.name]
            else:
                raise ModelFormatError(f"{where}: module {module!r} defines no {alias.name!r}")

    def try_statement(self, stmt: ast.Try, ns: _Namespace, fname: str) -> None:
        if getattr(stmt, "finalbody", None):
            self.refuse(stmt, fname, "try … finally")
        for s in stmt.body:
            if not isinstance(s, (ast.Import, ast.ImportFrom)):
                self.refuse(s, fname, "a try block holding anything but imports")
        for h in stmt.handlers:
            if not (isinstance(h.type, ast.Name) and h.type.id == "ImportError" and h.name is None):
                self.refuse(h, fname, "an except clause other than 'except ImportError:'")
        try:
            for s in stmt.body:
                if isinstance(s, ast.ImportFrom) and not self.exists(s.module or ""):
                    if (s.module or "") in _OPAQUE_MODULES or s.module == "object_library":
                        self.statement(s, ns, fname)
                        continue
                    if not self.is_model_module(s.module or ""):
                        self.refuse(s, fname, f"'from {s.module} import …'")
                    raise ImportError(s.module)
                self.statement(s, ns, fname, in_try=True)
        except ImportError:
            for h in stmt.handlers:
                for s in h.body:
                    self.statement(s, ns, fname)
        else:
            for s in stmt.orelse:
                self.statement(s, ns, fname)

    # ---- values ------------------------------------------------------------------------------------
    def value(self, node: ast.expr, ns: _Namespace, fname: str) -> Any:
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, (bool, int, float, complex, str)):
                return node.value
            self.refuse(node, fname, f"the constant {node.value!r}")
        if isinstance(node, ast.List):
            return [self.value(e, ns, fname) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e, ns, fname) for e in node.elts)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                self.refuse(node, fname, "dict unpacking")
            out = {}
            for k, v in zip(node.keys, node.values):
                key = self.value(k, ns, fname)
                try:
                    hash(key)
                except TypeError:
                    raise ModelFormatError(f"{fname}:{node.lineno}: unhashable dict key {key!r}") from None
                out[key] = self.value(v, ns, fname)
            return out
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in ns.bindings:
                raise ModelFormatError(f"{fname}:{node.lineno}: name {node.id!r} is not defined")
            value = ns.bindings[node.id]
            if isinstance(value, (_Opaque, _Registry)):
                self.refuse(node, fname, f"using {node.id!r} outside an expression string")
            return value
        if isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and isinstance(ns.bindings.get(base.id), _Namespace):
                other = ns.bindings[base.id]
                if node.attr.startswith("_") or node.attr not in other.bindings:
                    raise ModelFormatError(f"{fname}:{node.lineno}: module {other.name!r} defines no {node.attr!r}")
                value = other.bindings[node.attr]
                if isinstance(value, (_Opaque, _Registry, _Namespace)) or isinstance(value, type):
                    self.refuse(node, fname, f"the attribute {ast.unparse(node)!r}")
                return value
            self.refuse(node, fname, f"the attribute {ast.unparse(node)!r}")
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand, ns, fname)
            if isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(operand, (int, float, complex)) and not isinstance(operand, bool):
                return -operand if isinstance(node.op, ast.USub) else operand
            self.refuse(node, fname, f"the unary operation {ast.unparse(node)!r}")
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left, ns, fname), self.value(node.right, ns, fname)
            num = (int, float, complex)
            if isinstance(left, str) and isinstance(right, str) and isinstance(node.op, ast.Add):
                if len(left) + len(right) > 10_000_000:
                    self.refuse(node, fname, "a string longer than 10 MB")
                return left + right
            if isinstance(left, num) and isinstance(right, num) and not isinstance(left, bool) and not isinstance(right, bool):
                op = node.op
                if isinstance(op, ast.Add):
                    return left + right
                if isinstance(op, ast.Sub):
                    return left - right
                if isinstance(op, ast.Mult):
                    return left * right
                if isinstance(op, ast.Div):
                    if right == 0:
                        raise ModelFormatError(f"{fname}:{node.lineno}: division by zero")
                    return left / right
                if isinstance(op, ast.Pow) and abs(right) <= 64 and abs(left) < 1e100:
                    return left**right
            self.refuse(node, fname, f"the operation {ast.unparse(node)!r}")
        if isinstance(node, ast.Call):
            return self.call(node, ns, fname)
        self.refuse(node, fname, f"the expression {ast.unparse(node)!r}")

    def call(self, node: ast.Call, ns: _Namespace, fname: str) -> Any:
        src = f"{fname}:{node.lineno}"
        func = node.func
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            self.refuse(node, fname, "a call with * or ** arguments")
        if isinstance(func, ast.Attribute) and func.attr == "anti" and not node.args and not node.keywords:
            target = self.value(func.value, ns, fname)
            if isinstance(target, O.Particle):
                return self.register(target.anti(_source=src))
            self.refuse(node, fname, f"'.anti()' of {ast.unparse(func.value)!r}, which is not a Particle")
        cls = None
        if isinstance(func, ast.Name):
            cls = ns.bindings.get(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ns.bindings:
            base = ns.bindings[func.value.id]
            if isinstance(base, _Namespace):
                cls = base.bindings.get(func.attr)
        if not (isinstance(cls, type) and cls in O.OBJECT_CLASSES.values()):
            self.refuse(node, fname, f"the call {ast.unparse(func)!r}")
        args = [self.value(a, ns, fname) for a in node.args]
        kwargs = {k.arg: self.value(k.value, ns, fname) for k in node.keywords}
        if "_source" in kwargs:
            self.refuse(node, fname, "the argument name '_source'")
        try:
            obj = cls(*args, _source=src, **kwargs)
        except ModelFormatError:
            raise
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"{src}: {cls.__name__}(...): {exc}") from None
        return self.register(obj)

    def register(self, obj: Any) -> Any:
        getattr(self.raw, _KIND_TO_LIST[obj.kind]).append(obj)
        return obj

    # ---- the package -------------------------------------------------------------------------------
    def check_init(self) -> list[str]:
        """Check ``__init__.py`` and return the model modules it imports, in order."""
        file = self.path / "__init__.py"
        if not file.is_file():
            raise ModelFormatError(f"{self.path}: not a UFO model directory (no __init__.py)")
        tree = self.parse(file)
        modules: list[str] = []

        def imports(stmt: ast.stmt) -> None:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.name in _OPAQUE_MODULES:
                        continue
                    if "." in alias.name or not alias.name.isidentifier():
                        self.refuse(stmt, file.name, f"'import {alias.name}'")
                    modules.append(alias.name)
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.level or not (stmt.module == "__future__" or (stmt.module or "").isidentifier()):
                    self.refuse(stmt, file.name, f"'from {stmt.module} import …'")
                if stmt.module not in ("__future__", "object_library") and stmt.module not in _OPAQUE_MODULES:
                    modules.append(stmt.module)
            else:
                self.refuse(stmt, file.name, f"a {type(stmt).__name__} statement in an import block")

        def simple_value(node: ast.expr) -> None:
            for sub in ast.walk(node):
                if not isinstance(sub, (ast.Constant, ast.Name, ast.Attribute, ast.List, ast.Tuple, ast.Load)):
                    self.refuse(node, file.name, f"the value {ast.unparse(node)!r}")

        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                imports(stmt)
            elif isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                simple_value(stmt.value)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue
            elif isinstance(stmt, ast.Try) and not stmt.finalbody:
                for s in stmt.body:
                    imports(s)
                for h in stmt.handlers:
                    if not (isinstance(h.type, ast.Name) and h.type.id == "ImportError"):
                        self.refuse(h, file.name, "an except clause other than 'except ImportError:'")
                    for s in h.body:
                        if not isinstance(s, ast.Pass):
                            self.refuse(s, file.name, "an except body other than 'pass'")
                for s in stmt.orelse:
                    if not (isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) for t in s.targets)):
                        self.refuse(s, file.name, "an else body other than assignments")
                    simple_value(s.value)
            else:
                self.refuse(stmt, file.name, f"a {type(stmt).__name__} statement")
        return modules


def read_ufo_directory(path: str | Path) -> RawModel:
    """Read a UFO model directory into a :class:`RawModel` (see the module docstring for the rules).

    Raises:
        ModelFormatError: not a UFO directory, a required file missing, or an inconsistent object.
        UnsafeModelError: a file contains a construct outside the UFO subset (names file:line).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelFormatError(f"path: {path} is not a directory (a UFO model is a folder with __init__.py, particles.py, …)")
    interp = _Interpreter(path.resolve())
    declared = interp.check_init()
    missing = [m for m in REQUIRED_MODULES if not interp.exists(m)]
    if missing:
        raise ModelFormatError(f"{path}: not a complete UFO model, missing {', '.join(m + '.py' for m in missing)}")
    order = [m for m in declared if m not in _NEVER_READ]
    for m in (*REQUIRED_MODULES, *_OPTIONAL_MODULES):
        if m not in order:
            order.append(m)
    for m in order:
        if interp.exists(m):
            interp.load(m, f"__init__.py ({m})")
    return interp.raw
