"""Neutrino momentum from the reconstructed event: the W-mass-constraint quadratic and a conditional flow.

In ``W → ℓν`` only the transverse momentum of the neutrino is measured (as the missing transverse
momentum p̸_T).  Requiring m(ℓν) = m_W fixes its p_z up to a two-fold ambiguity:
:func:`w_mass_neutrino_pz` solves

    E_ℓ √(p̸_T² + p_z²) = μ + p_z,ℓ p_z,    μ = (m_W² − m_ℓ²)/2 + p⃗_T,ℓ · p̸⃗_T,

i.e.  p_z = [μ p_z,ℓ ± E_ℓ √(μ² − a p̸_T²)] / a  with  a = E_ℓ² − p_z,ℓ² = p_T,ℓ² + m_ℓ².  When the
discriminant is negative (mismeasured p̸_T, or an off-shell W with m_T(ℓ, p̸_T) > m_W) both roots
are replaced by the real part μ p_z,ℓ / a.  The smaller-|p_z| root is the conventional choice.

:class:`NeutrinoFlow` learns instead the posterior p(ν | ℓ, p̸_T, jets) — of p_z alone or of
(p_x, p_y, p_z) — from simulated events whose parton-level record z holds the true neutrino, with
the analytic roots as extra context.  The event is rotated about the beam so that the lepton lies
along +x (the posterior is invariant under that rotation; the flow then does not have to learn it).
Its samples serve as z-proposals (:meth:`NeutrinoFlow.sample_momenta`, lab-frame four-momenta) and,
summarised, as features for estimators (:meth:`NeutrinoFlow.posterior_features`).

Inputs come from an :class:`~sbihep.events.eventset.EventSet` reconstructed with the observables of
:func:`required_observables` (lepton role ``l``, ``met`` and optionally jets such as ``b``,
``bbar``), e.g. ``generate(get_process("w_lv"), 13000, n, detector="default",
observables=required_observables())``.  Energies and momenta are in GeV.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from sbihep.errors import InvalidInputError, ShapeError
from sbihep.events.eventset import EventSet
from sbihep.events.reco import lepton_charges
from sbihep.physics.processes import get_process
from sbihep.flows.conditional import ConditionalFlow

__all__ = [
    "M_W_GEV",
    "w_mass_neutrino_pz",
    "required_observables",
    "neutrino_features",
    "true_neutrino",
    "NeutrinoFlow",
    "POSTERIOR_FEATURES",
    "FIT_DEFAULTS",
    "sample_pit",
]

#: default W mass (GeV) of the constraint.
M_W_GEV = 80.379
#: names of the columns of :meth:`NeutrinoFlow.posterior_features`.
POSTERIOR_FEATURES = ("nu_pz_median", "nu_pz_q16", "nu_pz_q84", "m(l,nu)_median")
_TARGETS = {"pz": 1, "pxpypz": 3}
_ROOT_COLUMNS = (6, 7)  # flat-context columns of the small and large W-mass roots
_PZ_TAILS = ("asinh", "linear")
#: trainer defaults of :meth:`NeutrinoFlow.fit` (see :func:`sbihep.estimators.train.train`).
FIT_DEFAULTS = dict(epochs=60, batch_size=256, learning_rate=2e-3, final_learning_rate=1e-5, early_stopping_patience=15)


def _array(value, shape_tail: tuple[int, ...], argument: str) -> np.ndarray:
    values = value if isinstance(value, torch.Tensor) else getattr(value, "values", value)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{argument}: not a numeric array ({exc})") from exc
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail:
        raise ShapeError(f"{argument}: expected shape (N, {', '.join(map(str, shape_tail))}), got {a.shape}")
    if len(a) == 0:
        raise InvalidInputError(f"{argument}: empty (0 events)")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{argument}: {int((~np.isfinite(a)).reshape(len(a), -1).any(1).sum())} rows contain NaN or infinite values")
    return a


def _array_1d(value, argument: str) -> np.ndarray:
    values = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else getattr(value, "values", value)
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ShapeError(f"{argument}: expected shape (N,), got {a.shape}")
    return a


def w_mass_neutrino_pz(lepton, met_xy, m_w: float = M_W_GEV) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two neutrino p_z that give m(ℓν) = m_W (module docstring).

    Args:
        lepton: (N, 4) charged-lepton four-momenta (E, p_x, p_y, p_z) in GeV (massive allowed).
        met_xy: (N, 2) missing transverse momentum (p_x, p_y) in GeV, taken as the neutrino's.
        m_w: the W mass of the constraint (GeV).
    Returns:
        ``(pz_small, pz_large, is_complex)``: (N,) float64 roots ordered by |p_z| (GeV) and (N,) bool,
        True where the discriminant is negative and both roots are the real part μ p_z,ℓ / a.
    """
    lep = _array(lepton, (4,), "lepton")
    met = _array(met_xy, (2,), "met_xy")
    if len(lep) != len(met):
        raise ShapeError(f"met_xy: has {len(met)} rows, lepton has {len(lep)}")
    if not (np.isfinite(m_w) and m_w > 0):
        raise InvalidInputError(f"m_w must be a positive mass in GeV, got {m_w!r}")
    e, px, py, pz = lep.T
    m2 = np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)
    a = e**2 - pz**2
    if (a <= 0).any():
        raise InvalidInputError(f"lepton: {int((a <= 0).sum())} leptons have no transverse momentum or mass (E² − p_z² ≤ 0)")
    mu = 0.5 * (m_w**2 - m2) + px * met[:, 0] + py * met[:, 1]
    met2 = met[:, 0] ** 2 + met[:, 1] ** 2
    disc = mu**2 - a * met2
    is_complex = disc < 0
    centre = mu * pz / a
    half = e * np.sqrt(np.where(is_complex, 0.0, disc)) / a
    plus, minus = centre + half, centre - half
    swap = np.abs(plus) < np.abs(minus)
    small = np.where(swap, plus, minus)
    large = np.where(swap, minus, plus)
    return small, large, is_complex


