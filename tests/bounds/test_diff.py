"""Differential bounds: sampled points never leave the box of z_T - kappa z_S; identical
networks give a difference of (almost) exactly zero; shapes are compared exactly."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from fkdverify.bounds.diff import diff_bounds, logit_scale, same_shape
from fkdverify.bounds.propagate import propagate, spec_bounds_batch
from fkdverify.bounds.types import BoundOptions
from fkdverify.net.graph import Conv, Linear, Network, Scale
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import TorchNet
from tests.builders import random_cnn, random_mlp


def perturbed(net: Network, noise: float, seed: int = 0, last_scale: float = 1.0) -> Network:
    """A copy of ``net`` with every weight moved by relative Gaussian noise and the last
    affine layer scaled by ``last_scale``."""
    rng = np.random.default_rng(seed)
    nodes, last = list(net.nodes), net.output - 1
    for i, n in enumerate(nodes):
        lay = n.layer
        k = last_scale if i == last else 1.0
        if isinstance(lay, Linear | Conv):
            w = lay.weight * (1 + noise * rng.normal(size=lay.weight.shape)) * k
            b = (lay.bias + noise * rng.normal(size=lay.bias.shape)) * k
            nodes[i] = replace(n, layer=replace(lay, weight=w, bias=b))
        elif isinstance(lay, Scale) and k != 1.0:
            nodes[i] = replace(n, layer=replace(lay, mul=lay.mul * k, add=lay.add * k))
    return replace(net, nodes=tuple(nodes))


def _outputs(net, xs):
    return TorchNet(net)(torch.from_numpy(xs)).detach().numpy()


def _bounds(t, s, lo, hi, head, kappa, method="crown"):
    opts = BoundOptions(method=method)
    pt, ps = propagate(t, lo[None], hi[None], opts), propagate(s, lo[None], hi[None], opts)
    dl, du = diff_bounds(t, s, lo[None], hi[None], pt, ps, head, kappa)
    return dl[0].numpy(), du[0].numpy()


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize(("noise", "scale"), [(0.0, 1.0), (0.02, 1.0), (0.05, 0.5), (0.3, 1.0)])
def test_sampled_differences_stay_inside(tmp_path, kind, noise, scale):
    if kind == "mlp":
        t = import_onnx(random_mlp(tmp_path / "t.onnx", [6, 12, 12, 4], seed=1))
    else:
        t = import_onnx(random_cnn(tmp_path / "t.onnx", seed=1))
    s = perturbed(t, noise, seed=2, last_scale=scale)
    assert same_shape(t, s)
    kappa = logit_scale(t, s)
    n = t.input_size
    rng = np.random.default_rng(0)
    x0 = rng.random(n)
    lo, hi = np.clip(x0 - 0.1, 0, 1), np.clip(x0 + 0.1, 0, 1)
    head = rng.normal(size=(5, t.n_classes))
    for h in (None, head):
        for method in ("ibp", "crown"):
            dl, du = _bounds(t, s, lo, hi, h, kappa, method)
            xs = lo + rng.random((3000, n)) * (hi - lo)
            xs[:n] = np.where(rng.random((n, n)) < 0.5, lo, hi)
            d = _outputs(t, xs) - kappa * _outputs(s, xs)
            d = d if h is None else d @ h.T
            assert (d >= dl).all() and (d <= du).all()
            assert (dl <= du).all()


def test_identical_and_scaled_networks_give_zero_difference(tmp_path):
    t = import_onnx(random_mlp(tmp_path / "t.onnx", [6, 32, 32, 4], seed=4, scale=2.0))
    lo, hi = np.zeros(6), np.ones(6)  # a wide box: every ReLU unstable
    for s, kappa in ((t, 1.0), (perturbed(t, 0.0, last_scale=0.5), None)):
        kappa = logit_scale(t, s) if kappa is None else kappa
        assert kappa == pytest.approx(1.0 if s is t else 2.0)
        dl, du = _bounds(t, s, lo, hi, np.eye(4), kappa)
        assert np.abs(dl).max() < 1e-6 and np.abs(du).max() < 1e-6


def test_differential_is_tighter_than_separate_bounds_for_near_copies(tmp_path):
    t = import_onnx(random_mlp(tmp_path / "t.onnx", [6, 32, 32, 4], seed=4, scale=2.0))
    s = perturbed(t, 0.01, seed=3)
    lo, hi = np.full(6, 0.3), np.full(6, 0.5)
    dl, du = _bounds(t, s, lo, hi, None, 1.0)
    opts = BoundOptions(method="crown")
    bt = propagate(t, lo[None], hi[None], opts)
    bs = propagate(s, lo[None], hi[None], opts)
    tl, tu = (a[0].numpy() for a in spec_bounds_batch(t, lo, hi, bt, np.eye(4), opts))
    sl, su = (a[0].numpy() for a in spec_bounds_batch(s, lo, hi, bs, np.eye(4), opts))
    assert ((du - dl) < 0.5 * ((tu - sl) - (tl - su))).all()


def test_same_shape_tells_architectures_apart(tmp_path):
    a = import_onnx(random_mlp(tmp_path / "a.onnx", [6, 12, 4], seed=1))
    b = import_onnx(random_mlp(tmp_path / "b.onnx", [6, 12, 4], seed=2))
    c = import_onnx(random_mlp(tmp_path / "c.onnx", [6, 10, 4], seed=1))
    d = import_onnx(random_mlp(tmp_path / "d.onnx", [6, 12, 12, 4], seed=1))
    assert same_shape(a, b) and not same_shape(a, c) and not same_shape(a, d)


def test_back_substitution_tightens_the_interval_differential(tmp_path, monkeypatch):
    """On MLPs the symbolic pass (diff_crown) is intersected with the interval one: never
    wider, and on a near copy (weights 0.1% apart) several times narrower."""
    from fkdverify.bounds import diff

    t = import_onnx(random_mlp(tmp_path / "t.onnx", [6, 32, 32, 32, 4], seed=5, scale=2.0))
    s = perturbed(t, 0.001, seed=6)
    lo, hi = np.full(6, 0.2), np.full(6, 0.6)
    dl, du = _bounds(t, s, lo, hi, None, 1.0)
    monkeypatch.setattr(diff, "mlp_only", lambda net: False)
    il, iu = _bounds(t, s, lo, hi, None, 1.0)
    assert (dl >= il - 1e-12).all() and (du <= iu + 1e-12).all()
    assert ((du - dl) < 0.3 * (iu - il)).all(), (du - dl, iu - il)
