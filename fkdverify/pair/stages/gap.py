"""The confidence-gap stage (DESIGN.md section 3 and Appendix A): Delta_hi from margin
bounds (decoupled), tightened by MILPs on the margins, and from the joint relaxation over the
product network, refined around incumbents; Delta_lo from re-checked incumbents."""

from __future__ import annotations

import numpy as np

from ...bounds import Bounds
from ...milp.model import Status
from ...milp.properties import margin_extreme
from ...milp.run import MilpRunner
from ...words import GapSign, Property
from ..context import PairContext
from ..milp_models import initial_terms, joint_gap_model, refine, usable
from ..options import CertifyOptions
from ..recheck import gap_witness
from ..rows import gap_from_margins, margins
from ..state import Finding, PointState, Question, gap_open, merge

UP_SIGNS = (GapSign.TEACHER_MINUS_STUDENT, GapSign.ABS)  # the teacher's confidence pushed up
DOWN_SIGNS = (GapSign.STUDENT_MINUS_TEACHER, GapSign.ABS)


class _Progress:
    """The stage's own view of the point while it works: its findings, merged as it goes."""

    def __init__(self, q: Question, st: PointState):
        self.q, self.st, self.found = q, st, []

    def add(self, f: Finding) -> None:
        self.st = merge(self.q, self.st, f)
        self.found.append(f)


GAP_PAD = 1e-5  # solver tolerances on the gap MILP's objective (probabilities)


# share of the gap stage's time for the single-network margin MILPs before the joint MILP:
# on certifiably trained pairs they often decide alone, in seconds, and every margin they
# tighten narrows the joint relaxation's softmax ranges
DECOUPLED_FIRST_SHARE = 0.25


def milp_gap(ctx: PairContext, q: Question, st: PointState, bt: Bounds, bs: Bounds,
             run: MilpRunner, opts: CertifyOptions) -> list[Finding]:  # fmt: skip
    """Tighten Delta_hi: the margin MILPs of the decoupled bound for a share of the time; then
    the joint relaxation (Appendix A) over the product on the margins so tightened, refined
    around incumbents; then the margin MILPs left. The smallest bound wins."""
    ub_t, ub_s = ctx.split(st.pair_ub)
    m = (*margins(ub_t, q.cls, ctx.k), *margins(ub_s, q.cls, ctx.k))  # tl, tu, sl, su
    pr = _Progress(q, st)
    jobs = _margin_jobs(m, ctx.k, opts)
    with run.capped(DECOUPLED_FIRST_SHARE):
        jobs = _decoupled_milp_gap(ctx, run, pr, bt, bs, m, opts, jobs)
    if gap_open(pr.st, opts) and opts.prop == Property.FAITHFUL:
        # only "Delta <= delta?" matters: a feasibility question
        _joint_gap(ctx, run, pr, bt, bs, m, opts, 8, opts.delta)
    if gap_open(pr.st, opts):
        _joint_gap(ctx, run, pr, bt, bs, m, opts, rounds=5)
    if gap_open(pr.st, opts):
        _decoupled_milp_gap(ctx, run, pr, bt, bs, m, opts, jobs)
    return pr.found


