"""PGD inner maximisations for training (Madry et al. 2018), batched, inside each sample's
L-inf ball intersected with [0, 1]. Random starts come from a caller-seeded generator so that
training is reproducible and resumable."""

from __future__ import annotations

import torch


def ball(x, eps: float):
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def pgd(objective, x, eps: float, steps: int, gen: torch.Generator, step_scale: float = 2.5):
    """argmax-ish of ``objective`` (x' -> per-row values (B,)) over the balls around x (B, ...).
    Step = step_scale * eps / steps (Madry et al.); start uniform in the ball."""
    if eps <= 0 or steps <= 0:
        return x.detach()
    lo, hi = ball(x, eps)
    step = step_scale * eps / steps
    u = torch.rand(x.shape, generator=gen, dtype=x.dtype)  # on the CPU: same draws anywhere
    xa = lo + (hi - lo) * u.to(x.device)
    for _ in range(steps):
        xa.requires_grad_(True)
        (g,) = torch.autograd.grad(objective(xa).sum(), xa)
        xa = torch.minimum(torch.maximum(xa.detach() + step * g.sign(), lo), hi)
    return xa.detach()
