"""Per-layer rules of interval bound propagation (IBP, forward) and CROWN (backward).

IBP (Gowal et al. 2018): boxes as centre/radius. CROWN (Zhang et al. 2018): linear lower bounds
A @ v + b of a spec, pushed backwards through each layer. Rules take torch float64 tensors; a
CROWN coefficient matrix A has shape (S, size_of_value) for S spec rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..net.graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale, chw


def _t(a, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------- IBP: (centre, radius) boxes
def ibp_linear(lay: Linear, c, r):
    w = _t(lay.weight, c)
    return c @ w.T + _t(lay.bias, c), r @ w.abs().T


def ibp_conv(lay: Conv, c, r, in_shape):
    C, H, W = chw(in_shape)
    w = _t(lay.weight, c)
    args = (lay.stride, lay.padding, lay.dilation, lay.groups)
    cc = F.conv2d(c.reshape(-1, C, H, W), w, _t(lay.bias, c), *args)
    rr = F.conv2d(r.reshape(-1, C, H, W), w.abs(), None, *args)
    return cc.reshape(c.shape[0], -1), rr.reshape(c.shape[0], -1)


def ibp_scale(lay: Scale, c, r):
    m = _t(lay.mul, c)
    return c * m + _t(lay.add, c), r * m.abs()


def ibp_permute(lay: Permute, x, in_shape):
    return x.reshape(-1, *in_shape).permute(0, *(p + 1 for p in lay.perm)).reshape(x.shape[0], -1)


def ibp_node(net: Network, i: int, boxes: list[tuple]) -> tuple:
    """Box of node i's output from its inputs' boxes; boxes are (lo, hi) of shape (B, size)."""
    node = net.nodes[i]
    lay = node.layer
    lo, hi = boxes[0]
    if isinstance(lay, Relu):
        return lo.clamp(min=0), hi.clamp(min=0)
    if isinstance(lay, Reshape):
        return lo, hi
    if isinstance(lay, Permute):
        s = net.shape_of(node.inputs[0])
        return ibp_permute(lay, lo, s), ibp_permute(lay, hi, s)
    if isinstance(lay, Add):
        return boxes[0][0] + boxes[1][0], boxes[0][1] + boxes[1][1]
    if isinstance(lay, Concat):
        return torch.cat([b[0] for b in boxes], 1), torch.cat([b[1] for b in boxes], 1)
    c, r = (hi + lo) / 2, (hi - lo) / 2
    if isinstance(lay, Linear):
        c, r = ibp_linear(lay, c, r)
    elif isinstance(lay, Conv):
        c, r = ibp_conv(lay, c, r, net.shape_of(node.inputs[0]))
    elif isinstance(lay, Scale):
        c, r = ibp_scale(lay, c, r)
    else:
        raise TypeError(f"IBP has no rule for {type(lay).__name__}")
    return c - r, c + r


# ------------------------------------------------ CROWN: A (S, n_out) -> A (S, n_in), bias (S,)
def relu_relaxation(l: torch.Tensor, u: torch.Tensor):
    """CROWN's ReLU relaxation on [l, u]: upper line (slope, intercept), adaptive lower slope."""
    unstable = (l < 0) & (u > 0)
    active = l >= 0
    denom = torch.where(unstable, u - l, torch.ones_like(u))
    up_slope = torch.where(unstable, u / denom, active.to(u.dtype))
    up_icpt = torch.where(unstable, -l * u / denom, torch.zeros_like(u))
    lo_slope = torch.where(unstable, (u > -l).to(u.dtype), active.to(u.dtype))
    return up_slope, up_icpt, lo_slope


def crown_node(net: Network, i: int, A: torch.Tensor, pre: tuple | None, alpha=None):
    """Push the lower-bound coefficients A of node i's output to its inputs.

    Returns ([A_in per input], bias (S,)). ``pre`` is the (l, u) of a ReLU's input, flat;
    ``alpha`` (S, n) or (n,) in [0, 1], if given, replaces the lower slopes of unstable
    neurons (alpha-CROWN, Xu et al. 2021: any slope in [0, 1] is a valid lower line)."""
    node = net.nodes[i]
    lay = node.layer
    zero = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
    if isinstance(lay, Linear):
        return [A @ _t(lay.weight, A)], A @ _t(lay.bias, A)
    if isinstance(lay, Conv):
        C, H, W = chw(net.shape_of(node.inputs[0]))
        co, ho, wo = chw(node.shape)
        w = _t(lay.weight, A)
        kh, kw = w.shape[2:]
        outpad = tuple(
            (H, W)[d]
            - ((ho, wo)[d] - 1) * lay.stride[d]
            + 2 * lay.padding[d]
            - lay.dilation[d] * ((kh, kw)[d] - 1)
            - 1
            for d in range(2)
        )
        a = A.reshape(-1, co, ho, wo)
        a_in = F.conv_transpose2d(
            a, w, None, lay.stride, lay.padding, outpad, lay.groups, lay.dilation
        )
        bias = a.sum((2, 3)) @ _t(lay.bias, A)
        return [a_in.reshape(A.shape[0], -1)], bias
    if isinstance(lay, Scale):
        return [A * _t(lay.mul, A)], A @ _t(lay.add, A)
    if isinstance(lay, Relu):
        up_s, up_b, lo_s = relu_relaxation(*pre)
        if alpha is not None:
            lo_s = torch.where((pre[0] < 0) & (pre[1] > 0), alpha, lo_s)
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        return [pos * lo_s + neg * up_s], neg @ up_b
    if isinstance(lay, Reshape):
        return [A], zero
    if isinstance(lay, Permute):
        inv = [0] * len(lay.perm)
        for k, p in enumerate(lay.perm):
            inv[p] = k
        a = A.reshape(-1, *node.shape).permute(0, *(p + 1 for p in inv))
        return [a.reshape(A.shape[0], -1)], zero
    if isinstance(lay, Add):
        return [A, A], zero
    if isinstance(lay, Concat):
        sizes = [net.size_of(v) for v in node.inputs]
        return list(torch.split(A, sizes, dim=1)), zero
    raise TypeError(f"CROWN has no rule for {type(lay).__name__}")


IBP_RULES = (Linear, Conv, Scale, Relu, Reshape, Permute, Add, Concat)
CROWN_RULES = (Linear, Conv, Scale, Relu, Reshape, Permute, Add, Concat)
