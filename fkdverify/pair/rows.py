"""Verdicts from bounds on the product network's outputs (pure functions, one point).

The product's head gives all ordered pairwise logit differences of the teacher (rows
0..P-1) and of the student (rows P..2P-1), P = K(K-1), in ``pair_matrix`` order. Upper bounds
of those rows decide robust agreement and the decoupled gap; the joint conditions below are
linear rows over the same head, bounded through the product in one backward pass."""

from __future__ import annotations

import numpy as np

from ..words import GapSign, Verdict
from .heads import pair_index
from .softmax import confidence_bounds, lower_line, shift_gap, upper_line
from .state import Finding

LAMBDAS = (0.5, 0.25, 0.75)  # weights of the joint agreement rows


def pair_bound_finding(k: int, c: int, prior: np.ndarray | None, ub: np.ndarray, tau: float,
                       want_agree: bool, gap_sign: str | None, gap_method: str,
                       how: str) -> Finding:  # fmt: skip
    """Upper bounds ``ub`` (2P,) of all pairwise differences of both networks (intersected with
    the ``prior`` ones) -> agreement when each network has a single possible strict argmax, the
    same one; the decoupled gap bound (``gap_sign`` None: not asked)."""
    if prior is not None:
        ub = np.minimum(ub, prior)
    npair = k * (k - 1)
    ub_t, ub_s = ub[:npair], ub[npair:]
    cand_t, cand_s = candidates(ub_t, k, -tau), candidates(ub_s, k, -tau)
    agree = want_agree and len(cand_t) == 1 and cand_t == cand_s
    g = float("nan") if gap_sign is None else decoupled_gap(ub_t, ub_s, c, k, gap_sign)
    return Finding(how=how, agreement=Verdict.AGREE if agree else Verdict.UNKNOWN, pair_ub=ub,
                   gap_hi=g, gap_method=gap_method)  # fmt: skip


def candidates(pair_ub: np.ndarray, k: int, t: float) -> list[int]:
    """Classes that could be the strict-by-t argmax somewhere in the box."""
    return [
        a for a in range(k) if all(pair_ub[pair_index(k, a, b)] >= t for b in range(k) if b != a)
    ]


def margins(ub_pairs: np.ndarray, c: int, k: int):
    """(lower, upper) of m_j = z_c - z_j for j != c from the pairwise upper bounds."""
    others = [j for j in range(k) if j != c]
    up = np.array([ub_pairs[pair_index(k, c, j)] for j in others])
    low = np.array([-ub_pairs[pair_index(k, j, c)] for j in others])
    return low, up


def gap_from_margins(tl, tu, sl, su, sign) -> float:
    """Decoupled Delta_hi: each confidence bounded alone from its margin box."""
    pt_lo, pt_hi = confidence_bounds(tl, tu)
    ps_lo, ps_hi = confidence_bounds(sl, su)
    up = pt_hi - ps_lo
    if sign == GapSign.STUDENT_MINUS_TEACHER:
        up = ps_hi - pt_lo
    elif sign == GapSign.ABS:
        up = max(pt_hi - ps_lo, ps_hi - pt_lo)
    return float(min(up, 1.0))


def decoupled_gap(ub_t, ub_s, c, k, sign) -> float:
    return gap_from_margins(*margins(ub_t, c, k), *margins(ub_s, c, k), sign)


def joint_agreement_rows(cand_t, cand_s, k: int) -> np.ndarray:
    """Rows over the head whose upper bounds < 0 exclude every disagreement.

    The teacher picking a while the student picks b != a needs z_T^a - z_T^b >= 0 and
    z_S^b - z_S^a >= 0, so any positive combination of the two is >= 0 there: one negative
    upper bound per pair (a, b) excludes that pair. Returns (pairs, len(LAMBDAS), 2P)."""
    npair = k * (k - 1)
    pairs = [(a, b) for a in cand_t for b in cand_s if a != b]
    rows = np.zeros((len(pairs), len(LAMBDAS), 2 * npair))
    for i, (a, b) in enumerate(pairs):
        for j, lam in enumerate(LAMBDAS):
            rows[i, j, pair_index(k, a, b)] = lam
            rows[i, j, npair + pair_index(k, b, a)] = 1.0 - lam
    return rows


def joint_agreement(row_ub: np.ndarray, tau: float) -> bool:
    """row_ub: (pairs, len(LAMBDAS)) upper bounds: agreement iff every pair is excluded."""
    return bool(np.all(row_ub.min(axis=1) < -tau))


