"""Exact algebraic simplification: fold elementwise affine maps (normalisation, BatchNorm,
bias Adds) into the neighbouring Linear/Conv so that bounds and MILPs see fewer layers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import Conv, Linear, Network, Node, Scale


def _per_channel(scale: Scale, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    mul = scale.mul.reshape(channels, -1)
    add = scale.add.reshape(channels, -1)
    if np.all(mul == mul[:, :1]) and np.all(add == add[:, :1]):
        return mul[:, 0], add[:, 0]
    return None


def _fold_after(prev: Node, scale: Scale) -> Node | None:
    """prev followed by an elementwise affine map -> one node, or None."""
    lay = prev.layer
    if isinstance(lay, Linear):
        return replace(
            prev, layer=Linear(scale.mul[:, None] * lay.weight, scale.mul * lay.bias + scale.add)
        )
    if isinstance(lay, Conv):
        pc = _per_channel(scale, lay.weight.shape[0])
        if pc is None:
            return None
        m, a = pc
        return replace(
            prev,
            layer=replace(lay, weight=lay.weight * m[:, None, None, None], bias=lay.bias * m + a),
        )
    return None


def fold_affine(net: Network) -> Network:
    """Fold Scale nodes into the Linear/Conv before them, and into the Linear after them.

    Only where the intermediate value has a single consumer and is not the output; never a
    Scale into a following Conv (zero padding would no longer be zero)."""
    uses = net.consumers()
    new: list[Node] = []
    remap = {0: 0}
    for i, node in enumerate(net.nodes):
        old_id = i + 1
        old_in = node.inputs
        single = len(old_in) == 1 and len(uses.get(old_in[0], [])) == 1 and old_in[0] != net.output
        node = replace(node, inputs=tuple(remap[v] for v in old_in))
        src = node.inputs[0] if node.inputs else 0
        if isinstance(node.layer, Scale) and src > 0 and single:
            folded = _fold_after(new[src - 1], node.layer)
            if folded is not None:
                new[src - 1] = replace(folded, shape=node.shape)
                remap[old_id] = src
                continue
        if isinstance(node.layer, Linear) and src > 0 and single:
            prev = new[src - 1]
            if isinstance(prev.layer, Scale):
                s, lay = prev.layer, node.layer
                w = lay.weight * s.mul[None, :]
                new[src - 1] = replace(
                    node, layer=Linear(w, lay.weight @ s.add + lay.bias), inputs=prev.inputs
                )
                remap[old_id] = src
                continue
        new.append(node)
        remap[old_id] = len(new)
    return replace(net, nodes=tuple(new), output=remap[net.output])
