"""Cross sections σ(θ) as exact polynomials in the Wilson coefficients, with MC uncertainties.

Every event of the integration carries the packed EFT coefficients of |M|² (see
:meth:`~sbihep.physics.processes.base.EFTDecomposition.packed`), so one VEGAS integration of that
vector gives every coefficient of

    σ(θ) = σ_SM + Σ_i θ_i σ_i + Σ_{i≤j} θ_i θ_j σ_ij            (pb)

together with their full MC covariance.  Hadronic cross sections are

    σ = Σ_channels ∫ dx₁ dx₂ f_a(x₁, μ_F) f_b(x₂, μ_F) · factor · ∫ dΦ_n |M|² / (2ŝ),

with μ_F the process's factorisation scale (default √ŝ); a lepton collider has fixed √s.  Negative
parton densities (LO grids at large x) are set to zero, as event generators do.
The integration uses the ``vegas`` package (Lepage, J. Comput. Phys. 27 (1978) 192), seeded
through its ``ran_array_generator`` so that a seed reproduces the result exactly.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from sbihep._checks import check_counts
from sbihep.errors import InvalidInputError, ThresholdError
from sbihep.physics.phasespace import hadronic_momentum_fractions
from sbihep.physics.processes.base import EFTOrder, Process, check_order

__all__ = ["GEV2_TO_PB", "CrossSection", "PhaseSpaceIntegrand", "cross_section"]

#: (ħc)² in GeV² pb: multiplies a cross section in GeV⁻² to give pb.
GEV2_TO_PB = 0.3893793721e9

#: PDG id → column of PDF.xfxQ_all (ids −6…6, gluon stored at the id-0 slot).
_PDF_COLUMN = {pid: pid + 6 for pid in range(-6, 7)}
_PDF_COLUMN[21] = 6


@dataclass
class CrossSection:
    """σ(θ) of one process as a polynomial in θ with its MC covariance.

    Attributes:
        process: process name.
        sqrt_s_gev: collider energy √s (GeV).
        order: ``"linear"`` or ``"quadratic"``.
        operators: θ names in order.
        monomials: names of the polynomial's monomials ("1", "cHW", "cHW*cHWtil", …).
        coefficients_pb: (M,) coefficient of each monomial (pb).
        covariance_pb2: (M, M) MC covariance of the coefficients (pb²).
        n_evaluations: integrand evaluations in the final (non-adapting) iterations.
        chi2_per_dof: consistency of the final VEGAS iterations (≈ 1 when the estimate is reliable).
        seed: the seed that reproduces this result.
        pdf: name of the PDF set (hadronic processes) or None.
    """

    process: str
    sqrt_s_gev: float
    order: EFTOrder
    operators: tuple[str, ...]
    monomials: tuple[str, ...]
    coefficients_pb: np.ndarray
    covariance_pb2: np.ndarray
    n_evaluations: int
    chi2_per_dof: float
    seed: int
    pdf: str | None = None
    metadata: dict = field(default_factory=dict)

    def monomial_values(self, theta: Mapping[str, float] | None = None) -> np.ndarray:
        """The monomials (1, θ_i, θ_iθ_j) at θ, shape (M,)."""
        if theta is not None and not isinstance(theta, Mapping):
            raise InvalidInputError(f"theta must be a mapping {{operator: value}}, got {type(theta).__name__}")
        theta = dict(theta or {})
        unknown = sorted(set(theta) - set(self.operators))
        if unknown:
            raise InvalidInputError(f"theta: unknown operator(s) {unknown} for {self.process}; known: {list(self.operators)}")
        for name, value in theta.items():
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise InvalidInputError(f"theta[{name!r}] must be a real number, got {value!r}")
            if not math.isfinite(float(value)):
                raise InvalidInputError(f"theta[{name!r}] must be finite, got {float(value)}")
        values = {name: float(theta.get(name, 0.0)) for name in self.operators}
        out = []
        for monomial in self.monomials:
            if monomial == "1":
                out.append(1.0)
            else:
                out.append(math.prod(values[factor] for factor in monomial.split("*")))
        return np.asarray(out)

    def __call__(self, theta: Mapping[str, float] | None = None) -> tuple[float, float]:
        """(σ(θ), its MC uncertainty) in pb."""
        m = self.monomial_values(theta)
        value = float(m @ self.coefficients_pb)
        error = float(math.sqrt(max(m @ self.covariance_pb2 @ m, 0.0)))
        return value, error

    @property
    def sm_pb(self) -> float:
        return float(self.coefficients_pb[0])

    def describe(self) -> str:
        """A readable multi-line summary: each coefficient with its uncertainty."""
        errors = np.sqrt(np.clip(np.diag(self.covariance_pb2), 0.0, None))
        lines = [
            f"{self.process} at sqrt(s) = {self.sqrt_s_gev:g} GeV ({self.order} EFT order"
            + (f", PDF {self.pdf}" if self.pdf else "")
            + f"; {self.n_evaluations} evaluations, chi2/dof = {self.chi2_per_dof:.2f})",
            "sigma(theta) / pb =",
        ]
        for name, c, e in zip(self.monomials, self.coefficients_pb, errors):
            term = "" if name == "1" else f" * {name}"
            lines.append(f"    {c:+.6e} ± {e:.1e}{term}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "process": self.process,
            "sqrt_s_gev": self.sqrt_s_gev,
            "order": self.order,
            "operators": list(self.operators),
            "monomials": list(self.monomials),
            "coefficients_pb": self.coefficients_pb.tolist(),
            "covariance_pb2": self.covariance_pb2.tolist(),
            "n_evaluations": self.n_evaluations,
            "chi2_per_dof": self.chi2_per_dof,
            "seed": self.seed,
            "pdf": self.pdf,
            "metadata": self.metadata,
        }


class PhaseSpaceIntegrand:
    """Map the unit hypercube to weighted EFT coefficients of one process.

    Calling it on r of shape (N, dim) returns (N, M) numpy: the packed |M|² coefficients times the
    full event weight (PDFs, flux 1/(2ŝ), phase-space and Jacobian weights) in pb, so that the
    mean over uniform r is the coefficient vector of σ(θ).

    Args:
        process: the process.
        sqrt_s: collider energy (GeV).
        order: EFT order of the coefficients.
        pdf: a :class:`~sbihep.physics.pdf.PDF` (hadronic processes; default: the embedded set).
    """

    def __init__(
        self, process: Process, sqrt_s: float, order: EFTOrder = "quadratic", pdf=None, subprocess: str | None = None
    ) -> None:
        if not isinstance(process, Process):
            raise InvalidInputError(f"process must be a Process (e.g. sbihep.physics.processes.get_process('ee_mumu')), "
                                    f"got {type(process).__name__} {process!r}")
        self.process = process
        if isinstance(sqrt_s, bool) or not isinstance(sqrt_s, numbers.Real):
            raise InvalidInputError(f"sqrt_s must be a number (GeV), got {type(sqrt_s).__name__} {sqrt_s!r}")
        self.sqrt_s = float(sqrt_s)
        self.order = check_order(order)
        if not (math.isfinite(self.sqrt_s) and self.sqrt_s > 0):
            raise InvalidInputError(f"sqrt_s must be a positive energy in GeV, got {sqrt_s!r}")
        threshold = process.threshold()
        if self.sqrt_s <= threshold:
            raise ThresholdError(
                f"{process.name}: sqrt_s = {self.sqrt_s:g} GeV is below the production threshold {threshold:g} GeV"
            )
        self.hadronic = process.collider == "pp"
        self.dim = process.n_random + (2 if self.hadronic else 0)
        known = sorted({ch.subprocess for ch in process.channels()})
        if subprocess is not None and subprocess not in known:
            raise InvalidInputError(f"{process.name}: unknown subprocess {subprocess!r}; known: {known}")
        self.subprocess = subprocess
        self.pdf = None
        if self.hadronic:
            if pdf is None:
                from sbihep.physics.pdf import PDF

                pdf = PDF.load()
            if not callable(getattr(pdf, "xfxQ_all", None)):
                raise InvalidInputError(f"pdf must be a sbihep.physics.pdf.PDF (e.g. PDF.load()), got {type(pdf).__name__} {pdf!r}")
            self.pdf = pdf
            self._warn_below_grid()
        self._groups = self._group_channels()

    def _warn_below_grid(self) -> None:
        """Warn once, before any integration, when the momentum fractions can fall below the PDF grid.

        x₁, x₂ ≥ τ_min = ŝ_min/s (ŝ_min the threshold²), so x below the grid's x_min is reached only
        when τ_min < x_min; there the PDF values are frozen at x_min and σ is an extrapolation.
        """
        x_range = getattr(self.pdf, "x_range", None)
        if x_range is None:
            return
        x_min = float(x_range[0])
        tau_min = self.process.threshold() ** 2 / self.sqrt_s**2
        if tau_min < x_min:
            from sbihep.errors import PDFExtrapolationWarning

            note = getattr(self.pdf, "_note_extrapolation_warned", None)
            if note is not None:
                note()  # the PDF's own per-evaluation warning would repeat this one
            warnings.warn(
                f"{self.process.name} at sqrt_s = {self.sqrt_s:g} GeV: parton momentum fractions reach x = {tau_min:.3g}, "
                f"below the x_min = {x_min:.3g} of the PDF grid {getattr(self.pdf, 'name', self.pdf)!r}; there the PDF "
                "is frozen at x_min, so the cross section is an extrapolation",
                PDFExtrapolationWarning,
                stacklevel=3,
            )

    def _group_channels(self) -> list[tuple[str, bool, list]]:
        """Channels sharing a partonic amplitude (same subprocess and beam order) are evaluated once."""
        groups: dict[tuple[str, bool], list] = {}
        for ch in self.process.channels():
            if self.subprocess is not None and ch.subprocess != self.subprocess:
                continue
            if self.hadronic:
                for pid in (ch.pid_a, ch.pid_b):
                    if pid not in _PDF_COLUMN:
                        raise InvalidInputError(f"{self.process.name}: channel parton id {pid} is not a PDF parton")
            groups.setdefault((ch.subprocess, ch.swap), []).append(ch)
        return [(sub, swap, chans) for (sub, swap), chans in groups.items()]

    @property
    def monomials(self) -> list[str]:
        names = ["1", *self.process.operators]
        if self.order == "quadratic":
            ops = self.process.operators
            names += [f"{ops[i]}*{ops[j]}" for i in range(len(ops)) for j in range(i, len(ops))]
        return names

    def __call__(self, r: np.ndarray | torch.Tensor) -> np.ndarray:
        r = torch.as_tensor(np.asarray(r), dtype=torch.float64)
        with torch.no_grad():
            return self.evaluate(r).numpy()

    def evaluate(self, r: torch.Tensor) -> torch.Tensor:
        """Torch version of ``__call__``: r (N, dim) → (N, M) weighted coefficients in pb."""
        return self.events(r)["coefficients"]

    def events(self, r: torch.Tensor, muf_factors: tuple[float, ...] = ()) -> dict[str, torch.Tensor]:
        """The full event record at r (N, dim).

        Returns a dict with ``coefficients`` (N, M) (as :meth:`evaluate`, pb), ``momenta`` (N, 2+n, 4)
        in the partonic centre-of-mass frame with the slot order of the process's default
        subprocess (or of ``subprocess`` if the integrand is restricted to one), and for hadronic
        processes ``x1``, ``x2`` (N,), ``scale`` (N,) μ_F in GeV and, if ``muf_factors`` are given,
        ``coefficients_muf`` (len(muf_factors), N, M): the coefficients with the PDFs evaluated at
        k·μ_F instead (same amplitudes, same phase-space point).
        """
        if not self.hadronic:
            if muf_factors:
                raise InvalidInputError(f"{self.process.name}: factorisation-scale variations need a hadronic process")
            momenta, weight = self.process.phase_space(r, self.sqrt_s)
            total = None
            for subprocess, _, _ in self._groups:
                coeffs = self.process.eft_decomposition(momenta, self.order, subprocess, validate=False).packed()
                total = coeffs if total is None else total + coeffs
            return {"coefficients": total * (weight * GEV2_TO_PB / (2.0 * self.sqrt_s**2))[:, None], "momenta": momenta}
        s_hat_min = self.process.threshold() ** 2
        x1, x2, w_x = hadronic_momentum_fractions(r[:, :2], self.sqrt_s, s_hat_min)
        s_hat = x1 * x2 * self.sqrt_s**2
        momenta, w_ps = self.process.phase_space(r[:, 2:], torch.sqrt(s_hat))
        mu = self.process.factorisation_scale(momenta)
        group_coeffs = []
        for subprocess, swap, channels in self._groups:
            moms = momenta[:, [1, 0, *range(2, momenta.shape[1])]] if swap else momenta
            group_coeffs.append(self.process.eft_decomposition(moms, self.order, subprocess, validate=False).packed())
        weight = (w_x * w_ps * GEV2_TO_PB / (2.0 * s_hat))[:, None]
        out = {"momenta": momenta, "x1": x1, "x2": x2, "scale": mu}
        out["coefficients"] = self._convolve(group_coeffs, x1, x2, mu) * weight
        if muf_factors:
            out["coefficients_muf"] = torch.stack([self._convolve(group_coeffs, x1, x2, k * mu) * weight for k in muf_factors])
        return out

    def _convolve(self, group_coeffs: list[torch.Tensor], x1, x2, mu) -> torch.Tensor:
        """Σ_channels factor · f_a(x1, μ) f_b(x2, μ) · coefficients of the channel's amplitude group."""
        # LO grids are slightly negative for some antiquarks at large x; as event generators do, such
        # densities are set to zero so that event weights are never negative (≈ 1e-4 of σ for WH).
        f1 = torch.clamp(self.pdf.xfxQ_all(x1, mu), min=0.0) / x1[:, None]
        f2 = torch.clamp(self.pdf.xfxQ_all(x2, mu), min=0.0) / x2[:, None]
        total = None
        for coeffs, (_, _, channels) in zip(group_coeffs, self._groups):
            lumi = sum(ch.factor * f1[:, _PDF_COLUMN[ch.pid_a]] * f2[:, _PDF_COLUMN[ch.pid_b]] for ch in channels)
            term = coeffs * lumi[:, None]
            total = term if total is None else total + term
        return total


