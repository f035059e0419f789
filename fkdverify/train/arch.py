"""Architectures by name or spec, as ``nn.Sequential`` of Linear/Conv2d/ReLU/Flatten with an
optional input normalisation in front; and their canonical :class:`Network` for export.

* ``mlp:256,256`` — fully connected ReLU layers of those widths, then the output layer.
* ``cnn-tiny`` — Conv(8, 4x4, stride 2) - Conv(16, 4x4, stride 2) - FC 100 (the shape of
  VNN-COMP oval21's ``cifar_base_kw``).
* ``cnn-small`` — Conv(16, 4x4, stride 2) - Conv(32, 4x4, stride 2) - FC 100 (Wong & Kolter
  2018's small network, the "small" model of certified-training papers).
* ``cnn-medium`` — Conv(32, 3x3) - Conv(32, 4x4, s2) - Conv(64, 3x3) - Conv(64, 4x4, s2) -
  FC 512 - FC 512 (the "large" model of Wong et al. 2018 / CROWN-IBP's "DM-small" family).
"""

from __future__ import annotations

from math import prod

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..net.graph import Conv, Linear, Network, Node, Relu, Reshape, Scale

NAMED = {
    "cnn-tiny": ([(8, 4, 2, 1), (16, 4, 2, 1)], [100]),
    "cnn-small": ([(16, 4, 2, 1), (32, 4, 2, 1)], [100]),
    "cnn-medium": ([(32, 3, 1, 1), (32, 4, 2, 1), (64, 3, 1, 1), (64, 4, 2, 1)], [512, 512]),
}


class Normalize(nn.Module):
    """(x - mean) / std per channel; x: (B, C, H, W)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :, None, None])

    def forward(self, x):
        return (x - self.mean) / self.std


def parse_arch(spec: str) -> tuple[list, list]:
    """(conv layers [(channels, kernel, stride, pad)], hidden widths) of an architecture."""
    if spec in NAMED:
        return NAMED[spec]
    if spec.startswith("mlp:"):
        try:
            widths = [int(w) for w in spec[4:].split(",") if w.strip()]
        except ValueError:
            widths = []
        if widths and all(w > 0 for w in widths):
            return [], widths
    raise InputError(
        f"--arch {spec!r}: expected mlp:W1,W2,... (e.g. mlp:256,256), or one of {', '.join(NAMED)}"
    )


def build(spec: str, in_shape: tuple[int, int, int], classes: int, norm=None) -> nn.Sequential:
    """The model for inputs (B, C, H, W) of ``in_shape`` = (C, H, W); ``norm`` = (mean, std)."""
    convs, widths = parse_arch(spec)
    layers: list[nn.Module] = []
    if norm is not None:
        layers.append(Normalize(*norm))
    c, h, w = in_shape
    for ch, k, s, p in convs:
        layers += [nn.Conv2d(c, ch, k, s, p), nn.ReLU()]
        c, h, w = ch, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if h < 1 or w < 1:
            raise InputError(f"--arch {spec}: the input {in_shape} is too small for its convs")
    layers.append(nn.Flatten())
    n = c * h * w
    for width in widths:
        layers += [nn.Linear(n, width), nn.ReLU()]
        n = width
    layers.append(nn.Linear(n, classes))
    return nn.Sequential(*layers)


def to_network(model: nn.Sequential, in_shape: tuple[int, int, int], meta=None) -> Network:
    """The canonical network (float64 weights) of a model built by ``build``."""
    shape: tuple[int, ...] = (1, *in_shape)
    nodes: list[Node] = []

    def add(layer, out_shape, name):
        nodes.append(Node(layer, (len(nodes),), tuple(out_shape), name))

    def arr(t):
        return t.detach().cpu().double().numpy().copy()

    for k, m in enumerate(model):
        if isinstance(m, Normalize):
            size = prod(shape)
            c = shape[1]
            mul = np.repeat(1.0 / arr(m.std).reshape(c), size // c)
            addv = np.repeat(-(arr(m.mean) / arr(m.std)).reshape(c), size // c)
            add(Scale(mul, addv), shape, f"{k}/normalize")
        elif isinstance(m, nn.Conv2d):
            conv = Conv(arr(m.weight), arr(m.bias), tuple(m.stride), tuple(m.padding),
                        tuple(m.dilation), m.groups)  # fmt: skip
            h = (shape[2] + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            w = (shape[3] + 2 * m.padding[1] - m.kernel_size[1]) // m.stride[1] + 1
            shape = (1, m.out_channels, h, w)
            add(conv, shape, f"{k}/conv")
        elif isinstance(m, nn.ReLU):
            add(Relu(), shape, f"{k}/relu")
        elif isinstance(m, nn.Flatten):
            shape = (1, prod(shape))
            add(Reshape(), shape, f"{k}/flatten")
        elif isinstance(m, nn.Linear):
            shape = (1, m.out_features)
            add(Linear(arr(m.weight), arr(m.bias)), shape, f"{k}/linear")
        else:
            raise TypeError(f"cannot export {type(m).__name__}")
    return Network((1, *in_shape), tuple(nodes), len(nodes), dict(meta or {}))
