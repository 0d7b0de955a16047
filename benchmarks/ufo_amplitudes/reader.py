"""UFO reader figures: load time of both SMEFTsim 3.0 models (target < 10 s each), restriction, the
linear decomposition of every coupling in all Wilson coefficients with its linearity check, and the
expansion of a few process strings."""

from __future__ import annotations

import statistics
import time
from pathlib import Path


def _timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def run(args) -> dict:
    from sbihep.physics.ufo import load_ufo, parse_process

    ufo = Path(args.ufo_dir)
    repeat = 1 if args.quick else 3
    out: dict = {}
    loads = {}
    for tag, folder in (("U35", "SMEFTsim_U35_MwScheme_UFO"), ("top", "SMEFTsim_top_MwScheme_UFO")):
        model, times = _timed(lambda: load_ufo(ufo / folder), repeat)
        loads[tag] = model
        out[f"ufo_load_{tag}_first_s"] = round(times[0], 3)
        out[f"ufo_load_{tag}_median_s"] = round(statistics.median(times), 3)
        out[f"ufo_{tag}_couplings"] = len(model.couplings)
        out[f"ufo_{tag}_vertices"] = len(model.vertices)
        ops = [p.name for p in model.external_parameters if p.lhablock in ("SMEFT", "SMEFTcpv")]
        dec, times = _timed(lambda: model.coupling_decomposition(ops), repeat)
        out[f"ufo_{tag}_operators"] = len(ops)
        out[f"ufo_decomposition_all_operators_{tag}_s"] = round(statistics.median(times), 3)
        out[f"ufo_{tag}_nonlinear_couplings"] = len(dec.nonlinear_couplings)
        out[f"ufo_{tag}_theta_dependent_internal_parameters"] = len(dec.theta_dependent_parameters)
        restricted, times = _timed(lambda: model.restrict(ufo / folder / "restrict_massless.dat"), repeat)
        out[f"ufo_restrict_massless_{tag}_s"] = round(statistics.median(times), 3)
        out[f"ufo_restrict_massless_{tag}_couplings_kept"] = len(restricted.couplings)
        out[f"ufo_restrict_massless_{tag}_vertices_kept"] = len(restricted.vertices)
    out["ufo_load_s"] = max(out["ufo_load_U35_first_s"], out["ufo_load_top_first_s"])
    model = loads["U35"].restrict(ufo / "SMEFTsim_U35_MwScheme_UFO" / "restrict_massless.dat")
    for tag, text in (("wh_decays", "p p > w+ h, w+ > e+ ve, h > b b~"),
                      ("ttbar_decays", "p p > t t~, (t > w+ b, w+ > l+ vl), (t~ > w- b~, w- > j j)"),
                      ("jj", "p p > j j")):
        spec, times = _timed(lambda: parse_process(text, model), repeat)
        out[f"parse_process_{tag}_s"] = round(statistics.median(times), 4)
        out[f"parse_process_{tag}_subprocesses"] = len(spec.subprocesses)
    return out
