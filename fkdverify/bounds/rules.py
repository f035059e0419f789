"""Per-layer rules of interval bound propagation (IBP, forward) and CROWN (backward), batched.

IBP (Gowal et al. 2018): boxes (lo, hi) of shape (B, size) for B points at once. CROWN (Zhang
et al. 2018): lower linear bounds A @ v + b of S spec rows per point, pushed backwards through
each layer; A has shape (B, S, size), b (B, S). alpha-CROWN (Xu et al. 2021) uses the CROWN
table with free lower ReLU slopes. Each rule also returns a magnitude (the sum of the absolute
values of what it added) from which the rounding allowance is sized (``propagate.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..net.graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale, chw


@dataclass
class Prop:
    """What the rules share in one propagation: the network, dtype, device, weight cache."""

    net: Network
    dtype: torch.dtype = torch.float64
    device: str = "cpu"
    _cache: dict = field(default_factory=dict)

    def t(self, a) -> torch.Tensor:
        """Array ``a`` (a layer weight) as a tensor, converted once per propagation."""
        key = id(a)
        hit = self._cache.get(key)
        if hit is None:
            hit = (a, torch.as_tensor(a, dtype=self.dtype, device=self.device))
            self._cache[key] = hit
        return hit[1]

    def abs(self, a) -> torch.Tensor:
        key = ("abs", id(a))
        hit = self._cache.get(key)
        if hit is None:
            hit = (a, self.t(a).abs())
            self._cache[key] = hit
        return hit[1]


# ------------------------------------------------------ IBP: (lo, hi, mag) -> (lo, hi, mag)
# mag bounds |terms| summed into each output: the rounding allowance is sized from it.
def _affine_out(c, r, mag):
    return c - r, c + r, mag


def ibp_linear(p: Prop, i: int, boxes):
    lay = p.net.nodes[i].layer
    lo, hi = boxes[0][:2]
    c, r = (hi + lo) / 2, (hi - lo) / 2
    w = p.t(lay.weight)
    wa = p.abs(lay.weight)
    cc = c @ w.T + p.t(lay.bias)
    rr = r @ wa.T
    return _affine_out(cc, rr, (c.abs() + r) @ wa.T + p.abs(lay.bias))


def ibp_conv(p: Prop, i: int, boxes):
    node = p.net.nodes[i]
    lay = node.layer
    lo, hi = boxes[0][:2]
    C, H, W = chw(p.net.shape_of(node.inputs[0]))
    c, r = (hi + lo) / 2, (hi - lo) / 2
    args = (lay.stride, lay.padding, lay.dilation, lay.groups)
    wa = p.abs(lay.weight)

    def conv(x, w, b=None):
        return F.conv2d(x.reshape(-1, C, H, W), w, b, *args).reshape(x.shape[0], -1)

    cc = conv(c, p.t(lay.weight), p.t(lay.bias))
    rr = conv(r, wa)
    mag = conv(c.abs() + r, wa, p.abs(lay.bias))
    return _affine_out(cc, rr, mag)


def ibp_scale(p: Prop, i: int, boxes):
    lay = p.net.nodes[i].layer
    lo, hi = boxes[0][:2]
    c, r = (hi + lo) / 2, (hi - lo) / 2
    m = p.t(lay.mul)
    return _affine_out(c * m + p.t(lay.add), r * m.abs(), (c.abs() + r) * m.abs() + p.abs(lay.add))


def ibp_relu(p: Prop, i: int, boxes):
    lo, hi, mag = boxes[0]
    return lo.clamp(min=0), hi.clamp(min=0), mag


def ibp_reshape(p: Prop, i: int, boxes):
    return boxes[0]


def _permute(p: Prop, i: int, x: torch.Tensor) -> torch.Tensor:
    node = p.net.nodes[i]
    shape = p.net.shape_of(node.inputs[0])
    perm = (0, *(q + 1 for q in node.layer.perm))
    return x.reshape(-1, *shape).permute(*perm).reshape(x.shape[0], -1)


def ibp_permute(p: Prop, i: int, boxes):
    return tuple(_permute(p, i, x) for x in boxes[0])


def ibp_add(p: Prop, i: int, boxes):
    return tuple(a + b for a, b in zip(boxes[0], boxes[1], strict=True))


def ibp_concat(p: Prop, i: int, boxes):
    return tuple(torch.cat(parts, 1) for parts in zip(*boxes, strict=True))


IBP_RULES = {
    Linear: ibp_linear,
    Conv: ibp_conv,
    Scale: ibp_scale,
    Relu: ibp_relu,
    Reshape: ibp_reshape,
    Permute: ibp_permute,
    Add: ibp_add,
    Concat: ibp_concat,
}


# --------------------------------- CROWN: A (B, S, n_out) -> ([A_in], bias (B, S), mag (B, S))
def relu_relaxation(l: torch.Tensor, u: torch.Tensor):
    """CROWN's ReLU relaxation on [l, u]: upper line (slope, intercept), adaptive lower slope."""
    unstable = (l < 0) & (u > 0)
    active = (l >= 0).to(u.dtype)
    denom = torch.where(unstable, u - l, torch.ones_like(u))
    up_slope = torch.where(unstable, u / denom, active)
    up_icpt = torch.where(unstable, -l * u / denom, torch.zeros_like(u))
    lo_slope = torch.where(unstable, (u > -l).to(u.dtype), active)
    return up_slope, up_icpt, lo_slope


