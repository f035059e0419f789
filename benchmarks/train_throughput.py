"""Training throughput (samples per second) of every teacher and student method for one
epoch on the same slice of MNIST, measured in one run; ratios against standard training.

    FKD_DATA_DIR=../shared/data python benchmarks/train_throughput.py [--n 6000] [--pgd-steps 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from fkdverify.train.steps import STUDENT_METHODS, TEACHER_METHODS
from fkdverify.train.trainer import TrainOptions, train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6000, help="training images (one epoch)")
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--teacher-arch", default="mlp:256,256")
    ap.add_argument("--student-arch", default="mlp:64,64")
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    common = dict(dataset="mnist", data_dir=a.data_dir, epochs=1, train_limit=a.n, eval_n=1,
                  pgd_steps=a.pgd_steps, eps=0.1)  # fmt: skip
    rates = {}
    print(f"MNIST, {a.n} images, one epoch, batch 128, PGD steps {a.pgd_steps}, CPU")
    print(f"{'role':8s} {'method':10s} {'arch':12s} {'samples/s':>10s}")
    teacher = None
    # warm-up (data loading, thread pools, allocator), not counted
    train(TrainOptions(role="teacher", method="standard", arch=a.teacher_arch,
                       out=os.path.join(tmp, "warm.onnx"), **common))  # fmt: skip
    for m in TEACHER_METHODS:
        out = os.path.join(tmp, f"t_{m}.onnx")
        res = train(TrainOptions(role="teacher", method=m, arch=a.teacher_arch, out=out, **common))
        rates[m] = a.n / res.train_seconds
        teacher = teacher or out
        print(f"{'teacher':8s} {m:10s} {a.teacher_arch:12s} {rates[m]:10.0f}", flush=True)
    for m in STUDENT_METHODS:
        out = os.path.join(tmp, f"s_{m}.onnx")
        res = train(TrainOptions(role="student", method=m, arch=a.student_arch, out=out,
                                 teacher=teacher, **common))  # fmt: skip
        rates[m] = a.n / res.train_seconds
        print(f"{'student':8s} {m:10s} {a.student_arch:12s} {rates[m]:10.0f}", flush=True)
    print("\nslowdown against standard training of the teacher (higher = slower):")
    for m, r in rates.items():
        print(f"  {m:10s} {rates['standard'] / r:6.1f}x")


if __name__ == "__main__":
    main()
