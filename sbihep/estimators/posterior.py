"""Posteriors p(θ|x) through the `sbi` package: NPE, NLE and NRE fed by sbihep simulators, with
SBC and TARP diagnostics attached to every trained posterior.

sbihep wraps sbi rather than rewriting it: :func:`fit_posterior` draws θ from a box prior built
from a :class:`~sbihep.params.ParameterSpace` (or takes a given prior), runs a simulator, trains
``sbi.inference.NPE`` / ``NLE`` / ``NRE`` with sbi's own training loop and builds the sbi posterior
(direct sampling for NPE; MCMC or rejection sampling for NLE and NRE).  Held-out simulations then
give the calibration diagnostics of sbi: simulation-based calibration (``run_sbc`` + ``check_sbc``:
ranks, their Kolmogorov–Smirnov p-values and C2ST scores; Talts et al. arXiv:1804.06788) and TARP
(``run_tarp`` + ``check_tarp``: expected coverage vs credibility and its area-to-curve statistic;
Lemos et al. arXiv:2302.03026).

Simulators map θ (B, P) float64 to x (B, D):

* :class:`GaussianToySimulator` — n iid draws of the Gaussian toy (:class:`~sbihep.estimators.toys.GaussianToy`);
  its exact posterior under the flat prior is a truncated normal (:meth:`GaussianToySimulator.exact_posterior`);
* :class:`EventSetSimulator` — a *set* of n events drawn from an :class:`~sbihep.events.eventset.EventSet`
  by exact reweighting to θ (:func:`~sbihep.events.augment.draw_at_theta`), flattened to n·F per-event
  observables; used with a set embedding (:mod:`sbihep.estimators.embedding`), see :class:`SetEmbedding`;
* :class:`FunctionSimulator` — any user callable ``f(theta, rng)`` or ``f(theta)``.

A trained posterior saves as ``config.json`` (method, prior bounds, network and embedding options,
sampler options, diagnostics, sbihep and sbi versions) plus ``state_dict.pt`` of the density (or
ratio) estimator — never a pickle — and :func:`load_posterior` rebuilds the identical sbi posterior.

Units: θ in the units of the parameter space (c_i/Λ² in TeV⁻² for Wilson coefficients); x in the
simulator's units (GeV for momenta).  Networks are float32; θ and x leave this module as float64
xarray objects with dims ``sample``, ``parameter`` (and ``observation`` for a batch of x).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import random
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from sbihep._version import __version__
from sbihep.errors import InvalidInputError, OutOfBoundsError, ShapeError
from sbihep.estimators.base import read_estimator, save_estimator
from sbihep.estimators.embedding import EMBEDDINGS, build_embedding
from sbihep.estimators.toys import GaussianToy
from sbihep.estimators.train import resolve_device
from sbihep.events.augment import draw_at_theta
from sbihep.events.eventset import EventSet
from sbihep.params import ParameterSpace
from sbihep.parallel import map_jobs

__all__ = [
    "METHODS",
    "EventSetSimulator",
    "FunctionSimulator",
    "GaussianToySimulator",
    "PosteriorResult",
    "SetEmbedding",
    "calibration_issues",
    "diagnose",
    "fit_posterior",
    "load_posterior",
]

#: the sbi methods wrapped here: neural posterior, likelihood and ratio estimation
METHODS = ("npe", "nle", "nre")

_KIND = "sbi_posterior"
_DEFAULT_NETWORK = {
    "npe": {"model": "maf", "hidden_features": 50, "num_transforms": 5},
    "nle": {"model": "maf", "hidden_features": 50, "num_transforms": 5},
    "nre": {"model": "resnet", "hidden_features": 50},
}
_DEFAULT_TRAINING = {
    "training_batch_size": 200,
    "learning_rate": 5e-4,
    "validation_fraction": 0.1,
    "stop_after_epochs": 20,
    "max_num_epochs": 500,
}
_DEFAULT_SAMPLER = {"num_chains": 20, "warmup_steps": 100, "thin": 1}
_QUIET_WARNINGS = ("In one-dimensional output space", "Batched sampling not implemented", "Number of", "Capping max_sampling_batch_size")


# --------------------------------------------------------------------------------------------
# simulators
# --------------------------------------------------------------------------------------------


class GaussianToySimulator:
    """θ (B, 1) ↦ x (B, n_obs): n_obs independent draws of the Gaussian toy, x_j ~ N(θ, σ_z² + σ_x²).

    With the flat prior on the toy's bounds [lo, hi] the exact posterior is
    N(x̄, σ²/n_obs) truncated to [lo, hi] (σ² = σ_z² + σ_x²), see :meth:`exact_posterior`.

    Args:
        toy: the :class:`~sbihep.estimators.toys.GaussianToy` (default σ_z = 2, σ_x = 1, θ ∈ [−2, 2]).
        n_obs: draws per simulation (the "events" of one observation).
    """

    def __init__(self, toy: GaussianToy | None = None, n_obs: int = 1) -> None:
        self.toy = toy if toy is not None else GaussianToy()
        if int(n_obs) < 1:
            raise InvalidInputError(f"n_obs must be ≥ 1, got {n_obs}")
        self.n_obs = int(n_obs)
        self.space = self.toy.space

    @property
    def event_shape(self) -> tuple[int, int]:
        """(events per observation, features per event) = (n_obs, 1)."""
        return (self.n_obs, 1)

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """θ (B, 1) → x (B, n_obs) float64."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != 1:
            raise ShapeError(f"theta: expected shape (B, 1) for the Gaussian toy, got {theta.shape}")
        x, _ = self.toy.simulate(np.repeat(theta[:, 0], self.n_obs), rng)
        return x.reshape(theta.shape[0], self.n_obs)

    def exact_posterior(self, x: np.ndarray):
        """The exact posterior p(θ|x) for the flat prior: a frozen ``scipy.stats.truncnorm``.

        Args:
            x: one observation, (n_obs,) or (1, n_obs).
        """
        from scipy.stats import truncnorm

        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != (self.n_obs,):
            raise ShapeError(f"x: expected {self.n_obs} values (one observation), got {x.size}")
        lo, hi = self.space["theta"].bounds
        loc, scale = float(x.mean()), self.toy.sigma_total / math.sqrt(self.n_obs)
        return truncnorm((lo - loc) / scale, (hi - loc) / scale, loc=loc, scale=scale)


