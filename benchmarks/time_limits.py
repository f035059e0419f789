"""Time limits on every path: how far past ``--timeout`` each method of ``verify`` and
``certify`` runs, on instances hard enough to reach the limit (DESIGN.md: a limit is honoured
within 10%).

verify: the VNN-COMP networks (mnist_fc 256x6, oval21's cifar_deep_kw and cifar_wide_kw,
cifar10_resnet's resnet_4b), on the ``--n`` instances per network whose published fastest
solve is slowest, and the exported product network + agreement VNN-LIB of the shipped PGD
pair at eps 0.1 (``fkdverify export``) on its first ``--n`` points, with methods attack, milp
and bab. certify: the shipped PGD pairs (MNIST at
eps 0.1, CIFAR-10 at 2/255: the hard rows) and the MTL-IBP CIFAR-10 pair, on the first
``--n`` teacher-correct test points, with methods alpha-crown, milp, bab and milp+bab under
property faithful and gap.

Each line gives the wall time of the call (the network already imported) against the limit,
as a ratio; the last line, the largest ratio and the cases over 1.1.

    FKD_DATA_DIR=../shared/data python benchmarks/time_limits.py [--limit 10] [--n 2]
        [--only verify|certify]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time

from pair_complete import points  # the first n teacher-correct points (benchmarks/)

from fkdverify.api import certify_points, load_pair
from fkdverify.data import load_dataset
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.vnnlib import read_vnnlib
from fkdverify.pair import CertifyOptions
from fkdverify.pair.export import export_pair
from fkdverify.vnnlib.verify import VerifyOptions
from fkdverify.vnnlib.verify import verify as verify_spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERIFY_NETS = [
    ("mnist_fc", "2022", "onnx/mnist-net_256x6.onnx"),
    ("oval21", "2022", "onnx/cifar_deep_kw.onnx"),
    ("oval21", "2022", "onnx/cifar_wide_kw.onnx"),
    ("cifar10_resnet", "2021", "onnx/resnet_4b.onnx"),
]
PAIRS = [  # (dataset, teacher, student, eps)
    ("mnist", "mnist_teacher_pgd", "mnist_student_faithful", 0.1),
    ("cifar10", "cifar10_teacher_pgd", "cifar10_student_faithful", 2 / 255),
    ("cifar10", "cifar10_teacher_mtlibp", "cifar10_mtlibp_student_faithful", 2 / 255),
]
OVER = 1.1


def hardest(bench_dir: str, year: str, onnx: str, n: int) -> list[str]:
    """The n specs of ``onnx`` whose fastest published correct solve took longest (unsolved
    ones first)."""
    with open(os.path.join(bench_dir, f"truth_{year}.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["onnx"] == onnx]

    def slowest(r):
        t = r.get("fastest_correct_time_s_minus_overhead") or ""
        return -float(t) if t else -float("inf")

    return [r["vnnlib"] for r in sorted(rows, key=slowest)[:n]]


def report(lines: list, what: str, wall: float, limit: float, extra: str = "") -> None:
    ratio = wall / limit
    lines.append((ratio, what))
    flag = "  OVER" if ratio > OVER else ""
    print(f"  {what:58s} {wall:7.2f} s  {ratio:5.2f}x{flag}  {extra}", flush=True)


def verify_cases(data: str, limit: float, n: int, lines: list) -> None:
    for bench, year, onnx in VERIFY_NETS:
        d = os.path.join(data, "vnncomp", bench)
        path = os.path.join(d, onnx)
        net = import_onnx(path)
        for spec_path in hardest(d, year, onnx, n):
            spec = read_vnnlib(os.path.join(d, spec_path))
            for m in ("attack", "milp", "bab"):
                t0 = time.perf_counter()
                r = verify_spec(net, path, spec, VerifyOptions(method=m, timeout=limit))
                wall = time.perf_counter() - t0
                what = f"verify {m:6s} {os.path.basename(onnx)} {os.path.basename(spec_path)}"
                report(lines, what[:58], wall, limit, f"{r.result} (reported {r.time_s:.2f} s)")
    dsname, teacher, student, eps = PAIRS[0]
    pair = _pair(teacher, student)
    with tempfile.TemporaryDirectory() as tmp:
        for i, x, c in points(pair, load_dataset(dsname, data_dir=data), n):
            path, spec_path = export_pair(pair.teacher, pair.student, x, eps, c, tmp, name=f"p{i}")
            net, spec = import_onnx(path), read_vnnlib(spec_path)
            for m in ("attack", "milp", "bab"):
                t0 = time.perf_counter()
                r = verify_spec(net, path, spec, VerifyOptions(method=m, timeout=limit))
                wall = time.perf_counter() - t0
                what = f"verify {m:6s} product of the PGD pair, point {i}"
                report(lines, what, wall, limit, f"{r.result} (reported {r.time_s:.2f} s)")


def _pair(teacher: str, student: str):
    m = os.path.join(REPO, "models")
    return load_pair(os.path.join(m, teacher + ".onnx"), os.path.join(m, student + ".onnx"))


def certify_cases(data: str, limit: float, n: int, lines: list) -> None:
    for dsname, teacher, student, eps in PAIRS:
        pair = _pair(teacher, student)
        pts = points(pair, load_dataset(dsname, data_dir=data), n)
        for method in ("alpha-crown", "milp", "bab", "milp+bab"):
            for prop in ("faithful", "gap"):
                opts = CertifyOptions(eps=eps, method=method, prop=prop, timeout=limit)
                for i, x, c in pts:
                    t0 = time.perf_counter()
                    ((r, _),) = certify_points(pair, [x], [c], opts, [i])
                    wall = time.perf_counter() - t0
                    what = f"certify {method:11s} {prop:8s} {student} #{i}"
                    got = f"{r.agreement}/{r.faithful} (reported {r.time_total_s:.2f} s)"
                    report(lines, what, wall, limit, got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per instance or point")
    ap.add_argument("--n", type=int, default=2, help="instances per network, points per pair")
    ap.add_argument("--only", choices=("verify", "certify"))
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    lines: list = []
    print(f"limit {a.limit:g} s; wall time of each call (network imported) and wall/limit")
    if a.only != "certify":
        verify_cases(a.data_dir, a.limit, a.n, lines)
    if a.only != "verify":
        certify_cases(a.data_dir, a.limit, a.n, lines)
    over = [w for r, w in lines if r > OVER]
    worst = max(lines)
    print(f"\n{len(lines)} cases; largest wall/limit {worst[0]:.2f}x ({worst[1].strip()}); "
          f"{len(over)} over {OVER:g}x")  # fmt: skip


if __name__ == "__main__":
    main()
