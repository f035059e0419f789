"""The branch-and-bound stage of the pair (``certify --method bab``): beta-CROWN branch and
bound (``bounds/bab.py``) over the product network, splitting the ReLUs of both networks in
one tree.

Agreement: a strict disagreement (a, b), a != b, needs ``z_T^j - z_T^a <= -tau`` for every
j != a and ``z_S^j - z_S^b <= -tau`` for every j != b (atoms over the product's head). The
tree's disjuncts keep one network's conjunction whole and only "a beats b" of the other
(``agreement_atoms``): each still contains every strict disagreement of its pair, and the
rows are far fewer. ``unsat`` proves that no strict disagreement exists (``agree``); a
candidate is handed to the referee and only a confirmed disagreement ends the tree.

Robust route first (``robust_route``): a network whose only possible strict top class is
its class at x on the whole box cannot take part in a strict disagreement except against
that class, so each network's own robustness tree (its ReLUs alone, far fewer than the
product's, and a conjunction-free spec) runs before the joint one, with part of the time.
Both proven: ``agree`` (robust agreement). One proven: the joint tree keeps only the pairs
where that network keeps its class. A network found not robust (the referee confirms
another strict top class) leaves the joint tree as it was.

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
from ..attack import attack_robustness
from ..context import PairContext, split_bounds
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


def robust_atoms(k: int, c: int, cands, tau: float):
    """(C (R, K), b (R,), owner (R,)) over one network's logits: "class j beats c by tau",
    one disjunct per candidate j != c. ``unsat`` proves that no class but c is ever the
    strict-by-tau top class (a strict top j needs z_j - z_c >= tau; a class that is not a
    candidate never is one)."""
    js = [j for j in cands if j != c]
    C = np.zeros((len(js), k))
    C[np.arange(len(js)), c] = 1.0
    C[np.arange(len(js)), js] = -1.0
    return C, np.full(len(js), -tau), np.arange(len(js))


ROBUST_SHARE = 0.8  # of the agreement trees' time: each network's own robustness tree first
ROBUST_PGD_SHARE = 0.05  # of the route's time left: PGD for a class change first
ROBUST_PGD_CHECKS = 3  # candidates handed to the referee


def robust_route(ctx: PairContext, q: Question, cands: tuple, bounds: Bounds, deadline: float,
                 opts: CertifyOptions) -> tuple[tuple, list]:  # fmt: skip
    """Each network's robustness tree on its class at x (the network with fewer candidate
    classes first, up to half the time left until ``deadline``, the other the rest): the
    candidate lists with a proven network's reduced to its class, and notes."""
    picks = q.preds if min(q.preds) >= 0 else ctx.referee.predictions(q.x)
    if picks[0] != picks[1]:  # the clean point itself disagrees (or ties): nothing to gain
        return cands, []
    c, nets = picks[0], (ctx.teacher, ctx.student)
    parts = split_bounds(bounds, ctx.off)
    out, notes = list(cands), []
    todo = sorted((i for i in (0, 1) if out[i] != [c]), key=lambda i: len(out[i]))
    for n, i in enumerate(todo):
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        who = ("teacher", "student")[i]

        def confirm(x, teacher=i == 0):
            x = np.clip(x, q.clo, q.chi)
            pick = ctx.referee.strict_pick(x, teacher)
            return x if pick is not None and pick != c else None

        # a network that is not robust is usually found so by PGD in milliseconds
        tries = attack_robustness((ctx.tnet32, ctx.snet32)[i], q.x, q.lo, q.hi, c, opts.attack,
                                  time.perf_counter() + ROBUST_PGD_SHARE * left)  # fmt: skip
        if any(confirm(x) is not None for x in tries[:ROBUST_PGD_CHECKS]):
            notes.append(f"{who} not robust (PGD)")
            continue
        C, b, owner = robust_atoms(ctx.k, c, out[i], opts.tau)
        until = deadline if n + 1 == len(todo) else time.perf_counter() + left / 2
        res = bab(nets[i], q.lo, q.hi, parts[i].pre, C, b, owner, until, confirm)
        word = {UNSAT: f"robust on class {c}", SAT: "not robust"}.get(res.status, "open")
        notes.append(f"{who} robustness bab: {word} ({res.domains} domains)")
        if res.status == UNSAT:  # no class but c is ever its strict top
            out[i] = [j for j in out[i] if j == c]
    return (out[0], out[1]), notes


def robust_agreement(ctx: PairContext, q: Question, st: PointState, bounds: Bounds,
                     deadline: float, opts: CertifyOptions) -> tuple[tuple, list]:  # fmt: skip
    """The robust route as a stage: (candidate classes (teacher, student) left for the joint
    tree, findings: ``agree`` when no pair of them can disagree strictly)."""
    ub_t, ub_s = ctx.split(st.pair_ub)
    cands = candidates(ub_t, ctx.k, opts.tau), candidates(ub_s, ctx.k, opts.tau)
    if not agreement_atoms(ctx.k, *cands, opts.tau)[0].size:
        return cands, []
    cands, notes = robust_route(ctx, q, cands, bounds, deadline, opts)
    if agreement_atoms(ctx.k, *cands, opts.tau)[0].size:
        return cands, [Finding(how="robust bab", notes=tuple(notes))]
    notes.append("both networks keep their class: robust agreement")
    return cands, [Finding(how="robust bab", agreement=Verdict.AGREE, notes=tuple(notes))]


def bab_agreement(ctx: PairContext, q: Question, st: PointState, bounds: Bounds,
                  deadline: float, opts: CertifyOptions, cands=None) -> list[Finding]:  # fmt: skip
    """Agreement: the robust route (``ROBUST_SHARE`` of the time; skipped when ``cands``, the
    candidate classes it left, are given), then one tree over every (a, b) disjunct left."""
    found: list[Finding] = []
    if cands is None:
        until = time.perf_counter() + ROBUST_SHARE * (deadline - time.perf_counter())
        cands, found = robust_agreement(ctx, q, st, bounds, until, opts)
        if any(f.agreement == Verdict.AGREE for f in found):
            return found
    C, b, owner = agreement_atoms(ctx.k, *cands, opts.tau)
    if not len(C):
        note = "no class pair can disagree strictly"
        return [*found, Finding(how="bab", agreement=Verdict.AGREE, notes=(note,))]

    def confirm(x):
        x = np.clip(x, q.clo, q.chi)
        return x if ctx.referee.disagreement(x, q.clo, q.chi) else None

    res = bab(ctx.product, q.lo, q.hi, bounds.pre, C, b, owner, deadline, confirm)
    note = f"agreement bab: {res.domains} domains, depth {res.depth}"
    if res.status == UNSAT:
        return [*found, Finding(how="bab", agreement=Verdict.AGREE, notes=(note,))]
    if res.status == SAT:
        return [*found, Finding(how="bab", agreement=Verdict.DISAGREE, cex=res.found,
                                notes=(note,))]  # fmt: skip
    return [*found, Finding(how="bab", notes=(note + (f"; {res.note}" if res.note else ""),))]


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