class EventSetSimulator:
    """θ (B, P) ↦ x (B, n_events·F): for each θ a set of ``n_events`` events drawn from an EventSet
    with probability ∝ w_i(θ) (exact reweighting, with replacement), reporting F per-event observables.

    Row b of x is the events of set b one after another: x[b].reshape(n_events, F) gives event j's
    observables in row j (in the order of ``observables``).  Operators of the EventSet that are not
    in ``space`` stay at 0 (their SM value).

    Args:
        events: the base sample; needs observables (``EventSet.with_observables``).
        observables: names of the F per-event observables (units as stored, e.g. GeV).
        n_events: events per observation (per simulated set).
        space: the inferred parameters; every name must be an operator of ``events``.
    """

    def __init__(self, events: EventSet, observables: Sequence[str], n_events: int, space: ParameterSpace) -> None:
        if not isinstance(events, EventSet):
            raise InvalidInputError(f"events must be an EventSet, got {type(events).__name__}")
        if not isinstance(space, ParameterSpace) or len(space) == 0:
            raise InvalidInputError(f"space must be a non-empty ParameterSpace, got {space!r}")
        unknown = sorted(set(space.names) - set(events.operators))
        if unknown:
            raise InvalidInputError(f"space: parameter(s) {unknown} are not operators of the EventSet ({events.operators})")
        available = [str(o) for o in events.observables()["observable"].values]
        observables = [str(o) for o in observables]
        missing = [o for o in observables if o not in available]
        if not observables or missing:
            raise InvalidInputError(f"observables: {missing or 'none given'} not in the EventSet's observables {available}")
        if int(n_events) < 1:
            raise InvalidInputError(f"n_events must be ≥ 1, got {n_events}")
        self.events, self.space, self.observables, self.n_events = events, space, observables, int(n_events)
        self._x = np.asarray(events.observables().sel(observable=observables).values, dtype=np.float64)
        if not np.isfinite(self._x).all():
            raise InvalidInputError("events: the selected observables contain NaN or infinite values")
        self._columns = [events.operators.index(name) for name in space.names]
        #: mean effective sample size of the last call's reweighting (events)
        self.last_ess = math.nan

    @property
    def event_shape(self) -> tuple[int, int]:
        """(events per observation, observables per event)."""
        return (self.n_events, len(self.observables))

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """θ (B, P) in ``space`` order → x (B, n_events·F) float64."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != len(self.space):
            raise ShapeError(f"theta: expected shape (B, {len(self.space)}) for {list(self.space.names)}, got {theta.shape}")
        full = np.zeros((theta.shape[0], len(self.events.operators)))
        full[:, self._columns] = theta
        idx, self.last_ess = draw_at_theta(self.events, torch.from_numpy(np.repeat(full, self.n_events, axis=0)), rng)
        return self._x[idx].reshape(theta.shape[0], self.n_events * len(self.observables))


class FunctionSimulator:
    """A user callable θ (B, P) → x (B, D) as a simulator.

    ``fn(theta, rng)`` receives a ``numpy.random.Generator`` (seeded by :func:`fit_posterior`);
    a one-argument ``fn(theta)`` must then be deterministic or manage its own seed.

    Args:
        fn: the simulator.
        space: its parameter space (optional; :func:`fit_posterior` may be given one instead).
        event_shape: (n_events, F) when x is a flattened set of events (for a set embedding).
    """

    def __init__(self, fn: Callable, space: ParameterSpace | None = None, event_shape: tuple[int, int] | None = None) -> None:
        if not callable(fn):
            raise InvalidInputError(f"fn must be callable, got {type(fn).__name__}")
        self.fn, self.space, self.event_shape = fn, space, (tuple(int(v) for v in event_shape) if event_shape else None)
        try:
            params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
            self._takes_rng = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
        except (TypeError, ValueError):
            self._takes_rng = True

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self.fn(theta, rng) if self._takes_rng else self.fn(theta)
        return np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float64)


def _values(a):
    """The array inside an xarray/pandas object; tensors and arrays as they are (a tensor's
    ``.values`` is a method, not its data)."""
    return a if isinstance(a, (torch.Tensor, np.ndarray)) else getattr(a, "values", a)


def _float_tensor(a) -> torch.Tensor:
    a = _values(a)
    return a.detach().cpu().float() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float32))


def _float64(a) -> np.ndarray:
    a = _values(a)
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


def _simulate_chunk(simulator, theta: np.ndarray, seed: int) -> np.ndarray:
    return simulator(theta, np.random.default_rng(seed))


def _run_simulator(simulator, theta: np.ndarray, seed: int, chunk: int, n_workers: int, quiet: bool) -> np.ndarray:
    """x (N, D) float64 for θ (N, P), simulated in chunks with their own seeds (through map_jobs)."""
    seeds = np.random.SeedSequence(seed).generate_state(max(1, math.ceil(len(theta) / chunk)))
    jobs = [(simulator, theta[i : i + chunk], int(s)) for i, s in zip(range(0, len(theta), chunk), seeds)]
    parts = map_jobs(_simulate_chunk, jobs, n_workers=n_workers, progress=not quiet, desc="simulations")
    x = []
    for (_, th, _), part in zip(jobs, parts):
        part = np.asarray(part, dtype=np.float64)
        if part.ndim == 1:
            part = part[:, None]
        if part.ndim != 2 or part.shape[0] != len(th):
            raise ShapeError(f"simulator: returned shape {part.shape} for θ of shape {th.shape}; expected (B, D) with B = {len(th)}")
        x.append(part)
    x = np.concatenate(x)
    if not np.isfinite(x).all():
        raise InvalidInputError(f"simulator: returned NaN or infinite values in {int((~np.isfinite(x)).any(1).sum())} simulations")
    return x


# --------------------------------------------------------------------------------------------
# embedding adapter
# --------------------------------------------------------------------------------------------


class SetEmbedding(nn.Module):
    """Adapter from sbi's one-tensor embedding interface to a set encoder.

    sbi hands an embedding net the flat x (B, n_events·F); this reshapes it to (B, n_events, F) and
    applies a :mod:`sbihep.estimators.embedding` encoder (DeepSet or set transformer), which is
    permutation invariant over the events and standardises their features itself.

    Args:
        config: ``{"type": "deepset" | "set_transformer", "n_out": k, …}`` (constructor options of
            the encoder); ``n_object_features`` is set to F.
        event_shape: (n_events, F).
    """

    def __init__(self, config: Mapping, event_shape: Sequence[int]) -> None:
        super().__init__()
        n_events, n_features = (int(v) for v in event_shape)
        self.event_shape = (n_events, n_features)
        self.config = {**dict(config), "n_object_features": n_features}
        self.encoder = build_embedding(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_events·F) → (B, n_out)."""
        return self.encoder(x.reshape(x.shape[0], *self.event_shape))

    def fit_normalisation(self, x: torch.Tensor) -> "SetEmbedding":
        """Per-feature standardisation from training x (B, n_events·F)."""
        self.encoder.fit_normalisation(x.reshape(x.shape[0], *self.event_shape))
        return self


