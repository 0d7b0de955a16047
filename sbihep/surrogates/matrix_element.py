"""Matrix-element surrogate and exactly unbiased two-stage unweighting.

Following Janßen, Maître, Schumann, Siegert, Truong (SciPost Phys. 15, 107 (2023)), a cheap network
w_s ≈ w replaces the costly event weight in a first accept/reject step, and the exact weight is
computed only for the survivors, which a second accept/reject step corrects:

* stage 1 — every phase-space point r gets the surrogate weight w_s(r) = w_kin(r) · exp(NN(r))
  (w_kin: the exactly known phase-space, Jacobian and flux factors; NN: the learned log |M|²) and
  survives with probability p₁ = min(1, w_s/s_max);
* stage 2 — for survivors the exact weight w(r) gives the ratio x = w / min(w_s, s_max), and the
  event is accepted with probability min(1, x/x_max); an event with x > x_max keeps the weight
  x/x_max (an "overweight", as in :mod:`sbihep.events.generate`).

Each point then contributes p₁ · min(1, x/x_max) · s_max x_max max(1, x/x_max) = p₁ s_max x = w in
expectation, so the unweighted sample is EXACTLY unbiased for any surrogate (a poor one only
lowers the stage-2 efficiency); s_max and x_max come from a pilot run with its own random numbers
(the smallest maxima above which at most ``max_overweight`` of σ lies).  The surrogate weight must be
positive wherever w is, which exp(NN) guarantees.

What is learned.  The network maps the point r ∈ [0, 1)^dim of a
:class:`~sbihep.physics.xsec.PhaseSpaceIntegrand` to log(w / w_kin): log |M|² at θ for a fixed-√s
process, and log Σ_channels f_a f_b |M|² (the parton-luminosity-weighted |M|², the part that costs)
for a hadronic one.  Direct unweighting (exact weight on every point) is :func:`unweight_direct`;
the two share the sampler, the pilot and the overweight treatment, so their costs per unweighted
event compare like with like.

Shapes: points ``r`` (N, dim) float64; weights (N,) in pb (per point, so that their mean over
uniform points is σ); the network works in float32 and returns float64.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.estimators.base import MLP, Standardize, read_estimator, save_estimator, seeded_init
from sbihep.events.generate import _max_weight

__all__ = [
    "WeightProblem",
    "IntegrandProblem",
    "MESurrogate",
    "train_me_surrogate",
    "UnweightingReport",
    "UnweightedSample",
    "unweight_two_stage",
    "unweight_direct",
    "predicted_gain",
]

_STREAM_PILOT, _STREAM_MAIN, _STREAM_TRAIN = 1, 2, 3


class WeightProblem(Protocol):
    """What the unweighting needs from a process (or from a toy integrand).

    Attributes:
        dim: number of random numbers per point.
    Methods:
        sample(n, rng): {"r": (n, dim) float64 points, "w_kin": (n,) cheap weight factor ≥ 0}.
        exact(sample): {"weight": (n,) exact event weights in pb, ...further per-point arrays}
            for a dict of the same form (a subset of a sample).
    """

    dim: int

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]: ...

    def exact(self, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class IntegrandProblem:
    """The event weight of a :class:`~sbihep.physics.xsec.PhaseSpaceIntegrand` at θ.

    Args:
        integrand: the process, collider energy, EFT order and (optionally) subprocess.
        theta: the generation point by operator name (default: the SM).
        vegas_map: an optional ``vegas`` map (e.g. ``vegas.Integrator(...).map`` after adaptation):
            points are drawn uniformly in its y-space and mapped to r with its Jacobian.
    ``exact`` returns ``weight`` (pb), ``coefficients`` (n, M) — the packed EFT coefficients of the
    weight, exact at every θ — and ``momenta`` (n, 2+k, 4) in the partonic frame.
    """

    def __init__(self, integrand, theta: Mapping[str, float] | None = None, vegas_map=None):
        from sbihep.events import eft as eft_math

        self.integrand = integrand
        self.process = integrand.process
        self.dim = int(integrand.dim)
        theta_vec = torch.as_tensor(self.process.parameter_space().to_vector(theta or {}), dtype=torch.float64)
        self.theta_m = eft_math.monomials(theta_vec, integrand.order).numpy()
        self.vegas_map = vegas_map

    def kinematic_weight(self, r: np.ndarray) -> np.ndarray:
        """Phase-space × Jacobian × flux × (GeV⁻² → pb) factor of the integrand at r, (n,)."""
        from sbihep.physics.phasespace import hadronic_momentum_fractions
        from sbihep.physics.xsec import GEV2_TO_PB

        integ = self.integrand
        rt = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float64))
        with torch.no_grad():
            if not integ.hadronic:
                _, w_ps = self.process.phase_space(rt, integ.sqrt_s)
                return (w_ps * GEV2_TO_PB / (2.0 * integ.sqrt_s**2)).numpy()
            x1, x2, w_x = hadronic_momentum_fractions(rt[:, :2], integ.sqrt_s, self.process.threshold() ** 2)
            s_hat = x1 * x2 * integ.sqrt_s**2
            _, w_ps = self.process.phase_space(rt[:, 2:], torch.sqrt(s_hat))
            return (w_x * w_ps * GEV2_TO_PB / (2.0 * s_hat)).numpy()

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        y = rng.random((n, self.dim))
        if self.vegas_map is None:
            r, jac = y, np.ones(n)
        else:
            r, jac = np.empty_like(y), np.empty(n)
            self.vegas_map.map(y, r, jac)
            np.clip(r, 0.0, 1.0 - 1e-16, out=r)
        return {"r": r, "w_kin": self.kinematic_weight(r) * jac, "jac": jac}

    def exact(self, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            rec = self.integrand.events(torch.from_numpy(np.ascontiguousarray(sample["r"], dtype=np.float64)))
        coeffs = rec["coefficients"].numpy() * np.asarray(sample["jac"])[:, None]
        return {"weight": coeffs @ self.theta_m, "coefficients": coeffs, "momenta": rec["momenta"].numpy()}


class MESurrogate:
    """A float32 MLP for log(w / w_kin) (log |M|², see the module docstring) of points r (N, dim).

    Args:
        n_inputs: dim of the points.
        hidden, activation: network shape (:class:`~sbihep.estimators.base.MLP`).
        seed: initial weights.
        metadata: JSON-able description saved with the network (process, √s, θ, …).
    """

    kind = "me_surrogate"

    def __init__(self, n_inputs: int, *, hidden: Sequence[int] = (64, 64, 64), activation: str = "silu", seed: int = 0,
                 metadata: Mapping[str, Any] | None = None):
        if int(n_inputs) != n_inputs or n_inputs < 1:
            raise InvalidInputError(f"n_inputs: must be a positive integer, got {n_inputs!r}")
        self.n_inputs, self.hidden, self.activation, self.seed = int(n_inputs), [int(h) for h in hidden], activation, int(seed)
        self.metadata = dict(metadata or {})
        self.network = seeded_init(lambda: nn.Sequential(Standardize(self.n_inputs),
                                                         MLP(self.n_inputs, 1, self.hidden, activation)), self.seed)
        self.target_mean, self.target_std = 0.0, 1.0
        self.training: dict = {}

    def __call__(self, r: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """log(w / w_kin) at r (N, dim) → (N,) float64."""
        r = np.asarray(r)
        if r.ndim != 2 or r.shape[1] != self.n_inputs:
            raise ShapeError(f"r: need shape (N, {self.n_inputs}), got {r.shape}")
        out = np.empty(len(r))
        self.network.eval()
        with torch.no_grad():
            for a in range(0, len(r), batch_size):
                z = self.network(torch.as_tensor(r[a:a + batch_size], dtype=torch.float32))[:, 0]
                out[a:a + batch_size] = z.double().numpy() * self.target_std + self.target_mean
        return out

    def fit(self, r: np.ndarray, log_target: np.ndarray, *, epochs: int = 60, batch_size: int = 512,
            learning_rate: float = 3e-3, seed: int = 0, device: str = "auto", quiet: bool = False) -> dict:
        """Least squares in log(w / w_kin) with :func:`sbihep.estimators.train.train`; returns its history."""
        from sbihep.estimators.train import train

        r = np.asarray(r, float)
        y = np.asarray(log_target, float).reshape(-1)
        if r.ndim != 2 or r.shape[1] != self.n_inputs or len(y) != len(r):
            raise ShapeError(f"r, log_target: need (N, {self.n_inputs}) and (N,), got {r.shape} and {y.shape}")
        if not np.all(np.isfinite(y)) or not np.all(np.isfinite(r)):
            raise InvalidInputError("log_target: must be finite (drop points with zero weight before fitting)")
        self.network[0].fit(torch.as_tensor(r))
        self.target_mean, self.target_std = float(y.mean()), float(y.std() + 1e-12)
        data = {"r": torch.as_tensor(r, dtype=torch.float32),
                "y": torch.as_tensor((y - self.target_mean) / self.target_std, dtype=torch.float32)}

        def loss(model, batch):
            return ((model(batch["r"])[:, 0] - batch["y"]) ** 2).mean()

        hist = train(self.network, loss, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     final_learning_rate=learning_rate / 30, validation_fraction=0.15, early_stopping_patience=15,
                     seed=seed, device=device, quiet=quiet)
        self.training = {"epochs": len(hist.train_loss), "best_epoch": hist.best_epoch, "seconds": hist.seconds,
                         "validation_rms_log": float(math.sqrt(min(hist.validation_loss)) * self.target_std),
                         "n_points": int(len(r))}
        return self.training

    def config(self) -> dict:
        return {"kind": self.kind, "n_inputs": self.n_inputs, "network": {"hidden": self.hidden, "activation": self.activation,
                "seed": self.seed}, "target": {"mean": self.target_mean, "std": self.target_std},
                "metadata": self.metadata, "training": self.training}

    def save(self, path):
        """Directory with config.json and state_dict.pt (no pickles)."""
        return save_estimator(path, self.config(), self.network.state_dict())

    @classmethod
    def load(cls, path) -> "MESurrogate":
        config, state = read_estimator(path, cls.kind)
        net = config["network"]
        sur = cls(config["n_inputs"], hidden=net["hidden"], activation=net["activation"], seed=net["seed"],
                  metadata=config.get("metadata"))
        sur.target_mean, sur.target_std = float(config["target"]["mean"]), float(config["target"]["std"])
        sur.training = config.get("training", {})
        sur.network.load_state_dict(state)
        return sur


def train_me_surrogate(problem: WeightProblem, n_train: int = 20_000, *, hidden: Sequence[int] = (64, 64, 64),
                       epochs: int = 60, batch_size: int = 512, learning_rate: float = 3e-3, seed: int = 0,
                       device: str = "auto", quiet: bool = False, metadata: Mapping[str, Any] | None = None,
                       log_floor: float | None = 15.0) -> MESurrogate:
    """Sample ``n_train`` points, compute their exact weights and fit log(w / w_kin).

    Points with zero weight (outside the physical region, vanishing PDFs) are left out of the fit.
    ``log_floor``: targets more than this far below the largest one are raised to that floor, so the
    network spends no capacity on the far tail (hadronic log(f f |M|²) spans ≈ 60 units, of which
    the weights that matter for unweighting fill the top ≈ 10); None keeps them all.  Accuracy only
    changes the efficiencies, never the result.  The time spent on exact weights is recorded in
    ``surrogate.training["seconds_exact"]``.
    """
    if int(n_train) != n_train or n_train < 50:
        raise InvalidInputError(f"n_train: need an integer ≥ 50 training points, got {n_train!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_TRAIN]))
    batch = problem.sample(int(n_train), rng)
    t0 = time.perf_counter()
    w = _weights_of(problem.exact(batch), len(batch["r"]))
    seconds_exact = time.perf_counter() - t0
    ok = (w > 0) & (batch["w_kin"] > 0)
    if ok.sum() < 50:
        raise InvalidInputError(f"problem: only {int(ok.sum())} of {n_train} training points have a positive weight")
    target = np.log(w[ok] / batch["w_kin"][ok])
    if log_floor is not None:
        if not log_floor > 0:
            raise InvalidInputError(f"log_floor: must be positive or None, got {log_floor!r}")
        target = np.maximum(target, target.max() - log_floor)
    sur = MESurrogate(problem.dim, hidden=hidden, seed=seed, metadata=metadata)
    sur.fit(batch["r"][ok], target, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, device=device, quiet=quiet)
    sur.training["seconds_exact"] = seconds_exact
    return sur


@dataclass
class UnweightingReport:
    """Efficiencies, maxima, σ and timings of one unweighting run (the pilot excluded unless named).

    ``efficiency_stage1`` = survivors / points, ``efficiency_stage2`` = accepted / survivors (1 for
    direct unweighting, where stage 1 is the exact accept/reject), ``efficiency`` = accepted /
    points.  ``seconds_*`` are wall-clock times of sampling (phase space), surrogate and exact
    weights in the main run; ``seconds_per_event`` = their sum / accepted events.
    """

    method: str
    n_points: int
    n_survivors: int
    n_accepted: int
    n_events: int
    efficiency_stage1: float
    efficiency_stage2: float
    efficiency: float
    s_max: float
    x_max: float
    overweight_fraction: float
    sigma_pb: float
    sigma_error_pb: float
    seconds_sample: float
    seconds_surrogate: float
    seconds_exact: float
    seconds_pilot: float
    seconds_per_event: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class UnweightedSample:
    """Unweighted events: points ``r`` (n, dim), ``weights`` (n,) pb summing to σ (equal except the
    overweights), the per-event arrays that the problem's ``exact`` returned (``records``), and the report."""

    r: np.ndarray
    weights: np.ndarray
    records: dict[str, np.ndarray] = field(default_factory=dict)
    report: UnweightingReport | None = None


