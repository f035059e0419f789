"""The branch-and-bound stage of the pair (``certify --method bab``): beta-CROWN branch and
bound (``bounds/bab.py``) over the product network, splitting the ReLUs of both networks in
one tree.

Agreement: a strict disagreement (a, b), a != b, needs ``z_T^j - z_T^a <= -tau`` for every
j != a and ``z_S^j - z_S^b <= -tau`` for every j != b (atoms over the product's head). The
tree's disjuncts keep one network's conjunction whole and only "a beats b" of the other
(``agreement_atoms``): each still contains every strict disagreement of its pair, and the
rows are far fewer. ``unsat`` proves that no strict disagreement exists (``agree``); a
candidate is handed to the referee and only a confirmed disagreement ends the tree.

Gap (faithful / gap): the joint gap rows (``rows.joint_gap_rows``) are linear upper bounds
``g <= w_r . y + c_r`` valid over the whole box (tangent at the clean point and at the worst
point found); ``g > t`` then needs ``-w_r . y <= c_r - t`` for every row r of a side, one
disjunct per side, so ``unsat`` proves Delta_hi <= t. Faithful asks t = delta; gap bisects t
between Delta_lo and Delta_hi while time is left. The lines do not tighten inside a domain
(they are the root's), so this closes what ReLU splits can close, not the softmax's
curvature."""

from __future__ import annotations

import time

import numpy as np

from ...bounds import Bounds
from ...bounds.bab import SAT, TIMEOUT, UNSAT, bab
from ...words import Property, Verdict
from ..context import PairContext
from ..heads import pair_index
from ..options import CertifyOptions
from ..recheck import gap_witness
from ..rows import candidates, joint_gap_rows
from ..state import Finding, PointState, Question, gap_open, merge_all

BISECTIONS = 6  # --property gap: at most this many thresholds


def agreement_atoms(k: int, cand_t, cand_s, tau: float):
    """(C (R, 2P), b (R,), member (pairs, R)) of disjuncts that cover every strict
    disagreement (module text), with few rows: the network with fewer candidate classes
    keeps its whole conjunction "b is the top class by tau" (K-1 rows per candidate, shared
    by all disjuncts of that candidate), the other only "a beats b by tau" (one row per
    pair). Each disjunct contains the strict disagreements (a, b), so ``unsat`` proves
    agreement; a point of a disjunct is a disagreement of argmaxes, and the referee decides
    whether it is a strict one."""
    npair = k * (k - 1)
    full_t = len(cand_t) <= len(cand_s)  # which network keeps its whole conjunction
    pairs = [(a, b) for a in cand_t for b in cand_s if a != b]
    rows: dict[int, int] = {}  # head row -> atom
    member = []
    for a, b in pairs:
        if full_t:  # teacher's a on top; the student's b beats a
            need = [pair_index(k, j, a) for j in range(k) if j != a]
            need.append(npair + pair_index(k, a, b))
        else:  # student's b on top; the teacher's a beats b
            need = [npair + pair_index(k, j, b) for j in range(k) if j != b]
            need.append(pair_index(k, b, a))
        member.append([rows.setdefault(r, len(rows)) for r in need])
    C = np.zeros((len(rows), 2 * npair))
    C[list(rows.values()), list(rows.keys())] = 1.0
    M = np.zeros((len(pairs), len(rows)), dtype=bool)
    for n, atoms in enumerate(member):
        M[n, atoms] = True
    return C, np.full(len(rows), -tau), M


def gap_atoms(rows: np.ndarray, consts: np.ndarray, side: np.ndarray, t: float):
    """(C, b, owner) of "g > t" under the rows g <= rows . y + consts (one disjunct per side)."""
    sides = np.unique(side)
    owner = np.searchsorted(sides, side)
    return -rows, consts - t, owner