def sample_pit(samples, truth, *, seed: int = 0) -> np.ndarray:
    """Randomised probability integral transform from posterior draws, (N,) in [0, 1].

    u = (#{s < y} + V · (#{s = y} + 1)) / (S + 1), V ~ U(0, 1): the rank of the truth among the S draws
    with ties (and the truth's own slot) broken at random.  For a calibrated posterior u is *exactly*
    uniform on [0, 1] for any S (the rank is uniform on {0, …, S} and V fills each step), so a KS test of
    u has no discreteness floor — unlike the plain fraction #{s < y}/S, which lives on a grid of 1/S.

    Args:
        samples: (S, N) posterior draws (any units).
        truth: (N,) true values (same units).
        seed: seed of the randomisation V.
    """
    s = np.asarray(samples, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if s.ndim != 2 or y.ndim != 1 or s.shape[1] != len(y):
        raise ShapeError(f"samples must be (S, N) and truth (N,), got {s.shape} and {y.shape}")
    if s.shape[0] < 1 or len(y) == 0:
        raise InvalidInputError(f"samples/truth: need at least one draw and one event, got {s.shape}")
    if not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise InvalidInputError("samples/truth: contain NaN or infinite values")
    below = (s < y[None]).sum(0)
    ties = (s == y[None]).sum(0)
    v = np.random.default_rng(seed).random(len(y))
    return (below + v * (ties + 1)) / (s.shape[0] + 1)


def required_observables(jets: Sequence[str] = ()) -> list[str]:
    """Reco-level observables :func:`neutrino_features` reads: lepton and MET, plus pt/eta/phi/m of each jet role."""
    names = ["pt(l)", "eta(l)", "phi(l)", "pt(met)", "phi(met)"]
    for j in jets:
        names += [f"pt({j})", f"eta({j})", f"phi({j})", f"m({j})"]
    return names


def _four_vectors(pt, eta, phi, m=None) -> np.ndarray:
    """(…, 4) (E, p_x, p_y, p_z) from p_T, η, φ (and mass, default 0)."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    m = 0.0 if m is None else m
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return np.stack([e, px, py, pz], -1)


def neutrino_features(events: EventSet, jets: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The reconstructed inputs of the neutrino regression from an EventSet's reco observables ``x``.

    Args:
        events: reconstructed events with the observables :func:`required_observables` (``jets``).
        jets: jet roles to include (e.g. ``("b", "bbar")`` for ``wh_lvbb``).
    Returns:
        ``{"lepton": (N, 4), "met_xy": (N, 2), "jets": (N, n_jets, 4), "charge": (N,) ±1, "passed": (N,) bool}``,
        lab frame, GeV (the lepton is massless, as the smeared reco lepton is; the charge is the
        charged lepton's, from the subprocess).
    """
    if not isinstance(events, EventSet):
        raise InvalidInputError(f"events: expected an EventSet, got {type(events).__name__}")
    if "x" not in events.data:
        raise InvalidInputError(f"events: no observables x; reconstruct with observables {required_observables(jets)}")
    available = [str(o) for o in events.data["observable"].values]
    missing = [n for n in required_observables(jets) if n not in available]
    if missing:
        raise InvalidInputError(f"events: missing reco observables {missing} (have {available}); see required_observables()")
    x = events.observables()

    def col(name: str) -> np.ndarray:
        return np.asarray(x.sel(observable=name).values, dtype=np.float64)

    out = {
        "lepton": _four_vectors(col("pt(l)"), col("eta(l)"), col("phi(l)")),
        "met_xy": np.stack([col("pt(met)") * np.cos(col("phi(met)")), col("pt(met)") * np.sin(col("phi(met)"))], -1),
        "jets": np.stack([_four_vectors(col(f"pt({j})"), col(f"eta({j})"), col(f"phi({j})"), col(f"m({j})")) for j in jets], 1)
        if jets else np.zeros((len(events), 0, 4)),
        "charge": lepton_charges(events, get_process(events.process)).numpy(),
        "passed": np.asarray(events.data["passed"].values, dtype=bool) if "passed" in events.data else np.ones(len(events), dtype=bool),
    }
    return out


def true_neutrino(events: EventSet, role: str = "v") -> np.ndarray:
    """(N, 4) parton-level neutrino four-momentum (E, p_x, p_y, p_z) in GeV from the latent record z."""
    if not isinstance(events, EventSet):
        raise InvalidInputError(f"events: expected an EventSet, got {type(events).__name__}")
    labels = [f"{role}_{c}" for c in ("E", "px", "py", "pz")]
    have = [str(v) for v in events.data["latent"].values]
    if any(label not in have for label in labels):
        raise InvalidInputError(f"events: the latent record z has no neutrino role {role!r} (latent labels {have})")
    return np.asarray(events.data["z"].sel(latent=labels).values, dtype=np.float64)


def _rotation(lepton: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos φ_ℓ, sin φ_ℓ of each lepton (rotating by −φ_ℓ puts it along +x)."""
    phi = np.arctan2(lepton[:, 2], lepton[:, 1])
    return np.cos(phi), np.sin(phi)


def _rotate(xy: np.ndarray, c: np.ndarray, s: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Rotate (N, …, 2) transverse vectors by −φ (or +φ when ``inverse``)."""
    c = c.reshape((-1,) + (1,) * (xy.ndim - 2))
    s = s.reshape((-1,) + (1,) * (xy.ndim - 2))
    s = -s if inverse else s
    return np.stack([c * xy[..., 0] + s * xy[..., 1], -s * xy[..., 0] + c * xy[..., 1]], -1)


class NeutrinoFlow(ConditionalFlow):
    """p(ν | lepton, p̸_T, jets): a :class:`~sbihep.flows.conditional.ConditionalFlow` over the
    neutrino p_z (``target="pz"``, its p_T is then p̸_T) or (p_x, p_y, p_z) (``target="pxpypz"``).

    Context (all in the frame rotated so that the lepton lies along +x): lepton (p_T, p_z, E, charge),
    p̸_T (x, y), the two W-mass roots and the complex flag, and per jet (E, p_x, p_y, p_z) — flat,
    or through a set embedding when ``jet_embedding`` is given (e.g. ``{"type": "deepset", "n_out": 8}``).
    The p_z component is learned in root-relative coordinates y = g(t), t = (p_z − c)/s (see :meth:`fit`);
    :meth:`log_prob` and :meth:`sample` take and return GeV; :meth:`pit` gives the probability integral
    transform of true values (exact, from the flow's CDF, for ``target="pz"``).

    Args:
        target: ``"pz"`` or ``"pxpypz"``.
        jets: jet roles used as context (with :func:`neutrino_features`).
        jet_embedding: set-encoder config without ``n_object_features`` (4 is filled in), or None.
        m_w: W mass of the analytic roots (GeV).
        pz_scale_floor: floor (GeV) of the per-event scale of the learned coordinate t = (p_z − c)/s,
            s = √(h² + floor²), c and h the centre and half separation of the two roots.
        pz_tails: ``"asinh"`` (default) — y = t between the roots (|t| ≤ 1) and y = ±(1 + asinh(|t| − 1))
            beyond them, so that the long p_z tails (|t| up to ~100 when the roots nearly coincide) stay
            inside the splines' domain after standardisation; ``"linear"`` — y = t (the coordinate of
            models saved before this option existed).
        kind, transforms, hidden, bins, seed: as for :class:`ConditionalFlow`.
    """

    kind = "neutrino_flow"

    def __init__(
        self,
        *,
        target: str = "pz",
        jets: Sequence[str] = (),
        jet_embedding: Mapping | None = None,
        m_w: float = M_W_GEV,
        pz_scale_floor: float = 10.0,
        pz_tails: str = "asinh",
        kind: str = "nsf",
        transforms: int = 3,
        hidden: Sequence[int] = (64, 64),
        bins: int = 8,
        seed: int = 0,
    ) -> None:
        if target not in _TARGETS:
            raise InvalidInputError(f"target must be one of {sorted(_TARGETS)}, got {target!r}")
        if isinstance(jets, str):
            raise InvalidInputError(f"jets: a sequence of jet roles, got the string {jets!r}")
        self.target = target
        self.jets = [str(j) for j in jets]
        self.m_w = float(m_w)
        if not (np.isfinite(self.m_w) and self.m_w > 0):
            raise InvalidInputError(f"m_w must be a positive mass in GeV, got {m_w!r}")
        self.pz_scale_floor = float(pz_scale_floor)
        if not (np.isfinite(self.pz_scale_floor) and self.pz_scale_floor > 0):
            raise InvalidInputError(f"pz_scale_floor must be a positive momentum in GeV, got {pz_scale_floor!r}")
        if pz_tails not in _PZ_TAILS:
            raise InvalidInputError(f"pz_tails must be one of {_PZ_TAILS}, got {pz_tails!r}")
        self.pz_tails = pz_tails
        embedding = None
        if jet_embedding is not None:
            if not self.jets:
                raise InvalidInputError("jet_embedding: given, but no jets to embed")
            embedding = {**dict(jet_embedding), "n_object_features": 4}
        self.jet_embedding = None if jet_embedding is None else dict(jet_embedding)
        n_context = 4 + 2 + 3 + (0 if embedding is not None else 4 * len(self.jets))
        super().__init__(_TARGETS[target], n_context, kind=kind, transforms=transforms, hidden=hidden, bins=bins, embedding=embedding, seed=seed)

    # ---- inputs ---------------------------------------------------------------------------
    def _inputs(self, source) -> dict[str, np.ndarray]:
        if isinstance(source, EventSet):
            return neutrino_features(source, self.jets)
        if not isinstance(source, Mapping) or any(k not in source for k in ("lepton", "met_xy", "charge")):
            raise InvalidInputError(
                "events: pass an EventSet or a mapping with 'lepton' (N, 4), 'met_xy' (N, 2), 'charge' (N,) and, with jets, 'jets' (N, n_jets, 4)"
            )
        lepton = _array(source["lepton"], (4,), "lepton")
        met = _array(source["met_xy"], (2,), "met_xy")
        if len(met) != len(lepton):
            raise ShapeError(f"met_xy: has {len(met)} rows, lepton has {len(lepton)}")
        charge = _array(np.reshape(_array_1d(source["charge"], "charge"), (-1, 1)), (1,), "charge")[:, 0]
        if len(charge) != len(lepton) or not np.isin(charge, (-1.0, 1.0)).all():
            raise InvalidInputError(f"charge: expected {len(lepton)} lepton charges of ±1")
        if self.jets:
            if source.get("jets") is None:
                raise InvalidInputError(f"jets: the flow uses {len(self.jets)} jets {self.jets}; pass 'jets' (N, {len(self.jets)}, 4)")
            jets = _array(source["jets"], (len(self.jets), 4), "jets")
            if len(jets) != len(lepton):
                raise ShapeError(f"jets: has {len(jets)} rows, lepton has {len(lepton)}")
        else:
            jets = np.zeros((len(lepton), 0, 4))
        return {"lepton": lepton, "met_xy": met, "jets": jets, "charge": charge}

    def context(self, source):
        """The flow's conditioning from an EventSet or ``{"lepton", "met_xy"[, "jets"]}`` (ConditionalFlow format)."""
        inp = self._inputs(source)
        lep, met, jets = inp["lepton"], inp["met_xy"], inp["jets"]
        small, large, is_complex = w_mass_neutrino_pz(lep, met, self.m_w)
        c, s = _rotation(lep)
        met_r = _rotate(met, c, s)
        flat = [
            np.hypot(lep[:, 1], lep[:, 2]), lep[:, 3], lep[:, 0], inp["charge"], met_r[:, 0], met_r[:, 1], small, large,
            is_complex.astype(np.float64),
        ]
        jets_r = np.concatenate([jets[..., :1], _rotate(jets[..., 1:3], c, s), jets[..., 3:]], -1)
        if self.embedding is None:
            flat += [jets_r.reshape(len(lep), -1)[:, i] for i in range(4 * len(self.jets))]
            return np.stack(flat, 1)
        return {"objects": jets_r.astype(np.float32), "mask": np.ones(jets_r.shape[:2], dtype=bool), "context": np.stack(flat, 1)}

    def _targets(self, lepton: np.ndarray, neutrino: np.ndarray) -> np.ndarray:
        if self.target == "pz":
            return neutrino[:, 3:4]
        c, s = _rotation(lepton)
        return np.concatenate([_rotate(neutrino[:, 1:3], c, s), neutrino[:, 3:4]], 1)

    # ---- root-relative coordinates ---------------------------------------------------------------
    def _centre_scale(self, context) -> tuple[np.ndarray, np.ndarray]:
        """Centre c = (p_z,small + p_z,large)/2 and scale s = √(h² + floor²), h the half separation of the
        roots, per event (GeV), read from the flat context columns of the roots."""
        if isinstance(context, Mapping):
            flat = context.get("context")
        elif isinstance(context, tuple) and len(context) == 3:
            flat = context[2]
        else:
            flat = context
        if flat is None:
            raise InvalidInputError(f"context: needs the {self.n_context} flat context columns of NeutrinoFlow.context()")
        flat = _array(flat, (self.n_context,), "context")
        small, large = flat[:, _ROOT_COLUMNS[0]], flat[:, _ROOT_COLUMNS[1]]
        return 0.5 * (small + large), np.hypot(0.5 * (large - small), self.pz_scale_floor)

    def _compress(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """y = g(t) and log g'(t) (see ``pz_tails``); g is the identity on [−1, 1] and C¹."""
        if self.pz_tails == "linear":
            return t, np.zeros_like(t)
        beyond = np.abs(t) - 1.0
        outside = beyond > 0
        y = np.where(outside, np.sign(t) * (1.0 + np.arcsinh(np.where(outside, beyond, 0.0))), t)
        return y, np.where(outside, -0.5 * np.log1p(np.where(outside, beyond, 0.0) ** 2), 0.0)

    def _expand(self, y: np.ndarray) -> np.ndarray:
        """t = g⁻¹(y)."""
        if self.pz_tails == "linear":
            return y
        beyond = np.abs(y) - 1.0
        outside = beyond > 0
        return np.where(outside, np.sign(y) * (1.0 + np.sinh(np.minimum(np.where(outside, beyond, 0.0), 700.0))), y)

    def _internal(self, x, context, with_jacobian: bool = False):
        """x (N, D) in GeV → the learned coordinates (p_z → y = g((p_z − c)/s)); with ``with_jacobian``
        also log |dy/dp_z| (N,) (per GeV)."""
        x = _array(x, (self.n_features,), "x").copy()
        centre, scale = self._centre_scale(context)
        if len(centre) != len(x):
            raise ShapeError(f"context: has {len(centre)} rows, x has {len(x)}")
        y, log_dg = self._compress((x[:, -1] - centre) / scale)
        x[:, -1] = y
        return (x, log_dg - np.log(scale)) if with_jacobian else x

    def fit(self, x, context=None, weights=None, **train_options):
        """As :meth:`ConditionalFlow.fit` with x in GeV (p_z last) and ``context`` from :meth:`context`;
        internally p_z is learned as y = g(t), t = (p_z − c)/s (:meth:`_centre_scale`), so the two W-mass
        roots sit at y = ±1 in every event and the tails are compressed logarithmically (``pz_tails``).

        Defaults for the trainer (:data:`FIT_DEFAULTS`, each overridable): 60 epochs, batch 256, LR
        2·10⁻³ decaying to 10⁻⁵, early stopping after 15 epochs without a better validation loss (the
        validation NLL of a flow jumps by several 0.1 from one epoch to the next).  The calibration
        needs training data more than epochs: with ~10⁴ events a (64, 64) NSF over-fits (training
        NLL 0.25 below the validation NLL on WH) and its PIT fails; see benchmarks/bench_flows_neutrino.py."""
        return super().fit(self._internal(x, context), context, weights, **{**FIT_DEFAULTS, **train_options})

    def log_prob(self, x, context=None, **options) -> np.ndarray:
        """log q(ν target | context) per GeV^D, (N,)."""
        internal, log_jacobian = self._internal(x, context, with_jacobian=True)
        return super().log_prob(internal, context, **options) + log_jacobian

    def sample(self, context=None, n_samples: int = 1, seed: int | None = None, **options) -> np.ndarray:
        """(n_samples, N, D) draws of the target in GeV (rotated frame for ``pxpypz``)."""
        centre, scale = self._centre_scale(context)
        draws = super().sample(context, n_samples, seed, **options)
        draws[..., -1] = self._expand(draws[..., -1]) * scale + centre
        return draws

    def pit(self, source, truth, *, n_samples: int | None = None, seed: int | None = None) -> np.ndarray:
        """Probability integral transform u = F̂(p_z,true | event) of the true neutrino p_z, (N,) in [0, 1].

        For a calibrated posterior u ~ U(0, 1) (test e.g. with ``scipy.stats.kstest(u, "uniform")``).
        With ``target="pz"`` and ``n_samples=None`` the CDF is exact: every transformation of a 1-d
        flow is increasing, so F̂ = Φ(T(y)) with T the flow's map to its standard-normal base — no
        sampling noise and no ties.  Otherwise (``target="pxpypz"``: the p_z marginal, or when
        ``n_samples`` is given) u is the randomised sample PIT of :func:`sample_pit` from ``n_samples``
        (default 1000) posterior draws.

        Args:
            source: EventSet or ``{"lepton", "met_xy", "charge"[, "jets"]}`` (N events).
            truth: (N,) true neutrino p_z in GeV.
            n_samples, seed: the sample PIT's draws (the seed also randomises ties).
        """
        context = self.context(self._inputs(source))
        pz = _array(np.reshape(_array_1d(truth, "truth"), (-1, 1)), (1,), "truth")[:, 0]
        centre, _ = self._centre_scale(context)
        if len(pz) != len(centre):
            raise ShapeError(f"truth: has {len(pz)} rows, the events have {len(centre)}")
        if self.target == "pz" and n_samples is None:
            from scipy.special import ndtr

            u = self.transform(self._internal(pz[:, None], context), context)[:, 0]
            return ndtr(u)
        n_samples = 1000 if n_samples is None else n_samples
        draws = self.sample(context, n_samples, seed)[..., -1]
        return sample_pit(draws, pz, seed=self.seed if seed is None else seed)

    # ---- training -------------------------------------------------------------------------
    def fit_events(self, events: EventSet, *, only_passed: bool = True, weights=None, neutrino_role: str = "v", **train_options):
        """Train on reconstructed events; the truth is the latent neutrino (role ``neutrino_role``).

        Args:
            events: EventSet with :func:`required_observables` in x and z holding the neutrino.
            only_passed: train on the events that passed the detector selection.
            weights: optional (N,) event weights (e.g. ``events.weights(theta).numpy()``), before selection.
            train_options: see :meth:`ConditionalFlow.fit`.
        """
        inp = neutrino_features(events, self.jets)
        nu = true_neutrino(events, neutrino_role)
        keep = inp["passed"] if only_passed else np.ones(len(nu), dtype=bool)
        if not keep.any():
            raise InvalidInputError("events: no event passed the selection")
        sub = {k: v[keep] for k, v in inp.items() if k != "passed"}
        w = None
        if weights is not None:
            w = np.asarray(weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else getattr(weights, "values", weights), dtype=np.float64)
            if w.shape != (len(nu),):
                raise ShapeError(f"weights: expected shape ({len(nu)},) (one per event, before selection), got {w.shape}")
            w = w[keep]
        return self.fit(self._targets(sub["lepton"], nu[keep]), self.context(sub), weights=w, **train_options)

    # ---- posterior --------------------------------------------------------------------------
    def sample_momenta(self, source, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """(n_samples, N, 4) lab-frame massless neutrino four-momenta (E, p_x, p_y, p_z) in GeV drawn from
        the flow (with ``target="pz"`` the transverse part is p̸_T)."""
        inp = self._inputs(source)
        draws = self.sample(self.context(inp), n_samples, seed)
        if self.target == "pz":
            pxy = np.broadcast_to(inp["met_xy"], draws.shape[:2] + (2,))
            pz = draws[..., 0]
        else:
            c, s = _rotation(inp["lepton"])
            pxy = _rotate(np.moveaxis(draws[..., :2], 0, 1), c, s, inverse=True)
            pxy = np.moveaxis(pxy, 1, 0)
            pz = draws[..., 2]
        energy = np.sqrt(pxy[..., 0] ** 2 + pxy[..., 1] ** 2 + pz**2)
        return np.stack([energy, pxy[..., 0], pxy[..., 1], pz], -1)

    def point_estimate(self, source, n_samples: int = 100, seed: int | None = None, method: str = "branch") -> np.ndarray:
        """(N, D) one estimate of the target per event, GeV (rotated frame for ``target="pxpypz"``).

        Methods: ``"branch"`` — pick the side of the centre c of the two W-mass roots that holds most
        posterior samples (the more probable branch) and take the median of those samples (robust
        for small training sets); ``"mode"`` — the sample of highest flow density (the best
        resolution once the flow is well trained, see benchmarks/bench_flows_neutrino.py, but worse
        than the quadratic for a flow trained on a few thousand events); ``"median"`` — the
        per-component sample median (between the branches when the posterior is bimodal).
        """
        if method not in ("branch", "mode", "median"):
            raise InvalidInputError(f"method must be 'branch', 'mode' or 'median', got {method!r}")
        context = self.context(self._inputs(source))
        draws = self.sample(context, n_samples, seed)  # (S, N, D)
        if method == "median":
            return np.median(draws, 0)
        s, n, d = draws.shape
        if method == "branch":
            centre, _ = self._centre_scale(context)
            upper = draws[..., -1] > centre[None]
            side = upper.mean(0) >= 0.5
            chosen = np.where(upper == side[None], draws[..., -1], np.nan)
            out = np.median(draws, 0)
            out[:, -1] = np.nanmedian(chosen, 0)
            return out
        repeated = {k: np.repeat(v[None], s, 0).reshape((s * n,) + v.shape[1:]) for k, v in context.items()} if isinstance(context, dict) \
            else np.repeat(context[None], s, 0).reshape(s * n, -1)
        log_q = self.log_prob(draws.reshape(s * n, d), repeated).reshape(s, n)
        return draws[np.argmax(log_q, 0), np.arange(n)]

    def posterior_features(self, source, n_samples: int = 64, seed: int | None = None) -> dict[str, np.ndarray]:
        """Summaries of the posterior per event, usable as estimator features: :data:`POSTERIOR_FEATURES`
        → (N,) — median and 16/84 % quantiles of p_z (GeV) and the median m(ℓν) (GeV)."""
        inp = self._inputs(source)
        nu = self.sample_momenta(inp, n_samples, seed)
        q16, q50, q84 = np.quantile(nu[..., 3], [0.16, 0.5, 0.84], axis=0)
        total = nu + inp["lepton"][None]
        mass = np.sqrt(np.maximum(total[..., 0] ** 2 - (total[..., 1:] ** 2).sum(-1), 0.0))
        return dict(zip(POSTERIOR_FEATURES, (q50, q16, q84, np.median(mass, 0))))

    def with_posterior_features(self, events: EventSet, n_samples: int = 64, seed: int | None = None) -> EventSet:
        """``events`` with the :meth:`posterior_features` added to its observables x."""
        return events.with_observables(self.posterior_features(events, n_samples, seed))

    # ---- persistence ------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            **super().config(),
            "neutrino": {"target": self.target, "jets": self.jets, "jet_embedding": self.jet_embedding, "m_w": self.m_w,
                         "pz_scale_floor": self.pz_scale_floor, "pz_tails": self.pz_tails},
        }

    @classmethod
    def _from_config(cls, config: Mapping) -> "NeutrinoFlow":
        f, nu = config["flow"], config["neutrino"]
        return cls(
            target=nu["target"], jets=nu["jets"], jet_embedding=nu["jet_embedding"], m_w=nu["m_w"],
            pz_scale_floor=nu["pz_scale_floor"], pz_tails=nu.get("pz_tails", "linear"), kind=f["kind"],
            transforms=f["transforms"], hidden=f["hidden"], bins=f["bins"], seed=f["seed"],
        )
