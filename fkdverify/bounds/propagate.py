"""Bounds on every ReLU pre-activation and on linear specs over an input box.

All arithmetic is float64; every bound is then widened outward by ``margin`` (absolute plus
relative) so that rounding cannot make it too tight (DESIGN.md section 2, rule 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..net.graph import Network, Relu
from .rules import crown_node, ibp_node

METHODS = ("ibp", "crown", "alpha-crown")
_ABS, _REL = 1e-7, 1e-9


def _outward(lb: torch.Tensor, ub: torch.Tensor):
    return lb - _ABS - _REL * lb.abs(), ub + _ABS + _REL * ub.abs()


@dataclass(frozen=True, eq=False)
class Bounds:
    """Pre-activation bounds: ``pre[v] = (l, u)`` (numpy float64, flat) for each ReLU input v."""

    pre: dict
    method: str

    def n_unstable(self, values=None) -> int:
        vs = self.pre if values is None else values
        return int(sum(((self.pre[v][0] < 0) & (self.pre[v][1] > 0)).sum() for v in vs))


def _box(lo, hi):
    f = lambda a: torch.as_tensor(np.asarray(a, np.float64).reshape(1, -1))  # noqa: E731
    return f(lo), f(hi)


def crown_lower(
    net: Network, target: int, C: torch.Tensor, lo, hi, pre: dict, alphas: dict | None = None
) -> torch.Tensor:
    """Lower bounds (S,) of C @ value(target) over the box [lo, hi] (tensors (1, n)).

    ``alphas[v]`` optionally sets the lower ReLU slopes at ReLU input v (alpha-CROWN)."""
    A: dict[int, torch.Tensor] = {target: C}
    bias = torch.zeros(C.shape[0], dtype=C.dtype)
    for i in range(target - 1, -1, -1):
        a = A.pop(i + 1, None)
        if a is None:
            continue
        node = net.nodes[i]
        relu = isinstance(node.layer, Relu)
        p = pre.get(node.inputs[0]) if relu else None
        al = alphas.get(node.inputs[0]) if relu and alphas else None
        a_ins, b = crown_node(net, i, a, p, al)
        bias = bias + b
        for v, ai in zip(node.inputs, a_ins, strict=True):
            A[v] = A[v] + ai if v in A else ai
    a0 = A.get(0)
    if a0 is None:
        return bias
    centre, rad = (hi + lo) / 2, (hi - lo) / 2
    return a0 @ centre[0] - a0.abs() @ rad[0] + bias


def _crown_box(net, target, lo, hi, pre, rows=None):
    n = net.size_of(target)
    eye = torch.eye(n, dtype=torch.float64)
    if rows is not None:
        eye = eye[rows]
    lb = crown_lower(net, target, torch.cat([eye, -eye]), lo, hi, pre)
    k = eye.shape[0]
    return _outward(lb[:k], -lb[k:])


def network_bounds(net: Network, lo, hi, method: str = "crown") -> Bounds:
    """Bounds of every ReLU input over the box [lo, hi] (flat input arrays).

    IBP everywhere; with ``crown``, CROWN on each pre-activation (only the neurons IBP leaves
    unstable), intersected with IBP, earlier layers' bounds feeding later ones."""
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}")
    if method == "alpha-crown":
        from .alpha import alpha_network_bounds

        return alpha_network_bounds(net, lo, hi)
    tlo, thi = _box(lo, hi)
    relu_in = set(net.relu_inputs())
    vals: list[tuple] = [(tlo, thi)]
    pre: dict = {}
    with torch.no_grad():
        for i, node in enumerate(net.nodes):
            box = ibp_node(net, i, [vals[v] for v in node.inputs])
            vid = i + 1
            if vid in relu_in:
                l, u = _outward(box[0][0], box[1][0])
                if method == "crown":
                    rows = torch.nonzero((l < 0) & (u > 0)).flatten()
                    if len(rows):
                        cl, cu = _crown_box(net, vid, tlo, thi, pre, rows)
                        l = l.clone()
                        u = u.clone()
                        l[rows] = torch.maximum(l[rows], cl)
                        u[rows] = torch.minimum(u[rows], cu)
                pre[vid] = (l, u)
                box = (l[None], u[None])
            vals.append(box)
    return Bounds({v: (l.numpy(), u.numpy()) for v, (l, u) in pre.items()}, method)


def spec_bounds(net: Network, lo, hi, bounds: Bounds, C, target: int | None = None):
    """Sound (lower, upper) bounds (numpy, (S,)) of C @ value(target) over the box.

    CROWN backward through the product when ``bounds.method`` is crown (one pass for all rows:
    never bound networks apart and subtract), else IBP; always intersected with IBP."""
    target = net.output if target is None else target
    tlo, thi = _box(lo, hi)
    Ct = torch.as_tensor(np.asarray(C, np.float64))
    pre = {v: (torch.from_numpy(l), torch.from_numpy(u)) for v, (l, u) in bounds.pre.items()}
    with torch.no_grad():
        vals: list[tuple] = [(tlo, thi)]
        for i, node in enumerate(net.nodes[:target]):
            box = ibp_node(net, i, [vals[v] for v in node.inputs])
            if i + 1 in pre:
                box = (pre[i + 1][0][None], pre[i + 1][1][None])
            vals.append(box)
        lo_t, hi_t = vals[target]
        c, r = (hi_t + lo_t) / 2, (hi_t - lo_t) / 2
        ilb, iub = Ct @ c[0] - Ct.abs() @ r[0], Ct @ c[0] + Ct.abs() @ r[0]
        if bounds.method != "ibp":  # crown, crown+lp, alpha-crown: bound the spec by CROWN
            lb = crown_lower(net, target, torch.cat([Ct, -Ct]), tlo, thi, pre)
            k = Ct.shape[0]
            ilb, iub = torch.maximum(ilb, lb[:k]), torch.minimum(iub, -lb[k:])
        lb, ub = _outward(ilb, iub)
    return lb.numpy(), ub.numpy()
