"""MILP refinement of intermediate bounds: sound (sampled points stay inside), never looser,
tighter than the bounds it starts from, stops at its deadline."""

import time

import numpy as np
import pytest
import torch

from fkdverify.bounds import network_bounds
from fkdverify.milp.backends import SOLVERS, get_backend
from fkdverify.milp.refine import milp_refine
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import TorchNet
from tests.builders import random_mlp


def _available(name: str) -> bool:
    try:
        get_backend(name).check()
        return True
    except Exception:
        return False


@pytest.mark.parametrize("solver", [s for s in SOLVERS if s != "cbc"])
def test_refined_bounds_hold_on_sampled_points_and_are_tighter(tmp_path, solver):
    if not _available(solver):
        pytest.skip(f"{solver} is not installed or licensed")
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 16, 3], seed=4))
    x0 = np.random.default_rng(1).random(6)
    lo, hi = np.clip(x0 - 0.3, 0, 1), np.clip(x0 + 0.3, 0, 1)
    b = network_bounds(net, lo, hi, "crown")
    r = milp_refine(net, b, lo, hi, time.perf_counter() + 60, solver, 2.0, "crown")
    assert r.solved > 0 and r.layers == 2 and r.stabilised >= 0
    assert r.bounds.n_unstable() <= b.n_unstable()
    xs = lo + np.random.default_rng(2).random((20000, 6)) * (hi - lo)
    vals = TorchNet(net)(torch.from_numpy(xs), all_values=True)
    tighter = 0
    for v in b.pre:
        (l0, u0), (l1, u1) = b.pre[v], r.bounds.pre[v]
        assert (l1 >= l0).all() and (u1 <= u0).all()  # only ever intersected
        z = vals[v].detach().numpy()
        assert (z >= l1 - 1e-9).all() and (z <= u1 + 1e-9).all()
        tighter += int(((l1 > l0 + 1e-6) | (u1 < u0 - 1e-6)).sum())
    assert tighter > 0


def test_refinement_stops_at_its_deadline(tmp_path):
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 16, 3], seed=4))
    lo, hi = np.zeros(6), np.ones(6)
    b = network_bounds(net, lo, hi, "crown")
    r = milp_refine(net, b, lo, hi, time.perf_counter() - 1, "highs")
    assert (r.solved, r.layers) == (0, 0)
    for v in b.pre:  # nothing refined: the bounds are the ones it started from (or tighter)
        assert (r.bounds.pre[v][0] >= b.pre[v][0]).all()


def test_known_bounds_are_kept_and_feed_later_layers(tmp_path):
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 3], seed=2))
    lo, hi = np.zeros(6), np.ones(6)
    b = network_bounds(net, lo, hi, "crown")
    v1, v2 = list(b.pre)
    l, u = b.pre[v1]
    mid = (l + u) / 2  # pretend everything before v1 is pinned at its midpoint: all stable
    k = network_bounds(net, lo, hi, "crown", {v1: (mid, mid)})
    assert np.array_equal(k.pre[v1][0], mid) and np.array_equal(k.pre[v1][1], mid)
    assert k.n_unstable([v2]) == 0  # a point interval before v2 leaves nothing unstable there
