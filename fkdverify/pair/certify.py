"""Points through the stages of DESIGN.md section 3, in order: quick attack -> bounds
(``stages/bounds.py``; with the complete methods, alpha-CROWN narrows every gap interval wider
than tol, settled or not) -> full attack where the bounds left a point open -> exact MILPs
(``stages/agreement.py``, ``stages/gap.py``), one point at a time under its own deadline.

Each stage gets the questions and states still open and returns findings; ``state.merge`` is
the only writer of a point's state. The result rows are built by ``Result.from_point``."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .. import defaults as D
from ..errors import InputError
from ..milp.run import MilpRunner
from ..results import Result
from ..words import CERTIFY_COMPLETE_METHODS, Method, Property, Verdict
from .context import PairContext, split_bounds
from .options import CertifyOptions, resolved
from .recheck import gap_witness
from .stages import agreement, attack, bounds, gap
from .state import (
    Finding,
    PointState,
    Question,
    agreement_open,
    gap_open,
    is_open,
    merge,
    merge_all,
    wants_gap,
)


def questions(xs, classes, opts: CertifyOptions, indices, boxes=None, labels=None,
              preds=None) -> list[Question]:  # fmt: skip
    """One frozen question per point: the ball B(x, eps) within the domain, or ``boxes``
    (lo, hi) when given (x must lie in its box)."""
    out = []
    for b, x in enumerate(xs):
        x = np.asarray(x, np.float64).reshape(-1)
        clo = chi = None
        if boxes is None:
            lo = np.clip(x - opts.eps, opts.lo, opts.hi)
            hi = np.clip(x + opts.eps, opts.lo, opts.hi)
            clo, chi = inward(x, lo, hi, opts.eps)
        else:
            lo = np.asarray(boxes[b][0], np.float64).reshape(-1)
            hi = np.asarray(boxes[b][1], np.float64).reshape(-1)
            if not (np.all(lo <= x) and np.all(x <= hi)):
                raise InputError("the point does not lie in the given box")
        label = int(classes[b]) if labels is None else int(labels[b])
        p = (-1, -1) if preds is None else tuple(preds[b])
        out.append(Question(int(indices[b]), x, lo, hi, int(classes[b]), label, p, clo, chi))
    return out


def inward(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float):
    """[lo, hi] moved inward by ulps until ``abs(v - x) <= eps`` in float64 at both ends."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(4):
        out_lo, out_hi = x - lo > eps, hi - x > eps
        if not (out_lo.any() or out_hi.any()):
            break
        lo[out_lo] = np.nextafter(lo[out_lo], np.inf)
        hi[out_hi] = np.nextafter(hi[out_hi], -np.inf)
    return lo, hi


def decide(ctx: PairContext, qs: list[Question], opts: CertifyOptions) -> list[PointState]:
    """The final state of every question, in order (the stages, cheap to expensive)."""
    opts = resolved(opts, ctx.teacher, ctx.student)
    sts = [PointState() for _ in qs]

    def fold(idx, findings):
        for b, fs in zip(idx, findings, strict=True):
            sts[b] = merge_all(qs[b], sts[b], fs if isinstance(fs, list) else [fs])

    def still(pred=is_open):
        return [b for b in range(len(qs)) if pred(sts[b], opts)]

    every = list(range(len(qs)))
    if wants_gap(opts):  # the clean point is a witness
        fold(every, [gap_witness(ctx.referee, q, q.x, opts.gap_sign, "clean point") for q in qs])
    if opts.use_attack:
        fold(every, attack.attack(ctx, qs, sts, opts, quick=opts.method != Method.ATTACK))
    if opts.method == Method.ATTACK:
        return sts
    t0 = time.perf_counter()
    until = t0 + bounds_window(sts, opts)
    pb, found = bounds.pair_bounds(ctx, qs, sts, opts)
    fold(every, found)
    if opts.differential and ctx.kappas:  # same-shape pairs; cheap, so on every point: the
        fold(every, bounds.differential(ctx, qs, sts, pb, every, opts))  # tightest Delta_hi
    method = bounds.bound_method(opts)
    narrow = narrows(opts)

    def alpha_rows(st, o):  # --method alpha-crown: the open points; narrowing: the wide ones
        return (method == Method.ALPHA_CROWN and is_open(st, o)) or (narrow and wide(st, o))

    if idx := still(alpha_rows):
        fold(idx, bounds.alpha_pairs(ctx, qs, sts, pb, idx, opts, until))
    if method != Method.IBP and opts.prop != Property.GAP:
        idx = still(lambda st, o: is_open(st, o) and agreement_open(st, o))
        fold(idx, bounds.joint_agreement(ctx, qs, sts, pb, idx, opts, until))
    if method != Method.IBP and wants_gap(opts):
        idx = still(lambda st, o: (is_open(st, o) and gap_open(st, o)) or (narrow and wide(st, o)))
        how = Method.ALPHA_CROWN if narrow else method
        fold(idx, bounds.joint_gap(ctx, qs, sts, pb, idx, opts, until, how))
    share = (time.perf_counter() - t0) / len(qs)
    fold(every, [Finding(how="bounds", times=(("bounds", share),)) for _ in qs])
    if opts.use_attack and (idx := still()):  # the full attack where the bounds left it open
        fold(idx, attack.attack(ctx, [qs[b] for b in idx], [sts[b] for b in idx], opts))
    if opts.method in CERTIFY_COMPLETE_METHODS:
        for b in still():
            sts[b] = _complete(ctx, qs[b], sts[b], pb.point(b), opts)
        if opts.gap_refine > 0 and opts.prop == Property.FAITHFUL:
            for b in still(refinable):
                sts[b] = _refine(ctx, qs[b], sts[b], pb.point(b), opts)
    return sts


