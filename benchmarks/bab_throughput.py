"""Branch-and-bound throughput (domains bounded per second) on the exported agreement
instances of the shipped PGD pair: ``fkdverify export`` of points 0..7 at eps = 0.1 (the
product network and an OR-of-ANDs VNN-LIB spec), then ``verify --method bab`` with one tree
(no MILP refinement) under the time limit. With ``--abcrown PATH`` (the ``abcrown.py`` of an
alpha-beta-CROWN checkout; see benchmarks/README.md) it runs alpha-beta-CROWN on the same
files and prints its domain counts beside ours.

    FKD_DATA_DIR=../shared/data python benchmarks/bab_throughput.py [--timeout 60]
        [--points 0-7] [--abcrown /work/abcrown/complete_verifier/abcrown.py
        --abcrown-python /work/abcrown-venv/bin/python] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from fkdverify.api import verify
from fkdverify.vnnlib.verify import VerifyOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(tmp: str, idx: int, eps: float, data_dir: str) -> tuple[str, str]:
    m = os.path.join(REPO, "models")
    pair = [
        os.path.join(m, "mnist_teacher_pgd.onnx"),
        os.path.join(m, "mnist_student_faithful.onnx"),
    ]
    cmd = [sys.executable, "-m", "fkdverify", "export", *pair, "--eps", str(eps), "--index",
           str(idx), "--dataset", "mnist", "--data-dir", data_dir, "--out", tmp, "--name",
           f"p{idx}"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return os.path.join(tmp, f"p{idx}.onnx"), os.path.join(tmp, f"p{idx}.vnnlib")


def ours(net, spec, timeout):
    t0 = time.perf_counter()
    r = verify(net, spec, VerifyOptions(method="bab", timeout=timeout, refine=0.0))
    wall = time.perf_counter() - t0
    m = re.search(r"(\d+) domains", r.note)
    return r.result, int(m.group(1)) if m else (1 if r.stage else 0), wall


def abcrown(path, python, net, spec, timeout, tmp):
    """alpha-beta-CROWN on the files (its own Python; a minimal CPU config; run in ``tmp``,
    where it writes out.txt). Domains: the sum over its branch-and-bound runs of the last
    "N domains visited" each printed (the counter restarts with every run)."""
    cfg = os.path.join(tmp, "abcrown_cpu.yaml")
    with open(cfg, "w") as f:
        f.write("general:\n  device: cpu\n")
    cmd = [python, path, "--config", cfg, "--onnx_path", net, "--vnnlib_path", spec,
           "--timeout", str(timeout), "--device", "cpu"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp).stdout
    wall = time.perf_counter() - t0
    with open(os.path.join(tmp, os.path.basename(spec) + ".abcrown.log"), "w") as f:
        f.write(out)
    total, last = 0, 0
    for m in re.finditer(r"(\d+) domains visited", out):
        n = int(m.group(1))
        if n < last:  # a new run
            total += last
        last = n
    res = re.findall(r"Result: (\w+)", out)
    return (res[-1] if res else "?"), total + last, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--points", default="0-7")
    ap.add_argument("--abcrown", help="path of alpha-beta-CROWN's abcrown.py")
    ap.add_argument(
        "--abcrown-python",
        default=sys.executable,
        help="the Python of alpha-beta-CROWN's environment (benchmarks/README.md)",
    )
    ap.add_argument("--keep", help="a new (or empty) folder to keep the instances and "
                    "alpha-beta-CROWN's logs in")  # fmt: skip
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    if a.keep and os.path.isdir(a.keep) and os.listdir(a.keep):
        sys.exit(f"error: --keep {a.keep} is not empty; give a new folder (nothing is overwritten)")
    first, last = (int(v) for v in a.points.split("-"))
    print(f"PGD pair agreement instances, eps {a.eps}, {a.timeout:g} s each, bab (one tree)")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.keep or scratch
        os.makedirs(tmp, exist_ok=True)
        for i in range(first, last + 1):
            net, spec = export(tmp, i, a.eps, a.data_dir)
            res, dom, wall = ours(net, spec, a.timeout)
            line = f"  point {i}: ours {res:8s} {dom:6d} domains {wall:6.1f} s {dom / wall:7.1f}/s"
            if a.abcrown:
                r2, d2, w2 = abcrown(a.abcrown, a.abcrown_python, net, spec, a.timeout, tmp)
                line += (
                    f"   alpha-beta-CROWN {r2:8s} {d2:6d} domains {w2:6.1f} s "
                    f"{d2 / w2:7.1f}/s  ratio {dom / wall / max(d2 / w2, 1e-9):.2f}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
