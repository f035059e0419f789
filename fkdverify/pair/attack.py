"""PGD (Madry et al. 2018) on the teacher/student pair: search for a disagreement and for the
largest confidence gap inside the box. Every point returned is only a *candidate*: certify
re-checks it on the original ONNX graphs (DESIGN.md section 2, rule 2)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..words import GapSign


@dataclass(frozen=True)
class AttackOptions:
    steps: int = 100
    restarts: int = 2  # random restarts per objective, besides the start at x
    step_scale: float = 2.5  # step = step_scale * (box half-width) / steps (Madry et al.)
    seed: int = 0
    # the quick first attack (before bounds): steps, from x only, against the likeliest classes
    quick_steps: int = 20
    quick_targets: int = 3


def gap_value(zt: torch.Tensor, zs: torch.Tensor, c: int, sign: str) -> torch.Tensor:
    """g per row: p_T^c - p_S^c (or the other sign, or |.|). zt, zs: (B, K)."""
    d = torch.softmax(zt, 1)[:, c] - torch.softmax(zs, 1)[:, c]
    if sign == GapSign.TEACHER_MINUS_STUDENT:
        return d
    if sign == GapSign.STUDENT_MINUS_TEACHER:
        return -d
    return d.abs()


def _dtype(net: torch.nn.Module) -> torch.dtype:
    """The floating type the module computes in (float64 when it has no parameters)."""
    return next((p.dtype for p in net.parameters()), torch.float64)


def _margin_to(z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """z_k - max_{i != k} z_i per row (positive iff k is the strict argmax)."""
    zk = z.gather(1, k[:, None])[:, 0]
    other = z.scatter(1, k[:, None], float("-inf")).max(1).values
    return zk - other


def _starts(x0, lo, hi, n_random, gen, dtype):
    x0 = torch.as_tensor(x0, dtype=dtype)
    lo_t, hi_t = torch.as_tensor(lo, dtype=dtype), torch.as_tensor(hi, dtype=dtype)
    rnd = lo_t + (hi_t - lo_t) * torch.rand(n_random, len(x0), generator=gen, dtype=dtype)
    return torch.cat([x0[None], rnd]), lo_t, hi_t


def _pgd(f, x, lo, hi, steps, step, deadline: float = math.inf):
    """Ascend the per-row objective f for ``steps`` signed-gradient steps, or until
    ``deadline`` (time.perf_counter()); returns each row's best iterate and value."""
    best_x, best_v = x.clone(), torch.full((len(x),), float("-inf"), dtype=x.dtype)
    for it in range(steps + 1):
        x = x.detach().requires_grad_(True)
        v = f(x)
        better = v.detach() > best_v
        best_v = torch.where(better, v.detach(), best_v)
        best_x[better] = x.detach()[better]
        if it == steps or time.perf_counter() > deadline:
            break
        (g,) = torch.autograd.grad(v.sum(), x)
        x = torch.minimum(torch.maximum(x.detach() + step * g.sign(), lo), hi)
    return best_x, best_v


def attack_disagreement(tnet, snet, x0, lo, hi, c: int, k: int, opts=AttackOptions(),
                        targets=None, pairs=None, deadline: float = math.inf):  # fmt: skip
    """Candidate inputs (M, n) where teacher and student argmaxes differ, best first.

    Objectives: for every class j != c (or j in ``targets``), make the student pick j while
    the teacher keeps c, and the teacher pick j while the student keeps c: maximise
    min(both margins); or, given ``pairs`` [(a, b)], make the teacher pick a and the student
    b (a margin loss on the pair, for disagreements where neither keeps c)."""
    dtype = _dtype(tnet)
    gen = torch.Generator().manual_seed(opts.seed)
    if pairs is None:
        others = [j for j in (range(k) if targets is None else targets) if j != c]
        pairs = [p for j in others for p in ((c, j), (j, c))]
    xs, targets_t, targets_s = [], [], []
    for tt, ss in pairs:
        s, lo_t, hi_t = _starts(x0, lo, hi, opts.restarts, gen, dtype)
        xs.append(s)
        targets_t += [tt] * len(s)
        targets_s += [ss] * len(s)
    x = torch.cat(xs)
    kt, ks = torch.tensor(targets_t), torch.tensor(targets_s)

    def f(xb):
        return torch.minimum(_margin_to(tnet(xb), kt), _margin_to(snet(xb), ks))

    step = opts.step_scale * float(np.max(np.asarray(hi) - np.asarray(lo))) / 2 / opts.steps
    bx, bv = _pgd(f, x, lo_t, hi_t, opts.steps, step, deadline)
    order = torch.argsort(bv, descending=True)
    hit = order[bv[order] > 0]
    return bx[hit].detach().numpy().astype(np.float64)


def likeliest(tnet, snet, x0, c: int, n: int) -> list[int]:
    """The n classes j != c closest to overtaking c at x0 in either network."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(x0), dtype=_dtype(tnet))[None]
        zt, zs = tnet(x)[0], snet(x)[0]
    score = torch.maximum(zt - zt[c], zs - zs[c])
    score[c] = -torch.inf
    return torch.argsort(score, descending=True)[:n].tolist()


def attack_gap(tnet, snet, x0, lo, hi, c: int, sign: str, opts=AttackOptions(),
               deadline: float = math.inf):  # fmt: skip
    """(x_best (n,), g_best) maximising the confidence gap g over the box (PGD stops at
    ``deadline``)."""
    dtype = _dtype(tnet)
    gen = torch.Generator().manual_seed(opts.seed + 1)
    x, lo_t, hi_t = _starts(x0, lo, hi, 2 * opts.restarts + 1, gen, dtype)
    step = opts.step_scale * float(np.max(np.asarray(hi) - np.asarray(lo))) / 2 / opts.steps

    def f(xb):
        return gap_value(tnet(xb), snet(xb), c, sign)

    bx, bv = _pgd(f, x, lo_t, hi_t, opts.steps, step, deadline)
    i = int(torch.argmax(bv))
    return bx[i].detach().numpy().astype(np.float64), float(bv[i])


def attack_robustness(net, x0, lo, hi, c: int, opts=AttackOptions(),
                      deadline: float = math.inf) -> np.ndarray:  # fmt: skip
    """Candidate inputs (M, n) where one network's top class is not c, best first: PGD on
    max_{j != c} z_j - z_c from x0 and ``2 * restarts`` random starts."""
    dtype = _dtype(net)
    gen = torch.Generator().manual_seed(opts.seed + 2)
    x, lo_t, hi_t = _starts(x0, lo, hi, 2 * opts.restarts, gen, dtype)
    kc = torch.full((len(x),), c, dtype=torch.long)
    step = opts.step_scale * float(np.max(np.asarray(hi) - np.asarray(lo))) / 2 / opts.steps

    def f(xb):
        return -_margin_to(net(xb), kc)

    bx, bv = _pgd(f, x, lo_t, hi_t, opts.steps, step, deadline)
    order = torch.argsort(bv, descending=True)
    return bx[order[bv[order] > 0]].detach().numpy().astype(np.float64)
