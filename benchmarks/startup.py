"""Process start-up and whole-command wall times (VNN-COMP 2026 counts start-up).

Per command, the median of ``--repeat`` fresh processes: ``fkdverify --help``; ``fkdverify
verify`` on an instance the bounds decide at once (mnist_fc 256x2 prop_0 eps 0.03): its total
wall time, the time it reports for the verification itself, and the difference (start-up:
interpreter, imports, reading the files); and the main job on one point
(``fkdverify certify`` of the shipped PGD pair, eps 0.1, default options).

    FKD_DATA_DIR=../shared/data python benchmarks/startup.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent


def wall(cmd: list[str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return time.perf_counter() - t0, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    data = Path(a.data_dir).resolve()
    exe = [sys.executable, "-m", "fkdverify"]
    net = data / "vnncomp/mnist_fc/onnx/mnist-net_256x2.onnx"
    spec = data / "vnncomp/mnist_fc/vnnlib_2022/prop_0_0.03.vnnlib.gz"
    tmp = tempfile.mkdtemp()
    helps, totals, inner = [], [], []
    for _ in range(a.repeat):
        helps.append(wall([*exe, "--help"], tmp)[0])
        t, out = wall([*exe, "verify", str(net), str(spec)], tmp)
        assert out.strip().splitlines()[-1] == "unsat", out
        totals.append(t)
        inner.append(float(re.search(r"; ([0-9.]+) s", out).group(1)))
    print(f"fkdverify --help              median {median(helps):6.2f} s  (of {a.repeat})")
    print(
        f"verify 256x2 prop_0 eps 0.03   median {median(totals):6.2f} s wall, "
        f"{median(inner):5.2f} s verifying, {median(totals) - median(inner):5.2f} s start-up"
    )
    t0 = time.perf_counter()
    import torch  # noqa: F401  (what the start-up is made of)

    t_torch = time.perf_counter() - t0
    t0 = time.perf_counter()
    import onnx  # noqa: F401

    t_onnx = time.perf_counter() - t0
    print(f"  of the start-up: import torch {t_torch:.2f} s, import onnx {t_onnx:.2f} s")
    models = ROOT / "models"
    t, out = wall([*exe, "certify", str(models / "mnist_teacher_pgd.onnx"),
                   str(models / "mnist_student_faithful.onnx"), "--eps", "0.1", "--indices",
                   "0", "--quiet"], tmp)  # fmt: skip
    print(f"main job, one point (certify PGD pair, eps 0.1, defaults): {t:.2f} s wall")
    print("  " + out.strip().splitlines()[-2])


if __name__ == "__main__":
    main()
