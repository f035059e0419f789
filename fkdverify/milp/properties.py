"""MILP formulations of the questions certify asks (DESIGN.md section 3 and Appendix A)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..bounds import Bounds
from ..net.graph import Network
from .encode import encode_network
from .model import Expr, MilpModel, ModelBuilder


def pair_matrix(k: int) -> np.ndarray:
    """Rows e_a - e_b for all ordered pairs a != b, in order (a, b) = row a*(k-1) + ..."""
    rows = []
    for a in range(k):
        for b_ in range(k):
            if a != b_:
                r = np.zeros(k)
                r[a], r[b_] = 1.0, -1.0
                rows.append(r)
    return np.array(rows)


def pair_index(k: int, a: int, b: int) -> int:
    return a * (k - 1) + (b if b < a else b - 1)


def encode(net: Network, bounds: Bounds, lo, hi, b: ModelBuilder | None = None):
    """(builder, input variable ids, logits Expr) for one network over the box [lo, hi]."""
    b = b or ModelBuilder()
    x = b.add_vars(lo, hi)
    z = encode_network(b, net, b.var_expr(x), bounds, (net.output,))[net.output]
    return b, x, z


def diff(z: Expr, a: int, c: int, n: int) -> Expr:
    """z_a - z_c as a one-row Expr."""
    M = z.widen(n)
    return Expr(M[a] - M[c], np.array([z.k[a] - z.k[c]]))


def margin_violation(net: Network, bounds: Bounds, lo, hi, c: int, j: int, t: float):
    """Feasibility model: exists x in box with z_j - z_c >= t. Returns (model, x ids)."""
    b, x, z = encode(net, bounds, lo, hi)
    b.add_rows(diff(z, j, c, b.n), t, np.inf)
    return b.build(None), x


def margin_extreme(net: Network, bounds: Bounds, lo, hi, c: int, j: int, maximize: bool):
    """Optimise the margin m_j = z_c - z_j over the box. Returns (model, x ids)."""
    b, x, z = encode(net, bounds, lo, hi)
    return b.build(diff(z, c, j, b.n), maximize=maximize), x


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
