"""sbihep's own UFO object library: the classes a model file constructs.

A UFO model (Degrande et al., arXiv:1108.2040; UFO 2.0, Darmé et al., arXiv:2304.09883) ships an
``object_library.py`` that its files import.  sbihep never imports or executes that file (SMEFTsim 3.0's
copy is Python 2 code); :mod:`sbihep.physics.ufo.reader` binds the names ``Particle``, ``Parameter``,
``Coupling``, ``Lorentz``, ``Vertex``, ``CouplingOrder``, ``Decay``, ``Function``, ``Propagator``,
``FormFactor``, ``CTParameter``, ``CTVertex`` of the model's files to the classes below instead.

Each class takes the arguments of the UFO class of the same name (positional in the UFO order, or by
keyword); options the UFO allows beyond those (``GhostNumber``, ``LeptonNumber``, ``Y`` on particles …)
land in ``options``.  Values that are expressions (parameter values, coupling values, Lorentz
structures) stay strings here; :mod:`sbihep.physics.ufo.expressions` compiles them.  Every object records
``source`` = ``"file.py:line"`` of the statement that made it, for error messages.
"""

from __future__ import annotations

from typing import Any

from sbihep.errors import ModelFormatError

__all__ = [
    "UFOObject",
    "Particle",
    "Parameter",
    "Coupling",
    "Lorentz",
    "Vertex",
    "CouplingOrder",
    "Decay",
    "Function",
    "Propagator",
    "FormFactor",
    "CTParameter",
    "CTVertex",
    "OBJECT_CLASSES",
]


