"""Binned Poisson likelihood whose templates follow θ exactly through the events' EFT coefficients.

Histogramming an EventSet in one or two observables gives, per bin b, the coefficient sums
C_b = Σ_{i∈b} c_i (M,), so the expected yield is an exact polynomial in θ:

    ν_b(θ, ν) = 1000 · lumi_ifb · (C_b·m(θ)) · Π_k exp(a_bk ν_k + b_bk ν_k²) · κ,

with the exponential-quadratic morphing applied per bin between the bin's own ±1σ yields
U_bk·m(θ), D_bk·m(θ) (exact at ν_k = 0, ±1 for every θ), and κ = (1 + δ_L)^ν_L an optional
log-normal luminosity nuisance.  −ln L = Σ_b [ν_b − n_b ln ν_b] (ln n_b! dropped); the nuisances'
unit Gaussian constraints come from their parameters (added by :class:`~sbihep.fit.Likelihood`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from sbihep._checks import check_real
from sbihep._toml import did_you_mean
from sbihep.errors import InvalidInputError, ShapeError, UnknownParameterError
from sbihep.events import eft as eft_math
from sbihep.fit.unbinned import lumi_parameter
from sbihep.params import Parameter, ParameterSpace

__all__ = ["BinnedTerm"]


class BinnedTerm:
    """Poisson counts in B bins with polynomial templates (see the module docstring).

    Args:
        counts: observed counts n_b, (B,).
        coefficients: C_b, (B, M) pb, over the monomials of ``operators``/``order``.
        operators, order: the EFT structure of ``coefficients``.
        parameters: POIs (a subset of ``operators``; the rest held at 0) and nuisances.
        lumi_ifb: integrated luminosity (fb⁻¹).
        up, down: (B, K, M) coefficient sums of the ±1σ variations of the K nuisances ``nuisances``.
        nuisances: names of the K template nuisances.
        lumi_uncertainty: relative luminosity uncertainty (adds the nuisance ``lumi``).
        edges: bin edges per observable, kept for plotting and output.
    """

    def __init__(self, counts, coefficients, operators: Sequence[str], order: str, parameters: ParameterSpace, lumi_ifb: float, *,
                 up=None, down=None, nuisances: Sequence[str] = (), lumi_uncertainty: float | None = None,
                 edges: Mapping[str, np.ndarray] | None = None, fixed_operators: Mapping[str, float] | None = None) -> None:
        #: operators of the events the templates came from that are held at these values (not parameters)
        self.fixed_operators = {str(k): float(v) for k, v in (fixed_operators or {}).items()}
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.float64)
        n_bins = self.coefficients.shape[0]
        if self.counts.shape != (n_bins,):
            raise ShapeError(f"BinnedTerm: counts must have shape ({n_bins},), got {self.counts.shape}")
        bad = np.flatnonzero(~np.isfinite(self.counts) | (self.counts < 0))
        if bad.size:
            raise InvalidInputError(f"BinnedTerm: counts must be finite and ≥ 0; bin {int(bad[0])} is {self.counts[bad[0]]!r}")
        check_real("BinnedTerm: lumi_ifb", lumi_ifb, positive=True)
        if lumi_uncertainty is not None:
            check_real("BinnedTerm: lumi_uncertainty", lumi_uncertainty)
        if lumi_uncertainty is not None and not 0 < lumi_uncertainty < 1:
            raise InvalidInputError(f"BinnedTerm: lumi_uncertainty must lie in (0, 1), got {lumi_uncertainty!r}")
        self.operators, self.order, self.nuisances = tuple(operators), order, tuple(nuisances)
        self.lumi_ifb, self.lumi_uncertainty, self.edges = float(lumi_ifb), lumi_uncertainty, dict(edges or {})
        self.up = None if up is None else np.asarray(up, dtype=np.float64)
        self.down = None if down is None else np.asarray(down, dtype=np.float64)
        if self.nuisances and (self.up is None or self.up.shape != (n_bins, len(self.nuisances), self.coefficients.shape[1])):
            raise ShapeError(f"BinnedTerm: up/down must have shape ({n_bins}, {len(self.nuisances)}, {self.coefficients.shape[1]})")
        self.model_parameters = parameters
        self.parameters = parameters if lumi_uncertainty is None else parameters.merge(ParameterSpace([lumi_parameter()]))
        unknown = [n for n in self.parameters.names if n not in self.operators and n not in self.nuisances and n != "lumi"]
        if unknown:
            raise InvalidInputError(f"BinnedTerm: parameters {unknown} are neither operators nor nuisances of the templates")

    @classmethod
    def from_eventset(cls, eventset, bins: Mapping[str, Sequence[float]], lumi_ifb: float, *,
                      pois: Mapping[str, tuple[float, float]] | None = None, counts=None,
                      lumi_uncertainty: float | None = None, nuisance_bounds=(-5.0, 5.0),
                      fixed: Mapping[str, float] | None = None) -> "BinnedTerm":
        """Templates from an EventSet histogrammed in one or two observables of its ``x``.

        Args:
            bins: observable name → bin edges (1 or 2 observables); events outside are dropped.
            pois: operator → bounds (default every operator, bounds (−10, 10)).
            counts: observed counts (flattened over the bins, C order); default the Asimov counts at the SM.
            fixed: operators held at given values (TeV⁻²) instead of 0 — the templates are built on that
                slice (:meth:`~sbihep.events.eventset.EventSet.restrict`) and these operators are no
                parameters of the term.
        """
        if fixed:
            eventset = eventset.restrict([op for op in eventset.operators if op not in fixed], fixed)
        if not 1 <= len(bins) <= 2:
            raise InvalidInputError(f"BinnedTerm.from_eventset: bins must name 1 or 2 observables, got {list(bins)}")
        x = eventset.observables()
        known = [str(o) for o in x["observable"].values]
        edges = {}
        for name, e in bins.items():
            if name not in known:
                raise UnknownParameterError(f"BinnedTerm.from_eventset: bins name the observable {name!r}, which the EventSet does not have"
                                            f"{did_you_mean(name, known)}; it has {known}")
            try:
                edges[name] = np.asarray(e, dtype=float)
            except (TypeError, ValueError):
                raise InvalidInputError(f"BinnedTerm.from_eventset: the bin edges of {name!r} must be numbers, got {e!r}") from None
            if edges[name].ndim != 1 or edges[name].size < 2 or not np.all(np.isfinite(edges[name])) or np.any(np.diff(edges[name]) <= 0):
                raise InvalidInputError(f"BinnedTerm.from_eventset: the bin edges of {name!r} must be ≥ 2 finite, strictly increasing "
                                        f"numbers, got {e!r}")
        index = np.zeros(eventset.n_events, dtype=np.int64)
        inside = np.ones(eventset.n_events, dtype=bool)
        n_total = 1
        for name, e in edges.items():
            v = np.asarray(x.sel(observable=name).values)
            i = np.searchsorted(e, v, side="right") - 1
            inside &= (i >= 0) & (i < len(e) - 1)
            index = index * (len(e) - 1) + np.clip(i, 0, len(e) - 2)
            n_total *= len(e) - 1
        coeff = np.asarray(eventset.data["eft"].values)[inside]
        idx = index[inside]

        def binned(c):
            out = np.zeros((n_total, c.shape[1]))
            np.add.at(out, idx, c)
            return out

        nuis = list(eventset.nuisances)
        up = down = None
        if nuis:
            var = eventset.data["eft_variations"]
            up = np.stack([binned(np.asarray(var.sel(variation=eventset.nuisances[k][0]).values)[inside]) for k in nuis], axis=1)
            down = np.stack([binned(np.asarray(var.sel(variation=eventset.nuisances[k][1]).values)[inside]) for k in nuis], axis=1)
        pois = pois or {op: (-10.0, 10.0) for op in eventset.operators}
        space = ParameterSpace([Parameter(op, 0.0, tuple(b), unit="TeV^-2") for op, b in pois.items()])
        space = space.merge(eventset.nuisance_space(nuisance_bounds))
        c = binned(coeff)
        term = cls(np.zeros(n_total), c, eventset.operators, eventset.order, space, lumi_ifb, up=up, down=down,
                   nuisances=nuis, lumi_uncertainty=lumi_uncertainty, edges=edges,
                   fixed_operators=getattr(eventset, "fixed_operators", {}))
        return term.asimov(term.parameters.sm_point()) if counts is None else term.with_counts(counts)

    def expected(self, theta: Mapping[str, float]) -> np.ndarray:
        """ν_b(θ, ν), (B,) expected events."""
        ops = np.array([float(theta.get(o, 0.0)) for o in self.operators])
        m = eft_math.monomials(ops, self.order).numpy()
        nominal = self.coefficients @ m
        log_factor = np.zeros_like(nominal)
        for k, name in enumerate(self.nuisances):
            nu = float(theta.get(name, 0.0))
            if nu:
                log_up = np.log(self.up[:, k] @ m / nominal)
                log_down = np.log(self.down[:, k] @ m / nominal)
                log_factor += 0.5 * (log_up - log_down) * nu + 0.5 * (log_up + log_down) * nu * nu
        kappa = 1.0 if self.lumi_uncertainty is None else (1.0 + self.lumi_uncertainty) ** float(theta["lumi"])
        return 1000.0 * self.lumi_ifb * kappa * nominal * np.exp(log_factor)

    def nll(self, theta: Mapping[str, float]) -> float:
        """Σ_b ν_b − n_b ln ν_b."""
        nu = self.expected(theta)
        if not np.all(nu > 0):
            raise InvalidInputError(f"BinnedTerm: non-positive expected yields at {dict(theta)} (empty bins? use wider bins)")
        return float(np.sum(nu - self.counts * np.log(nu)))

    def with_counts(self, counts) -> "BinnedTerm":
        return BinnedTerm(counts, self.coefficients, self.operators, self.order, self.model_parameters, self.lumi_ifb,
                          up=self.up, down=self.down, nuisances=self.nuisances,
                          lumi_uncertainty=self.lumi_uncertainty, edges=self.edges, fixed_operators=self.fixed_operators)

    def asimov(self, theta: Mapping[str, float]) -> "BinnedTerm":
        return self.with_counts(self.expected(theta))

    def toy(self, theta: Mapping[str, float], rng: np.random.Generator) -> "BinnedTerm":
        return self.with_counts(rng.poisson(self.expected(theta)).astype(np.float64))

    def __repr__(self) -> str:
        held = f", fixed={self.fixed_operators}" if self.fixed_operators else ""
        return f"BinnedTerm({len(self.counts)} bins in {list(self.edges)}, parameters={list(self.parameters.names)}{held})"
