"""Benchmark (issue 24): does a surrogate get −2ΔlnL right at μ = 0 and at μ̂, before and after anchors?

One ATLAS stau region (1911.06660, default ``Region-lowMass``, patch ``DS_120_1_Staus``) is labelled
once with :func:`sbihep.surrogates.labels.generate_labels` (anchors on: box edges, μ = 0, μ̂), then
two ensembles are trained on the same number of labels:

* ``before``: sampled labels only, plain network output (the behaviour before issue 24: labels
  drawn by ``sample_inputs`` alone, no clamp at 0);
* ``after``: the anchors plus as many sampled labels fewer (a seeded random subset), non-negative
  output (``MLPConfig.nonnegative``).

Reported (flat keys, units in names): the networks' t_asimov(0) and t_observed(μ̂) (truth: the
anchor labels there, 0 up to the fit tolerance), the lowest network value on a dense μ grid, CLs at
μ = 1 from both, the label count, and the label time expected before labelling vs. measured.

    OMP_NUM_THREADS=1 python benchmarks/bench_surrogate_labels.py [--n-points 14] [--region Region-lowMass]
        [--patch DS_120_1_Staus] [--quick]

Writes ``benchmarks/results/bench_surrogate_labels.json``.  Skips (exit 0) without the shared data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "workspaces" / "1911.06660.tar.gz"
OUT = ROOT / "benchmarks" / "results" / "bench_surrogate_labels.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="Region-lowMass")
    ap.add_argument("--patch", default="DS_120_1_Staus")
    ap.add_argument("--n-points", type=int, default=14, help="training labels per ensemble (anchors included in 'after')")
    ap.add_argument("--mu-high", type=float, default=3.0, help="upper edge of the mu box")
    ap.add_argument("--quick", action="store_true", help="smoke sizes (8 labels, small ensembles)")
    args = ap.parse_args()
    data = Path(os.environ.get("SBIHEP_WORKSPACES_TGZ", DATA))
    if not data.is_file():
        print(f"skip: {data} not found")
        return 0
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from sbihep.surrogates.labels import generate_labels, load_problem
    from sbihep.surrogates.likelihood import dense_grid
    from sbihep.surrogates.loader import SurrogateLikelihood
    from sbihep.surrogates.network import MLPConfig, train_ensemble
    from sbihep.surrogates.onnx import export_onnx

    n = 8 if args.quick else args.n_points
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(data) as tar:
            members = [m for m in tar.getmembers() if m.name.endswith((f"{args.region}/BkgOnly.json", f"{args.region}/patchset.json"))]
            tar.extractall(tmp, members=members, filter="data")
        ws = next(Path(tmp).rglob(f"{args.region}/BkgOnly.json"))
        problem = load_problem(ws, patch=args.patch, bounds=[[0.0, args.mu_high]])
        n_par = int(problem.model().config.npars)
        t0 = time.perf_counter()
        # anchors + (n + 1) sampled points: 'before' and 'after' then both train on n labels
        labels = generate_labels(problem, n + 4, n_starts=1, prefit=False, neighbour_start=False, n_workers=1,
                                 progress=True, seed=0)
        t_labels = time.perf_counter() - t0
        anchor = labels.is_anchor
        k = int(anchor.sum())
        sampled = np.flatnonzero(~anchor)
        rng = np.random.default_rng(0)
        before_rows = sampled[:n] if len(sampled) >= n else sampled
        after_rows = np.concatenate([np.flatnonzero(anchor), np.sort(rng.choice(sampled, size=max(len(before_rows) - k, 0),
                                                                                replace=False))])
        mu_hat = labels.best_fit["observed"][0]
        x_all = labels.x[:, 0]
        i_zero, i_hat = int(np.argmin(np.abs(x_all))), int(np.argmin(np.abs(x_all - mu_hat)))
        grid = dense_grid(problem.bounds, 4001)
        hidden = [16, 16] if args.quick else [32, 32]
        members = 2 if args.quick else 5
        res: dict = {"workspace": f"1911.06660/{args.region}", "patch": args.patch, "n_model_parameters": n_par,
                     "mu_box_low": 0.0, "mu_box_high": args.mu_high, "n_labels_per_ensemble": int(len(before_rows)),
                     "n_anchors": k, "anchors_mu": x_all[anchor].tolist(), "mu_hat_observed": float(mu_hat),
                     "label_t_asimov_at_mu0": float(labels.t[i_zero, 1]), "label_t_observed_at_mu_hat": float(labels.t[i_hat, 0]),
                     "n_labels_total": int(labels.timing["n_labels"]),
                     "label_time_expected_s": float(labels.timing["expected_label_time_s"]),
                     "label_time_measured_s": float(labels.timing["label_time_s"]),
                     "label_time_with_global_fits_s": t_labels,
                     "sampled_labels_min_mu_before": float(x_all[before_rows].min())}
        for tag, rows, nonneg in (("before", before_rows, False), ("after", after_rows, True)):
            ens, _ = train_ensemble(labels.x[rows], labels.t[rows], MLPConfig(1, 2, hidden, members, nonnegative=nonneg),
                                    seed=0, quiet=True)
            pred = ens.predict(np.array([[0.0], [mu_hat]]))[0]
            res[f"{tag}_t_asimov_at_mu0"] = float(pred[0, 1])
            res[f"{tag}_t_observed_at_mu_hat"] = float(pred[1, 0])
            res[f"{tag}_min_t_on_check_grid"] = float(ens.predict(grid)[0].min())
            path = export_onnx(ens, labels, Path(tmp) / f"{tag}.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = SurrogateLikelihood(path)
                res[f"{tag}_cls_mu1"] = float(s.cls([1.0])["CLs"][0])
                res[f"{tag}_cls_ul95"] = float(s.upper_limit())
        res["cls_mu1_after_over_before"] = res["after_cls_mu1"] / res["before_cls_mu1"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = OUT.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(res, indent=1, sort_keys=True))
    tmp_out.replace(OUT)
    print(json.dumps(res, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
