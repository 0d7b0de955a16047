"""The generalised Galton board: a simulator with an intractable-looking but exactly computable likelihood.

Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
inference", arXiv:1805.12244.  A ball falls through ``n_rows`` rows of nails.  At every nail it goes
left with probability

    p_left(k, s | θ) = (1 − f_k)/2 + f_k · sigmoid(a · θ · (h(s) − ½)),     f_k = sin(π k/(n_rows − 1)),

where k = 0 … n_rows − 1 is the row, s the horizontal coordinate of the nail (in half nail spacings,
the ball starts at s = 0 and moves to s ± 1 at every row), h(s) = ½ + s/(2W) ∈ [0, 1] the nail's
horizontal position normalised to the board (W = n_nails − 1), and a the ``steepness``.  Rows 0 and
n_rows − 1 are fair coins, the middle rows steer the ball according to θ.  Balls beyond the outermost
nails (|s| > W) bounce off the wall, deterministically, back towards the centre.

* latent z: the path, the n_rows left/right decisions (0 = left, 1 = right);
* observed x: the final bin, x = number of rightward moves ∈ {0, …, n_rows};
* p(x|θ): exact by dynamic programming over (row, s); its θ-derivative is propagated alongside;
* joint quantities along one path: log p(x, z|θ) = Σ_k log p(decision_k | k, s_k, θ), the joint
  ratio r(x, z|θ₀, θ₁) and the joint score t(x, z|θ) = ∂_θ log p(x, z|θ) (analytic), which satisfy
  E[r(x, z|θ₀, θ₁) | x, θ₁] = r(x|θ₀, θ₁) and E[t(x, z|θ) | x, θ] = t(x|θ) exactly.

:meth:`GaltonBoard.ratio_training_sample` and :meth:`GaltonBoard.score_training_sample` return the
Dataset layout of :func:`sbihep.events.augment.ratio_training_sample`, so that every estimator of
:mod:`sbihep.estimators.ratio` and :mod:`sbihep.estimators.score` trains on it unchanged.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import xarray as xr

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.params import Parameter, ParameterSpace

__all__ = ["GaltonBoard"]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


class GaltonBoard:
    """The generalised Galton board of arXiv:1805.12244 with one parameter θ.

    Args:
        n_rows: number of rows of nails (the paper: 20); x takes n_rows + 1 values.
        n_nails: nails per row (the paper: 31); sets the board width W = n_nails − 1 in half spacings.
        steepness: a in sigmoid(a θ (h − ½)) (dimensionless).  The default 20 is the value of the
            paper's experiments (sigmoid(10 θ (2h − 1))); with it p(x|θ = −1) is bimodal.
        bounds: the θ range (the training bounds of estimators built on this board's space).
    """

    def __init__(self, n_rows: int = 20, n_nails: int = 31, steepness: float = 20.0, bounds: tuple[float, float] = (-1.0, 1.0)) -> None:
        if int(n_rows) != n_rows or n_rows < 2:
            raise InvalidInputError(f"n_rows must be an integer ≥ 2, got {n_rows!r}")
        if int(n_nails) != n_nails or n_nails < 2:
            raise InvalidInputError(f"n_nails must be an integer ≥ 2, got {n_nails!r}")
        if not (np.isfinite(steepness) and steepness > 0):
            raise InvalidInputError(f"steepness must be a positive number, got {steepness!r}")
        self.n_rows, self.n_nails, self.steepness = int(n_rows), int(n_nails), float(steepness)
        self.half_width = self.n_nails - 1
        lo, hi = bounds
        self.space = ParameterSpace([Parameter("theta", min(max(0.0, lo), hi), (lo, hi), description="Galton board nail steering")])

    @property
    def n_bins(self) -> int:
        """Number of values x can take (n_rows + 1)."""
        return self.n_rows + 1

    # ---- the nails ---------------------------------------------------------------------
    def left_probability(self, row, s, theta) -> tuple[np.ndarray, np.ndarray]:
        """(p_left, ∂p_left/∂θ) at row k, coordinate s and θ (broadcast arrays, float64)."""
        row, s, theta = (np.asarray(v, dtype=np.float64) for v in (row, s, theta))
        f = np.sin(math.pi * row / (self.n_rows - 1))
        h = s / (2.0 * self.half_width)  # h(s) − ½
        sig = _sigmoid(self.steepness * theta * h)
        p = 0.5 * (1.0 - f) + f * sig
        dp = f * sig * (1.0 - sig) * self.steepness * h
        # walls: beyond the outermost nails the ball is sent back towards the centre
        p = np.where(s > self.half_width, 1.0, np.where(s < -self.half_width, 0.0, p))
        dp = np.where(np.abs(s) > self.half_width, 0.0, dp)
        return p, dp

    # ---- exact likelihood by dynamic programming ---------------------------------------
    def _dp(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """p(x|θ) and ∂_θ p(x|θ) for θ (K,) → two (K, n_bins) arrays."""
        theta = _as_theta_vector(theta, "theta")
        n, k_theta = self.n_rows, theta.shape[0]
        s = np.arange(-n, n + 1, dtype=np.float64)  # coordinate s at index s + n
        prob = np.zeros((k_theta, 2 * n + 1))
        dprob = np.zeros_like(prob)
        prob[:, n] = 1.0
        for row in range(n):
            p, dp = self.left_probability(row, s[None, :], theta[:, None])
            new, dnew = np.zeros_like(prob), np.zeros_like(prob)
            new[:, :-1] += prob[:, 1:] * p[:, 1:]  # from s + 1 going left
            new[:, 1:] += prob[:, :-1] * (1.0 - p[:, :-1])  # from s − 1 going right
            dnew[:, :-1] += dprob[:, 1:] * p[:, 1:] + prob[:, 1:] * dp[:, 1:]
            dnew[:, 1:] += dprob[:, :-1] * (1.0 - p[:, :-1]) - prob[:, :-1] * dp[:, :-1]
            prob, dprob = new, dnew
        # after n rows s = 2x − n: every other entry, x = 0 … n
        return prob[:, ::2], dprob[:, ::2]

    def probabilities(self, theta) -> xr.DataArray:
        """Exact p(x|θ): θ scalar or (K,) → DataArray (theta, x) of shape (K, n_bins); rows sum to 1."""
        theta = _as_theta_vector(theta, "theta")
        prob, _ = self._dp(theta)
        return xr.DataArray(prob, dims=("theta", "x"), coords={"theta": theta, "x": np.arange(self.n_bins)}, name="p_x")

    def log_likelihood(self, x, theta) -> np.ndarray:
        """log p(x|θ) for integer bins x (N,) at θ (scalar or (N,)), (N,)."""
        x = self._as_bins(x)
        theta = np.broadcast_to(_as_theta_vector(theta, "theta"), x.shape)
        values, inverse = np.unique(theta, return_inverse=True)
        prob, _ = self._dp(values)
        return np.log(prob[inverse.reshape(-1), x])

    def log_ratio(self, x, theta0, theta1) -> np.ndarray:
        """Exact log r(x|θ₀, θ₁) = log p(x|θ₀) − log p(x|θ₁), (N,)."""
        return self.log_likelihood(x, theta0) - self.log_likelihood(x, theta1)

    def score(self, x, theta) -> np.ndarray:
        """Exact t(x|θ) = ∂_θ log p(x|θ), (N,)."""
        x = self._as_bins(x)
        theta = np.broadcast_to(_as_theta_vector(theta, "theta"), x.shape)
        values, inverse = np.unique(theta, return_inverse=True)
        prob, dprob = self._dp(values)
        inverse = inverse.reshape(-1)
        return dprob[inverse, x] / prob[inverse, x]

    # ---- paths -------------------------------------------------------------------------
    def path_quantities(self, paths, thetas: Iterable) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """x, log p(x, z|θ) and t(x, z|θ) of given paths.

        Args:
            paths: (N, n_rows) decisions, 0 = left, 1 = right (a forced wall bounce must be recorded as taken).
            thetas: parameter values, each a scalar or an (N,) array.
        Returns:
            x (N,) ints, a list of log p(x, z|θ) (N,) and a list of t(x, z|θ) (N,), one per θ.
        """
        z = np.asarray(paths)
        if z.ndim != 2 or z.shape[1] != self.n_rows:
            raise ShapeError(f"paths: expected shape (N, {self.n_rows}), got {z.shape}")
        if not np.isin(z, (0, 1)).all():
            raise InvalidInputError("paths: decisions must be 0 (left) or 1 (right)")
        thetas = [np.broadcast_to(np.asarray(t, dtype=np.float64), (z.shape[0],)) for t in thetas]
        s = np.zeros(z.shape[0])
        logp = [np.zeros(z.shape[0]) for _ in thetas]
        score = [np.zeros(z.shape[0]) for _ in thetas]
        for row in range(self.n_rows):
            right = z[:, row] == 1
            for j, th in enumerate(thetas):
                p, dp = self.left_probability(row, s, th)
                with np.errstate(divide="ignore"):
                    logp[j] += np.where(right, np.log1p(-p), np.log(p))
                    score[j] += np.where(right, -dp / np.where(p < 1, 1.0 - p, 1.0), dp / np.where(p > 0, p, 1.0))
            s = s + np.where(right, 1.0, -1.0)
        x = ((s + self.n_rows) / 2).astype(np.int64)
        return x, logp, score

    def simulate(self, theta, rng: np.random.Generator, extra_thetas: Iterable = ()) -> dict[str, np.ndarray]:
        """Run the board once per entry of θ (N,).

        Returns a dict with ``x`` (N,) bins, ``z`` (N, n_rows) decisions and, for θ and each θ' in
        ``extra_thetas`` (scalars or (N,) arrays), ``log_p`` (list of (N,)) and ``t`` (list of (N,)):
        the joint log-likelihood and joint score of the simulated path at that parameter value.
        """
        theta = _as_theta_vector(theta, "theta")
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        n = theta.shape[0]
        s = np.zeros(n)
        z = np.zeros((n, self.n_rows), dtype=np.int8)
        for row in range(self.n_rows):
            p, _ = self.left_probability(row, s, theta)
            right = rng.random(n) >= p
            z[:, row] = right
            s = s + np.where(right, 1.0, -1.0)
        x, logp, score = self.path_quantities(z, [theta, *extra_thetas])
        return {"x": x, "z": z, "log_p": logp, "t": score}

    # ---- training samples --------------------------------------------------------------
    def ratio_training_sample(self, n_samples: int, *, theta1: float | None = 0.0, seed: int = 0) -> xr.Dataset:
        """Samples for parametrised ratio estimators, layout of :func:`sbihep.events.augment.ratio_training_sample`.

        θ₀ uniform in the bounds; θ₁ fixed (or uniform too when ``theta1`` is None); y = 0 for the first
        half (x ~ θ₀), y = 1 for the second (x ~ θ₁).  Variables: x (sample, observable=["x"]),
        theta0/theta1/t_xz0/t_xz1 (sample, parameter=["theta"]), y and log_r_xz (sample), and the
        path z (sample, row) as int8.
        """
        if int(n_samples) != n_samples or n_samples < 2:
            raise InvalidInputError(f"n_samples must be an integer ≥ 2, got {n_samples!r}")
        rng = np.random.default_rng(seed)
        lo, hi = self.space["theta"].bounds
        th0 = rng.uniform(lo, hi, n_samples)
        if theta1 is None:
            th1 = rng.uniform(lo, hi, n_samples)
        else:
            th1 = np.full(n_samples, self.space["theta"].check(theta1))
        y = (np.arange(n_samples) >= n_samples // 2).astype(np.float64)
        run = self.simulate(np.where(y == 0, th0, th1), rng, extra_thetas=(th0, th1))
        _, logp0, logp1 = run["log_p"]
        _, t0, t1 = run["t"]
        col = lambda a: a[:, None].astype(np.float64)  # noqa: E731
        return xr.Dataset(
            {
                "x": (("sample", "observable"), col(run["x"])),
                "theta0": (("sample", "parameter"), col(th0)),
                "theta1": (("sample", "parameter"), col(th1)),
                "y": ("sample", y),
                "log_r_xz": ("sample", logp0 - logp1),
                "t_xz0": (("sample", "parameter"), col(t0)),
                "t_xz1": (("sample", "parameter"), col(t1)),
                "z": (("sample", "row"), run["z"]),
            },
            coords={"observable": ["x"], "parameter": ["theta"]},
            attrs={"kind": "ratio", "seed": seed, "simulator": "galton", **self._attrs()},
        )

    def score_training_sample(self, n_samples: int, *, theta_ref: float = 0.0, seed: int = 0) -> xr.Dataset:
        """x ~ p(x|θ_ref) with t(x, z|θ_ref), layout of :func:`sbihep.events.augment.score_training_sample`."""
        if int(n_samples) != n_samples or n_samples < 1:
            raise InvalidInputError(f"n_samples must be a positive integer, got {n_samples!r}")
        rng = np.random.default_rng(seed)
        th = np.full(n_samples, self.space["theta"].check(theta_ref))
        run = self.simulate(th, rng)
        return xr.Dataset(
            {
                "x": (("sample", "observable"), run["x"][:, None].astype(np.float64)),
                "theta0": (("sample", "parameter"), th[:, None]),
                "t_xz0": (("sample", "parameter"), run["t"][0][:, None]),
                "z": (("sample", "row"), run["z"]),
            },
            coords={"observable": ["x"], "parameter": ["theta"]},
            attrs={"kind": "score", "seed": seed, "simulator": "galton", **self._attrs()},
        )

    def _attrs(self) -> dict:
        return {"n_rows": self.n_rows, "n_nails": self.n_nails, "steepness": self.steepness}

    def _as_bins(self, x) -> np.ndarray:
        values = np.asarray(getattr(x, "values", x), dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        values = np.atleast_1d(values)
        if values.ndim != 1:
            raise ShapeError(f"x: expected shape (N,) or (N, 1) of bins, got {values.shape}")
        if not (np.isfinite(values).all() and (values == np.round(values)).all() and (values >= 0).all() and (values <= self.n_rows).all()):
            raise InvalidInputError(f"x: bins must be integers in 0 … {self.n_rows}")
        return values.astype(np.int64)

    def __repr__(self) -> str:
        return f"GaltonBoard(n_rows={self.n_rows}, n_nails={self.n_nails}, steepness={self.steepness}, bounds={self.space['theta'].bounds})"


def _as_theta_vector(theta, argument: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(getattr(theta, "values", theta), dtype=np.float64))
    if values.ndim != 1:
        raise ShapeError(f"{argument}: expected a scalar or shape (K,), got {values.shape}")
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{argument}: contains NaN or infinite values")
    return values
