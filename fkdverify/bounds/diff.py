"""Differential bounds: boxes on ``z_T - kappa * z_S`` layer by layer for two networks of the
same shape (ReluDiff, Paulsen et al. ICSE 2020, in its interval form), batched.

Both networks read the same input, so the difference starts at exactly 0. Through an affine
layer ``W_T h_T - W_S h_S = W_S (h_T - h_S) + (W_T - W_S) h_T`` (or with the roles swapped;
both are sound and the boxes are intersected), so identical layers pass the difference on
without adding the width of the relaxation, which is what separately bounded copies cannot do.
Through a ReLU, ``relu(a) - relu(b)`` lies between ``min(0, a - b)`` and ``max(0, a - b)``
(relu is monotone and 1-Lipschitz), exactly ``a - b`` where both are active and 0 where both
are inactive. ``kappa`` scales the student's last affine layer: the sign of a logit difference
does not change with a positive scale, so ``z_T - kappa z_S`` is as good a witness of agreement
for every kappa > 0 (``kappa`` near the ratio of the logit scales keeps it small)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..net.graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale, chw
from .crown import ibp_values, widen
from .diff_crown import diff_lower, mlp_only
from .rules import Prop, _permute
from .types import BatchBounds, as_batch


def _root(net: Network, v: int) -> int:
    """The value that v is a free reshape of."""
    while v > 0 and isinstance(net.nodes[v - 1].layer, Reshape):
        v = net.nodes[v - 1].inputs[0]
    return v


def _core(net: Network) -> list[int]:
    """Indices of the nodes that are not free reshapes, in order."""
    return [i for i, n in enumerate(net.nodes) if not isinstance(n.layer, Reshape)]


def _signature(net: Network, i: int, where: dict) -> tuple:
    node, lay = net.nodes[i], net.nodes[i].layer
    ins = tuple(where.get(_root(net, v), -1) for v in node.inputs)
    sig = (type(lay).__name__, ins, net.size_of(i + 1))
    if isinstance(lay, Linear | Conv):
        sig += (lay.weight.shape,)
    if isinstance(lay, Conv):
        sig += (lay.stride, lay.padding, lay.dilation, lay.groups, node.shape,
                net.shape_of(node.inputs[0]))  # fmt: skip
    if isinstance(lay, Permute):
        sig += (lay.perm, node.shape)
    return sig


def pairing(a: Network, b: Network) -> dict[int, int] | None:
    """Node index of ``a`` -> node index of ``b`` for every node that is not a free reshape,
    when the two networks have the same layers, wiring and sizes (weights aside, reshapes
    ignored); else None."""
    ca, cb = _core(a), _core(b)
    if a.input_size != b.input_size or len(ca) != len(cb):
        return None
    wa = {i + 1: k for k, i in enumerate(ca)}
    wb = {i + 1: k for k, i in enumerate(cb)}
    for i, j in zip(ca, cb, strict=True):
        if _signature(a, i, wa) != _signature(b, j, wb):
            return None
    if wa.get(_root(a, a.output)) != wb.get(_root(b, b.output)):
        return None
    return dict(zip(ca, cb, strict=True))


def same_shape(a: Network, b: Network) -> bool:
    """True when the two networks have the same layers, wiring and shapes (``pairing``)."""
    return pairing(a, b) is not None


def last_affine(net: Network) -> int:
    """Index of the node whose output, through reshapes only, is the network's output."""
    i = net.output - 1
    while isinstance(net.nodes[i].layer, Reshape):
        i = net.nodes[i].inputs[0] - 1
    return i


def logit_scale(teacher: Network, student: Network) -> float:
    """The kappa > 0 with ``[W_T b_T] ~ kappa [W_S b_S]`` in least squares on the last affine
    layer (1.0 when it is not a Linear or Conv layer)."""
    lt = teacher.nodes[last_affine(teacher)].layer
    ls = student.nodes[last_affine(student)].layer
    if not isinstance(lt, Linear | Conv):
        return 1.0
    t = np.concatenate([lt.weight.ravel(), lt.bias.ravel()])
    s = np.concatenate([ls.weight.ravel(), ls.bias.ravel()])
    k = float(t @ s) / max(float(s @ s), 1e-300)
    return k if k > 0 else 1.0


