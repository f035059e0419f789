"""Small ONNX files built from numpy weights, for known-answer tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def save(path, nodes, inits, in_shape, out_name, out_shape, opset=13):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return str(path)


def mlp_onnx(path, layers, in_shape=None):
    """Gemm/Relu chain; layers: [(W (out, in), b)], ReLU between layers, none after the last."""
    nodes, inits, cur = [], [], "x"
    n_in = layers[0][0].shape[1]
    for i, (w, b) in enumerate(layers):
        inits += [_init(f"w{i}", w), _init(f"b{i}", b)]
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        cur = f"g{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    return save(path, nodes, inits, in_shape or (1, n_in), cur, (1, layers[-1][0].shape[0]))


def random_mlp(path, sizes, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    layers = [
        (rng.normal(0, scale / np.sqrt(a), (b, a)), rng.normal(0, 0.1, b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return mlp_onnx(path, layers)


def random_cnn(path, seed=0, in_shape=(1, 2, 8, 8), classes=4):
    """Conv(stride 2, pad 1) -> Relu -> Conv -> Relu -> Flatten -> Gemm, with a normalisation."""
    rng = np.random.default_rng(seed)
    c = in_shape[1]
    w1 = rng.normal(0, 0.5, (4, c, 3, 3))
    w2 = rng.normal(0, 0.3, (4, 4, 3, 3))
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xs"]),
        helper.make_node("Div", ["xs", "std"], ["xn"]),
        helper.make_node("Conv", ["xn", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    h = (in_shape[2] + 1) // 2
    inits = [
        _init("mean", np.full((1, c, 1, 1), 0.4)),
        _init("std", np.full((1, c, 1, 1), 0.25)),
        _init("w1", w1),
        _init("b1", rng.normal(0, 0.1, 4)),
        _init("w2", w2),
        _init("b2", rng.normal(0, 0.1, 4)),
        _init("w3", rng.normal(0, 0.3, (classes, 4 * h * h))),
        _init("b3", rng.normal(0, 0.1, classes)),
    ]
    return save(path, nodes, inits, in_shape, "y", (1, classes))


def with_output_map(src, dst, mul=1.0, add=0.0):
    """A copy of the ONNX file ``src`` whose output is ``output * mul + add`` (elementwise,
    broadcast over the logits): a scaled or shifted student of a real network."""
    m = onnx.load(str(src))
    g = m.graph
    out = g.output[0].name
    k = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim][-1]
    mul = np.broadcast_to(np.asarray(mul, np.float32), (k,))
    add = np.broadcast_to(np.asarray(add, np.float32), (k,))
    g.initializer.extend([_init("fkd_mul", mul), _init("fkd_add", add)])
    for n in g.node:  # rename the old output
        n.output[:] = [f"{o}_raw" if o == out else o for o in n.output]
    g.node.extend([
        helper.make_node("Mul", [f"{out}_raw", "fkd_mul"], [f"{out}_mul"]),
        helper.make_node("Add", [f"{out}_mul", "fkd_add"], [out]),
    ])  # fmt: skip
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return str(dst)
