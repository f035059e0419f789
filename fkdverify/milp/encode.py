"""Exact MILP encoding of a canonical network over an input box.

Affine layers stay affine expressions over earlier variables (no variables of their own);
stable ReLUs (from the pre-activation bounds) add nothing; each unstable ReLU adds one
continuous and one binary variable with the big-M encoding of Tjeng et al. (MIPVerify, 2019):
y >= 0, y >= z, y <= u d, y <= z - l (1 - d), d in {0, 1}."""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp

from ..bounds import Bounds
from ..net.graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale, chw
from .model import Expr, ModelBuilder

_CONV_MATRICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> {shape: M}


def conv_matrix(lay: Conv, in_shape) -> sp.csr_matrix:
    """The convolution (without bias) as a sparse matrix on flat (C, H, W) vectors; built once
    per layer and input shape (every MILP of a CNN reuses it)."""
    shape = tuple(chw(in_shape))
    per_layer = _CONV_MATRICES.setdefault(lay, {})
    if shape not in per_layer:
        per_layer[shape] = conv_as_matrix(lay.weight, shape, lay.stride, lay.padding,
                                          lay.dilation, lay.groups)  # fmt: skip
    return per_layer[shape]


def conv_as_matrix(w: np.ndarray, shape, stride, padding, dilation, groups) -> sp.csr_matrix:
    """conv2d(x, w) (no bias) on flat (C, H, W) inputs as a sparse (C_out Ho Wo, C H W) matrix:
    entry (o, y, x) x (c, iy, ix) is w[o, c mod C_in/g, ky, kx] where iy = y s - p + ky d (and
    likewise for x), inside the image, and c in o's group."""
    C, H, W = shape
    co, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    o, ci, ky, kx = (a.ravel() for a in np.nonzero(w))  # the weights that are not zero
    val = w[o, ci, ky, kx]
    c = (o // (co // groups)) * cg + ci  # the input channel
    y, x = np.arange(ho), np.arange(wo)
    iy = y[None, :] * sh - ph + ky[:, None] * dh  # (nnz, ho)
    ix = x[None, :] * sw - pw + kx[:, None] * dw  # (nnz, wo)
    ok = (iy >= 0)[:, :, None] & (iy < H)[:, :, None] & (ix >= 0)[:, None, :] & (ix < W)[:, None, :]
    e, yy, xx = np.nonzero(ok)
    rows = (o[e] * ho + yy) * wo + xx
    cols = (c[e] * H + iy[e, yy]) * W + ix[e, xx]
    M = sp.csr_matrix((val[e].astype(np.float64), (rows, cols)), shape=(co * ho * wo, C * H * W))
    M.sum_duplicates()
    return M


def encode_network(
    b: ModelBuilder,
    net: Network,
    x: Expr,
    bounds: Bounds,
    wanted: tuple[int, ...],
    relax: bool = False,
) -> dict[int, Expr]:
    """Add ``net`` to the builder on input expression ``x``; return Exprs of ``wanted`` values.

    Only the nodes up to the last wanted value are encoded. ``relax`` makes the ReLU binaries
    continuous in [0, 1]: the LP (triangle) relaxation."""
    vals: dict[int, Expr] = {0: x}
    last_use = {}
    upto = max(wanted)
    for i, node in enumerate(net.nodes[:upto]):
        for v in node.inputs:
            last_use[v] = i
    for i, node in enumerate(net.nodes[:upto]):
        lay = node.layer
        e = vals[node.inputs[0]]
        if isinstance(lay, Linear):
            out = e.lin(lay.weight, lay.bias, b.n)
        elif isinstance(lay, Conv):
            M = conv_matrix(lay, net.shape_of(node.inputs[0]))
            per = M.shape[0] // len(lay.bias)
            out = e.lin(M, np.repeat(lay.bias, per), b.n)
        elif isinstance(lay, Scale):
            out = e.lin(sp.diags(lay.mul), lay.add, b.n)
        elif isinstance(lay, Reshape):
            out = e
        elif isinstance(lay, Permute):
            shp = net.shape_of(node.inputs[0])
            out = e.rows(np.arange(len(e)).reshape(shp).transpose(lay.perm).ravel())
        elif isinstance(lay, Add):
            f = vals[node.inputs[1]]
            out = Expr(e.widen(b.n) + f.widen(b.n), e.k + f.k)
        elif isinstance(lay, Concat):
            parts = [vals[v] for v in node.inputs]
            out = Expr(
                sp.vstack([p.widen(b.n) for p in parts]), np.concatenate([p.k for p in parts])
            )
        elif isinstance(lay, Relu):
            out = encode_relu(b, e, *bounds.pre[node.inputs[0]], integer=not relax)
        else:
            raise TypeError(f"no MILP encoding for {type(lay).__name__}")
        vals[i + 1] = out
        for v in node.inputs:  # free expressions no later node needs
            if last_use.get(v) == i and v not in wanted and v != 0:
                vals.pop(v, None)
    return {v: vals[v] for v in wanted}


def encode_relu(
    b: ModelBuilder, z: Expr, l: np.ndarray, u: np.ndarray, integer: bool = True
) -> Expr:
    """y = relu(z) given l <= z <= u: stable neurons are substituted, unstable ones encoded."""
    unstable = np.flatnonzero((l < 0) & (u > 0))
    active = np.flatnonzero(l >= 0)
    n_out = len(z)
    y = b.add_vars(np.zeros(len(unstable)), u[unstable])
    d = b.add_vars(np.zeros(len(unstable)), np.ones(len(unstable)), integer=integer)
    zu = z.rows(unstable)
    Y, D = b.var_expr(y), b.var_expr(d)
    n = b.n
    zm = zu.widen(n)
    lu, uu = l[unstable], u[unstable]
    b.add_rows(Expr(Y.M - zm, -zu.k), 0.0, np.inf)  # y >= z
    b.add_rows(Expr(Y.M - sp.diags(uu) @ D.M, np.zeros(len(y))), -np.inf, 0.0)  # y <= u d
    # y <= z - l (1 - d)  <=>  y - z - l d <= -l
    b.add_rows(Expr(Y.M - zm - sp.diags(lu) @ D.M, -zu.k), -np.inf, -lu)
    # output rows: active -> z, unstable -> y, inactive -> 0
    za = z.rows(active)
    rows = np.concatenate([active, unstable])
    M = sp.vstack([za.widen(n), Y.M]).tocsr()
    k = np.concatenate([za.k, np.zeros(len(unstable))])
    order = np.full(n_out, -1)
    order[rows] = np.arange(len(rows))
    # inactive rows point at an all-zero row appended at the end
    Mz = sp.vstack([M, sp.csr_matrix((1, n))]).tocsr()
    kz = np.concatenate([k, [0.0]])
    perm = np.where(order >= 0, order, len(rows))
    return Expr(Mz[perm], kz[perm])
