"""ONNX -> canonical :class:`Network` (numpy, float64). Refuses what it cannot represent exactly."""

from __future__ import annotations

import os
from math import prod

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError, UnsupportedOpError
from .graph import (
    Add,
    Concat,
    Conv,
    Linear,
    Network,
    Node,
    Permute,
    Relu,
    Reshape,
    Scale,
    chw,
    conv_out_hw,
)
from .simplify import fold_affine

SUPPORTED = (
    "Gemm, MatMul, Add, Sub, Mul, Div, Conv, Relu, Flatten, Reshape, Squeeze, Unsqueeze, "
    "Transpose, BatchNormalization, AveragePool, GlobalAveragePool, Identity, Dropout, Constant, "
    "Concat (flat, axis 1), Softmax (final only)"
)
_MAX_DENSE = 50_000_000  # entries of an expanded MatMul/Kronecker matrix


def load_onnx_model(path: str) -> onnx.ModelProto:
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file; give the path of an .onnx network")
    if os.path.isdir(path):
        raise ModelError(f"{path} is a directory; give the path of an .onnx network")
    try:
        model = onnx.load(path)
    except Exception as e:  # protobuf raises several types
        raise ModelError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise ModelError(f"{path} is not an ONNX model with a graph (no nodes found)")
    return model


def import_onnx(path: str) -> Network:
    """Read an ONNX file into a canonical network (see ``graph.py``)."""
    return _Importer(load_onnx_model(path), path).run()


