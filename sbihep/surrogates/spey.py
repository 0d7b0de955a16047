"""A spey backend for sbihep ONNX likelihood surrogates (numpy + onnxruntime only, no torch, no pyhf).

>>> import spey                                                                   # doctest: +SKIP
>>> model = spey.get_backend("sbihep.onnx")(path="model.onnx", analysis="ATLAS-SUSY-2018-06")  # doctest: +SKIP
>>> model.exclusion_confidence_level(poi_test=1.0), model.poi_upper_limit()       # doctest: +SKIP

The surrogate stores the profiled −2ΔlnL along its inputs for two data sets (observed, and the
Asimov data of the background-only fit to the observed data).  The backend exposes them as spey's
profiled negative log-likelihood of one parameter of interest μ:

    −ln L(μ) = ½ [t_D(x(μ)) + NLL_ref,D],    x(μ) = μ (signal-strength surrogate)
                                              x(μ) = μ · signal_yields (yields surrogate, events per bin)

with NLL_ref,D the reference −2 lnL recorded in the file (so values are the absolute −ln L of the
original model up to the surrogate's error).  There are no nuisance parameters left to fit: they
were profiled when the labels were made.  spey's fast-path methods (``negative_loglikelihood``,
``asimov_negative_loglikelihood`` and their minimisers) are implemented, so
``exclusion_confidence_level``, ``poi_upper_limit``, ``maximize_likelihood`` and the asymptotic
calculator work without Asimov data generation.

Expectation types: ``observed`` and ``aposteriori`` use the observed data and the post-fit
(background-only fit to the observed data) Asimov data.  ``apriori`` uses the pre-fit Asimov data
(output ``t_asimov_prefit``, zero signal with every parameter at its initial value) in place of
both — as spey's own backends do, the "data" is then the pre-fit background expectation and its
Asimov data is itself — so a priori expected limits work; files written without that output
(before sbihep issue 24, or with ``prefit=False``) raise for ``apriori``.  The ``q0`` discovery
statistic needs Asimov data at μ = 1 and is not available.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from spey import BackendBase, ExpectationType
from spey.base.model_config import ModelConfig

from sbihep._version import __version__
from sbihep.errors import InvalidInputError
from sbihep.surrogates.loader import SurrogateLikelihood

__all__ = ["SbihepOnnxBackend"]

_OBSERVED, _ASIMOV = 0, 1
_PREFIT_NAME = "t_asimov_prefit"


class SbihepOnnxBackend(BackendBase):
    """spey backend wrapping an sbihep ONNX −2ΔlnL surrogate (entry point ``"sbihep.onnx"``).

    Args:
        path: the ``.onnx`` file written by :func:`sbihep.surrogates.onnx.export_onnx`.
        signal_yields: for a yields surrogate, the signal yields per input (events, length d) that
            μ = 1 stands for; must be None for a signal-strength surrogate.
        out_of_bounds: ``"warn"`` (default), ``"raise"`` or ``"ignore"`` for μ outside the
            training box (passed to :class:`~sbihep.surrogates.loader.SurrogateLikelihood`).
        n_grid: grid points of the one-dimensional minimisation over μ (refined around the best
            grid point).
    Raises:
        InvalidInputError: signal_yields missing for a yields surrogate (or given for a μ one), or
            not d non-negative numbers with one > 0.
        DataFormatError: the file is not a valid sbihep surrogate (from the loader).
    """

    name = "sbihep.onnx"
    version = __version__
    author = "sbihep developers"
    spey_requires = ">=0.2.0"
    doi: List[str] = []
    arXiv: List[str] = []

    def __init__(self, path, signal_yields: Optional[Sequence[float]] = None, *, out_of_bounds: str = "warn",
                 n_grid: int = 2001):
        self.surrogate = SurrogateLikelihood(path, out_of_bounds=out_of_bounds)
        if self.surrogate.mode == "mu" and signal_yields is not None:
            raise InvalidInputError("signal_yields: a signal-strength surrogate takes no signal yields")
        if self.surrogate.mode != "mu" and signal_yields is None:
            raise InvalidInputError(
                f"signal_yields: a yields surrogate needs the signal yields of its {self.surrogate.n_inputs} inputs "
                f"{self.surrogate.input_names} (events)")
        self.direction = self.surrogate._direction(signal_yields)
        if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 11:
            raise InvalidInputError(f"n_grid: must be an integer ≥ 11, got {n_grid!r}")
        self.n_grid = int(n_grid)
        ref = self.surrogate.metadata["nll"]["reference_nll"]
        self.reference_nll = {_OBSERVED: float(ref["observed"]), _ASIMOV: float(ref["asimov"])}
        names = [o.get("name") for o in self.surrogate.metadata.get("outputs", []) if isinstance(o, dict)]
        self._prefit = names.index(_PREFIT_NAME) if _PREFIT_NAME in names and "asimov_prefit" in ref else None
        if self._prefit is not None:
            self.reference_nll[self._prefit] = float(ref["asimov_prefit"])
        lo, hi = self.surrogate.mu_range(self.direction)
        low_box = self.surrogate.bounds[:, 0] / np.where(self.direction > 0, self.direction, np.inf)
        # negative μ only when the training box extends below zero along the ray
        self._mu_low_negative = float(np.max(low_box)) if self.surrogate.mode == "mu" else lo
        self._mu_range = (lo, hi)

    # --- spey's required interface -------------------------------------------------------------

    @property
    def is_alive(self) -> bool:
        return bool(np.any(self.direction > 0))

    def config(self, allow_negative_signal: bool = True, poi_upper_bound: float = 10.0) -> ModelConfig:
        """One parameter, μ, bounded by the training box (``poi_upper_bound`` cannot widen it)."""
        lo = min(self._mu_low_negative, self._mu_range[0]) if allow_negative_signal else self._mu_range[0]
        hi = self._mu_range[1]
        init = float(np.clip(1.0, lo, hi))
        return ModelConfig(poi_index=0, minimum_poi=lo, suggested_init=[init], suggested_bounds=[(lo, hi)],
                           parameter_names=["mu"])

    def get_logpdf_func(self, expected: ExpectationType = ExpectationType.observed,
                        data: Optional[Union[List[float], np.ndarray]] = None) -> Callable[[np.ndarray], float]:
        """ln L(μ) on the observed data: pars (1,) → float."""
        column = self._check(expected, data)[0]
        return lambda pars: -self._nll(float(np.asarray(pars).reshape(-1)[0]), column)

    # --- fast paths (no nuisance parameters left to fit) ---------------------------------------

    def negative_loglikelihood(self, poi_test=1.0, expected: ExpectationType = ExpectationType.observed,
                               data=None, return_parameters: bool = False, **kwargs):
        """−ln L(μ) on the observed data (and (μ,) when ``return_parameters``)."""
        column = self._check(expected, data)[0]
        mu = self._poi(poi_test)
        nll = self._nll(mu, column)
        return (nll, np.array([mu])) if return_parameters else nll

    def asimov_negative_loglikelihood(self, poi_test=1.0, expected: ExpectationType = ExpectationType.observed,
                                      test_statistics: str = "qtilde", **kwargs) -> float:
        """−ln L_A(μ) on the Asimov data of the background-only fit (pre-fit Asimov data for ``apriori``)."""
        column = self._check(expected, None, test_statistics)[1]
        return self._nll(self._poi(poi_test), column)

    def minimize_negative_loglikelihood(self, expected: ExpectationType = ExpectationType.observed,
                                        allow_negative_signal: bool = True, data=None, poi_indices=None, **kwargs):
        """(μ̂, −ln L(μ̂)) on the observed data (pre-fit Asimov data for ``apriori``)."""
        column = self._check(expected, data)[0]
        return self._pack(*self._minimum(column, allow_negative_signal), poi_indices)

    def minimize_asimov_negative_loglikelihood(self, expected: ExpectationType = ExpectationType.observed,
                                               test_statistics: str = "qtilde", poi_indices=None, **kwargs):
        """(μ̂_A, −ln L_A(μ̂_A)) on the Asimov data."""
        column = self._check(expected, None, test_statistics)[1]
        return self._pack(*self._minimum(column, test_statistics in ("q", "qmu")), poi_indices)

    # --- helpers ----------------------------------------------------------------------------

    def _check(self, expected, data, test_statistics: str = "qtilde") -> tuple[int, int]:
        """(data column, Asimov column) for ``expected``; refusals as InvalidInputError."""
        if data is not None:
            raise InvalidInputError("data: an sbihep surrogate is trained on fixed data; it cannot be evaluated on other data")
        if test_statistics == "q0":
            raise InvalidInputError("test_statistics: 'q0' needs Asimov data at mu = 1, which the surrogate does not store")
        if ExpectationType.apriori == expected:
            if self._prefit is None:
                raise InvalidInputError(
                    "expected: 'apriori' needs the pre-fit Asimov data, which this surrogate was not trained on (no "
                    f"{_PREFIT_NAME!r} output; written before sbihep issue 24 or with prefit=False); use 'observed' or "
                    "'aposteriori' (post-fit Asimov data)")
            return self._prefit, self._prefit
        return _OBSERVED, _ASIMOV

    @staticmethod
    def _poi(poi_test) -> float:
        if isinstance(poi_test, dict):
            if len(poi_test) != 1 or next(iter(poi_test)) not in (0, "mu"):
                raise InvalidInputError(f"poi_test: the only parameter is 'mu' (index 0), got {list(poi_test)}")
            poi_test = next(iter(poi_test.values()))
        value = float(np.asarray(poi_test).reshape(-1)[0])
        if not np.isfinite(value):
            raise InvalidInputError(f"poi_test: must be finite, got {poi_test!r}")
        return value

    def _t(self, mu: np.ndarray, column: int) -> np.ndarray:
        return self.surrogate.evaluate(np.asarray(mu, float)[:, None] * self.direction)[0][:, column]

    def _nll(self, mu: float, column: int) -> float:
        return 0.5 * (float(self._t(np.array([mu]), column)[0]) + self.reference_nll[column])

    def _minimum(self, column: int, allow_negative_signal: bool) -> tuple[float, float]:
        """Grid over the allowed μ range, then a finer grid between the neighbours of the best point."""
        (lo, hi), = self.config(allow_negative_signal).suggested_bounds
        grid = np.linspace(lo, hi, self.n_grid)
        t = self._t(grid, column)
        i = int(np.argmin(t))
        fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 201)
        tf = self._t(fine, column)
        j = int(np.argmin(tf))
        return float(fine[j]), 0.5 * (float(tf[j]) + self.reference_nll[column])

    @staticmethod
    def _pack(mu: float, nll: float, poi_indices):
        if poi_indices is None:
            return mu, nll
        for key in poi_indices:
            if key not in (0, "mu"):
                raise InvalidInputError(f"poi_indices: the only parameter is 'mu' (index 0), got {key!r}")
        return {key: mu for key in poi_indices}, nll
