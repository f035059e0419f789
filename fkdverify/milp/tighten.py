"""LP-based tightening of pre-activation bounds (optimisation-based bound tightening, as in
Tjeng et al. 2019 and Bunel et al. 2020): each neuron that CROWN leaves unstable is
minimised and maximised over the LP (triangle) relaxation of the layers before it, using the
tightened bounds of earlier layers. Bounds come from dual vectors (rigorous, ``dual.py``)
and are only ever intersected with the previous ones."""

from __future__ import annotations

import time

import numpy as np

from ..bounds import Bounds
from ..net.graph import Network
from .encode import encode_network
from .model import ModelBuilder


def lp_tighten(net: Network, bounds: Bounds, lo, hi, time_limit: float) -> tuple[Bounds, int]:
    """Tighten the bounds of every ReLU input that has a ReLU before it.

    Returns (new bounds, number of neurons made stable)."""
    from .backends import highs

    t_end = time.perf_counter() + time_limit
    pre = dict(bounds.pre)
    before = Bounds(pre, bounds.method).n_unstable()
    deep = net.deep_values()
    for v in (v for v in net.relu_inputs() if v in deep):
        left = t_end - time.perf_counter()
        if left <= 0:
            break
        l, u = pre[v]
        rows = np.flatnonzero((l < 0) & (u > 0))
        if not len(rows):
            continue
        b = ModelBuilder()
        x = b.add_vars(lo, hi)
        z = encode_network(b, net, b.var_expr(x), Bounds(pre, bounds.method), (v,), relax=True)[v]
        model = b.build(None)
        obj = z.rows(rows).widen(model.n_vars)
        lb, ub = highs.lp_bounds(model, obj, left)
        l, u = l.copy(), u.copy()
        l[rows] = np.maximum(l[rows], lb + z.k[rows])
        u[rows] = np.minimum(u[rows], ub + z.k[rows])
        pre[v] = (l, u)
    out = Bounds(pre, bounds.method + "+lp")
    return out, before - out.n_unstable()
