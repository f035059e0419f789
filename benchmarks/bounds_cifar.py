"""Bound methods on a real CIFAR-10 pair (VNN-COMP oval21: teacher cifar_wide_kw, student
cifar_base_kw, inputs normalised with mean (0.485, 0.456, 0.406), std 0.225), measured in one
run: points per second and certified counts for IBP, CROWN and alpha-CROWN, float64 vs
float32, and the width of the confidence-gap bound, decoupled vs joint.

The first --n test images are taken; points the teacher misclassifies are skipped, as certify
does. "bounds pts/s" times the bounds stage alone (attack off, the batch in one pass); "certify
pts/s" the whole certify (quick attack -> bounds -> full attack where still open).

    FKD_DATA_DIR=../shared/data python benchmarks/bounds_cifar.py [--n 100] [--eps 0.00392]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from statistics import median

import numpy as np
import torch

from fkdverify.bounds.types import BoundOptions, auto_device
from fkdverify.data import load_dataset
from fkdverify.pair import CertifyOptions, PairContext, certify_batch
from fkdverify.pair.certify import decide, questions
from fkdverify.pair.rows import decoupled_gap
from fkdverify.pair.runner import RunConfig, load_pair

MEAN, STD = "0.485,0.456,0.406", "0.225"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--eps", type=float, default=1 / 255)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--device", default=auto_device())
    ap.add_argument("--data-dir", default=os.environ.get("FKD_DATA_DIR", "../shared/data"))
    a = ap.parse_args()
    base = os.path.join(a.data_dir, "vnncomp/oval21/onnx")
    t, s = os.path.join(base, "cifar_wide_kw.onnx"), os.path.join(base, "cifar_base_kw.onnx")
    cfg = RunConfig(t, s, CertifyOptions(eps=a.eps), mean=MEAN, std=STD)
    teacher, student, norms = load_pair(cfg)
    ctx = PairContext(teacher, student, t, s, norms)
    ds = load_dataset("cifar10", data_dir=a.data_dir)
    idx = [i for i in range(a.n) if ctx.referee.predictions(_x(ds, i))[0] == int(ds.labels[i])]
    xs = [_x(ds, i) for i in idx]
    cls = [int(ds.labels[i]) for i in idx]
    print(f"oval21 wide_kw (teacher) / base_kw (student), eps {a.eps:.5f}, delta {a.delta}, "
          f"device {a.device}, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"first {a.n} CIFAR-10 test images, {len(idx)} classified correctly by the teacher\n")

    rows, times = [], {}
    head = (f"{'method':12s} {'precision':9s} {'bounds pts/s':>12s} {'certify pts/s':>13s} "
            f"{'agree':>5s} {'faithful':>8s} {'disagree':>8s} {'unknown':>7s} "
            f"{'undecided ReLUs (median)':>24s}")  # fmt: skip
    print(head)
    for method in ("ibp", "crown", "alpha-crown"):
        for prec in ("float64", "float32"):
            eng = BoundOptions(precision=prec, device=a.device)
            opts = CertifyOptions(eps=a.eps, delta=a.delta, method=method, engine=eng)
            tb = _bounds_only(ctx, xs, cls, replace(opts, use_attack=False))
            t0 = time.perf_counter()
            res = certify_batch(ctx, xs, cls, opts, idx)
            tc = time.perf_counter() - t0
            times[(method, prec)] = (tb, tc)
            f = [r for r, _ in res]
            count = lambda col, v, f=f: sum(getattr(r, col) == v for r in f)  # noqa: E731
            key = "unstable_ibp" if method == "ibp" else "unstable_crown"
            print(f"{method:12s} {prec:9s} {len(xs) / tb:12.1f} {len(xs) / tc:13.1f} "
                  f"{count('agreement', 'agree'):5d} {count('faithful', 'faithful'):8d} "
                  f"{count('agreement', 'disagree'):8d} {count('faithful', 'unknown'):7d} "
                  f"{median(getattr(r, key) for r in f):24.0f}")  # fmt: skip
            rows.append((method, prec, f))
    print("\nratios (bounds stage time, higher = the first is slower):")
    for x, y in ((("crown", "float64"), ("ibp", "float64")),
                 (("alpha-crown", "float64"), ("crown", "float64")),
                 (("crown", "float64"), ("crown", "float32"))):  # fmt: skip
        print(f"  {'/'.join(x):20s} / {'/'.join(y):20s}: {times[x][0] / times[y][0]:6.2f}x")
    _gap_widths(ctx, xs, cls, a)


def _x(ds, i):
    return ds.images[i].reshape(-1).astype(np.float64)


def _bounds_only(ctx, xs, cls, opts) -> float:
    t0 = time.perf_counter()
    certify_batch(ctx, xs, cls, opts, list(range(len(xs))))
    return time.perf_counter() - t0


def _gap_widths(ctx, xs, cls, a):
    """Delta_hi - Delta_lo per point with the decoupled bound alone and with the joint bound
    (the smaller of the two), CROWN, attack on (Delta_lo from re-checked PGD points)."""
    print("\nconfidence-gap bound width (Delta_hi - Delta_lo), property gap, CROWN float64:")
    opts = CertifyOptions(eps=a.eps, method="crown", prop="gap")
    res = certify_batch(ctx, xs, cls, opts, list(range(len(xs))))
    lo = np.array([r.gap_lower for r, _ in res])
    joint = np.array([r.gap_upper for r, _ in res])
    bare = replace(opts, use_attack=False)  # the CROWN pair bounds alone
    sts = decide(ctx, questions(xs, cls, bare, range(len(xs))), bare)
    dec = np.array([decoupled_gap(*ctx.split(st.pair_ub), c, ctx.k, opts.gap_sign)
                    for st, c in zip(sts, cls, strict=True)])  # fmt: skip
    wd, wj = dec - lo, joint - lo
    wins = int((joint < dec - 1e-9).sum())
    print(f"  decoupled: median {np.median(wd):.4f}  mean {wd.mean():.4f}  max {wd.max():.4f}")
    print(f"  joint    : median {np.median(wj):.4f}  mean {wj.mean():.4f}  max {wj.max():.4f}")
    print(f"  joint tighter on {wins}/{len(xs)} points; median width ratio decoupled/joint "
          f"{np.median(wd / np.maximum(wj, 1e-12)):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
