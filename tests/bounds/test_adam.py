"""bounds.adam.Adam computes what torch.optim.Adam computes with its defaults."""

import torch

from fkdverify.bounds.adam import Adam


def test_same_iterates_as_torch_adam():
    torch.manual_seed(0)
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours, theirs = Adam([b], lr=0.25), torch.optim.Adam([a], lr=0.25)
    for _ in range(30):
        for p, opt in ((a, theirs), (b, ours)):
            opt.zero_grad()
            (p**3).sin().sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
