"""Linear (symbolic) differential bounds for two MLPs of the same shape: a CROWN-style
backward pass that carries, at every value, coefficients on the difference d = h_T - h_S and
on the teacher's own value h_T (in the spirit of ReluDiff's symbolic intervals and
NeuroDiff, here as back-substitution).

Backwards through a Linear layer, ``W_T h_T - W_S h_S = W_S d + (W_T - W_S) h_T + ...``: the
coefficients on d pass through W_S, and W_T - W_S (zero for identical layers) hands a part to
the teacher's value, which goes on backwards through the teacher alone (CROWN's relaxation).
Backwards through a ReLU, ``relu(a) - relu(b)`` lies between ``min(0, d)`` and ``max(0, d)``
for d = a - b: chords of those over the d-bounds [dl, du] give linear bounds in d (exact
where both neurons are active, zero where both are inactive). At the input d = 0 and the
teacher's coefficients are concretised over the box. Used by ``diff.py``, which supplies
the interval d-bounds of every ReLU input and intersects the results."""

from __future__ import annotations

import torch

from ..net.graph import Linear, Network, Relu, Reshape
from .crown import widen
from .rules import Prop, relu_relaxation


def mlp_only(net: Network) -> bool:
    return all(isinstance(n.layer, Linear | Relu | Reshape) for n in net.nodes)


def diff_chords(dl, du, zt, zs):
    """Per neuron (lo_s, lo_b, up_s, up_b): lo_s d + lo_b <= relu(a) - relu(b) <= up_s d + up_b
    for d = a - b in [dl, du], a in zt, b in zs."""
    (tl, tu), (sl, su) = zt, zs
    on = (tl >= 0) & (sl >= 0)
    off = (tu <= 0) & (su <= 0)
    width = torch.where(du > dl, du - dl, torch.ones_like(du))
    cross = (dl < 0) & (du > 0)
    # upper: max(0, d) <= chord on [dl, du] (d itself where dl >= 0, 0 where du <= 0)
    up_s = torch.where(cross, du / width, (dl >= 0).to(du.dtype))
    up_b = torch.where(cross, -dl * du / width, torch.zeros_like(du))
    # lower: min(0, d) >= chord (0 where dl >= 0, d itself where du <= 0)
    lo_s = torch.where(cross, -dl / width, (du <= 0).to(du.dtype))
    lo_b = torch.where(cross, dl * du / width, torch.zeros_like(du))
    one, zero = torch.ones_like(du), torch.zeros_like(du)
    up_s, lo_s = torch.where(on, one, up_s), torch.where(on, one, lo_s)
    up_b, lo_b = torch.where(on, zero, up_b), torch.where(on, zero, lo_b)
    up_s, lo_s = torch.where(off, zero, up_s), torch.where(off, zero, lo_s)
    up_b, lo_b = torch.where(off, zero, up_b), torch.where(off, zero, lo_b)
    return lo_s, lo_b, up_s, up_b


def diff_lower(pt: Prop, student: Network, pair: dict, target: int, C, lo, hi, vt, vs, dbox,
               kappa_node: int | None, kappa: float):  # fmt: skip
    """Lower bounds (B, R) of C @ d(target), C (B, R, size); d = z_T - z_S at teacher value
    ``target`` (z_T - kappa z_S at and after node ``kappa_node``). ``vt``/``vs``: interval
    boxes of every value of each network (student's by its own ids), ``dbox[v]``: d-bounds of
    every ReLU input before ``target``."""
    teacher = pt.net
    cd = {target: C}  # coefficients on d
    ct: dict = {}  # coefficients on the teacher's value
    const = torch.zeros(C.shape[:2], dtype=C.dtype, device=C.device)
    mag = torch.zeros_like(const)

    def add(store, v, a):
        store[v] = a if v not in store else store[v] + a

    for i in range(target - 1, -1, -1):
        v = i + 1
        a_d, a_t = cd.pop(v, None), ct.pop(v, None)
        if a_d is None and a_t is None:
            continue
        node = teacher.nodes[i]
        w = node.inputs[0]
        if isinstance(node.layer, Reshape):
            for store, a in ((cd, a_d), (ct, a_t)):
                if a is not None:
                    add(store, w, a)
            continue
        if isinstance(node.layer, Linear):
            lt, ls = node.layer, student.nodes[pair[i]].layer
            k = kappa if i == kappa_node else 1.0
            wt, bt = pt.t(lt.weight), pt.t(lt.bias)
            ws, bs = pt.t(ls.weight) * k, pt.t(ls.bias) * k
            if a_d is not None:
                add(cd, w, a_d @ ws)
                add(ct, w, a_d @ (wt - ws))
                const = const + a_d @ (bt - bs)
                mag = mag + a_d.abs() @ (bt - bs).abs()
            if a_t is not None:
                add(ct, w, a_t @ wt)
                const = const + a_t @ bt
                mag = mag + a_t.abs() @ bt.abs()
            continue
        # ReLU: w is its input (pre-activation) value in the teacher; pair[i] the student's
        w_s = student.nodes[pair[i]].inputs[0]
        if a_d is not None:
            lo_s, lo_b, up_s, up_b = (t[:, None, :] for t in diff_chords(
                *dbox[w], vt[w][:2], vs[w_s][:2]))  # fmt: skip
            pos, neg = a_d.clamp(min=0), a_d.clamp(max=0)
            add(cd, w, pos * lo_s + neg * up_s)
            b = (pos * lo_b + neg * up_b).sum(-1)
            const, mag = const + b, mag + b.abs()
        if a_t is not None:
            up_s, up_b, lo_s = (t[:, None, :] for t in relu_relaxation(*vt[w][:2]))
            pos, neg = a_t.clamp(min=0), a_t.clamp(max=0)
            add(ct, w, pos * lo_s + neg * up_s)
            b = (neg * up_b).sum(-1)
            const, mag = const + b, mag + b.abs()
    a_x = ct.pop(0, None)  # d(0) = 0: the shared input
    if a_x is not None:
        c, r = ((hi + lo) / 2)[:, None, :], ((hi - lo) / 2)[:, None, :]
        const = const + (a_x * c).sum(-1) - (a_x.abs() * r).sum(-1)
        mag = mag + (a_x.abs() * (c.abs() + r)).sum(-1)
    lb, _ = widen(pt, const, const, mag, layers=len(teacher.nodes))
    return lb