def cross_section(
    process: Process,
    sqrt_s: float,
    *,
    order: EFTOrder = "quadratic",
    n_evaluations: int = 20_000,
    n_adapt: int = 5,
    n_iterations: int = 5,
    seed: int = 0,
    pdf=None,
    progress: bool = True,
) -> CrossSection:
    """σ(θ) of ``process`` at collider energy ``sqrt_s`` (GeV) as a polynomial in θ (pb).

    Args:
        process: a :class:`~sbihep.physics.processes.base.Process`.
        sqrt_s: e⁺e⁻ or pp centre-of-mass energy (GeV).
        order: ``"linear"`` (interference only) or ``"quadratic"``.
        n_evaluations: integrand evaluations per VEGAS iteration (approximate, as VEGAS allots).
        n_adapt: iterations that adapt the VEGAS map; their results are discarded.
        n_iterations: iterations with the map frozen, averaged for the result.
        seed: seed of the random numbers; the same seed gives the same result.
        pdf: PDF for hadronic processes (default: the embedded NNPDF3.1 LO member 0).
        progress: show a tqdm progress bar over iterations.
    Returns:
        :class:`CrossSection`.  A χ²/dof of the final iterations far above 1 means the estimate
        is unreliable (increase ``n_evaluations`` or ``n_adapt``); a warning is issued then.
    """
    import gvar
    import vegas
    from sbihep._progress import tqdm

    check_counts(
        ("n_evaluations", n_evaluations, 100),
        ("n_adapt", n_adapt, 0),
        ("n_iterations", n_iterations, 1),
        ("seed", seed, 0),
    )
    integrand = PhaseSpaceIntegrand(process, sqrt_s, order, pdf)
    rng = np.random.default_rng(seed)
    integrator = vegas.Integrator([[0.0, 1.0]] * integrand.dim, ran_array_generator=rng.random)
    batch = vegas.lbatchintegrand(integrand)

    bar = tqdm(total=n_adapt + n_iterations, desc=f"σ({process.name})", unit="it", disable=not progress, leave=False)

    class _Progress:
        def begin(self, itn, integrator):  # noqa: D401 - vegas analyzer protocol
            pass

        def end(self, itn_result, result):
            bar.update(1)

    if n_adapt:
        integrator(batch, nitn=n_adapt, neval=n_evaluations, analyzer=_Progress())
    result = integrator(batch, nitn=n_iterations, neval=n_evaluations, adapt=False, analyzer=_Progress())
    bar.close()

    means = np.asarray(gvar.mean(result), dtype=float)
    cov = np.asarray(gvar.evalcov(result), dtype=float)
    chi2_dof = float(result.chi2 / result.dof) if result.dof > 0 else float("nan")
    if n_iterations > 1 and result.Q < 1e-3:
        warnings.warn(
            f"cross_section({process.name}): VEGAS iterations are inconsistent (chi2/dof = {chi2_dof:.2f}, "
            f"Q = {result.Q:.1e}); increase n_evaluations or n_adapt",
            RuntimeWarning,
            stacklevel=2,
        )
    n_eval_final = int(integrator.last_neval) * n_iterations
    return CrossSection(
        process=process.name,
        sqrt_s_gev=float(sqrt_s),
        order=integrand.order,
        operators=tuple(process.operators),
        monomials=tuple(integrand.monomials),
        coefficients_pb=means,
        covariance_pb2=cov,
        n_evaluations=n_eval_final,
        chi2_per_dof=chi2_dof,
        seed=seed,
        pdf=integrand.pdf.name if integrand.pdf is not None else None,
        metadata={"n_adapt": n_adapt, "n_iterations": n_iterations},
    )