def _embedding_config(embedding, method: str, event_shape) -> dict | None:
    if embedding is None:
        return None
    if method == "nle":
        raise InvalidInputError("embedding: NLE models the density of x itself, so an embedding of x does not apply; use 'npe' or 'nre'")
    if isinstance(embedding, str):
        embedding = {"type": embedding}
    if not isinstance(embedding, Mapping) or embedding.get("type") not in EMBEDDINGS:
        raise InvalidInputError(f"embedding: need None, one of {sorted(EMBEDDINGS)} or a config with a 'type' key, got {embedding!r}")
    if event_shape is None:
        raise InvalidInputError("embedding: a set embedding needs event_shape=(n_events, n_features) (or a simulator that defines event_shape)")
    config = {"n_out": 16, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in embedding.items()}}
    config.pop("n_object_features", None)
    return {"config": config, "event_shape": [int(v) for v in event_shape]}


# --------------------------------------------------------------------------------------------
# sbi plumbing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _global_rngs_seeded(seed: int):
    """Seed every global RNG that sbi and its samplers draw from — torch's, numpy's legacy global state
    (sbi's ``slice_np`` MCMC samplers draw from it) and Python's ``random`` — from ``seed``, and
    restore all three afterwards so the caller's streams are untouched."""
    seed = int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


