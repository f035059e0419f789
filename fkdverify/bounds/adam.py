"""Adam (Kingma & Ba 2015) for alpha-CROWN's slopes, as torch.optim.Adam computes it with its
defaults (no weight decay, no amsgrad). Its own few lines because constructing
torch.optim.Adam imports torch._dynamo (1.5 s on a 2-core CPU), which a single ``verify``
process that the bounds decide at once would spend before its first bound."""

from __future__ import annotations

import math

import torch


class Adam:
    """``lr``: one learning rate, or one per parameter."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        lrs = list(lr) if isinstance(lr, list | tuple) else [lr] * len(self.params)
        self.lrs, (self.b1, self.b2), self.eps = lrs, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, m, v, lr in zip(self.params, self.m, self.v, self.lrs, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / math.sqrt(c2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / c1)

    def narrow(self, keep) -> list:
        """Keep the rows ``keep`` (first dimension) of every parameter and of its moments; the
        parameters become new leaves, returned."""
        self.params = [p.detach()[keep].clone().requires_grad_(True) for p in self.params]
        self.m = [m[keep] for m in self.m]
        self.v = [v[keep] for v in self.v]
        return self.params
