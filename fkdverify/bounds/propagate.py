"""Bounds on every ReLU pre-activation and on linear specs over input boxes, for B points at
once (IBP, CROWN and alpha-CROWN; the CROWN pieces are in ``crown.py``, alpha-CROWN in
``alpha.py``, the rounding allowance is explained there)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..net.graph import Network
from .alpha import alpha_layer
from .crown import crown_bounds, crown_unstable, ibp_values, widen
from .types import METHODS, BatchBounds, BoundOptions, Bounds, as_batch, one_point


def propagate(net: Network, lo, hi, opts: BoundOptions, known: dict | None = None,
              deadline: float = math.inf) -> BatchBounds:  # fmt: skip
    """Bounds of every ReLU input over the boxes [lo, hi] (tensors (B, n) or arrays).

    IBP everywhere; with crown (and alpha-crown), CROWN on each pre-activation that IBP leaves
    unstable, earlier layers' tightened bounds feeding later ones; alpha-crown then re-bounds
    the unstable neurons of each layer with optimised slopes (``alpha.py``). ``known[v] =
    (l, u)``: sound bounds of ReLU input v found otherwise (e.g. by MILP), taken as they are
    (intersected with IBP's) and used for every later layer. ``deadline``
    (time.perf_counter()): alpha-CROWN's iterations stop there, and later layers get IBP
    only (sound, loose: the caller is out of time)."""
    p = opts.prop(net)
    lo, hi = as_batch(lo, p), as_batch(hi, p)
    deep = net.deep_values()
    pre: dict = {}
    known = {v: (as_batch(a, p), as_batch(b, p)) for v, (a, b) in (known or {}).items()}

    def tighten(v, l, u):
        if v in known:
            l, u = torch.maximum(l, known[v][0]), torch.minimum(u, known[v][1])
            pre[v] = (l, u)
            return l, u
        late = time.perf_counter() > deadline
        if opts.method != "ibp" and v in deep and not late:
            l, u = crown_unstable(p, v, lo, hi, pre, l, u, opts.memory_mb)
        if opts.method == "alpha-crown" and v in deep and not late:
            with torch.enable_grad():
                l, u = alpha_layer(p, v, lo, hi, pre, l, u, opts, deadline)
        pre[v] = (l, u)
        return l, u

    with torch.no_grad():
        ibp_values(p, lo, hi, tighten=tighten)
    return BatchBounds(pre, opts.method)


def spec_bounds_batch(net: Network, lo, hi, bounds: BatchBounds, C, opts: BoundOptions,
                      target: int | None = None, upper_only: bool = False):  # fmt: skip
    """Sound (lower, upper) (B, S) of C @ value(target); C (S, n) shared or (B, S, n).

    IBP, intersected with CROWN backward through the whole product when the bounds are not
    IBP's (one pass for all rows: never bound networks apart and subtract)."""
    p = opts.prop(net)
    target = net.output if target is None else target
    lo, hi = as_batch(lo, p), as_batch(hi, p)
    C = torch.as_tensor(np.asarray(C) if not torch.is_tensor(C) else C, dtype=p.dtype,
                        device=p.device)  # fmt: skip
    with torch.no_grad():
        tlo, thi, tmag = ibp_values(p, lo, hi, bounds.pre, target)[target]
        c, r = (thi + tlo) / 2, (thi - tlo) / 2
        Cb = C if C.dim() == 3 else C.expand(lo.shape[0], -1, -1)
        mid = torch.einsum("bsn,bn->bs", Cb, c)
        rad = torch.einsum("bsn,bn->bs", Cb.abs(), r)
        mag = torch.einsum("bsn,bn->bs", Cb.abs(), c.abs() + r)
        ilb, iub = widen(p, mid - rad, mid + rad, mag)
        if bounds.method != "ibp":
            lb, ub = crown_bounds(p, target, C, C.shape[-2], lo, hi, bounds.pre, opts.memory_mb,
                                  upper_only)  # fmt: skip
            ilb, iub = torch.maximum(ilb, lb), torch.minimum(iub, ub)
    return ilb, iub


# ------------------------------------------------ one point, numpy float64 (used by the MILP)
_F64 = {m: BoundOptions(method=m) for m in METHODS}


def network_bounds(net: Network, lo, hi, method: str = "crown", known: dict | None = None,
                   deadline: float = math.inf) -> Bounds:  # fmt: skip
    """One point's bounds of every ReLU input over the box [lo, hi] (flat arrays), float64;
    ``known``: bounds of some ReLU inputs found otherwise; ``deadline``: see ``propagate``."""
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}")
    return propagate(net, lo, hi, _F64[method], known, deadline).point(0)


def spec_bounds(net: Network, lo, hi, bounds: Bounds, C, target: int | None = None):
    """One point's sound (lower, upper) bounds (numpy, (S,)) of C @ value(target)."""
    method = "crown" if bounds.method != "ibp" else "ibp"
    lb, ub = spec_bounds_batch(net, lo, hi, one_point(bounds, method), C, _F64[method], target)
    return lb[0].numpy(), ub[0].numpy()
