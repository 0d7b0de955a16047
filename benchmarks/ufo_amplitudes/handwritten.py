"""The five hand-written processes regenerated from the SMEFTsim UFOs (issue 20, first "Must show"): SM |M|² and
every EFT coefficient per phase-space point, generated vs hand-written, after aligning the inputs and with the
convention map of :mod:`sbihep.physics.ufo.handwritten` (κ = 2 for U35's cll and cee, F = |V_ud|² = (1 − λ²/2)²
for the charged currents, ``lineshape="breit-wigner"`` for WH → ℓνbb̄, QED ≤ 1 for u u~ > t t~).

Keys: ``ufo_vs_handwritten_<case>_<coefficient>_max_rel_diff`` (coefficient ``sm``, ``lin_<op>``,
``quad_<op>_<op>`` with the hand-written operator names), ``ufo_vs_handwritten_<case>_max_rel_diff`` (worst over
its coefficients) and ``ufo_vs_handwritten_max_rel_diff`` (worst over all cases); points from the hand-written
phase space at √ŝ = the case's ``sqrt_s`` and 3× that, ``n`` points each.  ``..._floored_points`` counts the
(point, coefficient) pairs where the reference coefficient is < 10⁻³ of its Cauchy–Schwarz scale (compared
relative to that scale instead; e.g. cHWtil × SM in u d~ > w+ h vanishes identically).
"""

from __future__ import annotations

import time
from pathlib import Path


def run(args) -> dict:
    from sbihep.physics.couplings import DEFAULT_SM
    from sbihep.physics.ufo.handwritten import ckm_factor

    ufo = Path(args.ufo_dir)
    n = 100 if args.quick else 1000
    out: dict = {"ufo_vs_handwritten_points_per_energy": n, "ufo_vs_handwritten_ckm_factor": ckm_factor(DEFAULT_SM)}
    from ufo_amplitudes import temporary_process_cache

    with temporary_process_cache() as tmp:
        _compare_all(ufo, tmp, n, out)
    return out


def _compare_all(ufo: Path, tmp: Path, n: int, out: dict) -> None:
    from sbihep.physics.ufo import load_ufo
    from sbihep.physics.ufo.handwritten import REFERENCE_CASES, compare_case, generate_case, restriction_card

    u35 = ufo / "SMEFTsim_U35_MwScheme_UFO"
    top = ufo / "SMEFTsim_top_MwScheme_UFO"
    card = restriction_card(u35 / "restrict_massless.dat", tmp / "restrict_u35.dat",
                            {"cHWtil": 7e-4, "CKMlambda": 0.225})
    models = {"U35": load_ufo(u35, restriction=card), "top": load_ufo(top, restriction=top / "restrict_massless.dat")}
    worst_all = 0.0
    for case in REFERENCE_CASES:
        t0 = time.perf_counter()
        generated = generate_case(case, models[case.model], cache=False)
        out[f"ufo_vs_handwritten_{case.name}_build_s"] = round(time.perf_counter() - t0, 3)
        merged: dict[str, float] = {}
        for k, factor in enumerate((1.0, 3.0)):
            diffs = compare_case(case, generated, n_points=n, seed=11 + k, sqrt_s=case.sqrt_s * factor)
            for key, value in diffs.items():
                merged[key] = merged.get(key, 0.0) + value if key == "floored_points" else max(merged.get(key, 0.0), value)
        floored = merged.pop("floored_points")
        for key, value in merged.items():
            out[f"ufo_vs_handwritten_{case.name}_{key}_max_rel_diff"] = float(f"{value:.3e}")
        worst = max(merged.values())
        out[f"ufo_vs_handwritten_{case.name}_max_rel_diff"] = float(f"{worst:.3e}")
        out[f"ufo_vs_handwritten_{case.name}_floored_points"] = int(floored)
        out[f"ufo_vs_handwritten_{case.name}_coefficients"] = len(merged)
        worst_all = max(worst_all, worst)
    out["ufo_vs_handwritten_max_rel_diff"] = float(f"{worst_all:.3e}")
    out["ufo_vs_handwritten_cases"] = len(REFERENCE_CASES)
