"""Les Houches event files in and out, with EFT reweighting weights.

Reading (:func:`read_lhe`) parses a plain or gzipped LHE file with ``pylhe``: the incoming
(status −1) and final-state (status 1) particles of every event become the parton-level ``z``
of an :class:`~sbihep.events.eventset.EventSet` (intermediate resonances, status 2, are dropped),
and the reweighting weights (``<rwgt>`` blocks) at the parameter points declared in the header
(``<initrwgt>`` / ``<weightgroup>`` with MadGraph's ``set param_card …`` lines, or given by the
user) are turned into the exact per-event EFT coefficients by :mod:`sbihep.events.morphing`.

Writing (:func:`write_lhe`) produces an LHE 3.0 file that Pythia 8 (``Beams:frameType = 4``) or
Delphes can read: one ``<event>`` per sbihep event with the nominal weight (at the generation point
θ_gen unless told otherwise) and the weights at chosen benchmark points as ``<rwgt>`` weights,
declared in ``<initrwgt>`` with ``set param_card NAME VALUE`` lines for *every* operator — so the
file reads back without any further input.  Floats are written with ``repr`` (shortest exact
round-trip form), so LHE → EventSet → LHE preserves momenta and weights to the last bit of the
weights' own evaluation.

Conventions
-----------
* Momenta are (E, px, py, pz) in GeV in the lab frame; beam 1 moves along +z.
* Weights are in pb.  ``event_norm="average"`` (MadGraph's default, IDWTUP = −4 in the file) means
  the *mean* of XWGTUP is σ; ``"sum"`` means their sum is.  An EventSet's weights always *sum* to σ.
* PDG ids and colour lines of written events come, in this order, from the EventSet's ``lhe_*``
  variables (files read by :func:`read_lhe`), the ``particles`` argument, or the table
  :data:`DEFAULT_PARTICLES` for processes shipped with sbihep.  Summed-over flavours (e.g. the
  u d̄ / c s̄ … channels of WH, which an EventSet does not record) are written with one
  representative flavour assignment per subprocess.
"""

from __future__ import annotations

import difflib
import gzip
import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import torch

from sbihep._atomic import atomic_destination, check_output_path
from sbihep._version import __version__
from sbihep.errors import (
    DataFormatError,
    InvalidInputError,
    SbihepError,
    ShapeError,
    UnknownParameterError,
    UnphysicalMomentaError,
)
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.events.morphing import propose_basis, solve_coefficients
from sbihep.physics.couplings import DEFAULT_SM

__all__ = [
    "read_lhe",
    "write_lhe",
    "parse_reweight_text",
    "pdg_name",
    "DEFAULT_PARTICLES",
]

#: process name → subprocess → (PDG id, colour, anticolour) per EventSet role (beam1, beam2, final state).
DEFAULT_PARTICLES: dict[str, dict[str, tuple[tuple[int, int, int], ...]]] = {
    "ee_mumu": {"default": ((11, 0, 0), (-11, 0, 0), (13, 0, 0), (-13, 0, 0))},
    # roles beam1, beam2, l, v, b, bbar; representative flavours u d̄ (W⁺) and d ū (W⁻)
    "wh_lvbb": {
        "W+": ((2, 501, 0), (-1, 0, 501), (-11, 0, 0), (12, 0, 0), (5, 502, 0), (-5, 0, 502)),
        "W-": ((1, 501, 0), (-2, 0, 501), (11, 0, 0), (-12, 0, 0), (5, 502, 0), (-5, 0, 502)),
    },
    # roles beam1, beam2, v, l
    "w_lv": {
        "W+": ((2, 501, 0), (-1, 0, 501), (12, 0, 0), (-11, 0, 0)),
        "W-": ((1, 501, 0), (-2, 0, 501), (-12, 0, 0), (11, 0, 0)),
    },
    # roles beam1, beam2, t, tbar; one leading-colour flow each
    "ttbar": {
        "gg": ((21, 501, 502), (21, 503, 501), (6, 503, 0), (-6, 0, 502)),
        "qq": ((2, 501, 0), (-2, 0, 502), (6, 501, 0), (-6, 0, 502)),
    },
}

_NAMES = {1: "d", 2: "u", 3: "s", 4: "c", 5: "b", 6: "t", 11: "e-", 12: "ve", 13: "mu-", 14: "vm", 15: "ta-", 16: "vt",
          21: "g", 22: "a", 23: "z", 24: "w+", 25: "h"}
_HADRONS = {2212, -2212, 2112, -2112}
_WEIGHT_GROUP = "sbihep_eft"
_SET_LINE = re.compile(r"^\s*set\s+(?:param_card\s+)?(.+?)\s*$", re.IGNORECASE)


def pdg_name(pid: int) -> str:
    """MadGraph-style name of a PDG id ("e+", "u~", "w-", …); "pdg<id>" for ids outside the SM table."""
    pid = int(pid)
    if pid in _NAMES:
        return _NAMES[pid]
    if -pid in _NAMES:
        name = _NAMES[-pid]
        if name.endswith("-"):
            return name[:-1] + "+"
        if name.endswith("+"):
            return name[:-1] + "-"
        return name + "~"
    return f"pdg{pid}"


# ---- reweighting text --------------------------------------------------------------------------


def _param_key(block: str, code: Sequence[int]) -> str:
    return f"{block.lower()} {' '.join(str(int(c)) for c in code)}"


