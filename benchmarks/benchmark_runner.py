"""`fkdverify benchmark` runner: speed-up of local workers and memory over a long grid.

1. A MILP grid (shipped MNIST pair, 40 points) with --workers 1 and --workers 2, one after the
   other in this run: wall time of each and the ratio.
2. A bounds grid of 1,000 tasks (CROWN, one task per job so that every task goes through the
   pool): resident memory of the runner and its workers sampled while it runs, reported at
   each tenth of the tasks and as the peak.

    FKD_DATA_DIR=../shared/data python benchmarks/benchmark_runner.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAIR = (
    f'[pairs.kd]\nteacher = "{REPO}/models/mnist_teacher_pgd.onnx"\n'
    f'student = "{REPO}/models/mnist_student_kd.onnx"\n'
)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def task_times(path: Path) -> list[float]:
    import csv

    with open(path, newline="") as f:
        return [float(r["time_total_s"]) for r in csv.DictReader(f)]


def rows_written(csv: Path) -> int:
    try:
        return max(0, sum(1 for _ in open(csv)) - 1)
    except OSError:
        return 0


def run(grid: str, out: Path, workers: int, extra=(), sample=False):
    cmd = [sys.executable, "-m", "fkdverify.cli", "benchmark", grid, "--out", str(out),
           "--workers", str(workers), "--quiet", *extra]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    while p.poll() is None:
        if sample:
            samples.append((rows_written(out / "results.csv"), tree_rss_mb(p.pid)))
        time.sleep(0.5)
    if p.returncode:
        sys.exit(f"benchmark failed: {p.stderr.read().decode()[-1000:]}")
    return time.perf_counter() - t0, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--eps", type=float, default=0.03)
    ap.add_argument("--timeout", type=float, default=10.0, help="MILP seconds per point")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--skip-speedup", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if not os.environ.get("FKD_DATA_DIR"):
        sys.exit("set FKD_DATA_DIR=../shared/data")
    tmp = Path(tempfile.mkdtemp(prefix="fkd-bench-"))

    if not args.skip_speedup:
        g = tmp / "milp.toml"
        g.write_text(
            f'eps = {args.eps}\nmethod = "milp"\ntimeout = {args.timeout}\nn = {args.points}\n'
            + PAIR
        )
        t1, _ = run(str(g), tmp / "w1", 1)
        t2, _ = run(str(g), tmp / "w2", 2)
        print(f"MILP grid, {args.points} points, eps {args.eps} (includes start-up):")
        print(f"  --workers 1: {t1:7.1f} s   --workers 2: {t2:7.1f} s   speed-up {t1 / t2:.2f}x")
        work = sorted(task_times(tmp / "w1" / "results.csv"))
        bound = sum(work) / max(sum(work) / 2, work[-1])
        longest = [round(t, 1) for t in work[-3:]]
        print(
            f"  task times: sum {sum(work):.1f} s, longest {longest}; speed-up bound of any "
            f"2-worker schedule (sum / max(sum/2, longest)) {bound:.2f}x"
        )
    if args.skip_memory:
        return

    n_eps = 4
    g = tmp / "bounds.toml"
    g.write_text(
        f'eps = [0.005, 0.01, 0.015, 0.02]\nmethod = "crown"\nn = {args.tasks // n_eps}\n' + PAIR
    )
    t, samples = run(str(g), tmp / "mem", 2, ("--batch-size", "1"), sample=True)
    print(f"bounds grid, {args.tasks} tasks (CROWN, one task per job), --workers 2: {t:.1f} s")
    print("  tasks done   RSS of runner + workers (MB)")
    marks = [args.tasks * k // 10 for k in range(1, 11)]
    for m in marks:
        near = [rss for done, rss in samples if done <= m]
        if near:
            print(f"  {m:10d}   {max(near[-3:]):8.0f}")
    peak = max(rss for _, rss in samples)
    first = max((rss for done, rss in samples if done <= args.tasks // 10), default=peak)
    print(f"  peak {peak:.0f} MB; growth from the first tenth to the peak: {peak - first:+.0f} MB")


if __name__ == "__main__":
    main()
