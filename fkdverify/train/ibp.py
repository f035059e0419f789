"""Differentiable bounds of a model built by ``arch.build`` for certified training: IBP
(Gowal et al. 2018) and CROWN-IBP (Zhang et al., ICLR 2020: IBP for the hidden layers, a
CROWN backward pass for the output), both with the last layer elided into the margins
z_j - z_y. The verification engine (``fkdverify.bounds``) works on fixed numpy weights; these
functions keep the autograd graph of the model's parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .arch import Normalize


def _affine_ibp(m, lo, hi):
    c, r = (hi + lo) / 2, (hi - lo) / 2
    if isinstance(m, nn.Linear):
        c, r = F.linear(c, m.weight, m.bias), F.linear(r, m.weight.abs())
    elif isinstance(m, nn.Conv2d):
        c = m(c)
        r = F.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
    elif isinstance(m, Normalize):
        c, r = m(c), r / m.std
    return c - r, c + r


def hidden_bounds(model: nn.Sequential, lo, hi) -> list:
    """IBP boxes (l, u) of the input of every module, up to the last Linear's input."""
    boxes = [(lo, hi)]
    for m in list(model)[:-1]:
        lo, hi = boxes[-1]
        if isinstance(m, nn.ReLU):
            boxes.append((lo.clamp(min=0), hi.clamp(min=0)))
        elif isinstance(m, nn.Flatten):
            boxes.append((m(lo), m(hi)))
        else:
            boxes.append(_affine_ibp(m, lo, hi))
    return boxes


def _margin_rows(last: nn.Linear, y):
    """Rows (B, K, n) and biases (B, K) of z_j - z_y."""
    W, b = last.weight, last.bias
    return W[None] - W[y][:, None], b[None] - b[y][:, None]


def worst_logits_ibp(model: nn.Sequential, lo, hi, y, boxes=None):
    """Upper bounds (B, K) of z_j - z_y over the boxes (0 at j = y), by IBP."""
    boxes = boxes or hidden_bounds(model, lo, hi)
    l, u = boxes[-1]
    rows, bias = _margin_rows(model[-1], y)
    c, r = (u + l) / 2, (u - l) / 2
    return torch.einsum("bkn,bn->bk", rows, c) + torch.einsum("bkn,bn->bk", rows.abs(), r) + bias


def worst_logits_crown(model: nn.Sequential, lo, hi, y, boxes=None):
    """Upper bounds (B, K) of z_j - z_y by CROWN from the output, IBP for the hidden layers."""
    boxes = boxes or hidden_bounds(model, lo, hi)
    rows, bias = _margin_rows(model[-1], y)
    A, acc = -rows, -bias  # lower bound of -(z_j - z_y) = A . input + acc
    mods = list(model)[:-1]
    for k in range(len(mods) - 1, -1, -1):
        m = mods[k]
        B, K = A.shape[:2]
        if isinstance(m, nn.Linear):
            acc = acc + A @ m.bias
            A = A @ m.weight
        elif isinstance(m, nn.Conv2d):
            l_in = boxes[k][0]
            a = A.reshape(B * K, *boxes[k + 1][0].shape[1:])
            acc = acc + (a.sum((2, 3)) @ m.bias).reshape(B, K)
            outpad = [l_in.shape[2 + d] - ((a.shape[2 + d] - 1) * m.stride[d] - 2 * m.padding[d]
                      + m.dilation[d] * (m.kernel_size[d] - 1) + 1) for d in range(2)]  # fmt: skip
            a = F.conv_transpose2d(a, m.weight, None, m.stride, m.padding, outpad, m.groups,
                                   m.dilation)  # fmt: skip
            A = a.reshape(B, K, -1)
        elif isinstance(m, nn.ReLU):
            l, u = (t.reshape(t.shape[0], -1) for t in boxes[k])
            unst = (l < 0) & (u > 0)
            denom = torch.where(unst, u - l, torch.ones_like(u))
            up_s = torch.where(unst, u / denom, (l >= 0).to(u.dtype))
            up_b = torch.where(unst, -l * u / denom, torch.zeros_like(u))
            lo_s = torch.where(unst, (u > -l).to(u.dtype), (l >= 0).to(u.dtype))
            pos, neg = A.clamp(min=0), A.clamp(max=0)
            acc = acc + (neg * up_b[:, None]).sum(-1)
            A = pos * lo_s[:, None] + neg * up_s[:, None]
        elif isinstance(m, Normalize):
            c = m.std.shape[1]
            a = A.reshape(B, K, c, -1)
            acc = acc - (a * (m.mean / m.std).reshape(1, 1, c, 1)).sum((2, 3))
            A = (a / m.std.reshape(1, 1, c, 1)).reshape(B, K, -1)
        # Flatten: A is already flat
    l0, u0 = (t.reshape(t.shape[0], -1) for t in boxes[0])
    c0, r0 = (u0 + l0) / 2, (u0 - l0) / 2
    low = torch.einsum("bkn,bn->bk", A, c0) - torch.einsum("bkn,bn->bk", A.abs(), r0) + acc
    return -low


def worst_logits(model: nn.Sequential, lo, hi, y, beta: float = 0.0):
    """beta * CROWN-IBP + (1 - beta) * IBP upper bounds of z_j - z_y (Zhang et al. 2020
    anneal beta from 1 to 0); both are sound, so is every convex combination."""
    boxes = hidden_bounds(model, lo, hi)
    out = worst_logits_ibp(model, lo, hi, y, boxes)
    if beta > 0:
        out = beta * worst_logits_crown(model, lo, hi, y, boxes) + (1 - beta) * out
    return out


def margin_lower_bounds(model, lo, hi, y, beta: float = 0.0):
    """(lower, upper) bounds of the margins m_j = z_y - z_j, j != y, per row: (B, K-1)."""
    w = worst_logits(model, lo, hi, y, beta)  # >= z_j - z_y
    mask = torch.ones_like(w, dtype=torch.bool).scatter_(1, y[:, None], False)
    return -w[mask].reshape(len(y), -1)
