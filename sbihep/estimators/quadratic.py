"""Quadratic EFT classifier: the exact polynomial θ-dependence built into the network
(Chen, Glioti, Panico, Wulzer, "Parametrized classifiers for optimal EFT sensitivity", arXiv:2007.10356).

In an EFT truncated at order 1/Λ⁴ every differential cross section is a polynomial in the Wilson
coefficients, so the ratio to the SM is

    ρ(x|θ) = dσ(x|θ)/dσ(x|SM) = 1 + Σ_i θ_i α_i(x) + Σ_{i≤j} θ_i θ_j β_ij(x)      (quadratic order)

(only the α terms at linear order).  The network outputs the coefficient functions for one x, and
ρ̂(x|θ) is assembled from them with the monomials m(θ) of :mod:`sbihep.events.eft`, so its θ-dependence
is exact by construction and a training step costs the same for any number of θ points.  At
quadratic order the coefficients are the entries of a positive semi-definite form,
ρ̂ = m̃ᵀ L Lᵀ m̃ with m̃ = (1, θ) and L lower triangular with L₀₀ = 1, so that ρ̂ ≥ 0 for every θ
and ρ̂(x|SM) = 1 exactly (one operator: ρ̂ = (1 + θ a)² + (θ b)², the paper's form).

Training uses the exact per-event weights of an :class:`~sbihep.events.eventset.EventSet`,
w_e(θ) = c_e·m(θ), at a set of θ points θ_k.  With f = ρ̂/(1 + ρ̂) the losses are (paper eq. 2.5, 2.9)

* ``quadratic``:     Σ_k Σ_e [ w_e(SM) f(x_e|θ_k)² + w_e(θ_k) (1 − f(x_e|θ_k))² ],
* ``cross_entropy``: Σ_k Σ_e [ −w_e(SM) log(1 − f) − w_e(θ_k) log f ],

both minimised by f = dσ(θ)/(dσ(θ) + dσ(SM)), i.e. ρ̂ = ρ.  The normalised likelihood ratio
follows with the sample's σ(θ) polynomial: log r̂(x|θ₀, θ₁) = log ρ̂(x|θ₀)/ρ̂(x|θ₁) − log σ(θ₀)/σ(θ₁).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP, PersistentEstimator, Standardize, as_features, as_theta, seeded_init
from sbihep.estimators.train import TrainingHistory, train
from sbihep.events import eft as eft_math
from sbihep.events.eventset import EventSet
from sbihep.params import ParameterSpace
from sbihep.physics.processes.base import check_order

__all__ = ["LOSSES", "QuadraticEFTClassifier", "polynomial_ratio", "quadratic_eft_loss"]

LOSSES = ("quadratic", "cross_entropy")
_EVAL_BATCH = 65536
_RHO_FLOOR = 1e-6  # linear order: ρ̂ can turn negative; the losses see at least this


def unit_lower_triangular(raw: torch.Tensor, size: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(B, n_out) → L (B, size, size), lower triangular with L₀₀ = 1 and ``raw`` at (rows, cols)."""
    L = torch.zeros(raw.shape[0], size, size, dtype=raw.dtype, device=raw.device)
    L[:, 0, 0] = 1.0
    L[:, rows, cols] = raw
    return L


