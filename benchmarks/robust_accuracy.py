"""Certified robust accuracy of one network, measured by fkdverify itself: on the first N
test points, the share that the network classifies correctly *and* is proven robust on
(CROWN bounds, then one MILP per class the bounds leave open, margin tau), the share with a
re-checked counterexample (PGD, then the MILPs' witnesses), and the undecided rest.

    FKD_DATA_DIR=../shared/data python benchmarks/robust_accuracy.py NET.onnx --eps 0.1 --n 1000
        [--dataset fashion-mnist]
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import numpy as np

from fkdverify.pair import CertifyOptions, PairContext, network_robustness
from fkdverify.pair.attack import AttackOptions, _pgd
from fkdverify.pair.runner import RunConfig, load_data, load_pair


def pgd_flips(ctx, x, lo, hi, c, steps=50) -> bool:
    """A quick PGD on the margin of class c; a flip counts only when the referee (onnxruntime
    on the file and the float64 network) confirms another strict top class there."""
    import torch

    xs = torch.as_tensor(x)[None]
    lo_t, hi_t = torch.as_tensor(lo)[None], torch.as_tensor(hi)[None]

    def f(xb):
        z = ctx.tnet(xb)
        other = z.clone()
        other[:, c] = -torch.inf
        return other.max(1).values - z[:, c]

    bx, _ = _pgd(f, xs, lo_t, hi_t, steps, 2.5 * float(np.max(hi - lo)) / 2 / steps)
    x_adv = np.clip(bx[0].detach().numpy(), lo, hi)
    pick = ctx.referee.strict_pick(x_adv, teacher=True)
    return pick is not None and pick != c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("net")
    ap.add_argument("--eps", type=float, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per point (MILP)")
    ap.add_argument("--data-dir")
    ap.add_argument("--dataset", help="mnist | fashion-mnist | cifar10 (default: from the input)")
    a = ap.parse_args()
    opts = CertifyOptions(eps=a.eps, timeout=a.timeout, attack=AttackOptions())
    cfg = RunConfig(a.net, a.net, opts, dataset=a.dataset, data_dir=a.data_dir)
    t, s, norms = load_pair(cfg)
    ctx = PairContext(t, s, a.net, a.net, norms)
    ds = load_data(cfg, t, s)
    n = min(a.n, len(ds))
    counts = {"correct": 0, "robust": 0, "not": 0, "unknown": 0}
    times = []
    for i in range(n):
        x = ds.images[i].reshape(-1).astype(np.float64)
        c = int(ds.labels[i])
        if ctx.referee.predictions(x)[0] != c:
            continue
        counts["correct"] += 1
        lo, hi = np.clip(x - a.eps, 0, 1), np.clip(x + a.eps, 0, 1)
        t0 = time.perf_counter()
        if pgd_flips(ctx, x, lo, hi, c):
            verdict = "not"
        else:
            verdict, _ = network_robustness(ctx, True, lo, hi, c, opts)
        times.append(time.perf_counter() - t0)
        counts[verdict if verdict in counts else "unknown"] += 1
    print(f"{a.net}: eps {a.eps}, first {n} test points of {ds.name}, {a.timeout:g} s per point")
    print(f"clean accuracy            {counts['correct'] / n:.4f}")
    print(f"certified robust accuracy {counts['robust'] / n:.4f}  (proven robust and correct)")
    print(f"attacked (not robust)     {counts['not'] / n:.4f}")
    print(f"undecided                 {counts['unknown'] / n:.4f}")
    if times:
        print(f"time per correct point    median {median(times):.3f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