def _joint_gap(ctx, run, pr: _Progress, bt, bs, margins, opts, rounds, threshold=None):
    """Optimise the joint relaxation; with ``threshold``, only ask whether g can reach it
    (infeasible proves Delta_hi <= threshold)."""
    q = pr.q
    lo, hi, c = q.lo, q.hi, q.cls
    tl, tu, sl, su = margins
    sides = []
    if opts.gap_sign in UP_SIGNS:
        sides.append((ctx.teacher, ctx.student, bt, bs, tl, tu, sl, su))
    if opts.gap_sign in DOWN_SIGNS:
        sides.append((ctx.student, ctx.teacher, bs, bt, sl, su, tl, tu))
    uppers = []
    for up, low, bu, bl, ul, uu, ll, lu in sides:
        terms = initial_terms(ul, uu, ll, lu)
        if not usable(terms):
            pr.add(
                Finding(how="joint milp", notes=("joint gap skipped: a margin range is too wide",))
            )
            return
        best = np.inf
        ask = None if threshold is None else threshold - GAP_PAD
        for _ in range(rounds):
            model, xid = joint_gap_model(up, low, bu, bl, lo, hi, c, terms, ask)
            sol = run(model, share=0.5 / len(sides), abs_gap=opts.tol / 4)
            if sol is None:
                break
            if ask is not None and sol.status == Status.INFEASIBLE:
                best = threshold
                break
            if ask is None and sol.bound is not None:
                best = min(best, sol.bound + GAP_PAD)
            if sol.x is None:
                break
            x = np.clip(sol.x[xid], lo, hi)
            pr.add(gap_witness(ctx.referee, q, x, opts.gap_sign, "joint milp"))
            gap_lo = pr.st.gap_lo
            if not best - gap_lo > opts.tol or (ask is not None and gap_lo > threshold):
                break
            mt, ms = ctx.margins_at(x, c)
            mu, ml = (mt, ms) if up is ctx.teacher else (ms, mt)
            terms = refine(terms, mu, float(np.exp(-ml).sum()), ml, float(np.exp(-mu).sum()))
        uppers.append(best)
    if uppers and np.isfinite(max(uppers)):
        pr.add(Finding(how="joint milp", gap_hi=min(max(uppers), 1.0), gap_method="joint-milp"))


def _margin_jobs(m, k: int, opts) -> list[tuple[str, bool, int]]:
    """The margin MILPs of the decoupled bound, (network, maximise, margin index): for the
    default sign the teacher's margins maximised and the student's minimised; the terms
    exp(-m) that matter most (smallest margins) first."""
    tl, tu, sl, su = m
    jobs = []
    if opts.gap_sign in UP_SIGNS:
        jobs += [(tu[i], "t", True, i) for i in range(k - 1)]
        jobs += [(sl[i], "s", False, i) for i in range(k - 1)]
    if opts.gap_sign in DOWN_SIGNS:
        jobs += [(su[i], "s", True, i) for i in range(k - 1)]
        jobs += [(tl[i], "t", False, i) for i in range(k - 1)]
    return [j[1:] for j in sorted(jobs, key=lambda j: j[0])]


def _decoupled_milp_gap(ctx, run, pr: _Progress, bt, bs, m, opts, jobs) -> list:
    """Decoupled gap with MILP-tightened margins: solves ``jobs`` (``_margin_jobs``) in order,
    tightening the margin arrays ``m`` = (tl, tu, sl, su) in place (the solver's dual bound on
    a time limit: sound either way); returns the jobs not done."""
    q = pr.q
    tl, tu, sl, su = m
    others = [j for j in range(ctx.k) if j != q.cls]
    for n, (who, mx, i) in enumerate(jobs):
        net, b = (ctx.teacher, bt) if who == "t" else (ctx.student, bs)
        model, xid = margin_extreme(net, b, q.lo, q.hi, q.cls, others[i], maximize=mx)
        sol = run(model)
        if sol is None:
            return jobs[n:]
        if sol.bound is None:
            continue
        bound = sol.bound + (1 if mx else -1) * opts.tau  # solver tolerances
        arr = {("t", True): tu, ("t", False): tl, ("s", True): su, ("s", False): sl}[(who, mx)]
        arr[i] = min(arr[i], bound) if mx else max(arr[i], bound)
        if sol.x is not None:
            pr.add(gap_witness(ctx.referee, q, sol.x[xid], opts.gap_sign, "decoupled milp"))
        new_hi = gap_from_margins(tl, tu, sl, su, opts.gap_sign)
        pr.add(Finding(how="decoupled milp", gap_hi=new_hi, gap_method="decoupled-milp"))
        if not gap_open(pr.st, opts):
            return jobs[n + 1 :]
    return []