def bab_agreement(ctx: PairContext, q: Question, st: PointState, bounds: Bounds,
                  deadline: float, opts: CertifyOptions) -> list[Finding]:  # fmt: skip
    """Agreement by one tree over every (a, b) disjunct."""
    ub_t, ub_s = ctx.split(st.pair_ub)
    ct, cs = candidates(ub_t, ctx.k, opts.tau), candidates(ub_s, ctx.k, opts.tau)
    C, b, owner = agreement_atoms(ctx.k, ct, cs, opts.tau)
    if not len(C):
        note = "no class pair can disagree strictly"
        return [Finding(how="bab", agreement=Verdict.AGREE, notes=(note,))]

    def confirm(x):
        x = np.clip(x, q.clo, q.chi)
        return x if ctx.referee.disagreement(x, q.clo, q.chi) else None

    res = bab(ctx.product, q.lo, q.hi, bounds.pre, C, b, owner, deadline, confirm)
    note = f"agreement bab: {res.domains} domains, depth {res.depth}"
    if res.status == UNSAT:
        return [Finding(how="bab", agreement=Verdict.AGREE, notes=(note,))]
    if res.status == SAT:
        return [Finding(how="bab", agreement=Verdict.DISAGREE, cex=res.found, notes=(note,))]
    return [Finding(how="bab", notes=(note + (f"; {res.note}" if res.note else ""),))]


def bab_gap(ctx: PairContext, q: Question, st: PointState, bounds: Bounds, deadline: float,
            opts: CertifyOptions) -> list[Finding]:  # fmt: skip
    """Delta_hi <= t by a tree over "g > t" (t = delta for faithful; bisection for gap)."""
    out: list[Finding] = []
    tangents = [ctx.margins_at(x, q.cls) for x in (q.x, st.gap_x) if x is not None]
    rows, consts, side = joint_gap_rows(*ctx.split(st.pair_ub), q.cls, ctx.k, opts.gap_sign,
                                        tangents)  # fmt: skip
    lo_g, hi_g = st.gap_lo, st.gap_hi

    def confirm(x):
        f = gap_witness(ctx.referee, q, x, opts.gap_sign, "bab")
        out.append(f)
        return x if f.gap_lo > t else None

    domains, res = 0, None
    for _ in range(1 if opts.prop == Property.FAITHFUL else BISECTIONS):
        if time.perf_counter() >= deadline:
            break
        t = opts.delta if opts.prop == Property.FAITHFUL else (lo_g + hi_g) / 2
        C, b, owner = gap_atoms(rows, consts, side, t)
        res = bab(ctx.product, q.lo, q.hi, bounds.pre, C, b, owner, deadline, confirm)
        domains += res.domains
        if res.status == UNSAT:
            hi_g = t
            out.append(Finding(how="bab", gap_hi=t, gap_method="joint-bab"))
        elif res.status == SAT:
            lo_g = max(lo_g, t)
        else:
            break
        if not hi_g - lo_g > opts.tol:
            break
    if res is not None and res.status == TIMEOUT:
        out.append(Finding(how="bab", notes=("gap bab: time limit",)))
    out.append(Finding(how="bab", notes=(f"gap bab: {domains} domains",)))
    return out


AGREEMENT_SHARE = 0.6  # of the time left, when the gap is asked too


def agreement_deadline(st: PointState, deadline: float, opts: CertifyOptions) -> float:
    """Until when the agreement tree may run: ``deadline``, or AGREEMENT_SHARE of the time
    left when the gap is still to be decided after it."""
    if opts.prop != Property.AGREEMENT and gap_open(st, opts):
        return time.perf_counter() + AGREEMENT_SHARE * (deadline - time.perf_counter())
    return deadline


def bab_point(ctx: PairContext, q: Question, st: PointState, bounds: Bounds, deadline: float,
              opts: CertifyOptions) -> PointState:  # fmt: skip
    """Agreement, then the gap, each by its tree, under one deadline."""
    if opts.prop != Property.GAP and st.agreement == Verdict.UNKNOWN:
        until = agreement_deadline(st, deadline, opts)
        st = merge_all(q, st, bab_agreement(ctx, q, st, bounds, until, opts))
    if opts.prop != Property.AGREEMENT and gap_open(st, opts):
        st = merge_all(q, st, bab_gap(ctx, q, st, bounds, deadline, opts))
    return st
