"""Exact algebraic simplification: fold elementwise affine maps (normalisation, BatchNorm,
bias Adds) into neighbouring Linear/Conv/Scale nodes so that bounds and MILPs see fewer layers.

A folded Scale node is replaced by a free Reshape, so value ids never change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import Conv, Linear, Network, Node, Reshape, Scale


def _per_channel(scale: Scale, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    mul = scale.mul.reshape(channels, -1)
    add = scale.add.reshape(channels, -1)
    if np.all(mul == mul[:, :1]) and np.all(add == add[:, :1]):
        return mul[:, 0], add[:, 0]
    return None


def _then_scale(lay, s: Scale):
    """The layer ``lay`` followed by the elementwise map ``s``, as one layer (or None)."""
    if isinstance(lay, Scale):
        return Scale(lay.mul * s.mul, lay.add * s.mul + s.add)
    if isinstance(lay, Linear):
        return Linear(s.mul[:, None] * lay.weight, s.mul * lay.bias + s.add)
    if isinstance(lay, Conv):
        pc = _per_channel(s, lay.weight.shape[0])
        if pc is not None:
            m, a = pc
            return replace(lay, weight=lay.weight * m[:, None, None, None], bias=lay.bias * m + a)
    return None


def _producer(net: Network, v: int, uses: dict) -> int | None:
    """Walk back from value v through free Reshapes while each value has one consumer."""
    while v > 0 and len(uses.get(v, ())) == 1 and v != net.output:
        node = net.nodes[v - 1]
        if not isinstance(node.layer, Reshape):
            return v
        v = node.inputs[0]
    return None


def _fold_once(net: Network) -> Network | None:
    uses = net.consumers()
    nodes = list(net.nodes)
    for i, node in enumerate(nodes):
        lay = node.layer
        if isinstance(lay, Scale):
            p = _producer(net, node.inputs[0], uses)
            if p is not None:
                merged = _then_scale(nodes[p - 1].layer, lay)
                if merged is not None:
                    nodes[p - 1] = replace(nodes[p - 1], layer=merged)
                    nodes[i] = Node(Reshape(), node.inputs, node.shape, node.name)
                    return replace(net, nodes=tuple(nodes))
        if isinstance(lay, Linear):
            p = _producer(net, node.inputs[0], uses)
            if p is not None and isinstance(nodes[p - 1].layer, Scale):
                s = nodes[p - 1].layer
                folded = Linear(lay.weight * s.mul[None, :], lay.weight @ s.add + lay.bias)
                nodes[i] = replace(node, layer=folded)
                pn = nodes[p - 1]
                nodes[p - 1] = Node(Reshape(), pn.inputs, pn.shape, pn.name)
                return replace(net, nodes=tuple(nodes))
    return None


def fold_affine(net: Network) -> Network:
    """Fold every Scale into the Linear/Conv/Scale before it, or into the Linear after it,
    where the values in between have a single consumer. Never into a following Conv: its zero
    padding would no longer be zero."""
    while (folded := _fold_once(net)) is not None:
        net = folded
    return net
