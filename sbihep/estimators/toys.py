"""Toy simulators with an exact likelihood, for testing and benchmarking the estimators.

Gaussian toy (one parameter θ): latent z ~ N(θ, σ_z²), observed x ~ N(z, σ_x²), so that
p(x|θ) = N(x | θ, σ_z² + σ_x²) exactly.  The joint quantities depend on z only:

    log r(x,z|θ₀,θ₁) = [(z − θ₁)² − (z − θ₀)²] / (2σ_z²),     t(x,z|θ) = (z − θ)/σ_z²,

(note: (z − θ)/σ_z², not (x − θ)/σ_z²), while the exact marginal ones are
log r(x|θ₀,θ₁) = [(x − θ₁)² − (x − θ₀)²] / (2(σ_z² + σ_x²)) and t(x|θ) = (x − θ)/(σ_z² + σ_x²).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from sbihep.params import Parameter, ParameterSpace

__all__ = ["GaussianToy"]


class GaussianToy:
    """z ~ N(θ, sigma_z²), x ~ N(z, sigma_x²); defaults σ_z = 2, σ_x = 1, θ ∈ bounds."""

    def __init__(self, sigma_z: float = 2.0, sigma_x: float = 1.0, bounds: tuple[float, float] = (-2.0, 2.0)) -> None:
        self.sigma_z, self.sigma_x = float(sigma_z), float(sigma_x)
        self.space = ParameterSpace([Parameter("theta", 0.0, bounds)])

    @property
    def sigma_total(self) -> float:
        return float(np.hypot(self.sigma_z, self.sigma_x))

    def simulate(self, theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(x, z), each (N,), one draw per entry of θ (N,)."""
        z = theta + self.sigma_z * rng.standard_normal(theta.shape)
        return z + self.sigma_x * rng.standard_normal(theta.shape), z

    def joint_log_ratio(self, z, theta0, theta1):
        return ((z - theta1) ** 2 - (z - theta0) ** 2) / (2 * self.sigma_z**2)

    def joint_score(self, z, theta):
        return (z - theta) / self.sigma_z**2

    def log_ratio(self, x, theta0, theta1=0.0):
        """Exact log p(x|θ₀)/p(x|θ₁)."""
        return ((x - theta1) ** 2 - (x - theta0) ** 2) / (2 * self.sigma_total**2)

    def score(self, x, theta):
        return (x - theta) / self.sigma_total**2

    def ratio_training_sample(self, n_samples: int, *, theta1: float | None = 0.0, seed: int = 0) -> xr.Dataset:
        """Same layout as :func:`sbihep.events.augment.ratio_training_sample`: θ₀ uniform in the bounds,
        θ₁ fixed (or uniform too when ``theta1`` is None); y = 0 for x ~ θ₀, y = 1 for x ~ θ₁."""
        rng = np.random.default_rng(seed)
        lo, hi = self.space["theta"].bounds
        th0 = rng.uniform(lo, hi, n_samples)
        th1 = rng.uniform(lo, hi, n_samples) if theta1 is None else np.full(n_samples, float(theta1))
        y = (np.arange(n_samples) >= n_samples // 2).astype(float)
        x, z = self.simulate(np.where(y == 0, th0, th1), rng)
        col = lambda a: a[:, None]  # noqa: E731
        return xr.Dataset(
            {
                "x": (("sample", "observable"), col(x)),
                "theta0": (("sample", "parameter"), col(th0)),
                "theta1": (("sample", "parameter"), col(th1)),
                "y": ("sample", y),
                "log_r_xz": ("sample", self.joint_log_ratio(z, th0, th1)),
                "t_xz0": (("sample", "parameter"), col(self.joint_score(z, th0))),
                "t_xz1": (("sample", "parameter"), col(self.joint_score(z, th1))),
            },
            coords={"observable": ["x"], "parameter": ["theta"]},
            attrs={"kind": "ratio", "seed": seed},
        )

    def score_training_sample(self, n_samples: int, *, theta_ref: float = 0.0, seed: int = 0) -> xr.Dataset:
        """x ~ p(x|θ_ref) with t(x,z|θ_ref), layout as :func:`sbihep.events.augment.score_training_sample`."""
        rng = np.random.default_rng(seed)
        th = np.full(n_samples, float(theta_ref))
        x, z = self.simulate(th, rng)
        return xr.Dataset(
            {
                "x": (("sample", "observable"), x[:, None]),
                "theta0": (("sample", "parameter"), th[:, None]),
                "t_xz0": (("sample", "parameter"), self.joint_score(z, th)[:, None]),
            },
            coords={"observable": ["x"], "parameter": ["theta"]},
            attrs={"kind": "score", "seed": seed},
        )