def _zero(A):
    return torch.zeros(A.shape[:2], dtype=A.dtype, device=A.device)


def crown_linear(p: Prop, i: int, A, pre=None, alpha=None):
    lay = p.net.nodes[i].layer
    return [A @ p.t(lay.weight)], A @ p.t(lay.bias), A.abs() @ p.abs(lay.bias)


def crown_conv(p: Prop, i: int, A, pre=None, alpha=None):
    node = p.net.nodes[i]
    lay = node.layer
    C, H, W = chw(p.net.shape_of(node.inputs[0]))
    co, ho, wo = chw(node.shape)
    w = p.t(lay.weight)
    kh, kw = w.shape[2:]
    outpad = tuple(
        (H, W)[d]
        - ((ho, wo)[d] - 1) * lay.stride[d]
        + 2 * lay.padding[d]
        - lay.dilation[d] * ((kh, kw)[d] - 1)
        - 1
        for d in range(2)
    )
    B, S = A.shape[:2]
    a = A.reshape(B * S, co, ho, wo)
    a_in = F.conv_transpose2d(a, w, None, lay.stride, lay.padding, outpad, lay.groups, lay.dilation)
    per_channel = a.sum((2, 3))
    bias = (per_channel @ p.t(lay.bias)).reshape(B, S)
    mag = (a.abs().sum((2, 3)) @ p.abs(lay.bias)).reshape(B, S)
    return [a_in.reshape(B, S, -1)], bias, mag


def crown_scale(p: Prop, i: int, A, pre=None, alpha=None):
    lay = p.net.nodes[i].layer
    return [A * p.t(lay.mul)], A @ p.t(lay.add), A.abs() @ p.abs(lay.add)


@dataclass(frozen=True, eq=False)
class Relaxation:
    """Linear bounds of a ReLU given outright: lo_s * z <= relu(z) <= up_s * z + up_b, each
    broadcastable to (B, S, n) (branch and bound builds them per domain and spec row)."""

    up_s: torch.Tensor
    up_b: torch.Tensor
    lo_s: torch.Tensor


def crown_relu(p: Prop, i: int, A, pre=None, alpha=None):
    """``pre`` = (l, u) of the ReLU's input, (B, n), or a ``Relaxation``; ``alpha`` (B, S, n)
    in [0, 1], if given with (l, u), replaces the lower slopes of unstable neurons
    (alpha-CROWN, Xu et al. 2021: any slope in [0, 1] is a valid lower line)."""
    if isinstance(pre, Relaxation):
        up_s, up_b, lo_s = pre.up_s, pre.up_b, pre.lo_s
    else:
        l, u = pre
        up_s, up_b, lo_s = (t[:, None, :] for t in relu_relaxation(l, u))
        if alpha is not None:
            lo_s = torch.where(((l < 0) & (u > 0))[:, None, :], alpha, lo_s)
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    bias = (neg * up_b).sum(-1)
    return [pos * lo_s + neg * up_s], bias, bias.abs()


def crown_reshape(p: Prop, i: int, A, pre=None, alpha=None):
    return [A], _zero(A), _zero(A)


def crown_permute(p: Prop, i: int, A, pre=None, alpha=None):
    node = p.net.nodes[i]
    inv = [0] * len(node.layer.perm)
    for k, q in enumerate(node.layer.perm):
        inv[q] = k
    B, S = A.shape[:2]
    a = A.reshape(B * S, *node.shape).permute(0, *(q + 1 for q in inv))
    return [a.reshape(B, S, -1)], _zero(A), _zero(A)


def crown_add(p: Prop, i: int, A, pre=None, alpha=None):
    return [A, A], _zero(A), _zero(A)


def crown_concat(p: Prop, i: int, A, pre=None, alpha=None):
    sizes = [p.net.size_of(v) for v in p.net.nodes[i].inputs]
    return list(torch.split(A, sizes, dim=2)), _zero(A), _zero(A)


CROWN_RULES = {
    Linear: crown_linear,
    Conv: crown_conv,
    Scale: crown_scale,
    Relu: crown_relu,
    Reshape: crown_reshape,
    Permute: crown_permute,
    Add: crown_add,
    Concat: crown_concat,
}
# alpha-CROWN is CROWN with optimised lower ReLU slopes: the same table (crown_relu takes alpha)
ALPHA_CROWN_RULES = dict(CROWN_RULES)
RULES = {"ibp": IBP_RULES, "crown": CROWN_RULES, "alpha-crown": ALPHA_CROWN_RULES}