class _Importer:
    def __init__(self, model: onnx.ModelProto, path: str):
        self.model = model
        self.path = path
        self.nodes: list[Node] = []
        self.env: dict[str, tuple[str, object]] = {}  # name -> ("const", array) | ("val", id)
        self.notes: list[str] = []

    # -- helpers -----------------------------------------------------------------------------
    def shape(self, vid: int) -> tuple[int, ...]:
        return self.input_shape if vid == 0 else self.nodes[vid - 1].shape

    def add(self, layer, inputs, shape, name="") -> int:
        self.nodes.append(Node(layer, tuple(inputs), tuple(int(d) for d in shape), name))
        return len(self.nodes)

    def fail(self, n, i, why: str):
        raise UnsupportedOpError(
            f"{self.path}: node #{i} '{n.name or n.output[0]}' ({n.op_type}): {why}"
        )

    def get(self, name: str):
        if name not in self.env:
            raise ModelError(f"{self.path}: tensor '{name}' is used before it is defined")
        return self.env[name]

    def const(self, n, i, name: str) -> np.ndarray:
        kind, v = self.get(name)
        if kind != "const":
            self.fail(n, i, f"input '{name}' must be a constant (weights), not computed")
        return v

    # -- main --------------------------------------------------------------------------------
    def run(self) -> Network:
        g = self.model.graph
        for t in g.initializer:
            self.env[t.name] = ("const", numpy_helper.to_array(t).astype(np.float64))
        inputs = [i for i in g.input if i.name not in self.env]
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: expected one input tensor, found {len(inputs)}")
        if len(g.output) != 1:
            raise ModelError(f"{self.path}: expected one output tensor, found {len(g.output)}")
        dims = inputs[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
        if shape and shape[0] == 0:
            shape[0] = 1  # symbolic batch dimension: one sample
        if not shape or any(d <= 0 for d in shape):
            raise ModelError(f"{self.path}: input shape {shape} is not fully known")
        self.input_shape = tuple(shape)
        self.env[inputs[0].name] = ("val", 0)
        out_name = g.output[0].name
        for i, n in enumerate(g.node):
            self.node(n, i, is_last=(out_name in n.output))
        kind, out = self.get(out_name)
        if kind != "val":
            raise ModelError(f"{self.path}: the output does not depend on the input")
        meta = {p.key: p.value for p in self.model.metadata_props}
        net = Network(self.input_shape, tuple(self.nodes), out, meta, tuple(self.notes))
        return fold_affine(net)

    def node(self, n, i, is_last: bool):  # noqa: C901 - one branch per op
        op = n.op_type
        at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        out = n.output[0]
        if op == "Constant":
            if "value" not in at:
                self.fail(n, i, "only a tensor 'value' attribute is supported")
            self.env[out] = ("const", numpy_helper.to_array(at["value"]).astype(np.float64))
            return
        if op in ("Identity", "Dropout"):
            self.env[out] = self.get(n.input[0])
            return
        ins = [self.get(x) if x else ("none", None) for x in n.input]
        if all(k == "const" for k, _ in ins if k != "none"):
            self.env[out] = ("const", self.fold_const(n, i, [v for _, v in ins], at))
            return
        x_kind, x = ins[0]
        if op == "Relu":
            self.env[out] = ("val", self.add(Relu(), [x], self.shape(x), n.name))
        elif op == "Softmax":
            if not is_last:
                self.fail(n, i, "Softmax is supported only as the final node (it is dropped)")
            self.notes.append("final Softmax dropped: outputs are logits")
            self.env[out] = ins[0]
        elif op == "Flatten":
            s = self.shape(x)
            ax = at.get("axis", 1) % max(len(s), 1)
            self.env[out] = ("val", self.add(Reshape(), [x], (prod(s[:ax]), prod(s[ax:]))))
        elif op in ("Reshape", "Squeeze", "Unsqueeze"):
            self.env[out] = ("val", self.add(Reshape(), [x], self.reshape_to(n, i, ins, at)))
        elif op == "Transpose":
            s = self.shape(x)
            perm = tuple(at.get("perm", range(len(s) - 1, -1, -1)))
            self.env[out] = ("val", self.add(Permute(perm), [x], tuple(s[p] for p in perm)))
        elif op == "Gemm":
            self.gemm(n, i, ins, at)
        elif op == "MatMul":
            self.matmul(n, i, ins)
        elif op == "Conv":
            self.conv(n, i, ins, at)
        elif op in ("AveragePool", "GlobalAveragePool"):
            self.avgpool(n, i, ins, at)
        elif op in ("Add", "Sub", "Mul", "Div"):
            self.arith(n, i, ins)
        elif op == "BatchNormalization":
            self.batchnorm(n, i, ins, at)
        elif op == "Concat":
            self.concat(n, i, ins, at)
        else:
            self.fail(n, i, f"operator not supported (supported: {SUPPORTED})")

    def fold_const(self, n, i, vals, at):
        op = n.op_type
        try:
            if op in ("Add", "Sub", "Mul", "Div"):
                f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
                return f[op](vals[0], vals[1])
            if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
                if op == "Flatten":
                    ax = at.get("axis", 1)
                    return vals[0].reshape(prod(vals[0].shape[:ax]), -1)
                return vals[0].reshape(self.reshape_shape(n, i, vals[0].shape, vals, at))
            if op == "Transpose":
                return np.transpose(vals[0], at.get("perm"))
            if op == "MatMul":
                return vals[0] @ vals[1]
        except ValueError as e:
            self.fail(n, i, f"constant folding failed: {e}")
        self.fail(n, i, "operator on constants is not supported")

    def reshape_shape(self, n, i, s, vals, at):
        op = n.op_type
        if op == "Reshape":
            target = [int(d) for d in vals[1]]
            target = [s[k] if d == 0 else d for k, d in enumerate(target)]
            if -1 in target:
                k = target.index(-1)
                rest = prod(d for j, d in enumerate(target) if j != k)
                target[k] = prod(s) // rest
            return tuple(target)
        axes = at.get("axes")
        if axes is None and len(vals) > 1:
            axes = [int(a) for a in vals[1]]
        if op == "Squeeze":
            axes = [a % len(s) for a in (axes if axes is not None else range(len(s)))]
            return tuple(d for k, d in enumerate(s) if not (k in axes and d == 1))
        out = list(s)
        for a in sorted(a % (len(s) + len(axes)) for a in axes):
            out.insert(a, 1)
        return tuple(out)

    def reshape_to(self, n, i, ins, at):
        x = ins[0][1]
        s = self.shape(x)
        vals = [None] + [self.const(n, i, nm) for nm in n.input[1:] if nm]
        t = self.reshape_shape(n, i, s, vals, at)
        if prod(t) != prod(s):
            self.fail(n, i, f"cannot reshape {s} to {t}")
        return t

    def dyn(self, n, i, ins, k):
        kind, v = ins[k]
        if kind != "val":
            self.fail(n, i, f"input {k} must depend on the network input")
        return v

    def gemm(self, n, i, ins, at):
        alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
        ta, tb = at.get("transA", 0), at.get("transB", 0)
        if ins[0][0] != "val" or ins[1][0] != "const":
            self.fail(n, i, "only Gemm(input, constant B[, constant C]) is supported")
        x = ins[0][1]
        s = self.shape(x)
        if len(s) != 2:
            self.fail(n, i, f"Gemm input must be 2-D, got {s}")
        m = s[1] if ta else s[0]
        if m != 1:
            self.fail(n, i, f"Gemm on a batch of {m} rows: the batch dimension must be 1")
        B = ins[1][1].T if tb else ins[1][1]
        W = alpha * B.T  # (N, K)
        nout = W.shape[0]
        c = ins[2][1] if len(ins) > 2 and ins[2][0] == "const" else np.zeros(nout)
        if len(ins) > 2 and ins[2][0] == "val":
            self.fail(n, i, "Gemm with a computed C is not supported")
        b = beta * np.broadcast_to(c, (1, nout)).reshape(nout)
        if W.shape[1] != prod(s):
            self.fail(n, i, f"Gemm shapes do not match: input {s}, B {ins[1][1].shape}")
        self.env[n.output[0]] = ("val", self.add(Linear(W, b.copy()), [x], (1, nout), n.name))

    def matmul(self, n, i, ins):
        (ka, a), (kb, b) = ins[0], ins[1]
        if ka == "val" and kb == "const":
            s = self.shape(a)
            if b.ndim != 2 or s[-1] != b.shape[0]:
                self.fail(n, i, f"MatMul shapes do not match: {s} @ {b.shape}")
            rows = prod(s[:-1])
            if rows * b.shape[1] * prod(s) > _MAX_DENSE:
                self.fail(n, i, "MatMul over many rows is too large to expand")
            W = np.kron(np.eye(rows), b.T)
            shape = (*s[:-1], b.shape[1])
        elif ka == "const" and kb == "val":
            s = self.shape(b)
            if a.ndim != 2 or len(s) != 2 or a.shape[1] != s[0]:
                self.fail(n, i, f"MatMul shapes do not match: {a.shape} @ {s}")
            W = np.kron(a, np.eye(s[1]))
            shape = (a.shape[0], s[1])
        else:
            self.fail(n, i, "MatMul of two computed tensors is not linear")
        vid = self.add(Linear(W, np.zeros(W.shape[0])), [a if ka == "val" else b], shape, n.name)
        self.env[n.output[0]] = ("val", vid)

    def conv(self, n, i, ins, at):
        x = self.dyn(n, i, ins, 0)
        W = self.const(n, i, n.input[1])
        b = self.const(n, i, n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros(len(W))
        if W.ndim != 4:
            self.fail(n, i, "only 2-D convolutions are supported")
        if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            self.fail(n, i, "auto_pad SAME is not supported; export with explicit pads")
        pads = list(at.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            self.fail(n, i, f"asymmetric padding {pads} is not supported")
        s = self.shape(x)
        try:
            c, h, w = chw(s)
        except ValueError:
            self.fail(n, i, f"Conv input must be (1, C, H, W), got {s}")
        groups = int(at.get("group", 1))
        if W.shape[1] * groups != c:
            self.fail(n, i, f"Conv weight {W.shape} does not match input channels {c}")
        layer = Conv(
            W,
            b.astype(np.float64),
            tuple(at.get("strides", [1, 1])),
            tuple(pads[:2]),
            tuple(at.get("dilations", [1, 1])),
            groups,
        )
        oh, ow = conv_out_hw((h, w), layer)
        shape = (*s[:-3], W.shape[0], oh, ow)
        self.env[n.output[0]] = ("val", self.add(layer, [x], shape, n.name))

    def avgpool(self, n, i, ins, at):
        """Average pooling as the depthwise convolution it is (weights 1/(kh*kw)); exact
        without padding, or with padding counted in the average (count_include_pad=1)."""
        x = self.dyn(n, i, ins, 0)
        s = self.shape(x)
        try:
            c, h, w = chw(s)
        except ValueError:
            self.fail(n, i, f"{n.op_type} input must be (1, C, H, W), got {s}")
        if n.op_type == "GlobalAveragePool":
            kh, kw, strides, pads = h, w, [1, 1], [0, 0, 0, 0]
        else:
            kh, kw = at.get("kernel_shape", [0, 0])
            strides, pads = list(at.get("strides", [1, 1])), list(at.get("pads", [0, 0, 0, 0]))
            if at.get("ceil_mode", 0):
                self.fail(n, i, "AveragePool with ceil_mode=1 is not supported")
            if any(pads) and not at.get("count_include_pad", 0):
                self.fail(n, i, "AveragePool with padding needs count_include_pad=1 to be linear")
            if pads[:2] != pads[2:]:
                self.fail(n, i, f"asymmetric padding {pads} is not supported")
        weight = np.full((c, 1, kh, kw), 1.0 / (kh * kw))
        layer = Conv(weight, np.zeros(c), tuple(strides), tuple(pads[:2]), (1, 1), c)
        oh, ow = conv_out_hw((h, w), layer)
        self.env[n.output[0]] = ("val", self.add(layer, [x], (*s[:-3], c, oh, ow), n.name))

    def concat(self, n, i, ins, at):
        """Concat of computed (1, n_i) tensors along axis 1 (e.g. a product network's logits)."""
        shapes = [self.shape(v) if k == "val" else None for k, v in ins]
        if any(s is None or len(s) != 2 or s[0] != 1 for s in shapes) or at.get("axis") not in (
            1,
            -1,
        ):
            self.fail(n, i, "only Concat of computed (1, n) tensors along axis 1 is supported")
        size = sum(s[1] for s in shapes)
        self.env[n.output[0]] = ("val", self.add(Concat(), [v for _, v in ins], (1, size), n.name))

    def arith(self, n, i, ins):
        op = n.op_type
        (ka, a), (kb, b) = ins[0], ins[1]
        if ka == "val" and kb == "val":
            if op not in ("Add", "Sub"):
                self.fail(n, i, f"{op} of two computed tensors is not linear")
            if self.shape(a) != self.shape(b):
                self.fail(n, i, f"{op} of shapes {self.shape(a)} and {self.shape(b)}")
            if op == "Sub":
                size = prod(self.shape(b))
                b = self.add(Scale(-np.ones(size), np.zeros(size)), [b], self.shape(b))
            self.env[n.output[0]] = ("val", self.add(Add(), [a, b], self.shape(a), n.name))
            return
        x, c, x_first = (a, b, True) if ka == "val" else (b, a, False)
        s = self.shape(x)
        try:
            if np.broadcast_shapes(s, c.shape) != tuple(s):
                self.fail(n, i, f"constant of shape {c.shape} would enlarge input {s}")
            cb = np.broadcast_to(c, s).reshape(-1).astype(np.float64)
        except ValueError:
            self.fail(n, i, f"constant of shape {c.shape} does not broadcast to {s}")
        one, zero = np.ones_like(cb), np.zeros_like(cb)
        if op == "Add":
            mul, add = one, cb
        elif op == "Sub":
            mul, add = (one, -cb) if x_first else (-one, cb)
        elif op == "Mul":
            mul, add = cb, zero
        else:
            if not x_first:
                self.fail(n, i, "division by a computed tensor is not linear")
            if np.any(cb == 0):
                self.fail(n, i, "division by zero in a constant")
            mul, add = 1.0 / cb, zero
        self.env[n.output[0]] = ("val", self.add(Scale(mul, add), [x], s, n.name))

    def batchnorm(self, n, i, ins, at):
        x = self.dyn(n, i, ins, 0)
        scale, bias, mean, var = (self.const(n, i, nm) for nm in n.input[1:5])
        s = self.shape(x)
        lead = 1 if len(s) >= 2 and s[0] == 1 else 0
        if len(s) <= lead or s[lead] != len(scale):
            self.fail(n, i, f"BatchNormalization over {len(scale)} channels, input {s}")
        k = scale / np.sqrt(var + at.get("epsilon", 1e-5))
        per = prod(s[lead + 1 :])
        mul = np.repeat(k, per)
        add = np.repeat(bias - mean * k, per)
        self.env[n.output[0]] = ("val", self.add(Scale(mul, add), [x], s, n.name))
