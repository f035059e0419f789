"""alpha-CROWN (Xu et al., "Fast and complete", ICLR 2021): the lower ReLU slopes of unstable
neurons become free parameters in [0, 1], one per spec row and neuron, optimised by Adam to
raise the CROWN lower bound. Every slope in [0, 1] gives a valid bound, so every iterate is
sound; the best per row is kept."""

from __future__ import annotations

import numpy as np
import torch

from ..net.graph import Network
from .propagate import Bounds, _box, _outward, crown_lower, network_bounds
from .rules import relu_relaxation


def alpha_spec_bounds(
    net: Network, lo, hi, bounds: Bounds, C, target: int | None = None, iters: int = 20,
    lr: float = 0.1, start=None,
):  # fmt: skip
    """Sound (lower, upper) of C @ value(target) with optimised slopes; ``start`` = (lb, ub)
    from plain CROWN, intersected."""
    target = net.output if target is None else target
    tlo, thi = _box(lo, hi)
    Ct = torch.as_tensor(np.asarray(C, np.float64))
    S = torch.cat([Ct, -Ct])
    pre = {v: (torch.from_numpy(l), torch.from_numpy(u)) for v, (l, u) in bounds.pre.items()}
    alphas = {}
    for v, (l, u) in pre.items():
        if v < target and ((l < 0) & (u > 0)).any():
            init = relu_relaxation(l, u)[2]
            alphas[v] = init.expand(len(S), -1).clone().requires_grad_(True)
    best = torch.full((len(S),), -torch.inf, dtype=torch.float64)
    if alphas:
        opt = torch.optim.Adam(alphas.values(), lr=lr)
        for _ in range(iters):
            lb = crown_lower(net, target, S, tlo, thi, pre, alphas)
            best = torch.maximum(best, lb.detach())
            opt.zero_grad()
            (-lb.sum()).backward()
            opt.step()
            with torch.no_grad():
                for a in alphas.values():
                    a.clamp_(0.0, 1.0)
    with torch.no_grad():
        best = torch.maximum(best, crown_lower(net, target, S, tlo, thi, pre, alphas))
    k = len(Ct)
    lb, ub = _outward(best[:k], -best[k:])
    lb, ub = lb.numpy(), ub.numpy()
    if start is not None:
        lb, ub = np.maximum(lb, start[0]), np.minimum(ub, start[1])
    return lb, ub


def alpha_network_bounds(net: Network, lo, hi, iters: int = 40, lr: float = 0.2) -> Bounds:
    """CROWN pre-activation bounds, then the unstable neurons of every layer that has a ReLU
    before it re-bounded by alpha-CROWN on top of the already tightened earlier layers."""
    pre = dict(network_bounds(net, lo, hi, "crown").pre)
    deep = net.deep_values()
    for v in (v for v in net.relu_inputs() if v in deep):
        l, u = pre[v]
        rows = np.flatnonzero((l < 0) & (u > 0))
        if not len(rows):
            continue
        C = np.eye(len(l))[rows]
        lb, ub = alpha_spec_bounds(net, lo, hi, Bounds(pre, "crown"), C, v, iters, lr,
                                   start=(l[rows], u[rows]))  # fmt: skip
        l, u = l.copy(), u.copy()
        l[rows], u[rows] = lb, ub
        pre[v] = (l, u)
    return Bounds(pre, "alpha-crown")
