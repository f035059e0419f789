"""MILP formulations over one network: its encoding, a margin violation, a margin extreme."""

from __future__ import annotations

import numpy as np

from ..bounds import Bounds
from ..net.graph import Network
from .encode import encode_network
from .model import Expr, ModelBuilder


def encode(net: Network, bounds: Bounds, lo, hi, b: ModelBuilder | None = None):
    """(builder, input variable ids, logits Expr) for one network over the box [lo, hi]."""
    b = b or ModelBuilder()
    x = b.add_vars(lo, hi)
    z = encode_network(b, net, b.var_expr(x), bounds, (net.output,))[net.output]
    return b, x, z


def diff(z: Expr, a: int, c: int, n: int) -> Expr:
    """z_a - z_c as a one-row Expr."""
    M = z.widen(n)
    return Expr(M[a] - M[c], np.array([z.k[a] - z.k[c]]))


def margin_violation(net: Network, bounds: Bounds, lo, hi, c: int, j: int, t: float):
    """Feasibility model: exists x in box with z_j - z_c >= t. Returns (model, x ids)."""
    b, x, z = encode(net, bounds, lo, hi)
    b.add_rows(diff(z, j, c, b.n), t, np.inf)
    return b.build(None), x


def margin_extreme(net: Network, bounds: Bounds, lo, hi, c: int, j: int, maximize: bool):
    """Optimise the margin m_j = z_c - z_j over the box. Returns (model, x ids)."""
    b, x, z = encode(net, bounds, lo, hi)
    return b.build(diff(z, c, j, b.n), maximize=maximize), x
