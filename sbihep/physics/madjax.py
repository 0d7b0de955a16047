"""Adapter: a madjax-generated process package as an sbihep :class:`~sbihep.physics.processes.base.Process`.

MadGraph's madjax plugin (``output madjax DIR``; github.com/madjax-hep/madjax) writes a Python
package with

* ``DIR/model/parameters.py`` — ``calculate_full_parameters(slha)``: external parameters as a
  dict {(block, id): value} (defaults for missing ones) → dict of all parameters and couplings;
* ``DIR/processes/all_processes.py`` — one class ``Matrix_<process>`` per process, with
  ``get_external_masses(params)`` → ((initial masses), (final masses)) and ``smatrix(p, params)``
  → helicity-summed, spin- and colour-averaged |M|² (jax) at one phase-space point p, the n
  four-momenta (E, px, py, pz) in GeV.

:class:`MadjaxProcess` evaluates ``smatrix`` with ``jax.vmap`` over events, hands the result to torch
through DLPack (numpy as fallback), and obtains the
exact EFT decomposition |M|²(θ) = A₀ + θ·A + θᵀQθ by evaluating at the basis points θ = 0, ±h e_i
and h(e_i + e_j) (i < j) — 1 + n(n+3)/2 evaluations — with every operator θ_i bound to a
param-card entry (``operators={"cll": ("eecontact", 1), …}``).  This is exact for a model whose
|M|² is quadratic in the operators (dimension-6 insertions at O(Λ⁻⁴)); ``check=True`` verifies it
at one more point.  jax is the optional extra ``sbihep[madjax]``; it is imported lazily.

Precision: the evaluation runs under ``jax.enable_x64`` (float64 momenta and parameters), but madjax's
own wavefunction helpers build every spinor and polarisation vector with ``madjax_patch.complex``, which
forces complex64 — with it the float64 |M|² carries relative errors of order 1e-6.  The adapter therefore
evaluates with that ``complex`` rebound to a complex128 version in madjax's modules and the package's
own (only while it evaluates); :attr:`MadjaxProcess.precision` records what the |M|² was computed in
(``"complex128"``; ``"complex64"`` when the package's output still came back in single precision, which
also raises a :class:`~sbihep.errors.PrecisionWarning`).

The matrix elements are not differentiable through torch in the momenta (they are computed by jax);
|M|² at θ is differentiable in θ (it is evaluated from the decomposition in torch).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from sbihep.errors import InvalidInputError, PrecisionWarning, ShapeError
from sbihep.physics.couplings import DEFAULT_SM, SMInputs
from sbihep.physics.phasespace import rambo, two_to_two
from sbihep.physics.processes.base import Amplitudes, EFTDecomposition, EFTOrder, PartonicChannel, Process, check_order

__all__ = ["MadjaxProcess", "load_madjax_package", "require_jax"]


def require_jax():
    """Import jax, or raise an ImportError that says how to install it."""
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the madjax adapter needs jax: install the optional extra with `pip install 'sbihep[madjax]'` "
            f"(or `pip install jax`) ({exc})"
        ) from None
    return jax


def load_madjax_package(package: str | os.PathLike):
    """Import a madjax output package; returns (all_processes module, parameters module).

    Args:
        package: an importable module name, or the path of the package directory (its parent is put
            on ``sys.path`` for the import, as madjax's own loader expects).
    """
    require_jax()
    name = str(package)
    path = Path(name)
    if path.is_dir():
        parent, name = str(path.resolve().parent), path.resolve().name
        added = parent not in sys.path
        if added:
            sys.path.insert(0, parent)
        try:
            return _import_layout(name)
        finally:
            if added and parent in sys.path:
                sys.path.remove(parent)
    return _import_layout(name)


def _import_layout(name: str):
    try:
        processes = importlib.import_module(f"{name}.processes.all_processes")
        parameters = importlib.import_module(f"{name}.model.parameters")
    except ImportError as exc:
        raise InvalidInputError(
            f"package {name!r} is not a madjax output package (needs processes/all_processes.py and model/parameters.py): {exc}"
        ) from None
    if not callable(getattr(parameters, "calculate_full_parameters", None)):
        raise InvalidInputError(f"package {name!r}: model/parameters.py has no calculate_full_parameters(slha)")
    return processes, parameters


class MadjaxProcess(Process):
    """A madjax process package wrapped as an sbihep Process (see the module docstring).

    Args:
        package: importable module name or directory of the madjax output.
        operators: {operator name: (param-card block, entry)} — the Wilson coefficients θ (c/Λ² in
            TeV⁻² if the model's card uses that convention) and where the model reads them.
        process: which ``Matrix_*`` class (with or without the prefix); default: the only one.
        parameters: further external parameters {(block, entry): value} (default: the model's card).
        particles: names of the external particles (default "in1", "in2", "out1", …).
        name: process name for EventSets (default "madjax:<process>").
        collider: "ee" (fixed √s).  Hadron colliders need PDF channels, which madjax packages do not
            describe: pass ``channels`` (PartonicChannel list) together with ``collider="pp"``.
        channels: partonic channels for ``collider="pp"``.
        step: the basis step h (θ = ±h e_i, h(e_i + e_j)).
        check: verify the quadratic decomposition at one extra θ (costs one more evaluation).
        sm: kept for the Process interface (the physics inputs are the package's own).
    """

    def __init__(
        self,
        package: str | os.PathLike,
        operators: Mapping[str, tuple[str, int]],
        *,
        process: str | None = None,
        parameters: Mapping[tuple[str, int], float] | None = None,
        particles: Sequence[str] | None = None,
        name: str | None = None,
        collider: str = "ee",
        channels: Sequence[PartonicChannel] | None = None,
        step: float = 1.0,
        check: bool = True,
        sm: SMInputs = DEFAULT_SM,
    ) -> None:
        super().__init__(sm)
        self._jax = require_jax()
        processes_module, self._parameters_module = load_madjax_package(package)
        classes = {k: v for k, v in vars(processes_module).items() if k.startswith("Matrix_") and isinstance(v, type)}
        if not classes:
            raise InvalidInputError(f"package {package!r}: processes/all_processes.py defines no Matrix_* class")
        if process is None:
            if len(classes) != 1:
                raise InvalidInputError(f"process: the package has several processes {sorted(classes)}; choose one")
            key = next(iter(classes))
        else:
            key = process if process in classes else f"Matrix_{process}"
            if key not in classes:
                raise InvalidInputError(f"process {process!r} is not in the package; available: {sorted(classes)}")
        self._matrix = classes[key]()
        self.process_key = key
        if not isinstance(operators, Mapping) or not operators:
            raise InvalidInputError("operators must map each operator name to its (block, entry) in the param card")
        self._targets = {}
        for op, target in operators.items():
            if not (isinstance(target, (tuple, list)) and len(target) == 2):
                raise InvalidInputError(f"operators[{op!r}] must be (block, entry), got {target!r}")
            self._targets[str(op)] = (str(target[0]).lower(), int(target[1]))
        self.operators = tuple(self._targets)
        self._base = {(str(b).lower(), int(i)): float(v) for (b, i), v in dict(parameters or {}).items()}
        clash = [op for op, t in self._targets.items() if t in self._base]
        if clash:
            raise InvalidInputError(f"parameters also set the operator entries of {clash}; leave those to θ")
        if not float(step) > 0:
            raise InvalidInputError(f"step must be positive, got {step!r}")
        self.step = float(step)
        self.check = bool(check)
        params = self._model_parameters(np.zeros(len(self.operators)))
        initial, final = self._matrix.get_external_masses(params)
        self._masses = tuple(float(abs(complex(m))) for m in (*initial, *final))
        if len(initial) != 2:
            raise InvalidInputError(f"{key}: only 2 → n processes are supported, got {len(initial)} initial particles")
        if any(m != 0.0 for m in self._masses[:2]):
            raise InvalidInputError(f"{key}: the phase space assumes massless incoming particles, got masses {self._masses[:2]}")
        n = len(self._masses)
        self.particles = tuple(particles) if particles is not None else ("in1", "in2", *(f"out{i}" for i in range(1, n - 1)))
        if len(self.particles) != n:
            raise ShapeError(f"particles must name the {n} external particles of {key}, got {list(self.particles)}")
        self.name = name or f"madjax:{key[len('Matrix_'):]}"
        self.description = f"madjax process {key} with operators {list(self.operators)}"
        if collider not in ("ee", "pp"):
            raise InvalidInputError(f"collider must be 'ee' or 'pp', got {collider!r}")
        if collider == "pp" and not channels:
            raise InvalidInputError("collider='pp' needs channels=[PartonicChannel(pid_a, pid_b, 'default'), …]")
        self.collider = collider
        self._channels = tuple(channels) if channels else None
        self.n_random = 2 if n == 4 else 4 * (n - 2)
        self._evaluate_jit = None
        self._package_modules = tuple(m for m in (processes_module, self._parameters_module) if m is not None)
        #: what the last |M|² evaluation was computed in: "complex128" or "complex64" (None before the first)
        self.precision: str | None = None

    # ---- Process interface ----------------------------------------------------------------
    def external_masses(self) -> tuple[float, ...]:
        return self._masses

    def channels(self) -> tuple[PartonicChannel, ...]:
        return self._channels if self._channels is not None else super().channels()

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """2 → 2: :func:`~sbihep.physics.phasespace.two_to_two` (2 random numbers); 2 → n: RAMBO
        (4 per final particle), incoming partons massless along ±z in the centre-of-mass frame."""
        if len(self._masses) == 4:
            return two_to_two(r, sqrt_s_hat, self._masses[2], self._masses[3])
        final, weight = rambo(r, sqrt_s_hat, list(self._masses[2:]))
        energy = final[:, :, 0].sum(1)
        zero = torch.zeros_like(energy)
        beam1 = torch.stack([energy / 2, zero, zero, energy / 2], -1)
        beam2 = torch.stack([energy / 2, zero, zero, -energy / 2], -1)
        return torch.cat([beam1[:, None], beam2[:, None], final], dim=1), weight

    def eft_decomposition(
        self, momenta: torch.Tensor, order: EFTOrder = "quadratic", subprocess: str | None = None, *, validate: bool = True
    ) -> EFTDecomposition:
        """Exact |M|²(θ) polynomial from evaluations at the basis points (see module docstring)."""
        order = check_order(order)
        if validate:
            self.check_momenta(momenta)
        self._channel(subprocess)
        constant, linear, quadratic = self._polynomial(momenta)
        return EFTDecomposition(self.operators, order, constant, linear, quadratic if order == "quadratic" else None)

    def matrix_element2(
        self,
        momenta: torch.Tensor,
        theta: Mapping[str, float] | torch.Tensor | None = None,
        order: EFTOrder = "quadratic",
        subprocess: str | None = None,
        *,
        validate: bool = True,
    ) -> torch.Tensor:
        """|M|² at θ, (N, n, 4) → (N,), from the decomposition (differentiable in θ, not in the momenta)."""
        return self.eft_decomposition(momenta, order, subprocess, validate=validate).evaluate(self.theta_vector(theta))

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        """Effective amplitudes whose Gram matrix is the |M|² polynomial: G = V diag(λ) Vᵀ per event,
        components[k, n, h] = V_kh √λ_h (K = 1 + n_operators pseudo-helicities, one colour flow).

        They are not MadGraph's helicity amplitudes (madjax exposes only |M|²) but reproduce
        |M|²(θ) exactly.  Raises InvalidInputError when the polynomial is not a Gram matrix (e.g. a
        model truncated at O(Λ⁻²), whose quadratic terms are zero).
        """
        constant, linear, quadratic = self._polynomial(momenta)
        k = 1 + len(self.operators)
        gram = torch.empty(momenta.shape[0], k, k, dtype=torch.float64)
        gram[:, 0, 0] = constant
        gram[:, 0, 1:] = gram[:, 1:, 0] = linear / 2.0
        gram[:, 1:, 1:] = quadratic
        values, vectors = torch.linalg.eigh(gram)
        scale = values.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        if (values < -1e-9 * scale).any():
            raise InvalidInputError(
                f"{self.name}: |M|²(θ) is not a sum of squares (its coefficient matrix has negative eigenvalues), so it has "
                "no amplitude decomposition; use eft_decomposition / matrix_element2 instead"
            )
        comps = vectors * values.clamp_min(0.0).sqrt()[:, None, :]  # (N, K, H)
        components = comps.permute(1, 0, 2)[..., None].to(torch.complex128)
        return Amplitudes(components, torch.ones(1, 1, dtype=torch.float64), average=1.0)

    # ---- evaluation ---------------------------------------------------------------------------
    def _model_parameters(self, theta: np.ndarray) -> dict:
        slha = dict(self._base)
        for (op, target), value in zip(self._targets.items(), theta):
            slha[target] = float(value)
        try:
            return self._parameters_module.calculate_full_parameters(slha)
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise InvalidInputError(f"{getattr(self, 'name', '') or 'madjax'}: the model rejected the external parameters {sorted(slha)}: {exc}") from None

    def _evaluate(self, momenta: torch.Tensor, thetas: np.ndarray) -> torch.Tensor:
        """|M|² at each θ row: momenta (N, n, 4), thetas (B, n_ops) → (B, N) float64."""
        jax = self._jax
        with jax.enable_x64(True), _madjax_complex128(self._package_modules):
            if self._evaluate_jit is None:
                matrix = self._matrix
                self._evaluate_jit = jax.jit(jax.vmap(lambda p, model: matrix.smatrix(p, model), in_axes=(0, None)))
            p = jax.numpy.asarray(momenta.detach().cpu().numpy().astype(np.float64))
            rows = []
            for theta in thetas:
                model = self._model_parameters(theta)
                out = self._evaluate_jit(p, model)
                self._note_precision(out)
                rows.append(_to_torch(out))
        return torch.stack(rows).to(torch.float64)

    def _note_precision(self, out) -> None:
        single = str(getattr(out, "dtype", "float64")) in ("float32", "complex64", "float16", "bfloat16")
        precision = "complex64" if single else "complex128"
        if single and self.precision != "complex64":
            warnings.warn(
                f"{self.name}: the madjax package returned |M|² in single precision ({out.dtype}) although it ran "
                "under jax.enable_x64: expect relative errors of order 1e-6 in the matrix elements",
                PrecisionWarning, stacklevel=4,
            )
        self.precision = precision

    def _polynomial(self, momenta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if momenta.ndim != 3 or momenta.shape[1:] != (len(self._masses), 4):
            raise ShapeError(f"{self.name}: momenta must have shape (N, {len(self._masses)}, 4), got {tuple(momenta.shape)}")
        n, h = len(self.operators), self.step
        eye = np.eye(n)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        points = [np.zeros(n), *(h * eye[i] for i in range(n)), *(-h * eye[i] for i in range(n)), *(h * (eye[i] + eye[j]) for i, j in pairs)]
        check_point = h * np.linspace(0.7, -0.4, n) if n > 1 else np.array([0.55 * h])
        if self.check:
            points.append(check_point)
        values = self._evaluate(momenta, np.array(points))
        f0, plus, minus = values[0], values[1 : 1 + n], values[1 + n : 1 + 2 * n]
        linear = ((plus - minus) / (2.0 * h)).T  # (N, n)
        diagonal = (((plus + minus) / 2.0 - f0) / h**2).T  # (N, n)
        quadratic = torch.diag_embed(diagonal)
        for k, (i, j) in enumerate(pairs):
            fij = values[1 + 2 * n + k]
            off = (fij - f0 - h * (linear[:, i] + linear[:, j]) - h**2 * (diagonal[:, i] + diagonal[:, j])) / (2.0 * h**2)
            quadratic[:, i, j] = quadratic[:, j, i] = off
        if self.check:
            theta = torch.from_numpy(check_point)
            predicted = f0 + linear @ theta + torch.einsum("i,nij,j->n", theta, quadratic, theta)
            direct = values[-1]
            size = direct.abs() + f0.abs() + (linear.abs() @ theta.abs())
            bad = (predicted - direct).abs() > 1e-6 * size.clamp_min(torch.finfo(torch.float64).tiny)
            if bad.any():
                i = int(bad.nonzero()[0, 0])
                raise InvalidInputError(
                    f"{self.name}: |M|² is not quadratic in {list(self.operators)} (event {i}: polynomial {float(predicted[i]):.6g} "
                    f"vs direct {float(direct[i]):.6g} at θ = {check_point.tolist()}); check the operator entries"
                )
        return f0, linear, quadratic


def _complex128(*v):
    """madjax_patch.complex with complex128 instead of complex64 (same calling convention)."""
    import jax.numpy as jnp

    if len(v) == 1:
        return jnp.asarray(v, dtype=jnp.complex128)
    return jnp.asarray(v[0] + 1j * v[1], dtype=jnp.complex128)


@contextlib.contextmanager
def _madjax_complex128(package_modules):
    """While evaluating, rebind madjax's ``complex`` (which forces complex64) to :func:`_complex128` in
    madjax's modules and the package's; restored afterwards.  A no-op without madjax."""
    patch = sys.modules.get("madjax.madjax_patch")
    if patch is None:
        try:
            patch = importlib.import_module("madjax.madjax_patch")
        except ImportError:
            patch = None
    original = getattr(patch, "complex", None) if patch is not None else None
    if original is None:
        yield
        return
    names = ("madjax", f"{package_modules[0].__name__.split('.')[0]}." if package_modules else "\0")
    swapped = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "madjax" or name.startswith(names)):
            continue
        if getattr(module, "complex", None) is original:
            module.complex = _complex128
            swapped.append(module)
    try:
        yield
    finally:
        for module in swapped:
            module.complex = original


def _to_torch(array) -> torch.Tensor:
    """jax array → torch tensor through DLPack (zero copy on CPU), numpy as the fallback."""
    try:
        return torch.from_dlpack(array).clone()
    except (TypeError, RuntimeError, AttributeError, BufferError):
        return torch.from_numpy(np.array(array))