def polynomial_ratio(raw: torch.Tensor, scaled_theta: torch.Tensor, order: str, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """The polynomial 1 + Σθα (+ Σθθβ) from unconstrained parameters, one θ per row.

    raw (B, n_out) as :class:`CoefficientNetwork` outputs them, scaled_theta (B, n) → (B,).  Linear order:
    1 + raw·θ.  Quadratic order: m̃ᵀ L Lᵀ m̃ with m̃ = (1, θ) and L lower triangular, L₀₀ = 1, the other
    entries ``raw`` at (rows, cols) — non-negative for every θ and exactly 1 at θ = 0.
    """
    if order == "linear":
        return 1.0 + (raw * scaled_theta).sum(-1)
    L = unit_lower_triangular(raw, scaled_theta.shape[-1] + 1, rows, cols)
    m = torch.cat([torch.ones_like(scaled_theta[:, :1]), scaled_theta], dim=-1)  # (B, n+1)
    return (torch.einsum("bi,bij->bj", m, L) ** 2).sum(-1)


class CoefficientNetwork(nn.Module):
    """x (B, n_features) → ρ̂(x|θ) for θ (K, n) as (B, K), and the polynomial coefficients (B, M).

    θ enters in units of ``theta_scale`` (a buffer: the largest |bound| of each parameter), which
    conditions the outputs without changing the polynomial structure.
    """

    def __init__(self, n_features: int, n_parameters: int, order: str, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.order = check_order(order)
        self.n = n_parameters
        self.x_norm = Standardize(n_features)
        self.register_buffer("theta_scale", torch.ones(n_parameters))
        n_out = n_parameters if order == "linear" else (n_parameters + 1) * (n_parameters + 2) // 2 - 1
        self.net = MLP(n_features, n_out, hidden, activation)
        if order == "quadratic":
            rows, cols = torch.tril_indices(n_parameters + 1, n_parameters + 1)
            keep = ~((rows == 0) & (cols == 0))
            self.register_buffer("tril_rows", rows[keep], persistent=False)
            self.register_buffer("tril_cols", cols[keep], persistent=False)

    def _cholesky(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, n_out) → L (B, n+1, n+1), lower triangular with L₀₀ = 1."""
        return unit_lower_triangular(raw, self.n + 1, self.tril_rows, self.tril_cols)

    def paired(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """ρ̂(x_b|θ_b) for one θ per event: x (B, n_features), θ (B, n) → (B,)."""
        return polynomial_ratio(self.net(self.x_norm(x)), theta / self.theta_scale, self.order, getattr(self, "tril_rows", None), getattr(self, "tril_cols", None))

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """ρ̂(x_b|θ_k): x (B, n_features), θ (K, n) → (B, K)."""
        raw = self.net(self.x_norm(x))
        scaled = theta / self.theta_scale
        if self.order == "linear":
            return 1.0 + raw @ scaled.T
        m = torch.cat([torch.ones_like(scaled[:, :1]), scaled], dim=-1)  # (K, n+1)
        v = torch.einsum("ki,bij->bkj", m, self._cholesky(raw))  # Lᵀ m̃ per (b, k)
        return (v**2).sum(-1)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M) coefficients of ρ̂ over the monomials m(θ) ("1", θ_i, θ_iθ_j for i ≤ j), in θ's own units."""
        raw = self.net(self.x_norm(x))
        s = self.theta_scale
        ones = torch.ones_like(raw[:, :1])
        if self.order == "linear":
            return torch.cat([ones, raw / s], dim=-1)
        L = self._cholesky(raw)
        A = L @ L.transpose(1, 2)  # ρ̂ = m̃ᵀ A m̃ in scaled units
        alpha = 2.0 * A[:, 0, 1:] / s
        i, j = torch.triu_indices(self.n, self.n)
        beta = A[:, 1 + i, 1 + j] * torch.where(i == j, 1.0, 2.0).to(A.dtype) / (s[i] * s[j])
        return torch.cat([ones, alpha, beta], dim=-1)

    def scaled_form(self, coefficients: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`coefficients` for one polynomial: coefficients (M,) over m(θ) in θ's own
        units, the constant term 1 → the symmetric A (n+1, n+1) with ρ = m̃ᵀ A m̃, m̃ = (1, θ/theta_scale)
        (quadratic order)."""
        c = torch.as_tensor(coefficients, dtype=torch.float64)
        s = self.theta_scale.double()
        n = self.n
        A = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        A[0, 0] = c[0]
        A[0, 1:] = A[1:, 0] = c[1 : n + 1] * s / 2
        i, j = torch.triu_indices(n, n)
        values = c[n + 1 :] * s[i] * s[j] / torch.where(i == j, 1.0, 2.0).double()
        A[1 + i, 1 + j] = values
        A[1 + j, 1 + i] = values
        return A


def quadratic_eft_loss(loss: str, thetas: torch.Tensor, order: str, normalisation: torch.Tensor):
    """loss(model, batch) over the θ points ``thetas`` (K, n).

    batch: x (B, n_features) and c (B, M) per-event coefficients (scaled so that the mean SM weight
    is 1); ``normalisation`` (K,) divides each θ point's term (its mean w(SM) + w(θ_k)).
    """
    if loss not in LOSSES:
        raise InvalidInputError(f"loss must be one of {LOSSES}, got {loss!r}")
    monomials = eft_math.monomials(thetas, order).to(torch.float32)  # (K, M)
    thetas = thetas.to(torch.float32)
    normalisation = normalisation.to(torch.float32)

    def value(model: CoefficientNetwork, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        c = batch["c"]
        w_sm = c[:, :1]  # (B, 1)
        w_theta = c @ monomials.to(c.device).T  # (B, K)
        rho = model(batch["x"], thetas.to(c.device)).clamp_min(_RHO_FLOOR)
        if loss == "quadratic":
            f = rho / (1.0 + rho)
            per = w_sm * f**2 + w_theta * (1.0 - f) ** 2
        else:
            log_rho = torch.log(rho)
            per = w_sm * F.softplus(log_rho) + w_theta * F.softplus(-log_rho)
        return (per / normalisation.to(c.device)).mean()

    return value


def _component_columns(source_operators: Sequence[str], source_order: str, operators: Sequence[str], order: str) -> list[int]:
    """Column of each monomial of (operators, order) among those of (source_operators, source_order)."""
    def key(name: str) -> tuple[str, ...]:
        return tuple(sorted(name.split("*"))) if name != "1" else ()

    source = {key(n): k for k, n in enumerate(eft_math.monomial_names(list(source_operators), source_order))}
    columns = []
    for name in eft_math.monomial_names(list(operators), order):
        if key(name) not in source:
            raise InvalidInputError(
                f"events: the EventSet ({source_order} order, operators {list(source_operators)}) has no component {name!r} "
                f"needed at {order} order"
            )
        columns.append(source[key(name)])
    return columns


class QuadraticEFTClassifier(PersistentEstimator):
    """Parametrised classifier with the exact EFT polynomial structure (see the module docstring).

    Args:
        observables: names of the features x, in column order.
        space: the Wilson coefficients θ (names as in the EventSet; bounds = training range).
        order: "quadratic" (α and β) or "linear" (α only; interference-only weights).
        hidden, activation, seed: network shape and initial-weight seed.
    """

    kind = "quadratic_eft"

    def __init__(
        self,
        observables: Sequence[str],
        space: ParameterSpace,
        *,
        order: str = "quadratic",
        hidden: Sequence[int] = (64, 64),
        activation: str = "silu",
        seed: int = 0,
    ) -> None:
        self._init_common(observables, space, hidden, activation, seed)
        self.order = check_order(order)
        self.loss: str | None = None
        self.training: dict = {}
        self.sigma_coefficients: list[float] | None = None
        self.network = seeded_init(lambda: CoefficientNetwork(len(self.observables), len(space), self.order, self.hidden, activation), self.seed)
        scale = [max(abs(p.bounds[0]), abs(p.bounds[1])) for p in space]
        self.network.theta_scale.copy_(torch.tensor([s if np.isfinite(s) and s > 0 else 1.0 for s in scale]))

    @property
    def components(self) -> list[str]:
        """Monomial names of the coefficients: "1", θ_i, "θ_i*θ_j" (i ≤ j, quadratic order)."""
        return eft_math.monomial_names(list(self.space.names), self.order)

    # ---- training ------------------------------------------------------------------------
    def default_thetas(self) -> np.ndarray:
        """The 3ⁿ grid over the bounds without the SM point, (3ⁿ − 1, n)."""
        axes = [np.array([p.bounds[0], p.sm_value, p.bounds[1]]) for p in self.space]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
        return grid[np.abs(grid - self.space.to_vector()).sum(1) > 0]

    def fit(self, events: EventSet, *, thetas=None, loss: str = "quadratic", fixed: Mapping[str, float] | None = None,
            **train_options) -> TrainingHistory:
        """Train on the exact per-event weights of ``events`` at the θ points ``thetas``.

        Args:
            events: EventSet with the observables of this estimator in ``x`` and EFT coefficients
                covering this estimator's operators at (at least) its order; weighted or unweighted.
            thetas: (K, n) training points in ``space`` order (default :meth:`default_thetas`).
            loss: "quadratic" or "cross_entropy".
            fixed: values (TeV⁻²) at which operators of ``events`` that are not parameters of this
                estimator are held (default 0, the SM); recorded in :attr:`fixed_parameters`.
            train_options: passed to :func:`sbihep.estimators.train.train` (epochs, batch_size,
                learning_rate, seed, device="auto", quiet, checkpoint, …).
        """
        if loss not in LOSSES:
            raise InvalidInputError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not isinstance(events, EventSet):
            raise InvalidInputError(f"events must be an EventSet, got {type(events).__name__}")
        unknown = sorted(set(self.space.names) - set(events.operators))
        if unknown:
            raise InvalidInputError(f"events: the EventSet has no operator(s) {unknown} (it has {events.operators})")
        held_names = [op for op in events.operators if op not in self.space.names]
        if fixed:
            bad = sorted(set(fixed) - set(held_names))
            if bad:
                raise InvalidInputError(f"fixed: {bad} are not operators of the EventSet outside the estimator's parameters ({held_names})")
            events = events.restrict([op for op in events.operators if op in self.space.names], fixed)
        held = {**events.fixed_operators, **{op: 0.0 for op in events.operators if op not in self.space.names}}
        grid = self.default_thetas() if thetas is None else np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.ndim != 2 or grid.shape[1] != len(self.space) or len(grid) == 0:
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}) for parameters {list(self.space.names)}, got {grid.shape}")
        if not np.isfinite(grid).all():
            raise InvalidInputError("thetas: contains NaN or infinite values")
        x_all = events.observables()
        missing = sorted(set(self.observables) - set(map(str, x_all["observable"].values)))
        if missing:
            raise InvalidInputError(f"events: observables {missing} are not in the EventSet's x")
        x = np.asarray(x_all.sel(observable=self.observables).values, dtype=np.float64)
        columns = _component_columns(events.operators, events.order, self.space.names, self.order)
        c = events.coefficients()[:, columns]
        if not (c[:, 0] > 0).all():
            raise InvalidInputError(f"events: {int((c[:, 0] <= 0).sum())} events have a non-positive SM weight; ρ = w(θ)/w(SM) is undefined")
        theta_t = torch.as_tensor(grid)
        w_theta = c @ eft_math.monomials(theta_t, self.order).T  # (N, K)
        if (w_theta < 0).any():
            bad = np.flatnonzero((w_theta < 0).any(0).numpy())
            raise InvalidInputError(f"thetas: event weights are negative at the training points {grid[bad].tolist()} (linear order far from the SM?)")
        scale = float(c[:, 0].mean())
        c = c / scale
        normalisation = (c[:, :1] + w_theta / scale).mean(0)
        tensors = {"x": torch.as_tensor(x), "c": c}
        if not torch.isfinite(tensors["x"]).all():
            raise InvalidInputError("events: the observables contain NaN or infinite values")
        self.network.x_norm.fit(tensors["x"])
        self.loss = loss
        self.sigma_coefficients = [float(v) for v in events.sigma_coefficients()[columns]]
        self.training = {"n_events": int(events.n_events), "thetas": grid.tolist(), "fixed_parameters": held}
        self.training.update({k: v for k, v in train_options.items() if isinstance(v, (int, float, str, bool))})
        objective = quadratic_eft_loss(loss, theta_t, self.order, normalisation)
        return train(self.network, objective, tensors, fingerprint=self.config(), **train_options)

    # ---- evaluation ----------------------------------------------------------------------
    def coefficients(self, x) -> xr.DataArray:
        """ρ̂'s coefficients (α̂, β̂) per event: DataArray (event, component), component "1" ≡ 1."""
        xt = as_features(x, len(self.observables))
        with torch.no_grad():
            out = [self.network.coefficients(xt[s : s + _EVAL_BATCH]) for s in range(0, len(xt), _EVAL_BATCH)]
        values = torch.cat(out).double().numpy() if out else np.zeros((0, len(self.components)))
        return xr.DataArray(values, dims=("event", "component"), coords={"component": self.components}, name="eft_coefficients")

    def log_dsigma_ratio(self, x, theta) -> np.ndarray:
        """log ρ̂(x|θ) = log dσ(x|θ)/dσ(x|SM), unnormalised, (N,); θ a mapping, (n,) or (N, n).
        −inf where ρ̂ ≤ 0 (possible at linear order only)."""
        coeffs = torch.as_tensor(self.coefficients(x).values)
        th = as_theta(theta, self.space, len(coeffs)).double()
        rho = (coeffs * eft_math.monomials(th, self.order)).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(rho.numpy() > 0, np.log(np.abs(rho.numpy())), -np.inf)

    def log_sigma_ratio(self, theta0, theta1=None) -> float:
        """log σ(θ₀)/σ(θ₁) from the training sample's σ(θ) polynomial."""
        if self.sigma_coefficients is None:
            raise InvalidInputError("the estimator is not trained: no σ(θ) polynomial yet")
        sig = torch.tensor(self.sigma_coefficients, dtype=torch.float64)
        values = []
        for theta in (theta0, self.space.sm_point() if theta1 is None else theta1):
            th = as_theta(theta, self.space, 1).double()
            values.append(float(eft_math.monomials(th, self.order)[0] @ sig))
        if min(values) <= 0:
            raise InvalidInputError(f"σ(θ) is not positive at {theta0} or {theta1} (linear order far from the SM)")
        return float(np.log(values[0] / values[1]))

    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """Normalised log r̂(x|θ₀, θ₁) = log p(x|θ₀)/p(x|θ₁), (N,); θ₁ default SM (θ as single points)."""
        log0 = self.log_dsigma_ratio(x, theta0)
        log1 = 0.0 if theta1 is None else self.log_dsigma_ratio(x, theta1)
        return log0 - log1 - self.log_sigma_ratio(theta0, theta1)

    def log_ratio_grid(self, x, thetas, theta1=None) -> xr.DataArray:
        """log r̂(x_i|θ_k, θ₁) on a grid: thetas (K, n) → DataArray (theta, event); one network pass for all θ."""
        grid = np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.shape[1] != len(self.space):
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}), got {grid.shape}")
        coeffs = self.coefficients(x).values  # (N, M)
        as_theta(grid, self.space, len(grid), "thetas")  # bounds check (warns when extrapolating)
        rho = eft_math.monomials(torch.as_tensor(grid), self.order).numpy() @ coeffs.T  # (K, N)
        ref = np.zeros(len(coeffs)) if theta1 is None else self.log_dsigma_ratio(x, theta1)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_rho = np.where(rho > 0, np.log(np.abs(rho)), -np.inf)
        values = np.stack([log_rho[k] - ref - self.log_sigma_ratio(row, theta1) for k, row in enumerate(grid)])
        coords = {name: ("theta", grid[:, j]) for j, name in enumerate(self.space.names)}
        return xr.DataArray(values, dims=("theta", "event"), coords=coords, name="log_r_hat")

    # ---- persistence ---------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "kind": self.kind,
            "method": "quadratic_eft",
            "order": self.order,
            "loss": self.loss,
            "observables": self.observables,
            "space": self.space.to_dict(),
            "sigma_coefficients": self.sigma_coefficients,
            "network": {"hidden": self.hidden, "activation": self.activation, "seed": self.seed},
            "preprocessing": "standardise x; θ in units of its largest |bound| (buffers in the state_dict)",
            "training": self.training,
        }

    @classmethod
    def _init_options(cls, config) -> dict:
        return {"order": config["order"]}

    def _restore(self, config) -> None:
        self.loss, self.training = config.get("loss"), config.get("training", {})
        self.sigma_coefficients = config.get("sigma_coefficients")

    def __repr__(self) -> str:
        held = f", fixed={self.fixed_parameters}" if self.fixed_parameters else ""
        return (f"QuadraticEFTClassifier(order={self.order!r}, loss={self.loss!r}, observables={len(self.observables)}, "
                f"parameters={list(self.space.names)}{held}, hidden={self.hidden})")