@contextlib.contextmanager
def _seeded(seed: int, quiet: bool = True):
    """Seed the global RNGs sbi draws from (see :func:`_global_rngs_seeded`); silence sbi's prints when quiet."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed: must be a non-negative integer, got {seed!r}")
    with _global_rngs_seeded(seed), warnings.catch_warnings():
        if quiet:
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            yield


def _box_prior(low: Sequence[float], high: Sequence[float], device: str):
    from sbi.utils import BoxUniform

    return BoxUniform(torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32), device=device)


def _builder(method: str, network: Mapping, embedding_net: nn.Module | None):
    from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn

    options = dict(network)
    model = options.pop("model")
    if method == "npe":
        if embedding_net is not None:
            return posterior_nn(model=model, embedding_net=embedding_net, z_score_x="none", **options)
        return posterior_nn(model=model, **options)
    if method == "nle":
        return likelihood_nn(model=model, **options)
    if embedding_net is not None:
        return classifier_nn(model=model, embedding_net_x=embedding_net, z_score_x="none", **options)
    return classifier_nn(model=model, **options)


def _make_posterior(method: str, estimator: nn.Module, prior, sample_with: str, sampler: Mapping, device: str):
    """The sbi posterior around a trained estimator (the same construction after training and loading)."""
    from sbi.inference import DirectPosterior, MCMCPosterior, RejectionPosterior
    from sbi.inference import likelihood_estimator_based_potential, ratio_estimator_based_potential

    estimator.eval()
    if method == "npe":
        return DirectPosterior(posterior_estimator=estimator, prior=prior, device=device)
    make_potential = likelihood_estimator_based_potential if method == "nle" else ratio_estimator_based_potential
    potential, transform = make_potential(estimator, prior, x_o=None)
    if sample_with == "rejection":
        return RejectionPosterior(potential, proposal=prior, theta_transform=transform, device=device)
    return MCMCPosterior(potential, proposal=prior, theta_transform=transform, method="slice_np_vectorized", device=device, **sampler)


class _NoTracking:
    """An sbi experiment tracker that records nothing (sbi's default writes TensorBoard logs to ./sbi-logs);
    sbihep keeps its own training summary."""

    log_dir = None

    def log_metric(self, name, value, step=None) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def add_figure(self, name, figure, step=None) -> None:
        pass

    def flush(self) -> None:
        pass


def _trainer(method: str, prior, builder, device: str, quiet: bool):
    from sbi.inference import NLE, NPE, NRE

    cls = {"npe": NPE, "nle": NLE, "nre": NRE}[method]
    key = "classifier" if method == "nre" else "density_estimator"
    return cls(prior=prior, **{key: builder}, device=device, show_progress_bars=not quiet, tracker=_NoTracking())


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------


def diagnose(
    posterior,
    theta,
    x,
    *,
    parameter_names: Sequence[str] | None = None,
    n_posterior_samples: int = 200,
    num_bins: int | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> xr.Dataset:
    """SBC and TARP of a posterior on held-out simulations (θ_k ~ prior, x_k ~ p(x|θ_k)).

    Uses sbi's ``run_sbc``/``check_sbc`` and ``run_tarp``/``check_tarp``.  ``posterior`` is an sbi
    posterior, a :class:`PosteriorResult`, or anything with ``sample_batched(sample_shape, x,
    show_progress_bars)`` returning (S, K, P) samples.

    Args:
        posterior: the posterior to check.
        theta: (K, P) true parameters, drawn from the prior.
        x: (K, D) simulations at them.
        parameter_names: names for the ``parameter`` coordinate (default θ0, θ1, …).
        n_posterior_samples: posterior samples per held-out simulation.
        num_bins: credibility bins of TARP (default K // 10).
        seed: seeds torch's RNG for the sampling and TARP reference points.
        quiet: no progress bars.

    Returns:
        Dataset with ``sbc_rank`` (simulation, parameter) in [0, n_posterior_samples];
        ``sbc_ks_pvalue``, ``sbc_c2st_ranks`` and ``sbc_c2st_dap`` (parameter) — KS p-value of rank
        uniformity and C2ST accuracies (0.5 = indistinguishable) of ranks vs uniform and of the
        data-averaged posterior vs the prior; ``tarp_ecp`` (credibility): the expected coverage at
        each credibility level (on the diagonal for a calibrated posterior); scalars
        ``tarp_atc`` (area between coverage and diagonal above credibility 0.5: < 0 too narrow /
        biased, > 0 too wide) and ``tarp_ks_pvalue``.
    """
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    theta_t = _float_tensor(theta)
    x_t = _float_tensor(x)
    if theta_t.ndim != 2 or x_t.ndim != 2 or theta_t.shape[0] != x_t.shape[0]:
        raise ShapeError(f"theta, x: expected (K, P) and (K, D) with the same K, got {tuple(theta_t.shape)} and {tuple(x_t.shape)}")
    if theta_t.shape[0] < 20:
        raise InvalidInputError(f"theta: need at least 20 held-out simulations for SBC/TARP, got {theta_t.shape[0]}")
    if not (torch.isfinite(theta_t).all() and torch.isfinite(x_t).all()):
        raise InvalidInputError("theta, x: contain NaN or infinite values")
    if int(n_posterior_samples) < 10:
        raise InvalidInputError(f"n_posterior_samples must be ≥ 10, got {n_posterior_samples}")
    n_par = theta_t.shape[1]
    names = list(parameter_names) if parameter_names is not None else [f"theta{i}" for i in range(n_par)]
    if len(names) != n_par:
        raise ShapeError(f"parameter_names: {len(names)} names for {n_par} parameters")
    with _seeded(seed, quiet):
        ranks, dap = run_sbc(theta_t, x_t, posterior, num_posterior_samples=int(n_posterior_samples), show_progress_bar=not quiet)
        checks = check_sbc(ranks, theta_t, dap, num_posterior_samples=int(n_posterior_samples))
        ecp, alpha = run_tarp(theta_t, x_t, posterior, num_posterior_samples=int(n_posterior_samples), num_bins=num_bins, show_progress_bar=not quiet)
        atc, ks_tarp = check_tarp(ecp, alpha)
    return xr.Dataset(
        {
            "sbc_rank": (("simulation", "parameter"), ranks.numpy().astype(np.float64)),
            "sbc_ks_pvalue": ("parameter", checks["ks_pvals"].numpy().astype(np.float64)),
            "sbc_c2st_ranks": ("parameter", checks["c2st_ranks"].reshape(-1).numpy().astype(np.float64)),
            "sbc_c2st_dap": ("parameter", checks["c2st_dap"].reshape(-1).numpy().astype(np.float64)),
            "tarp_ecp": ("credibility", ecp.numpy().astype(np.float64)),
            "tarp_atc": ((), float(atc)),
            "tarp_ks_pvalue": ((), float(ks_tarp)),
        },
        coords={"parameter": names, "simulation": np.arange(theta_t.shape[0]), "credibility": alpha.numpy().astype(np.float64)},
        attrs={"n_posterior_samples": int(n_posterior_samples), "seed": int(seed)},
    )


def calibration_issues(diagnostics: xr.Dataset, *, ks_threshold: float = 0.01, c2st_tolerance: float = 0.2, atc_tolerance: float = 0.05) -> list[str]:
    """Human-readable reasons why a posterior looks miscalibrated (empty list: none found).

    Flags a parameter whose SBC ranks are not uniform (KS p-value < ``ks_threshold``, or rank C2ST
    accuracy > 0.5 + ``c2st_tolerance``; C2ST on a few hundred ranks scatters by ±0.1), and a TARP area-to-curve |ATC| > ``atc_tolerance``.
    """
    issues = []
    for name in diagnostics["parameter"].values:
        p = float(diagnostics["sbc_ks_pvalue"].sel(parameter=name))
        if p < ks_threshold:
            issues.append(f"SBC ranks of {name} are not uniform (KS p-value {p:.2g} < {ks_threshold})")
        c = float(diagnostics["sbc_c2st_ranks"].sel(parameter=name))
        if c > 0.5 + c2st_tolerance:
            issues.append(f"SBC ranks of {name} are distinguishable from uniform (C2ST accuracy {c:.2f})")
    atc = float(diagnostics["tarp_atc"])
    if abs(atc) > atc_tolerance:
        issues.append(f"TARP coverage is off the diagonal (ATC {atc:+.3f}: {'too narrow or biased' if atc < 0 else 'too wide'})")
    return issues


# --------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------


class PosteriorResult:
    """A trained sbi posterior with sbihep's input checks, xarray outputs, diagnostics and IO.

    Attributes:
        method: ``"npe"``, ``"nle"`` or ``"nre"``.
        space: the parameter space (order of the θ columns).
        posterior: the sbi posterior (``DirectPosterior`` for NPE, ``MCMCPosterior`` /
            ``RejectionPosterior`` for NLE and NRE).
        estimator: the trained torch density (ratio) estimator.
        prior: the torch prior.
        x_dim: D, the width of one observation.
        diagnostics: :func:`diagnose` on held-out simulations (None when skipped).
        history: training losses per epoch (dim ``epoch``).
    """

    def __init__(self, config: dict, estimator: nn.Module, prior, posterior, space: ParameterSpace, diagnostics: xr.Dataset | None, history: xr.Dataset) -> None:
        self.config, self.estimator, self.prior, self.posterior = config, estimator, prior, posterior
        self.method, self.space, self.x_dim = config["method"], space, int(config["x_dim"])
        self.diagnostics, self.history = diagnostics, history

    def __repr__(self) -> str:
        return f"PosteriorResult({self.method.upper()}, {self.space!r}, x_dim={self.x_dim})"

    # ---- input checks ----------------------------------------------------------------
    def _x(self, x, argument: str = "x") -> torch.Tensor:
        values = _values(x)
        t = values.detach().cpu() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))
        t = t.to(torch.float32)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != self.x_dim:
            raise ShapeError(f"{argument}: expected shape ({self.x_dim},) or (B, {self.x_dim}) — the posterior was trained on x of width {self.x_dim} — got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise InvalidInputError(f"{argument}: contains NaN or infinite values")
        return t

    def _theta(self, theta, argument: str = "theta") -> torch.Tensor:
        if isinstance(theta, Mapping):
            theta = self.space.to_vector(theta)[None]
        values = _values(theta)
        t = values.detach().cpu().to(torch.float64) if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))
        if t.ndim == 1 and len(self.space) == 1:
            t = t[:, None]
        elif t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != len(self.space):
            raise ShapeError(f"{argument}: expected shape (N, {len(self.space)}) for {list(self.space.names)}, got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise InvalidInputError(f"{argument}: contains NaN or infinite values")
        prior = self.config["prior"]
        if prior["type"] == "box":
            lo, hi = torch.tensor(prior["low"], dtype=torch.float64), torch.tensor(prior["high"], dtype=torch.float64)
            outside = ((t < lo) | (t > hi)).any(0)
            if outside.any():
                names = [self.space.names[i] for i in np.flatnonzero(outside.numpy())]
                raise OutOfBoundsError(f"{argument}: values of {names} lie outside the prior bounds {dict(zip(self.space.names, zip(prior['low'], prior['high'])))}")
        return t.to(torch.float32)

    # ---- posterior -------------------------------------------------------------------
    def sample(self, x, n_samples: int = 1000, *, seed: int = 0, quiet: bool = True) -> xr.DataArray:
        """Posterior samples θ ~ p(θ|x).

        Args:
            x: one observation (D,) → dims (sample, parameter); or a batch (B, D) → dims
                (sample, observation, parameter).
            n_samples: samples per observation.
            seed: seeds the sampler (same seed, same samples on CPU, in any process: torch's,
                numpy's global and Python's ``random`` RNG are seeded from it and restored afterwards).
        """
        if int(n_samples) < 1:
            raise InvalidInputError(f"n_samples must be ≥ 1, got {n_samples}")
        xt = self._x(x)
        with _seeded(seed, quiet):
            if xt.shape[0] == 1:
                s = self.posterior.sample((int(n_samples),), x=xt, show_progress_bars=not quiet)
                dims = ("sample", "parameter")
            else:
                s = self.posterior.sample_batched((int(n_samples),), x=xt, show_progress_bars=not quiet)
                dims = ("sample", "observation", "parameter")
        return xr.DataArray(s.detach().cpu().numpy().astype(np.float64), dims=dims, coords={"parameter": list(self.space.names)}, name="theta")

    def sample_batched(self, sample_shape, x, show_progress_bars: bool = False) -> torch.Tensor:
        """sbi's interface (used by :func:`diagnose`): (S, B, P) float32 tensor for x (B, D)
        (one observation at a time for a rejection sampler, which has no batched sampling)."""
        xt = self._x(x)
        try:
            return self.posterior.sample_batched(sample_shape, x=xt, show_progress_bars=show_progress_bars)
        except NotImplementedError:
            draws = [self.posterior.sample(sample_shape, x=row[None], show_progress_bars=False) for row in xt]
            return torch.stack(draws, dim=-2)

    def log_prob(self, theta, x, *, leakage_correction: bool = True, seed: int = 0) -> np.ndarray:
        """log p(θ|x) for θ (N, P) (or a name→value mapping) at one observation x (D,); (N,) float64.

        NPE: the normalised posterior density (with ``leakage_correction`` the flow's mass outside
        the prior box is divided out, estimated from 10⁴ seeded samples).  NLE and NRE: the
        unnormalised log posterior, log p̂(x|θ) + log p(θ) resp. log r̂(x, θ) + log p(θ), which
        differs from log p(θ|x) by a constant in θ.
        """
        t, xt = self._theta(theta), self._x(x)
        if xt.shape[0] != 1:
            raise ShapeError(f"x: log_prob takes one observation, got {xt.shape[0]}")
        with _seeded(seed):
            if self.method == "npe":
                out = self.posterior.log_prob(t, x=xt, norm_posterior=leakage_correction)
            else:
                out = self.posterior.log_prob(t, x=xt)
        return out.detach().cpu().numpy().astype(np.float64)

    def map(self, x, *, seed: int = 0, num_iter: int = 300, num_to_optimize: int = 20) -> xr.DataArray:
        """Maximum a posteriori θ (dim ``parameter``) by sbi's gradient ascent from the best of
        posterior samples."""
        xt = self._x(x)
        if xt.shape[0] != 1:
            raise ShapeError(f"x: map takes one observation, got {xt.shape[0]}")
        with _seeded(seed):
            self.posterior.set_default_x(xt)
            best = self.posterior.map(num_iter=int(num_iter), num_to_optimize=int(num_to_optimize), num_init_samples=max(100, 5 * int(num_to_optimize)), show_progress_bars=False, force_update=True)
        return xr.DataArray(best.detach().cpu().numpy().reshape(-1).astype(np.float64), dims=("parameter",), coords={"parameter": list(self.space.names)}, name="map")

    def summary(self, x, n_samples: int = 2000, *, quantiles: Sequence[float] = (0.16, 0.5, 0.84), seed: int = 0) -> xr.Dataset:
        """Posterior mean, standard deviation and quantiles from ``n_samples`` samples at one x
        (variables ``mean``, ``std`` with dim ``parameter``; ``quantile`` with dims (quantile, parameter))."""
        s = self.sample(x, n_samples, seed=seed)
        if "observation" in s.dims:
            raise ShapeError("x: summary takes one observation")
        return xr.Dataset({"mean": s.mean("sample"), "std": s.std("sample", ddof=1), "quantile": s.quantile(list(quantiles), dim="sample")}, attrs={"n_samples": int(n_samples), "method": self.method})

    def diagnose(self, theta, x, **options) -> xr.Dataset:
        """:func:`diagnose` this posterior on (θ (K, P), x (K, D)) simulations."""
        return diagnose(self, self._theta(theta).numpy(), self._x(x).numpy(), parameter_names=self.space.names, **options)

    # ---- IO ----------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Directory with ``config.json`` and ``state_dict.pt`` (tensors only); see :func:`load_posterior`."""
        config = dict(self.config)
        config["diagnostics"] = None if self.diagnostics is None else self.diagnostics.to_dict(data="list")
        config["history"] = self.history.to_dict(data="list")
        return save_estimator(path, config, self.estimator.state_dict())

    @classmethod
    def load(cls, path, *, prior=None, device: str = "cpu") -> "PosteriorResult":
        return load_posterior(path, prior=prior, device=device)


def _build_estimator(config: Mapping, prior, device: str) -> tuple[nn.Module, Any]:
    """A fresh estimator of the saved shape: sbi's builder applied to placeholder batches."""
    emb = config["embedding"]
    embedding_net = SetEmbedding(emb["config"], emb["event_shape"]) if emb else None
    builder = _builder(config["method"], config["network"], embedding_net)
    gen = torch.Generator().manual_seed(0)
    theta = prior.sample((64,)).cpu().float()
    x = torch.randn(64, int(config["x_dim"]), generator=gen)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUIET_WARNINGS[0])
        net = builder(theta, x)
    return net.to(device), builder


def load_posterior(path, *, prior=None, device: str = "cpu") -> PosteriorResult:
    """Rebuild a :class:`PosteriorResult` written by :meth:`PosteriorResult.save`.

    Args:
        path: the saved directory.
        prior: needed only when the posterior was trained with a custom (non-box) prior.
        device: where to put the estimator (``"auto"``: CUDA when present).
    """
    config, state = read_estimator(path, _KIND)
    device = str(resolve_device(device))
    missing = [k for k in ("space", "prior", "method", "network", "embedding", "x_dim", "sample_with", "sampler", "history") if k not in config]
    if missing:
        raise InvalidInputError(f"path: config.json of {str(path)!r} lacks the field(s) {missing}")
    space = ParameterSpace.from_dict(config["space"])
    if config["prior"]["type"] == "box":
        prior = _box_prior(config["prior"]["low"], config["prior"]["high"], device)
    elif prior is None:
        raise InvalidInputError(f"prior: {str(path)!r} was trained with a custom prior; pass it as prior=")
    with _seeded(config.get("seed", 0)):
        estimator, _ = _build_estimator(config, prior, device)
    try:
        estimator.load_state_dict(state)
    except RuntimeError as exc:
        raise InvalidInputError(f"path: the weights in {str(path)!r} do not fit the saved network configuration ({exc})") from exc
    posterior = _make_posterior(config["method"], estimator, prior, config["sample_with"], config["sampler"], device)
    diagnostics = xr.Dataset.from_dict(config["diagnostics"]) if config.get("diagnostics") else None
    history = xr.Dataset.from_dict(config["history"])
    rest = {k: v for k, v in config.items() if k not in ("diagnostics", "history")}
    return PosteriorResult(rest, estimator, prior, posterior, space, diagnostics, history)


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------


def _as_simulator(data):
    if isinstance(data, (GaussianToySimulator, EventSetSimulator, FunctionSimulator)):
        return data
    if callable(data):
        return FunctionSimulator(data)
    return None


def _check_pairs(theta, x, n_par: int) -> tuple[np.ndarray, np.ndarray]:
    theta, x = _float64(theta), _float64(x)
    if theta.ndim == 1 and n_par == 1:
        theta = theta[:, None]
    if x.ndim == 1:
        x = x[:, None]
    if theta.ndim != 2 or theta.shape[1] != n_par:
        raise ShapeError(f"theta: expected shape (N, {n_par}), got {theta.shape}")
    if x.ndim != 2 or x.shape[0] != theta.shape[0]:
        raise ShapeError(f"x: expected shape (N, D) with N = {theta.shape[0]} rows like theta, got {x.shape}")
    if not np.isfinite(theta).all():
        raise InvalidInputError("theta: contains NaN or infinite values")
    if not np.isfinite(x).all():
        raise InvalidInputError(f"x: {int((~np.isfinite(x)).any(1).sum())} rows contain NaN or infinite values")
    return theta, x


def fit_posterior(
    method: str,
    data,
    *,
    space: ParameterSpace | None = None,
    prior=None,
    n_simulations: int = 2000,
    embedding: str | Mapping | None = None,
    event_shape: tuple[int, int] | None = None,
    network: Mapping | None = None,
    training: Mapping | None = None,
    sample_with: str | None = None,
    sampler: Mapping | None = None,
    n_diagnostic: int = 200,
    n_posterior_samples: int = 200,
    chunk_size: int = 10_000,
    n_workers: int = 1,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
) -> PosteriorResult:
    """Train an sbi posterior (NPE, NLE or NRE) and attach SBC/TARP diagnostics.

    Args:
        method: ``"npe"`` (neural posterior estimation), ``"nle"`` (likelihood) or ``"nre"`` (ratio).
        data: a simulator — :class:`GaussianToySimulator`, :class:`EventSetSimulator`,
            :class:`FunctionSimulator` or a callable ``f(theta (B, P), rng) -> x (B, D)`` — or a
            pair of arrays ``(theta (N, P), x (N, D))`` simulated from the prior.
        space: the parameter space (default: the simulator's ``space``); the box prior is uniform
            in its bounds.
        prior: a torch distribution over θ (P,) to use instead of the box (saved posteriors then
            need it again at :func:`load_posterior`).
        n_simulations: training simulations drawn θ ~ prior (simulator only; with arrays, all rows
            not held out for diagnostics train).
        embedding: set embedding of x for NPE/NRE: ``"deepset"``, ``"set_transformer"`` or a
            config ``{"type": …, "n_out": …, "hidden": …}`` (see :mod:`sbihep.estimators.embedding`).
        event_shape: (n_events, F) of a flattened set x (default: the simulator's).
        network: sbi network options, e.g. ``{"model": "nsf", "hidden_features": 64, "num_transforms": 3}``
            (NRE: ``{"model": "mlp" | "resnet", "hidden_features": …}``).
        training: options of sbi's ``train()``: training_batch_size, learning_rate,
            validation_fraction, stop_after_epochs, max_num_epochs.
        sample_with: NLE/NRE sampler, ``"mcmc"`` (slice sampling, default) or ``"rejection"``.
        sampler: MCMC options (num_chains, warmup_steps, thin).
        n_diagnostic: held-out simulations for SBC/TARP (0: skip the diagnostics).
        n_posterior_samples: posterior samples per held-out simulation.
        chunk_size, n_workers: simulation chunks and worker processes (through :func:`sbihep.parallel.map_jobs`).
        seed: fixes θ draws, simulations, network initialisation, the train/validation split and
            the diagnostics.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        quiet: no progress output.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed: must be a non-negative integer, got {seed!r}")
    simulator = _as_simulator(data)
    if simulator is None and not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise InvalidInputError(f"data: need a simulator (callable) or a (theta, x) pair of arrays, got {type(data).__name__}")
    space = space if space is not None else getattr(simulator, "space", None)
    if not isinstance(space, ParameterSpace) or len(space) == 0:
        raise InvalidInputError(f"space: need a non-empty ParameterSpace (the simulator has none), got {space!r}")
    n_par = len(space)
    if sample_with is None:
        sample_with = "direct" if method == "npe" else "mcmc"
    if method == "npe" and sample_with != "direct" or method != "npe" and sample_with not in ("mcmc", "rejection"):
        raise InvalidInputError(f"sample_with: {sample_with!r} is not available for {method.upper()} (NPE: 'direct'; NLE/NRE: 'mcmc' or 'rejection')")
    n_diagnostic = int(n_diagnostic)
    if n_diagnostic and n_diagnostic < 20:
        raise InvalidInputError(f"n_diagnostic must be 0 (no diagnostics) or ≥ 20, got {n_diagnostic}")
    unknown = sorted(set(training or {}) - set(_DEFAULT_TRAINING))
    if unknown:
        raise InvalidInputError(f"training: unknown option(s) {unknown}; known {sorted(_DEFAULT_TRAINING)}")
    train_options = {**_DEFAULT_TRAINING, **dict(training or {})}
    network_options = {**_DEFAULT_NETWORK[method], **dict(network or {})}
    sampler_options = {**_DEFAULT_SAMPLER, **dict(sampler or {})} if method != "npe" else {}
    dev = str(resolve_device(device))
    event_shape = event_shape if event_shape is not None else getattr(simulator, "event_shape", None)
    emb_config = _embedding_config(embedding, method, event_shape)

    # prior
    bounds = np.array([p.bounds for p in space], dtype=np.float64)
    if prior is None:
        if not np.isfinite(bounds).all():
            raise InvalidInputError(f"space: a box prior needs finite bounds, got {space!r}; pass prior= instead")
        prior_config = {"type": "box", "low": bounds[:, 0].tolist(), "high": bounds[:, 1].tolist()}
        prior = _box_prior(prior_config["low"], prior_config["high"], dev)
    else:
        if not (hasattr(prior, "sample") and hasattr(prior, "log_prob")):
            raise InvalidInputError(f"prior: need a torch distribution with sample and log_prob, got {type(prior).__name__}")
        prior_config = {"type": "custom", "repr": repr(prior)}

    # simulations
    sim_seed, diag_seed = np.random.SeedSequence(seed).generate_state(2)
    with _seeded(seed):
        if simulator is not None:
            n_simulations = int(n_simulations)
            if n_simulations < 50:
                raise InvalidInputError(f"n_simulations must be ≥ 50, got {n_simulations}")
            theta_all = prior.sample((n_simulations + n_diagnostic,)).cpu().to(torch.float64).numpy()
            if theta_all.shape != (n_simulations + n_diagnostic, n_par):
                raise ShapeError(f"prior: samples have shape {theta_all.shape[1:]}, expected ({n_par},) for {list(space.names)}")
    if simulator is not None:
        theta_train, theta_diag = theta_all[:n_simulations], theta_all[n_simulations:]
        x_train = _run_simulator(simulator, theta_train, int(sim_seed), int(chunk_size), int(n_workers), quiet)
        x_diag = _run_simulator(simulator, theta_diag, int(diag_seed), int(chunk_size), int(n_workers), quiet) if n_diagnostic else x_train[:0]
    else:
        theta_arr, x_arr = _check_pairs(data[0], data[1], n_par)
        if prior_config["type"] == "box":
            outside = ((theta_arr < bounds[:, 0]) | (theta_arr > bounds[:, 1])).any(0)
            if outside.any():
                raise OutOfBoundsError(f"theta: values of {[space.names[i] for i in np.flatnonzero(outside)]} lie outside the prior bounds {bounds.tolist()}")
        if len(theta_arr) - n_diagnostic < 50:
            raise InvalidInputError(f"data: {len(theta_arr)} simulations leave fewer than 50 for training after holding out n_diagnostic = {n_diagnostic}")
        order = np.random.default_rng(int(sim_seed)).permutation(len(theta_arr))
        theta_arr, x_arr = theta_arr[order], x_arr[order]
        cut = len(theta_arr) - n_diagnostic
        theta_train, x_train, theta_diag, x_diag = theta_arr[:cut], x_arr[:cut], theta_arr[cut:], x_arr[cut:]
    x_dim = x_train.shape[1]
    if emb_config is not None and int(np.prod(emb_config["event_shape"])) != x_dim:
        raise ShapeError(f"event_shape: {tuple(emb_config['event_shape'])} does not flatten to the width {x_dim} of x")

    # training
    theta_t = torch.from_numpy(theta_train).float()
    x_t = torch.from_numpy(x_train).float()
    with _seeded(seed, quiet):
        embedding_net = None
        if emb_config is not None:
            embedding_net = SetEmbedding(emb_config["config"], emb_config["event_shape"]).fit_normalisation(x_t)
        inference = _trainer(method, prior, _builder(method, network_options, embedding_net), dev, quiet)
        inference.append_simulations(theta_t, x_t)
        estimator = inference.train(**train_options)
        summary = {k: list(v) for k, v in inference.summary.items()}
    estimator = estimator.to(dev)
    posterior = _make_posterior(method, estimator, prior, sample_with, sampler_options, dev)
    n_epochs = len(summary.get("training_loss", []))
    history = xr.Dataset(
        {
            "train_loss": ("epoch", np.asarray(summary.get("training_loss", []), dtype=np.float64)),
            "validation_loss": ("epoch", np.asarray(summary.get("validation_loss", [])[:n_epochs], dtype=np.float64)),
        },
        coords={"epoch": np.arange(n_epochs)},
        attrs={"epochs_trained": int(summary.get("epochs_trained", [n_epochs])[-1]), "best_validation_loss": float(summary.get("best_validation_loss", [math.nan])[-1])},
    )
    import sbi

    config = {
        "kind": _KIND,
        "method": method,
        "space": space.to_dict(),
        "prior": prior_config,
        "x_dim": int(x_dim),
        "network": network_options,
        "embedding": emb_config,
        "sample_with": sample_with,
        "sampler": sampler_options,
        "training": {**train_options, "n_simulations": int(len(theta_train)), "epochs_trained": history.attrs["epochs_trained"]},
        "seed": int(seed),
        "sbi_version": sbi.__version__,
        "sbihep_version": __version__,
    }
    result = PosteriorResult(config, estimator, prior, posterior, space, None, history)
    if n_diagnostic:
        result.diagnostics = diagnose(result, theta_diag, x_diag, parameter_names=space.names, n_posterior_samples=n_posterior_samples, seed=int(diag_seed) % 2**31, quiet=quiet)
    return result
