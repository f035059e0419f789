"""Bounds on every ReLU pre-activation and on linear specs over input boxes, for B points at once.

The engine works in torch on any device, in float64 or float32. Rounding can only make a bound
too tight through the few ulps lost in each sum, so every affine layer's IBP box and every
CROWN result is widened outward by ``rel * mag + abs``, where ``mag`` is the sum of the
absolute values of the terms that were added (tracked alongside, see ``rules.py``) and
(rel, abs) depend on the dtype (``ROUNDING``). For float32 the allowance is 5e-6 of the
magnitude per affine layer plus 1e-7: on the oval21 CIFAR pair the largest float32-vs-float64
difference measured was 1.7e-7 of the magnitude over an 11-layer CROWN pass and 8.8e-7 over
the IBP chain, so the allowance has 10-300x headroom. It is an engineering allowance, not a
machine-checked proof; choose float64 (``--precision float64``, the default) where that
matters more than speed (DESIGN.md section 2, rule 1)."""

from __future__ import annotations

import logging

import torch

from ..net.graph import Conv, Linear, Relu, Scale
from .rules import CROWN_RULES, IBP_RULES, Prop
from .types import ROUNDING

log = logging.getLogger("fkdverify")

_AFFINE = (Linear, Conv, Scale)


# ------------------------------------------------------------------------------- IBP
def widen(p: Prop, lo, hi, mag, layers: int = 1):
    rel, ab = ROUNDING[p.dtype]
    slack = layers * rel * mag + ab
    return lo - slack, hi + slack


def ibp_values(p: Prop, lo, hi, pre: dict | None = None, upto: int | None = None,
               tighten=None) -> list:  # fmt: skip
    """Boxes (lo, hi, mag) of values 0..upto (default: all); ``pre`` replaces the boxes of
    ReLU inputs with tighter bounds already known; ``tighten(v, l, u) -> (l, u)``, if given,
    is asked for the bounds of every ReLU input v as the pass reaches it."""
    net, pre = p.net, pre or {}
    upto = len(net.nodes) if upto is None else upto
    relu_in = set(net.relu_inputs()) if tighten else set()
    vals = [(lo, hi, torch.maximum(lo.abs(), hi.abs()))]
    for i, node in enumerate(net.nodes[:upto]):
        box = IBP_RULES[type(node.layer)](p, i, [vals[v] for v in node.inputs])
        if isinstance(node.layer, _AFFINE):
            box = (*widen(p, *box), box[2])
        if i + 1 in pre:
            l, u = pre[i + 1]
            box = (torch.maximum(box[0], l), torch.minimum(box[1], u), box[2])
        if i + 1 in relu_in:
            box = (*tighten(i + 1, box[0], box[1]), box[2])
        vals.append(box)
    return vals


# ----------------------------------------------------------------------------- CROWN
def crown_lower(p: Prop, target: int, A, lo, hi, pre: dict, alphas: dict | None = None,
                input_coef: list | None = None, extra: dict | None = None,
                relu_out: dict | None = None):  # fmt: skip
    """Lower bounds (B, S) of A @ value(target) over the boxes [lo, hi] (B, n), widened for
    rounding. A: (B, S, size of target). ``alphas[v]`` (B, S, n) optionally sets the lower
    ReLU slopes at ReLU input v (alpha-CROWN). ``extra[v]`` (B, S, n), if given, is added to
    the coefficients of ReLU input v once the ReLU is passed (beta-CROWN's Lagrangian terms
    of split constraints, ``bab.py``). ``input_coef``, when given, receives the coefficients
    (B, S, n) of the linear lower bound over the input (None if it has none); ``relu_out``
    receives, per ReLU input v, the coefficients (B, S, n) on that ReLU's output."""
    net = p.net
    coef: dict[int, torch.Tensor] = {target: A}
    bias = torch.zeros(A.shape[:2], dtype=A.dtype, device=A.device)
    mag = torch.zeros_like(bias)
    depth = 0
    for i in range(target - 1, -1, -1):
        a = coef.pop(i + 1, None)
        if a is None:
            continue
        node = net.nodes[i]
        v_in = node.inputs[0]
        relu = isinstance(node.layer, Relu)
        al = alphas.get(v_in) if relu and alphas else None
        a_ins, b, m = CROWN_RULES[type(node.layer)](p, i, a, pre.get(v_in) if relu else None, al)
        bias, mag = bias + b, mag + m
        depth += isinstance(node.layer, _AFFINE)
        if relu and relu_out is not None:
            relu_out[v_in] = a
        if relu and extra and v_in in extra:
            a_ins = [a_ins[0] + extra[v_in]]
        for v, ai in zip(node.inputs, a_ins, strict=True):
            if len(a_ins) > 1 and not bool(ai.any()):  # e.g. the other network's part of a
                continue  # product row (dropping an all-zero coefficient changes nothing)
            coef[v] = coef[v] + ai if v in coef else ai
    a0 = coef.get(0)
    if input_coef is not None:
        input_coef.append(a0)
    if a0 is not None:
        centre, rad = (hi + lo) / 2, (hi - lo) / 2
        a0abs = a0.abs()
        bias = bias + torch.einsum("bsn,bn->bs", a0, centre)
        bias = bias - torch.einsum("bsn,bn->bs", a0abs, rad)
        mag = mag + torch.einsum("bsn,bn->bs", a0abs, centre.abs() + rad)
    return widen(p, bias, bias, mag, max(depth, 1))[0]


