"""A process generated from a UFO model: any tree-level process as an sbihep :class:`~sbihep.physics.processes.base.Process`.

>>> from sbihep.physics.ufo import generate_process
>>> proc = generate_process("e+ e- > mu+ mu-", "path/to/SMEFTsim_U35_MwScheme_UFO",
...                         operators=["cll1", "cle", "cee"], restriction="restrict_massless.dat")  # doctest: +SKIP
>>> proc.matrix_element2(momenta, {"cle": 1.0})  # doctest: +SKIP

The process string is MadGraph's syntax (:func:`~sbihep.physics.ufo.process_spec.parse_process`);
every subprocess (flavour combination) gets its diagrams (:mod:`~sbihep.physics.ufo.diagrams`) and a
compiled :class:`~sbihep.physics.ufo.amplitude.TreeAmplitude`.  Everything downstream — EFT
decomposition, generation, EventSets, estimators, fits, the CLI — uses the Process interface unchanged.

Inputs: every Wilson coefficient of the model (external parameters of its ``SMEFT…`` blocks, or of
the blocks named by ``wilson_blocks``) that is not among ``operators`` is set to 0, so the constant
term is the Standard Model in the model's input scheme; ``inputs`` overrides any input by name.

Built processes are cached on disk (``$SBIHEP_CACHE_DIR``, default ``~/.cache/sbihep/processes``),
keyed by the model's content hash, the cards, the inputs, the process, the operators and the orders,
so a second construction skips reading the model and generating the diagrams.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import torch

from sbihep.errors import InvalidInputError, UnknownParameterError
from sbihep.physics.processes.base import Amplitudes, PartonicChannel, Process

__all__ = ["GeneratedProcess", "generate_process", "cache_directory", "GENERATOR_VERSION"]

#: bump when the generated objects change, so that stale cache entries are not used (2: helicity
#: pruning in a random frame).
GENERATOR_VERSION = 3

_QCD_PARTONS = {21, 1, 2, 3, 4, 5, -1, -2, -3, -4, -5}


def cache_directory() -> Path:
    """Where built processes are cached: ``$SBIHEP_CACHE_DIR`` or ``~/.cache/sbihep/processes``."""
    env = os.environ.get("SBIHEP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sbihep" / "processes"


def _file_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class GeneratedProcess(Process):
    """A process generated from a UFO model (see the module docstring).

    Built by :func:`generate_process`; the attributes of :class:`~sbihep.physics.processes.base.Process`
    (``particles``, ``operators``, ``collider``, ``n_random``) are set per instance.

    Attributes:
        text: the process string.
        subprocesses: names of the subprocesses ("u d~ > w+ z", …), the keys of :meth:`amplitudes`.
        amplitude_of: subprocess name → :class:`~sbihep.physics.ufo.amplitude.TreeAmplitude`.
        model_name, model_hash: the model it was generated from.
    """

    description = "a process generated from a UFO model"

    def __init__(self, text: str, amplitudes: Mapping[str, object], beams: Mapping[str, Sequence[tuple[int, int]]],
                 operators: Sequence[str], *, model_name: str, model_hash: str, roles: Mapping[str, tuple[str, ...]],
                 bounds: Mapping[str, tuple[float, float]] | None = None) -> None:
        super().__init__()
        if not amplitudes:
            raise InvalidInputError(f"process {text!r}: no subprocess")
        self.text = text
        self.name = "ufo:" + "_".join(text.split())
        self.description = f"{text} (generated from {model_name})"
        self.amplitude_of = dict(amplitudes)
        self.subprocesses = tuple(self.amplitude_of)
        self._beams = {k: tuple(tuple(b) for b in v) for k, v in beams.items()}
        self._roles = dict(roles)
        self.operators = tuple(operators)
        self._bounds = {op: _operator_bounds(op, (bounds or {}).get(op)) for op in self.operators}
        self.model_name = model_name
        self.model_hash = model_hash
        first = self.amplitude_of[self.subprocesses[0]]
        self._masses = tuple(first.masses)
        for key, amp in self.amplitude_of.items():
            if len(amp.masses) != len(self._masses) or any(abs(a - b) > 1e-12 * max(1.0, b) for a, b in zip(amp.masses, self._masses)):
                raise InvalidInputError(f"process {text!r}: subprocess {key!r} has external masses {amp.masses}, "
                                        f"{self.subprocesses[0]!r} has {self._masses}; generate them as separate processes")
            if amp.n_initial != 2:
                raise InvalidInputError(f"process {text!r}: only 2 → n scattering processes are Processes (got {amp.n_initial} initial)")
        self.particles = tuple(self._roles[self.subprocesses[0]])
        incoming = {abs(pdg) for amp in self.amplitude_of.values() for pdg in amp.incoming}
        self.collider = "pp" if incoming <= _QCD_PARTONS else "ee"
        self.n_random = 4 * (len(self._masses) - 2)

    def __repr__(self) -> str:
        return f"GeneratedProcess({self.text!r}, operators={list(self.operators)}, subprocesses={len(self.subprocesses)})"

    # ---- Process interface ----------------------------------------------------------------------
    def default_bounds(self, operator: str) -> tuple[float, float]:
        """The operator's default range (TeV⁻²): as given to :func:`generate_process`, else the range of
        sbihep's operator registry, else (−10, 10)."""
        return self._bounds[operator]

    def external_masses(self) -> tuple[float, ...]:
        return self._masses

    def default_subprocess(self) -> str:
        return self.subprocesses[0]

    def channels(self) -> tuple[PartonicChannel, ...]:
        if self.collider == "ee":
            return (PartonicChannel(0, 0, self.subprocesses[0]),)
        out = []
        for key in self.subprocesses:
            amp = self.amplitude_of[key]
            for a, b in self._beams[key]:
                swap = (a, b) != tuple(amp.incoming)
                out.append(PartonicChannel(int(a), int(b), key, 1.0, swap=swap))
        return tuple(out)

    def roles(self, subprocess: str | None = None) -> tuple[str, ...]:
        return tuple(self._roles[self._channel(subprocess)])

    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        return self.amplitude_of[self._channel(subprocess)].amplitudes(momenta)

    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat n-body phase space (RAMBO, massive) in the partonic centre-of-mass frame; see
        :meth:`~sbihep.physics.processes.base.Process.phase_space`.  Resonances are not mapped: fine for
        checks and σ of non-resonant final states, slow to converge for narrow resonances."""
        from sbihep.physics.phasespace import rambo

        sqrt_s = torch.as_tensor(sqrt_s_hat, dtype=torch.float64)
        final, weight = rambo(r, sqrt_s, self._masses[2:])
        n = final.shape[0]
        rs = sqrt_s.expand(n) if sqrt_s.ndim == 0 else sqrt_s
        m1, m2 = self._masses[0], self._masses[1]
        s = rs * rs
        e1 = (s + m1 * m1 - m2 * m2) / (2 * rs)
        e2 = (s + m2 * m2 - m1 * m1) / (2 * rs)
        pz = torch.sqrt(torch.clamp(e1 * e1 - m1 * m1, min=0.0))
        zero = torch.zeros_like(rs)
        p1 = torch.stack([e1, zero, zero, pz], -1)
        p2 = torch.stack([e2, zero, zero, -pz], -1)
        return torch.cat([p1[:, None], p2[:, None], final], dim=1), weight


#: the default range (TeV⁻²) of a model operator sbihep's registry does not know
MODEL_OPERATOR_BOUNDS = (-10.0, 10.0)


def _operator_bounds(operator: str, given) -> tuple[float, float]:
    from sbihep.physics.couplings import OPERATORS

    if given is not None:
        lo, hi = (float(x) for x in given)
        if not lo < 0.0 < hi:
            raise InvalidInputError(f"bounds of {operator}: need low < 0 < high (TeV⁻²), got {given!r}")
        return (lo, hi)
    return tuple(OPERATORS[operator].default_bounds) if operator in OPERATORS else MODEL_OPERATOR_BOUNDS


def _wilson_coefficients(model, blocks: Sequence[str] | None) -> list[str]:
    if blocks is None:
        wanted = lambda b: b.startswith("smeft") and b != "smeftcutoff"  # noqa: E731
    else:
        lowered = {b.lower() for b in blocks}
        wanted = lambda b: b in lowered  # noqa: E731
    return [p.name for p in model.external_parameters if wanted(str(p.lhablock).lower())]


def _subprocess_key(names: Sequence[str], n_initial: int) -> str:
    return " ".join(names[:n_initial]) + " > " + " ".join(names[n_initial:])


def generate_process(
    process: str,
    model,
    operators: Sequence[str] = (),
    *,
    restriction: str | Path | None = None,
    param_card: str | Path | None = None,
    inputs: Mapping[str, float] | None = None,
    orders: Mapping[str, int | str] | None = None,
    multiparticles: Mapping[str, str | Sequence[str]] | None = None,
    wilson_blocks: Sequence[str] | None = None,
    t_channel_widths: bool = False,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    cache: bool = True,
    progress: bool = False,
) -> GeneratedProcess:
    """Generate every subprocess of ``process`` in a UFO model as one :class:`GeneratedProcess`.

    Args:
        process: MadGraph syntax, e.g. ``"u d~ > w+ z"``, ``"p p > e+ ve b b~"``,
            ``"p p > w+ h, w+ > e+ ve, h > b b~"``.
        model: a :class:`~sbihep.physics.ufo.model.UFOModel`, or the path of a UFO directory.
        operators: Wilson coefficients θ to keep (SMEFTsim names, e.g. ``["cHWB", "cHl3"]``).
        restriction: restriction card (a path, or a file name inside the model directory) when
            ``model`` is a path.
        param_card: parameter card applied after the restriction (path or name in the model directory).
        inputs: input values by name (``{"MH": 125.2}``), applied last.
        orders: coupling-order constraints (see :func:`~sbihep.physics.ufo.process_spec.parse_process`).
        multiparticles: extra multiparticle labels.
        wilson_blocks: LHA blocks holding the Wilson coefficients (default: blocks ``SMEFT*`` except
            ``SMEFTcutoff``); their parameters not in ``operators`` are set to 0.
        t_channel_widths: keep widths in t-channel propagators (default: zero width there, as MadGraph).
        bounds: operator → default range (TeV⁻²) for :meth:`~GeneratedProcess.parameter_space` and the
            event generator's checks; an operator not given keeps sbihep's registry range, or
            (−10, 10) for operators the registry does not know.
        cache: read / write the on-disk cache (see :func:`cache_directory`).
        progress: print a line per subprocess while building.

    Returns:
        A :class:`GeneratedProcess`.

    Raises:
        InvalidInputError, UnknownParameterError: bad process syntax, unknown particles / operators /
            inputs, or no diagram for the process.
    """
    from sbihep.physics.ufo.model import UFOModel, load_ufo
    from sbihep.physics.ufo.reader import model_hash

    model_path = None if isinstance(model, UFOModel) else Path(model)
    if model_path is not None and not model_path.is_dir():
        raise InvalidInputError(f"model: {str(model_path)!r} is not a UFO directory")

    def locate(card):
        if card is None or model_path is None:
            return None if card is None else Path(card)
        p = Path(card)
        return p if p.is_file() else model_path / p

    key_material = {
        "version": GENERATOR_VERSION,
        "process": " ".join(process.split()),
        "operators": list(operators),
        "orders": {k: str(v) for k, v in (orders or {}).items()},
        "multiparticles": {k: (v if isinstance(v, str) else list(v)) for k, v in (multiparticles or {}).items()},
        "inputs": {k: float(v) for k, v in sorted((inputs or {}).items())},
        "wilson_blocks": None if wilson_blocks is None else sorted(wilson_blocks),
        "t_channel_widths": bool(t_channel_widths),
        "bounds": {k: [float(x) for x in v] for k, v in sorted((bounds or {}).items())},
    }
    if model_path is not None:
        key_material.update(model=model_hash(model_path), restriction=_file_hash(locate(restriction)),
                            param_card=_file_hash(locate(param_card)))
    else:
        if restriction is not None or param_card is not None:
            raise InvalidInputError("restriction / param_card: apply them to the UFOModel (model.restrict(...)) "
                                    "or pass the model as a path")
        key_material.update(model=model.content_hash, model_inputs={k: repr(v) for k, v in sorted(model.inputs.items())},
                            restriction=model.restriction, removed=sorted(model.removed_couplings))
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_directory() / f"{key}.pkl"
    if cache and path.is_file():
        try:
            with open(path, "rb") as handle:
                stored = pickle.load(handle)
            if stored.get("key") == key_material:
                return stored["process"]
        except Exception:  # a stale or broken cache entry is rebuilt, never trusted
            pass

    if model_path is not None:
        model = load_ufo(model_path, restriction=locate(restriction), param_card=locate(param_card))
    proc = _build(process, model, operators, inputs=inputs, orders=orders, multiparticles=multiparticles,
                  wilson_blocks=wilson_blocks, t_channel_widths=t_channel_widths, bounds=bounds, progress=progress)
    if cache:
        try:
            _write_atomically(path, {"key": key_material, "process": proc})
        except OSError as exc:  # a read-only or full cache never stops the generation
            import warnings

            warnings.warn(f"could not write the process cache {path}: {exc}", stacklevel=2)
    return proc


def _build(process, model, operators, *, inputs, orders, multiparticles, wilson_blocks, t_channel_widths, bounds, progress):
    from sbihep.physics.ufo.amplitude import TreeAmplitude
    from sbihep.physics.ufo.diagrams import diagrams_for
    from sbihep.physics.ufo.process_spec import parse_process

    ops = tuple(model.input_parameter(o).name for o in operators)
    zero = {name: 0.0 for name in _wilson_coefficients(model, wilson_blocks) if name not in ops and name not in model.fixed}
    model = model.with_inputs(zero)
    if inputs:
        unknown = [k for k in inputs if k in ops]
        if unknown:
            raise InvalidInputError(f"inputs: {unknown} are operators θ of this process; set them through θ, not inputs")
        model = model.with_inputs(dict(inputs))
    spec = parse_process(process, model, multiparticles=multiparticles, orders=orders, operators=ops)
    decomposition = model.coupling_decomposition(ops)
    amplitudes, beams, roles = {}, {}, {}
    skipped: list[tuple[str, Exception]] = []
    for sub in spec.subprocesses:
        names = sub.names
        key = _subprocess_key(names, len(sub.initial))
        try:
            diagrams = diagrams_for(model, sub, spec)
        except InvalidInputError as exc:  # e.g. u s~ > e+ ve without CKM mixing: MadGraph drops it too
            if "no tree-level diagram" not in str(exc):
                raise
            skipped.append((key, exc))
            continue
        amp = TreeAmplitude(model, diagrams, ops, decomposition=decomposition, t_channel_widths=t_channel_widths)
        amp.detach_model()
        amplitudes[key] = amp
        beams[key] = sub.beams
        roles[key] = tuple(names)
        if progress:
            print(f"  {key}: {len(diagrams.diagrams)} diagrams, {amp.helicities.shape[0]} helicities, "
                  f"{amp.colour.matrix.shape[0]} colour flows")
    if not amplitudes:
        raise skipped[0][1] if skipped else UnknownParameterError(f"process {process!r}: no subprocess")
    present = {op for amp in amplitudes.values() for op in amp.operators_present}
    absent = [op for op in ops if op not in present]
    if absent:
        import warnings

        from sbihep.errors import NoDiagramWarning

        warnings.warn(f"process {process!r}: operator(s) {absent} enter no diagram, so their coefficients are exactly 0 "
                      f"(coupling orders: {[str(c) for c in spec.orders] or 'default'}); SMEFTsim's EFT couplings carry "
                      "extra QED orders — allow them, e.g. orders={'NP': 1, 'QED': 3}, if the operator should contribute",
                      NoDiagramWarning, stacklevel=3)
    if progress and skipped:
        print(f"  {len(skipped)} subprocesses without diagrams dropped: {', '.join(k for k, _ in skipped[:6])}"
              + (" …" if len(skipped) > 6 else ""))
    return GeneratedProcess(process, amplitudes, beams, ops, model_name=model.name, model_hash=model.content_hash, roles=roles,
                            bounds=bounds)


def _write_atomically(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