def narrows(opts: CertifyOptions) -> bool:
    """The complete methods narrow every gap interval still wider than tol with batched
    alpha-CROWN (margin rows and joint gap rows) in the bounds stage, also where the verdict
    is already settled (faithful stops Delta_hi at delta): a few hundredths of a second per
    point, where the gap MILPs take seconds."""
    return opts.method in CERTIFY_COMPLETE_METHODS and wants_gap(opts)


def wide(st: PointState, opts: CertifyOptions) -> bool:
    """A gap interval wider than tol (or not bounded yet); asked only where ``narrows``."""
    return not st.gap_hi - st.gap_lo <= opts.tol


def bounds_window(sts: list[PointState], opts: CertifyOptions) -> float:
    """Seconds the batched bounds stage may take: its time is shared equally by the batch's
    points, so the tightest point's time left, times the batch size, less the full attack's
    share that follows (the iterations of alpha-CROWN stop there; a CROWN pass runs whole)."""
    left = min(opts.timeout - st.spent() for st in sts)
    return max(left, 0.0) * len(sts) * (1 - D.ATTACK_SHARE)


def _complete(ctx: PairContext, q: Question, st: PointState, point_bounds, opts) -> PointState:
    """The complete stage of ``opts.method``: the MILPs (``milp``, ``milp+bab``) or branch
    and bound (``bab``)."""
    if opts.method == Method.BAB:
        return _bab(q, st, point_bounds, ctx, opts)
    return _milp(ctx, q, st, point_bounds, opts)


MIN_REFINE_S = 0.05  # less time left than this: no refinement


def refinable(st: PointState, opts: CertifyOptions) -> bool:
    """A point whose verdict is settled with agreement but whose gap interval is wider than
    tol: the faithful question stops refining Delta_hi once it is <= delta (or Delta_lo once it
    is > delta), which leaves the reported interval as wide as that."""
    return (st.agreement == Verdict.AGREE and not is_open(st, opts)
            and st.gap_hi - st.gap_lo > opts.tol)  # fmt: skip


def _refine(ctx: PairContext, q: Question, st: PointState, point_bounds, opts) -> PointState:
    """``--gap-refine``: up to that many seconds of the point's time left on the gap question
    alone (the complete stage with ``--property gap``). Delta_hi only falls and Delta_lo only
    rises (``merge``), so the settled verdict stands; the interval narrows."""
    seconds = min(opts.gap_refine, opts.timeout - st.spent())
    if seconds < MIN_REFINE_S:
        return st
    t0 = time.perf_counter()
    sub = replace(opts, prop=Property.GAP, timeout=st.spent() + seconds)
    new = _complete(ctx, q, st, point_bounds, sub)
    note = f"gap refined for {time.perf_counter() - t0:.2f} s"  # its own notes: not the point's
    return replace(new, notes=st.notes + (note,))


def _bab(q: Question, st: PointState, point_bounds, ctx: PairContext, opts) -> PointState:
    """Branch and bound over the product for what the bounds and the attack left open."""
    from .stages.bab import bab_point  # torch-heavy tree code: only when asked for

    t0 = time.perf_counter()
    st = bab_point(ctx, q, st, point_bounds, t0 + opts.timeout - st.spent(), opts)
    if is_open(st, opts):
        st = merge(q, st, Finding(how="bab", notes=("time limit",)))
    # the complete stage's seconds (time_milp_s) whichever method ran
    return merge(q, st, Finding(how="bab", times=(("milp", time.perf_counter() - t0),)))


