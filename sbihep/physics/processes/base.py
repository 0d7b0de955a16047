"""The protocol every process follows, and the exact per-event EFT decomposition.

A process writes its helicity amplitudes as a sum of one Standard-Model piece and one piece per
operator insertion (SMEFT at dimension 6, amplitude linear in the Wilson coefficients θ):

    M_{h,c}(z; θ) = M⁰_{h,c}(z) + Σ_i θ_i M^i_{h,c}(z),

for helicity configuration h and colour flow c.  Summing over helicities and colours with the
colour matrix C and averaging over initial spins and colours gives, per event, the polynomial

    |M|²(z; θ) = A₀(z) + Σ_i θ_i A_i(z) + Σ_{ij} θ_i θ_j A_ij(z)

with A₀ = B(M⁰, M⁰), A_i = 2 Re B(M⁰, M^i), A_ij = Re B(M^i, M^j) (symmetric) and
B(X, Y) = avg · Σ_h Σ_{cc'} X_{hc} C_{cc'} Y*_{hc'}.  The ``linear`` order keeps A₀ + θ·A only
(interference), ``quadratic`` keeps everything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, Mapping, Sequence

import torch

from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.params import ParameterSpace
from sbihep.physics.couplings import DEFAULT_SM, SMInputs, operator_parameter
from sbihep.physics.lorentz import check_momenta, mass

__all__ = [
    "EFTOrder",
    "Amplitudes",
    "EFTDecomposition",
    "PartonicChannel",
    "Process",
    "check_order",
]

EFTOrder = Literal["linear", "quadratic"]


def check_order(order: str) -> EFTOrder:
    if order not in ("linear", "quadratic"):
        raise InvalidInputError(f"order must be 'linear' or 'quadratic', got {order!r}")
    return order  # type: ignore[return-value]


@dataclass
class Amplitudes:
    """Helicity amplitudes split into SM and operator-insertion components.

    Attributes:
        components: (K, N, H, C) complex128, K = 1 + number of operators (index 0 is the SM),
            H helicity configurations that can be non-zero, C colour flows.
        colour_matrix: (C, C) real or complex Hermitian, C_{cc'} = Σ over colours of (flow c)(flow c')*.
        average: the initial-state spin × colour averaging factor (and any symmetry factor).
        scale: optional (N,) real factor multiplying every |M|² (e.g. a factorised decay), or None.
    """

    components: torch.Tensor
    colour_matrix: torch.Tensor
    average: float
    scale: torch.Tensor | None = None

    def gram(self) -> torch.Tensor:
        """G_kl = Re B(M^k, M^l), shape (K, K, N), with B(X, Y) = avg · Σ_h Σ_{cc'} X_{hc} C_{cc'} Y*_{hc'}
        (C Hermitian; the same bilinear form as :meth:`Process.matrix_element2`)."""
        cm = self.colour_matrix.to(self.components.dtype)
        right = torch.einsum("cd,lnhd->lnhc", cm.conj(), self.components)  # Σ_d C*_{cd} Y_d = (Σ_d C_{cd} Y*_d)*
        g = torch.einsum("knhc,lnhc->kln", self.components, right.conj()).real * self.average
        return g if self.scale is None else g * self.scale


@dataclass
class EFTDecomposition:
    """Per-event polynomial |M|²(θ) = constant + θ·linear + θᵀ quadratic θ.

    Attributes:
        operators: names of θ_i, in order.
        order: ``"linear"`` or ``"quadratic"``.
        constant: (N,) the SM |M|² (units of the process's |M|²).
        linear: (N, n) interference terms A_i.
        quadratic: (N, n, n) symmetric A_ij, or None at linear order.
    """

    operators: tuple[str, ...]
    order: EFTOrder
    constant: torch.Tensor
    linear: torch.Tensor
    quadratic: torch.Tensor | None = None

    @classmethod
    def from_gram(cls, gram: torch.Tensor, operators: Sequence[str], order: EFTOrder) -> "EFTDecomposition":
        """Build from the (K, K, N) Gram matrix of :meth:`Amplitudes.gram`."""
        constant = gram[0, 0]
        linear = 2.0 * gram[0, 1:].T
        quadratic = gram[1:, 1:].permute(2, 0, 1) if order == "quadratic" else None
        return cls(tuple(operators), order, constant, linear, quadratic)

    def evaluate(self, theta: torch.Tensor) -> torch.Tensor:
        """|M|² at θ of shape (n,) or (N, n) → (N,)."""
        theta = torch.as_tensor(theta, dtype=self.constant.dtype)
        value = self.constant + (self.linear * theta).sum(-1)
        if self.quadratic is not None:
            value = value + torch.einsum("ni,nij,nj->n", theta.expand_as(self.linear), self.quadratic, theta.expand_as(self.linear))
        return value

    def packed(self) -> torch.Tensor:
        """(N, 1 + n + n(n+1)/2): constant, linear, then the upper triangle i ≤ j of A_ij with
        the off-diagonal entries doubled (so that |M|² = Σ coefficient × monomial)."""
        cols = [self.constant[:, None], self.linear]
        if self.quadratic is not None:
            n = len(self.operators)
            iu = torch.triu_indices(n, n)
            factor = torch.where(iu[0] == iu[1], 1.0, 2.0).to(self.constant.dtype)
            cols.append(self.quadratic[:, iu[0], iu[1]] * factor)
        return torch.cat(cols, dim=-1)

    def monomial_names(self) -> list[str]:
        """Names matching the columns of :meth:`packed`: "1", "cHW", "cHW*cHWtil", …"""
        names = ["1", *self.operators]
        if self.quadratic is not None:
            n = len(self.operators)
            names += [f"{self.operators[i]}*{self.operators[j]}" for i in range(n) for j in range(i, n)]
        return names


@dataclass(frozen=True)
class PartonicChannel:
    """One initial-state channel of a process.

    Attributes:
        pid_a, pid_b: PDG ids of the partons from beam 1 and beam 2.
        subprocess: key passed to :meth:`Process.amplitudes` (which partonic amplitude to use).
        factor: multiplies |M|² (e.g. |V_ud|²).
        swap: the partonic amplitude expects its first parton to come from beam 2, so momenta
            p₁ ↔ p₂ are exchanged before evaluating it.
    """

    pid_a: int
    pid_b: int
    subprocess: str
    factor: float = 1.0
    swap: bool = False


class Process(ABC):
    """A 2 → n scattering process with exact SMEFT dependence.

    Subclasses set the class attributes and implement :meth:`external_masses` and
    :meth:`amplitudes`; everything else (validation, |M|² at θ, the EFT decomposition) is shared.

    Momenta are (N, 2 + n, 4) float64 tensors in GeV, ordered (incoming 1, incoming 2,
    outgoing …) as listed in ``particles``; |M|² is summed over final and averaged over initial
    helicities and colours, dimension GeV^(4 − 2n) for n final-state particles (dimensionless
    for 2 → 2).

    Args:
        sm: Standard Model inputs (default :data:`~sbihep.physics.couplings.DEFAULT_SM`).
    """

    #: short identifier used by the CLI and the registry, e.g. "ee_mumu".
    name: ClassVar[str] = ""
    #: one-line description.
    description: ClassVar[str] = ""
    #: names of the external particles of the representative channel, incoming first.
    particles: ClassVar[tuple[str, ...]] = ()
    #: operators θ, in order (SMEFTsim names).
    operators: ClassVar[tuple[str, ...]] = ()
    #: "ee" (fixed √s) or "pp" (PDF-convoluted).
    collider: ClassVar[str] = "ee"
    #: number of uniform random numbers :meth:`phase_space` consumes per event.
    n_random: ClassVar[int] = 0

    def __init__(self, sm: SMInputs = DEFAULT_SM) -> None:
        self.sm = sm

    def __repr__(self) -> str:
        return f"{type(self).__name__}(operators={list(self.operators)})"

    # ---- to be provided by each process -------------------------------------------------
    @abstractmethod
    def external_masses(self) -> tuple[float, ...]:
        """On-shell masses (GeV) of the 2 + n external particles, in the order of ``particles``."""

    @abstractmethod
    def amplitudes(self, momenta: torch.Tensor, subprocess: str | None = None) -> Amplitudes:
        """Helicity amplitudes (SM + one component per operator) at validated momenta."""

    @abstractmethod
    def phase_space(self, r: torch.Tensor, sqrt_s_hat: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Map uniform r of shape (N, n_random) to partonic momenta and their phase-space weight.

        Returns momenta (N, 2 + n, 4) in the partonic centre-of-mass frame (parton 1 along +z) and
        the weight (N,) in GeV^(2n − 4), normalised so that the mean of weight × f(momenta) over
        uniform r estimates ∫ dΦ_n f with dΦ_n = (2π)⁴ δ⁴(P − Σp) Π d³p/((2π)³ 2E).  Processes with
        a resonance in narrow-width mode fold the resonance's propagator into this weight and say so.
        """

    def threshold(self) -> float:
        """The smallest partonic √ŝ (GeV) at which the process is open."""
        return float(sum(self.external_masses()[2:]))

    def factorisation_scale(self, momenta: torch.Tensor) -> torch.Tensor:
        """μ_F (GeV) at which hadronic processes evaluate the PDFs, (N, 2+n, 4) → (N,); default √ŝ."""
        return mass(momenta[:, 0] + momenta[:, 1])

    def channels(self) -> tuple[PartonicChannel, ...]:
        """Initial-state channels; a lepton collider has a single one."""
        return (PartonicChannel(0, 0, self.default_subprocess()),)

    def default_subprocess(self) -> str:
        return "default"

    def lepton_charge(self, subprocess: str | None = None) -> int:
        """Charge (±1) of the charged lepton of ``subprocess``, for charge-odd observables; default +1."""
        return 1

    def roles(self, subprocess: str | None = None) -> tuple[str, ...]:
        """The physics role of each external slot of ``subprocess`` (incoming first).

        Observables and event records address particles by role ("l", "v", "b", "bbar", "t", …)
        so that subprocesses with different slot orders (e.g. W⁺ → ν e⁺ vs W⁻ → e⁻ ν̄) line up.
        Every subprocess's final-state roles are a permutation of the default subprocess's.
        Default: the particle names.
        """
        return tuple(self.particles)

    # ---- shared behaviour ---------------------------------------------------------------
    @property
    def n_external(self) -> int:
        return len(self.particles)

    def parameter_space(self, bounds: Mapping[str, tuple[float, float] | None] | None = None) -> ParameterSpace:
        """Wilson coefficients of this process as a :class:`~sbihep.params.ParameterSpace` (c_i/Λ², TeV⁻²).

        With ``bounds`` the space holds exactly the operators named, in the order named, with the
        bounds given; every operator left out is not a parameter of the space — it stays at its SM
        value 0 (fit, train or sample on that subset with
        :meth:`~sbihep.events.eventset.EventSet.restrict` or a prior over this space).  No bounds are
        invented for an operator that was not named: a value ``None`` asks explicitly for the
        operator's default range (:data:`~sbihep.physics.couplings.OPERATORS`, e.g. (−10, 10)).
        Without ``bounds`` the space holds every operator with its default range (what the event
        generator checks θ against).

        Args:
            bounds: operator name → (low, high) in TeV⁻², or None for the operator's default range.

        Returns:
            the :class:`~sbihep.params.ParameterSpace` (every parameter a POI with SM value 0).

        Raises:
            UnknownParameterError: a name that is not an operator of this process.
            InvalidInputError: an empty mapping, or bounds that are not a pair low < high around 0.

        Example:
            >>> from sbihep.physics.processes import get_process
            >>> get_process("wh_lvbb").parameter_space({"cHW": (-1, 1), "cHWtil": (-1, 1)})
            ParameterSpace(cHW∈[-1,1], cHWtil∈[-1,1])
        """
        if bounds is None:
            return ParameterSpace(operator_parameter(op, self.default_bounds(op)) for op in self.operators)
        if not isinstance(bounds, Mapping):
            raise InvalidInputError(f"{self.name}: bounds must be a mapping operator → (low, high) or None, got {type(bounds).__name__}")
        unknown = [op for op in bounds if op not in self.operators]
        if unknown:
            raise UnknownParameterError(f"{self.name}: no operator(s) {unknown}; known: {list(self.operators)}")
        if not bounds:
            raise InvalidInputError(f"{self.name}: bounds is empty; name the operators of the space (or pass None for all of {list(self.operators)})")
        return ParameterSpace(operator_parameter(op, self.default_bounds(op) if b is None else b) for op, b in bounds.items())

    def default_bounds(self, operator: str) -> tuple[float, float] | None:
        """The default range (TeV⁻²) of one of this process's operators; None means the range of
        sbihep's operator registry (:data:`~sbihep.physics.couplings.OPERATORS`)."""
        return None

    def theta_vector(self, theta: Mapping[str, float] | torch.Tensor | None) -> torch.Tensor:
        """θ by name (or an (n,) / (N, n) tensor already in operator order) → float64 tensor."""
        if theta is None:
            return torch.zeros(len(self.operators), dtype=torch.float64)
        if isinstance(theta, torch.Tensor):
            if theta.shape[-1:] != (len(self.operators),) or theta.ndim > 2:
                raise ShapeError(
                    f"{self.name}: theta tensor must have shape (n,) or (N, n) with n = {len(self.operators)} "
                    f"operators {list(self.operators)}, got {tuple(theta.shape)}"
                )
            if not torch.isfinite(theta).all():
                raise InvalidInputError(f"{self.name}: theta contains NaN or inf")
            return theta.to(torch.float64)
        if not isinstance(theta, Mapping):
            raise InvalidInputError(f"{self.name}: theta must be a mapping name → value or a tensor, got {type(theta).__name__}")
        unknown = [k for k in theta if k not in self.operators]
        if unknown:
            raise UnknownParameterError(f"{self.name}: unknown operator(s) {unknown}; this process has {list(self.operators)}")
        # unbounded: only converts names (any model operator is accepted once bounds are given)
        space = ParameterSpace(operator_parameter(op, (-float("inf"), float("inf"))) for op in self.operators)
        return torch.as_tensor(space.to_vector(theta), dtype=torch.float64)

    def check_momenta(self, momenta: torch.Tensor) -> None:
        """Shape, finiteness, positive energy, mass shell and momentum conservation."""
        check_momenta(momenta, self.external_masses(), name=f"{self.name} momenta", n_particles=self.n_external)
        if momenta.dtype != torch.float64:
            raise ShapeError(f"{self.name} momenta must be float64 (the amplitudes are complex128), got {momenta.dtype}; "
                             "convert with momenta.double()")
        total = momenta[:, :2].sum(1) - momenta[:, 2:].sum(1)
        scale = momenta[:, :2, 0].sum(1)
        bad = total.abs().amax(-1) > 1e-8 * scale
        if bad.any():
            ev = int(bad.nonzero()[0, 0])
            raise ShapeError(
                f"{self.name} momenta: event {ev} violates momentum conservation "
                f"(Σp_in − Σp_out = {total[ev].tolist()} GeV)"
            )

    def _channel(self, subprocess: str | None) -> str:
        if subprocess is None:
            return self.default_subprocess()
        known = {c.subprocess for c in self.channels()}
        if subprocess not in known:
            raise UnknownParameterError(f"{self.name}: unknown subprocess {subprocess!r}; known: {sorted(known)}")
        return subprocess

    def eft_decomposition(
        self,
        momenta: torch.Tensor,
        order: EFTOrder = "quadratic",
        subprocess: str | None = None,
        *,
        validate: bool = True,
    ) -> EFTDecomposition:
        """Exact per-event coefficients of |M|²(θ) from the amplitudes (see module docstring).

        ``validate=False`` skips :meth:`check_momenta` (about a third of the cost for fast
        processes); use it only for momenta that come from :meth:`phase_space`.
        """
        order = check_order(order)
        if validate:
            self.check_momenta(momenta)
        amps = self.amplitudes(momenta, self._channel(subprocess))
        return EFTDecomposition.from_gram(amps.gram(), self.operators, order)

    def matrix_element2(
        self,
        momenta: torch.Tensor,
        theta: Mapping[str, float] | torch.Tensor | None = None,
        order: EFTOrder = "quadratic",
        subprocess: str | None = None,
        *,
        validate: bool = True,
    ) -> torch.Tensor:
        """Helicity-summed, spin/colour-averaged |M|² at θ.  (N, 2+n, 4) → (N,) float64.

        Computed directly from the amplitudes M⁰ + Σθ_i M^i (not from the decomposition), so it is
        differentiable in θ and in the momenta.  ``order="linear"`` drops the |M^i|² terms;
        ``validate=False`` skips the momentum checks (for momenta from :meth:`phase_space`).
        """
        order = check_order(order)
        if validate:
            self.check_momenta(momenta)
        th = self.theta_vector(theta)
        amps = self.amplitudes(momenta, self._channel(subprocess))
        comps = amps.components
        th_c = th.to(comps.dtype)
        if th.ndim == 1:
            bsm = torch.einsum("k,knhc->nhc", th_c, comps[1:])
        else:
            bsm = torch.einsum("nk,knhc->nhc", th_c, comps[1:])
        cm = amps.colour_matrix.to(comps.dtype)

        def bilinear(x, y):
            return torch.einsum("nhc,cd,nhd->n", x, cm, y.conj()).real * amps.average

        value = bilinear(comps[0], comps[0]) + 2.0 * bilinear(comps[0], bsm)
        if order == "quadratic":
            value = value + bilinear(bsm, bsm)
        return value if amps.scale is None else value * amps.scale
