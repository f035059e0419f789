"""PGD toward a VNN-LIB spec's unsafe region (Madry et al. 2018): the disjuncts that come
closest at the box centre, descending the hinge sum of their atoms' violations; every hit is
re-checked (``check.py``) before it counts."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..net.graph import Network
from ..net.torch_net import TorchNet
from ..net.vnnlib import Spec
from .check import Checker

ATTACK_ROWS = 48  # PGD rows (starts x disjuncts) per step


def attack_group(opts) -> int:
    """Disjuncts per attack round with the default starts."""
    return max(1, ATTACK_ROWS // (opts.attack_restarts + 1))


def spec_attack(net: Network, spec: Spec, checker: Checker, opts, deadline: float,
            starts: np.ndarray | None = None, round_: int = 0):  # fmt: skip
    """PGD toward the disjuncts that come closest at the box centre (rows: starts x
    disjuncts, at most ``ATTACK_ROWS``), descending the hinge sum of the atoms' violations
    sum_j max(0, a_j . y - b_j + margin). Returns (confirmed (x32, y) or None, {disjunct:
    smallest worst-atom violation reached}) - the latter orders the MILPs. ``starts`` (R, n)
    replaces the default starts (the centre and ``attack_restarts`` random points). Round r
    > 0 (a restart) takes new random starts and the next group of disjuncts in that order."""
    f = TorchNet(net, torch.float32)
    gen = torch.Generator().manual_seed(opts.seed + round_)
    lo = torch.as_tensor(spec.lo, dtype=torch.float32)
    hi = torch.as_tensor(spec.hi, dtype=torch.float32)
    R = opts.attack_restarts + 1 if starts is None else len(starts)
    if R == 0:
        return None, {}
    m = max(len(b) for _, b in spec.disjuncts)
    A = torch.zeros(len(spec.disjuncts), m, spec.n_out)
    b = torch.full((len(spec.disjuncts), m), 1e9)  # padding atoms: 0 <= 1e9, never violated
    for k, (Ak, bk) in enumerate(spec.disjuncts):
        A[k, : len(bk)], b[k, : len(bk)] = torch.as_tensor(Ak), torch.as_tensor(bk)
    centre = ((lo + hi) / 2)[None]
    with torch.no_grad():
        v0 = (torch.einsum("kmo,o->km", A, f(centre)[0]) - b).max(1).values
    per = max(1, ATTACK_ROWS // R)
    order = torch.argsort(v0)
    first = (round_ * per) % len(order)
    keep = torch.cat([order, order])[first : first + min(per, len(order))]
    A, b = A[keep], b[keep]
    K = len(keep)
    if starts is None:
        rnd = lo + (hi - lo) * torch.rand(R - 1, len(lo), generator=gen)
        x0 = torch.cat([centre, rnd])
    else:
        x0 = torch.as_tensor(starts, dtype=torch.float32)
    x = x0.repeat_interleave(K, 0)
    A, b = A.repeat(R, 1, 1), b.repeat(R, 1)
    step = 2.5 * (hi - lo) / 2 / opts.attack_steps
    best = torch.full((K,), float("inf"))
    for it in range(opts.attack_steps + 1):
        x = x.detach().requires_grad_(True)
        y = f(x)
        viol = torch.einsum("rmo,ro->rm", A, y) - b
        worst = viol.max(1).values
        best = torch.minimum(best, worst.detach().reshape(R, K).min(0).values)
        if it % 10 == 0 or it == opts.attack_steps:
            for r in torch.argsort(worst)[:3].tolist():
                if worst[r] <= 0:
                    found = checker.confirm(x[r].detach().double().numpy())
                    if found is not None:
                        return found, {}
            if time.perf_counter() > deadline:
                break
        loss = torch.relu(viol + 1e-3).sum()
        (g,) = torch.autograd.grad(loss, x)
        x = torch.minimum(torch.maximum(x.detach() - step * g.sign(), lo), hi)
    return None, dict(zip(keep.tolist(), best.tolist(), strict=True))
