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


def test_per_parameter_rates_and_narrowing_match_torch_adam_on_the_kept_rows():
    """Two parameters with their own rates; after 10 steps rows 1 and 3 are kept (with their
    moments): the next steps equal torch's Adam run on those rows from the start."""
    torch.manual_seed(1)
    x0, y0 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)

    def loss(x, y):
        return (x**3).sin().sum() + (y * y.cos()).sum()

    x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    ours = Adam([x, y], [0.1, 0.03])
    keep = torch.tensor([False, True, False, True])
    xr, yr = x0[keep].clone().requires_grad_(True), y0[keep].clone().requires_grad_(True)
    theirs = torch.optim.Adam([{"params": [xr], "lr": 0.1}, {"params": [yr], "lr": 0.03}])
    for step in range(20):
        if step == 10:
            x, y = ours.narrow(keep)
        for opt, (p, q) in ((ours, (x, y)), (theirs, (xr, yr))):
            opt.zero_grad()
            loss(p, q).backward()
            opt.step()
    assert x.shape == (2, 3) and torch.allclose(x, xr, atol=1e-12, rtol=0)
    assert torch.allclose(y, yr, atol=1e-12, rtol=0)
