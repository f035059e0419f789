"""Sampled points (and PGD points) always lie inside IBP and CROWN bounds."""

import numpy as np
import pytest
import torch

from fkdverify.bounds import network_bounds, spec_bounds
from fkdverify.bounds.rules import CROWN_RULES, IBP_RULES, RULES
from fkdverify.net.graph import Add, Concat, Conv, Linear, Permute, Relu, Reshape, Scale
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.product import product
from fkdverify.net.torch_net import TorchNet
from tests.builders import random_cnn, random_mlp


def test_alpha_spec_bounds_no_looser_than_crown(tmp_path):
    from fkdverify.bounds.alpha import alpha_spec_bounds

    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 4], seed=3))
    lo, hi = np.full(6, 0.1), np.full(6, 0.6)
    b = network_bounds(net, lo, hi, "crown")
    C = np.random.default_rng(0).normal(size=(6, 4))
    lc, uc = spec_bounds(net, lo, hi, b, C)
    la, ua = alpha_spec_bounds(net, lo, hi, b, C, iters=30)
    xs = lo + np.random.default_rng(1).random((4000, 6)) * (hi - lo)
    out = TorchNet(net)(torch.from_numpy(xs)).detach().numpy() @ C.T
    assert (out >= la).all() and (out <= ua).all()
    assert (la >= lc - 1e-7).all() and (ua <= uc + 1e-7).all()
    assert (la > lc + 1e-6).any() or (ua < uc - 1e-6).any()


def test_every_method_covers_every_layer_type():
    kinds = {Linear, Conv, Scale, Relu, Reshape, Permute, Add, Concat}
    assert set(IBP_RULES) == kinds and set(CROWN_RULES) == kinds
    assert set(RULES) == {"ibp", "crown", "alpha-crown"}
    assert all(set(table) == kinds for table in RULES.values())


def _check_inside(net, lo, hi, method, n=3000, seed=0):
    b = network_bounds(net, lo, hi, method)
    rng = np.random.default_rng(seed)
    xs = lo + rng.random((n, len(lo))) * (hi - lo)
    xs[: len(lo)] = np.where(rng.random((len(lo), len(lo))) < 0.5, lo, hi)  # corners
    vals = TorchNet(net)(torch.from_numpy(xs), all_values=True)
    for v, (l, u) in b.pre.items():
        x = vals[v].detach().numpy()
        assert (x >= l).all() and (x <= u).all(), f"value {v} escapes its {method} bounds"
    C = rng.normal(size=(5, net.n_classes))
    lb, ub = spec_bounds(net, lo, hi, b, C)
    out = vals[net.output].detach().numpy() @ C.T
    assert (out >= lb).all() and (out <= ub).all()
    return b, lb, ub


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_random_mlp_bounds_contain_samples(tmp_path, seed, method):
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 12, 12, 10, 4], seed=seed))
    x0 = np.random.default_rng(seed).random(6)
    lo, hi = np.clip(x0 - 0.3, 0, 1), np.clip(x0 + 0.3, 0, 1)
    _check_inside(net, lo, hi, method, seed=seed)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_random_cnn_bounds_contain_samples(tmp_path, seed, method):
    net = import_onnx(random_cnn(tmp_path / "c.onnx", seed=seed))
    x0 = np.random.default_rng(seed).random(net.input_size)
    lo, hi = np.clip(x0 - 0.1, 0, 1), np.clip(x0 + 0.1, 0, 1)
    _check_inside(net, lo, hi, method, n=1000, seed=seed)


def test_crown_no_looser_than_ibp_and_product_spec(tmp_path):
    t = import_onnx(random_mlp(tmp_path / "t.onnx", [6, 16, 16, 3], seed=7))
    s = import_onnx(random_mlp(tmp_path / "s.onnx", [6, 10, 3], seed=8))
    head = np.array([[1.0, -1, 0, -1, 1, 0]])  # (zT0 - zT1) - (zS0 - zS1): a cross-network term
    p, _, _ = product(t, s, head)
    lo, hi = np.full(6, 0.2), np.full(6, 0.6)
    bi, lbi, ubi = _check_inside(p, lo, hi, "ibp")
    bc, lbc, ubc = _check_inside(p, lo, hi, "crown")
    assert bc.n_unstable() <= bi.n_unstable()
    ba, _, _ = _check_inside(p, lo, hi, "alpha-crown")
    assert ba.n_unstable() <= bc.n_unstable()
    for v in bc.pre:  # alpha-CROWN only ever tightens
        assert (ba.pre[v][0] >= bc.pre[v][0]).all() and (ba.pre[v][1] <= bc.pre[v][1]).all()
    li, ui = spec_bounds(p, lo, hi, bi, np.eye(1))
    lc, uc = spec_bounds(p, lo, hi, bc, np.eye(1))
    assert lc[0] >= li[0] - 1e-9 and uc[0] <= ui[0] + 1e-9


def test_pgd_points_inside_bounds_on_real_net(data):
    from fkdverify.data import load_dataset

    net = import_onnx(str(data / "vnncomp/mnist_fc/onnx/mnist-net_256x2.onnx"))
    x0 = load_dataset("mnist", data_dir=str(data)).images[0].reshape(-1)
    lo, hi = np.clip(x0 - 0.03, 0, 1), np.clip(x0 + 0.03, 0, 1)
    b = network_bounds(net, lo, hi, "crown")
    C = np.eye(10)
    lb, ub = spec_bounds(net, lo, hi, b, C)
    tn = TorchNet(net)
    for k in range(10):  # push each logit up and down by PGD
        for sgn in (1, -1):
            x = torch.tensor(x0, requires_grad=True)
            for _ in range(40):
                z = tn(x[None])[0, k] * sgn
                (g,) = torch.autograd.grad(z, x)
                x = torch.clamp(x.detach() + 0.005 * g.sign(), torch.tensor(lo), torch.tensor(hi))
                x.requires_grad_(True)
            z = tn(x[None]).detach().numpy()[0]
            assert lb[k] <= z[k] <= ub[k]


def test_bounds_past_their_deadline_fall_back_to_ibp_and_stay_sound(tmp_path):
    """With the deadline already passed, alpha-CROWN and CROWN are skipped: the bounds are
    IBP's (no tighter, still containing every sampled pre-activation)."""
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [5, 16, 16, 3], seed=4))
    lo, hi = np.full(5, -0.5), np.full(5, 0.5)
    late = network_bounds(net, lo, hi, "alpha-crown", deadline=0.0)
    ibp = network_bounds(net, lo, hi, "ibp")
    full = network_bounds(net, lo, hi, "alpha-crown")
    xs = lo + np.random.default_rng(0).random((5000, 5)) * (hi - lo)
    vals = TorchNet(net)(torch.from_numpy(xs), all_values=True)
    tighter = False
    for v in net.relu_inputs():
        (l, u), (il, iu), (fl, fu) = late.pre[v], ibp.pre[v], full.pre[v]
        assert np.allclose(l, il) and np.allclose(u, iu)
        z = vals[v].detach().numpy()
        assert (z >= l - 1e-9).all() and (z <= u + 1e-9).all()
        tighter |= bool((fu - fl < iu - il - 1e-9).any())
    assert tighter  # without the deadline the same call does tighten them
