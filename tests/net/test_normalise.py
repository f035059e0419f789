"""Input normalisation in front of networks whose ONNX files expect normalised input."""

import numpy as np
import onnxruntime as ort
import pytest

from fkdverify.errors import InputError
from fkdverify.net.normalise import Normalisation, parse_floats, with_normalisation
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from fkdverify.pair.recheck import Referee
from tests.builders import random_mlp


def _plain_cnn(path, seed=0):
    """A conv net without normalisation of its own (it expects normalised input)."""
    from onnx import helper

    from tests.builders import _init, save

    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Flatten", ["r1"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.5, (4, 3, 3, 3))),
        _init("b1", rng.normal(0, 0.1, 4)),
        _init("w2", rng.normal(0, 0.3, (5, 64))),
        _init("b2", rng.normal(0, 0.1, 5)),
    ]
    return save(path, nodes, inits, (1, 3, 8, 8), "y", (1, 5))


def test_normalised_network_matches_onnxruntime_on_normalised_input(tmp_path):
    path = _plain_cnn(tmp_path / "c.onnx")
    norm = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    net = with_normalisation(import_onnx(path), norm)
    x = np.random.default_rng(0).random((6, 3, 8, 8))
    mean = np.array(norm.mean)[None, :, None, None]
    std = np.array(norm.std)[None, :, None, None]
    sess = ort.InferenceSession(path)
    for xi in x:
        want = sess.run(None, {"x": ((xi[None] - mean) / std).astype(np.float32)})[0][0]
        np.testing.assert_allclose(evaluate(net, xi)[0], want, atol=1e-4)
    assert any("normalised" in n for n in net.notes)


def test_referee_normalises_before_onnxruntime(tmp_path):
    path = _plain_cnn(tmp_path / "c.onnx")
    norm = Normalisation((0.5,), (0.25,))
    net = with_normalisation(import_onnx(path), norm)
    ref = Referee(path, path, net, net, (norm, norm))
    x = np.random.default_rng(1).random(192)
    (z64, zo), _ = ref.logits(x)
    np.testing.assert_allclose(z64, zo, atol=1e-4)


def test_one_value_or_one_per_channel(tmp_path):
    net = import_onnx(_plain_cnn(tmp_path / "c.onnx"))
    with pytest.raises(InputError, match="3 channel"):
        with_normalisation(net, Normalisation((0.1, 0.2), (1.0, 1.0)))
    with pytest.raises(InputError, match="positive"):
        Normalisation((0.1,), (0.0,))
    with pytest.raises(InputError, match="comma-separated"):
        parse_floats("0.1;0.2", "--mean")


def test_mlp_normalisation_folds_into_the_first_layer(tmp_path):
    path = random_mlp(tmp_path / "m.onnx", [4, 6, 3])
    net = import_onnx(path)
    norm = Normalisation((0.1307,), (0.3081,))
    folded = with_normalisation(net, norm)
    x = np.random.default_rng(2).random((5, 4))
    np.testing.assert_allclose(evaluate(folded, x), evaluate(net, (x - 0.1307) / 0.3081), atol=1e-9)


def test_metadata_gives_the_normalisation():
    norm = Normalisation.from_options(None, None, {"mean": "0.5,0.5,0.5", "std": "0.2"})
    assert norm == Normalisation((0.5, 0.5, 0.5), (0.2,))
    assert Normalisation.from_options(None, None, {}) is None
    assert Normalisation.from_options("0.1", None, {"mean": "0.9"}).mean == (0.1,)