def joint_gap_rows(ub_t, ub_s, c: int, k: int, sign: str, tangents):
    """Linear upper bounds of the gap as rows over the head: gap <= row @ head + const.

    For g = p_T^c - p_S^c: an upper line of p_T^c minus a lower line of p_S^c (``softmax``),
    both over the margin boxes the pair bounds give; one row per tangent point (mt, ms) (margin
    vectors, e.g. at the clean point and at the attack's worst point). The opposite sign swaps
    the roles; |.| takes both. Returns (rows (R, 2P), consts (R,), side (R,)): the gap bound
    is the max over sides of the min over that side's rows."""
    npair = k * (k - 1)
    others = [j for j in range(k) if j != c]
    tl, tu = margins(ub_t, c, k)
    sl, su = margins(ub_s, c, k)
    sides = []
    if sign in (GapSign.TEACHER_MINUS_STUDENT, GapSign.ABS):
        sides.append((0, (tl, tu), (sl, su), 0, npair))
    if sign in (GapSign.STUDENT_MINUS_TEACHER, GapSign.ABS):
        sides.append((1, (sl, su), (tl, tu), npair, 0))
    rows, consts, side = [], [], []
    for s, (ul, uu), (ll, lu), off_up, off_low in sides:
        for mt, ms in tangents:
            t_up, t_low = (mt, ms) if s == 0 else (ms, mt)
            wu, bu = upper_line(ul, uu, t_up)
            wl, bl = lower_line(ll, lu, t_low)
            r = np.zeros(2 * npair)
            for i, j in enumerate(others):
                r[off_up + pair_index(k, c, j)] += wu[i]
                r[off_low + pair_index(k, c, j)] -= wl[i]
            rows.append(r)
            consts.append(bu - bl)
            side.append(s)
    return np.array(rows), np.array(consts), np.array(side)


def joint_gap(row_ub: np.ndarray, consts: np.ndarray, side: np.ndarray) -> float:
    """The gap bound from the rows' upper bounds (see ``joint_gap_rows``), at most 1."""
    vals = row_ub + consts
    return float(min(max(vals[side == s].min() for s in np.unique(side)), 1.0))


def margin_vector(z: np.ndarray, c: int) -> np.ndarray:
    return np.array([z[c] - z[j] for j in range(len(z)) if j != c])


# ------------------------------------ differential bounds (same-shape pairs, bounds/diff.py)
def differential_agreement(diff_ubs, cand_t, cand_s, k: int, tau: float) -> bool:
    """``diff_ubs`` [(kappa, ub (P,))]: upper bounds of the pairwise rows of z_T - kappa z_S.

    A strict disagreement (a, b) needs z_T^a - z_T^b >= tau and z_S^b - z_S^a >= tau, so row
    (a, b) of z_T - kappa z_S is >= (1 + kappa) tau there: an upper bound below that excludes
    the pair. Agreement iff every pair of candidates is excluded by some kappa."""
    return all(
        any(ub[pair_index(k, a, b)] < (1.0 + kappa) * tau for kappa, ub in diff_ubs)
        for a in cand_t
        for b in cand_s
        if a != b
    )


def differential_gap(diff_ub: np.ndarray, ub_t, ub_s, c: int, k: int, sign: str) -> float:
    """Delta_hi from upper bounds ``diff_ub`` (P,) of the pairwise rows of z_T - z_S: with
    u_j = z_j - z_c, u^T_j - u^S_j = row (j, c) lies in [-ub(c, j), ub(j, c)]; the gap is
    bounded from either network's s = sum_j exp(u_j) (``softmax.shift_gap``), the tighter
    wins. Near-identical networks give near-zero bounds."""
    others = [j for j in range(k) if j != c]
    e_hi = np.array([diff_ub[pair_index(k, j, c)] for j in others])
    e_lo = np.array([-diff_ub[pair_index(k, c, j)] for j in others])
    sides = []
    if sign in (GapSign.TEACHER_MINUS_STUDENT, GapSign.ABS):
        sides.append(True)
    if sign in (GapSign.STUDENT_MINUS_TEACHER, GapSign.ABS):
        sides.append(False)
    best = []
    for up in sides:
        # teacher = student shifted by e (s from the student), or student = teacher shifted
        # by -e (s from the teacher; p_S - p_T is then the "up" side)
        bounds = []
        for base, e, flip in ((ub_s, (e_lo, e_hi), False), (ub_t, (-e_hi, -e_lo), True)):
            ml, mu = margins(base, c, k)
            with np.errstate(over="ignore"):
                s_lo, s_hi = float(np.exp(-mu).sum()), float(np.exp(-ml).sum())
            bounds.append(shift_gap(*e, s_lo, s_hi, up != flip))
        best.append(min(bounds))
    return float(max(best))
