"""MILPs of the pair over the product network (DESIGN.md Appendix A): the joint relaxation of
the confidence gap, and the one-hot disagreement model.

The joint gap relaxation:

For g = p_U^c - p_L^c ("upper" network U pushed up, "lower" network L pushed down), with
p = h(s), h(s) = 1/(1+s), s = sum_j exp(-m_j), m_j = z_c - z_j in [l_j, u_j]:

* U: E_j >= tangents of exp(-m_U^j) (exp is convex: tangents lie below), s_U = sum E_j,
  q_U <= the piecewise-linear interpolation of h on breakpoints over [s_lo, s_hi] (h is convex:
  it lies below every chord).
* L: F_j <= the interpolation of exp(-m_L^j) on breakpoints over [l_j, u_j], s_L = sum F_j,
  r_L >= tangents of h.
* maximise q_U - r_L. The true values at every input satisfy all rows, so the optimum (or the
  solver's dual bound) is a sound upper bound on g; the optimiser's x is a real input.
With two breakpoints an interpolation is one chord (no binaries); more breakpoints use the
incremental formulation (binaries y_k with d_{k+1} <= y_k <= d_k). Each refinement adds tangent
points and breakpoints at the incumbent, so the relaxation tightens where the optimum is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..bounds import Bounds
from ..milp.encode import encode_network
from ..milp.model import Expr, MilpModel, ModelBuilder
from ..milp.properties import diff, encode
from ..net.graph import Network
from .heads import pair_index

MARGIN_RANGE = 30.0  # tangent points beyond |m| = 30 add nothing (exp(-30) ~ 1e-13)
LOWEST_MARGIN = -10.0  # below this, s = sum exp(-m) can exceed ~2e5: rows too badly scaled


@dataclass(frozen=True)
class GapTerms:
    """Margin intervals (l, u) of each network for j != c, and tangent points."""

    up_l: np.ndarray
    up_u: np.ndarray
    lo_l: np.ndarray
    lo_u: np.ndarray
    exp_points: tuple  # per j: tangent points of exp(-m) for the upper network
    h_points: tuple  # tangent points of h for the lower network
    exp_breaks: tuple  # per j: interpolation breakpoints of exp(-m) for the lower network
    h_breaks: np.ndarray  # interpolation breakpoints of h for the upper network


def usable(t: GapTerms) -> bool:
    """False when a margin range would need coefficients beyond safe solver scaling."""
    return bool(np.all(t.up_l > LOWEST_MARGIN) and np.all(t.lo_l > LOWEST_MARGIN))


def s_range(l: np.ndarray, u: np.ndarray) -> tuple[float, float]:
    return float(np.exp(-u).sum()), float(np.exp(-l).sum())


def initial_terms(up_l, up_u, lo_l, lo_u) -> GapTerms:
    pts = tuple(np.unique(np.clip([a, (a + b) / 2, b], -MARGIN_RANGE, MARGIN_RANGE))
                for a, b in zip(up_l, up_u, strict=True))  # fmt: skip
    s_lo, s_hi = s_range(lo_l, lo_u)
    hp = tuple(np.unique([s_lo, (s_lo + s_hi) / 2, s_hi]))
    eb = tuple(np.array([a, b]) for a, b in zip(lo_l, lo_u, strict=True))
    return GapTerms(up_l, up_u, lo_l, lo_u, pts, hp, eb, np.array(s_range(up_l, up_u)))


def h(s):
    return 1.0 / (1.0 + s)


def joint_gap_model(
    up: Network,
    low: Network,
    bu: Bounds,
    bl: Bounds,
    lo,
    hi,
    c: int,
    t: GapTerms,
    at_least: float | None = None,
) -> tuple[MilpModel, np.ndarray]:
    """The Appendix A MILP: maximise q_U - r_L; or, with ``at_least``, the feasibility
    question q_U - r_L >= at_least (infeasible proves g < at_least everywhere).
    Returns (model, input variable ids)."""
    b, x, zu = encode(up, bu, lo, hi)
    zl = encode_network(b, low, b.var_expr(x), bl, (low.output,))[low.output]
    k = up.n_classes
    others = [j for j in range(k) if j != c]
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
        pl = pwl_upper(b, diff(zl, c, j, n), t.exp_breaks[i], lambda m: np.exp(-m))
        n = b.n
        b.add_rows(Expr(row({F[i]: 1.0}).M - pl.widen(n), -pl.k), -np.inf, 0.0)
    n = b.n
    b.add_rows(row({**{e: 1.0 for e in E}, sU[0]: -1.0}), 0.0, 0.0)
    b.add_rows(row({**{f: 1.0 for f in F}, sL[0]: -1.0}), 0.0, 0.0)
    pq = pwl_upper(b, b.var_expr(sU), t.h_breaks, h)
    n = b.n
    b.add_rows(Expr(row({q[0]: 1.0}).M - pq.widen(n), -pq.k), -np.inf, 0.0)
    for p in t.h_points:  # r >= h(p) + h'(p) (s - p), h'(p) = -h(p)^2
        d = -(h(p) ** 2)
        b.add_rows(row({r[0]: 1.0, sL[0]: -d}), h(p) - d * p, np.inf)
    gap = row({q[0]: 1.0, r[0]: -1.0})
    if at_least is not None:
        b.add_rows(gap, at_least, np.inf)
        return b.build(None), x
    model = b.build(gap, maximize=True)
    return model, x


def pwl_upper(b: ModelBuilder, v: Expr, breaks: np.ndarray, f) -> Expr:
    """An Expr P with P >= f(v) for every v in [breaks[0], breaks[-1]], f convex: the
    interpolation of f on the breakpoints (incremental formulation, Dantzig 1960)."""
    p = np.unique(breaks)
    fp = f(p)
    if len(p) < 2 or p[-1] - p[0] < 1e-12:
        return Expr(sp.csr_matrix((1, b.n)), np.array([float(fp.max())]))
    K = len(p) - 1
    d = b.add_vars(np.zeros(K), np.ones(K))
    if K > 1:
        y = b.add_vars(np.zeros(K - 1), np.ones(K - 1), integer=True)
        D, Y = b.var_expr(d).widen(b.n), b.var_expr(y).widen(b.n)
        b.add_rows(Expr(D[1:] - Y, np.zeros(K - 1)), -np.inf, 0.0)  # d_{k+1} <= y_k
        b.add_rows(Expr(Y - D[:-1], np.zeros(K - 1)), -np.inf, 0.0)  # y_k <= d_k
    D = b.var_expr(d).widen(b.n)
    # v = p_0 + sum_k d_k (p_k - p_{k-1})
    step = sp.csr_matrix(np.diff(p)[None, :]) @ D
    b.add_rows(Expr(v.widen(b.n) - step, v.k - p[0]), 0.0, 0.0)
    return Expr(sp.csr_matrix(np.diff(fp)[None, :]) @ D, np.array([fp[0]]))


def refine(t: GapTerms, m_up: np.ndarray, s_low: float, m_low: np.ndarray, s_up: float):
    """Add tangent points and breakpoints at an incumbent: its upper-network margins m_up and
    s_up, and its lower-network margins m_low and s_low."""
    pts = tuple(np.unique(np.append(p, np.clip(m, -MARGIN_RANGE, MARGIN_RANGE)))
                for p, m in zip(t.exp_points, m_up, strict=True))  # fmt: skip
    s_lo, s_hi = s_range(t.lo_l, t.lo_u)
    hp = tuple(np.unique(np.append(t.h_points, np.clip(s_low, s_lo, s_hi))))
    eb = tuple(
        np.unique(np.append(br, np.clip(m, a, b_)))
        for br, m, a, b_ in zip(t.exp_breaks, m_low, t.lo_l, t.lo_u, strict=True)
    )
    su_lo, su_hi = s_range(t.up_l, t.up_u)
    hb = np.unique(np.append(t.h_breaks, np.clip(s_up, su_lo, su_hi)))
    return GapTerms(t.up_l, t.up_u, t.lo_l, t.lo_u, pts, hp, eb, hb)


def disagreement(
    teacher: Network,
    student: Network,
    bt: Bounds,
    bs: Bounds,
    lo,
    hi,
    cand_t: list[int],
    cand_s: list[int],
    pair_ub_t: np.ndarray,
    pair_ub_s: np.ndarray,
    t: float,
) -> tuple[MilpModel, np.ndarray]:
    """One MILP over the product (shared input): teacher's argmax k != student's argmax k'.

    One-hot a_k (teacher), b_k (student); z_k - z_j >= t - M_kj (1 - a_k) with
    M_kj = ub(z_j - z_k) + t from the pairwise bounds ``pair_ub_*`` (rows of pair_matrix).
    With t < 0 it relaxes the set of disagreements (infeasible proves agreement); with t > 0
    it asks for a strict one (a candidate counterexample)."""
    b, x, zt = encode(teacher, bt, lo, hi)
    zs = encode_network(b, student, b.var_expr(x), bs, (student.output,))[student.output]
    k = teacher.n_classes
    a = b.add_vars(np.zeros(len(cand_t)), np.ones(len(cand_t)), integer=True)
    s = b.add_vars(np.zeros(len(cand_s)), np.ones(len(cand_s)), integer=True)
    n = b.n
    one = lambda ids: Expr(  # noqa: E731
        sp.csr_matrix((np.ones(len(ids)), (np.zeros(len(ids)), ids)), (1, n)), np.zeros(1)
    )
    b.add_rows(one(a), 1.0, 1.0)
    b.add_rows(one(s), 1.0, 1.0)
    for ia, kk in enumerate(cand_t):
        if kk in cand_s:
            b.add_rows(one([a[ia], s[cand_s.index(kk)]]), -np.inf, 1.0)
    for z, cand, var, ub in ((zt, cand_t, a, pair_ub_t), (zs, cand_s, s, pair_ub_s)):
        for iv, kk in enumerate(cand):
            for j in range(k):
                if j == kk:
                    continue
                M = ub[pair_index(k, j, kk)] + t
                if M <= 0:
                    continue  # z_k - z_j >= t holds everywhere in the box
                e = diff(z, kk, j, n)
                e = Expr(e.M - M * sp.csr_matrix(([1.0], ([0], [var[iv]])), (1, n)), e.k)
                b.add_rows(e, t - M, np.inf)
    return b.build(None), x
