"""The confidence-gap stage (DESIGN.md section 3 and Appendix A): Delta_hi from margin
bounds (decoupled), tightened by MILPs on the margins, and from the joint relaxation over the
product network, refined around incumbents; Delta_lo from re-checked incumbents."""

from __future__ import annotations

import numpy as np
import torch

from .context import CertifyOptions, PointState
from .milp.gap import initial_terms, joint_gap_model, refine, usable
from .milp.model import Status
from .milp.properties import margin_extreme
from .results import DISAGREE
from .verdicts import gap_from_margins as _gap_from_margins
from .verdicts import margin_vector as _margin_vec
from .verdicts import margins


def gap_open(st: PointState, opts: CertifyOptions) -> bool:
    if opts.prop == "gap":
        return not st.gap_hi - st.gap_lo <= opts.tol
    # faithful: open unless already decided by the gap or by a disagreement
    return st.agreement != DISAGREE and not (st.gap_hi <= opts.delta or st.gap_lo > opts.delta)


GAP_PAD = 1e-5  # solver tolerances on the gap MILP's objective (probabilities)


def milp_gap(ctx, run, st, bt, bs, lo, hi, c, ub_t, ub_s, opts):
    """Tighten Delta_hi: the joint relaxation (Appendix A) over the product, refined around
    incumbents; then the decoupled bound with MILP-tightened margins; the smaller wins."""
    tl, tu = margins(ub_t, c, ctx.k)
    sl, su = margins(ub_s, c, ctx.k)
    if opts.prop == "faithful":  # only "Delta <= delta?" matters: a feasibility question
        _joint_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts, 8, opts.delta)
    if gap_open(st, opts):
        _joint_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts, rounds=5)
    if gap_open(st, opts):
        _decoupled_milp_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts)


def _joint_gap(ctx, run, st, bt, bs, lo, hi, c, margins, opts, rounds, threshold=None):
    """Optimise the joint relaxation; with ``threshold``, only ask whether g can reach it
    (infeasible proves Delta_hi <= threshold)."""
    tl, tu, sl, su = margins
    sides = []
    if opts.gap_sign in ("teacher-minus-student", "abs"):
        sides.append((ctx.teacher, ctx.student, bt, bs, tl, tu, sl, su))
    if opts.gap_sign in ("student-minus-teacher", "abs"):
        sides.append((ctx.student, ctx.teacher, bs, bt, sl, su, tl, tu))
    uppers = []
    for up, low, bu, bl, ul, uu, ll, lu in sides:
        terms = initial_terms(ul, uu, ll, lu)
        if not usable(terms):
            st.notes.append("joint gap skipped: a margin range is too wide")
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
            st.witness_gap(ctx, x, lo, hi, c, opts.gap_sign)
            if not best - st.gap_lo > opts.tol or (ask is not None and st.gap_lo > threshold):
                break
            zu = ctx.tnet if up is ctx.teacher else ctx.snet
            zl = ctx.snet if up is ctx.teacher else ctx.tnet
            with torch.no_grad():
                xu = torch.as_tensor(x)[None]
                mu = _margin_vec(zu(xu)[0].numpy(), c)
                ml = _margin_vec(zl(xu)[0].numpy(), c)
            terms = refine(terms, mu, float(np.exp(-ml).sum()), ml, float(np.exp(-mu).sum()))
        uppers.append(best)
    if uppers and np.isfinite(max(uppers)):
        joint = min(max(uppers), 1.0)
        if joint < st.gap_hi:
            st.gap_hi, st.gap_method = joint, "joint-milp"


def _decoupled_milp_gap(ctx, run, st, bt, bs, lo, hi, c, margins, opts):
    """Decoupled gap with MILP-tightened margins: the teacher's margins maximised and the
    student's minimised (default sign); the solver's dual bound is used on a time limit."""
    tl, tu, sl, su = (m.copy() for m in margins)
    others = [j for j in range(ctx.k) if j != c]
    # the terms exp(-m) that matter most first: smallest margins
    jobs = []
    if opts.gap_sign in ("teacher-minus-student", "abs"):
        jobs += [(tu[i], "t", True, i) for i in range(len(others))]
        jobs += [(sl[i], "s", False, i) for i in range(len(others))]
    if opts.gap_sign in ("student-minus-teacher", "abs"):
        jobs += [(su[i], "s", True, i) for i in range(len(others))]
        jobs += [(tl[i], "t", False, i) for i in range(len(others))]
    for _, who, mx, i in sorted(jobs, key=lambda j: j[0]):
        net, b = (ctx.teacher, bt) if who == "t" else (ctx.student, bs)
        model, xid = margin_extreme(net, b, lo, hi, c, others[i], maximize=mx)
        sol = run(model)
        if sol is None:
            break
        if sol.bound is None:
            continue
        bound = sol.bound + (1 if mx else -1) * opts.tau  # solver tolerances
        arr = {("t", True): tu, ("t", False): tl, ("s", True): su, ("s", False): sl}[(who, mx)]
        arr[i] = min(arr[i], bound) if mx else max(arr[i], bound)
        if sol.x is not None:
            st.witness_gap(ctx, sol.x[xid], lo, hi, c, opts.gap_sign)
        new_hi = _gap_from_margins(tl, tu, sl, su, opts.gap_sign)
        if new_hi < st.gap_hi:
            st.gap_hi, st.gap_method = new_hi, "decoupled-milp"
        if not gap_open(st, opts):
            break
