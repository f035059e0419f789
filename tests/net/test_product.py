import numpy as np
import pytest

from fkdverify.errors import MismatchError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.product import product
from fkdverify.net.torch_net import evaluate
from tests.builders import random_mlp


def test_product_shares_input_and_applies_head(tmp_path):
    t = import_onnx(random_mlp(tmp_path / "t.onnx", [4, 6, 3], seed=1))
    s = import_onnx(random_mlp(tmp_path / "s.onnx", [4, 5, 3], seed=2))
    head = np.random.default_rng(0).normal(size=(2, 6))
    p, _, _ = product(t, s, head, np.array([1.0, -1.0]))
    x = np.random.default_rng(1).random((7, 4))
    want = np.concatenate([evaluate(t, x), evaluate(s, x)], 1) @ head.T + [1.0, -1.0]
    np.testing.assert_allclose(evaluate(p, x), want, atol=1e-12)


def test_mismatched_pairs_refused(tmp_path):
    t = import_onnx(random_mlp(tmp_path / "t.onnx", [4, 6, 3]))
    with pytest.raises(MismatchError, match="input"):
        product(t, import_onnx(random_mlp(tmp_path / "a.onnx", [5, 6, 3])))
    with pytest.raises(MismatchError, match="outputs"):
        product(t, import_onnx(random_mlp(tmp_path / "b.onnx", [4, 6, 2])))