def kappas(teacher: Network, student: Network) -> tuple[float, ...]:
    """The scales the differential bounds are taken at: () for networks of different shapes,
    (1,) and the fitted logit scale (``logit_scale``) when it is not 1."""
    if pairing(teacher, student) is None:
        return ()
    k = logit_scale(teacher, student)
    fits = k != 1.0 and isinstance(teacher.nodes[last_affine(teacher)].layer, Linear | Conv | Scale)
    return (1.0, k) if fits and abs(k - 1.0) > 1e-6 else (1.0,)


def _box_mul(lo, hi, op, op_abs):
    """Box of op(x) for x in [lo, hi] (op linear, op_abs its absolute-value version)."""
    c, r = (hi + lo) / 2, (hi - lo) / 2
    cc, rr = op(c), op_abs(r)
    return cc - rr, cc + rr, op_abs(c.abs() + r)


def _affine_diff(p: Prop, i: int, lay_t, lay_s, d, ht, hs, kappa, head):
    """Box of (teacher's layer i) - kappa (student's) given the difference d of its input and
    the boxes ht, hs of the teacher's and student's inputs; ``head`` (R, n_out) is applied
    after a Linear layer (folded into its weights)."""
    node = p.net.nodes[i]
    if isinstance(lay_t, Linear):
        wt, ws = p.t(lay_t.weight), p.t(lay_s.weight) * kappa
        bt, bs = p.t(lay_t.bias), p.t(lay_s.bias) * kappa
        if head is not None:
            wt, ws, bt, bs = head @ wt, head @ ws, head @ bt, head @ bs

        def mat(w):
            return (lambda x: x @ w.T), (lambda x: x @ w.abs().T)

        m_ws, m_wt, m_dw = mat(ws), mat(wt), mat(wt - ws)
    elif isinstance(lay_t, Conv):
        C, H, W = chw(p.net.shape_of(node.inputs[0]))
        args = (lay_t.stride, lay_t.padding, lay_t.dilation, lay_t.groups)
        wt, ws = p.t(lay_t.weight), p.t(lay_s.weight) * kappa
        bt = p.t(lay_t.bias).repeat_interleave(_hw(node))
        bs = (p.t(lay_s.bias) * kappa).repeat_interleave(_hw(node))

        def mat(w):
            def f(x, w=w):
                return F.conv2d(x.reshape(-1, C, H, W), w, None, *args).reshape(x.shape[0], -1)

            return f, (lambda x, w=w: f(x, w.abs()))

        m_ws, m_wt, m_dw = mat(ws), mat(wt), mat(wt - ws)
    else:  # Scale
        mt, ms = p.t(lay_t.mul), p.t(lay_s.mul) * kappa
        bt, bs = p.t(lay_t.add), p.t(lay_s.add) * kappa

        def mat(m):
            return (lambda x, m=m: x * m), (lambda x, m=m: x * m.abs())

        m_ws, m_wt, m_dw = mat(ms), mat(mt), mat(mt - ms)
    db = bt - bs
    # W_T h_T - W_S h_S = W_S d + (W_T - W_S) h_T = W_T d + (W_T - W_S) h_S
    a1 = _box_mul(*d, *m_ws)
    a2 = _box_mul(*ht, *m_dw)
    b1 = _box_mul(*d, *m_wt)
    b2 = _box_mul(*hs, *m_dw)
    lo1, hi1 = widen(p, a1[0] + a2[0] + db, a1[1] + a2[1] + db, a1[2] + a2[2] + db.abs())
    lo2, hi2 = widen(p, b1[0] + b2[0] + db, b1[1] + b2[1] + db, b1[2] + b2[2] + db.abs())
    return torch.maximum(lo1, lo2), torch.minimum(hi1, hi2)


def _hw(node) -> int:
    return int(np.prod(node.shape[-2:]))


def _relu_diff(d, zt, zs):
    """Box of relu(a) - relu(b) for a in zt, b in zs, a - b in d."""
    (dl, du), (tl, tu), (sl, su) = d, zt, zs
    lo, hi = torch.minimum(dl, torch.zeros_like(dl)), torch.maximum(du, torch.zeros_like(du))
    lo = torch.maximum(lo, tl.clamp(min=0) - su.clamp(min=0))
    hi = torch.minimum(hi, tu.clamp(min=0) - sl.clamp(min=0))
    both_on = (tl >= 0) & (sl >= 0)
    lo, hi = (
        torch.where(both_on, torch.maximum(lo, dl), lo),
        torch.where(both_on, hi.minimum(du), hi),
    )
    both_off = (tu <= 0) & (su <= 0)
    zero = torch.zeros_like(lo)
    return torch.where(both_off, zero, lo), torch.where(both_off, zero, hi)