def _agreement(ctx: PairContext, q: Question, st: PointState, pb, bt, bs, run: MilpRunner,
               opts) -> PointState:  # fmt: skip
    """The agreement MILPs; with ``milp+bab``, each network's robustness tree first (the
    robust route, ``stages/bab.py``: a part of the time, and often decisive on deeper pairs
    whose networks are robust at the point), then the MILPs for a share of the time left, and
    branch and bound over the product (on the MILP's tighter bounds ``pb``, over the class
    pairs the route left) where they leave agreement open: on a deeper pair it often closes
    the (a, b) disjuncts in seconds that the joint one-hot MILP does not close in a minute."""
    if opts.method != Method.MILP_BAB:
        return merge_all(q, st, agreement.milp_agreement(ctx, q, st, bt, bs, run, opts))
    from .stages.bab import (  # torch-heavy tree code: only when needed
        ROBUST_SHARE,
        agreement_deadline,
        bab_agreement,
        robust_agreement,
    )

    deadline = run.deadline
    t0 = time.perf_counter()
    until = agreement_deadline(st, deadline, opts)  # the gap MILP keeps its share
    cands, found = robust_agreement(ctx, q, st, pb, t0 + ROBUST_SHARE * (until - t0), opts)
    st = merge_all(q, st, found)
    run.seconds += time.perf_counter() - t0  # the complete stage's seconds
    if not agreement_open(st, opts):
        return st
    with run.capped(D.MILP_BAB_MILP_SHARE):
        st = merge_all(q, st, agreement.milp_agreement(ctx, q, st, bt, bs, run, opts))
    if not agreement_open(st, opts) or run.expired():
        return st
    t0 = time.perf_counter()
    until = agreement_deadline(st, deadline, opts)
    st = merge_all(q, st, bab_agreement(ctx, q, st, pb, until, opts, cands))
    run.seconds += time.perf_counter() - t0
    return st


def _milp(ctx: PairContext, q: Question, st: PointState, point_bounds, opts) -> PointState:
    """The bounds that feed the MILP, then the exact agreement and gap stages."""
    t0 = time.perf_counter()
    deadline = t0 + opts.timeout - st.spent()
    pb, found = bounds.milp_bounds(ctx, q, st, point_bounds, opts, deadline - t0)
    st = merge_all(q, st, found)
    run = MilpRunner(opts.solver, deadline)
    if is_open(st, opts):
        bt, bs = split_bounds(pb, ctx.off)
        if agreement_open(st, opts):
            st = _agreement(ctx, q, st, pb, bt, bs, run, opts)
        if wants_gap(opts) and gap_open(st, opts):
            st = merge_all(q, st, gap.milp_gap(ctx, q, st, bt, bs, run, opts))
        if run.expired():
            run.notes.append("time limit")
    other = time.perf_counter() - t0 - run.seconds
    times = (("milp", run.seconds), ("bounds", other))
    return merge(q, st, Finding(how="milp", times=times, notes=tuple(run.notes), solver=run.used))


def certify_batch(ctx: PairContext, xs, classes, opts: CertifyOptions, indices, boxes=None,
                  preds=None, labels=None) -> list[tuple[Result, np.ndarray | None]]:  # fmt: skip
    """Decide B points at once (attack each, bound all in one batched pass through the product,
    then MILPs point by point): [(Result, counterexample or None)] in input order. Each
    point's bounds time is an equal share of the batch's; ``preds`` = the referee's (teacher,
    student) classes at each x when the caller has them."""
    t_batch = time.perf_counter()
    opts = resolved(opts, ctx.teacher, ctx.student)
    if preds is None:
        preds = [ctx.referee.predictions(np.asarray(x, np.float64).reshape(-1)) for x in xs]
    qs = questions(xs, classes, opts, indices, boxes, labels, preds)
    sts = decide(ctx, qs, opts)
    overhead = (time.perf_counter() - t_batch) / len(qs) - np.mean([s.spent() for s in sts])

    def at(x):
        return (-1, -1) if x is None else ctx.referee.predictions(x)

    return [(Result.from_point(q, st, opts, st.spent() + max(overhead, 0), at_cex=at(st.cex),
                               at_gap=at(st.gap_x)), st.cex)
            for q, st in zip(qs, sts, strict=True)]  # fmt: skip


def certify_point(ctx: PairContext, x0: np.ndarray, cls: int, opts: CertifyOptions, index=0,
                  box=None, preds: tuple[int, int] | None = None):  # fmt: skip
    """Decide one point. x0: flat input (n,); cls: class c; ``box`` = (lo, hi) replaces the
    ball B(x0, eps) when given (x0 must lie in it). Returns (Result, counterexample)."""
    boxes = None if box is None else [box]
    return certify_batch(
        ctx, [x0], [cls], opts, [index], boxes, None if preds is None else [preds]
    )[0]