def _rows(C, b0, b1, s0, s1):
    if callable(C):
        return C(b0, b1, s0, s1)
    if C.dim() == 2:
        return C[s0:s1].expand(b1 - b0, -1, -1)
    return C[b0:b1, s0:s1]


def chunks(p: Prop, target: int, n_points: int, n_rows: int, memory_mb: int, factor: int = 4):
    """(point slice, row slice) pairs whose coefficient tensors fit the memory budget."""
    width = max(p.net.size_of(v) for v in range(target + 1))
    item = torch.finfo(p.dtype).bits // 8
    units = max(1, int(memory_mb * 2**20 // (width * item * factor)))
    if n_points * n_rows <= units:
        return [(slice(0, n_points), slice(0, n_rows))]
    bp = max(1, units // n_rows)
    bs = n_rows if bp > 1 else min(n_rows, units)
    out = [(slice(b, min(b + bp, n_points)), slice(s, min(s + bs, n_rows)))
           for b in range(0, n_points, bp) for s in range(0, n_rows, bs)]  # fmt: skip
    _note_once(
        f"bounds: backward pass split into {len(out)} chunks ({bp} point(s) x {bs} rows each) "
        f"to stay within {memory_mb} MB; raise --bounds-memory to use fewer"
    )
    return out


_NOTED: set = set()


def _note_once(msg: str) -> None:
    if msg not in _NOTED:
        _NOTED.add(msg)
        log.info(msg)


def crown_bounds(p: Prop, target: int, C, n_rows: int, lo, hi, pre, memory_mb: int,
                 upper_only: bool = False):  # fmt: skip
    """(lower, upper) (B, S) of C @ value(target): one backward pass over [C; -C] (or -C only,
    lower = -inf), chunked. C: (S, n), (B, S, n), or a function (b0, b1, s0, s1) -> rows
    (b1-b0, s1-s0, n)."""
    B = lo.shape[0]
    lb = torch.full((B, n_rows), -torch.inf, dtype=p.dtype, device=p.device)
    ub = torch.empty_like(lb)
    for bsl, ssl in chunks(p, target, B, n_rows, memory_mb, factor=4 if upper_only else 8):
        rows = _rows(C, bsl.start, bsl.stop, ssl.start, ssl.stop).to(p.dtype)
        sub = {v: (l[bsl], u[bsl]) for v, (l, u) in pre.items() if v < target}
        both = -rows if upper_only else torch.cat([rows, -rows], 1)
        low = crown_lower(p, target, both, lo[bsl], hi[bsl], sub)
        k = rows.shape[1]
        if upper_only:
            ub[bsl, ssl] = -low
        else:
            lb[bsl, ssl], ub[bsl, ssl] = low[:, :k], -low[:, k:]
    return lb, ub


def unstable_rows(l, u):
    """Per point, the indices of unstable neurons padded to the largest count: (idx, valid),
    both (B, smax)."""
    unstable = (l < 0) & (u > 0)
    counts = unstable.sum(1)
    smax = int(counts.max()) if len(counts) else 0
    order = torch.argsort(unstable.to(torch.int8), dim=1, descending=True, stable=True)
    idx = order[:, :smax]
    valid = torch.arange(smax, device=l.device)[None, :] < counts[:, None]
    return idx, valid


def one_hot_rows(idx, valid, n: int, dtype):
    def make(b0, b1, s0, s1):
        i, v = idx[b0:b1, s0:s1], valid[b0:b1, s0:s1]
        out = torch.zeros(*i.shape, n, dtype=dtype, device=i.device)
        return out.scatter_(2, i[..., None], v[..., None].to(dtype))

    return make


def tighten_rows(l, u, idx, valid, lb, ub):
    """Intersect (l, u) with new bounds (lb, ub) of the neurons idx (only where valid)."""
    old_l, old_u = l.gather(1, idx), u.gather(1, idx)
    new_l = torch.where(valid, torch.maximum(old_l, lb), old_l)
    new_u = torch.where(valid, torch.minimum(old_u, ub), old_u)
    return l.clone().scatter_(1, idx, new_l), u.clone().scatter_(1, idx, new_u)


def crown_unstable(p: Prop, v: int, lo, hi, pre, l, u, memory_mb: int, group: int = 8):
    """CROWN bounds of the unstable neurons of value v, intersected with (l, u). Points go in
    groups of similar unstable counts, each padded only to its own largest count."""
    counts = ((l < 0) & (u > 0)).sum(1)
    order = torch.argsort(counts)
    l, u = l.clone(), u.clone()
    for g in range(0, len(order), group):
        sel = order[g : g + group]
        idx, valid = unstable_rows(l[sel], u[sel])
        if not idx.shape[1]:
            continue
        rows = one_hot_rows(idx, valid, p.net.size_of(v), p.dtype)
        sub = {w: (a[sel], b[sel]) for w, (a, b) in pre.items()}
        cl, cu = crown_bounds(p, v, rows, idx.shape[1], lo[sel], hi[sel], sub, memory_mb)
        l[sel], u[sel] = tighten_rows(l[sel], u[sel], idx, valid, cl, cu)
    return l, u
