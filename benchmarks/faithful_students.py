"""Certify each shipped student against its teacher (attack + exact MILP) and print the
comparison table of models/README.md: clean and PGD accuracy (from the ONNX metadata written
at training), empirical disagreement rate (re-checked counterexamples), certified
disagreement rate (points NOT proven to agree: an upper bound), median Delta_lo and Delta_hi,
unknown count. One CSV per student is kept in --out.

    FKD_DATA_DIR=../shared/data python benchmarks/faithful_students.py --dataset mnist \\
        [--n 100] [--eps 0.1] [--timeout 30] [--workers 2] [--out results/students]
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np

from fkdverify.net.onnx_import import import_onnx
from fkdverify.pair import CertifyOptions
from fkdverify.pair.runner import RunConfig, load_data, load_pair, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--models", default="models")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--method", default="milp")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--students", default="kd,ard,rslad,iad,faithful")
    ap.add_argument("--out", default="results/students")
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    teacher = os.path.join(a.models, f"{a.dataset}_teacher_pgd.onnx")
    opts = CertifyOptions(eps=a.eps, delta=a.delta, method=a.method, timeout=a.timeout)
    print(
        f"{a.dataset}: teacher {teacher}, eps {a.eps}, delta {a.delta}, first {a.n} test "
        f"points (teacher-correct ones certified), {a.method}, timeout {a.timeout:g} s"
    )
    head = (
        "| student | clean acc | PGD acc | empirical disagree | certified disagree "
        "| median Δ_lo | median Δ_hi | unknown | faithful | time |"
    )
    print(head + "\n|" + "---|" * 10)
    for name in a.students.split(","):
        path = os.path.join(a.models, f"{a.dataset}_student_{name}.onnx")
        if not glob.glob(path):
            print(f"| {name} | (missing: {path}) |")
            continue
        meta = import_onnx(path).meta
        out = os.path.join(a.out, f"{a.dataset}_{name}_eps{a.eps:g}.csv")
        if os.path.exists(out):
            os.remove(out)
        cfg = RunConfig(teacher, path, opts, data_dir=a.data_dir, out=out, workers=a.workers)
        t, _, _ = load_pair(cfg)
        ds = load_data(cfg, t)
        cfg = RunConfig(teacher, path, opts, dataset=ds.name, data_dir=a.data_dir, out=out,
                        workers=a.workers, indices=tuple(range(a.n)))  # fmt: skip
        t0 = time.perf_counter()
        rows = [r for r in run(cfg, ds, t) if not r.note.startswith("skipped")]
        took = time.perf_counter() - t0
        n = len(rows)
        emp = sum(r.agreement == "disagree" for r in rows) / n
        cert = sum(r.agreement != "agree" for r in rows) / n
        lo = np.median([r.gap_lower for r in rows])
        hi = np.median([r.gap_upper for r in rows])
        unknown = sum(r.faithful == "unknown" for r in rows)
        faithful = sum(r.faithful == "faithful" for r in rows)
        print(f"| {name} | {float(meta.get('fkd.clean_accuracy', 'nan')):.4f} | "
              f"{float(meta.get('fkd.pgd_accuracy', 'nan').split()[0]):.4f} | {emp:.3f} | "
              f"{cert:.3f} | {lo:.4f} | {hi:.4f} | {unknown}/{n} | {faithful}/{n} | "
              f"{took:.0f} s |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
