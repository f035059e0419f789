"""The paper-style table of models/README.md: certify each student against its teacher with
``fkdverify certify``'s stages (defaults unless told) and print one row per student.

Columns: points certified (the teacher-correct ones among the first ``--n``), clean and PGD
accuracy (from the ONNX metadata written at training), empirical disagreement rate
(re-checked counterexamples), certified agreement rate (proven to agree), certified-faithful
rates at delta = 0.05, 0.1, 0.2, median Delta_lo, Delta_hi and their width, points left
unknown, median time per point.

The run asks the faithful property at ``--delta`` (0.1), which stops refining Delta_hi once it
is <= delta: the rates at the other deltas count the points whose Delta_hi, as left by that
run, is <= them. So they are sound lower bounds, marked ">=" (a point with Delta_hi in
(0.05, 0.1] may be faithful at 0.05 with more work). One CSV per student is kept in --out;
a rerun with the same settings resumes it (nothing is overwritten).

    FKD_DATA_DIR=../shared/data python benchmarks/faithful_students.py \\
        --teacher models/mnist_teacher_mtlibp.onnx --prefix models/mnist_mtlibp_student_ \\
        --students kd,certified-kd,faithful [--n 100] [--timeout 60] [--workers 2]

Without --teacher/--prefix: ``models/<dataset>_teacher_pgd.onnx`` and
``models/<dataset>_student_<name>.onnx`` (the PGD pair, the "hard" row).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from statistics import median

from fkdverify import defaults as D
from fkdverify.errors import InputError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.pair import CertifyOptions
from fkdverify.pair.runner import RunConfig, load_data, load_pair, run

DELTAS = (0.05, 0.1, 0.2)
HEAD = ("student", "points", "clean acc", "PGD acc", "empirical disagree", "certified agree",
        *(f"faithful δ={d:g}" for d in DELTAS), "median Δ_lo", "median Δ_hi",
        "median Δ_hi−Δ_lo", "unknown", "median time")  # fmt: skip


def row(name: str, meta: dict, rows: list, delta: float) -> list[str]:
    n = len(rows)
    agree = [r for r in rows if r.agreement == "agree"]
    rates = []
    for d in DELTAS:
        if d == delta:
            rates.append(f"{sum(r.faithful == 'faithful' for r in rows)}/{n}")
        else:  # a lower bound: the run refined Delta_hi only down to delta
            rates.append(f">= {sum(r.gap_upper <= d for r in agree)}/{n}")
    lo = median(r.gap_lower for r in rows)
    hi = median(r.gap_upper for r in rows)
    width = median(r.gap_upper - r.gap_lower for r in rows)
    unknown = sum(r.agreement == "unknown" or r.faithful == "unknown" for r in rows)
    pgd = str(meta.get("fkd.pgd_accuracy", "nan")).split()[0]
    return [name, str(n), f"{float(meta.get('fkd.clean_accuracy', 'nan')):.4f}",
            f"{float(pgd):.4f}", f"{sum(r.agreement == 'disagree' for r in rows) / n:.3f}",
            f"{len(agree) / n:.3f}", *rates, f"{lo:.3f}", f"{hi:.3f}", f"{width:.3f}",
            f"{unknown}/{n}", f"{median(r.time_total_s for r in rows):.2f} s"]  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--models", default="models")
    ap.add_argument("--teacher", help="teacher ONNX (default: <models>/<dataset>_teacher_pgd)")
    ap.add_argument("--prefix", help="student files are <prefix><name>.onnx")
    ap.add_argument("--students", default="kd,ard,rslad,iad,faithful")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--delta", type=float, default=D.DELTA)
    ap.add_argument("--timeout", type=float, default=D.CERTIFY_TIMEOUT)
    ap.add_argument("--method", default=D.CERTIFY_METHOD)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="results/students")
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    teacher = a.teacher or os.path.join(a.models, f"{a.dataset}_teacher_pgd.onnx")
    prefix = a.prefix or os.path.join(a.models, f"{a.dataset}_student_")
    opts = CertifyOptions(eps=a.eps, delta=a.delta, method=a.method, timeout=a.timeout)
    print(f"teacher {teacher}, eps {a.eps}, delta {a.delta}, first {a.n} test points "
          f"(teacher-correct ones certified), {a.method}, {a.timeout:g} s per point")  # fmt: skip
    print("| " + " | ".join(HEAD) + " |\n|" + "---|" * len(HEAD), flush=True)
    for name in a.students.split(","):
        path = f"{prefix}{name}.onnx"
        if not os.path.exists(path):
            print(f"| {name} | (missing: {path}) |")
            continue
        meta = import_onnx(path).meta
        stem = os.path.basename(path)[: -len(".onnx")]
        out = os.path.join(a.out, f"{stem}_eps{a.eps:g}_n{a.n}_t{a.timeout:g}.csv")
        cfg = RunConfig(teacher, path, opts, data_dir=a.data_dir, out=out, workers=a.workers)
        t, _, _ = load_pair(cfg)
        ds = load_data(cfg, t)
        cfg = RunConfig(teacher, path, opts, dataset=ds.name, data_dir=a.data_dir, out=out,
                        workers=a.workers, indices=tuple(range(a.n)))  # fmt: skip
        t0 = time.perf_counter()
        try:  # an existing CSV of the same settings resumes; another one is refused
            rows = [r for r in run(cfg, ds, t) if not r.note.startswith("skipped")]
        except InputError as e:
            sys.exit(f"error: {e}")
        took = time.perf_counter() - t0
        print(
            "| " + " | ".join(row(name, meta, rows, a.delta)) + f" |   ({took:.0f} s)", flush=True
        )


if __name__ == "__main__":
    main()
