"""Exact per-event EFT dependence: event weights, σ(θ), joint likelihood ratio and joint score.

Every event i carries a coefficient vector c_i over the monomials m(θ) = (1, θ_1…θ_n, θ_iθ_j for
i ≤ j) (the column order of :meth:`~sbihep.physics.processes.base.EFTDecomposition.packed`), such
that its weight at any θ is

    w_i(θ) = c_i · m(θ)                        (pb; Σ_i w_i(θ) estimates σ(θ)).

The parton-level density of an event z (momenta, momentum fractions and subprocess) is
p(z|θ) = w_i(θ)/σ(θ) up to θ-independent factors (PDFs, flux and phase-space weights cancel in ratios), so

    joint likelihood ratio   r(z|θ₀, θ₁) = [w(θ₀)/σ(θ₀)] / [w(θ₁)/σ(θ₁)],
    joint score              t(z|θ)      = ∇_θ log p(z|θ) = c·∇m(θ)/(c·m(θ)) − C·∇m(θ)/(C·m(θ)),

with C the coefficient vector of σ(θ) (Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00020).
Everything here is torch and differentiable; θ of shape (n,) or (K, n).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.physics.processes.base import EFTOrder, check_order

__all__ = [
    "monomial_names",
    "n_monomials",
    "monomials",
    "restrict_coefficients",
    "fix_coefficients",
    "monomial_jacobian",
    "weights_at",
    "log_joint_ratio",
    "joint_score",
    "paired_log_joint_ratio",
    "paired_joint_score",
]


def n_monomials(n_operators: int, order: EFTOrder) -> int:
    return 1 + n_operators + (n_operators * (n_operators + 1) // 2 if check_order(order) == "quadratic" else 0)


def monomial_names(operators: Sequence[str], order: EFTOrder) -> list[str]:
    """"1", θ names, then "θ_i*θ_j" for i ≤ j (quadratic order only)."""
    names = ["1", *operators]
    if check_order(order) == "quadratic":
        n = len(operators)
        names += [f"{operators[i]}*{operators[j]}" for i in range(n) for j in range(i, n)]
    return names


def _checked(coefficients, operators, order, keep, who: str):
    """The coefficients as float64 and the monomial names, after checking ``keep`` and the last axis."""
    c = torch.as_tensor(coefficients, dtype=torch.float64)
    missing = [k for k in keep if k not in operators]
    if missing or len(set(keep)) != len(keep):
        raise InvalidInputError(f"{who}: keep {list(keep)} must be distinct names among {list(operators)}")
    names = monomial_names(operators, order)
    if c.shape[-1] != len(names):
        raise ShapeError(f"{who}: expected {len(names)} coefficients for {list(operators)} at {order} order, got {c.shape[-1]}")
    return c, names


def restrict_coefficients(coefficients, operators: Sequence[str], order: EFTOrder, keep: Sequence[str]) -> torch.Tensor:
    """Coefficients (..., M) over the monomials of ``operators`` → those (..., M') over the monomials of
    ``keep`` (in its order), the other operators held at the SM (θ = 0): c·m(θ) is unchanged for every θ
    that is zero outside ``keep``.

    Raises:
        InvalidInputError: a name in ``keep`` that is not one of ``operators``, or a repeated name.
        ShapeError: a last axis that is not the monomial count of ``operators`` at ``order``.
    """
    c, names = _checked(coefficients, operators, order, keep, "restrict_coefficients")
    column = {tuple(sorted(n.split("*"))): k for k, n in enumerate(names)}
    index = [column[tuple(sorted(n.split("*")))] for n in monomial_names(list(keep), order)]
    return c[..., index]


def fix_coefficients(
    coefficients, operators: Sequence[str], order: EFTOrder, keep: Sequence[str], fixed: Mapping[str, float] | None = None
) -> torch.Tensor:
    """Coefficients (..., M) over the monomials of ``operators`` → those (..., M') over the monomials of
    ``keep`` (in its order) on the slice where every other operator sits at its ``fixed`` value (default
    0, the SM): c'·m(θ_keep) = c·m(θ) for every θ with θ_k = fixed[k] outside ``keep``.

    At θ_other = 0 this is :func:`restrict_coefficients`; at other values the terms of the fixed operators
    fold into the kept monomials (e.g. c_{a*b} θ_a v_b adds v_b c_{a*b} to the coefficient of θ_a).

    Raises:
        InvalidInputError: a name in ``keep`` that is not one of ``operators`` or is repeated; a
            ``fixed`` name that is not an operator or is also kept; a fixed value that is not finite.
        ShapeError: a last axis that is not the monomial count of ``operators`` at ``order``.
    """
    fixed = dict(fixed or {})
    kept_and_fixed = sorted(set(fixed) & set(keep))
    unknown = sorted(set(fixed) - set(operators))
    if unknown or kept_and_fixed:
        raise InvalidInputError(f"fixed: {unknown or kept_and_fixed} {'are not operators of ' + str(list(operators)) if unknown else 'are also kept'}; "
                                "fix only operators outside keep")
    values = {}
    for name, value in fixed.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"fixed[{name!r}]: {value!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise InvalidInputError(f"fixed[{name!r}]: {value!r} is not finite")
    if not any(values.values()):
        return restrict_coefficients(coefficients, operators, order, keep)
    c, names = _checked(coefficients, operators, order, keep, "fix_coefficients")
    target = {(): 0}
    target.update({tuple(sorted(n.split("*"))): k for k, n in enumerate(monomial_names(list(keep), order)) if n != "1"})
    out = torch.zeros(c.shape[:-1] + (len(target),), dtype=torch.float64)
    for k, name in enumerate(names):
        factors = [] if name == "1" else name.split("*")
        constant = 1.0
        free = []
        for f in factors:
            if f in keep:
                free.append(f)
            else:
                constant *= values.get(f, 0.0)
        if constant != 0.0:
            out[..., target[tuple(sorted(free))]] += constant * c[..., k]
    return out


def _pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(n, n)
    return iu[0], iu[1]


def monomials(theta: torch.Tensor, order: EFTOrder) -> torch.Tensor:
    """m(θ): (..., n) → (..., M)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    ones = torch.ones(theta.shape[:-1] + (1,), dtype=theta.dtype)
    parts = [ones, theta]
    if check_order(order) == "quadratic":
        i, j = _pairs(theta.shape[-1])
        parts.append(theta[..., i] * theta[..., j])
    return torch.cat(parts, dim=-1)


def monomial_jacobian(theta: torch.Tensor, order: EFTOrder) -> torch.Tensor:
    """∂m/∂θ: (..., n) → (..., M, n), analytic."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    n = theta.shape[-1]
    batch = theta.shape[:-1]
    rows = [torch.zeros(batch + (1, n), dtype=theta.dtype), torch.eye(n, dtype=theta.dtype).expand(batch + (n, n))]
    if check_order(order) == "quadratic":
        i, j = _pairs(n)
        quad = torch.zeros(batch + (len(i), n), dtype=theta.dtype)
        k = torch.arange(len(i))
        quad[..., k, i] += theta[..., j]
        quad[..., k, j] += theta[..., i]
        rows.append(quad)
    return torch.cat(rows, dim=-2)


def _order_from_width(coefficients: torch.Tensor, n_operators: int) -> EFTOrder:
    width = coefficients.shape[-1]
    for order in ("linear", "quadratic"):
        if width == n_monomials(n_operators, order):
            return order  # type: ignore[return-value]
    raise ShapeError(
        f"coefficients have {width} columns, which fits neither linear ({n_monomials(n_operators, 'linear')}) nor "
        f"quadratic ({n_monomials(n_operators, 'quadratic')}) order for {n_operators} operators"
    )


def weights_at(coefficients: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """w(θ) = c · m(θ).  coefficients (N, M), θ (n,) → (N,); θ (K, n) → (K, N)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    order = _order_from_width(coefficients, theta.shape[-1])
    m = monomials(theta, order)
    return m @ coefficients.T if m.ndim == 2 else coefficients @ m


def _check_positive(values: torch.Tensor, what: str) -> None:
    if (values <= 0).any():
        raise InvalidInputError(
            f"{what} is not positive for some events/θ (linear-order weights can be negative far from the SM): "
            "the density p(z|θ) is undefined there; use quadratic order or a smaller θ"
        )


def log_joint_ratio(
    coefficients: torch.Tensor, sigma_coefficients: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor
) -> torch.Tensor:
    """log r(z|θ₀, θ₁) per event.  coefficients (N, M), sigma_coefficients (M,), θ (n,) → (N,)."""
    w0, w1 = weights_at(coefficients, theta0), weights_at(coefficients, theta1)
    s0 = weights_at(sigma_coefficients[None], theta0)[0]
    s1 = weights_at(sigma_coefficients[None], theta1)[0]
    _check_positive(torch.cat([w0, w1]), "the event weight w(θ)")
    _check_positive(torch.stack([s0, s1]), "the cross section σ(θ)")
    return torch.log(w0) - torch.log(s0) - torch.log(w1) + torch.log(s1)


def joint_score(coefficients: torch.Tensor, sigma_coefficients: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """t(z|θ) = ∇_θ log p(z|θ) per event.  coefficients (N, M), sigma_coefficients (M,), θ (n,) → (N, n)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    order = _order_from_width(coefficients, theta.shape[-1])
    m, dm = monomials(theta, order), monomial_jacobian(theta, order)
    w = coefficients @ m
    s = sigma_coefficients @ m
    _check_positive(w, "the event weight w(θ)")
    _check_positive(s[None], "the cross section σ(θ)")
    return (coefficients @ dm) / w[:, None] - (sigma_coefficients @ dm) / s


def paired_log_joint_ratio(
    coefficients: torch.Tensor, sigma_coefficients: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor
) -> torch.Tensor:
    """log r(z_i|θ₀_i, θ₁_i) with one (θ₀, θ₁) pair per event: coefficients (N, M), θ (N, n) → (N,)."""
    order = _order_from_width(coefficients, theta0.shape[-1])
    m0, m1 = monomials(theta0, order), monomials(theta1, order)
    w0, w1 = (coefficients * m0).sum(-1), (coefficients * m1).sum(-1)
    s0, s1 = m0 @ sigma_coefficients, m1 @ sigma_coefficients
    _check_positive(torch.cat([w0, w1]), "the event weight w(θ)")
    _check_positive(torch.cat([s0, s1]), "the cross section σ(θ)")
    return torch.log(w0) - torch.log(s0) - torch.log(w1) + torch.log(s1)


def paired_joint_score(coefficients: torch.Tensor, sigma_coefficients: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """t(z_i|θ_i) with one θ per event: coefficients (N, M), θ (N, n) → (N, n)."""
    order = _order_from_width(coefficients, theta.shape[-1])
    m, dm = monomials(theta, order), monomial_jacobian(theta, order)  # (N, M), (N, M, n)
    w, s = (coefficients * m).sum(-1), m @ sigma_coefficients
    _check_positive(w, "the event weight w(θ)")
    _check_positive(s, "the cross section σ(θ)")
    return torch.einsum("nm,nmk->nk", coefficients, dm) / w[:, None] - torch.einsum("m,nmk->nk", sigma_coefficients, dm) / s[:, None]
