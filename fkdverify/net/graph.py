"""Canonical feed-forward network: a DAG of a few layer kinds, weights in float64.

A network processes *one sample*. Every value has a shape (the ONNX shape, batch dimension
of size 1 included where the file has one); its data are the C-order flattening of that shape,
so reshapes are free. Value 0 is the network input; value ``i + 1`` is the output of
``nodes[i]``; nodes are in topological order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import numpy as np


@dataclass(frozen=True, eq=False)
class Linear:
    """y = W @ x_flat + b.  W: (n_out, n_in), b: (n_out,)."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True, eq=False)
class Conv:
    """2-D convolution on a (C, H, W) sample; weight (C_out, C_in/groups, kh, kw)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


@dataclass(frozen=True, eq=False)
class Scale:
    """Elementwise affine y = x * mul + add; mul and add are flat arrays of the value's size."""

    mul: np.ndarray
    add: np.ndarray


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Reshape:
    """Free: only the shape changes (C-order data unchanged)."""


@dataclass(frozen=True)
class Permute:
    """Reorder the axes of the input's shape (ONNX Transpose)."""

    perm: tuple[int, ...]


@dataclass(frozen=True)
class Add:
    """Sum of two values of the same size (residual connection)."""


@dataclass(frozen=True)
class Concat:
    """Flat concatenation of several values (used by the product network)."""


Layer = Linear | Conv | Scale | Relu | Reshape | Permute | Add | Concat
AFFINE_KINDS = (Linear, Conv, Scale, Reshape, Permute, Add, Concat)


@dataclass(frozen=True)
class Node:
    layer: Layer
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    name: str = ""


@dataclass(frozen=True)
class Network:
    """A canonical network. ``meta`` holds ONNX metadata; ``notes`` what the import changed."""

    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    output: int
    meta: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def input_size(self) -> int:
        return prod(self.input_shape)

    def shape_of(self, value: int) -> tuple[int, ...]:
        return self.input_shape if value == 0 else self.nodes[value - 1].shape

    def size_of(self, value: int) -> int:
        return prod(self.shape_of(value))

    @property
    def n_classes(self) -> int:
        return self.size_of(self.output)

    def relu_inputs(self) -> list[int]:
        """Values that feed a ReLU (pre-activations), in topological order."""
        return [n.inputs[0] for n in self.nodes if isinstance(n.layer, Relu)]

    def deep_values(self) -> set[int]:
        """Values with a ReLU between them and the input (the others are affine in the input,
        where interval bounds are already exact)."""
        deep: set[int] = set()
        for i, node in enumerate(self.nodes):
            if any(v in deep or (v > 0 and isinstance(self.nodes[v - 1].layer, Relu))
                   for v in node.inputs):  # fmt: skip
                deep.add(i + 1)
        return deep

    def n_relus(self) -> int:
        return sum(self.size_of(v) for v in self.relu_inputs())

    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for v in n.inputs:
                out.setdefault(v, []).append(i + 1)
        return out


def conv_out_hw(hw: tuple[int, int], conv: Conv) -> tuple[int, int]:
    kh, kw = conv.weight.shape[2:]
    return tuple(
        (hw[i] + 2 * conv.padding[i] - conv.dilation[i] * ((kh, kw)[i] - 1) - 1) // conv.stride[i]
        + 1
        for i in range(2)
    )


def chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The (C, H, W) of a conv operand whose shape may carry leading 1s."""
    lead = shape[:-3]
    if len(shape) < 3 or any(d != 1 for d in lead):
        raise ValueError(f"shape {shape} is not an image (C, H, W)")
    return tuple(shape[-3:])
