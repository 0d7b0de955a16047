"""Parametrised likelihood-ratio estimators r̂(x|θ₀, θ₁) ≈ p(x|θ₀)/p(x|θ₁).

One network family, six losses (Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013, 1805.00020;
Stoye et al., arXiv:1808.00973).  With the sample conventions of
:func:`sbihep.events.augment.ratio_training_sample` (y = 0: x ~ θ₀, y = 1: x ~ θ₁;
r(x,z) = p(x,z|θ₀)/p(x,z|θ₁); t(x,z|θ) = ∇_θ log p(x,z|θ)), and ŝ = 1/(1 + r̂):

* ``carl``   cross-entropy of ŝ against y;
* ``alice``  cross-entropy of ŝ against the improved label s(x,z) = 1/(1 + r(x,z));
* ``rolr``   y |r̂ − r(x,z)|² + (1 − y) |1/r̂ − 1/r(x,z)|²;
* ``rascal`` = rolr  + α · score term,
* ``alices`` = alice + α · score term,
* ``cascal`` = carl  + α · score term,

score term = (1 − y) |∇_θ₀ log r̂ − t(x,z|θ₀)|² (+ y |−∇_θ₁ log r̂ − t(x,z|θ₁)|² when θ₁ varies,
i.e. doubly parametrised).  On weighted samples (every event at several θ₀, no resampling) each row
enters both classes: (1 − y) and y are replaced by the row's weights under θ₀ and θ₁.  Each regression target is unbiased for the quantity it trains, because
E[r(x,z)|x, θ₁] = r(x) and E[t(x,z|θ₀)|x, θ₀] = t(x|θ₀).

The network is antisymmetric by construction, log r̂(x|θ₀, θ₁) = g(x, θ₀) − g(x, θ₁), so that
r̂(x|θ, θ) = 1 exactly and singly (θ₁ fixed) and doubly parametrised training share one model.

Two architectures for the potential g:

* ``"mlp"``: g(x, θ) is an MLP on the standardised (x, θ) — it has to learn how θ enters;
* ``"morphing"`` (morphing-aware, for EFT parameters; 1805.00020 discusses this parametrisation):
  g(x, θ) = log ρ̂(x|θ) − log Ẑ(θ), with ρ̂(x|θ) = dσ(x|θ)/dσ(x|SM) the polynomial in θ whose
  coefficient functions an MLP of x outputs (as the quadratic EFT classifier's, positive semi-definite at
  quadratic order) and Ẑ(θ) = σ(θ)/σ(SM) a polynomial of the same order with learned coefficients.
  Every loss above trains it unchanged; the θ-dependence of the exact ratio is then exact by construction,
  and only functions of x are learned.  It presumes the SM point is θ = 0 (θ enters as a polynomial
  around it), as for Wilson coefficients.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import (
    MLP,
    PersistentEstimator,
    Standardize,
    as_features,
    as_theta,
    check_sample_labels,
    sample_fixed_parameters,
    seeded_init,
)
from sbihep.estimators.quadratic import CoefficientNetwork, polynomial_ratio
from sbihep.estimators.train import TrainingHistory, train
from sbihep.events.eft import monomial_names, n_monomials, restrict_coefficients
from sbihep.params import ParameterSpace
from sbihep.physics.processes.base import check_order

__all__ = ["ARCHITECTURES", "METHODS", "NORMALISATIONS", "SCORE_METHODS", "RatioEstimator", "ratio_loss"]

ARCHITECTURES = ("mlp", "morphing")

METHODS = ("carl", "rolr", "rascal", "alice", "alices", "cascal")
#: methods whose loss differentiates the network output in θ (second derivatives in training)
SCORE_METHODS = ("rascal", "alices", "cascal")
_EVAL_BATCH = 65536


class LogRatioNetwork(nn.Module):
    """log r̂(x|θ₀, θ₁) = g(x, θ₀) − g(x, θ₁) with g an MLP on standardised (x, θ).

    Shapes: x (B, n_features), θ₀ and θ₁ (B, n_parameters) → (B,).
    """

    def __init__(self, n_features: int, n_parameters: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.x_norm = Standardize(n_features)
        self.theta_norm = Standardize(n_parameters)
        self.g = MLP(n_features + n_parameters, 1, hidden, activation)

    def fit_preprocessing(self, x: torch.Tensor, thetas: torch.Tensor) -> None:
        """Standardisation statistics from the training features x (N, n_features) and θ values (M, n)."""
        self.x_norm.fit(x)
        self.theta_norm.fit(thetas)

    def potential(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return self.g(torch.cat([self.x_norm(x), self.theta_norm(theta)], dim=-1)).squeeze(-1)

    def forward(self, x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor) -> torch.Tensor:
        both = self.potential(torch.cat([x, x]), torch.cat([theta0, theta1]))  # one pass for both terms
        g0, g1 = both.chunk(2)
        return g0 - g1


class MorphingLogRatioNetwork(nn.Module):
    """log r̂(x|θ₀, θ₁) = g(x, θ₀) − g(x, θ₁) with g(x, θ) = log ρ̂(x|θ) − log Ẑ(θ) (morphing-aware).

    ρ̂ comes from a :class:`~sbihep.estimators.quadratic.CoefficientNetwork` (θ in units of
    ``theta_scale``, the largest |bound| per parameter); Ẑ(θ) = σ(θ)/σ(SM) has the same polynomial form
    with free coefficients (initialised to Ẑ ≡ 1).  Shapes as :class:`LogRatioNetwork`.
    """

    _FLOOR = 1e-6  # linear order: ρ̂ and Ẑ can turn negative; the logarithm sees at least this

    def __init__(self, n_features: int, n_parameters: int, order: str, hidden: Sequence[int], activation: str, theta_scale: torch.Tensor) -> None:
        super().__init__()
        self.rho = CoefficientNetwork(n_features, n_parameters, order, hidden, activation)
        self.rho.theta_scale.copy_(theta_scale)
        n_out = self.rho.net[-1].out_features
        self.log_sigma_raw = nn.Parameter(torch.zeros(n_out))

    @property
    def x_norm(self) -> Standardize:
        return self.rho.x_norm

    def fit_preprocessing(self, x: torch.Tensor, thetas: torch.Tensor) -> None:
        """Standardisation of x (N, n_features); θ keeps its fixed scale (the polynomial needs θ = 0 at the SM)."""
        self.rho.x_norm.fit(x)

    def log_sigma_ratio(self, theta: torch.Tensor) -> torch.Tensor:
        """log Ẑ(θ) = log σ̂(θ)/σ̂(SM): θ (B, n) → (B,)."""
        raw = self.log_sigma_raw.expand(theta.shape[0], -1)
        rows, cols = getattr(self.rho, "tril_rows", None), getattr(self.rho, "tril_cols", None)
        z = polynomial_ratio(raw, theta / self.rho.theta_scale, self.rho.order, rows, cols)
        return torch.log(z.clamp_min(self._FLOOR))

    def potential(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return torch.log(self.rho.paired(x, theta).clamp_min(self._FLOOR)) - self.log_sigma_ratio(theta)

    @torch.no_grad()
    def set_sigma_from_sm_sample(self, x_sm: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Ẑ(θ) := mean of ρ̂(x|θ) over x (N, n_features) drawn at the SM (or weighted by ``weights`` (N,) to
        the SM) — the normalisation that makes ∫ r̂(x|θ, SM) p(x|SM) dx = 1 on that sample, for every θ
        at once (ρ̂ is linear in its coefficients)."""
        raw = torch.cat([self.rho.net(self.rho.x_norm(x_sm[s : s + 65536])) for s in range(0, len(x_sm), 65536)])
        p = torch.full((len(raw),), 1.0 / len(raw)) if weights is None else (weights / weights.sum()).to(raw.dtype)
        if self.rho.order == "linear":
            self.log_sigma_raw.copy_(p @ raw)
            return
        L = self.rho._cholesky(raw)
        self._set_sigma_form(torch.einsum("n,nij->ij", p, L @ L.transpose(1, 2)))  # the mean of PSD forms, A₀₀ = 1

    def _set_sigma_form(self, A: torch.Tensor) -> None:
        """Ẑ(θ) := m̃ᵀ A m̃ (m̃ = (1, θ/scale), A₀₀ = 1): its Cholesky factor into the raw coefficients."""
        L, info = torch.linalg.cholesky_ex(A.double() + 1e-9 * torch.eye(len(A), dtype=torch.float64))
        if info != 0:
            raise InvalidInputError("sigma: σ(θ) is not a positive semi-definite quadratic form in (1, θ)")
        self.log_sigma_raw.copy_((L[self.rho.tril_rows, self.rho.tril_cols] / L[0, 0]).to(self.log_sigma_raw.dtype))

    @torch.no_grad()
    def set_sigma_polynomial(self, coefficients: torch.Tensor) -> None:
        """Ẑ(θ) := σ(θ)/σ(SM) from the coefficients (M,) of σ(θ) over the monomials m(θ) ("1", θ_i, θ_iθ_j for
        i ≤ j, in θ's own units; any overall unit, e.g. pb) — the exact normalisation when the events'
        cross section is known, as for the quadratic EFT classifier.

        Raises:
            InvalidInputError: σ(SM) ≤ 0, a coefficient count that is not this order's, or (quadratic order)
                a σ(θ) that is not a positive semi-definite form in (1, θ).
        """
        c = torch.as_tensor(coefficients, dtype=torch.float64).flatten()
        s = self.rho.theta_scale.double()
        n, order = len(s), self.rho.order
        expected = n_monomials(n, order)
        if len(c) != expected:
            raise InvalidInputError(f"sigma coefficients: expected {expected} at {order} order for {n} parameters, got {len(c)}")
        if not torch.isfinite(c).all() or c[0] <= 0:
            raise InvalidInputError(f"sigma coefficients: σ(SM) = {float(c[0])!r} must be finite and positive")
        c = c / c[0]
        if order == "linear":
            self.log_sigma_raw.copy_((c[1:] * s).to(self.log_sigma_raw.dtype))
            return
        self._set_sigma_form(self.rho.scaled_form(c))

    def forward(self, x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor) -> torch.Tensor:
        both = self.potential(torch.cat([x, x]), torch.cat([theta0, theta1]))
        g0, g1 = both.chunk(2)
        return g0 - g1


