import numpy as np
import scipy.sparse as sp
import torch

from fkdverify.bounds import network_bounds
from fkdverify.milp.dual import safe_min
from fkdverify.milp.tighten import lp_tighten
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import TorchNet
from tests.builders import random_mlp


def test_safe_min_is_a_lower_bound_for_any_duals():
    rng = np.random.default_rng(0)
    A = sp.csr_matrix(rng.normal(size=(5, 4)))
    r_lo, r_hi = np.array([-1, -np.inf, -2, 0, -1.0]), np.array([np.inf, 1, 2, 0.5, np.inf])
    lb, ub = -np.ones(4), 2 * np.ones(4)
    c = rng.normal(size=4)
    xs = lb + rng.random((20000, 4)) * (ub - lb)
    ax = xs @ A.T.toarray()
    feas = np.all((ax >= r_lo) & (ax <= r_hi), 1)
    best = (xs[feas] @ c).min()
    for _ in range(50):  # arbitrary dual vectors, even wrong-signed ones, give valid bounds
        y = rng.normal(size=5)
        assert safe_min(A, r_lo, r_hi, lb, ub, c, y) <= best


def test_lp_tightening_is_sound_and_no_looser(tmp_path):
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 16, 3], seed=4))
    x0 = np.random.default_rng(1).random(6)
    lo, hi = np.clip(x0 - 0.25, 0, 1), np.clip(x0 + 0.25, 0, 1)
    b = network_bounds(net, lo, hi, "crown")
    t, made_stable = lp_tighten(net, b, lo, hi, 30)
    assert made_stable >= 0 and t.n_unstable() <= b.n_unstable()
    xs = lo + np.random.default_rng(2).random((5000, 6)) * (hi - lo)
    vals = TorchNet(net)(torch.from_numpy(xs), all_values=True)
    tighter = 0
    for v in b.pre:
        (l0, u0), (l1, u1) = b.pre[v], t.pre[v]
        assert (l1 >= l0).all() and (u1 <= u0).all()
        z = vals[v].numpy()
        assert (z >= l1).all() and (z <= u1).all()
        tighter += int(((l1 > l0 + 1e-9) | (u1 < u0 - 1e-9)).sum())
    assert tighter > 0
