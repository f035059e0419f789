"""Worker processes with the busy ones taking the idle cores (the default) vs every worker
kept on one torch thread, in one run, on two jobs whose last task runs alone:

1. ``certify`` of the README's example (VNN-COMP mnist_fc 256x4 teacher, 256x2 student,
   eps 0.02, the first ``--n`` test points, ``--timeout`` s per point): points decided, the
   slowest point, wall time.
2. ``verify --instances`` on a CIFAR-10 CNN (oval21 cifar_base_kw, img8194, branch and bound
   without MILP refinement, ``--cnn-timeout`` s) beside an instance the bounds decide at once:
   the domains the CNN's tree bounds in its time.

    FKD_DATA_DIR=../shared/data python benchmarks/pool_cores.py
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import fkdverify as fkd
from fkdverify.threads import cores
from fkdverify.vnnlib.instances import run_instances
from fkdverify.vnnlib.verify import VerifyOptions


def certify(data: Path, n: int, timeout: float, workers: int, share: bool) -> str:
    onnx = data / "vnncomp/mnist_fc/onnx"
    out = Path(tempfile.mkdtemp()) / "r.csv"
    t0 = time.perf_counter()
    t, s = str(onnx / "mnist-net_256x4.onnx"), str(onnx / "mnist-net_256x2.onnx")
    opts = fkd.CertifyOptions(eps=0.02, timeout=timeout)
    rows = fkd.certify_dataset(t, s, opts, indices=range(n), data_dir=str(data), out=str(out),
                               workers=workers, share_cores=share)  # fmt: skip
    wall = time.perf_counter() - t0
    decided = sum(r.agreement in ("agree", "disagree") for r in rows)
    slow = max(rows, key=lambda r: r.time_total_s)
    return (f"decided {decided}/{len(rows)}, slowest point {slow.index}: {slow.agreement} in "
            f"{slow.time_total_s:.1f} s, wall {wall:.1f} s")  # fmt: skip


def cnn(data: Path, timeout: float, share: bool) -> tuple[str, int]:
    v = data / "vnncomp"
    tmp = Path(tempfile.mkdtemp())
    (tmp / "instances.csv").write_text(
        f"{v}/oval21/onnx/cifar_base_kw.onnx,"
        f"{v}/oval21/vnnlib_2022/cifar_base_kw-img8194-eps0.018300653594771243.vnnlib.gz,"
        f"{timeout}\n"
        f"{v}/mnist_fc/onnx/mnist-net_256x2.onnx,"
        f"{v}/mnist_fc/vnnlib_2022/prop_0_0.03.vnnlib.gz,{timeout}\n"
    )
    opts = VerifyOptions(method="bab", refine=0.0, lp_tighten=0.0)
    rows = run_instances(str(tmp / "instances.csv"), str(tmp / "out.csv"), opts, workers=2,
                         share_cores=share)  # fmt: skip
    row = next(r for r in rows if "cifar" in r["onnx"])
    m = re.search(r"(\d+) domains", row["note"])
    n = int(m.group(1)) if m else 0
    return f"CNN {row['result']} in {float(row['time_s']):.1f} s, {n} domains", n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--cnn-timeout", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    data = Path(a.data_dir).resolve()
    names = {True: "idle cores shared", False: "one thread each  "}
    print(f"cores: {cores()}")
    for share in (True, False):
        print(f"certify  {names[share]}  {certify(data, a.n, a.timeout, a.workers, share)}",
              flush=True)  # fmt: skip
    domains = {}
    for share in (True, False):
        line, domains[share] = cnn(data, a.cnn_timeout, share)
        print(f"verify   {names[share]}  {line}", flush=True)
    if domains[False]:
        print(
            f"CNN domains ratio (shared / one thread each): {domains[True] / domains[False]:.2f}x"
        )


if __name__ == "__main__":
    main()
