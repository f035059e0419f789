"""Write a canonical :class:`Network` as an ONNX graph (opset 13, float32 weights), with
string metadata. The inverse of ``onnx_import``: importing the file gives the same network up
to float32 rounding of the weights. Where the network's shapes carry a leading batch
dimension of 1, the graph is batch-agnostic: that dimension is symbolic ("batch") on the
input and output and -1 in every Reshape, so verifiers that evaluate many inputs at once
(alpha-beta-CROWN's attack) read it as it is."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale


def to_onnx(net: Network, meta: dict | None = None, name: str = "fkdverify") -> onnx.ModelProto:
    """The ONNX model of ``net``; ``meta`` becomes metadata_props (values turned to strings)."""
    nodes, inits = [], []
    names = ["x"]

    def const(tag: str, a) -> str:
        n = f"{tag}_{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(a, np.float32), n))
        return n

    def shape_const(shape) -> str:
        n = f"shape_{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(_any_batch(shape), np.int64), n))
        return n

    def flat(v: int) -> str:
        """Value v as (batch, size)."""
        if len(net.shape_of(v)) == 2 and net.shape_of(v)[0] == 1:
            return names[v]
        out = f"{names[v]}_flat"
        nodes.append(helper.make_node("Reshape", [names[v], shape_const([1, net.size_of(v)])],
                                      [out]))  # fmt: skip
        return out

    for i, node in enumerate(net.nodes):
        lay, out = node.layer, f"v{i + 1}"
        ins = [names[v] for v in node.inputs]
        if isinstance(lay, Linear):
            args = [flat(node.inputs[0]), const("w", lay.weight), const("b", lay.bias)]
            nodes.append(helper.make_node("Gemm", args, [out], transB=1))
        elif isinstance(lay, Conv):
            args = [ins[0], const("w", lay.weight), const("b", lay.bias)]
            nodes.append(helper.make_node(
                "Conv", args, [out], strides=list(lay.stride), pads=list(lay.padding) * 2,
                dilations=list(lay.dilation), group=lay.groups,
            ))  # fmt: skip
        elif isinstance(lay, Scale):
            shape = net.shape_of(node.inputs[0])
            mul = const("mul", np.asarray(lay.mul).reshape(shape))
            add = const("add", np.asarray(lay.add).reshape(shape))
            nodes.append(helper.make_node("Mul", [ins[0], mul], [out + "_m"]))
            nodes.append(helper.make_node("Add", [out + "_m", add], [out]))
        elif isinstance(lay, Relu):
            nodes.append(helper.make_node("Relu", ins, [out]))
        elif isinstance(lay, Reshape):
            nodes.append(helper.make_node("Reshape", [ins[0], shape_const(node.shape)], [out]))
        elif isinstance(lay, Permute):
            nodes.append(helper.make_node("Transpose", ins, [out], perm=list(lay.perm)))
        elif isinstance(lay, Add):
            nodes.append(helper.make_node("Add", ins, [out]))
        elif isinstance(lay, Concat):
            parts = [flat(v) for v in node.inputs]
            nodes.append(helper.make_node("Concat", parts, [out], axis=1))
        else:
            raise TypeError(f"no ONNX export for {type(lay).__name__}")
        names.append(out)
    y = names[net.output]
    out_shape = list(net.shape_of(net.output))
    if isinstance(net.nodes[net.output - 1].layer, Concat):
        out_shape = [1, int(np.prod(out_shape))]  # ONNX Concat on axis 1 of (1, n) values
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, _symbolic(net.input_shape))],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, _symbolic(out_shape))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.producer_name = "fkdverify"
    for k, v in (meta or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=str(k), value=str(v)))
    onnx.checker.check_model(model)
    return model


def _any_batch(shape) -> list:
    """A Reshape target with its leading batch dimension of 1 (if any) as -1."""
    shape = [int(d) for d in shape]
    return [-1, *shape[1:]] if len(shape) >= 2 and shape[0] == 1 else shape


def _symbolic(shape) -> list:
    """A value's declared shape with its leading batch dimension of 1 (if any) symbolic."""
    shape = [int(d) for d in shape]
    return ["batch", *shape[1:]] if len(shape) >= 2 and shape[0] == 1 else shape


def save_onnx(net: Network, path: str, meta: dict | None = None) -> str:
    onnx.save(to_onnx(net, meta), path)
    return path
