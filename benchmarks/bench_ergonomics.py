"""Latency a notebook user waits for: from ``import sbihep`` to the end of the first training epoch.

Each measurement runs in a fresh Python subprocess pinned to one CPU core (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``, ``os.sched_setaffinity`` where available): the clock starts before
``import sbihep`` and stops in the trainer's callback after epoch 0 of ``RatioEstimator.fit`` (ALICES,
64×64 tanh network, 2000 samples of the 1D Gaussian toy, batch 128).  Two set-ups, interleaved,
``--repeats`` times each (median and minimum reported):

* ``sbihep_adam`` — the trainer as shipped (sbihep's own Adam, :mod:`sbihep._adam`);
* ``torch_optim`` — the same run with the trainer's optimiser replaced by ``torch.optim.Adam`` (the
  earlier implementation), whose first use imports ``torch._dynamo``.

The figures depend on the disk cache: the first run after boot (cold cache) pays several seconds
more for every import, most for torch._dynamo's many modules.  Writes
benchmarks/results/bench_ergonomics.json.

    python benchmarks/bench_ergonomics.py              # 5 repeats of each
    python benchmarks/bench_ergonomics.py --quick      # 2 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _results import write_results

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, time
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
t0 = time.perf_counter()
import sbihep
import torch
torch.set_num_threads(1)
from sbihep.estimators import RatioEstimator
from sbihep.estimators.toys import GaussianToy
t_import = time.perf_counter()
if sys.argv[1] == "torch_optim":
    trainer = sys.modules["sbihep.estimators.train"]  # (sbihep.estimators.train the attribute is the function)

    class TorchAdam:  # the earlier trainer's optimiser, behind the interface of sbihep._adam.Adam
        def __init__(self, params, lr, weight_decay):
            self.opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        lr = property(lambda self: self.opt.param_groups[0]["lr"],
                      lambda self, value: self.opt.param_groups[0].__setitem__("lr", value))
        def zero_grad(self):
            self.opt.zero_grad(set_to_none=True)
        def step(self):
            self.opt.step()
        def state_dict(self):
            return self.opt.state_dict()

    trainer.Adam = TorchAdam
toy = GaussianToy()
sample = toy.ratio_training_sample(2000, seed=1)
est = RatioEstimator(["x"], toy.space, hidden=(64, 64), seed=0)
t_setup = time.perf_counter()
marks = []
def first_epoch(epoch, history):
    marks.append(time.perf_counter())
    return True
est.fit(sample, "alices", epochs=5, batch_size=128, quiet=True, seed=0, callback=first_epoch)
print("RESULT", {"total_s": marks[0] - t0, "import_s": t_import - t0, "setup_s": t_setup - t_import,
                 "fit_to_first_epoch_s": marks[0] - t_setup, "dynamo_imported": "torch._dynamo" in sys.modules})
"""


def run_once(setup: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, setup], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{setup}: the child failed:\n{out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):].replace("'", '"').replace("True", "true").replace("False", "false"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats of each set-up")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    runs: dict[str, list[dict]] = {"sbihep_adam": [], "torch_optim": []}
    for k in range(repeats):
        for setup in (("sbihep_adam", "torch_optim") if k % 2 == 0 else ("torch_optim", "sbihep_adam")):
            runs[setup].append(run_once(setup))
            r = runs[setup][-1]
            print(f"{setup:12s} total {r['total_s']:.2f} s (import {r['import_s']:.2f}, setup {r['setup_s']:.2f}, "
                  f"fit to end of epoch 0 {r['fit_to_first_epoch_s']:.2f}; torch._dynamo imported: {r['dynamo_imported']})")
    results: dict = {"repeats": repeats, "torch_threads": 1, "cpu_count_visible": os.cpu_count() or 0,
                     "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}
    for setup, rs in runs.items():
        for key in ("total_s", "import_s", "setup_s", "fit_to_first_epoch_s"):
            values = [r[key] for r in rs]
            stem = key[:-2]
            results[f"{setup}_{stem}_median_s"] = statistics.median(values)
            results[f"{setup}_{stem}_min_s"] = min(values)
        results[f"{setup}_dynamo_imported"] = int(any(r["dynamo_imported"] for r in rs))
    results["first_epoch_latency_s"] = results["sbihep_adam_total_median_s"]
    results["first_epoch_latency_before_s"] = results["torch_optim_total_median_s"]
    results["first_epoch_latency_saving_s"] = results["torch_optim_total_median_s"] - results["sbihep_adam_total_median_s"]
    print(f"first_epoch_latency_s = {results['first_epoch_latency_s']:.2f} (median; before: {results['first_epoch_latency_before_s']:.2f})")
    write_results(__file__, results)


if __name__ == "__main__":
    main()
