"""Per-point MILP time on the vnncomp mnist_fc pair (teacher 256x4, student 256x2): interval
(IBP) vs CROWN vs alpha-CROWN bounds feeding the MILP, and HiGHS vs CBC vs Gurobi, measured in
one run.

The attack is switched off so that the MILP has to decide every point (disagreements too);
the property is agreement. Ratios are per-point time of A / time of B over the same points
(time-limited points count at the limit). Gurobi's pip licence refuses models over 2,000
variables or rows: those points fall back to HiGHS and are counted.

    FKD_DATA_DIR=../shared/data python benchmarks/milp_bounds_and_solvers.py [--n 6] [--timeout 30]
"""

from __future__ import annotations

import argparse
import os
import time
from statistics import median

import numpy as np

from fkdverify.data import load_dataset
from fkdverify.errors import SolverError
from fkdverify.milp.backends import get_backend
from fkdverify.net.onnx_import import import_onnx
from fkdverify.pair import CertifyOptions, PairContext, certify_point


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--eps", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    base = os.path.join(a.data_dir, "vnncomp/mnist_fc/onnx")
    t, s = os.path.join(base, "mnist-net_256x4.onnx"), os.path.join(base, "mnist-net_256x2.onnx")
    ctx = PairContext(import_onnx(t), import_onnx(s), t, s)
    ds = load_dataset("mnist", data_dir=a.data_dir)
    pts = [i for i in range(len(ds)) if _teacher_correct(ctx, ds, i)][: a.n]
    configs = [("highs", "ibp"), ("highs", "crown"), ("highs", "alpha-crown"), ("cbc", "crown"),
               ("gurobi", "crown")]  # fmt: skip
    configs = [c for c in configs if _installed(c[0])]
    times, verdicts, notes = {}, {}, {}
    for solver, bounds in configs:
        key = f"{solver}/{bounds}"
        opts = CertifyOptions(eps=a.eps, prop="agreement", solver=solver, timeout=a.timeout,
                              milp_bounds=bounds, use_attack=False)  # fmt: skip
        times[key], verdicts[key], notes[key] = [], [], 0
        for i in pts:
            t0 = time.perf_counter()
            f, _ = certify_point(ctx, ds.images[i].reshape(-1), int(ds.labels[i]), opts, i)
            times[key].append(time.perf_counter() - t0)
            verdicts[key].append(f.agreement[0].upper())
            notes[key] += "fell back" in f.note
        decided = sum(v != "U" for v in verdicts[key])
        fell = f"  (gurobi refused {notes[key]}, fell back)" if notes[key] else ""
        print(
            f"{key:18s} verdicts {''.join(verdicts[key])}  median {median(times[key]):6.2f} s"
            f"  max {max(times[key]):6.2f} s  decided {decided}/{len(pts)}{fell}",
            flush=True,
        )
    print(f"\npoints {pts}, eps {a.eps}, timeout {a.timeout} s, attack off, property agreement")
    print("ratios of total time over these points (higher = the first is slower):")
    for x, y in [("highs/ibp", "highs/crown"), ("highs/crown", "highs/alpha-crown"),
                 ("cbc/crown", "highs/crown"), ("highs/crown", "gurobi/crown")]:  # fmt: skip
        if x in times and y in times:
            r = np.array(times[x]) / np.array(times[y])
            print(f"  {x:17s} / {y:17s}: total {sum(times[x]) / sum(times[y]):6.2f}x, "
                  f"per-point median {np.median(r):6.2f}x")  # fmt: skip


def _teacher_correct(ctx, ds, i):
    return ctx.referee.predictions(ds.images[i].reshape(-1))[0] == ds.labels[i]


def _installed(name):
    try:
        get_backend(name).check()
        return True
    except SolverError:
        return False


if __name__ == "__main__":
    main()
