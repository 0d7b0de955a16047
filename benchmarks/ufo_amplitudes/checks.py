"""Generated processes checked without MadGraph (issue 20, "≥ 12 further processes"): Lorentz invariance,
Ward identities, closed-form results and the EFT polynomial against finite differences in θ.

For every process: ``check_<name>_{diagrams, resolved_diagrams, helicities, colour_flows, build_s}`` and
the worst deviation of each check that applies:

* ``_lorentz_max_rel`` — every packed EFT coefficient (constant, linear, quadratic) at ``--points`` flat
  phase-space points against the same after a random rotation and boost (rapidity ≤ 1) of all momenta,
  relative to that coefficient's natural size (the constant and A_ii themselves, interference and cross
  terms their Cauchy–Schwarz bounds 2√(A₀₀A_ii), 2√(A_iiA_jj); see ``_column_relative``; the library's
  own-size measure is ``_lorentz_own_scale_max_rel``, not counted) (tolerance 1e-12).  For decay chains with external
  gluons (``g g > t t~ > …``) the diagram set is the required-s-channel subset, which is not gauge
  invariant off shell (the diagrams with a gluon on the b quarks are excluded, as in MadGraph's decay
  chains), so the sum over the two physical gluon helicities depends on the frame; there the counted
  check uses boosts along and rotations about the beam axis (the lab ↔ partonic frame transformations,
  which leave the beam gluons' polarisation vectors unchanged up to a phase) and the full-group value is
  reported as ``_lorentz_full_max_rel`` (not counted);
* ``_ward_max_rel`` — for every external photon / gluon, ‖M(ε → k)‖ / (‖M‖ E_k) (tolerance 1e-10);
  u d̄ → W⁺γ is checked with Γ_W = 0: a fixed width in the s-channel W (charged) breaks the photon's
  Ward identity at O(M_WΓ_W/ŝ) (4e-3 at 500 GeV), as in MadGraph without the complex-mass scheme;
* ``_analytic_max_rel`` — against :mod:`sbihep.physics.ufo.references`: e⁺e⁻ → W⁺W⁻ (SM part),
  u ū → e⁻e⁺ with four-fermion contacts (every EFT coefficient), g g → g g and g g → g g g
  (Parke–Taylor) (tolerance 1e-10);
* ``_eft_exact_max_rel`` — :func:`~sbihep.physics.ufo.checks.eft_exactness` (the process rebuilt with
  θ set as numbers, θ = ±eᵢ and eᵢ + eⱼ) and ``_eft_fd_max_rel`` — the coefficients against central
  finite differences of ``matrix_element2`` in θ (step 1), relative to the largest |M|² among the
  points used (tolerance 1e-10 each).

``ufo_checks_failed`` counts the (process, check) pairs above their tolerance, ``ufo_checked_processes``
the processes.  Set ``SBIHEP_CACHE_DIR`` to a temporary directory (nothing is read from the cache:
every build is ``cache=False`` so that the build times are cold).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

TOLERANCE = {"lorentz": 1e-12, "ward": 1e-10, "analytic": 1e-10, "eft_exact": 1e-10, "eft_fd": 1e-10}


@dataclass
class Case:
    name: str
    model: str  # "U35" or "top"
    text: str
    operators: tuple[str, ...] = ()
    orders: dict = field(default_factory=dict)
    sqrt_s: float = 500.0
    analytic: str | None = None
    beam_lorentz: bool = False  # decay chain with external gluons (see the module docstring)
    ward: bool = True
    zero_widths: tuple[str, ...] = ()  # widths set to 0 (fixed widths of charged s-channel lines break the Ward identity)


CASES = (
    Case("ee_ww", "U35", "e+ e- > w+ w-", ("cW",), {"NP": 1, "QED": 3}, 500.0, "ee_ww"),
    Case("dy_contact", "U35", "u u~ > e- e+", ("clq1", "clq3", "ceu", "clu"), {"NP": 1}, 700.0, "dy"),
    Case("gg_gg", "U35", "g g > g g", (), {"QCD": 2}, 500.0, "gluons"),
    Case("gg_ggg", "U35", "g g > g g g", (), {"QCD": 3}, 500.0, "gluons"),
    Case("uu_ggg", "U35", "u u~ > g g g", (), {"QCD": 3}, 500.0),
    Case("uu_ag", "U35", "u u~ > a g", (), {"QCD": 1, "QED": 1}, 500.0),
    Case("ee_mumua", "U35", "e+ e- > mu+ mu- a", ("cle", "cee"), {"NP": 1}, 500.0),
    Case("ud_wa", "U35", "u d~ > w+ a", ("cW",), {"NP": 1, "QED": 3}, 500.0, zero_widths=("WW",)),
    Case("wz_4l", "U35", "u d~ > w+ z, w+ > e+ ve, z > mu+ mu-", ("cW", "cHq3"), {"NP": 1, "QED": 5}, 1000.0),
    Case("ww_4l", "U35", "u u~ > w+ w-, w+ > e+ ve, w- > mu- vm~", ("cW", "cHq3"), {"NP": 1, "QED": 5}, 1000.0),
    Case("zz_4l", "U35", "u u~ > z z, z > e+ e-, z > mu+ mu-", ("cHu", "cHe"), {"NP": 1}, 1000.0),
    Case("zh_llbb", "U35", "u u~ > z h, z > e+ e-, h > b b~", ("cHW", "cHB"), {"NP": 1}, 1000.0),
    Case("ee_zh", "U35", "e+ e- > z h", ("cHW", "cHB"), {"NP": 1}, 500.0),
    Case("vbf_h", "U35", "u d > u d h", ("cHW",), {"NP": 1, "QCD": 0}, 1000.0),
    Case("gg_tt_ctg", "top", "g g > t t~", ("ctGRe",), {"NP": 1, "QED": 1, "QCD": 2, "SMHLOOP": 0}, 1000.0),
    Case("uu_tt_decay_ctg", "top", "u u~ > t t~, (t > w+ b, w+ > e+ ve), (t~ > w- b~, w- > d u~)", ("ctGRe",),
         {"NP": 1, "QED": 5, "QCD": 2}, 1000.0),
    Case("gg_tt_decay_ctg", "top", "g g > t t~, (t > w+ b, w+ > e+ ve), (t~ > w- b~, w- > d u~)", ("ctGRe",),
         {"NP": 1, "QED": 5, "QCD": 2, "SMHLOOP": 0}, 1000.0, beam_lorentz=True, ward=False),
)


def _column_relative(a: torch.Tensor, b: torch.Tensor, n_operators: int = 0) -> float:
    """Worst |a − b| per packed coefficient (columns of :meth:`EFTDecomposition.packed`, events × columns)
    relative to that coefficient's natural size over the events: the constant A₀₀ and diagonal A_ii
    themselves, an interference 2A₀ᵢ and a cross term 2A_ij their Cauchy–Schwarz bounds 2√(A₀₀A_ii),
    2√(A_iiA_jj).  A suppressed interference (e.g. O_W in e⁺e⁻ → W⁺W⁻, 1/150 of its bound) or one that
    vanishes exactly (different helicities, e.g. c_lq × c_eu) carries the rounding of the amplitudes
    it is made of, which this measures fairly."""
    size = torch.maximum(a.abs(), b.abs())
    n = n_operators
    if a.shape[1] != 1 + n + n * (n + 1) // 2:  # no quadratic terms: every column against its own size
        scale = size.amax(0)
    else:
        diag = [size[:, 0]] + [size[:, 1 + n + _triangle(i, i, n)] for i in range(n)]
        scales = [diag[0]] + [2 * (diag[0] * diag[1 + i]).sqrt() for i in range(n)]
        scales += [diag[1 + i] if i == j else 2 * (diag[1 + i] * diag[1 + j]).sqrt() for i in range(n) for j in range(i, n)]
        scale = torch.stack(scales, -1).amax(0)
    scale = scale.clamp_min(1e-300)
    return float(((a - b).abs() / scale).max())


def _triangle(i: int, j: int, n: int) -> int:
    """Index of (i, j), i ≤ j, in the row-major upper triangle of an n × n matrix."""
    return i * n - i * (i - 1) // 2 + (j - i)


def _beam_transforms(n: int, seed: int, max_rapidity: float = 1.0) -> torch.Tensor:
    """(n, 4, 4) rotations about z by a random angle followed by boosts along z (rapidity ≤ max)."""
    gen = torch.Generator().manual_seed(seed)
    phi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    eta = max_rapidity * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
    lam = torch.zeros(n, 4, 4, dtype=torch.float64)
    lam[:, 0, 0] = lam[:, 3, 3] = torch.cosh(eta)
    lam[:, 0, 3] = lam[:, 3, 0] = torch.sinh(eta)
    lam[:, 1, 1] = lam[:, 2, 2] = 1.0
    rot = torch.zeros(n, 4, 4, dtype=torch.float64)
    rot[:, 0, 0] = rot[:, 3, 3] = 1.0
    rot[:, 1, 1] = rot[:, 2, 2] = torch.cos(phi)
    rot[:, 1, 2], rot[:, 2, 1] = -torch.sin(phi), torch.sin(phi)
    return lam @ rot


def _lorentz(proc, momenta, lam) -> float:
    moved = torch.einsum("nij,nkj->nki", lam, momenta)
    order = "quadratic" if proc.operators else "linear"
    a = proc.eft_decomposition(momenta, order, validate=False).packed()
    b = proc.eft_decomposition(moved, order, validate=False).packed()
    return _column_relative(a, b, len(proc.operators))


def _finite_differences(proc, momenta) -> float:
    """Coefficients of the decomposition against central differences of matrix_element2 (step 1)."""
    dec = proc.eft_decomposition(momenta, "quadratic", validate=False)
    f = lambda theta: proc.matrix_element2(momenta, theta, "quadratic", validate=False)  # noqa: E731
    f0 = f(None)
    ops = list(proc.operators)
    worst = 0.0
    single = {}
    for i, a in enumerate(ops):
        fp, fm = f({a: 1.0}), f({a: -1.0})
        single[a] = (fp, fm)
        scale = torch.stack([f0.abs(), fp.abs(), fm.abs()]).amax(0).clamp_min(1e-300)
        worst = max(worst, float(((dec.linear[:, i] - (fp - fm) / 2).abs() / scale).max()),
                    float(((dec.quadratic[:, i, i] - (fp + fm - 2 * f0) / 2).abs() / scale).max()))
    for i, a in enumerate(ops):
        for j in range(i + 1, len(ops)):
            b = ops[j]
            both = f({a: 1.0, b: 1.0})
            (ap, _), (bp, _) = single[a], single[b]
            cross = (both - ap - bp + f0) / 2  # both = f0 + l_a + l_b + q_aa + q_bb + 2 q_ab
            scale = torch.stack([f0.abs(), both.abs(), ap.abs(), bp.abs()]).amax(0).clamp_min(1e-300)
            worst = max(worst, float(((dec.quadratic[:, i, j] - cross).abs() / scale).max()))
    return worst


def _analytic(kind: str, proc, model, momenta) -> float:
    from sbihep.physics.ufo import references as R

    v = model.evaluate()
    ew = dict(e=v["ee"].real, sw=v["sth"].real, mz=v["MZ"].real, wz=v["WZ"].real)
    if kind == "ee_ww":  # legs e+ e- W+ W-: the SM part
        ref = R.ee_to_ww_sm(momenta[:, 1], momenta[:, 0], momenta[:, 3], momenta[:, 2], mw=v["MW"].real, **ew)
        got = proc.eft_decomposition(momenta, "quadratic", validate=False).constant
        return _column_relative(got[:, None], ref[:, None])
    if kind == "gluons":
        ref = R.gluon_mhv_colour_summed(momenta, v["G"].real)
        return _column_relative(proc.matrix_element2(momenta, None, validate=False)[:, None], ref[:, None])
    if kind == "dy":  # u u~ > e- e+, every coefficient of the polynomial from the reference
        ops = list(proc.operators)
        lam2 = v["LambdaSMEFT"].real ** 2

        def ref(theta):
            th = dict.fromkeys(ops, 0.0) | theta
            contact = {"LL": (th["clq1"] - th["clq3"]) / lam2, "RR": th["ceu"] / lam2, "RL": th["clu"] / lam2}
            return R.drell_yan_contact(*momenta.unbind(1), contact=contact, q_quark=2.0 / 3.0, t3_quark=0.5, **ew)

        r0 = ref({})
        plus = {a: ref({a: 1.0}) for a in ops}
        minus = {a: ref({a: -1.0}) for a in ops}
        cols = [r0] + [(plus[a] - minus[a]) / 2 for a in ops]
        for i, a in enumerate(ops):
            for b in ops[i:]:
                if a == b:
                    cols.append((plus[a] + minus[a] - 2 * r0) / 2)
                else:  # the packed off-diagonal column is 2 A_ab
                    cols.append(ref({a: 1.0, b: 1.0}) - plus[a] - plus[b] + r0)
        reference = torch.stack(cols, -1)
        got = proc.eft_decomposition(momenta, "quadratic", validate=False).packed()
        return _column_relative(got, reference, len(ops))
    raise ValueError(kind)


def run(args) -> dict:
    from sbihep.physics.ufo import checks, generate_process, load_ufo

    ufo = Path(args.ufo_dir)
    n_points = 6 if args.quick else int(getattr(args, "points", 20) or 20)
    models = {}
    for tag, folder in (("U35", "SMEFTsim_U35_MwScheme_UFO"), ("top", "SMEFTsim_top_MwScheme_UFO")):
        models[tag] = load_ufo(ufo / folder, restriction=ufo / folder / "restrict_massless.dat")
    out: dict = {}
    failed: list[str] = []
    cases = CASES[:4] if args.quick else CASES
    for case in cases:
        model = models[case.model]
        if case.zero_widths:
            model = model.with_inputs(dict.fromkeys(case.zero_widths, 0.0))
            out[f"check_{case.name}_zero_widths"] = ",".join(case.zero_widths)
        prefix = f"check_{case.name}"
        t0 = time.perf_counter()
        proc = generate_process(case.text, model, list(case.operators), orders=case.orders, cache=False)
        out[f"{prefix}_build_s"] = round(time.perf_counter() - t0, 3)
        amp = proc.amplitude_of[proc.subprocesses[0]]
        out[f"{prefix}_diagrams"] = len(amp.diagrams.diagrams)
        out[f"{prefix}_resolved_diagrams"] = int(amp.n_resolved)
        out[f"{prefix}_helicities"] = int(amp.helicities.shape[0])
        out[f"{prefix}_helicities_total"] = int(amp.n_helicities_total)
        out[f"{prefix}_colour_flows"] = int(amp.colour.matrix.shape[0])
        out[f"{prefix}_operators"] = len(case.operators)
        momenta = checks.random_momenta(proc, case.sqrt_s, n_points, seed=11)
        results: dict[str, float] = {}
        full = _lorentz(proc, momenta, checks.random_lorentz_transforms(n_points, 12))
        # the library's measure (each coefficient against its own largest size), for comparison
        out[f"{prefix}_lorentz_own_scale_max_rel"] = checks.lorentz_invariance(proc, momenta, seed=12)
        if case.beam_lorentz:
            out[f"{prefix}_lorentz_full_max_rel"] = full
            results["lorentz"] = _lorentz(proc, momenta, _beam_transforms(n_points, 12))
        else:
            results["lorentz"] = full
        ward = checks.ward_identities(amp, momenta)
        if ward:
            out[f"{prefix}_ward_legs"] = len(ward)
            if case.ward:
                results["ward"] = max(ward.values())
            else:
                out[f"{prefix}_ward_subset_max_rel"] = max(ward.values())
        if case.analytic:
            results["analytic"] = _analytic(case.analytic, proc, model, momenta)
        if case.operators:
            results["eft_exact"] = checks.eft_exactness(proc, case.text, model, momenta, step=1.0, orders=case.orders)
            results["eft_fd"] = _finite_differences(proc, momenta)
        for check, value in results.items():
            out[f"{prefix}_{check}_max_rel"] = float(value)
            if not value <= TOLERANCE[check]:
                failed.append(f"{case.name}:{check}")
        out[f"{prefix}_total_s"] = round(time.perf_counter() - t0, 3)
        print(f"  {case.name}: " + ", ".join(f"{k}={v:.2e}" for k, v in results.items())
              + f" ({out[f'{prefix}_diagrams']} diagrams, {out[f'{prefix}_helicities']} helicities, "
              f"{out[f'{prefix}_colour_flows']} colour flows, build {out[f'{prefix}_build_s']} s)", flush=True)
    out["ufo_checks_points_per_process"] = n_points
    out["ufo_checked_processes"] = len(cases)
    out["ufo_checks_failed"] = len(failed)
    out["ufo_checks_failed_list"] = ",".join(failed)
    return out