def _weights_of(out, n: int) -> np.ndarray:
    w = np.asarray(out["weight"] if isinstance(out, Mapping) else out, float)
    if w.shape != (n,):
        raise ShapeError(f"problem.exact: returned weights of shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidInputError("problem.exact: weights must be finite and ≥ 0 to unweight")
    return w


def _surrogate_weights(surrogate: Callable[[np.ndarray], np.ndarray], batch) -> np.ndarray:
    log_me = np.asarray(surrogate(batch["r"]), float)
    if log_me.shape != (len(batch["r"]),):
        raise ShapeError(f"surrogate: returned shape {log_me.shape}, expected ({len(batch['r'])},)")
    if np.any(np.isnan(log_me)) or np.any(log_me == np.inf):
        raise InvalidInputError("surrogate: returned NaN or +inf log weights")
    return np.asarray(batch["w_kin"], float) * np.exp(np.clip(log_me, -700.0, 700.0))


def _check_args(n_events, n_pilot, max_overweight, chunk_size, max_points):
    for name, value, low in (("n_events", n_events, 1), ("n_pilot", n_pilot, 100), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise InvalidInputError(f"{name}: must be an integer ≥ {low}, got {value!r}")
    if not (0.0 <= max_overweight < 1.0):
        raise InvalidInputError(f"max_overweight: must lie in [0, 1), got {max_overweight!r}")
    if max_points is not None and (int(max_points) != max_points or max_points < 1):
        raise InvalidInputError(f"max_points: must be a positive integer or None, got {max_points!r}")


def _subset(batch: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in batch.items()}


def _run(problem, surrogate, n_events, seed, n_pilot, max_overweight, chunk_size, max_points, quiet) -> UnweightedSample:
    """Shared driver: pilot → maxima, then chunks until ``n_events`` are accepted."""
    from sbihep._progress import tqdm

    _check_args(n_events, n_pilot, max_overweight, chunk_size, max_points)
    two_stage = surrogate is not None
    t0 = time.perf_counter()
    pilot = problem.sample(int(n_pilot), np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PILOT])))
    if two_stage:
        ws = _surrogate_weights(surrogate, pilot)
        if not np.any(ws > 0):
            raise InvalidInputError("surrogate: every pilot point has zero surrogate weight")
        s_max = _max_weight(ws, max_overweight)
        u1 = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PILOT, 1])).random(len(ws))
        surv = np.flatnonzero(u1 * s_max < ws)
        if len(surv) == 0:
            raise InvalidInputError("surrogate: no pilot point survived stage 1; increase n_pilot")
        w = _weights_of(problem.exact(_subset(pilot, surv)), len(surv))
        x = w / np.minimum(ws[surv], s_max)
        x_max = _max_weight(x, max_overweight)
        eff = len(surv) / len(ws) * float(np.minimum(x / x_max, 1.0).mean()) if x_max > 0 else 0.0
    else:
        w = _weights_of(problem.exact(pilot), len(pilot["r"]))
        s_max, x_max = _max_weight(w, max_overweight), 1.0
        eff = float(np.minimum(w / s_max, 1.0).mean()) if s_max > 0 else 0.0
    if not (s_max > 0 and x_max > 0):
        raise InvalidInputError("problem: every pilot weight is zero; nothing to unweight")
    seconds_pilot = time.perf_counter() - t0
    # σ is estimated from a block of points whose size is fixed by the pilot alone (so that the
    # stopping rule "until n_events are accepted" cannot bias it); later chunks only add events.
    n_plan = int(math.ceil(1.1 * n_events / max(eff, 1e-12))) + 100
    if max_points is not None:
        n_plan = min(n_plan, int(max_points))
    plan = [chunk_size] * (n_plan // chunk_size) + ([n_plan % chunk_size] if n_plan % chunk_size else [])

    t_sample = t_sur = t_exact = 0.0
    n_points = n_surv = 0
    sum_y = sum_y2 = 0.0  # per-point contributions to σ over the planned block (module docstring)
    kept_r, kept_c, kept_rec = [], [], []
    n_acc = 0
    bar = tqdm(total=int(n_events), desc="unweighting (two-stage)" if two_stage else "unweighting (direct)",
               disable=quiet, leave=False)
    chunk = 0
    while chunk < len(plan) or (n_acc < n_events and (max_points is None or n_points < max_points)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_MAIN, chunk]))
        chunk += 1
        size = plan[chunk - 1] if chunk <= len(plan) else int(
            chunk_size if max_points is None else min(chunk_size, max_points - n_points))
        a = time.perf_counter()
        batch = problem.sample(size, rng)
        u = rng.random((size, 2))
        b = time.perf_counter()
        t_sample += b - a
        if two_stage:
            ws = _surrogate_weights(surrogate, batch)
            c = time.perf_counter()
            t_sur += c - b
            surv = np.flatnonzero(u[:, 0] * s_max < ws)
            out = problem.exact(_subset(batch, surv))
            w = _weights_of(out, len(surv))
            t_exact += time.perf_counter() - c
            x = w / np.minimum(ws[surv], s_max)
            y = s_max * x
            acc = np.flatnonzero(u[surv, 1] * x_max < x)
            factor = np.maximum(1.0, x[acc] / x_max)
            idx = surv[acc]
        else:
            out = problem.exact(batch)
            w = _weights_of(out, size)
            t_exact += time.perf_counter() - b
            y = w
            acc = np.flatnonzero(u[:, 0] * s_max < w)
            surv = acc  # the exact accept/reject is the only stage
            factor = np.maximum(1.0, w[acc] / s_max)
            idx = acc
        n_points += size
        n_surv += len(surv)
        if chunk <= len(plan):
            sum_y += float(y.sum())
            sum_y2 += float((y**2).sum())
        n_acc += len(acc)
        kept_r.append(batch["r"][idx])
        kept_c.append(factor)
        if isinstance(out, Mapping):
            kept_rec.append({k: np.asarray(v)[acc] for k, v in out.items()})
        bar.update(min(len(acc), max(int(n_events) - (n_acc - len(acc)), 0)))
    bar.close()

    r = np.concatenate(kept_r)[: int(n_events)]
    c = np.concatenate(kept_c)[: int(n_events)]
    records = {k: np.concatenate([d[k] for d in kept_rec])[: int(n_events)] for k in (kept_rec[0] if kept_rec else {})}
    sigma = sum_y / n_plan
    sigma_err = math.sqrt(max(sum_y2 / n_plan - sigma**2, 0.0) / max(n_plan - 1, 1))
    weights = sigma * c / c.sum() if len(c) else c
    over = float(np.sum(np.maximum(c - 1.0, 0.0)) / max(c.sum(), 1e-300))  # σ share above the maxima
    seconds = t_sample + t_sur + t_exact
    report = UnweightingReport(
        method="two-stage" if two_stage else "direct", n_points=n_points, n_survivors=n_surv, n_accepted=n_acc,
        n_events=len(r), efficiency_stage1=n_surv / n_points, efficiency_stage2=n_acc / max(n_surv, 1),
        efficiency=n_acc / n_points, s_max=float(s_max), x_max=float(x_max), overweight_fraction=over,
        sigma_pb=float(sigma), sigma_error_pb=float(sigma_err), seconds_sample=t_sample, seconds_surrogate=t_sur,
        seconds_exact=t_exact, seconds_pilot=seconds_pilot, seconds_per_event=seconds / max(n_acc, 1),
    )
    return UnweightedSample(r=r, weights=weights, records=records, report=report)


