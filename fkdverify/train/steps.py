"""One training step's loss for each method: teachers (standard, PGD, IBP, CROWN-IBP,
MTL-IBP) and students (KD, ARD, RSLAD, IAD, faithful, certified KD). Each function maps a
batch to (loss, logits on the clean batch); the attack inside uses the step's own generator
(reproducible, resumable)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import losses as L
from .adversary import ball, pgd
from .ibp import margin_lower_bounds, worst_logits

# teachers whose epsilon ramps up (Batch.eps, Batch.progress)
RAMPED_TEACHERS = ("ibp", "crown-ibp", "mtl-ibp")
# students whose loss has a bound term: its epsilon ramps up (Batch.progress), PGD's does not
RAMPED_STUDENTS = ("certified-kd",)


@dataclass
class Batch:
    x: torch.Tensor  # (B, C, H, W) in [0, 1]
    y: torch.Tensor  # (B,)
    gen: torch.Generator
    eps: float  # the epsilon of this step (ramped for certified teachers)
    progress: float  # fraction of the ramp done, in [0, 1] (students: of their bound term)


def _rows_kl(target, logits, t=1.0):
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(target / t, 1), reduction="none").sum(1)


def _ce_pgd(model, x, y, eps: float, steps: int, gen):
    """PGD on the model's own cross-entropy (Madry et al.): the adversarial point of each row."""
    return pgd(lambda v: F.cross_entropy(model(v), y, reduction="none"), x, eps, steps, gen)


def teacher_step(method: str, model, b: Batch, opts):
    z = model(b.x)
    if method == "standard":
        return F.cross_entropy(z, b.y), z
    if method == "pgd":  # Madry et al. 2018: train on the worst point found by PGD
        xa = _ce_pgd(model, b.x, b.y, b.eps, opts.pgd_steps, b.gen)
        return F.cross_entropy(model(xa), b.y), z
    lo, hi = ball(b.x, b.eps)
    if method == "mtl-ibp":  # the attack and the IBP term both at the ramped epsilon
        xa = _ce_pgd(model, b.x, b.y, b.eps, opts.pgd_steps, b.gen)
        worst = worst_logits(model, lo, hi, b.y)
        return L.mtl_ibp_loss(model(xa), worst, b.y, opts.ibp_weight), z
    # IBP / CROWN-IBP with the epsilon ramp; kappa 1 -> 0.5 and beta 1 -> 0 along it
    beta = (1.0 - b.progress) if method == "crown-ibp" else 0.0
    worst = worst_logits(model, lo, hi, b.y, beta)
    return L.certified_loss(z, worst, b.y, kappa=1.0 - 0.5 * b.progress), z


def student_step(method: str, model, teacher, b: Batch, opts, teacher_bounds=None):
    x, y = b.x, b.y
    with torch.no_grad():
        zt = teacher(x)
    zs = model(x)
    steps = opts.pgd_steps
    if method == "kd":
        return L.kd_loss(zs, zt, y, opts.temp("kd"), opts.weight("kd")), zs
    if method == "certified-kd":  # the baseline that separates certified training from
        # faithful distillation: KD on the clean input + CROWN-IBP on the student alone
        lo, hi = ball(x, b.eps * b.progress)
        worst = worst_logits(model, lo, hi, y, 1.0 - b.progress)
        kd = L.kd_loss(zs, zt, y, opts.temp("kd"), opts.weight("kd"))
        return L.certified_kd_loss(kd, worst, y, kappa=1.0 - 0.5 * b.progress), zs
    if method == "ard":
        t = opts.temp("ard")
        xa = pgd(lambda v: _rows_kl(zt, model(v), t), x, b.eps, steps, b.gen)
        return L.ard_loss(model(xa), zs, zt, y, t, opts.weight("ard")), zs
    if method == "rslad":
        xa = pgd(lambda v: _rows_kl(zt, model(v)), x, b.eps, steps, b.gen)
        return L.rslad_loss(model(xa), zs, zt), zs
    if method == "iad":
        xa = _ce_pgd(model, x, y, b.eps, steps, b.gen)
        with torch.no_grad():
            pt = F.softmax(teacher(xa), 1).gather(1, y[:, None])[:, 0]
        return L.iad_loss(model(xa), zs, zt, pt, opts.iad_beta, opts.temp("iad")), zs
    if method == "faithful":
        xg = pgd(lambda v: L.confidence_gap(teacher(v), model(v), y), x, b.eps, steps, b.gen)
        with torch.no_grad():
            zt_g = teacher(xg)
        gap_hi = None
        if opts.bound_weight > 0:  # the sound gap term, its epsilon ramped up
            lo, hi = ball(x, b.eps * b.progress)
            beta = 1.0 - b.progress if opts.student_bound == "crown-ibp" else 0.0
            gap_hi = faithful_gap_bound(model, teacher_bounds, lo, hi, y, beta)
        loss = L.faithful_loss(zs, zt, y, model(xg), zt_g, opts.delta, opts.temp("faithful"),
                               opts.weight("faithful"), hinge=opts.hinge, gap_hi=gap_hi,
                               bound=opts.bound_weight)  # fmt: skip
        return loss, zs
    raise ValueError(method)


def faithful_gap_bound(model, teacher_bounds, lo, hi, y, beta: float = 0.0) -> torch.Tensor:
    """Sound upper bounds (B,) of g = p_T^y - p_S^y over the boxes: the teacher's upper bound
    of p_T^y (``teacher_confidence_bound``) minus the student's lower bound of p_S^y from
    beta * CROWN-IBP + (1 - beta) * IBP margin bounds (``ibp.worst_logits``), differentiable
    in the student's parameters."""
    s_lo = margin_lower_bounds(model, lo, hi, y, beta)
    return teacher_bounds(lo, hi, y) - torch.sigmoid(-torch.logsumexp(-s_lo, 1))


def teacher_confidence_bound(teacher_net, device: str = "cpu"):
    """A function (lo, hi, y) -> sound upper bounds (B,) of the teacher's p^y over the boxes,
    from the project's CROWN through the (fixed) teacher network."""
    from ..bounds.propagate import propagate, spec_bounds_batch
    from ..bounds.types import BoundOptions

    k = teacher_net.n_classes
    eng = BoundOptions(method="crown", precision="float32", device=device)

    def bound(lo, hi, y):
        flat_lo = lo.reshape(len(lo), -1).detach()
        flat_hi = hi.reshape(len(hi), -1).detach()
        rows = np.zeros((len(y), k - 1, k), np.float32)
        for i, c in enumerate(y.tolist()):  # m_j = z_c - z_j for j != c
            others = [j for j in range(k) if j != c]
            rows[i, :, c] = 1.0
            rows[i, np.arange(k - 1), others] = -1.0
        pb = propagate(teacher_net, flat_lo, flat_hi, eng)
        _, up = spec_bounds_batch(teacher_net, flat_lo, flat_hi, pb, torch.from_numpy(rows), eng,
                                  upper_only=True)  # fmt: skip
        return torch.sigmoid(-torch.logsumexp(-up.float(), 1))

    return bound
