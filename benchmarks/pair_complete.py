"""Complete methods on teacher/student pairs, in one run: ``certify --method milp`` vs
``--method bab`` vs ``--method milp+bab`` (auto's pick for dense pairs: the MILPs, then bab
where agreement stays open) — decided counts and median times, as ratios — and the
differential gap bound vs the joint one on a same-architecture pair (a weight-quantised copy
of a real network).

Pairs: the VNN-COMP mnist_fc pair (teacher 256x4, student 256x2) and the shipped PGD pair
(``models/mnist_teacher_pgd.onnx`` / ``models/mnist_student_faithful.onnx``, the "hard" row).
The attack is on (certify's defaults otherwise); the property is faithful (agreement and
Delta <= delta). Points: the first ``--n`` MNIST test images the teacher classifies
correctly.

    FKD_DATA_DIR=../shared/data python benchmarks/pair_complete.py [--n 20] [--timeout 60]
        [--eps-vnncomp 0.02,0.05] [--eps-pgd 0.1] [--skip-pgd]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from statistics import median

import numpy as np
import onnx
from onnx import numpy_helper

from fkdverify.api import certify_points, load_pair
from fkdverify.data import load_dataset
from fkdverify.pair import CertifyOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quantised(src: str, dst: str, bits: int = 8) -> str:
    """``src`` with every weight matrix rounded to ``bits``-bit symmetric per-tensor levels
    (biases kept): a same-architecture student."""
    m = onnx.load(src)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            step = np.abs(w).max() / (2 ** (bits - 1) - 1)
            q = (np.round(w / step) * step).astype(w.dtype)
            init.CopyFrom(numpy_helper.from_array(q, init.name))
    onnx.save(m, dst)
    return dst


def points(pair, ds, n):
    out = []
    for i in range(len(ds)):
        x = ds.images[i].reshape(-1).astype(np.float64)
        if pair.referee.predictions(x)[0] == int(ds.labels[i]):
            out.append((i, x, int(ds.labels[i])))
        if len(out) == n:
            break
    return out


def run(pair, pts, opts):
    t0 = time.perf_counter()
    res = certify_points(pair, [x for _, x, _ in pts], [c for *_, c in pts], opts,
                         [i for i, *_ in pts])  # fmt: skip
    return [r for r, _ in res], time.perf_counter() - t0


def code(r) -> str:
    return {"agree": "A", "disagree": "D"}.get(r.agreement, "U")


def compare(name, pair, pts, eps, timeout):
    print(f"\n{name}, eps {eps}, {len(pts)} points, {timeout:g} s per point")
    rows = {}
    for m in ("milp", "bab", "milp+bab"):
        rows[m], wall = run(pair, pts, CertifyOptions(eps=eps, method=m, timeout=timeout))
        rs = rows[m]
        agree_dec = sum(r.agreement != "unknown" for r in rs)
        faith_dec = sum(r.faithful != "unknown" for r in rs)
        widths = [r.gap_upper - r.gap_lower for r in rs if r.agreement != "disagree"]
        t = [r.time_total_s for r in rs]
        print(f"  {m:8s} agreement {''.join(code(r) for r in rs)}  decided {agree_dec:2d}/"
              f"{len(rs)}  faithful decided {faith_dec:2d}/{len(rs)}  median gap width "
              f"{median(widths) if widths else float('nan'):.4f}  median {median(t):6.2f} s  "
              f"max {max(t):6.2f} s  (wall {wall:.0f} s)")  # fmt: skip
    med = {m: median(r.time_total_s for r in rs) for m, rs in rows.items()}
    dec = {m: sum(r.agreement != "unknown" for r in rs) for m, rs in rows.items()}
    for m in ("bab", "milp+bab"):
        print(
            f"  ratios milp/{m}: median time {med['milp'] / med[m]:.2f}x, agreement decided "
            f"{dec['milp']}/{dec[m]}"
        )


def differential_vs_joint(pair, pts, eps):
    print(f"\ndifferential vs joint gap bound, same-architecture pair, eps {eps}, "
          f"{len(pts)} points (bounds only: --method crown, --property gap)")  # fmt: skip
    widths = {}
    for diff in (False, True):
        opts = CertifyOptions(eps=eps, method="crown", prop="gap", differential=diff)
        rs, wall = run(pair, pts, opts)
        widths[diff] = [r.gap_upper - r.gap_lower for r in rs]
        name = "differential" if diff else "joint"
        print(f"  {name:12s} median width {median(widths[diff]):.5f}  max "
              f"{max(widths[diff]):.5f}  ({wall:.1f} s)")  # fmt: skip
    ratio = median(widths[False]) / max(median(widths[True]), 1e-12)
    print(f"  ratio joint/differential median width: {ratio:.1f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--eps-vnncomp", default="0.02,0.05")
    ap.add_argument("--eps-pgd", default="0.1")
    ap.add_argument("--skip-pgd", action="store_true")
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    ds = load_dataset("mnist", data_dir=a.data_dir)
    base = os.path.join(a.data_dir, "vnncomp/mnist_fc/onnx")
    t, s = os.path.join(base, "mnist-net_256x4.onnx"), os.path.join(base, "mnist-net_256x2.onnx")
    pair = load_pair(t, s)
    pts = points(pair, ds, a.n)
    with tempfile.TemporaryDirectory() as tmp:
        q = quantised(s, os.path.join(tmp, "q8.onnx"))
        same = load_pair(s, q)
        differential_vs_joint(same, points(same, ds, a.n), 0.02)
    for eps in (float(e) for e in a.eps_vnncomp.split(",") if e):
        compare("vnncomp mnist_fc 256x4 / 256x2", pair, pts, eps, a.timeout)
    if not a.skip_pgd:
        m = os.path.join(REPO, "models")
        pgd = load_pair(os.path.join(m, "mnist_teacher_pgd.onnx"),
                        os.path.join(m, "mnist_student_faithful.onnx"))  # fmt: skip
        for eps in (float(e) for e in a.eps_pgd.split(",") if e):
            compare("shipped PGD pair", pgd, points(pgd, ds, a.n), eps, a.timeout)


if __name__ == "__main__":
    main()
