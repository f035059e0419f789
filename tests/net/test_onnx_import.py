import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from fkdverify.errors import ModelError, UnsupportedOpError
from fkdverify.net.graph import Conv, Linear, Scale
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from tests.builders import _init, random_cnn, random_mlp, save


def ort_eval(path, net, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate(
        [s.run(None, {name: xi.reshape(net.input_shape).astype(np.float32)})[0].reshape(1, -1)
         for xi in x]
    )  # fmt: skip


def assert_matches_ort(path, n=8, seed=0, atol=1e-4):
    net = import_onnx(path)
    x = np.random.default_rng(seed).random((n, net.input_size))
    ref = ort_eval(path, net, x)
    ours = evaluate(net, x)
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=1e-4)
    return net


VNN_NETS = [
    "mnist_fc/onnx/mnist-net_256x2.onnx",
    "mnist_fc/onnx/mnist-net_256x4.onnx",
    "mnist_fc/onnx/mnist-net_256x6.onnx",
    "oval21/onnx/cifar_base_kw.onnx",
    "oval21/onnx/cifar_wide_kw.onnx",
    "oval21/onnx/cifar_deep_kw.onnx",
    "cifar10_resnet/onnx/resnet_2b.onnx",
    "cifar10_resnet/onnx/resnet_4b.onnx",
]


@pytest.mark.parametrize("rel", VNN_NETS)
def test_vnncomp_nets_match_onnxruntime(data, rel):
    net = assert_matches_ort(str(data / "vnncomp" / rel))
    assert net.n_classes == 10


def test_mnist_fc_input_shape(data):
    net = import_onnx(str(data / "vnncomp/mnist_fc/onnx/mnist-net_256x2.onnx"))
    assert net.input_shape == (1, 784, 1)
    assert net.n_relus() == 512


def test_random_mlp_and_cnn_match(tmp_path):
    assert_matches_ort(random_mlp(tmp_path / "m.onnx", [5, 7, 6, 3]))
    net = assert_matches_ort(random_cnn(tmp_path / "c.onnx"))
    # Sub and Div merge into one Scale, kept in front of the first Conv (zero padding)
    kinds = [type(n.layer) for n in net.nodes]
    assert kinds.count(Scale) == 1 and kinds.index(Scale) < kinds.index(Conv)


def _graph_file(tmp_path, nodes, inits, in_shape, out_shape, name="g.onnx", out="y"):
    return save(tmp_path / name, nodes, inits, in_shape, out, out_shape)


def test_gemm_transposes_matmul_add_batchnorm_transpose(tmp_path):
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),  # (1,2,3) -> (1,3,2)
        helper.make_node("Reshape", ["xt", "shape"], ["xf"]),  # (1, 6)
        helper.make_node("Transpose", ["xf"], ["xc"], perm=[1, 0]),  # (6, 1)
        helper.make_node("Gemm", ["xc", "w", "b"], ["g"], transA=1, transB=0, alpha=0.5, beta=2.0),
        helper.make_node("Identity", ["g"], ["gi"]),
        helper.make_node("Relu", ["gi"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["m"]),
        helper.make_node("Add", ["m", "b2"], ["a"]),
        helper.make_node("Unsqueeze", ["a", "axes"], ["u"]),  # (1, 4, 1)
        helper.make_node("BatchNormalization", ["u", "s", "bb", "mu", "var"], ["bn"]),
        helper.make_node("Flatten", ["bn"], ["f"], axis=1),
        helper.make_node("Softmax", ["f"], ["y"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 6], np.int64), "shape"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
        _init("w", rng.normal(size=(6, 5))),
        _init("b", rng.normal(size=(5,))),
        _init("w2", rng.normal(size=(5, 4))),
        _init("b2", rng.normal(size=(4,))),
        _init("s", rng.random(4) + 0.5),
        _init("bb", rng.normal(size=4)),
        _init("mu", rng.normal(size=4)),
        _init("var", rng.random(4) + 0.1),
    ]
    path = _graph_file(tmp_path, nodes, inits, (1, 2, 3), (1, 4))
    net = import_onnx(path)
    assert any("Softmax" in n for n in net.notes)
    # the softmax is dropped: compare with onnxruntime's logits via log-softmax differences
    x = np.random.default_rng(2).random((5, 6))
    ours = evaluate(net, x)
    ref = np.log(ort_eval(path, net, x))
    np.testing.assert_allclose(ours - ours[:, :1], ref - ref[:, :1], atol=1e-4, rtol=1e-4)
    # BatchNorm and the bias Add were folded into Linear layers
    assert not any(isinstance(n.layer, Scale) for n in net.nodes)
    assert sum(isinstance(n.layer, Linear) for n in net.nodes) == 2


