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
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..net.graph import Conv, Linear, Network, Relu, Scale
from .rules import CROWN_RULES, IBP_RULES, Prop

log = logging.getLogger("fkdverify")

METHODS = ("ibp", "crown", "alpha-crown")
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
ROUNDING = {torch.float64: (1e-11, 1e-8), torch.float32: (5e-6, 1e-7)}
_AFFINE = (Linear, Conv, Scale)


@dataclass(frozen=True)
class BoundOptions:
    """How bounds are computed. ``memory_mb`` caps the backward pass's coefficient tensors;
    larger batches are split into chunks (and the log says so)."""

    method: str = "crown"
    precision: str = "float64"
    device: str = "cpu"
    memory_mb: int = 2048
    alpha_iters: int = 20
    alpha_lr: float = 0.25

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"bound method must be one of {', '.join(METHODS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.memory_mb < 16:
            raise InputError("--bounds-memory must be at least 16 MB")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is visible; use --device cpu")

    def prop(self, net: Network) -> Prop:
        return Prop(net, PRECISIONS[self.precision], self.device)


def auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True, eq=False)
class BatchBounds:
    """Pre-activation bounds of B points: ``pre[v] = (l, u)``, tensors (B, size of v)."""

    pre: dict
    method: str

    def n_unstable(self) -> torch.Tensor:
        """Undecided ReLUs per point, (B,)."""
        counts = [((l < 0) & (u > 0)).sum(1) for l, u in self.pre.values()]
        return torch.stack(counts).sum(0) if counts else torch.zeros(0, dtype=torch.long)

    def take(self, idx) -> BatchBounds:
        """The bounds of the points ``idx`` (a list of batch positions)."""
        return BatchBounds({v: (l[idx], u[idx]) for v, (l, u) in self.pre.items()}, self.method)

    def point(self, b: int) -> Bounds:
        pre = {v: (l[b].double().cpu().numpy(), u[b].double().cpu().numpy())
               for v, (l, u) in self.pre.items()}  # fmt: skip
        return Bounds(pre, self.method)


@dataclass(frozen=True, eq=False)
class Bounds:
    """One point's pre-activation bounds: ``pre[v] = (l, u)`` (numpy float64, flat)."""

    pre: dict
    method: str

    def n_unstable(self, values=None) -> int:
        vs = self.pre if values is None else values
        return int(sum(((self.pre[v][0] < 0) & (self.pre[v][1] > 0)).sum() for v in vs))


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
        if a is None or not bool(a.any()):  # e.g. the other network's part of a product row
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


def propagate(net: Network, lo, hi, opts: BoundOptions, known: dict | None = None) -> BatchBounds:
    """Bounds of every ReLU input over the boxes [lo, hi] (tensors (B, n) or arrays).

    IBP everywhere; with crown (and alpha-crown), CROWN on each pre-activation that IBP leaves
    unstable, earlier layers' tightened bounds feeding later ones; alpha-crown then re-bounds
    the unstable neurons of each layer with optimised slopes (``alpha.py``). ``known[v] =
    (l, u)``: sound bounds of ReLU input v found otherwise (e.g. by MILP), taken as they are
    (intersected with IBP's) and used for every later layer."""
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
        if opts.method != "ibp" and v in deep:
            l, u = crown_unstable(p, v, lo, hi, pre, l, u, opts.memory_mb)
        if opts.method == "alpha-crown" and v in deep:
            from .alpha import alpha_layer

            with torch.enable_grad():
                l, u = alpha_layer(p, v, lo, hi, pre, l, u, opts)
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


def as_batch(a, p: Prop) -> torch.Tensor:
    t = torch.as_tensor(a if torch.is_tensor(a) else np.asarray(a), dtype=p.dtype, device=p.device)
    return t.reshape(t.shape[0] if t.dim() > 1 else 1, -1)


# ------------------------------------------------ one point, numpy float64 (used by the MILP)
_F64 = {m: BoundOptions(method=m) for m in METHODS}


def network_bounds(net: Network, lo, hi, method: str = "crown",
                   known: dict | None = None) -> Bounds:  # fmt: skip
    """One point's bounds of every ReLU input over the box [lo, hi] (flat arrays), float64;
    ``known``: bounds of some ReLU inputs found otherwise (see ``propagate``)."""
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}")
    return propagate(net, lo, hi, _F64[method], known).point(0)


def one_point(bounds: Bounds, method: str | None = None) -> BatchBounds:
    """A point's (numpy) bounds as a batch of one, for the batched functions."""
    pre = {v: (torch.from_numpy(l)[None], torch.from_numpy(u)[None])
           for v, (l, u) in bounds.pre.items()}  # fmt: skip
    return BatchBounds(pre, method or bounds.method)


def spec_bounds(net: Network, lo, hi, bounds: Bounds, C, target: int | None = None):
    """One point's sound (lower, upper) bounds (numpy, (S,)) of C @ value(target)."""
    method = "crown" if bounds.method != "ibp" else "ibp"
    lb, ub = spec_bounds_batch(net, lo, hi, one_point(bounds, method), C, _F64[method], target)
    return lb[0].numpy(), ub[0].numpy()