def diff_bounds(teacher: Network, student: Network, lo, hi, pre_t: BatchBounds,
                pre_s: BatchBounds, head: np.ndarray | None = None, kappa: float = 1.0,
                dtype=torch.float64, device: str = "cpu"):  # fmt: skip
    """Sound (lower, upper) (B, R) of ``head @ (z_T - kappa z_S)`` over the boxes [lo, hi]
    (B, n), the two networks of the same shape (``same_shape``); ``pre_t``/``pre_s``: each
    network's pre-activation bounds on the same boxes; ``head`` (R, K) or None (R = K)."""
    pair = pairing(teacher, student)
    if pair is None:
        raise ValueError("differential bounds need two networks of the same shape")
    pt, ps = Prop(teacher, dtype, device), Prop(student, dtype, device)
    lo, hi = as_batch(lo, pt), as_batch(hi, pt)
    last = last_affine(teacher)
    if kappa != 1.0 and not isinstance(teacher.nodes[last].layer, Linear | Conv | Scale):
        raise ValueError("kappa != 1 needs an affine last layer")
    H = None if head is None else torch.as_tensor(head, dtype=dtype, device=device)
    fold = H is not None and isinstance(teacher.nodes[last].layer, Linear)
    symbolic = mlp_only(teacher) and mlp_only(student)
    relu_in = set(teacher.relu_inputs()) & teacher.deep_values()
    with torch.no_grad():
        vt = ibp_values(pt, lo, hi, pre_t.pre)
        vs = ibp_values(ps, lo, hi, pre_s.pre)
        zero = torch.zeros_like(lo)
        d = [(zero, zero)]
        for i, nt in enumerate(teacher.nodes):
            lt = nt.layer
            ins = [d[v] for v in nt.inputs]
            if isinstance(lt, Reshape):
                d.append(ins[0])
                continue
            ns = student.nodes[pair[i]]
            v, w = nt.inputs[0], ns.inputs[0]
            if isinstance(lt, Linear | Conv | Scale):
                k = kappa if i == last else 1.0
                box = _affine_diff(pt, i, lt, ns.layer, ins[0], vt[v][:2], vs[w][:2], k,
                                   H if fold and i == last else None)  # fmt: skip
            elif isinstance(lt, Relu):
                box = _relu_diff(ins[0], vt[v][:2], vs[w][:2])
            elif isinstance(lt, Permute):
                box = tuple(_permute(pt, i, x) for x in ins[0])
            elif isinstance(lt, Add):
                box = (ins[0][0] + ins[1][0], ins[0][1] + ins[1][1])
            elif isinstance(lt, Concat):
                box = (torch.cat([b[0] for b in ins], 1), torch.cat([b[1] for b in ins], 1))
            else:  # pragma: no cover - same_shape admits only the kinds above
                raise TypeError(f"no differential rule for {type(lt).__name__}")
            if symbolic and i + 1 in relu_in:  # tighten by back-substitution (diff_crown)
                box = _symbolic(pt, student, pair, i + 1, None, 1.0, lo, hi, vt, vs, d, box)
            d.append(box)
        dl, du = d[teacher.output]
        if H is not None and not fold:  # the head over the box of the logit difference
            c, r = (du + dl) / 2, (du - dl) / 2
            mid, rad = c @ H.T, r @ H.abs().T
            dl, du = widen(pt, mid - rad, mid + rad, (c.abs() + r) @ H.abs().T)
        if symbolic:
            rows = torch.eye(teacher.n_classes, dtype=dtype, device=device) if H is None else H
            dl, du = _symbolic(pt, student, pair, teacher.output, last, kappa, lo, hi, vt, vs, d,
                               (dl, du), rows)  # fmt: skip
    return dl, du


def _symbolic(pt, student, pair, target, kappa_node, kappa, lo, hi, vt, vs, d, box, rows=None):
    """``box`` (bounds of rows @ d(target), rows default the identity) intersected with the
    back-substituted ones."""
    B = lo.shape[0]
    if rows is None:
        rows = torch.eye(box[0].shape[1], dtype=lo.dtype, device=lo.device)
    C = torch.cat([rows, -rows])[None].expand(B, -1, -1)
    lb = diff_lower(pt, student, pair, target, C, lo, hi, vt, vs, d, kappa_node, kappa)
    R = rows.shape[0]
    return torch.maximum(box[0], lb[:, :R]), torch.minimum(box[1], -lb[:, R:])
