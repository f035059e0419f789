"""Joint MILP relaxation of the confidence gap over the product network (DESIGN.md Appendix A).

For g = p_U^c - p_L^c ("upper" network U pushed up, "lower" network L pushed down), with
p = h(s), h(s) = 1/(1+s), s = sum_j exp(-m_j), m_j = z_c - z_j in [l_j, u_j]:

* U: E_j >= tangents of exp(-m_U^j) (exp is convex: tangents lie below), s_U = sum E_j,
  q_U <= chord of h over [s_lo, s_hi] (h is convex: it lies below its chord).
* L: F_j <= chord of exp(-m_L^j) over [l_j, u_j], s_L = sum F_j, r_L >= tangents of h.
* maximise q_U - r_L. The true values at every input satisfy all rows, so the optimum (or the
  solver's dual bound) is a sound upper bound on g; the optimiser's x is a real input.
Tangent points are added around each incumbent to tighten the relaxation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..bounds import Bounds
from ..net.graph import Network
from .encode import encode_network
from .model import Expr, MilpModel
from .properties import diff, encode

MARGIN_RANGE = 30.0  # beyond |m| = 30, exp(-m) spans too many orders for a safe MILP row


@dataclass(frozen=True)
class GapTerms:
    """Margin intervals (l, u) of each network for j != c, and tangent points."""

    up_l: np.ndarray
    up_u: np.ndarray
    lo_l: np.ndarray
    lo_u: np.ndarray
    exp_points: tuple  # per j: tangent points of exp(-m) for the upper network
    h_points: tuple  # tangent points of h for the lower network


def usable(t: GapTerms) -> bool:
    """False when a margin range would need coefficients beyond safe solver scaling."""
    return bool(np.all(t.up_l > -MARGIN_RANGE) and np.all(t.lo_l > -MARGIN_RANGE))


def s_range(l: np.ndarray, u: np.ndarray) -> tuple[float, float]:
    return float(np.exp(-u).sum()), float(np.exp(-l).sum())


def initial_terms(up_l, up_u, lo_l, lo_u) -> GapTerms:
    pts = tuple(np.unique(np.clip([a, (a + b) / 2, b], -MARGIN_RANGE, MARGIN_RANGE))
                for a, b in zip(up_l, up_u, strict=True))  # fmt: skip
    s_lo, s_hi = s_range(lo_l, lo_u)
    hp = tuple(np.unique([s_lo, (s_lo + s_hi) / 2, s_hi]))
    return GapTerms(up_l, up_u, lo_l, lo_u, pts, hp)


def h(s):
    return 1.0 / (1.0 + s)


def joint_gap_model(
    up: Network, low: Network, bu: Bounds, bl: Bounds, lo, hi, c: int, t: GapTerms
) -> tuple[MilpModel, np.ndarray, dict]:
    """The Appendix A MILP. Returns (model, input ids, ids of s_U, s_L, margins' rows)."""
    b, x, zu = encode(up, bu, lo, hi)
    zl = encode_network(b, low, b.var_expr(x), bl, (low.output,))[low.output]
    k = up.n_classes
    others = [j for j in range(k) if j != c]
    n_j = len(others)
    E = b.add_vars(np.exp(-t.up_u), np.exp(-t.up_l))
    F = b.add_vars(np.exp(-t.lo_u), np.exp(-t.lo_l))
    su_lo, su_hi = s_range(t.up_l, t.up_u)
    sl_lo, sl_hi = s_range(t.lo_l, t.lo_u)
    sU = b.add_vars(su_lo, su_hi)
    sL = b.add_vars(sl_lo, sl_hi)
    q = b.add_vars(h(su_hi), h(su_lo))
    r = b.add_vars(h(sl_hi), h(sl_lo))
    n = b.n

    def row(coefs: dict, const=0.0) -> Expr:
        idx = list(coefs)
        M = sp.csr_matrix((list(coefs.values()), ([0] * len(idx), idx)), (1, n))
        return Expr(M, np.array([const]))

    def with_margin(mexpr: Expr, coefs: dict, scale: float) -> Expr:
        e = row(coefs)
        return Expr(e.M + scale * mexpr.widen(n), e.k + scale * mexpr.k)

    for i, j in enumerate(others):
        mu = diff(zu, c, j, n)  # m_U^j
        for p in t.exp_points[i]:
            # E_j >= e^-p - e^-p (m - p)  <=>  E_j + e^-p m >= e^-p (1 + p)
            ep = float(np.exp(-p))
            b.add_rows(with_margin(mu, {E[i]: 1.0}, ep), ep * (1 + p), np.inf)
        ml = diff(zl, c, j, n)  # m_L^j
        a, bb = t.lo_l[i], t.lo_u[i]
        if bb - a > 1e-9:
            # F_j <= e^-a + (e^-b - e^-a)/(b - a) (m - a)
            slope = (np.exp(-bb) - np.exp(-a)) / (bb - a)
            b.add_rows(with_margin(ml, {F[i]: 1.0}, -slope), -np.inf, np.exp(-a) - slope * a)
    b.add_rows(row({**{e: 1.0 for e in E}, sU[0]: -1.0}), 0.0, 0.0)
    b.add_rows(row({**{f: 1.0 for f in F}, sL[0]: -1.0}), 0.0, 0.0)
    if su_hi - su_lo > 1e-12:  # q <= h(s_lo) + slope (s - s_lo)
        slope = (h(su_hi) - h(su_lo)) / (su_hi - su_lo)
        b.add_rows(row({q[0]: 1.0, sU[0]: -slope}), -np.inf, h(su_lo) - slope * su_lo)
    for p in t.h_points:  # r >= h(p) + h'(p) (s - p), h'(p) = -h(p)^2
        d = -(h(p) ** 2)
        b.add_rows(row({r[0]: 1.0, sL[0]: -d}), h(p) - d * p, np.inf)
    model = b.build(row({q[0]: 1.0, r[0]: -1.0}), maximize=True)
    return model, x, {"E": E, "sL": sL[0], "n_j": n_j}


def refine(t: GapTerms, m_up: np.ndarray, s_low: float) -> GapTerms:
    """Add tangent points at an incumbent's upper-network margins and lower-network s."""
    pts = tuple(np.unique(np.append(p, np.clip(m, -MARGIN_RANGE, MARGIN_RANGE)))
                for p, m in zip(t.exp_points, m_up, strict=True))  # fmt: skip
    s_lo, s_hi = s_range(t.lo_l, t.lo_u)
    hp = tuple(np.unique(np.append(t.h_points, np.clip(s_low, s_lo, s_hi))))
    return GapTerms(t.up_l, t.up_u, t.lo_l, t.lo_u, pts, hp)
