"""fkdverify verify on a VNN-COMP benchmark, scored against the published answers.

Runs (or resumes) `fkdverify verify --instances` on <bench>/instances_<year>.csv, then prints,
per network and epsilon: solved (sat + unsat), sat, unsat, timeouts, median time of the
solved ones, and wrong answers against truth_<year>.csv; every counterexample file is read
back and re-run with onnxruntime (inside the box, output in the unsafe region).

    FKD_DATA_DIR=../shared/data python benchmarks/vnncomp.py mnist_fc --timeout 120 --workers 2
    FKD_DATA_DIR=../shared/data python benchmarks/vnncomp.py oval21 --timeout 60 --workers 2
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from statistics import median

import numpy as np
import onnxruntime as ort

from fkdverify.net.vnnlib import read_vnnlib
from fkdverify.vnnlib.instances import truth, wrong


def eps_of(spec: str) -> str:
    m = re.search(r"eps([0-9.]+?)\.vnnlib|_([0-9.]+?)\.vnnlib", spec)
    return (m[1] or m[2]) if m else "?"


def check_cex(path: str, onnx_path: str, spec_path: str) -> bool:
    vals = dict(line.strip().strip("()").split() for line in open(path) if line.strip())
    spec = read_vnnlib(spec_path)
    x = np.array([float(vals[f"X_{i}"]) for i in range(spec.n_in)], np.float32)
    if np.any(x < spec.lo) or np.any(x > spec.hi):
        return False
    s = ort.InferenceSession(onnx_path)
    inp = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y = s.run(None, {inp.name: x.reshape(shape)})[0].reshape(-1).astype(np.float64)
    return spec.holds_at(y) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", help="mnist_fc | oval21 | cifar10_resnet")
    ap.add_argument("--year", default="2022")
    ap.add_argument("--timeout", type=float, help="seconds per instance (default: the file's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="bab", help="verify --method (default bab)")
    ap.add_argument("--solver", default="auto", help="verify --solver (default auto)")
    ap.add_argument("--out", help="results CSV (default: /tmp/fkd-vnncomp-<bench>.csv)")
    ap.add_argument("--no-run", action="store_true", help="only score an existing --out")
    args = ap.parse_args()
    data = os.environ.get("FKD_DATA_DIR")
    if not data:
        sys.exit("set FKD_DATA_DIR=../shared/data")
    base = Path(data) / "vnncomp" / args.bench
    out = args.out or f"/tmp/fkd-vnncomp-{args.bench}.csv"
    if not args.no_run:
        cmd = [sys.executable, "-m", "fkdverify.cli", "verify", "--instances",
               str(base / f"instances_{args.year}.csv"), "--out", out,
               "--workers", str(args.workers), "--method", args.method,
               "--solver", args.solver]  # fmt: skip
        if args.timeout:
            cmd += ["--timeout", str(args.timeout)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    import csv

    rows = list(csv.DictReader(open(out)))
    known = truth(str(base / f"truth_{args.year}.csv"))
    groups = defaultdict(list)
    for r in rows:
        groups[(Path(r["onnx"]).stem, eps_of(r["vnnlib"]))].append(r)
    if len(groups) > len(rows) / 2:  # an epsilon per instance (oval21): one line per network
        merged = defaultdict(list)
        for (net, _), rs in groups.items():
            merged[(net, "various")] += rs
        groups = merged
    print(f"{args.bench} {args.year}: {len(rows)} instances, timeout "
          f"{args.timeout or 'per file'} s, {args.workers} workers, "
          f"--method {args.method}")  # fmt: skip
    print(f"{'network':24s} {'eps':>10s} {'solved':>7s} {'sat':>4s} {'unsat':>6s} "
          f"{'timeout':>8s} {'other':>6s} {'median s':>9s} {'wrong':>6s}")  # fmt: skip
    total = defaultdict(int)
    bad_cex = 0
    for (net, eps), rs in sorted(groups.items()):
        res = [r["result"] for r in rs]
        solved = [float(r["time_s"]) for r in rs if r["result"] in ("sat", "unsat")]
        n_wrong = sum(wrong(r["result"], known.get((r["onnx"], r["vnnlib"]), "")) for r in rs)
        for r in rs:
            if r["result"] == "sat" and r["counterexample"]:
                ok = check_cex(r["counterexample"], str(base / r["onnx"]), str(base / r["vnnlib"]))
                bad_cex += not ok
        line = dict(solved=len(solved), sat=res.count("sat"), unsat=res.count("unsat"),
                    timeout=res.count("timeout"),
                    other=len(res) - len(solved) - res.count("timeout"), wrong=n_wrong)  # fmt: skip
        for k, v in line.items():
            total[k] += v
        med = f"{median(solved):9.2f}" if solved else f"{'-':>9s}"
        print(f"{net:24s} {eps:>10s} {line['solved']:7d} {line['sat']:4d} {line['unsat']:6d} "
              f"{line['timeout']:8d} {line['other']:6d} {med} {line['wrong']:6d}")  # fmt: skip
    all_solved = [float(r["time_s"]) for r in rows if r["result"] in ("sat", "unsat")]
    med = median(all_solved) if all_solved else float("nan")
    print(f"{'total':35s} {total['solved']:7d} {total['sat']:4d} {total['unsat']:6d} "
          f"{total['timeout']:8d} {total['other']:6d} {med:9.2f} {total['wrong']:6d}")  # fmt: skip
    print(f"counterexamples rejected by onnxruntime: {bad_cex}")


if __name__ == "__main__":
    main()
