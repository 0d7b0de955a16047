"""A UFO model as sbihep uses it: particles, vertices, and parameters/couplings as functions of the inputs.

:func:`load_ufo` reads a model directory (:mod:`sbihep.physics.ufo.reader`, no model code executed),
compiles its parameter and coupling expressions into one vectorised evaluator
(:mod:`sbihep.physics.ufo.expressions`), and applies a restriction card and/or a param card.

Restriction cards follow MadGraph's ``restrict_*.dat`` convention: every external parameter the card
sets to exactly 0 or 1 is *fixed* at that value (it can no longer be changed with :meth:`UFOModel.with_inputs`),
and every coupling that then vanishes identically is removed, together with the vertex entries
(colour × Lorentz) it multiplies and the vertices left with none.  "Identically" is decided numerically:
a coupling is removed when it is exactly zero at the card's values *and* at a second point where every
unfixed input is moved by a seeded random factor in [0.9, 1.1] (so an accidental zero at one point
does not remove a coupling).  Other values of the restriction card become the defaults of the inputs.
A param card only sets values (nothing fixed, nothing removed).

Wilson coefficients: :meth:`UFOModel.coupling_decomposition` writes every coupling as
c(θ) = c₀ + Σᵢ θᵢ cᵢ for a chosen set of external parameters θ (SMEFTsim's couplings are linear in its
Wilson coefficients, which enter divided by LambdaSMEFT²), evaluating the *whole* chain of internal
parameters at each probe point, since internal parameters depend on the Wilson coefficients too.
Found in SMEFTsim 3.0.2 (m_W scheme; ``coupling_decomposition(...).theta_dependent_parameters`` lists
them for any model): the input shifts dGf = (2cHl3 − cll1)v²/Λ², dMZ2, dMH2, dgw, dg1, dkH and what is
built from them (vevT, barlam, gwsh, g1sh), the linear width corrections dWZ, dWW, dWH, dWT, dWHb, dWHc,
dWHta, the complex coefficients cX = cXRe + i cXIm; in the top model also the Yukawas yb0, yt0.  The loop
factors gHaa, gHza, gHgg* do not depend on θ.  Every coupling of both models is exactly linear in all
Wilson coefficients (85 in U35, 275 in top); the one internal parameter that is not is ``vev`` =
(1 − 3cH v²/(8λΛ²))·vevT, a product of two linear factors, which no coupling uses beyond linear order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sbihep._toml import did_you_mean
from sbihep.errors import InvalidInputError, ModelFormatError, NonlinearCouplingWarning, ShapeError, UnknownParameterError
from sbihep.physics.ufo import objects as O
from sbihep.physics.ufo.cards import read_card
from sbihep.physics.ufo.expressions import ChainCompiler, compile_function_library
from sbihep.physics.ufo.reader import RawModel, read_ufo_directory

__all__ = ["UFOModel", "ModelValues", "CouplingDecomposition", "load_ufo"]

InputKey = "str | tuple[str, int] | tuple[str, tuple[int, ...]]"


@dataclass(frozen=True)
class ModelValues:
    """Numerical values of a model at one input point.

    Attributes:
        parameters: name → value of every parameter (external and internal), complex (real parameters
            have zero imaginary part).
        couplings: name → complex value of every coupling the model keeps.
    """

    parameters: dict[str, complex]
    couplings: dict[str, complex]

    def __getitem__(self, name: str) -> complex:
        if name in self.couplings:
            return self.couplings[name]
        if name in self.parameters:
            return self.parameters[name]
        raise UnknownParameterError(f"name: {name!r} is neither a parameter nor a coupling of the model"
                                    + did_you_mean(name, [*self.parameters, *self.couplings], n=3))

    def mass(self, particle: O.Particle) -> float:
        """Mass of a particle (GeV)."""
        return float(np.real(self.parameters[particle.mass.name]))

    def width(self, particle: O.Particle) -> float:
        """Width of a particle (GeV)."""
        return float(np.real(self.parameters[particle.width.name]))


@dataclass(frozen=True)
class CouplingDecomposition:
    """Couplings (and internal parameters) as exact linear functions of chosen inputs θ.

    ``c(θ) = constant + θ @ linear`` for θ of shape (n,) or (N, n).

    Attributes:
        operators: names of θ (external parameters of the model), in order.
        coupling_names: names of the columns of ``constant``/``linear``.
        constant: (n_couplings,) complex128, the couplings at θ = 0 (all other inputs as in the model).
        linear: (n_operators, n_couplings) complex128, ∂c/∂θᵢ.
        parameter_names: names of the internal parameters, columns of ``parameter_constant``/``parameter_linear``.
        parameter_constant: (n_internal,) complex128 at θ = 0.
        parameter_linear: (n_operators, n_internal) complex128 (from the symmetric difference at θ = ±eᵢ).
        theta_dependent_parameters: internal parameters with a non-zero ∂/∂θᵢ for some i.
        nonlinear_couplings: couplings whose value at θ = eᵢ + eⱼ or eᵢ (checked when built) the linear
            form does not reproduce to ``rtol``; empty when the check passed or was skipped.
        nonlinear_parameters: the same for internal parameters (they may be non-linear while every
            coupling is linear, e.g. products that cancel).
        checked: whether the linearity check ran.
    """

    operators: tuple[str, ...]
    coupling_names: tuple[str, ...]
    constant: np.ndarray
    linear: np.ndarray
    parameter_names: tuple[str, ...]
    parameter_constant: np.ndarray
    parameter_linear: np.ndarray
    theta_dependent_parameters: tuple[str, ...]
    nonlinear_couplings: tuple[str, ...]
    nonlinear_parameters: tuple[str, ...]
    checked: bool

    def index(self, coupling: str) -> int:
        """Column of a coupling."""
        try:
            return self.coupling_names.index(coupling)
        except ValueError:
            raise UnknownParameterError(f"coupling: {coupling!r} is not a coupling of the model"
                                        + did_you_mean(coupling, self.coupling_names, n=3)) from None

    def couplings(self, theta: Any) -> Any:
        """c(θ) for θ of shape (n,) or (N, n) in the order of :attr:`operators`, or a mapping
        operator → value (operators left out are 0): numpy in → numpy (…, n_couplings) complex128 out;
        a torch tensor in → a complex128 torch tensor (differentiable in θ) on θ's device.

        Raises:
            UnknownParameterError: a mapping key that is not one of :attr:`operators`.
            InvalidInputError / ShapeError: non-finite or non-numeric θ, or a wrong last dimension.
        """
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
        n = len(self.operators)
        if isinstance(theta, Mapping):
            theta = self._vector(theta)
        if torch is not None and isinstance(theta, torch.Tensor):
            if theta.shape[-1:] != (n,):
                raise ShapeError(f"theta: last dimension must be {n} (operators {list(self.operators)}), got {tuple(theta.shape)}")
            if not bool(torch.isfinite(theta).all()):
                raise InvalidInputError(f"theta: values must be finite (operators {list(self.operators)})")
            c0 = torch.as_tensor(self.constant, device=theta.device)
            lin = torch.as_tensor(self.linear, device=theta.device)
            return c0 + theta.to(torch.complex128) @ lin
        try:
            theta = np.asarray(theta, dtype=float)
        except (TypeError, ValueError):
            raise InvalidInputError(f"theta: expected numbers for operators {list(self.operators)}, got {theta!r}") from None
        if theta.shape[-1:] != (n,):
            raise ShapeError(f"theta: last dimension must be {n} (operators {list(self.operators)}), got {theta.shape}")
        if not np.isfinite(theta).all():
            raise InvalidInputError(f"theta: values must be finite (operators {list(self.operators)})")
        return self.constant + theta @ self.linear

    def _vector(self, theta: Mapping[str, Any]) -> np.ndarray:
        unknown = [k for k in theta if k not in self.operators]
        if unknown:
            raise UnknownParameterError(f"theta: {unknown[0]!r} is not one of the decomposition's operators "
                                        f"{list(self.operators)}" + did_you_mean(str(unknown[0]), self.operators, n=3))
        try:
            return np.array([float(theta.get(op, 0.0)) for op in self.operators])
        except (TypeError, ValueError):
            raise InvalidInputError(f"theta: expected numbers, got {dict(theta)!r}") from None


def _as_tuple_code(code: Any) -> tuple[int, ...]:
    if isinstance(code, (int, np.integer)):
        return (int(code),)
    return tuple(int(c) for c in code)


class UFOModel:
    """A UFO model read by sbihep.  Build it with :func:`load_ufo`; instances are immutable —
    :meth:`with_inputs`, :meth:`with_param_card` and :meth:`restrict` return new models.

    Attributes:
        name: folder name of the model.
        path: the model directory.
        content_hash: sha256 of the model's ``.py`` files.
        particles: tuple of :class:`~sbihep.physics.ufo.objects.Particle` (particles and antiparticles).
        parameters: name → :class:`~sbihep.physics.ufo.objects.Parameter` (external and internal).
        external_parameters: the inputs, in file order.
        couplings: name → :class:`~sbihep.physics.ufo.objects.Coupling` (after restriction).
        vertices: tuple of :class:`~sbihep.physics.ufo.objects.Vertex` (after restriction).
        lorentz: name → :class:`~sbihep.physics.ufo.objects.Lorentz`.
        orders: name → :class:`~sbihep.physics.ufo.objects.CouplingOrder`.
        propagators: name → :class:`~sbihep.physics.ufo.objects.Propagator`.
        decays: tuple of :class:`~sbihep.physics.ufo.objects.Decay`.
        functions: name → :class:`~sbihep.physics.ufo.objects.Function` of ``function_library.py``.
        fixed: names of inputs a restriction card fixed (at 0 or 1).
        restriction: name of the restriction card applied, or None.
        removed_couplings: names of couplings the restriction removed.
    """

    def __init__(self, raw: RawModel, *, _state: dict | None = None):
        self._raw = raw
        self.name = raw.name
        self.path = raw.path
        self.content_hash = raw.content_hash
        self.particles = tuple(raw.particles)
        self.parameters = {p.name: p for p in raw.parameters}
        if len(self.parameters) != len(raw.parameters):
            seen: set[str] = set()
            dup = [p.name for p in raw.parameters if p.name in seen or seen.add(p.name)]
            raise ModelFormatError(f"{raw.name}: parameters defined twice: {dup[:5]}")
        self.external_parameters = tuple(p for p in raw.parameters if p.nature == "external")
        self.lorentz = {lor.name: lor for lor in raw.lorentz}
        self.orders = {o.name: o for o in raw.orders}
        self.propagators = {p.name: p for p in raw.propagators}
        self.decays = tuple(raw.decays)
        self.functions = {f.name: f for f in raw.functions}
        self._by_name = {p.name: p for p in self.particles}
        self._by_pdg = {p.pdg_code: p for p in self.particles}
        lower: dict[str, list[O.Particle]] = {}
        for p in self.particles:
            lower.setdefault(p.name.lower(), []).append(p)
        self._by_lower = {k: v[0] for k, v in lower.items() if len(v) == 1}
        self._lha = {}
        for p in self.external_parameters:
            key = (str(p.lhablock).lower(), p.lhacode)
            if key in self._lha:
                raise ModelFormatError(f"{p.source}: {p.name} and {self._lha[key].name} share LHA entry {p.lhablock} {p.lhacode}")
            self._lha[key] = p
        state = _state or {}
        self.couplings: dict[str, O.Coupling] = state.get("couplings", {c.name: c for c in raw.couplings})
        self.vertices: tuple[O.Vertex, ...] = state.get("vertices", tuple(raw.vertices))
        self.fixed: frozenset[str] = state.get("fixed", frozenset())
        self.restriction: str | None = state.get("restriction")
        self.removed_couplings: tuple[str, ...] = state.get("removed_couplings", ())
        self._values: dict[str, complex] = state.get("values", {p.name: p.value for p in self.external_parameters})
        self._chain: ChainCompiler = state.get("chain") or self._compile()

    # ---- construction -----------------------------------------------------------------------------
    def _compile(self) -> ChainCompiler:
        functions = compile_function_library(self._raw.functions)
        internals = [(p.name, p.value, p.type == "real", f"{p.source} Parameter {p.name!r}")
                     for p in self._raw.parameters if p.nature == "internal"]
        outputs = [(c.name, c.value, f"{c.source} Coupling {c.name!r}") for c in self.couplings.values()]
        return ChainCompiler([p.name for p in self.external_parameters], internals, outputs, functions)

    def _replace(self, **state: Any) -> "UFOModel":
        base = {"couplings": self.couplings, "vertices": self.vertices, "fixed": self.fixed,
                "restriction": self.restriction, "removed_couplings": self.removed_couplings,
                "values": dict(self._values), "chain": self._chain}
        base.update(state)
        return UFOModel(self._raw, _state=base)

    def __repr__(self) -> str:
        r = f", restriction={self.restriction!r}" if self.restriction else ""
        return (f"UFOModel({self.name!r}{r}: {len(self.particles)} particles, {len(self.vertices)} vertices, "
                f"{len(self.couplings)} couplings, {len(self.external_parameters)} inputs)")

    # ---- look-ups ---------------------------------------------------------------------------------
    def particle(self, name: str) -> O.Particle:
        """A particle by its model name (exact, else case-insensitive when unambiguous, as MadGraph reads
        process strings); unknown names raise with a did-you-mean."""
        if name in self._by_name:
            return self._by_name[name]
        if name.lower() in self._by_lower:
            return self._by_lower[name.lower()]
        raise UnknownParameterError(f"particle: {name!r} is not a particle of model {self.name}"
                                    + did_you_mean(name, self._by_name, n=3))

    def particle_by_pdg(self, pdg: int) -> O.Particle:
        """A particle by PDG id (negative for antiparticles)."""
        try:
            return self._by_pdg[int(pdg)]
        except KeyError:
            raise UnknownParameterError(f"pdg: {pdg} is not a particle of model {self.name}") from None

    def input_parameter(self, key: Any) -> O.Parameter:
        """An external parameter by name, or by LHA ``(block, code)`` / ``(block, (code, …))``."""
        if isinstance(key, str):
            p = self.parameters.get(key)
            if p is None:
                raise UnknownParameterError(f"input: {key!r} is not a parameter of model {self.name}"
                                            + did_you_mean(key, [q.name for q in self.external_parameters], n=3))
            if p.nature != "external":
                raise UnknownParameterError(f"input: {key!r} is an internal parameter of model {self.name} "
                                            f"(= {p.value}); only external parameters are inputs")
            return p
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
            lk = (key[0].lower(), _as_tuple_code(key[1]))
            if lk in self._lha:
                return self._lha[lk]
            raise UnknownParameterError(f"input: no external parameter at LHA block {key[0]} code {lk[1]} in model {self.name}")
        raise InvalidInputError(f"input: expected a parameter name or (block, code), got {key!r}")

    @property
    def inputs(self) -> dict[str, float | complex]:
        """Current values of the external parameters, name → value."""
        return dict(self._values)

    # ---- changing inputs --------------------------------------------------------------------------
    def with_inputs(self, values: Mapping[Any, float] | None = None, **by_name: float) -> "UFOModel":
        """A copy with some external parameters changed (keys: names or LHA ``(block, code)``).

        Raises:
            UnknownParameterError: a key that is not an external parameter.
            InvalidInputError: a non-finite value, a complex value for a real parameter, or an input
                the restriction card fixed.
        """
        new = dict(self._values)
        for key, value in [*(values or {}).items(), *by_name.items()]:
            p = self.input_parameter(key)
            v = complex(value) if isinstance(value, complex) else value
            try:
                if isinstance(v, (str, bytes, bool)):  # float("91") would pass a typo'd card value through
                    raise TypeError
                v = float(v) if not isinstance(v, complex) else v
            except (TypeError, ValueError):
                raise InvalidInputError(f"{p.name}: value must be a number, got {value!r}") from None
            if not np.isfinite(v):
                raise InvalidInputError(f"{p.name}: value must be finite, got {value!r}")
            if isinstance(v, complex) and p.type == "real":
                if v.imag != 0:
                    raise InvalidInputError(f"{p.name}: real parameter given the complex value {value!r}")
                v = v.real
            if p.name in self.fixed and v != self._values[p.name]:
                raise InvalidInputError(f"{p.name}: fixed at {self._values[p.name]} by the restriction card "
                                        f"{self.restriction!r}; load the model without it to vary {p.name}")
            new[p.name] = v
        return self._replace(values=new)

    def _card_values(self, path: str | Path) -> tuple[dict[str, float], list[tuple[str, tuple[int, ...]]]]:
        entries = read_card(path)
        values: dict[str, float] = {}
        unused = []
        for (block, codes), v in entries.items():
            p = self._lha.get((block, codes))
            if p is None:
                unused.append((block, codes))
            else:
                values[p.name] = v
        return values, unused

    def with_param_card(self, path: str | Path) -> "UFOModel":
        """A copy with the inputs a param card sets (entries for unknown LHA codes — the dependent
        parameters MadGraph writes for information — are ignored; inputs the card omits keep their value)."""
        values, _ = self._card_values(path)
        return self.with_inputs(values)

    def restrict(self, card: str | Path, *, seed: int = 12345) -> "UFOModel":
        """Apply a MadGraph restriction card (see the module docstring): fix the inputs it sets to 0 or 1,
        use its other values as defaults, and remove the couplings that vanish identically."""
        card = Path(card)
        values, _ = self._card_values(card)
        model = self.with_inputs(values)
        fixed = set(self.fixed) | {n for n, v in values.items() if v in (0.0, 1.0)}
        names = [p.name for p in self.external_parameters]
        x0 = np.array([model._values[n] for n in names], dtype=np.complex128)
        rng = np.random.default_rng(seed)
        factors = np.array([1.0 if n in fixed else 1.0 + 0.1 * rng.uniform(-1, 1) for n in names])
        x = np.stack([x0, x0 * factors], axis=1)
        _, couplings = self._chain(x)
        names_c = self._chain.output_names
        zero = {names_c[i] for i in range(len(names_c)) if np.all(couplings[i] == 0)}
        zero &= set(self.couplings)
        kept = {k: c for k, c in self.couplings.items() if k not in zero}
        vertices = []
        for v in self.vertices:
            entries = {}
            for key, c in v.couplings.items():
                cs = [q for q in (c if isinstance(c, list) else [c]) if q.name not in zero]
                if cs:
                    entries[key] = cs if isinstance(c, list) else cs[0]
            if not entries:
                continue
            if len(entries) == len(v.couplings):
                vertices.append(v)
                continue
            colours = sorted({k[0] for k in entries})
            lorentz = sorted({k[1] for k in entries})
            cmap = {c: i for i, c in enumerate(colours)}
            lmap = {c: i for i, c in enumerate(lorentz)}
            nv = O.Vertex(v.name, list(v.particles), [v.color[i] for i in colours], [v.lorentz[i] for i in lorentz],
                          {(cmap[a], lmap[b]): c for (a, b), c in entries.items()}, _source=v.source, **v.options)
            vertices.append(nv)
        return model._replace(couplings=kept, vertices=tuple(vertices), fixed=frozenset(fixed),
                              restriction=card.name, removed_couplings=tuple(sorted(zero | set(self.removed_couplings))))

    # ---- evaluation -------------------------------------------------------------------------------
    def _input_vector(self, overrides: Mapping[str, Any] | None = None) -> np.ndarray:
        vals = dict(self._values)
        if overrides:
            for k, v in overrides.items():
                vals[self.input_parameter(k).name] = v
        return np.array([vals[p.name] for p in self.external_parameters], dtype=np.complex128)

    def evaluate(self, inputs: Mapping[Any, float] | None = None) -> ModelValues:
        """Every parameter and coupling at the model's inputs (changed by ``inputs``, if given).

        Raises:
            InvalidInputError: a real-typed internal parameter comes out complex (e.g. a square root of a
                negative number for unphysical inputs), or a coupling is not finite.
        """
        model = self.with_inputs(inputs) if inputs else self
        x = model._input_vector()[:, None]
        internals, couplings = self._chain(x)
        self._check_real()
        params = {p.name: complex(x[i, 0]) for i, p in enumerate(self.external_parameters)}
        params.update({n: complex(internals[i, 0]) for i, n in enumerate(self._chain.internal_names)})
        cvals = {n: complex(couplings[i, 0]) for i, n in enumerate(self._chain.output_names) if n in self.couplings}
        bad = [n for n, v in cvals.items() if not np.isfinite(v)]
        if bad:
            raise InvalidInputError(f"inputs: couplings {bad[:5]} are not finite at these inputs (a zero mass in a denominator?)")
        return ModelValues(params, cvals)

    def _check_real(self, tol: float = 1e-10) -> None:
        bad = {n: r for n, r in self._chain.max_discarded_imag.items() if r > tol}
        if bad:
            n, r = max(bad.items(), key=lambda t: t[1])
            raise InvalidInputError(f"inputs: the real parameter {n!r} ({self.parameters[n].value}) evaluates to a complex "
                                    f"number (relative imaginary part {r:.3g}); the inputs are unphysical for this model")

    def evaluate_batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw vectorised evaluation: ``x`` (n_inputs, *batch) in the order of :attr:`external_parameters`
        → (internal parameters (n_internal, *batch), couplings (n_couplings, *batch)), in the orders
        :attr:`internal_names` and :attr:`coupling_order`."""
        out = self._chain(x)
        self._check_real()
        return out

    @property
    def internal_names(self) -> tuple[str, ...]:
        """Internal parameters in evaluation (dependency) order."""
        return self._chain.internal_names

    @property
    def coupling_order(self) -> tuple[str, ...]:
        """Rows of the couplings returned by :meth:`evaluate_batch` (includes removed couplings)."""
        return self._chain.output_names

    def coupling_decomposition(self, operators: Sequence[str], *, check: bool = True, rtol: float = 1e-9,
                               nonlinear: str = "raise", max_pairs: int = 30, n_random: int = 4,
                               seed: int = 2024) -> CouplingDecomposition:
        """Every coupling as c₀ + Σᵢ θᵢ cᵢ, θ = the external parameters ``operators`` (Wilson coefficients).

        The constant is the value at θ = 0 (all other inputs at the model's values; the operators' own
        current values are ignored), cᵢ = (c(+eᵢ) − c(−eᵢ))/2 with the whole internal-parameter chain
        evaluated at each point.  With ``check``, the linear form must reproduce c(eᵢ), c(eᵢ + eⱼ) (all
        pairs i < j, when there are at most ``max_pairs`` operators) and c(θᵣ) at ``n_random`` seeded
        random θᵣ ∈ [−1, 1]ⁿ, to ``rtol`` relative to the size of the terms.  (θ = 1 is a unit Wilson
        coefficient: SMEFTsim divides it by LambdaSMEFT².)

        Args:
            operators: names of external parameters (e.g. ``["cHW", "cHWB"]``).
            check: run the linearity check.
            rtol: tolerance of the check.
            nonlinear: ``"raise"`` (default) or ``"warn"`` when a coupling fails the check.
            max_pairs: the number of operators up to which all pairs eᵢ + eⱼ are checked.
            n_random: random points checked.
            seed: seed of the random points.

        Raises:
            UnknownParameterError: an operator that is not an external parameter.
            InvalidInputError: an operator the restriction card fixed, a repeated operator, a bad
                ``nonlinear`` value, or (``nonlinear="raise"``) a coupling that is not linear.
        """
        if nonlinear not in ("raise", "warn"):
            raise InvalidInputError(f"nonlinear must be 'raise' or 'warn', got {nonlinear!r}")
        ops = tuple(self.input_parameter(o).name for o in operators)
        if len(set(ops)) != len(ops):
            raise InvalidInputError(f"operators: repeated names in {list(operators)}")
        for o in ops:
            if o in self.fixed:
                raise InvalidInputError(f"operators: {o!r} is fixed at {self._values[o]} by the restriction card "
                                        f"{self.restriction!r}, so it cannot vary")
        n = len(ops)
        names = [p.name for p in self.external_parameters]
        col = {nm: i for i, nm in enumerate(names)}
        base = self._input_vector({o: 0.0 for o in ops})
        points = [np.zeros(n)]
        for i in range(n):
            e = np.zeros(n)
            e[i] = 1.0
            points += [e, -e]
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)] if check and n <= max_pairs else []
        for i, j in pairs:
            e = np.zeros(n)
            e[i] = e[j] = 1.0
            points.append(e)
        randoms = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n_random if check else 0, n))
        points.extend(randoms)
        theta = np.array(points)  # (P, n)
        x = np.repeat(base[:, None], len(points), axis=1)
        for k, o in enumerate(ops):
            x[col[o]] = theta[:, k]
        internals, couplings = self.evaluate_batch(x)
        keep = [i for i, nm in enumerate(self._chain.output_names) if nm in self.couplings]
        cnames = tuple(self._chain.output_names[i] for i in keep)
        couplings = couplings[keep]

        def split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            c0 = values[:, 0]
            plus = values[:, 1:1 + 2 * n:2]
            minus = values[:, 2:2 + 2 * n:2]
            lin = ((plus - minus) / 2.0).T  # (n, m)
            bad = np.zeros(values.shape[0], dtype=bool)
            if check:
                scale = np.maximum(np.abs(c0)[:, None], np.abs(lin.T))  # (m, n)
                bad |= np.any(np.abs(plus - (c0[:, None] + lin.T)) > rtol * scale + 1e-300, axis=1)
                bad |= ~np.all(np.isfinite(values), axis=1)
                for k, (i, j) in enumerate(pairs):
                    v = values[:, 1 + 2 * n + k]
                    s = np.maximum(np.maximum(np.abs(c0), np.abs(lin[i])), np.abs(lin[j]))
                    bad |= np.abs(v - (c0 + lin[i] + lin[j])) > rtol * s + 1e-300
                start = 1 + 2 * n + len(pairs)
                for k, t in enumerate(randoms):
                    v = values[:, start + k]
                    s = np.abs(c0) + np.abs(t) @ np.abs(lin)
                    bad |= np.abs(v - (c0 + t @ lin)) > rtol * s + 1e-300
            return c0, lin, bad

        c0, clin, cbad = split(couplings)
        p0, plin, pbad = split(internals)
        nonlin_c = tuple(cnames[i] for i in np.flatnonzero(cbad))
        nonlin_p = tuple(self._chain.internal_names[i] for i in np.flatnonzero(pbad))
        if nonlin_c:
            msg = (f"{len(nonlin_c)} couplings of {self.name} are not linear in {list(ops)}: "
                   f"{', '.join(nonlin_c[:10])}{' …' if len(nonlin_c) > 10 else ''}")
            if nonlinear == "raise":
                raise InvalidInputError(msg)
            warnings.warn(msg, NonlinearCouplingWarning, stacklevel=2)
        dep = tuple(self._chain.internal_names[i] for i in np.flatnonzero(np.any(plin != 0, axis=0)))
        return CouplingDecomposition(ops, cnames, c0, clin, self._chain.internal_names, p0, plin, dep,
                                     nonlin_c, nonlin_p, check)