def _bind(cls_name: str, required: tuple[str, ...], optional: dict[str, Any], args: tuple, kwargs: dict,
          source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Match UFO constructor arguments: ``required`` then ``optional`` positionally, the rest by keyword."""
    names = list(required) + list(optional)
    if len(args) > len(names):
        raise ModelFormatError(f"{source}: {cls_name}() takes at most {len(names)} positional arguments, got {len(args)}")
    values: dict[str, Any] = dict(optional)
    for name, value in zip(names, args):
        values[name] = value
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in names[: len(args)]:
            raise ModelFormatError(f"{source}: {cls_name}() got argument {key!r} twice")
        if key in values or key in required:
            values[key] = value
        else:
            options[key] = value
    missing = [n for n in required if n not in values]
    if missing:
        raise ModelFormatError(f"{source}: {cls_name}() is missing required argument(s) {', '.join(missing)}")
    return values, options


class UFOObject:
    """Base of the UFO objects: attribute access plus the UFO ``get`` method and a readable repr."""

    kind: str = "object"
    source: str = "?"

    def get(self, name: str) -> Any:
        return getattr(self, name)

    def __repr__(self) -> str:
        name = getattr(self, "name", None)
        return f"{type(self).__name__}({name!r})" if name is not None else f"{type(self).__name__}()"


class Particle(UFOObject):
    """A UFO particle.

    Attributes:
        pdg_code: PDG id (int).
        name, antiname: the model's names (e.g. ``"W+"``, ``"W-"``); equal for self-conjugate particles.
        spin: 2S+1 (1 scalar, 2 fermion, 3 vector, 5 spin 2; −1 ghost).
        color: 1, 3, −3, 6, −6 or 8.
        mass, width: :class:`Parameter` objects (``ZERO`` for massless / stable).
        charge: electric charge in units of e (float).
        propagating, goldstoneboson: UFO flags.
        propagator: None, or ``{0: Propagator, 1: Propagator}`` (gauge → custom propagator).
        options: further UFO attributes (``GhostNumber``, ``LeptonNumber``, ``Y`` …).
    """

    kind = "particle"
    _required = ("pdg_code", "name", "antiname", "spin", "color", "mass", "width", "texname", "antitexname", "charge")
    _optional = {"line": None, "propagating": True, "counterterm": None, "goldstoneboson": False, "propagator": None}

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Particle", self._required, self._optional, args, kwargs, _source)
        self.source = _source
        self.pdg_code = int(values["pdg_code"])
        self.name = str(values["name"])
        self.antiname = str(values["antiname"])
        self.spin = int(values["spin"])
        self.color = int(values["color"])
        self.mass = values["mass"]
        self.width = values["width"]
        self.texname = values["texname"]
        self.antitexname = values["antitexname"]
        try:
            self.charge = float(values["charge"])
        except (TypeError, ValueError):
            raise ModelFormatError(f"{_source}: Particle {self.name!r}: charge must be a number, got {values['charge']!r}") from None
        self.line = values["line"]
        self.propagating = bool(values["propagating"])
        self.counterterm = values["counterterm"]
        self.goldstoneboson = bool(values["goldstoneboson"])
        prop = values["propagator"]
        if prop is not None and not isinstance(prop, dict):
            prop = {0: prop, 1: prop}
        self.propagator = prop
        self.options = options
        self.selfconjugate = self.name == self.antiname
        for attr in ("mass", "width"):
            if not isinstance(getattr(self, attr), Parameter):
                raise ModelFormatError(f"{_source}: Particle {self.name!r}: {attr} must be a Parameter, got {getattr(self, attr)!r}")

    def anti(self, _source: str = "?") -> "Particle":
        """The antiparticle, as UFO's ``Particle.anti()`` builds it: pdg → −pdg, names swapped, colour
        3 ↔ −3 (1, 8 unchanged), charge and every numeric option (quantum numbers) negated."""
        if self.selfconjugate:
            raise ModelFormatError(f"{_source}: {self.name} is self-conjugate and has no antiparticle")
        color = self.color if self.color in (1, 8) else -self.color
        options = {k: (-v if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in self.options.items()}
        return Particle(-self.pdg_code, self.antiname, self.name, self.spin, color, self.mass, self.width,
                        self.antitexname, self.texname, -self.charge, line=self.line, propagating=self.propagating,
                        counterterm=self.counterterm, goldstoneboson=self.goldstoneboson,
                        propagator=self.propagator, _source=_source, **options)

    @property
    def is_fermion(self) -> bool:
        return self.spin % 2 == 0


class Parameter(UFOObject):
    """A UFO parameter.

    Attributes:
        name: identifier used in expressions.
        nature: ``"external"`` (an input, read from an LHA block) or ``"internal"`` (an expression).
        type: ``"real"`` or ``"complex"``.
        value: the default number (external) or the expression string (internal).
        lhablock, lhacode: LHA block name and code list (external parameters).
    """

    kind = "parameter"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Parameter", ("name", "nature", "type", "value", "texname"),
                                {"lhablock": None, "lhacode": None}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.nature = str(values["nature"])
        self.type = str(values["type"])
        self.value = values["value"]
        self.texname = values["texname"]
        self.lhablock = values["lhablock"]
        code = values["lhacode"]
        self.lhacode = tuple(int(c) for c in code) if code is not None else None
        self.options = options
        if self.nature not in ("external", "internal"):
            raise ModelFormatError(f"{_source}: Parameter {self.name!r}: nature must be 'external' or 'internal', got {self.nature!r}")
        if self.type not in ("real", "complex"):
            raise ModelFormatError(f"{_source}: Parameter {self.name!r}: type must be 'real' or 'complex', got {self.type!r}")
        if self.nature == "external":
            if self.lhablock is None or self.lhacode is None:
                raise ModelFormatError(f"{_source}: external Parameter {self.name!r} needs lhablock and lhacode")
            if not isinstance(self.value, (int, float, complex)) or isinstance(self.value, bool):
                raise ModelFormatError(f"{_source}: external Parameter {self.name!r}: value must be a number, got {self.value!r}")
        elif not isinstance(self.value, str):
            if isinstance(self.value, (int, float, complex)) and not isinstance(self.value, bool):
                self.value = repr(self.value)
            else:
                raise ModelFormatError(f"{_source}: internal Parameter {self.name!r}: value must be an expression string, got {self.value!r}")


class Coupling(UFOObject):
    """A UFO coupling: ``value`` is an expression string (or, for loop models, a dict pole → string);
    ``order`` maps coupling-order names to powers, e.g. ``{"QED": 1, "NP": 1}``."""

    kind = "coupling"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Coupling", ("name", "value", "order"), {}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        value = values["value"]
        if isinstance(value, dict):
            value = value.get(0, "0")  # finite part of a Laurent series (tree level)
        if not isinstance(value, str):
            raise ModelFormatError(f"{_source}: Coupling {self.name!r}: value must be an expression string, got {value!r}")
        self.value = value
        order = values["order"]
        if not isinstance(order, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in order.items()):
            raise ModelFormatError(f"{_source}: Coupling {self.name!r}: order must be a dict name → int, got {order!r}")
        self.order = dict(order)
        self.options = options


class Lorentz(UFOObject):
    """A UFO Lorentz structure: ``spins`` (2S+1 of each leg) and ``structure`` (expression string in
    Gamma, Gamma5, ProjM, ProjP, Metric, P, Epsilon, Identity, Sigma, C …)."""

    kind = "lorentz"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Lorentz", ("name", "spins"), {"structure": "external"}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.spins = tuple(int(s) for s in values["spins"])
        self.structure = str(values["structure"])
        self.options = options


class Vertex(UFOObject):
    """A UFO vertex.

    Attributes:
        particles: tuple of :class:`Particle` (all outgoing, UFO convention).
        color: tuple of colour-structure strings (``"1"``, ``"T(3,2,1)"``, ``"f(1,2,3)"`` …).
        lorentz: tuple of :class:`Lorentz`.
        couplings: dict ``(colour index, lorentz index) → Coupling``.
    """

    kind = "vertex"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Vertex", ("name", "particles", "color", "lorentz", "couplings"), {}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.particles = tuple(values["particles"])
        self.color = tuple(str(c) for c in values["color"])
        self.lorentz = tuple(values["lorentz"])
        couplings = values["couplings"]
        if not isinstance(couplings, dict):
            raise ModelFormatError(f"{_source}: Vertex {self.name!r}: couplings must be a dict, got {couplings!r}")
        self.couplings = {}
        for key, c in couplings.items():
            if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(i, int) for i in key)):
                raise ModelFormatError(f"{_source}: Vertex {self.name!r}: coupling key must be (colour, lorentz) ints, got {key!r}")
            if not (0 <= key[0] < len(self.color) and 0 <= key[1] < len(self.lorentz)):
                raise ModelFormatError(f"{_source}: Vertex {self.name!r}: coupling key {key} out of range")
            cs = c if isinstance(c, list) else [c]
            for one in cs:
                if not isinstance(one, Coupling):
                    raise ModelFormatError(f"{_source}: Vertex {self.name!r}: {one!r} is not a Coupling")
            self.couplings[key] = c
        for p in self.particles:
            if not isinstance(p, Particle):
                raise ModelFormatError(f"{_source}: Vertex {self.name!r}: {p!r} is not a Particle")
        for lor in self.lorentz:
            if not isinstance(lor, Lorentz):
                raise ModelFormatError(f"{_source}: Vertex {self.name!r}: {lor!r} is not a Lorentz structure")
        self.options = options


class CouplingOrder(UFOObject):
    """A UFO coupling order (``QCD``, ``QED``, SMEFTsim's ``NP`` …)."""

    kind = "order"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("CouplingOrder", ("name", "expansion_order", "hierarchy"),
                                {"perturbative_expansion": 0}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.expansion_order = int(values["expansion_order"])
        self.hierarchy = int(values["hierarchy"])
        self.perturbative_expansion = int(values["perturbative_expansion"])
        self.options = options


class Decay(UFOObject):
    """A UFO decay: ``particle`` and ``partial_widths`` (tuple of products → width expression)."""

    kind = "decay"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Decay", ("particle", "partial_widths"), {}, args, kwargs, _source)
        self.source = _source
        self.particle = values["particle"]
        self.partial_widths = dict(values["partial_widths"])
        self.name = options.pop("name", f"Decay_{getattr(self.particle, 'name', '?')}")
        self.options = options


class Function(UFOObject):
    """A function of ``function_library.py``: ``arguments`` (names) and ``expression`` (string)."""

    kind = "function"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Function", ("name", "arguments", "expression"), {}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        arguments = values["arguments"]
        if isinstance(arguments, str):  # UFO writes ('z') for a one-argument function
            arguments = (arguments,)
        self.arguments = tuple(str(a) for a in arguments)
        self.expression = str(values["expression"])


class Propagator(UFOObject):
    """A custom UFO propagator: ``numerator`` and ``denominator`` expression strings."""

    kind = "propagator"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("Propagator", ("name", "numerator"), {"denominator": None}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.numerator = str(values["numerator"])
        self.denominator = None if values["denominator"] is None else str(values["denominator"])
        self.options = options


class FormFactor(UFOObject):
    """A UFO form factor (``name``, ``type``, ``value``); read but not used at tree level."""

    kind = "form_factor"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("FormFactor", ("name", "type", "value"), {}, args, kwargs, _source)
        self.source = _source
        self.name, self.type, self.value = str(values["name"]), values["type"], values["value"]
        self.options = options


class CTParameter(UFOObject):
    """A counterterm parameter of a loop UFO; read but not used at tree level."""

    kind = "ct_parameter"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("CTParameter", ("name", "type", "value", "texname"), {}, args, kwargs, _source)
        self.source = _source
        self.name, self.type, self.value = str(values["name"]), values["type"], values["value"]
        self.options = options


class CTVertex(UFOObject):
    """A counterterm vertex of a loop UFO; read but not used at tree level."""

    kind = "ct_vertex"

    def __init__(self, *args: Any, _source: str = "?", **kwargs: Any) -> None:
        values, options = _bind("CTVertex", ("name", "particles", "color", "lorentz", "couplings", "type", "loop_particles"),
                                {}, args, kwargs, _source)
        self.source = _source
        self.name = str(values["name"])
        self.options = {**values, **options}


#: The names a model file may bind from ``object_library`` → sbihep's class.
OBJECT_CLASSES: dict[str, type] = {
    "Particle": Particle,
    "Parameter": Parameter,
    "Coupling": Coupling,
    "Lorentz": Lorentz,
    "Vertex": Vertex,
    "CouplingOrder": CouplingOrder,
    "Decay": Decay,
    "Function": Function,
    "Propagator": Propagator,
    "FormFactor": FormFactor,
    "CTParameter": CTParameter,
    "CTVertex": CTVertex,
}
