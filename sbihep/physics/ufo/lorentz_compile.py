"""Compile a UFO Lorentz structure into batched tensor contractions (vertex amplitudes and off-shell currents).

For given leg spins, :func:`compile_lorentz` turns a structure (a string or a
:class:`~sbihep.physics.ufo.lorentz_expr.LorentzExpression`) into a :class:`CompiledLorentz` that
evaluates, on wavefunctions with arbitrary (broadcasting) batch axes — events × helicities —

* :meth:`CompiledLorentz.amplitude`: the structure with every leg contracted with its wavefunction;
* :meth:`CompiledLorentz.vertex_current`: the same with one leg left open (amputated current);
* :meth:`CompiledLorentz.offshell`: that current times the propagator of the open leg.

How it is evaluated (the ALOHA idea, done numerically): the structure is a multilinear form in the
legs' wavefunctions and in the momenta that appear in it.  At compile time the whole expression,
all terms together, is reduced to one dense constant tensor per momentum signature, stacked into a
matrix C of shape (F, 4^k) (k legs with an index, F = 1 + Σ 4^d over the momentum monomials of
degree d).  At run time the momentum features [1, p_a, p_a⊗p_b, …] are one (…, F) tensor, the
momentum dependence is one matrix product with C, and each leg is one broadcast multiply-and-sum
over a length-4 axis.  So a structure costs a handful of tensor operations whatever its number of
terms, with helicities as a batch axis and no Python loop over events or helicities.

Conventions
-----------
* Legs are numbered from 0 in this API; leg i is the UFO leg i+1 of the structure string.
* Momenta: ``momenta[i]`` is the momentum of leg i flowing *into* the vertex, real (*b, 4).  For
  an external incoming particle it is its momentum p, for an external outgoing particle −p; for an
  internal line, the momentum the line brings in.  UFO's ``P(μ, N)`` in a structure is the momentum
  of the particle of leg N *as the vertex labels it*, i.e. outgoing: P(μ, N) = −momenta[N−1]^μ.
  (This is the convention under which the SMEFTsim Feynman rules are gauge invariant: with
  incoming momenta the triple-gluon vertex G f^{abc} VVV5 has the wrong sign relative to the quark
  vertex −iG T^a γ^μ and q q̄ → g g violates its Ward identity at O(1).)
* Metric (+, −, −, −); every Lorentz index of the structure is contracted with the metric; vector
  wavefunctions and vector currents are contravariant four-vectors (as in helas).
* Epsilon: ε^{0123} = −1 (ε_{0123} = +1), the convention of :mod:`sbihep.physics.lorentz`.
* Fermion flow: a spin-½ leg whose Dirac index is the *column* (second) index of a matrix in the
  structure is a ψ slot and takes a column spinor (u of an incoming fermion, v of an outgoing
  antifermion); a leg whose index is the *row* (first) index is a ψ̄ slot and takes a row spinor
  (ū outgoing fermion, v̄ incoming antifermion).  So ``Gamma(3,2,1)`` is ψ̄₂ γ^μ ψ₁ ε₃μ; the
  SMEFTsim vertex ``[e__plus__, e__minus__, a]`` with FFV1 = ``Gamma(3,2,1)`` takes the e⁻ line's
  column spinor on leg 0 and its row spinor on leg 1 (MadGraph reads the fermion labels of a UFO
  vertex as outgoing: "e+" on leg 0 ≡ an incoming e⁻).  :attr:`CompiledLorentz.slots` lists the slot
  of every leg ("column", "row", "vector", "scalar").  Majorana flow (``C``) is parsed but not
  treated specially.
* No coupling and no factor i: the Feynman rule of a UFO vertex is Σ coupling × structure (the
  UFO couplings carry the i); the caller multiplies.  Propagators carry their i (see
  :mod:`sbihep.physics.ufo.propagators`).
* Off-shell currents: the current of open leg k carries the momentum Q = Σ_{j≠k} momenta[j]
  *out of* this vertex, i.e. Q is its incoming momentum at the next vertex, where it is used like an
  external wavefunction: a vector current like ε of an incoming boson, a column result (open leg
  was a ψ̄ slot) like u of an incoming fermion, S(Q)·V; a row result (open leg was a ψ slot)
  like ū, V·S(−Q) (the fermion arrow points into this vertex).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.physics.ufo import propagators
from sbihep.physics.ufo.lorentz_expr import LorentzExpression, parse_structure

__all__ = [
    "EPSILON_0123_UPPER",
    "CompiledLorentz",
    "compile_lorentz",
    "lorentz_tensor",
]

CDTYPE = torch.complex128
#: ε^{0123} (upper indices); ε_{0123} = −ε^{0123}.
EPSILON_0123_UPPER = -1.0

_SPINS = {1: "scalar", 2: "fermion", 3: "vector"}


# --------------------------------------------------------------------------------------
# Constant tensors, all Lorentz indices upper (chiral basis, as sbihep.physics.helas)
# --------------------------------------------------------------------------------------
def _constants() -> dict[str, torch.Tensor]:
    from sbihep.physics import helas

    eye4 = torch.eye(4, dtype=CDTYPE)
    gamma, gamma5 = helas.GAMMA, helas.GAMMA5
    metric = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)).to(CDTYPE)
    eps = torch.zeros(4, 4, 4, 4, dtype=CDTYPE)
    for perm in itertools.permutations(range(4)):
        inversions = sum(1 for i in range(4) for j in range(i + 1, 4) if perm[i] > perm[j])
        eps[perm] = EPSILON_0123_UPPER * (-1.0) ** inversions
    sigma = 0.5j * (torch.einsum("mab,nbc->mnac", gamma, gamma) - torch.einsum("nab,mbc->mnac", gamma, gamma))
    return {
        "Gamma": gamma,  # [μ, i, j]
        "Gamma5": gamma5,
        "ProjM": 0.5 * (eye4 - gamma5),
        "ProjP": 0.5 * (eye4 + gamma5),
        "Identity": eye4,
        "IdentityL": eye4,
        "C": 1j * gamma[2] @ gamma[0],
        "Sigma": sigma,  # [μ, ν, i, j]
        "Metric": metric,  # g^{μν}
        "Epsilon": eps,  # ε^{μνρσ}
        "P": eye4,  # δ^μ_slot: P(μ, n) = p_n^μ, the slot is contracted with p_n's components
    }


_CONST = _constants()
_METRIC_DIAG = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)


def lorentz_tensor(name: str) -> torch.Tensor:
    """The constant tensor of a UFO Lorentz factor, all Lorentz indices upper (e.g. ``"Gamma"`` → (4, 4, 4))."""
    if name not in _CONST:
        raise InvalidInputError(f"lorentz_tensor: unknown factor {name!r}; known: {sorted(_CONST)}")
    return _CONST[name].clone()


# --------------------------------------------------------------------------------------
# Compile time: expression → dense tensors per momentum signature
# --------------------------------------------------------------------------------------
def _slots(expr: LorentzExpression, spins: tuple[int, ...]) -> tuple[str, ...]:
    """The slot of every leg: "scalar", "vector", "row" or "column"; checks indices against spins."""
    n = len(spins)
    src = expr.source
    for i, s in enumerate(spins):
        if s not in _SPINS:
            raise InvalidInputError(
                f"compile_lorentz: spin {s} of leg {i} not supported (1 scalar, 2 spin-½, 3 vector; ghosts, "
                f"spin 3/2 and spin 2 are not); structure {src!r}"
            )
    roles: dict[int, set[str]] = {}
    for t in expr.terms:
        legs_here = set()
        for f in t.factors:
            if f.name == "P" and f.args[1] > n:
                raise DataFormatError(f"Lorentz structure {src!r}: P(·,{f.args[1]}) refers to leg {f.args[1]} of a {n}-leg vertex")
            for pos, (a, k) in enumerate(zip(f.args, f.kinds)):
                if k == "leg" or a < 0:
                    continue
                if a > n:
                    raise DataFormatError(f"Lorentz structure {src!r}: index {a} refers to leg {a} of a {n}-leg vertex")
                legs_here.add(a)
                spin = spins[a - 1]
                if k == "L":
                    if spin != 3:
                        raise DataFormatError(f"Lorentz structure {src!r}: leg {a} has a Lorentz index but spin {spin}")
                    roles.setdefault(a, set()).add("vector")
                else:
                    if spin != 2:
                        raise DataFormatError(f"Lorentz structure {src!r}: leg {a} has a spinor index but spin {spin}")
                    # spinor slots: the first of a (i, j) pair is the row, the second the column
                    spinor_positions = [p for p, kk in enumerate(f.kinds) if kk == "S"]
                    roles.setdefault(a, set()).add("row" if pos == spinor_positions[0] else "column")
        needed = {i + 1 for i, s in enumerate(spins) if s in (2, 3)}
        if legs_here != needed:
            raise DataFormatError(
                f"Lorentz structure {src!r} with spins {list(spins)}: term {t} has open indices {sorted(legs_here)}, "
                f"expected exactly legs {sorted(needed)}"
            )
    out = []
    for i, s in enumerate(spins):
        if s == 1:
            out.append("scalar")
            continue
        r = roles.get(i + 1, set())
        if len(r) != 1:
            if not r:  # structure identically zero: any consistent choice
                out.append("vector" if s == 3 else "column")
                continue
            raise DataFormatError(f"Lorentz structure {src!r}: leg {i + 1} is a row index in some terms and a column index in others")
        out.append(r.pop())
    return tuple(out)


def _term_tensor(term, index_legs: list[int], label_base: int) -> tuple[tuple[int, ...], torch.Tensor]:
    """Dense tensor of one term, axes = index legs (in order) + momentum slots (sorted by leg).

    Returns (signature, tensor) where signature is the sorted tuple of (1-based) legs of P factors.
    """
    operands: list = []
    next_label = [label_base]

    def fresh() -> int:
        next_label[0] += 1
        return next_label[0]

    leg_label = {leg: fresh() for leg in index_legs}
    dummy_label: dict[int, int] = {}
    lorentz_dummy_seen: dict[int, int] = {}
    slots: list[tuple[int, int]] = []  # (leg, label) of each momentum slot
    for f in term.factors:
        labels = []
        for a, k in zip(f.args, f.kinds):
            if k == "leg":
                continue
            if a > 0:
                labels.append(leg_label[a])
            elif k == "L":
                if a in lorentz_dummy_seen:  # second occurrence: lower it with a metric factor
                    lab = fresh()
                    operands += [_CONST["Metric"], [lorentz_dummy_seen[a], lab]]
                    labels.append(lab)
                else:
                    lab = fresh()
                    lorentz_dummy_seen[a] = lab
                    labels.append(lab)
            else:
                if a not in dummy_label:
                    dummy_label[a] = fresh()
                labels.append(dummy_label[a])
        if f.name == "P":
            slot = fresh()
            slots.append((f.args[1], slot))
            labels.append(slot)
        operands += [_CONST[f.name], labels]
    # metric factors of Lorentz pairs use g^{μν}; a contraction needs g_{μν}: numerically equal (diagonal ±1)
    slots.sort()
    out_labels = [leg_label[leg] for leg in index_legs] + [lab for _, lab in slots]
    if operands:
        with torch.backends.opt_einsum.flags(strategy="greedy"):  # "auto" spends ms searching paths
            tensor = torch.einsum(*operands, out_labels)
    else:
        tensor = torch.ones((), dtype=CDTYPE)
    return tuple(leg for leg, _ in slots), term.coefficient * tensor


def _tensor_train(tensor: torch.Tensor, dims: list[int], max_exact_rank: int = 16, rtol: float = 1e-14) -> list[torch.Tensor]:
    """Tensor-train factorisation of ``tensor`` (shape (d_0, …, d_{L-1}, d_out)) into cores.

    Returns cores G_i of shape (r_{i-1}, d_i, r_i) with r_{-1} = 1; the last core has shape
    (r_{L-2}, d_{L-1}, d_out).  At each cut the unfolding's all-zero rows are dropped exactly (a
    0/1 selection core, no rounding): Dirac structures are sparse (chiral projectors halve the
    rank), so this is all they need.  Only if more than ``max_exact_rank`` rows remain (vertices
    with five or six vectors) is the rank compressed further by an SVD, dropping singular values
    below rtol × the largest (the rounding noise of an exactly low-rank tensor).
    The SVD's rounding is relative to the largest entry of the whole unfolding, which is harmless among
    structures of one momentum degree but not across degrees: compiled together with a P² structure, a
    metric term loses ~ε·E² of its value (5e-12 at E ~ 100 GeV).  Compile structures of different
    momentum degree separately for full precision (the amplitude engine does).
    """
    d_out = tensor.shape[-1]
    cores = []
    rank = 1
    rem = tensor.reshape(1, -1)
    for d in dims[:-1]:
        mat = rem.reshape(rank * d, -1)
        nonzero = (mat != 0).any(-1).nonzero()[:, 0]
        if nonzero.numel() == 0:  # identically zero structure
            nonzero = torch.zeros(1, dtype=torch.long)
        if nonzero.numel() <= max_exact_rank:
            keep = nonzero.numel()
            core = torch.zeros(rank * d, keep, dtype=mat.dtype)
            core[nonzero, torch.arange(keep)] = 1.0
            rem = mat[nonzero]
        else:
            u, sv, vh = (torch.from_numpy(x) for x in np.linalg.svd(mat[nonzero].numpy(), full_matrices=False))
            keep = max(1, int((sv > rtol * float(sv[0])).sum())) if float(sv[0]) > 0 else 1
            core = torch.zeros(rank * d, keep, dtype=mat.dtype)
            core[nonzero] = u[:, :keep]
            rem = sv[:keep, None].to(vh.dtype) * vh[:keep]
        cores.append(core.reshape(rank, d, keep))
        rank = keep
    cores.append(rem.reshape(rank, dims[-1], d_out))
    return cores


@dataclass(frozen=True)
class _Plan:
    """Constant data to evaluate with one leg open (or none): a tensor train over the inputs.

    The inputs are, in order, the momentum features (if the structure uses momenta) and the
    contracted legs; the last core carries the open leg's axis (or a length-1 axis).
    """

    open_leg: int | None
    contract_legs: tuple[int, ...]  # 0-based legs with an index, contracted in this order
    scalar_legs: tuple[int, ...]  # 0-based scalar legs (multiplied in), open one excluded
    signatures: tuple[tuple[int, ...], ...]  # 0-based legs of each momentum monomial (excluding the constant)
    feature_core: torch.Tensor | None  # (F, r0), or None without momenta
    leg_cores: tuple[torch.Tensor, ...]  # per contracted leg: (r, 4, r'); the first is (4, r') when constant
    output_dim: int  # 4 (open spinor/vector leg) or 1
    constant: torch.Tensor | None  # (1, output_dim) when there is nothing to contract


class CompiledLorentz:
    """A UFO Lorentz structure compiled for given leg spins.

    Build with :func:`compile_lorentz`.  All methods take ``wavefunctions`` and ``momenta`` as
    sequences indexed by leg (0-based); entries for the open leg (and momenta the structure does not
    use, for :meth:`amplitude`) may be None.  Wavefunction shapes: (*b,) for a scalar, (*b, 4) for
    spinors and vectors, with any broadcastable batch axes (events × helicities); momenta (*b, 4)
    real, broadcastable against them.

    Attributes:
        name: the UFO name (e.g. "FFV1"), informational.
        spins: UFO spins 2s+1 of the legs.
        slots: per leg, "scalar", "vector", "row" (ψ̄ slot) or "column" (ψ slot).
        expression: the parsed structure.
        n_terms: number of expanded terms.
    """

    def __init__(self, expressions: LorentzExpression | Sequence[LorentzExpression], spins: Sequence[int], name: str = "") -> None:
        self.name = name
        self.spins = tuple(int(s) for s in spins)
        exprs = (expressions,) if isinstance(expressions, LorentzExpression) else tuple(expressions)
        if not exprs:
            raise InvalidInputError("compile_lorentz: give at least one structure")
        self.expressions = exprs
        self.expression = exprs[0]
        self.n_structures = len(exprs)
        self.n_terms = sum(len(e.terms) for e in exprs)
        slots = [_slots(e, self.spins) for e in exprs]
        nonzero = [sl for sl, e in zip(slots, exprs) if e.terms]
        if any(sl != (nonzero or slots)[0] for sl in nonzero):
            raise DataFormatError(
                f"compile_lorentz: structures {[e.source for e in exprs]} disagree on which fermion legs are rows and columns"
            )
        self.slots = (nonzero or slots)[0]
        self.n_legs = len(self.spins)
        self._index_legs = [i + 1 for i, s in enumerate(self.spins) if s in (2, 3)]  # 1-based
        # signature → dense tensor, axes (index legs in leg order) + momentum slots + structure
        shape = (4,) * len(self._index_legs)
        per_structure: list[dict[tuple[int, ...], torch.Tensor]] = []
        for e in exprs:
            groups: dict[tuple[int, ...], torch.Tensor] = {}
            for term in e.terms:
                sig, tensor = _term_tensor(term, self._index_legs, 0)
                groups[sig] = groups[sig] + tensor if sig in groups else tensor
            per_structure.append(groups)
        signatures = sorted({sig for g in per_structure for sig in g}, key=lambda sig: (len(sig), sig)) or [()]
        self._groups = {
            sig: torch.stack([g.get(sig, torch.zeros(shape + (4,) * len(sig), dtype=CDTYPE)) for g in per_structure], -1)
            for sig in signatures
        }
        self._plans: dict[int | None, _Plan] = {}
        self._device_cache: dict[tuple[int | None, str], tuple] = {}
        self.momentum_legs = tuple(sorted({leg - 1 for sig in self._groups for leg in sig}))

    def __repr__(self) -> str:
        label = self.name or " | ".join(e.source for e in self.expressions)
        return f"CompiledLorentz({label!r}, spins={list(self.spins)}, slots={list(self.slots)})"

    # ---- plans ------------------------------------------------------------------------
    def _plan(self, open_leg: int | None) -> _Plan:
        if open_leg in self._plans:
            return self._plans[open_leg]
        index_legs0 = [leg - 1 for leg in self._index_legs]
        contract = [i for i in index_legs0 if i != open_leg]
        order = contract + ([open_leg] if open_leg in index_legs0 else [])
        perm_legs = [index_legs0.index(i) for i in order]
        m = len(index_legs0)
        blocks = []
        signatures = []
        n_s = self.n_structures
        for sig, tensor in sorted(self._groups.items(), key=lambda kv: (len(kv[0]), kv[0])):
            t = tensor  # axes: index legs, momentum slots, structure
            # lower the contracted vector legs (wavefunctions are contravariant); a momentum slot
            # takes the contravariant components of p directly (P(μ, n) = δ^μ_s p_n^s)
            for ax, leg in enumerate(index_legs0):
                if self.slots[leg] == "vector" and leg != open_leg:
                    t = t * _METRIC_DIAG.to(CDTYPE).reshape([-1 if a == ax else 1 for a in range(t.ndim)])
            n_slot = len(sig)
            contract_axes = perm_legs[: len(contract)]
            open_axes = perm_legs[len(contract) :]
            t = t.permute(list(range(m, m + n_slot)) + contract_axes + [m + n_slot] + open_axes)
            blocks.append(t.reshape(4**n_slot, 4**m * n_s))
            if sig:
                signatures.append(tuple(leg - 1 for leg in sig))
        has_const = () in self._groups
        if not has_const:
            blocks.insert(0, torch.zeros(1, 4**m * n_s, dtype=CDTYPE))
        matrix = torch.cat(blocks, 0)  # (F, 4^m·S), columns: contracted legs, structure, open leg
        n_contract = len(contract)
        out_dim = (4 if open_leg in index_legs0 else 1) * n_s  # the output: (structure, open index)
        dims = ([matrix.shape[0]] if signatures else []) + [4] * n_contract
        full = matrix.reshape(dims + [out_dim]) if signatures else matrix[0].reshape([4] * n_contract + [out_dim])
        feature_core = None
        leg_cores: list[torch.Tensor] = []
        if not dims:  # nothing to contract: the vertex is a constant (e.g. SSS '1' with the scalars multiplied in)
            leg_cores = []
            feature_core = None
            constant = full.reshape(1, out_dim)
        else:
            cores = _tensor_train(full, dims)
            constant = None
            if signatures:
                feature_core = cores[0].reshape(cores[0].shape[1], cores[0].shape[2])  # (F, r0)
                leg_cores = list(cores[1:])
            else:
                first = cores[0]  # (1, 4, r1): contracting a constant row, a plain matrix
                leg_cores = [first.reshape(4, first.shape[2])] + list(cores[1:])
        plan = _Plan(
            open_leg=open_leg,
            contract_legs=tuple(contract),
            scalar_legs=tuple(i for i, s in enumerate(self.spins) if s == 1 and i != open_leg),
            signatures=tuple(signatures),
            feature_core=feature_core if signatures else None,
            leg_cores=tuple(c.contiguous() for c in leg_cores),
            output_dim=out_dim,
            constant=constant,
        )
        self._plans[open_leg] = plan
        return plan

    def _cores(self, plan: _Plan, device: torch.device, couplings: torch.Tensor | None):
        key = (plan.open_leg, str(device))
        if key not in self._device_cache:
            self._device_cache[key] = (
                None if plan.feature_core is None else plan.feature_core.to(device),
                tuple(c.to(device) for c in plan.leg_cores),
                None if plan.constant is None else plan.constant.to(device),
            )
        feature_core, leg_cores, constant = self._device_cache[key]
        if couplings is None:
            return feature_core, leg_cores, constant

        def fold(core: torch.Tensor) -> torch.Tensor:  # (..., S·o) → (..., K·o)
            x = core.unflatten(-1, (self.n_structures, -1))
            return torch.einsum("...so,sk->...ko", x, couplings).flatten(-2)

        if constant is not None:
            return feature_core, leg_cores, fold(constant)
        if leg_cores:
            return feature_core, leg_cores[:-1] + (fold(leg_cores[-1]),), constant
        return fold(feature_core), leg_cores, constant

    # ---- evaluation -------------------------------------------------------------------
    def _check_leg(self, leg: int) -> int:
        if not isinstance(leg, int) or not 0 <= leg < self.n_legs:
            raise InvalidInputError(f"{self!r}: leg must be an integer in [0, {self.n_legs}), got {leg!r}")
        return leg

    def _inputs(self, wavefunctions, momenta, open_leg):
        if len(wavefunctions) != self.n_legs:
            raise ShapeError(f"{self!r}: expected {self.n_legs} wavefunctions (None for the open leg), got {len(wavefunctions)}")
        if momenta is None:
            momenta = [None] * self.n_legs
        if len(momenta) != self.n_legs:
            raise ShapeError(f"{self!r}: expected {self.n_legs} momenta (None where not needed), got {len(momenta)}")
        for i, w in enumerate(wavefunctions):
            if i == open_leg:
                continue
            if not isinstance(w, torch.Tensor):
                raise ShapeError(f"{self!r}: wavefunction of leg {i} must be a tensor, got {type(w).__name__}")
            want_vec = self.spins[i] != 1
            if want_vec and (w.ndim == 0 or w.shape[-1] != 4):
                raise ShapeError(f"{self!r}: wavefunction of leg {i} ({self.slots[i]}) needs a last axis of 4, got {tuple(w.shape)}")
        momenta = list(momenta)
        if open_leg is not None and self.momentum_legs:
            others = [momenta[j] for j in range(self.n_legs) if j != open_leg]
            if any(p is None for p in others):
                raise ShapeError(f"{self!r}: a current of a structure with momenta needs the momenta of all other legs")
            total = others[0]
            for p in others[1:]:
                total = total + p
            momenta[open_leg] = -total
        for leg in self.momentum_legs:
            p = momenta[leg]
            if p is None:
                raise ShapeError(f"{self!r}: the structure uses the momentum of leg {leg}; pass it")
            if p.is_complex() or p.shape[-1] != 4:
                raise ShapeError(f"{self!r}: momentum of leg {leg} must be real (*b, 4), got {p.dtype} {tuple(p.shape)}")
        return list(wavefunctions), momenta

    def _contract(self, plan: _Plan, wavefunctions, momenta, couplings=None) -> torch.Tensor:
        ref = next(x for x in (*wavefunctions, *momenta) if isinstance(x, torch.Tensor))
        feature_core, leg_cores, constant = self._cores(plan, ref.device, couplings)
        if constant is not None:  # no index legs and no momenta
            t = constant[0]  # (out_dim,)
        else:
            x = None  # running tensor (*b, r); None while it is the constant start of the train
            if feature_core is not None:
                feats = []
                for sig in plan.signatures:
                    f = momenta[sig[0]].to(CDTYPE)
                    for leg in sig[1:]:
                        g = momenta[leg].to(CDTYPE)
                        f = (f[..., :, None] * g[..., None, :]).flatten(-2)
                    # UFO's P(μ, N) is the momentum of leg N's particle as labelled, i.e. outgoing:
                    # −momenta[N] for the incoming momenta this API takes; a monomial of degree d
                    # picks up (−1)^d
                    feats.append(-f if len(sig) % 2 else f)
                batch = torch.broadcast_shapes(*(f.shape[:-1] for f in feats))
                feats = [f.expand(*batch, f.shape[-1]) for f in feats]
                # the constant feature (first row of the core) is added instead of a column of ones
                x = feature_core[0] + torch.cat(feats, -1) @ feature_core[1:]
            for i, leg in enumerate(plan.contract_legs):
                w = wavefunctions[leg]
                core = leg_cores[i]
                if x is None:  # constant start: (4, r') matrix
                    x = w @ core
                    continue
                r, _, r_next = core.shape
                if r_next < r:  # contract x into the core first: traffic ∝ 4 r'
                    y = (x @ core.reshape(r, 4 * r_next)).unflatten(-1, (4, r_next))
                    x = (y * w[..., :, None]).sum(-2)
                else:  # outer product first: traffic ∝ 4 r
                    x = (x[..., :, None] * w[..., None, :]).flatten(-2) @ core.reshape(r * 4, r_next)
            t = x
        for leg in plan.scalar_legs:
            t = t * wavefunctions[leg][..., None]
        return t

    def _couplings(self, couplings) -> tuple[torch.Tensor | None, int | None]:
        """couplings → (S, K) complex tensor and K (None: no component axis), or (None, None)."""
        if couplings is None:
            return None, None
        c = torch.as_tensor(couplings)
        c = c.to(CDTYPE) if c.is_complex() or c.is_floating_point() else c.to(torch.float64).to(CDTYPE)
        if c.shape[:1] != (self.n_structures,) or c.ndim > 2:
            raise ShapeError(
                f"{self!r}: couplings must have shape ({self.n_structures},) or ({self.n_structures}, K), got {tuple(c.shape)}"
            )
        return (c[:, None], None) if c.ndim == 1 else (c, c.shape[1])

    def _shape_output(self, t: torch.Tensor, open_dim: int, k: int | None, folded: bool) -> torch.Tensor:
        """(*b, K·o) → (*b,), (*b, 4), (*b, K), (*b, K, 4) as documented in :meth:`amplitude`."""
        n_out = (k or 1) if folded else self.n_structures
        t = t.unflatten(-1, (n_out, open_dim))
        if (folded and k is None) or (not folded and self.n_structures == 1):
            t = t[..., 0, :]
        return t[..., 0] if open_dim == 1 else t

    def amplitude(
        self,
        wavefunctions: Sequence[torch.Tensor],
        momenta: Sequence[torch.Tensor | None] | None = None,
        couplings=None,
    ) -> torch.Tensor:
        """The structure(s) contracted with every leg's wavefunction (no factor i).

        Args:
            wavefunctions: per leg, (*b,) scalar or (*b, 4) spinor/vector, broadcastable.
            momenta: per leg, the incoming momentum (*b, 4), real; None where the structure does not use it.
            couplings: optional (S,) or (S, K) complex, S = number of structures: the result is
                Σ_s couplings[s, k] · structure_s, folded into the last contraction (differentiable).
        Returns:
            (*b,) for a single structure or (S,) couplings; (*b, S) for several structures without
            couplings; (*b, K) for (S, K) couplings.  complex128.
        """
        c, k = self._couplings(couplings)
        wavefunctions, momenta = self._inputs(wavefunctions, momenta, None)
        return self._shape_output(self._contract(self._plan(None), wavefunctions, momenta, c), 1, k, c is not None)

    def vertex_current(
        self,
        leg: int,
        wavefunctions: Sequence[torch.Tensor | None],
        momenta: Sequence[torch.Tensor | None] | None = None,
        couplings=None,
    ) -> torch.Tensor:
        """The amputated current of the open ``leg`` (no propagator, no factor i).

        Returns (*b, 4) for a vector leg (contravariant V^μ; the amplitude is V·ε with the metric),
        a spinor leg (the amplitude is Σ_a V_a w_a with the leg's spinor w: a column slot gives
        row components, a row slot column components), or (*b,) for a scalar leg (amplitude V·s).
        With several structures (no couplings) or (S, K) couplings an axis of length S or K comes
        before the 4: (*b, S|K, 4) or (*b, S|K).  The open leg's momentum, if the structure uses it,
        is −Σ of the others.
        """
        leg = self._check_leg(leg)
        c, k = self._couplings(couplings)
        wavefunctions, momenta = self._inputs(wavefunctions, momenta, leg)
        t = self._contract(self._plan(leg), wavefunctions, momenta, c)
        return self._shape_output(t, 1 if self.spins[leg] == 1 else 4, k, c is not None)

    def offshell(
        self,
        leg: int,
        wavefunctions: Sequence[torch.Tensor | None],
        momenta: Sequence[torch.Tensor | None],
        mass: float = 0.0,
        width: float = 0.0,
        couplings=None,
        q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The off-shell wavefunction of ``leg``: :meth:`vertex_current` times the propagator.

        Its momentum is Q = Σ_{j≠leg} momenta[j] (the incoming momentum at the next vertex), or ``q``
        when given: the same momentum computed another way (equal up to rounding), e.g. from the
        decay products of a narrow resonance, whose propagator amplifies the rounding by M/Γ.  Vector:
        P^{μν}(Q) V_ν (unitary gauge, −i g^{μν}/Q² if massless); scalar: iV/D; row slot (column
        result): S(Q)·V; column slot (row result): V·S(−Q).  mass, width in GeV.  Shapes as
        :meth:`vertex_current`.
        """
        leg = self._check_leg(leg)
        others = [momenta[j] for j in range(self.n_legs) if j != leg] if momenta is not None else [None]
        if any(p is None for p in others):
            raise ShapeError(f"{self!r}: offshell currents need the momenta of all other legs")
        current = self.vertex_current(leg, wavefunctions, momenta, couplings)
        if q is None:
            q = others[0]
            for p in others[1:]:
                q = q + p
        c, k = self._couplings(couplings)
        if (c is not None and k is not None) or (c is None and self.n_structures > 1):
            q = q[..., None, :]  # the component / structure axis
        slot = self.slots[leg]
        if slot == "vector":
            return propagators.vector_propagator(current, q, mass, width)
        if slot == "scalar":
            return propagators.scalar_propagator(current, q, mass, width)
        if slot == "row":
            return propagators.fermion_propagator_column(current, q, mass, width)
        return propagators.fermion_propagator_row(current, -q, mass, width)


def compile_lorentz(
    structure: str | LorentzExpression | Sequence[str | LorentzExpression], spins: Sequence[int], name: str = ""
) -> CompiledLorentz:
    """Compile a UFO Lorentz structure — or all structures of one vertex — for the given leg spins.

    Args:
        structure: the UFO ``structure`` string, an already parsed expression, or a sequence of
            them (the ``lorentz`` list of a UFO vertex): evaluated together, one output per
            structure, or folded with their couplings (see :meth:`CompiledLorentz.amplitude`).
        spins: UFO spins 2s+1 of the legs (1 scalar, 2 spin-½, 3 vector), in UFO leg order.
        name: the UFO name, kept for messages.
    Returns:
        A :class:`CompiledLorentz`.
    Raises:
        DataFormatError: the structure does not parse, or its indices do not match the spins.
        InvalidInputError: a spin other than 1, 2 or 3.
    """
    items = [structure] if isinstance(structure, (str, LorentzExpression)) else list(structure)
    exprs = [x if isinstance(x, LorentzExpression) else parse_structure(x) for x in items]
    if not spins:
        raise InvalidInputError("compile_lorentz: spins must list at least one leg")
    return CompiledLorentz(exprs, spins, name)
