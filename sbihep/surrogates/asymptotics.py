"""Asymptotic CLs with the q̃_μ test statistic (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727).

numpy + the standard library only, so ONNX surrogates can be used without torch or scipy.

Inputs are the profiled q̃_μ on the observed data and q_μ,A on the Asimov data generated at μ = 0;
the p-values follow pyhf's ``AsymptoticCalculator`` (``test_stat="qtilde"``, normal base
distribution):

    √q̃ ≤ √q_A:  CL_s+b = Φ(−√q̃),                 CL_b = Φ(√q_A − √q̃)
    √q̃ > √q_A:  s = (q̃ − q_A) / (2√q_A),          CL_s+b = Φ(−(s + √q_A)),   CL_b = Φ(−s)
    CL_s = CL_s+b / CL_b
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normal_cdf", "cls_from_q", "qtilde_from_t"]

_erfc = np.frompyfunc(math.erfc, 1, 1)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) of the standard normal, elementwise, float64."""
    return np.asarray(0.5 * _erfc(-np.asarray(x, float) / math.sqrt(2.0)), dtype=float)  # frompyfunc returns a float for 0-d input


def qtilde_from_t(t_mu: np.ndarray, mu: np.ndarray, t_min: float, mu_hat: float) -> np.ndarray:
    """q̃_μ from −2ΔlnL values.

    Args:
        t_mu: (n,) −2 lnL(μ, θ̂̂) up to a constant, at the tested μ.
        mu: (n,) tested signal strengths.
        t_min: the same function at μ̂ (minimum over μ ≥ 0 within the allowed range).
        mu_hat: the constrained best fit μ̂ ≥ 0.
    Returns:
        (n,) q̃_μ = t(μ) − t(μ̂) for μ ≥ μ̂, else 0; clipped at 0.
    """
    q = np.clip(np.asarray(t_mu, float) - t_min, 0.0, None)
    return np.where(np.asarray(mu, float) >= mu_hat, q, 0.0)


def cls_from_q(q_obs: np.ndarray, q_asimov: np.ndarray) -> dict[str, np.ndarray]:
    """CL_s+b, CL_b and CL_s (each shaped like the inputs) from q̃_μ (observed) and q_μ,A (Asimov)."""
    q = np.clip(np.asarray(q_obs, float), 0.0, None)
    qa = np.clip(np.asarray(q_asimov, float), 0.0, None)
    sq, sqa = np.sqrt(q), np.sqrt(qa)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(sq <= sqa, sq - sqa, (q - qa) / (2.0 * np.where(sqa > 0, sqa, 1.0)))
    clsb = normal_cdf(-(s + sqa))
    clb = normal_cdf(-s)
    with np.errstate(divide="ignore", invalid="ignore"):
        cls = np.where(clb > 0, clsb / clb, 1.0)
    return {"CLsb": clsb, "CLb": clb, "CLs": np.where(qa > 0, cls, 1.0)}