def unweight_two_stage(problem: WeightProblem, surrogate: Callable[[np.ndarray], np.ndarray], n_events: int, *,
                       seed: int = 0, n_pilot: int = 20_000, max_overweight: float = 1e-3, chunk_size: int = 50_000,
                       max_points: int | None = None, quiet: bool = False) -> UnweightedSample:
    """Unweight with the surrogate first and the exact weight on the survivors (module docstring).

    Args:
        problem: a :class:`WeightProblem` (e.g. :class:`IntegrandProblem`).
        surrogate: r (N, dim) → log(w / w_kin) (N,), e.g. a :class:`MESurrogate`; any finite values
            are allowed (−inf means w_s = 0 and biases the result where w > 0 — do not return it).
        n_events: unweighted events to return (the first ``n_events`` accepted).
        seed: the same seed gives the same events.
        n_pilot: points of the pilot run that fixes s_max and x_max (its cost is reported apart).
        max_overweight: the maxima are the smallest values above which at most this fraction of σ
            (of the surrogate's σ for s_max, of the survivors' ratios for x_max) lies; 0 = the largest.
        chunk_size: points per batch.
        max_points: stop after this many points even when fewer events were accepted.
        quiet: no progress bar.
    Returns:
        :class:`UnweightedSample` whose weights sum to the unbiased σ estimate
        ``s_max · Σ_survivors x / n`` (pb) over a block of n points whose size the pilot fixes
        (1.1 × n_events / its efficiency), so that stopping once ``n_events`` are accepted cannot
        bias it; chunks beyond the block (rarely needed) only add events.
    Raises:
        InvalidInputError: bad arguments, a surrogate returning NaN/+inf, negative exact weights.
    """
    if surrogate is None or not callable(surrogate):
        raise InvalidInputError(f"surrogate: need a callable r → log weight, got {surrogate!r}")
    return _run(problem, surrogate, n_events, seed, n_pilot, max_overweight, chunk_size, max_points, quiet)


