"""Training losses as small pure functions of logits (B, K). Each returns the batch mean.

KL(p || q) below is sum_k p_k (log p_k - log q_k) with p the target (teacher) distribution;
softmax(z / T) is written p(z; T)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl(target_logits, logits, temperature: float = 1.0) -> torch.Tensor:
    """KL(p(target; T) || p(logits; T)), batch mean."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(target_logits / t, 1),
                    reduction="batchmean")  # fmt: skip


def kd_loss(zs, zt, y, temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals, Dean 2015, "Distilling the knowledge in a
    neural network"): alpha T^2 KL(p(z_T; T) || p(z_S; T)) + (1 - alpha) CE(z_S, y).
    T^2 keeps the soft term's gradient scale independent of T. Defaults: the usual T = 4,
    alpha = 0.9."""
    return alpha * temperature**2 * kl(zt, zs, temperature) + (1 - alpha) * F.cross_entropy(zs, y)


def ard_loss(zs_adv, zs, zt, y, temperature: float = 30.0, alpha: float = 1.0):
    """Adversarially robust distillation (Goldblum et al., AAAI 2020):
    alpha T^2 KL(p(T(x); T) || p(S(x_adv); T)) + (1 - alpha) CE(S(x), y), with x_adv maximising
    the KL term in the ball. Defaults T = 30, alpha = 1 (the authors' CIFAR-10 setting)."""
    soft = alpha * temperature**2 * kl(zt, zs_adv, temperature)
    return soft + (1 - alpha) * F.cross_entropy(zs, y)


def rslad_loss(zs_adv, zs, zt, adv_weight: float = 5 / 6):
    """Robust soft label adversarial distillation (Zi et al., ICCV 2021):
    5/6 KL(p(T(x)) || p(S(x_adv))) + 1/6 KL(p(T(x)) || p(S(x))); the teacher's clean soft
    labels replace hard labels everywhere, x_adv maximises KL(p(T(x)) || p(S(x')))."""
    return adv_weight * kl(zt, zs_adv) + (1 - adv_weight) * kl(zt, zs)


def iad_loss(zs_adv, zs, zt, pt_adv_y, beta: float = 0.1, temperature: float = 1.0):
    """Introspective adversarial distillation (Zhu et al., ICLR 2022): trust the teacher on
    x_adv only as much as it is right there. With a_i = p_T(x_adv)_y ** beta:
    T^2 KL(p(T(x); T) || p(S(x_adv); T)) + mean_i (1 - a_i) KL(p(S(x)) || p(S(x_adv)))_i,
    the second term making the student introspect (match its own clean output). x_adv
    maximises the student's CE. Defaults beta = 0.1, T = 1 (the authors' code)."""
    teacher = temperature**2 * kl(zt, zs_adv, temperature)
    self_kl = F.kl_div(F.log_softmax(zs_adv, 1), F.softmax(zs, 1), reduction="none").sum(1)
    a = pt_adv_y.detach().clamp(min=0) ** beta
    return teacher + ((1 - a) * self_kl).mean()


def confidence_gap(zt, zs, y) -> torch.Tensor:
    """g = p_T^y - p_S^y per row (the student less confident than the teacher)."""
    idx = y[:, None]
    return (F.softmax(zt, 1).gather(1, idx) - F.softmax(zs, 1).gather(1, idx))[:, 0]


def faithful_loss(zs, zt, y, zs_g, zt_g, delta: float, temperature: float = 4.0,
                  alpha: float = 0.9, match: float = 1.0, hinge: float = 1.0,
                  gap_hi=None, bound: float = 0.0):  # fmt: skip
    """Faithful distillation (DESIGN.md section 4, after Lamb et al. 2023):
    KD(z_S, z_T) on the clean input
    + match * KL(p(T(x_g)) || p(S(x_g)))       the student follows the teacher at x_g,
    + hinge * mean max(0, g(x_g) - delta)       where x_g maximises the gap g in the ball,
    + bound * mean max(0, gap_hi - delta)       optional: a sound upper bound of the gap
    (``gap_hi``, e.g. from IBP) pushed under delta, so that the student is easier to certify."""
    loss = kd_loss(zs, zt, y, temperature, alpha) + match * kl(zt_g, zs_g)
    loss = loss + hinge * F.relu(confidence_gap(zt_g, zs_g, y) - delta).mean()
    if gap_hi is not None and bound > 0:
        loss = loss + bound * F.relu(gap_hi - delta).mean()
    return loss


def certified_loss(z, worst, y, kappa: float) -> torch.Tensor:
    """IBP / CROWN-IBP training (Gowal et al. 2018; Zhang et al. 2020):
    kappa CE(z, y) + (1 - kappa) CE(worst, y), where ``worst`` holds upper bounds of
    z_j - z_y over the ball (0 at j = y): the CE of the worst-case logits."""
    return kappa * F.cross_entropy(z, y) + (1 - kappa) * F.cross_entropy(worst, y)


def mtl_ibp_loss(z_adv, worst, y, ibp_weight: float) -> torch.Tensor:
    """MTL-IBP (De Palma et al., ICLR 2024, "Expressive losses for verified robustness via
    convex combinations"): (1 - a) CE(z(x_adv), y) + a CE(worst, y), ``z_adv`` the logits at
    an adversarial point of the ball, ``worst`` the IBP upper bounds of z_j - z_y (0 at j = y)
    as for ``certified_loss``; a = ``ibp_weight`` trades verifiability for accuracy."""
    a = ibp_weight
    return (1 - a) * F.cross_entropy(z_adv, y) + a * F.cross_entropy(worst, y)


def certified_kd_loss(kd: torch.Tensor, worst, y, kappa: float) -> torch.Tensor:
    """Certified KD (a baseline): kappa KD + (1 - kappa) CE(worst, y), ``kd`` the KD loss on
    the clean input, ``worst`` as for ``certified_loss``."""
    return kappa * kd + (1 - kappa) * F.cross_entropy(worst, y)
