"""The training bounds that the losses use: the faithful loss's gap bound is a sound upper
bound of the gap (sampled points never exceed it), and certified training leaves fewer
unstable ReLUs than standard training on the same data."""

import numpy as np
import pytest
import torch

from fkdverify.bounds import network_bounds
from fkdverify.data import load_dataset
from fkdverify.net.onnx_import import import_onnx
from fkdverify.train.arch import build, to_network
from fkdverify.train.steps import faithful_gap_bound, teacher_confidence_bound
from fkdverify.train.trainer import train
from tests.train.test_trainer import _opts


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])  # IBP, mixed, CROWN-IBP on the student
def test_faithful_gap_bound_holds_on_sampled_points(beta):
    torch.manual_seed(0)
    shape = (1, 6, 6)
    teacher, student = build("mlp:20,20", shape, 4, None), build("mlp:12", shape, 4, None)
    bound = teacher_confidence_bound(to_network(teacher, shape))
    x = torch.rand(5, *shape)
    y = torch.tensor([0, 1, 2, 3, 0])
    lo, hi = (x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1)
    g_hi = faithful_gap_bound(student, bound, lo, hi, y, beta).detach()
    xs = lo[:, None] + torch.rand(5, 2000, *shape) * (hi - lo)[:, None]
    with torch.no_grad():
        flat = xs.reshape(-1, *shape)
        pt = torch.softmax(teacher(flat), 1).reshape(5, 2000, 4)
        ps = torch.softmax(student(flat), 1).reshape(5, 2000, 4)
    idx = y[:, None, None].expand(-1, 2000, 1)
    gap = (pt.gather(2, idx) - ps.gather(2, idx))[..., 0]
    assert (gap <= g_hi[:, None] + 1e-5).all()
    assert (g_hi < 1.0).any()  # not the trivial bound everywhere
    if beta == 1.0:  # CROWN-IBP's student bound is no looser than IBP's here
        assert (g_hi <= faithful_gap_bound(student, bound, lo, hi, y, 0.0).detach() + 1e-6).all()


def test_certified_training_leaves_fewer_unstable_relus(data, tmp_path):
    nets = {}
    for m in ("standard", "crown-ibp", "mtl-ibp"):
        res = train(_opts(data, tmp_path, method=m, arch="mlp:32,32", epochs=4, train_limit=4000,
                          out=str(tmp_path / f"{m}.onnx")))  # fmt: skip
        nets[m] = import_onnx(res.path)
    ds = load_dataset("mnist", data_dir=str(data))
    counts = dict.fromkeys(nets, 0)
    for i in range(20):
        x = ds.images[i].reshape(-1).astype(np.float64)
        lo, hi = np.clip(x - 0.1, 0, 1), np.clip(x + 0.1, 0, 1)
        for m, net in nets.items():
            counts[m] += network_bounds(net, lo, hi, "crown").n_unstable()
    assert counts["crown-ibp"] < 0.75 * counts["standard"], counts  # 357 vs 675 measured
    assert counts["mtl-ibp"] < 0.75 * counts["standard"], counts  # 329 measured
