"""The batched engine: soundness on random CNNs and MLPs in both precisions, batch = one by one,
float32 within its stated allowance of float64, chunking, bounds vs exact MILP optima."""

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from fkdverify.bounds.alpha import alpha_spec_bounds_batch
from fkdverify.bounds.crown import crown_lower
from fkdverify.bounds.propagate import network_bounds, propagate, spec_bounds_batch
from fkdverify.bounds.rules import Prop
from fkdverify.bounds.types import BoundOptions
from fkdverify.milp.backends import get_backend
from fkdverify.milp.model import Status
from fkdverify.milp.properties import margin_extreme
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import TorchNet
from fkdverify.pair.attack import AttackOptions, _pgd
from tests.builders import random_cnn, random_mlp


def _boxes(net, B, eps, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((B, net.input_size))
    return x, np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)


def _samples(lo, hi, n, rng):
    """Uniform samples and corners of each box: (B, n, size)."""
    u = rng.random((lo.shape[0], n, lo.shape[1]))
    u[:, : n // 4] = u[:, : n // 4] < 0.5
    return lo[:, None] + u * (hi - lo)[:, None]


def _pgd_points(net, lo, hi, C):
    """PGD maxima and minima of every spec row inside each box: (B, 2S, size)."""
    tn = TorchNet(net)
    out = []
    for b in range(lo.shape[0]):
        lt, ht = torch.as_tensor(lo[b]), torch.as_tensor(hi[b])
        rows = torch.as_tensor(np.concatenate([C, -C]))
        x = ((lt + ht) / 2).expand(len(rows), -1).clone()

        def f(xb, rows=rows):
            return (tn(xb) * rows).sum(1)

        step = AttackOptions().step_scale * float((ht - lt).max()) / 2 / 50
        bx, _ = _pgd(f, x, lt, ht, 50, step)
        out.append(bx.numpy())
    return np.stack(out)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_sampled_and_pgd_points_inside_batched_bounds(tmp_path, kind, method, precision):
    for seed in range(2):
        if kind == "cnn":
            net = import_onnx(random_cnn(tmp_path / f"c{seed}.onnx", seed=seed))
        else:
            net = import_onnx(random_mlp(tmp_path / f"m{seed}.onnx", [12, 16, 16, 5], seed=seed))
        _, lo, hi = _boxes(net, 3, 0.15, seed)
        opts = BoundOptions(method=method, precision=precision, alpha_iters=10)
        b = propagate(net, lo, hi, opts)
        C = np.random.default_rng(seed).normal(size=(4, net.n_classes))
        spec = alpha_spec_bounds_batch if method == "alpha-crown" else spec_bounds_batch
        lb, ub = (t.double().numpy() for t in spec(net, lo, hi, b, C, opts))
        xs = np.concatenate(
            [_samples(lo, hi, 400, np.random.default_rng(seed)), _pgd_points(net, lo, hi, C)], 1
        )
        with torch.no_grad():
            vals = TorchNet(net)(torch.as_tensor(xs.reshape(-1, net.input_size)), all_values=True)
        for v, (l, u) in b.pre.items():
            x = vals[v].numpy().reshape(len(lo), -1, l.shape[1])
            assert (x >= l.double().numpy()[:, None]).all(), f"value {v} below its {method} bound"
            assert (x <= u.double().numpy()[:, None]).all(), f"value {v} above its {method} bound"
        out = vals[net.output].numpy().reshape(len(lo), -1, net.n_classes) @ C.T
        assert (out >= lb[:, None]).all() and (out <= ub[:, None]).all()


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_a_batch_gives_the_same_bounds_as_one_point_at_a_time(tmp_path, method):
    net = import_onnx(random_cnn(tmp_path / "c.onnx", seed=4))
    _, lo, hi = _boxes(net, 4, 0.1, 4)
    batch = propagate(net, lo, hi, BoundOptions(method=method))
    for b in range(4):
        one = network_bounds(net, lo[b], hi[b], method)
        for v, (l, u) in one.pre.items():
            np.testing.assert_allclose(batch.pre[v][0][b].numpy(), l, atol=1e-6)
            np.testing.assert_allclose(batch.pre[v][1][b].numpy(), u, atol=1e-6)


def test_methods_order_on_a_random_cnn(tmp_path):
    """alpha-CROWN <= CROWN <= IBP in width, and in undecided ReLUs."""
    net = import_onnx(random_cnn(tmp_path / "c.onnx", seed=5))
    _, lo, hi = _boxes(net, 3, 0.1, 5)
    C = np.eye(net.n_classes)
    res = {}
    for m in ("ibp", "crown", "alpha-crown"):
        opts = BoundOptions(method=m)
        b = propagate(net, lo, hi, opts)
        spec = alpha_spec_bounds_batch if m == "alpha-crown" else spec_bounds_batch
        lb, ub = spec(net, lo, hi, b, C, opts)
        res[m] = ((ub - lb).numpy(), b.n_unstable().numpy())
    assert (res["crown"][0] <= res["ibp"][0] + 1e-9).all()
    assert (res["alpha-crown"][0] <= res["crown"][0] + 1e-9).all()
    assert (res["alpha-crown"][1] <= res["crown"][1]).all()
    assert (res["crown"][1] <= res["ibp"][1]).all()


def test_float32_is_sound_against_float64_within_its_allowance(tmp_path):
    """Same intermediate bounds, same spec: the float32 lower bound never exceeds the float64
    one (its allowance covers the rounding) and stays within the allowance of it."""
    net = import_onnx(random_cnn(tmp_path / "c.onnx", seed=6, in_shape=(1, 3, 12, 12)))
    _, lo, hi = _boxes(net, 5, 0.05, 6)
    b = propagate(net, lo, hi, BoundOptions(method="crown"))
    C = torch.as_tensor(np.random.default_rng(6).normal(size=(5, 6, net.n_classes)))
    lbs = {}
    for dt in (torch.float64, torch.float32):
        pre = {v: (l.to(dt), u.to(dt)) for v, (l, u) in b.pre.items()}
        p = Prop(net, dt)
        lbs[dt] = crown_lower(p, net.output, C.to(dt), torch.as_tensor(lo, dtype=dt),
                              torch.as_tensor(hi, dtype=dt), pre).double()  # fmt: skip
    gap = lbs[torch.float64] - lbs[torch.float32]
    assert (gap >= 0).all(), "float32 bound tighter than float64: allowance too small"
    assert (gap <= 1e-3 * (1 + lbs[torch.float64].abs())).all(), gap.max()


def test_chunked_backward_pass_gives_the_same_bounds_and_says_so(tmp_path, caplog):
    net = import_onnx(random_cnn(tmp_path / "c.onnx", seed=7, in_shape=(1, 3, 16, 16)))
    _, lo, hi = _boxes(net, 6, 0.05, 7)
    C = np.eye(net.n_classes)
    big = BoundOptions(method="crown", memory_mb=2048)
    small = replace(big, memory_mb=16)
    with caplog.at_level(logging.INFO, logger="fkdverify"):
        b1 = propagate(net, lo, hi, big)
        lb1, ub1 = spec_bounds_batch(net, lo, hi, b1, C, big)
        assert not any("chunks" in r.message for r in caplog.records)
        # 16 MB cannot hold 6 points x 2*768 rows x 768 floats at once
        b2 = propagate(net, np.repeat(lo, 4, 0), np.repeat(hi, 4, 0), small)
        lb2, ub2 = spec_bounds_batch(net, np.repeat(lo, 4, 0), np.repeat(hi, 4, 0), b2, C, small)
    assert any("chunks" in r.message for r in caplog.records)
    torch.testing.assert_close(lb2[::4], lb1)
    torch.testing.assert_close(ub2[::4], ub1)


@pytest.mark.parametrize("seed", range(3))
def test_bounds_never_contradict_the_exact_milp_optimum(tmp_path, seed):
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [5, 12, 12, 3], seed=seed, scale=2.0))
    _, lo, hi = _boxes(net, 1, 0.2, seed)
    exact = network_bounds(net, lo[0], hi[0], "crown")
    m, _ = margin_extreme(net, exact, lo[0], hi[0], 0, 1, maximize=True)
    sol = get_backend("highs").solve(m, 60)
    assert sol.status == Status.OPTIMAL
    C = np.array([[1.0, -1.0, 0.0]])
    for method in ("ibp", "crown", "alpha-crown"):
        for precision in ("float64", "float32"):
            opts = BoundOptions(method=method, precision=precision)
            b = propagate(net, lo, hi, opts)
            spec = alpha_spec_bounds_batch if method == "alpha-crown" else spec_bounds_batch
            _, ub = spec(net, lo, hi, b, C, opts)
            assert float(ub[0, 0]) >= sol.objective - 1e-6, (method, precision)


def test_cuda_request_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from fkdverify.errors import InputError

    with pytest.raises(InputError, match="no CUDA device"):
        BoundOptions(device="cuda")


def test_alpha_with_rows_that_reach_no_unstable_relu(tmp_path):
    """Zero rows (or rows of the other network in a product) leave nothing to optimise."""
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 16, 16, 4], seed=3))
    _, lo, hi = _boxes(net, 2, 0.3, 3)
    opts = BoundOptions(method="alpha-crown")
    b = propagate(net, lo, hi, opts)
    lb, ub = alpha_spec_bounds_batch(net, lo, hi, b, np.zeros((3, 4)), opts)
    assert torch.all(lb <= 0) and torch.all(ub >= 0) and torch.all(ub - lb < 1e-6)
