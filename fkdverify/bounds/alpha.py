"""alpha-CROWN (Xu et al., "Fast and complete", ICLR 2021): the lower ReLU slopes of unstable
neurons become free parameters in [0, 1], one per point, spec row and neuron, optimised by Adam
to raise the CROWN lower bound. Every slope in [0, 1] gives a valid bound, so every iterate is
sound; the best per row is kept."""

from __future__ import annotations

import math
import time

import torch

from .adam import Adam
from .crown import chunks, crown_lower, one_hot_rows, tighten_rows, unstable_rows
from .rules import Prop, relu_relaxation
from .types import BatchBounds, BoundOptions, as_batch, one_point


def alpha_lower(p: Prop, target: int, A, lo, hi, pre: dict, iters: int, lr: float,
                slopes: dict | None = None, deadline: float = math.inf):  # fmt: skip
    """Lower bounds (B, S) of A @ value(target) (A: (B, S, n)) with optimised slopes; never
    below plain CROWN (the first iterate uses CROWN's own slopes). ``slopes``, if given,
    receives per ReLU input the slopes (B, S, n) of each row's best iterate. The iterations
    stop at ``deadline`` (time.perf_counter()): every iterate's bound is valid."""
    alphas = {}
    for v, (l, u) in pre.items():
        if v < target and ((l < 0) & (u > 0)).any():
            init = relu_relaxation(l, u)[2][:, None, :]
            alphas[v] = init.expand(-1, A.shape[1], -1).clone().requires_grad_(True)
    keep = {v: a.detach().clone() for v, a in alphas.items()} if slopes is not None else {}
    with torch.no_grad():
        best = crown_lower(p, target, A, lo, hi, pre, alphas)
    if alphas and iters > 0 and time.perf_counter() <= deadline:
        opt = Adam(alphas.values(), lr=lr)
        for it in range(iters + 1):
            lb = crown_lower(p, target, A, lo, hi, pre, alphas)
            with torch.no_grad():
                better = lb > best
                best = torch.maximum(best, lb)
                for v, a in keep.items():
                    keep[v] = torch.where(better[..., None], alphas[v], a)
            if it == iters or not lb.requires_grad:  # (none: no row reaches an unstable ReLU)
                break
            if time.perf_counter() > deadline:
                break
            opt.zero_grad()
            (-lb.sum()).backward()
            opt.step()
            with torch.no_grad():
                for a in alphas.values():
                    a.clamp_(0.0, 1.0)
    if slopes is not None:
        slopes.update(keep)
    return best.detach()


def alpha_bounds(p: Prop, target: int, C, lo, hi, pre: dict, opts: BoundOptions,
                 upper_only: bool = False, deadline: float = math.inf):  # fmt: skip
    """(lower, upper) (B, S) of C @ value(target), C: (B, S, n), chunked to the memory budget
    (autograd keeps every layer's coefficients, hence the larger factor); ``upper_only``:
    lower = -inf, half the work."""
    B, S = C.shape[:2]
    lb = torch.full((B, S), -torch.inf, dtype=p.dtype, device=p.device)
    ub = torch.empty_like(lb)
    factor = 8 + 4 * target
    with torch.enable_grad():
        for bsl, ssl in chunks(p, target, B, S, opts.memory_mb, factor):
            rows = C[bsl, ssl]
            sub = {v: (l[bsl], u[bsl]) for v, (l, u) in pre.items() if v < target}
            both = -rows if upper_only else torch.cat([rows, -rows], 1)
            low = alpha_lower(p, target, both, lo[bsl], hi[bsl], sub, opts.alpha_iters,
                              opts.alpha_lr, deadline=deadline)  # fmt: skip
            if upper_only:
                ub[bsl, ssl] = -low
            else:
                k = rows.shape[1]
                lb[bsl, ssl], ub[bsl, ssl] = low[:, :k], -low[:, k:]
    return lb, ub


def alpha_layer(p: Prop, v: int, lo, hi, pre: dict, l, u, opts: BoundOptions,
                deadline: float = math.inf):  # fmt: skip
    """Re-bound the unstable neurons of ReLU input v with optimised slopes; intersected."""
    idx, valid = unstable_rows(l, u)
    if not idx.shape[1]:
        return l, u
    C = one_hot_rows(idx, valid, p.net.size_of(v), p.dtype)(0, len(idx), 0, idx.shape[1])
    lb, ub = alpha_bounds(p, v, C, lo, hi, pre, opts, deadline=deadline)
    return tighten_rows(l, u, idx, valid, lb, ub)


def alpha_spec_bounds_batch(net, lo, hi, bounds: BatchBounds, C, opts: BoundOptions,
                            target: int | None = None, upper_only: bool = False,
                            deadline: float = math.inf):  # fmt: skip
    """Like ``spec_bounds_batch`` with optimised slopes; C: (S, n) shared or (B, S, n)."""
    p = opts.prop(net)
    target = net.output if target is None else target
    lo, hi = as_batch(lo, p), as_batch(hi, p)
    C = torch.as_tensor(C, dtype=p.dtype, device=p.device)
    if C.dim() == 2:
        C = C.expand(lo.shape[0], -1, -1)
    return alpha_bounds(p, target, C, lo, hi, bounds.pre, opts, upper_only, deadline)


def alpha_spec_bounds(net, lo, hi, bounds, C, target: int | None = None, iters: int = 20,
                      lr: float = 0.25, start=None, deadline: float = math.inf):  # fmt: skip
    """One point (numpy in and out, float64); ``start`` = (lb, ub) to intersect with."""
    import numpy as np

    opts = BoundOptions(method="alpha-crown", alpha_iters=iters, alpha_lr=lr)
    lb, ub = alpha_spec_bounds_batch(net, lo, hi, one_point(bounds),
                                     np.asarray(C, np.float64), opts, target,
                                     deadline=deadline)  # fmt: skip
    lb, ub = lb[0].numpy(), ub[0].numpy()
    if start is not None:
        lb, ub = np.maximum(lb, start[0]), np.minimum(ub, start[1])
    return lb, ub