#: how a morphing-aware ratio network gets Ẑ(θ) = σ(θ)/σ(SM) (see :meth:`RatioEstimator.fit`)
NORMALISATIONS = ("sm_sample", "cross_section", "learned")


def ratio_loss(method: str, *, alpha: float = 1.0, doubly: bool = False, log_r_clip: float = 10.0, score_scale: torch.Tensor | None = None):
    """The loss(model, batch) of one method (see the module docstring); batch keys as in the training Dataset.

    ``score_scale`` (n_parameters,): the score term compares (∇_θ log r̂ − t)·score_scale, i.e. the scores
    in units of 1/score_scale (default 1: the raw units of θ)."""
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    with_score = method in SCORE_METHODS

    def loss(model: LogRatioNetwork, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        weighted = "weight0" in batch
        theta0 = batch["theta0"].detach().requires_grad_(with_score)
        theta1 = batch["theta1"].detach().requires_grad_(with_score and doubly)
        log_r = model(batch["x"], theta0, theta1)
        # per row: the weight of its "x ~ θ₀" (y = 0) and "x ~ θ₁" (y = 1) parts
        w0, w1 = (batch["weight0"], batch["weight1"]) if weighted else (1 - batch["y"], batch["y"])
        if method in ("carl", "cascal", "alice", "alices"):
            if method in ("alice", "alices"):
                label = torch.sigmoid(-batch["log_r_xz"])
            else:
                label = w1 / (w0 + w1).clamp_min(1e-30)  # y, or its average over the two classes of a weighted row
            value = ((w0 + w1) * F.binary_cross_entropy_with_logits(-log_r, label, reduction="none")).mean()
        else:
            # ratios clipped at e^±clip so that single extreme events cannot dominate the squared error
            r_hat = torch.exp(log_r.clamp(-log_r_clip, log_r_clip))
            r_xz = torch.exp(batch["log_r_xz"].clamp(-log_r_clip, log_r_clip))
            value = (w1 * (r_hat - r_xz) ** 2 + w0 * (1 / r_hat - 1 / r_xz) ** 2).mean()
        if with_score:
            inputs = [theta0, theta1] if doubly else [theta0]
            grads = torch.autograd.grad(log_r.sum(), inputs, create_graph=True)
            scale = 1.0 if score_scale is None else score_scale.to(log_r)
            term = w0 * (((grads[0] - batch["t_xz0"]) * scale) ** 2).sum(-1)
            if doubly:
                term = term + w1 * (((-grads[1] - batch["t_xz1"]) * scale) ** 2).sum(-1)
            value = value + alpha * term.mean()
        return value

    return loss


class RatioEstimator(PersistentEstimator):
    """A parametrised ratio estimator for one set of observables and one parameter space.

    Args:
        observables: names of the features x, in column order.
        space: the parameters θ; their bounds are the training bounds (evaluating outside warns).
        hidden: widths of the hidden layers.
        activation: "tanh" (default; smooth, as the score losses need), "silu", "softplus" or "relu".
        seed: seeds the initial weights.
        architecture: "mlp" (default; any parameters) or "morphing" (EFT parameters whose SM value is 0:
            the exact polynomial θ-dependence is built in, see the module docstring).
        order: "quadratic" or "linear" — the EFT order of the morphing architecture (ignored for "mlp").
    """

    kind = "ratio"

    def __init__(
        self,
        observables: Sequence[str],
        space: ParameterSpace,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        seed: int = 0,
        architecture: str = "mlp",
        order: str = "quadratic",
    ) -> None:
        self._init_common(observables, space, hidden, activation, seed)
        if architecture not in ARCHITECTURES:
            raise InvalidInputError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.architecture = architecture
        self.order = check_order(order)
        self.method: str | None = None
        self.training: dict = {}
        if architecture == "mlp":
            self.network = seeded_init(lambda: LogRatioNetwork(len(self.observables), len(space), self.hidden, activation), self.seed)
            return
        off_zero = [p.name for p in space if p.sm_value != 0.0]
        if off_zero:
            raise InvalidInputError(f"architecture='morphing' needs EFT parameters with SM value 0; {off_zero} have another SM value")
        scale = torch.tensor([max(abs(p.bounds[0]), abs(p.bounds[1])) for p in space], dtype=torch.float64)
        scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale)).float()
        self.network = seeded_init(
            lambda: MorphingLogRatioNetwork(len(self.observables), len(space), self.order, self.hidden, activation, scale), self.seed
        )

    # ---- training ------------------------------------------------------------------------
    def fit(
        self,
        data: xr.Dataset,
        method: str,
        *,
        alpha: float = 1.0,
        score_units: str = "theta",
        log_r_clip: float = 10.0,
        normalisation: str = "sm_sample",
        **train_options,
    ) -> TrainingHistory:
        """Train on a ratio training sample (:func:`sbihep.events.augment.ratio_training_sample`), or a
        weighted one (:func:`sbihep.events.augment.weighted_ratio_training_sample`: every event at several
        θ₀, each row in both classes with weights weight0/weight1; validation split by event).

        Args:
            data: Dataset with x (sample, observable), theta0/theta1/t_xz0/t_xz1 (sample, parameter),
                log_r_xz and either y or weight0/weight1/event (sample); its observable and parameter
                labels must match this estimator.  A sample drawn from a prior over a subset of the
                events' operators has exactly that subset as its parameters; the operators it held
                (attrs ``fixed_parameters``) are recorded in :attr:`fixed_parameters`.
            method: one of :data:`METHODS`.
            alpha: weight of the score term (rascal, alices, cascal).
            score_units: ``"theta"`` — the score term in the raw units of θ (as in 1805.00020);
                ``"bounds"`` — each score component times the half-width of its parameter's training
                bounds, i.e. the change of log r across the box.  Parameters with very different
                ranges (e.g. cHq3 ∈ ±0.2 beside cHW ∈ ±1) otherwise let the narrowest parameter's
                large scores dominate the loss.
            log_r_clip: |log r| clip of the ROLR/RASCAL squared errors.
            normalisation: morphing architecture with θ₁ = SM throughout — where Ẑ(θ) = σ(θ)/σ(SM) comes from:
                ``"sm_sample"`` (default): learned with ρ̂, then reset to the mean of ρ̂(x|θ) over the
                sample's SM events (y = 1; in a weighted sample every event weighted by weight1), so that
                r̂(·|θ, SM) is normalised on them for every θ; ``"cross_section"``: the exact σ(θ)
                polynomial of the events the sample was drawn from (its ``sigma_coefficients`` attribute),
                fixed before training, so that only ρ̂ is learned — as the quadratic EFT classifier does;
                ``"learned"``: Ẑ as trained.
            train_options: passed to :func:`sbihep.estimators.train.train` (epochs, batch_size,
                learning_rate, seed, device="auto", quiet, checkpoint, …).
        """
        if method not in METHODS:
            raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
        tensors = self._training_tensors(data)
        weighted = "weight0" in tensors
        groups = tensors.pop("event").long() if weighted else None
        doubly = bool((tensors["theta1"] != tensors["theta1"][0]).any())
        if doubly and weighted:
            raise InvalidInputError("data: weighted samples have one fixed θ₁; doubly parametrised training needs a resampled sample")
        if normalisation not in NORMALISATIONS:
            raise InvalidInputError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        at_sm = bool((tensors["theta1"] == torch.as_tensor(self.space.to_vector(), dtype=tensors["theta1"].dtype)).all())
        fixed_sigma = self.architecture == "morphing" and normalisation == "cross_section"
        if fixed_sigma:
            if not at_sm:
                raise InvalidInputError("normalisation='cross_section' needs θ₁ = SM in every row of the sample")
            if "sigma_coefficients" not in data.attrs or data.attrs.get("eft_order") != self.order:
                raise InvalidInputError(
                    f"data: normalisation='cross_section' needs the sample's σ(θ) polynomial at {self.order} order "
                    f"(attrs sigma_coefficients and eft_order, written by sbihep.events.augment); this sample has "
                    f"eft_order={data.attrs.get('eft_order')!r}"
                )
            self.network.set_sigma_polynomial(self._sample_sigma_polynomial(data.attrs))
        self.network.fit_preprocessing(tensors["x"], torch.cat([tensors["theta0"], tensors["theta1"]]))
        self.method = method
        self.training = {"alpha": float(alpha), "log_r_clip": float(log_r_clip), "doubly": doubly,
                         "n_samples": int(len(tensors["theta0"])), "sample": "weighted" if weighted else "resampled",
                         "fixed_parameters": sample_fixed_parameters(data)}
        self.training.update({k: v for k, v in train_options.items() if isinstance(v, (int, float, str, bool))})
        if score_units not in ("theta", "bounds"):
            raise InvalidInputError(f"score_units must be 'theta' or 'bounds', got {score_units!r}")
        score_scale = None
        if score_units == "bounds":
            half = torch.tensor([(p.bounds[1] - p.bounds[0]) / 2 for p in self.space], dtype=torch.float64)
            if not torch.isfinite(half).all():
                raise InvalidInputError(f"score_units='bounds' needs finite bounds for every parameter: {[p.name for p in self.space]}")
            score_scale = half.float()
        self.training["score_units"] = score_units
        loss = ratio_loss(method, alpha=alpha, doubly=doubly, log_r_clip=log_r_clip, score_scale=score_scale)
        self.training["normalisation"] = normalisation if self.architecture == "morphing" else None
        if fixed_sigma:
            self.network.log_sigma_raw.requires_grad_(False)  # Ẑ is exact: train ρ̂ only
        try:
            history = train(self.network, loss, tensors, fingerprint=self.config(), groups=groups, **train_options)
        finally:
            if fixed_sigma:
                self.network.log_sigma_raw.requires_grad_(True)
        if self.architecture == "morphing" and normalisation == "sm_sample" and at_sm:
            if weighted:  # each event once (its first row), weighted to the SM
                first = torch.from_numpy(np.unique(groups.numpy(), return_index=True)[1])
                self.network.set_sigma_from_sm_sample(tensors["x"][first].float(), tensors["weight1"][first].float())
                self.training["normalised_on_sm_events"] = len(first)
            elif bool((tensors["y"] == 1).any()):
                self.network.set_sigma_from_sm_sample(tensors["x"][tensors["y"] == 1].float())
                self.training["normalised_on_sm_events"] = int((tensors["y"] == 1).sum())
        return history

    def _sample_sigma_polynomial(self, attrs) -> torch.Tensor:
        """The sample's σ(θ) coefficients over this estimator's parameters (other operators of the base
        events at the SM), from the attrs sigma_coefficients / sigma_operators."""
        c = torch.as_tensor(np.asarray(attrs["sigma_coefficients"], dtype=np.float64))
        operators = attrs.get("sigma_operators")
        if operators is None:  # a sample written before sigma_operators: its operators are the parameters
            return c
        operators = [str(o) for o in np.atleast_1d(operators)]
        missing = [p for p in self.space.names if p not in operators]
        if missing:
            raise InvalidInputError(f"data: the sample's σ(θ) polynomial is over {operators}; it does not know {missing}")
        return restrict_coefficients(c, operators, self.order, list(self.space.names))

    def _training_tensors(self, data: xr.Dataset) -> dict[str, torch.Tensor]:
        needed = ("x", "theta0", "theta1", "log_r_xz", "t_xz0", "t_xz1")
        needed += ("weight0", "weight1", "event") if "weight0" in data else ("y",)
        missing = [k for k in needed if k not in data]
        if missing:
            raise InvalidInputError(f"data: missing variables {missing} (expected a ratio training sample)")
        check_sample_labels(data, self.observables, self.space)
        out = {k: torch.as_tensor(np.asarray(data[k].values, dtype=np.float64)) for k in needed}
        for k, t in out.items():
            if not torch.isfinite(t).all():
                raise InvalidInputError(f"data[{k!r}] contains NaN or infinite values")
        if "weight0" in out and ((out["weight0"] < 0).any() or (out["weight1"] < 0).any()):
            raise InvalidInputError("data: weight0/weight1 must be non-negative")
        return out

    # ---- evaluation ----------------------------------------------------------------------
    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """log r̂(x|θ₀, θ₁), (N,).  x (N, n_features); θ a name→value mapping, (n,) or (N, n); θ₁ default SM."""
        xt = as_features(x, len(self.observables))
        th0 = as_theta(theta0, self.space, len(xt), "theta0")
        th1 = as_theta(self.space.sm_point() if theta1 is None else theta1, self.space, len(xt), "theta1")
        out = []
        with torch.no_grad():
            for s in range(0, len(xt), _EVAL_BATCH):
                out.append(self.network(xt[s : s + _EVAL_BATCH], th0[s : s + _EVAL_BATCH], th1[s : s + _EVAL_BATCH]))
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def log_ratio_grid(self, x, thetas, theta1=None) -> xr.DataArray:
        """log r̂(x_i|θ_k, θ₁) on a grid: thetas (K, n) → DataArray (theta, event) with θ coordinates per parameter."""
        grid = np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.shape[1] != len(self.space):
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}), got {grid.shape}")
        values = np.stack([self.log_ratio(x, row, theta1) for row in grid])
        coords = {name: ("theta", grid[:, j]) for j, name in enumerate(self.space.names)}
        return xr.DataArray(values, dims=("theta", "event"), coords=coords, name="log_r_hat")

    def coefficients(self, x) -> xr.DataArray:
        """Morphing architecture: ρ̂'s coefficients per event over the monomials m(θ) ("1", θ_i, θ_iθ_j for
        i ≤ j, θ in its own units), DataArray (event, component), so that
        log r̂(x|θ, SM) = log(c(x)·m(θ)) − log Ẑ(θ).  They do not depend on θ: a fit over many θ evaluates
        the network once per data set.

        Raises:
            InvalidInputError: the "mlp" architecture (no polynomial structure to expose).
        """
        if self.architecture != "morphing":
            raise InvalidInputError(f"coefficients() needs architecture='morphing'; this estimator is {self.architecture!r}")
        xt = as_features(x, len(self.observables))
        with torch.no_grad():
            out = [self.network.rho.coefficients(xt[s : s + _EVAL_BATCH]) for s in range(0, len(xt), _EVAL_BATCH)]
        names = monomial_names(list(self.space.names), self.order)
        values = torch.cat(out).double().numpy() if out else np.zeros((0, len(names)))
        return xr.DataArray(values, dims=("event", "component"), coords={"component": names}, name="eft_coefficients")

    def score(self, x, theta) -> np.ndarray:
        """t̂(x|θ) = ∇_θ log r̂(x|θ, θ₁), (N, n_parameters) — independent of θ₁ by construction."""
        xt = as_features(x, len(self.observables))
        th = as_theta(theta, self.space, len(xt))
        out = []
        for s in range(0, len(xt), _EVAL_BATCH):
            t = th[s : s + _EVAL_BATCH].clone().requires_grad_(True)
            g = self.network.potential(xt[s : s + _EVAL_BATCH], t)
            out.append(torch.autograd.grad(g.sum(), t)[0].detach())
        return torch.cat(out).double().numpy()

    # ---- persistence ---------------------------------------------------------------------
    def config(self) -> dict:
        """The JSON config (without the sbihep version, which :meth:`save` adds)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "observables": self.observables,
            "space": self.space.to_dict(),
            "network": {"hidden": self.hidden, "activation": self.activation, "seed": self.seed, "architecture": self.architecture, "order": self.order},
            "preprocessing": (
                "standardise x and theta (mean/std buffers in the state_dict)" if self.architecture == "mlp"
                else "standardise x; θ in units of its largest |bound| (buffers in the state_dict)"
            ),
            "training": self.training,
        }

    @classmethod
    def _init_options(cls, config) -> dict:
        net = config["network"]
        return {"architecture": net.get("architecture", "mlp"), "order": net.get("order", "quadratic")}

    def _restore(self, config) -> None:
        self.method, self.training = config.get("method"), config.get("training", {})

    def __repr__(self) -> str:
        held = f", fixed={self.fixed_parameters}" if self.fixed_parameters else ""
        return (f"RatioEstimator(method={self.method!r}, architecture={self.architecture!r}, observables={len(self.observables)}, "
                f"parameters={list(self.space.names)}{held}, hidden={self.hidden})")