def load_ufo(path: str | Path, restriction: str | Path | None = None, param_card: str | Path | None = None) -> UFOModel:
    """Load a UFO model directory.

    Args:
        path: the model folder (with ``__init__.py``, ``particles.py`` …).  Nothing in it is executed.
        restriction: None; a bare file name, looked up in the model folder first (``"restrict_massless.dat"``,
            or ``"massless"`` for ``restrict_massless.dat``), then in the working directory; or a path
            (with a directory part) to a restriction card.
        param_card: None or a param card (found the same way) whose values are applied after the
            restriction.

    Returns:
        A :class:`UFOModel`.

    Raises:
        ModelFormatError: not a readable UFO model, or a card that cannot be read or found.
        UnsafeModelError: a model file with a construct outside UFO's (named file:line).
    """
    path = Path(path).expanduser()
    model = UFOModel(read_ufo_directory(path))

    def locate(card: str | Path, what: str) -> Path:
        c = Path(card).expanduser()
        bare = not c.is_absolute() and len(c.parts) == 1
        candidates = (path / c, path / f"restrict_{c}.dat", c) if bare else (c,)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ModelFormatError(f"{what}: no card {str(card)!r} (looked for {', '.join(map(str, candidates))})")

    if restriction is not None:
        model = model.restrict(locate(restriction, "restriction"))
    if param_card is not None:
        model = model.with_param_card(locate(param_card, "param_card"))
    return model