def _normalise_param_map(param_map) -> dict[str, str]:
    """{(block, id) | "block id" | "block:id": operator} → {"block id": operator}."""
    out: dict[str, str] = {}
    for key, op in dict(param_map or {}).items():
        if isinstance(key, tuple):
            if len(key) < 2:
                raise InvalidInputError(f"param_map key {key!r} must be (block, id, …)")
            out[_param_key(str(key[0]), key[1:])] = str(op)
        else:
            parts = str(key).replace(":", " ").split()
            try:
                out[_param_key(parts[0], [int(p) for p in parts[1:]])] = str(op)
            except (ValueError, IndexError):
                raise InvalidInputError(f"param_map key {key!r} must look like 'block id' or (block, id)") from None
    return out


def parse_reweight_text(text: str, param_map: Mapping | None = None) -> dict[str, float]:
    """Parameter values set by a reweighting weight's description.

    Understands MadGraph's lines ``set param_card BLOCK ID VALUE [# orig: …]`` and
    ``set [param_card] NAME VALUE``.  ``param_map`` maps (block, id) — as a tuple or "block id" —
    to an operator name; unmapped block entries are named "block_id".  Returns {} when the text
    sets nothing (e.g. a PDF or scale variation weight).

    Raises:
        DataFormatError: a ``set`` line whose value is not a number.
    """
    mapping = _normalise_param_map(param_map)
    values: dict[str, float] = {}
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0]
        match = _SET_LINE.match(line)
        if not match:
            continue
        tokens = match.group(1).split()
        if len(tokens) < 2:
            raise DataFormatError(f"reweighting line {raw.strip()!r} sets no value")
        try:
            value = float(tokens[-1])
        except ValueError:
            raise DataFormatError(f"reweighting line {raw.strip()!r}: value {tokens[-1]!r} is not a number") from None
        target = tokens[:-1]
        if len(target) == 1:
            name = target[0]
        else:
            try:
                key = _param_key(target[0], [int(t) for t in target[1:]])
            except ValueError:
                raise DataFormatError(f"reweighting line {raw.strip()!r}: expected 'BLOCK ID VALUE' or 'NAME VALUE'") from None
            name = mapping.get(key, key.replace(" ", "_"))
        values[name] = value
    return values


def _slha_values(text: str) -> dict[str, float]:
    """{"block id": value} from an SLHA param card (BLOCK sections only)."""
    values: dict[str, float] = {}
    block = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if tokens[0].lower() == "block":
            block = tokens[1].lower() if len(tokens) > 1 else None
            continue
        if tokens[0].lower() == "decay":
            block = None
            if len(tokens) >= 3:
                try:
                    values[_param_key("decay", [int(tokens[1])])] = float(tokens[2])
                except ValueError:
                    pass
            continue
        if block is None:
            continue
        try:
            values[_param_key(block, [int(t) for t in tokens[:-1]])] = float(tokens[-1])
        except ValueError:
            continue
    return values


# ---- locating problems in the file -----------------------------------------------------------


