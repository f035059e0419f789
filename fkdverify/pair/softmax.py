"""Sound bounds on a softmax probability from bounds on logit margins (DESIGN.md section 3a).

p^c = 1 / (1 + sum_{j != c} exp(-m_j)) with m_j = z_c - z_j is increasing in every m_j, so
margin intervals [l_j, u_j] give p^c in [p(l), p(u)]."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

_OUT = 1e-12  # outward rounding allowance on a probability


def confidence(margins: np.ndarray) -> float:
    """p^c from the margins m_j (j != c), computed stably as sigmoid(-logsumexp(-m))."""
    m = np.asarray(margins, np.float64)
    return float(expit(-logsumexp(-m))) if len(m) else 1.0


def confidence_bounds(m_lo: np.ndarray, m_hi: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bounds of p^c over the margin box, widened outward for rounding."""
    return max(confidence(m_lo) - _OUT, 0.0), min(confidence(m_hi) + _OUT, 1.0)


# ------------------------------------------------- linear bounds of p^c over a margin box
# Used to bound the *joint* gap p_T^c - p_S^c through the product network: a linear upper
# bound of one network's confidence minus a linear lower bound of the other's is a linear
# function of the product's outputs, which CROWN bounds over the input box in one pass.
_BIG = 1e100  # a margin range this wide carries no information: fall back to constants


def _exp_neg(m: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-np.asarray(m, np.float64))


def upper_line(m_lo, m_hi, t) -> tuple[np.ndarray, float]:
    """(w, b) with p^c(m) <= w @ m + b for every m in the box [m_lo, m_hi]; w >= 0.

    s = sum_j exp(-m_j) >= its tangents at t (exp is convex), and h(s) = 1/(1+s) lies below its
    chord over [s_lo, s_hi] (h convex), whose slope k = -1/((1+s_lo)(1+s_hi)) is <= 0, so
    p = h(s) <= h(s_lo) + k (tangent(m) - s_lo). Tight where m is near t."""
    m_lo, m_hi = np.asarray(m_lo, np.float64), np.asarray(m_hi, np.float64)
    t = np.clip(np.asarray(t, np.float64), m_lo, m_hi)
    s_lo, s_hi = _exp_neg(m_hi).sum(), _exp_neg(m_lo).sum()
    h_lo = 1.0 / (1.0 + s_lo)
    if not s_hi < _BIG:
        return np.zeros_like(m_lo), h_lo + _OUT
    k = -1.0 / ((1.0 + s_lo) * (1.0 + s_hi))
    et = _exp_neg(t)
    w = -k * et
    b = h_lo - k * s_lo + k * float((et * (1.0 + t)).sum())
    reach = np.maximum(np.abs(m_lo), np.abs(m_hi))
    slack = 1e-10 * (1.0 + h_lo + abs(k) * (s_lo + float((et * (1.0 + np.abs(t) + reach)).sum())))
    return w, b + slack + _OUT


def lower_line(m_lo, m_hi, t) -> tuple[np.ndarray, float]:
    """(w, b) with p^c(m) >= w @ m + b for every m in the box [m_lo, m_hi]; w >= 0.

    exp(-m_j) lies below its chord over [m_lo_j, m_hi_j], so s <= beta + gamma @ m; h lies
    above its tangent at s0 = s(t) with slope h'(s0) < 0, so p >= h(s0) + h'(s0) (s_up(m) - s0).
    A range too wide for floating point gives the constant bound p >= 0."""
    m_lo, m_hi = np.asarray(m_lo, np.float64), np.asarray(m_hi, np.float64)
    t = np.clip(np.asarray(t, np.float64), m_lo, m_hi)
    e_lo, e_hi = _exp_neg(m_hi), _exp_neg(m_lo)  # exp(-m) at the ends: e_hi >= e_lo
    if not e_hi.sum() < _BIG:
        return np.zeros_like(m_lo), 0.0
    width = m_hi - m_lo
    flat = width <= 1e-9
    gamma = np.where(flat, 0.0, -(e_hi - e_lo) / np.where(flat, 1.0, width))
    beta = np.where(flat, e_hi, e_lo - gamma * m_hi)
    s0 = float(_exp_neg(t).sum())
    d = -1.0 / (1.0 + s0) ** 2
    w = d * gamma
    b = 1.0 / (1.0 + s0) - d * s0 + d * float(beta.sum())
    reach = np.maximum(np.abs(m_lo), np.abs(m_hi))
    slack = 1e-10 * (
        1.0 + abs(d) * (s0 + float(np.abs(beta).sum() + (np.abs(gamma) * reach).sum()))
    )
    return w, b - slack - _OUT


# ------------------------------------ the gap from bounds on the difference of the margins
def ratio_gap(k: float, s_lo: float, s_hi: float) -> tuple[float, float]:
    """(inf, sup) of g(s) = 1/(1 + k s) - 1/(1 + s) over s in [s_lo, s_hi] (k > 0, s >= 0).

    g has one critical point, s = 1/sqrt(k) (a maximum for k < 1, a minimum for k > 1), so
    its extremes lie at the ends or there. Widened outward for rounding."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        pts = np.array([s_lo, s_hi, np.clip(1.0 / np.sqrt(k), s_lo, s_hi)], np.float64)
        ks = np.where(np.isinf(pts), np.inf, k * pts)
        g = 1.0 / (1.0 + ks) - 1.0 / (1.0 + pts)
    if not np.isfinite(g).all():
        return -1.0, 1.0
    return float(g.min()) - _OUT, float(g.max()) + _OUT


def shift_gap(e_lo: np.ndarray, e_hi: np.ndarray, s_lo: float, s_hi: float,
              up: bool) -> float:  # fmt: skip
    """Upper bound of p_A - p_B (``up``) or p_B - p_A where p = 1/(1 + sum_j exp(u_j)),
    u^A_j = u^B_j + e_j with e_j in [e_lo_j, e_hi_j], and s = sum_j exp(u^B_j) in
    [s_lo, s_hi]: sum_j exp(u^A_j) lies between exp(min e_lo) s and exp(max e_hi) s, and p is
    decreasing in that sum, so the bound is an extreme of ``ratio_gap`` over s."""
    with np.errstate(over="ignore"):
        k = float(np.exp(np.min(e_lo) if up else np.max(e_hi)))
    if not 0.0 < k < np.inf:
        return 1.0
    lo, hi = ratio_gap(k, s_lo, s_hi)
    return min(hi if up else -lo, 1.0)
