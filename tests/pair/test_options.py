"""CertifyOptions: --method auto picks the exact MILP where it fits, bounds elsewhere."""

import pytest

from fkdverify.errors import InputError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.pair.options import CertifyOptions, auto_method, resolved
from tests.builders import random_cnn, random_mlp


def test_auto_picks_milp_for_small_dense_pairs_and_bounds_for_cnns(tmp_path):
    mlp = import_onnx(random_mlp(tmp_path / "m.onnx", [4, 16, 16, 3]))
    big = import_onnx(random_mlp(tmp_path / "b.onnx", [4, 3000, 3000, 3]))
    cnn = import_onnx(random_cnn(tmp_path / "c.onnx", classes=3))
    assert auto_method(mlp, mlp) == "milp+bab"
    assert auto_method(big, mlp) == "alpha-crown"
    assert auto_method(cnn, cnn) == "alpha-crown"
    opts = CertifyOptions(eps=0.1)
    assert opts.method == "auto" and resolved(opts, mlp, mlp).method == "milp+bab"
    assert resolved(CertifyOptions(eps=0.1, method="crown"), mlp, mlp).method == "crown"


@pytest.mark.parametrize(
    "kw",
    [
        dict(eps=2.0),
        dict(eps=0.1, delta=1.5),
        dict(eps=0.1, tol=0),
        dict(eps=0.1, lp_tighten=1.0),
        dict(eps=0.1, solver="magic"),
    ],
)
def test_nonsense_options_are_refused(kw):
    with pytest.raises(InputError):
        CertifyOptions(**kw)