def test_residual_add_and_sub_of_two_values(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["c"], transB=1),
        helper.make_node("Add", ["c", "a"], ["s"]),
        helper.make_node("Sub", ["s", "r"], ["y"]),
    ]
    inits = [_init("w1", rng.normal(size=(4, 3))), _init("b1", rng.normal(size=4)),
             _init("w2", rng.normal(size=(4, 4))), _init("b2", rng.normal(size=4))]  # fmt: skip
    assert_matches_ort(_graph_file(tmp_path, nodes, inits, (1, 3), (1, 4)))


def test_unsupported_op_names_op_and_node(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["x"], ["y"], name="act1")]
    path = _graph_file(tmp_path, nodes, [], (1, 3), (1, 3))
    with pytest.raises(UnsupportedOpError, match=r"Sigmoid.*|act1"):
        import_onnx(path)
    try:
        import_onnx(path)
    except UnsupportedOpError as e:
        assert "act1" in str(e) and "Sigmoid" in str(e) and "\n" not in str(e)


def test_nonlinear_mul_refused(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="sq")]
    with pytest.raises(UnsupportedOpError, match="not linear"):
        import_onnx(_graph_file(tmp_path, nodes, [], (1, 3), (1, 3)))


def test_missing_and_non_onnx_files(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        import_onnx(str(tmp_path / "nope.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a network")
    with pytest.raises(ModelError, match="not"):
        import_onnx(str(bad))


@pytest.mark.parametrize(
    "pool",
    [
        dict(op="AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
        dict(op="AveragePool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
             count_include_pad=1),
        dict(op="GlobalAveragePool"),
    ],
)  # fmt: skip
def test_average_pooling_is_an_exact_depthwise_conv(tmp_path, pool):
    rng = np.random.default_rng(4)
    attrs = {k: v for k, v in pool.items() if k != "op"}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node(pool["op"], ["r"], ["p"], **attrs),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
    ]
    out_hw = {"GlobalAveragePool": 1, "AveragePool": 3 if pool.get("strides") == [2, 2] else 6}
    n = 4 * out_hw[pool["op"]] ** 2
    inits = [_init("w1", rng.normal(size=(4, 2, 3, 3))), _init("b1", rng.normal(size=4)),
             _init("w2", rng.normal(size=(3, n))), _init("b2", rng.normal(size=3))]  # fmt: skip
    net = assert_matches_ort(_graph_file(tmp_path, nodes, inits, (1, 2, 6, 6), (1, 3)))
    from fkdverify.bounds import network_bounds

    x = np.random.default_rng(5).random(net.input_size)
    lo, hi = np.clip(x - 0.1, 0, 1), np.clip(x + 0.1, 0, 1)
    b = network_bounds(net, lo, hi, "crown")
    assert len(b.pre) == len(net.relu_inputs()) and all(
        np.isfinite(l).all() for l, _ in b.pre.values()
    )
    # the pooled network bounds like any other: sampled outputs lie inside its output bounds
    from fkdverify.bounds import spec_bounds
    from fkdverify.net.torch_net import evaluate

    ol, ou = spec_bounds(net, lo, hi, b, np.eye(3))
    ys = evaluate(net, lo + np.random.default_rng(6).random((500, len(lo))) * (hi - lo))
    assert (ys >= ol - 1e-9).all() and (ys <= ou + 1e-9).all() and (ou - ol < 1e3).all()


def test_average_pool_padding_excluded_from_count_is_refused(tmp_path):
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              name="pool1")]  # fmt: skip
    path = _graph_file(tmp_path, nodes, [], (1, 1, 4, 4), (1, 1, 4, 4))
    with pytest.raises(UnsupportedOpError, match="count_include_pad"):
        import_onnx(path)
