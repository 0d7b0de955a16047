"""Ensembles of estimators: N networks of one kind trained with different seeds (and optionally on
bootstrap resamples); the member mean is the estimate and the member spread its uncertainty.

The spread is small where the training data pin the function down and grows where the members
extrapolate (far from the training features or parameters), so it flags evaluations that cannot be
trusted (Lakshminarayanan, Pritzel, Blundell, arXiv:1612.01474).  Member k is built with weight seed
``seed + k`` and trained with training seed ``train_seed + k``; with ``bootstrap=True`` it trains on a
resample (with replacement, seed ``seed + k``) of the training Dataset.

An ensemble saves as one directory: ``config.json`` (kind ``"ensemble"``, the sbihep version, the
member kind, the member directory names) and one sub-directory per member in the member's own format.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import xarray as xr

from sbihep._atomic import atomic_destination
from sbihep._version import __version__
from sbihep.errors import DataFormatError, ExtrapolationWarning, InvalidInputError, ShapeError
from sbihep.estimators.base import PersistentEstimator, as_features, as_theta

__all__ = ["Ensemble", "estimator_class"]


def _subclasses(cls) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def estimator_class(kind: str) -> type:
    """The :class:`PersistentEstimator` subclass whose ``kind`` is ``kind`` (ratio, score, …)."""
    import importlib

    for module in ("sbihep.estimators.ratio", "sbihep.estimators.score"):  # register the built-in kinds
        importlib.import_module(module)

    found = {getattr(c, "kind", None): c for c in _subclasses(PersistentEstimator)}
    if kind not in found:
        raise DataFormatError(f"kind: no estimator class of kind {kind!r} (known: {sorted(k for k in found if k)})")
    return found[kind]


def _fit_member(member, data, args: tuple, options: dict, bootstrap_seed: int | None):
    """Train one member (module level so that worker processes can run it); returns (member, history)."""
    if bootstrap_seed is not None:
        n = data.sizes["sample"]
        data = data.isel(sample=np.random.default_rng(bootstrap_seed).integers(0, n, n))
    history = member.fit(data, *args, **options)
    if bootstrap_seed is not None:
        member.training["bootstrap_seed"] = int(bootstrap_seed)
    return member, history


class Ensemble:
    """N estimators of one kind with the same observables and parameter space.

    Args:
        members: the estimators (e.g. from :meth:`build`), all of one kind.

    Evaluation mirrors the members' API and returns the member mean, so an ensemble can stand
    where one estimator stands; ``*_members`` methods return every member's value (dim ``member``)
    and :meth:`predict_log_ratio` / :meth:`predict_score` the mean with its spread (the sample
    standard deviation over members, ddof = 1).
    """

    kind = "ensemble"

    def __init__(self, members: Sequence[PersistentEstimator]) -> None:
        members = list(members)
        if len(members) < 1:
            raise InvalidInputError("members: an ensemble needs at least one estimator")
        kinds = {getattr(m, "kind", None) for m in members}
        if len(kinds) != 1 or None in kinds:
            raise InvalidInputError(f"members: all members must be estimators of one kind, got {sorted(map(str, kinds))}")
        first = members[0]
        for k, m in enumerate(members[1:], 1):
            if m.observables != first.observables:
                raise ShapeError(f"members[{k}]: observables {m.observables} differ from member 0's {first.observables}")
            if list(m.space.names) != list(first.space.names):
                raise ShapeError(f"members[{k}]: parameters {list(m.space.names)} differ from member 0's {list(first.space.names)}")
        self.members = members
        self.histories: list = []

    # ---- construction and training ---------------------------------------------------------
    @classmethod
    def build(cls, estimator_type: Callable[..., PersistentEstimator], *args, n_members: int = 5, seed: int = 0, **kwargs) -> "Ensemble":
        """``n_members`` estimators ``estimator_type(*args, seed=seed + k, **kwargs)`` (different initial weights)."""
        if not (isinstance(n_members, int) and n_members >= 1):
            raise InvalidInputError(f"n_members must be a positive integer, got {n_members!r}")
        return cls([estimator_type(*args, seed=int(seed) + k, **kwargs) for k in range(n_members)])

    def fit(
        self,
        data: xr.Dataset,
        *args,
        bootstrap: bool = False,
        seed: int = 0,
        n_workers: int = 1,
        quiet: bool = False,
        **train_options,
    ) -> list:
        """Train every member on ``data`` (``member.fit(data, *args, seed=seed + k, **train_options)``).

        Args:
            data: the training Dataset (dim ``sample``) the members' ``fit`` reads.
            args: passed on, e.g. the method of a ratio estimator (``"alices"``).
            bootstrap: train member k on a resample of ``data`` with replacement (seed ``seed + k``).
            seed: member k's training seed (split, batch order) is ``seed + k``.
            n_workers: members trained in parallel worker processes (:func:`sbihep.parallel.map_jobs`).
            quiet: no progress bars.
            train_options: passed to :func:`sbihep.estimators.train.train` (epochs, batch_size, …);
                ``checkpoint="run.pt"`` becomes one checkpoint per member (``run_member000.pt``, …).
        Returns:
            the members' :class:`~sbihep.estimators.train.TrainingHistory` objects (also in ``histories``).
        """
        from sbihep.parallel import map_jobs

        if "sample" not in getattr(data, "dims", {}):
            raise InvalidInputError("data: expected a training Dataset with a 'sample' dimension")
        checkpoint = train_options.pop("checkpoint", None)
        jobs = []
        for k, m in enumerate(self.members):
            options = {**train_options, "seed": int(seed) + k, "quiet": quiet or n_workers > 1}
            if checkpoint is not None:  # one resumable checkpoint per member: <stem>_member<k><suffix>
                path = Path(checkpoint)
                options["checkpoint"] = path.with_name(f"{path.stem}_member{k:03d}{path.suffix}")
            jobs.append((m, data, args, options, int(seed) + k if bootstrap else None))
        results = map_jobs(_fit_member, jobs, n_workers=n_workers, progress=not quiet and len(jobs) > 1, desc="ensemble members")
        self.members = [member for member, _ in results]
        self.histories = [history for _, history in results]
        return self.histories

    # ---- evaluation -----------------------------------------------------------------------
    @property
    def observables(self) -> list[str]:
        return self.members[0].observables

    @property
    def space(self):
        return self.members[0].space

    @property
    def member_kind(self) -> str:
        return self.members[0].kind

    @property
    def training(self) -> dict:
        return {"members": [m.training for m in self.members]}

    def __len__(self) -> int:
        return len(self.members)

    def _checked(self, x, theta0=None, theta1=None):
        """Input checks done once for the ensemble (the members then see clean float arrays)."""
        xt = as_features(x, len(self.observables)).numpy()
        th0 = None if theta0 is None else as_theta(theta0, self.space, len(xt), "theta0").numpy()
        th1 = None if theta1 is None else as_theta(theta1, self.space, len(xt), "theta1").numpy()
        return xt, th0, th1

    def _stack(self, call) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)  # already warned once by _checked
            return np.stack([call(m) for m in self.members])

    def log_ratio_members(self, x, theta0, theta1=None) -> xr.DataArray:
        """ln r̂_k(x|θ₀, θ₁) of every member: DataArray (member, event); θ as for RatioEstimator.log_ratio."""
        self._require("ratio", "log_ratio")
        xt, th0, th1 = self._checked(x, theta0, self.space.sm_point() if theta1 is None else theta1)
        values = self._stack(lambda m: m.log_ratio(xt, th0, th1))
        return xr.DataArray(values, dims=("member", "event"), coords={"member": np.arange(len(self))}, name="log_r_hat")

    def log_ratio(self, x, theta0, theta1=None) -> np.ndarray:
        """Ensemble mean of ln r̂(x|θ₀, θ₁), (N,)."""
        return self.log_ratio_members(x, theta0, theta1).mean("member").values

    def predict_log_ratio(self, x, theta0, theta1=None) -> xr.Dataset:
        """Dataset with ``mean`` and ``std`` (event) of ln r̂ over the members, and ``members`` (member, event)."""
        return _summary(self.log_ratio_members(x, theta0, theta1))

    def log_ratio_grid(self, x, thetas, theta1=None, *, with_std: bool = False):
        """Mean ln r̂(x_i|θ_k, θ₁) on a grid (K, n) → DataArray (theta, event) like RatioEstimator.log_ratio_grid;
        with ``with_std`` a Dataset with ``mean`` and ``std``."""
        self._require("ratio", "log_ratio_grid")
        grid = np.atleast_2d(np.asarray(getattr(thetas, "values", thetas), dtype=np.float64))
        if grid.shape[1] != len(self.space):
            raise ShapeError(f"thetas: expected shape (K, {len(self.space)}), got {grid.shape}")
        rows = [self.log_ratio_members(x, row, theta1).values for row in grid]
        coords = {name: ("theta", grid[:, j]) for j, name in enumerate(self.space.names)}
        mean = xr.DataArray(np.stack([r.mean(0) for r in rows]), dims=("theta", "event"), coords=coords, name="log_r_hat")
        if not with_std:
            return mean
        std = xr.DataArray(np.stack([r.std(0, ddof=1) if len(r) > 1 else np.full(r.shape[1], np.nan) for r in rows]), dims=("theta", "event"), coords=coords)
        return xr.Dataset({"mean": mean, "std": std})

    def score_members(self, x, theta=None) -> xr.DataArray:
        """t̂_k(x) of every member: DataArray (member, event, parameter).  Ratio members need θ
        (the score ∇_θ ln r̂(x|θ, θ₁)); score members (SALLY) take none."""
        if self.member_kind == "ratio":
            if theta is None:
                raise InvalidInputError("theta: the score of a ratio ensemble needs the point θ")
            xt, th, _ = self._checked(x, theta)
            values = self._stack(lambda m: m.score(xt, th))
        else:
            if theta is not None:
                raise InvalidInputError(f"theta: {self.member_kind} members give the score at their reference point; pass no theta")
            xt, _, _ = self._checked(x)
            values = self._stack(lambda m: m.score(xt))
        return xr.DataArray(
            values, dims=("member", "event", "parameter"),
            coords={"member": np.arange(len(self)), "parameter": list(self.space.names)}, name="score_hat",
        )  # fmt: skip

    def score(self, x, theta=None) -> np.ndarray:
        """Ensemble mean of the score, (N, n_parameters)."""
        return self.score_members(x, theta).mean("member").values

    def predict_score(self, x, theta=None) -> xr.Dataset:
        """Dataset with ``mean`` and ``std`` (event, parameter) of the score, and ``members``."""
        return _summary(self.score_members(x, theta))

    def _require(self, kind: str, what: str) -> None:
        if self.member_kind != kind:
            raise InvalidInputError(f"{what}: the members are {self.member_kind!r} estimators, not {kind!r} ones")

    # ---- persistence ------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "kind": self.kind,
            "member_kind": self.member_kind,
            "members": [f"member_{k:03d}" for k in range(len(self))],
            "observables": self.observables,
            "space": self.space.to_dict(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """One directory: config.json and a sub-directory per member (written atomically)."""
        path = Path(path)
        config = self.config()
        with atomic_destination(path) as tmp:
            tmp.mkdir(parents=True)
            for name, member in zip(config["members"], self.members):
                member.save(tmp / name)
            (tmp / "config.json").write_text(json.dumps({"sbihep_version": __version__, **config}, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Ensemble":
        """Rebuild an ensemble written by :meth:`save` (each member loads with its own class's checks)."""
        path = Path(path)
        file = path / "config.json"
        if not file.is_file():
            raise InvalidInputError(f"path: {str(path)!r} is not a saved ensemble (no config.json)")
        try:
            config = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"path: cannot read {str(file)!r} ({type(exc).__name__}: {exc})") from exc
        if config.get("kind") != cls.kind:
            raise DataFormatError(f"path: {str(path)!r} holds a {config.get('kind')!r} estimator, not an 'ensemble'")
        member_cls = estimator_class(config["member_kind"])
        return cls([member_cls.load(path / name) for name in config["members"]])

    def __repr__(self) -> str:
        return f"Ensemble({len(self)} × {self.members[0]!r})"


def _summary(members: xr.DataArray) -> xr.Dataset:
    """mean and sample standard deviation (ddof = 1; NaN for a one-member ensemble) over ``member``."""
    return xr.Dataset({"mean": members.mean("member"), "std": members.std("member", ddof=1), "members": members})