def _open_text(path: Path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", errors="replace")
    return open(path, "r", errors="replace")


def _event_lines(path: Path, index: int) -> tuple[int | None, list[str]]:
    """(first line number, lines) of event ``index`` (0-based), as far as the file can be read."""
    start, lines, count = None, [], -1
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped.startswith("<event") and (len(stripped) == 6 or stripped[6] in " >\t"):
                    count += 1
                    if count == index:
                        start = number
                if start is not None:
                    lines.append(line.rstrip("\n"))
                    if stripped.startswith("</event>"):
                        break
    except (OSError, EOFError):
        pass
    return start, lines


def _where(path: Path, index: int) -> str:
    """'event k (line L)' plus, when one field is not a number, that line and field."""
    start, lines = _event_lines(path, index)
    if start is None:
        return f"event {index} (0-based)"
    for offset, line in enumerate(lines[1:], start=1):
        text = line.strip()
        if not text or text.startswith("<") and not text.startswith("<wgt"):
            continue
        if text.startswith("#"):
            continue
        fields = re.sub(r"<[^>]*>", " ", text).split()
        for field in fields:
            try:
                float(field)
            except ValueError:
                return f"event {index} (0-based; line {start + offset}: field {field!r} is not a number)"
    return f"event {index} (0-based; starting at line {start})"


# ---- reading -----------------------------------------------------------------------------------


def _parse_error(caught: list) -> str | None:
    for item in caught:
        message = str(item.message)
        if message.startswith("Parse Error"):
            return message
    return None


def read_lhe(
    path: str | os.PathLike,
    *,
    operators: Sequence[str] | None = None,
    order: str = "quadratic",
    benchmarks: Mapping[str, Mapping[str, float]] | None = None,
    param_map: Mapping | None = None,
    nominal: Mapping[str, float] | None = None,
    weights: str = "auto",
    roles: Sequence[str] | None = None,
    event_norm: str = "auto",
    max_events: int | None = None,
) -> EventSet:
    """Read an LHE file (plain or gzipped) into an EventSet with exact EFT coefficients.

    Args:
        path: the ``.lhe`` or ``.lhe.gz`` file.
        operators: EFT operator names to keep (default: those the file's benchmarks set).  Weights
            that set any other parameter (mass, width, … variations) are ignored.
        order: ``"linear"`` or ``"quadratic"``: the polynomial solved for.
        benchmarks: {weight id: {operator: value}} — the parameter point of each weight, when the
            header does not declare them (or to override it).  Operators missing from a point take
            their ``nominal`` value.
        param_map: {(block, id) or "block id": operator} for ``set param_card BLOCK ID VALUE`` lines,
            e.g. {("smeft", 7): "cHW"}.  Files written by :func:`write_lhe` need none.
        nominal: the parameter point of the nominal weights XWGTUP (default: recorded by sbihep,
            else the ``<slha>``/``<MGParamCard>`` card in the header through ``param_map``, else 0).
        weights: ``"auto"`` (use EFT reweighting weights when there are any), ``"required"`` (raise
            when there are none) or ``"none"`` (keep the nominal weights only, no operators).
        roles: names of the particle slots (default beam1, beam2, then the final-state particle
            names when every event agrees, e.g. "mu-", else "f1", "f2", …).
        event_norm: ``"sum"`` (Σ XWGTUP = σ), ``"average"`` (mean XWGTUP = σ) or ``"auto"`` (from
            sbihep's header record, else by comparing Σ XWGTUP with the cross section in ``<init>``).
        max_events: read at most this many events.

    Returns:
        EventSet with ``z`` (event, latent) the momenta (GeV), ``eft`` the coefficients (pb, Σ over
        events = σ(θ)), ``x1``/``x2`` for hadron beams, and the LHE record in ``lhe_pdg_id``,
        ``lhe_colour``, ``lhe_mass``, ``lhe_spin`` (event, particle) and ``lhe_scale``,
        ``lhe_aqed``, ``lhe_aqcd`` (event), ``lhe_weights`` (event, lhe_weight) the weights as written
        in the file (nominal first; :func:`write_lhe` writes them back unchanged while they still agree
        with the coefficients).  Attributes ``morphing_condition_number``,
        ``lhe_benchmarks`` (JSON {id: θ}) record the solve.

    Raises:
        DataFormatError: a truncated or malformed file, events without ``<rwgt>`` weights when they
            are needed, weight ids that do not match the header, non-numeric fields — naming the
            event and line.
        InvalidInputError: bad arguments, or a singular benchmark basis.
    """
    import pylhe

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"path: no such LHE file: {path}")
    if weights not in ("auto", "required", "none"):
        raise InvalidInputError(f"weights must be 'auto', 'required' or 'none', got {weights!r}")
    if event_norm not in ("auto", "sum", "average"):
        raise InvalidInputError(f"event_norm must be 'auto', 'sum' or 'average', got {event_norm!r}")
    if max_events is not None and (int(max_events) != max_events or max_events < 1):
        raise InvalidInputError(f"max_events must be a positive integer, got {max_events!r}")
    eft_math.n_monomials(0, order)  # validates order

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lhefile = pylhe.LHEFile.fromfile(path)
        except (ValueError, AttributeError, IndexError, EOFError, OSError, ET.ParseError) as exc:
            detail = _parse_error(caught) or f"{type(exc).__name__}: {exc}"
            raise DataFormatError(f"{path}: not a readable LHE file: the header/<init> block could not be parsed ({detail})") from None
    header = lhefile.header
    init = lhefile.init

    meta: dict = {}
    slha: dict[str, float] = {}
    declared: list[tuple[str, str]] = []
    if header is not None:
        for element in header.extra_elements:
            for sub in element.iter():
                if sub.tag == "sbihep" and sub.text:
                    try:
                        meta = json.loads(sub.text)
                    except json.JSONDecodeError:
                        raise DataFormatError(f"{path}: the <sbihep> header block is not valid JSON") from None
                elif sub.tag in ("slha", "MGParamCard") and sub.text:
                    slha.update(_slha_values(sub.text))
        declared = [(w.id, w.name) for w in header.initrwgt.iter_weights()]
    if event_norm == "auto" and meta.get("event_norm") in ("sum", "average"):
        event_norm = meta["event_norm"]

    # ---- benchmark points -----------------------------------------------------------------
    mapping = _normalise_param_map(param_map)
    points: dict[str, dict[str, float]] = {}
    skipped: list[str] = []
    available: set[str] = set()  # every parameter that some reweighting weight sets
    if operators is not None:
        if isinstance(operators, str) or not all(isinstance(op, str) and op for op in operators):
            raise InvalidInputError(f"operators must be a list of operator names, got {operators!r}")
        if len(set(operators)) != len(operators):
            raise InvalidInputError(f"operators names an operator twice: {list(operators)}")
        if weights == "none" and operators:
            raise InvalidInputError(f"operators {list(operators)} were given with weights='none', which keeps no operators")
    if weights != "none":
        if benchmarks is not None:
            if not isinstance(benchmarks, Mapping) or not all(isinstance(v, Mapping) for v in benchmarks.values()):
                raise InvalidInputError("benchmarks must be a mapping {weight id: {operator: value}}")
            points = {}
            for k, point in benchmarks.items():
                row = {}
                for op, v in dict(point).items():
                    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
                        raise InvalidInputError(f"benchmarks[{str(k)!r}][{str(op)!r}] must be a finite number, got {v!r}")
                    row[str(op)] = float(v)
                points[str(k)] = row
            available = {op for point in points.values() for op in point}
        else:
            for wid, text in declared:
                try:
                    values = parse_reweight_text(text, mapping)
                except DataFormatError as exc:
                    raise DataFormatError(f"{path}: <initrwgt> weight {wid!r}: {exc}") from None
                if not values:
                    continue
                bad = [name for name, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise DataFormatError(f"{path}: <initrwgt> weight {wid!r} sets {bad} to a non-finite value")
                available.update(values)
                if operators is not None and not set(values) <= set(operators):
                    skipped.append(wid)
                    continue
                points[wid] = values
        if operators is not None:
            missing = [op for op in operators if op not in available]
            if missing:
                hints = []
                for op in missing:
                    close = difflib.get_close_matches(op, sorted(available), n=1, cutoff=0.6)
                    close = close or [name for name in sorted(available) if name.lower() == op.lower()]
                    if close:
                        hints.append(f"{op!r} → did you mean {close[0]!r}?")
                where = "the benchmarks given" if benchmarks is not None else "the file's reweighting weights"
                raise UnknownParameterError(
                    f"operators: {missing} {'is' if len(missing) == 1 else 'are'} not set by {where} ({path}); "
                    f"they set {sorted(available) if available else 'no parameters at all'}"
                    + (f" ({'; '.join(hints)})" if hints else "")
                    + (" (for 'set param_card BLOCK ID VALUE' lines pass param_map={(block, id): name})"
                       if any("_" in a and a.split("_")[-1].isdigit() for a in available) else "")
                )
    if operators and benchmarks is None and weights != "none" and not points and skipped:
        others = sorted(available - set(operators))
        raise InvalidInputError(
            f"operators: every reweighting weight of {path} also sets {others}, so none can be used with operators "
            f"{list(operators)} alone: keep those too (operators={sorted(available)}) or give benchmarks={{id: point}}"
        )
    ops = list(operators) if operators is not None else list(meta.get("operators", []))
    for point in points.values():
        for name in point:
            if name not in ops:
                if operators is not None:
                    raise InvalidInputError(f"benchmarks set {name!r}, which is not among operators {list(operators)}")
                ops.append(name)
    if weights == "required" and not points:
        raise DataFormatError(
            f"{path}: weights are required but the header declares no reweighting weights (<initrwgt>) that set "
            f"the operators{' ' + str(list(operators)) if operators else ''}; give benchmarks={{id: point}} for files "
            "whose header does not say where each weight was computed"
        )
    if not points:
        ops = []
    reverse = {op: key for key, op in mapping.items()}
    theta_nominal = {}
    for op in ops:
        if nominal is not None and op in nominal:
            theta_nominal[op] = float(nominal[op])
        elif op in meta.get("nominal", {}):
            theta_nominal[op] = float(meta["nominal"][op])
        elif op in reverse and reverse[op] in slha:
            theta_nominal[op] = slha[reverse[op]]
        else:
            theta_nominal[op] = 0.0
    if nominal is not None:
        unknown = sorted(set(nominal) - set(ops))
        if unknown:
            raise InvalidInputError(f"nominal names {unknown}, which are not among the operators {ops}")
    ids = list(points)
    bench = np.array([[points[w].get(op, theta_nominal[op]) for op in ops] for w in ids], dtype=np.float64).reshape(len(ids), len(ops))

    # ---- events -----------------------------------------------------------------------------
    beam_energy = 0.0
    try:
        if float(init.initInfo.energyA) > 0 and float(init.initInfo.energyB) > 0:
            beam_energy = float(init.initInfo.energyA) + float(init.initInfo.energyB)
    except (TypeError, ValueError, AttributeError):
        beam_energy = 0.0
    records = {key: [] for key in ("pdg", "p", "col", "mass", "spin", "info", "proc", "w")}
    index = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = iter(lhefile.events)
        try:
            while max_events is None or index < max_events:
                try:
                    event = next(events)
                except StopIteration:
                    break
                _collect(event, index, ids, records, path, beam_energy)
                index += 1
        except SbihepError:
            raise
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise DataFormatError(f"{path}: {_where(path, index)}: {type(exc).__name__}: {exc}") from None
        except (EOFError, OSError) as exc:
            raise DataFormatError(f"{path}: the file ends early (truncated?) while reading event {index}: {exc}") from None
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
    problem = _parse_error(caught)
    if problem is not None:
        raise DataFormatError(f"{path}: malformed or truncated LHE file after {index} complete events: {problem}")
    if index == 0:
        raise DataFormatError(f"{path}: the file contains no events")

    n_slots = {len(p) for p in records["pdg"]}
    if len(n_slots) > 1:
        first = len(records["pdg"][0])
        bad = next(i for i, p in enumerate(records["pdg"]) if len(p) != first)
        raise DataFormatError(
            f"{path}: {_where(path, bad)} has {len(records['pdg'][bad])} incoming + final-state particles, event 0 has {first}: "
            "an EventSet needs the same final-state multiplicity in every event (split the file by process)"
        )
    pdg = np.array(records["pdg"], dtype=np.int64)
    momenta = np.array(records["p"], dtype=np.float64)
    n_events, n_particles = pdg.shape
    proc_ids = np.array(records["proc"], dtype=np.int64)
    recorded_subs = list(meta.get("subprocesses", []))
    if recorded_subs and ((proc_ids >= 1) & (proc_ids <= len(recorded_subs))).all():
        # written by sbihep: IDPRUP − 1 is the subprocess index
        sub_index = (proc_ids - 1).astype(np.int16)
        subprocesses = recorded_subs
    else:
        keys: dict[tuple[int, ...], int] = {}
        sub_index = np.array([keys.setdefault(tuple(row), len(keys)) for row in pdg.tolist()], dtype=np.int16)
        subprocesses = [" ".join(str(i) for i in key[:2]) + " > " + " ".join(str(i) for i in key[2:]) for key in keys]
    if roles is None:
        recorded_roles = list(meta.get("roles", []))
        roles = recorded_roles if len(recorded_roles) == n_particles else _default_roles(pdg)
    roles = list(roles)
    if len(roles) != n_particles or len(set(roles)) != len(roles):
        raise InvalidInputError(f"roles must be {n_particles} distinct names (2 incoming + {n_particles - 2} final state), got {roles}")

    raw_w = np.array(records["w"], dtype=np.float64)
    nominal_w, bench_w = raw_w[:, 0], raw_w[:, 1:]
    xsec = sum(p.xSection for p in init.procInfo)
    norm = _event_norm(event_norm, nominal_w, xsec, n_events, path)
    scale = 1.0 / n_events if norm == "average" else 1.0
    nominal_w, bench_w = nominal_w * scale, bench_w * scale

    attrs = {
        "process": str(meta.get("process", f"lhe:{path.name}")),
        "theta_gen": json.dumps(theta_nominal),
        "unweighted": int(bool(np.allclose(nominal_w, nominal_w[0], rtol=1e-12, atol=0.0))),
        "source": str(path.name),
        "lhe_event_norm": norm,
        "lhe_benchmarks": json.dumps({w: dict(zip(ops, map(float, row))) for w, row in zip(ids, bench)}),
        "lhe_beams": json.dumps([init.initInfo.beamA, init.initInfo.beamB, init.initInfo.energyA, init.initInfo.energyB]),
    }
    if skipped:
        attrs["lhe_ignored_weights"] = json.dumps(skipped)
    energy_a, energy_b = float(init.initInfo.energyA), float(init.initInfo.energyB)
    if energy_a > 0 and energy_b > 0:
        attrs["sqrt_s_gev"] = 2.0 * math.sqrt(energy_a * energy_b)
    for key in ("sqrt_s_gev", "pdf"):
        if key in meta:
            attrs[key] = meta[key]
    if ids:
        solution = solve_coefficients(bench_w, bench, order, operators=ops)
        coefficients = solution.coefficients.numpy()
        attrs["morphing_condition_number"] = solution.condition_number
        attrs["morphing_max_relative_residual"] = solution.max_relative_residual
        order_used = order
    else:
        coefficients = nominal_w[:, None]
        order_used = "linear"
    hadronic = init.initInfo.beamA in _HADRONS and init.initInfo.beamB in _HADRONS
    x1 = x2 = None
    if hadronic and energy_a > 0 and energy_b > 0:
        x1, x2 = momenta[:, 0, 0] / energy_a, momenta[:, 1, 0] / energy_b
    try:
        events = EventSet.from_arrays(
            momenta=momenta,
            roles=roles,
            coefficients=coefficients,
            operators=ops,
            order=order_used,
            subprocess_index=sub_index,
            subprocesses=subprocesses,
            x1=x1,
            x2=x2,
            attrs=attrs,
        )
    except InvalidInputError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    info = np.array(records["info"], dtype=np.float64)
    extra = {
        "lhe_pdg_id": (("event", "particle"), pdg.astype(np.int32)),
        "lhe_colour": (("event", "particle", "colour_line"), np.array(records["col"], dtype=np.int32)),
        "lhe_mass": (("event", "particle"), np.array(records["mass"], dtype=np.float64)),
        "lhe_spin": (("event", "particle"), np.array(records["spin"], dtype=np.float64)),
        "lhe_scale": (("event",), info[:, 0]),
        "lhe_aqed": (("event",), info[:, 1]),
        "lhe_aqcd": (("event",), info[:, 2]),
        # the weights exactly as the file wrote them (nominal first), so that writing again reproduces them
        "lhe_weights": (("event", "lhe_weight"), raw_w),
    }
    data = events.data.assign(extra).assign_coords(particle=roles, colour_line=["colour", "anticolour"], lhe_weight=["nominal", *ids])
    return EventSet(data)


#: relative tolerances of the physics checks on LHE momenta (files print 7–17 significant digits).
_MASS_SHELL_TOLERANCE = 1e-4  # E² − |p|² ≥ −tolerance · E²
_CONSERVATION_TOLERANCE = 1e-4  # |Σ p_in − Σ p_out| ≤ tolerance · Σ E_in
#: the largest energy accepted when the file does not state its beam energies (GeV).
MAX_ENERGY_GEV = 1e7


def _check_momenta(row: list[list[float]], index: int, path: Path, beam_energy: float) -> None:
    """Finite, E ≥ 0, time- or light-like, E below the collider energy, momentum conserved."""
    p = np.asarray(row, dtype=np.float64)
    slot_names = ["beam1", "beam2"] + [f"final-state particle {k}" for k in range(1, len(p) - 1)]

    def fail(message: str) -> None:
        raise UnphysicalMomentaError(f"{path}: {_where(path, index)}: {message}")

    bad = np.flatnonzero(~np.isfinite(p).all(1))
    if bad.size:
        fail(f"the momentum of {slot_names[bad[0]]} is not finite: (E, px, py, pz) = {tuple(p[bad[0]].tolist())}")
    cap = beam_energy * (1.0 + 1e-6) if beam_energy > 0 else MAX_ENERGY_GEV
    for k, (e, px, py, pz) in enumerate(p):
        size = math.hypot(px, py, pz)
        if e < 0:
            fail(f"{slot_names[k]} has negative energy E = {e:g} GeV")
        if e > cap:
            limit = f"the collider energy {beam_energy:g} GeV" if beam_energy > 0 else f"{MAX_ENERGY_GEV:g} GeV"
            fail(f"{slot_names[k]} has energy E = {e:g} GeV, above {limit}: not physical")
        if size > e * (1.0 + 0.5 * _MASS_SHELL_TOLERANCE) and (size - e) * (size + e) > _MASS_SHELL_TOLERANCE * max(e * e, 1e-300):
            fail(f"{slot_names[k]} is space-like (|p| = {size:g} GeV > E = {e:g} GeV): not physical")
    balance = p[:2].sum(0) - p[2:].sum(0)
    scale = max(float(p[:2, 0].sum()), 1e-300)
    if float(np.abs(balance).max()) > _CONSERVATION_TOLERANCE * scale:
        fail(
            f"momentum is not conserved: Σ incoming − Σ final state = {tuple(np.round(balance, 6).tolist())} GeV "
            f"(incoming energy {scale:g} GeV)"
        )


def _collect(event, index: int, ids: list[str], records: dict, path: Path, beam_energy: float = 0.0) -> None:
    info = event.eventinfo
    if info.nparticles != len(event.particles):
        raise DataFormatError(
            f"{path}: {_where(path, index)}: NUP = {info.nparticles} but the event lists {len(event.particles)} particles"
        )
    incoming = [p for p in event.particles if p.status == -1]
    outgoing = [p for p in event.particles if p.status == 1]
    if len(incoming) != 2 or not outgoing:
        raise DataFormatError(
            f"{path}: {_where(path, index)}: expected 2 incoming (status -1) and at least one final-state (status 1) "
            f"particle, found {len(incoming)} and {len(outgoing)}"
        )
    row_w = [float(info.weight)]
    if ids:
        if not event.weights:
            raise DataFormatError(
                f"{path}: {_where(path, index)} has no <rwgt> (or <weights>) block, but the reweighting weights "
                f"{ids[:4]}{'…' if len(ids) > 4 else ''} are needed for the EFT coefficients"
            )
        missing = [w for w in ids if w not in event.weights]
        if missing:
            found = list(event.weights)
            raise DataFormatError(
                f"{path}: {_where(path, index)}: weight ids do not match the header: missing {missing[:5]}"
                f"{'…' if len(missing) > 5 else ''}, the event has {found[:5]}{'…' if len(found) > 5 else ''}"
            )
        row_w += [float(event.weights[w]) for w in ids]
    particles = incoming + outgoing
    row_p = [[float(p.e), float(p.px), float(p.py), float(p.pz)] for p in particles]
    _check_momenta(row_p, index, path, beam_energy)
    records["pdg"].append([int(p.id) for p in particles])
    records["p"].append(row_p)
    records["col"].append([[int(p.color1), int(p.color2)] for p in particles])
    records["mass"].append([float(p.m) for p in particles])
    records["spin"].append([float(p.spin) for p in particles])
    records["info"].append([float(info.scale), float(info.aqed), float(info.aqcd)])
    records["proc"].append(int(info.pid))
    records["w"].append(row_w)
    if not all(math.isfinite(v) for v in row_w):
        raise DataFormatError(f"{path}: {_where(path, index)}: a weight is NaN or infinite")


def _default_roles(pdg: np.ndarray) -> list[str]:
    roles = ["beam1", "beam2"]
    for slot in range(2, pdg.shape[1]):
        column = pdg[:, slot]
        roles.append(pdg_name(int(column[0])) if (column == column[0]).all() else f"f{slot - 1}")
    seen: dict[str, int] = {}
    out = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        out.append(role if roles.count(role) == 1 else f"{role}_{seen[role]}")
    return out


def _event_norm(event_norm: str, nominal_w: np.ndarray, xsec: float, n_events: int, path: Path) -> str:
    if event_norm != "auto":
        return event_norm
    total = float(nominal_w.sum())
    if xsec > 0 and total > 0:
        if abs(total / xsec - 1.0) < 0.05:
            return "sum"
        if abs(total / (n_events * xsec) - 1.0) < 0.05:
            return "average"
    raise DataFormatError(
        f"{path}: cannot tell whether the event weights sum or average to the cross section (Σ XWGTUP = {total:.6g} pb, "
        f"{n_events} events, σ in <init> = {xsec:.6g} pb): pass event_norm='sum' or 'average'"
    )


# ---- writing -----------------------------------------------------------------------------------


def _is_own_lhe(path: Path) -> bool:
    """Whether ``path`` is an LHE file written by sbihep (its header has the ``<sbihep>`` record) or empty."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        if path.stat().st_size == 0:
            return True
        with open(path, "rb") as handle:
            magic = handle.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            head = handle.read(65536)
    except (OSError, EOFError):
        return False
    return head.lstrip().startswith(b"<LesHouchesEvents") and b"<sbihep>" in head


def _fmt(value: float) -> str:
    return repr(float(value))


def _particle_table(events: EventSet, particles) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) PDG ids and (N, P, 2) colours for every event."""
    n_slots = len(events.roles)
    if "lhe_pdg_id" in events.data and particles is None:
        return np.asarray(events.data["lhe_pdg_id"].values), np.asarray(events.data["lhe_colour"].values)
    subs = events.subprocesses
    if particles is None:
        if events.process not in DEFAULT_PARTICLES:
            raise InvalidInputError(
                f"particles: PDG ids are unknown for process {events.process!r}; pass particles=[(pdg, colour, anticolour), …] "
                f"for the roles {events.roles} (or a mapping subprocess → such a list)"
            )
        particles = DEFAULT_PARTICLES[events.process]
    table = particles if isinstance(particles, Mapping) else {sub: particles for sub in subs}
    missing = [s for s in subs if s not in table]
    if missing:
        raise InvalidInputError(f"particles: no entry for subprocess(es) {missing}; this EventSet has {subs}")
    pdg = np.zeros((len(subs), n_slots), dtype=np.int64)
    col = np.zeros((len(subs), n_slots, 2), dtype=np.int64)
    for k, sub in enumerate(subs):
        entries = list(table[sub])
        if len(entries) != n_slots:
            raise ShapeError(f"particles[{sub!r}] must give {n_slots} entries for the roles {events.roles}, got {len(entries)}")
        for j, entry in enumerate(entries):
            spec = (entry, 0, 0) if isinstance(entry, (int, np.integer)) else tuple(entry)
            if len(spec) != 3:
                raise InvalidInputError(f"particles[{sub!r}][{j}] must be a PDG id or (pdg, colour, anticolour), got {entry!r}")
            pdg[k, j], col[k, j] = int(spec[0]), (int(spec[1]), int(spec[2]))
    index = np.asarray(events.data["subprocess"].values).astype(np.int64)
    return pdg[index], col[index]


def _benchmark_points(events: EventSet, benchmarks) -> tuple[list[str], np.ndarray]:
    ops = events.operators
    if benchmarks is None:
        if not ops:
            return [], np.zeros((0, 0))
        basis = propose_basis(ops, events.order, seed=0)
        return [f"sbihep_b{k}" for k in range(len(basis.points))], basis.points
    if isinstance(benchmarks, Mapping):
        items = [(str(k), dict(v)) for k, v in benchmarks.items()]
    else:
        items = [(f"sbihep_b{k}", dict(v)) for k, v in enumerate(benchmarks)]
    for wid, point in items:
        unknown = sorted(set(point) - set(ops))
        if unknown:
            raise InvalidInputError(f"benchmarks[{wid!r}] sets unknown operator(s) {unknown}; this EventSet has {ops}")
        if not re.fullmatch(r"[A-Za-z0-9_.:+-]+", wid):
            raise InvalidInputError(f"benchmarks: weight id {wid!r} must be letters, digits and _.:+- only")
    points = np.array([[float(point.get(op, 0.0)) for op in ops] for _, point in items], dtype=np.float64).reshape(len(items), len(ops))
    return [wid for wid, _ in items], points


def write_lhe(
    events: EventSet,
    path: str | os.PathLike,
    *,
    benchmarks: Mapping[str, Mapping[str, float]] | Sequence[Mapping[str, float]] | None = None,
    nominal: Mapping[str, float] | None = None,
    particles=None,
    event_norm: str = "average",
    beams: tuple[int, int] | None = None,
    sqrt_s: float | None = None,
) -> Path:
    """Write events as an LHE 3.0 file (gzipped when ``path`` ends in ``.gz``), atomically.

    Args:
        events: the EventSet.
        path: output file, ``.lhe`` or ``.lhe.gz``.
        benchmarks: points at which to write ``<rwgt>`` weights, {id: {operator: value}} or a list of
            {operator: value} (ids ``sbihep_b0``, …); operators not named are 0.  Default: a
            well-conditioned basis from :func:`~sbihep.events.morphing.propose_basis` (seed 0), so
            the coefficients can be recovered exactly; ``[]`` writes no reweighting weights.
        nominal: the point of the nominal weight XWGTUP (default: the EventSet's θ_gen).
        particles: PDG ids and colours: a list of (pdg, colour, anticolour) or PDG ids per role, or
            {subprocess: such a list}; default from the EventSet's ``lhe_*`` record or
            :data:`DEFAULT_PARTICLES`.
        event_norm: ``"average"`` (mean XWGTUP = σ; MadGraph's default) or ``"sum"`` (Σ XWGTUP = σ).
        beams: PDG ids of the beams (default: recorded by :func:`read_lhe`, else protons when the
            events carry momentum fractions, else the incoming partons).
        sqrt_s: collider energy (GeV) (default: the EventSet's ``sqrt_s_gev``, else from the partons
            of a lepton collider).

    Returns:
        the path written.

    Raises:
        OutputPathError: ``path`` does not end in ``.lhe``/``.lhe.gz``, its folder is missing or
            read-only, it is a directory, or it is an existing file that sbihep did not write (a
            MadGraph output is never overwritten) — all checked before anything is computed.
    """
    if not isinstance(events, EventSet):
        raise InvalidInputError(f"events must be an EventSet, got {type(events).__name__}")
    if event_norm not in ("sum", "average"):
        raise InvalidInputError(f"event_norm must be 'sum' or 'average', got {event_norm!r}")
    path = check_output_path(path, kind="file", suffixes=(".lhe", ".lhe.gz"), is_own=_is_own_lhe, what="path")
    ops = events.operators
    recorded_points = json.loads(events.data.attrs.get("lhe_benchmarks", "{}"))
    if benchmarks is None and recorded_points:
        benchmarks = recorded_points  # a file read by read_lhe: the same reweighting points again
    ids, points = _benchmark_points(events, benchmarks)
    theta_nom = dict(json.loads(events.data.attrs.get("theta_gen", "{}"))) if nominal is None else dict(nominal)
    theta_vec = events.theta_vector(theta_nom)
    coefficients = events.coefficients()
    n = events.n_events
    factor = float(n) if event_norm == "average" else 1.0
    w_nom = eft_math.weights_at(coefficients, theta_vec).numpy()
    w_bench = eft_math.weights_at(coefficients, torch.from_numpy(points)).numpy().T if ids else np.zeros((n, 0))
    pdg, colours = _particle_table(events, particles)
    momenta = events.momenta().numpy()
    data = events.data
    out_nom, out_bench = w_nom * factor, w_bench * factor
    if "lhe_weights" in data and nominal is None:
        # weights read from an LHE file: write the file's own numbers when they are still what the
        # coefficients give (same points, normalisation and events), so LHE → EventSet → LHE is exact
        raw = np.asarray(data["lhe_weights"].values)
        labels = [str(v) for v in data["lhe_weight"].values]
        if labels == ["nominal", *ids]:
            computed = np.column_stack([out_nom, out_bench])
            tolerance = 1e-9 * np.abs(raw).max(axis=1, keepdims=True)
            if raw.shape == computed.shape and (np.abs(raw - computed) <= tolerance).all():
                out_nom, out_bench = raw[:, 0], raw[:, 1:]
    if "lhe_mass" in data:
        masses = np.asarray(data["lhe_mass"].values)
    else:
        m2 = momenta[..., 0] ** 2 - (momenta[..., 1:] ** 2).sum(-1)
        masses = np.where(np.abs(m2) <= 1e-9 * momenta[..., 0] ** 2, 0.0, np.sqrt(np.abs(m2)))
    spins = np.asarray(data["lhe_spin"].values) if "lhe_spin" in data else np.full(pdg.shape, 9.0)
    if "lhe_scale" in data:
        scales = np.asarray(data["lhe_scale"].values)
        aqed = np.asarray(data["lhe_aqed"].values)
        aqcd = np.asarray(data["lhe_aqcd"].values)
    else:
        total = momenta[:, 0] + momenta[:, 1]
        scales = np.sqrt(np.maximum(total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(-1), 0.0))
        aqed = np.full(n, DEFAULT_SM.alpha)
        aqcd = np.array([DEFAULT_SM.alpha_s(float(max(s, 1.0))) for s in scales])

    recorded = json.loads(data.attrs.get("lhe_beams", "null"))
    if beams is None:
        if recorded:
            beams = (int(recorded[0]), int(recorded[1]))
        elif "x1" in data:
            beams = (2212, 2212)
        else:
            beams = (int(pdg[0, 0]), int(pdg[0, 1]))
    if sqrt_s is None:
        if recorded and recorded[2] > 0 and recorded[3] > 0:
            energies = (float(recorded[2]), float(recorded[3]))
        elif "sqrt_s_gev" in data.attrs:
            energies = (float(data.attrs["sqrt_s_gev"]) / 2.0,) * 2
        elif "x1" not in data:
            energies = (float(momenta[0, 0, 0]), float(momenta[0, 1, 0]))
        else:
            raise InvalidInputError("sqrt_s: the collider energy is unknown for these hadronic events; pass sqrt_s (GeV)")
    else:
        if not sqrt_s > 0:
            raise InvalidInputError(f"sqrt_s must be positive (GeV), got {sqrt_s!r}")
        energies = (float(sqrt_s) / 2.0,) * 2

    sub_index = np.asarray(data["subprocess"].values).astype(np.int64)
    subs = events.subprocesses
    meta = {
        "sbihep_version": __version__,
        "process": events.process,
        "operators": ops,
        "order": events.order,
        "roles": events.roles,
        "subprocesses": subs,
        "nominal": {op: float(v) for op, v in zip(ops, theta_vec.tolist())},
        "event_norm": event_norm,
    }
    for key in ("sqrt_s_gev", "pdf"):
        if key in data.attrs:
            value = data.attrs[key]
            meta[key] = value.item() if hasattr(value, "item") else value
    lines = ['<LesHouchesEvents version="3.0">', "<header>", f"<sbihep>{escape(json.dumps(meta))}</sbihep>"]
    if ids:
        lines.append("<initrwgt>")
        lines.append(f"<weightgroup name={quoteattr(_WEIGHT_GROUP)} combine=\"none\">")
        for wid, row in zip(ids, points):
            text = "\n".join(f"set param_card {op} {_fmt(v)}" for op, v in zip(ops, row))
            lines.append(f"<weight id={quoteattr(wid)}>{escape(text)}</weight>")
        lines.append("</weightgroup>")
        lines.append("</initrwgt>")
    lines.append("</header>")
    idwtup = -4
    lines.append("<init>")
    lines.append(f"{beams[0]} {beams[1]} {_fmt(energies[0])} {_fmt(energies[1])} 0 0 0 0 {idwtup} {len(subs)}")
    for k in range(len(subs)):
        mask = sub_index == k
        w = w_nom[mask]
        lines.append(f"{_fmt(w.sum())} {_fmt(math.sqrt(float((w**2).sum())))} {_fmt(np.abs(out_nom[mask]).max() if w.size else 0.0)} {k + 1}")
    lines.append("</init>")

    n_slots = pdg.shape[1]
    for i in range(n):
        block = ["<event>", f"{n_slots} {int(sub_index[i]) + 1} {_fmt(out_nom[i])} {_fmt(scales[i])} {_fmt(aqed[i])} {_fmt(aqcd[i])}"]
        for j in range(n_slots):
            status, mothers = (-1, "0 0") if j < 2 else (1, "1 2")
            e, px, py, pz = momenta[i, j]
            block.append(
                f"{int(pdg[i, j])} {status} {mothers} {int(colours[i, j, 0])} {int(colours[i, j, 1])} "
                f"{_fmt(px)} {_fmt(py)} {_fmt(pz)} {_fmt(e)} {_fmt(masses[i, j])} 0.0 {_fmt(spins[i, j])}"
            )
        if ids:
            block.append("<rwgt>")
            block.extend(f"<wgt id={quoteattr(wid)}> {_fmt(out_bench[i, k])} </wgt>" for k, wid in enumerate(ids))
            block.append("</rwgt>")
        block.append("</event>")
        lines.append("\n".join(block))
    lines.append("</LesHouchesEvents>")
    text = "\n".join(lines) + "\n"
    with atomic_destination(path, is_own=_is_own_lhe) as tmp:
        if path.suffix == ".gz":
            with gzip.open(tmp, "wt", compresslevel=6) as handle:
                handle.write(text)
        else:
            tmp.write_text(text)
    return path