def unweight_direct(problem: WeightProblem, n_events: int, *, seed: int = 0, n_pilot: int = 20_000,
                    max_overweight: float = 1e-3, chunk_size: int = 50_000, max_points: int | None = None,
                    quiet: bool = False) -> UnweightedSample:
    """Standard unweighting with the exact weight of every point (same sampler, pilot and
    overweight treatment as :func:`unweight_two_stage`); σ is the mean exact weight."""
    return _run(problem, None, n_events, seed, n_pilot, max_overweight, chunk_size, max_points, quiet)


def predicted_gain(efficiency_direct: float, efficiency_stage1: float, efficiency_stage2: float,
                   t_sample: float, t_surrogate: float, t_exact: float) -> float:
    """Cost per unweighted event, direct over two-stage, from per-point times (s) and efficiencies:

        gain = [(t_sample + t_exact) / ε_direct] / [(t_sample + t_surrogate + ε₁ t_exact) / (ε₁ ε₂)].

    As t_exact → ∞ the gain tends to ε₂/ε_direct — a surrogate saves the
    exact weights of the points stage 1 rejects, so it pays most where direct unweighting is inefficient.
    """
    for name, v in (("efficiency_direct", efficiency_direct), ("efficiency_stage1", efficiency_stage1),
                    ("efficiency_stage2", efficiency_stage2)):
        if not 0.0 < v <= 1.0:
            raise InvalidInputError(f"{name}: must lie in (0, 1], got {v!r}")
    direct = (t_sample + t_exact) / efficiency_direct
    two = (t_sample + t_surrogate + efficiency_stage1 * t_exact) / (efficiency_stage1 * efficiency_stage2)
    return direct / two
