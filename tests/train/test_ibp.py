"""Differentiable training bounds: sound on samples, and a gradient flows."""

import pytest
import torch

from fkdverify.train.arch import build
from fkdverify.train.ibp import margin_lower_bounds, worst_logits


@pytest.mark.parametrize("arch,shape,norm", [
    ("mlp:20,20", (1, 6, 6), None),
    ("cnn-tiny", (3, 12, 12), ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))),
])  # fmt: skip
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_worst_logits_bound_every_sample(arch, shape, norm, beta):
    torch.manual_seed(0)
    model = build(arch, shape, 5, norm).double()
    x = torch.rand(4, *shape, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    lo, hi = (x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1)
    worst = worst_logits(model, lo, hi, y, beta)
    xs = lo[:, None] + torch.rand(4, 500, *shape, dtype=torch.float64) * (hi - lo)[:, None]
    with torch.no_grad():
        z = model(xs.reshape(-1, *shape)).reshape(4, 500, 5)
    diff = z - z.gather(2, y[:, None, None].expand(-1, 500, 1))
    assert (diff <= worst[:, None] + 1e-9).all()
    assert torch.allclose(worst.gather(1, y[:, None]), torch.zeros(4, 1, dtype=torch.float64))
    m = margin_lower_bounds(model, lo, hi, y, beta)
    assert m.shape == (4, 4)
    m.sum().backward()
    assert model[-1].weight.grad is not None
