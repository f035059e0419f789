"""One point through the stages of DESIGN.md section 3: attack -> bounds -> exact MILP.

The MILP stages live in ``agreement.py`` and ``gap_stage.py``; shared state in
``context.py``."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .agreement import milp_agreement, network_robustness
from .attack import attack_disagreement, attack_gap, likeliest
from .bound_stage import apply_pair_bounds, bound_stage
from .bound_stage import is_open as _open
from .bounds import network_bounds, spec_bounds
from .context import CertifyOptions, MilpRunner, PairContext, PointState, split_bounds
from .errors import InputError, SoundnessError
from .gap_stage import gap_open, milp_gap
from .milp.tighten import lp_tighten
from .results import AGREE, DISAGREE, FAITHFUL, UNFAITHFUL, UNKNOWN, Result


def certify_point(ctx: PairContext, x0: np.ndarray, cls: int, opts: CertifyOptions, index=0,
                  box=None, preds: tuple[int, int] | None = None):  # fmt: skip
    """Decide one point. x0: flat input (n,); cls: class c; ``box`` = (lo, hi) replaces the
    ball B(x0, eps) when given (x0 must lie in it); ``preds`` = the referee's (teacher,
    student) predictions at x0 when the caller has them. Returns (Result fields, cex)."""
    boxes = None if box is None else [box]
    return certify_batch(
        ctx, [x0], [cls], opts, [index], boxes, None if preds is None else [preds]
    )[0]


def certify_batch(ctx: PairContext, xs, classes, opts: CertifyOptions, indices, boxes=None,
                  preds=None) -> list[tuple[dict, np.ndarray | None]]:  # fmt: skip
    """Decide B points at once: attack each, bound all in one batched pass through the product
    (``bound_stage.py``), then MILPs point by point. Each point's time_bounds_s is an equal
    share of the batch's bounds time. Returns [(Result fields, cex)] in input order."""
    t_batch = time.perf_counter()
    B = len(xs)
    xs = [np.asarray(x, np.float64).reshape(-1) for x in xs]
    lo, hi = _boxes(xs, boxes, opts)
    sts = [PointState() for _ in range(B)]
    want_agree = opts.prop in ("faithful", "agreement")
    want_gap = opts.prop in ("faithful", "gap")

    # 1. attack (quick when bounds follow) --------------------------------------------------
    quick = opts.method != "attack"
    for b, st in enumerate(sts):
        if want_gap:  # the clean point is a witness
            st.witness_gap(ctx, xs[b], lo[b], hi[b], classes[b], opts.gap_sign)
        if opts.use_attack:
            _attack(ctx, st, xs[b], lo[b], hi[b], classes[b], opts, want_agree, want_gap, quick)

    # 2. bounds (batched) -----------------------------------------------------------------
    if opts.method != "attack":
        t0 = time.perf_counter()
        pb = bound_stage(ctx, sts, lo, hi, classes, opts, want_agree, want_gap, xs)
        share = (time.perf_counter() - t0) / B
        for st in sts:
            st.t_bounds = share
        # the full attack where the bounds left the point open
        for b, st in enumerate(sts):
            if opts.use_attack and _open(st, opts, want_agree, want_gap):
                _attack(ctx, st, xs[b], lo[b], hi[b], classes[b], opts, want_agree, want_gap)

    # 3. MILP, point by point --------------------------------------------------------------
    if opts.method == "milp":
        for b, st in enumerate(sts):
            if not _open(st, opts, want_agree, want_gap):
                continue
            t0 = time.perf_counter()
            deadline = t0 + opts.timeout - st.t_attack - st.t_bounds
            _milp(ctx, st, pb.point(b), lo[b], hi[b], classes[b], opts, want_agree, want_gap,
                  indices[b], deadline)  # fmt: skip
            st.t_bounds += time.perf_counter() - t0 - st.t_milp

    out = []
    overhead = (time.perf_counter() - t_batch) / B - np.mean([_spent(s) for s in sts])
    for b, st in enumerate(sts):
        if st.gap_lo > st.gap_hi:
            raise SoundnessError(f"point {indices[b]}: gap lower {st.gap_lo} > upper {st.gap_hi}")
        p = preds[b] if preds is not None else ctx.referee.predictions(xs[b])
        out.append(_finish(st, p, classes[b], opts, indices[b], _spent(st) + max(overhead, 0)))
    return out


def _spent(st: PointState) -> float:
    return st.t_attack + st.t_bounds + st.t_milp


def _boxes(xs, boxes, opts):
    if boxes is None:
        x = np.stack(xs)
        return np.clip(x - opts.eps, opts.lo, opts.hi), np.clip(x + opts.eps, opts.lo, opts.hi)
    lo = np.stack([np.asarray(b[0], np.float64).reshape(-1) for b in boxes])
    hi = np.stack([np.asarray(b[1], np.float64).reshape(-1) for b in boxes])
    if not (np.all(lo <= np.stack(xs)) and np.all(np.stack(xs) <= hi)):
        raise InputError("the point does not lie in the given box")
    return lo, hi


def _milp(ctx, st: PointState, pb, lo, hi, cls, opts, want_agree, want_gap, index, deadline):
    """MILP bounds tightened where the cheap ones left the point open, then the exact stages."""
    if opts.milp_bounds == "alpha-crown":
        pb = network_bounds(ctx.product, lo, hi, "alpha-crown")
        st.unstable["alpha-crown"] = pb.n_unstable()
    if opts.lp_tighten > 0:
        pb, _ = lp_tighten(ctx.product, pb, lo, hi, min(opts.lp_tighten, opts.timeout / 2))
    if pb.method != "crown" and pb.method != "ibp":
        npair = ctx.k * (ctx.k - 1)
        _, ub = spec_bounds(ctx.product, lo, hi, pb, np.eye(2 * npair))
        apply_pair_bounds(ctx, st, ub, cls, opts, want_agree, want_gap, index)
    if not _open(st, opts, want_agree, want_gap):
        return
    bt, bs = split_bounds(pb, ctx.off)
    ub_t, ub_s = st.pair_ub
    run = MilpRunner(opts.solver, deadline, st)
    if want_agree and st.agreement == UNKNOWN:
        milp_agreement(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, opts)
    if want_gap and gap_open(st, opts):
        milp_gap(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, opts)
    if run.left() <= 0.05:
        st.notes.append("time limit")


def _attack(ctx, st: PointState, x0, lo, hi, c, opts, want_agree, want_gap, quick=False):
    """PGD for a disagreement and for the worst gap; only re-checked points are kept. The
    quick attack runs few steps from x0 only, against the likeliest classes."""
    t0 = time.perf_counter()
    a = opts.attack
    targets = None
    if quick:
        targets = likeliest(ctx.tnet32, ctx.snet32, x0, c, a.quick_targets)
        a = replace(a, steps=a.quick_steps, restarts=0)
    _pgd_stage(ctx, st, x0, lo, hi, c, opts.gap_sign, a, want_agree, want_gap, targets)
    st.t_attack += time.perf_counter() - t0


def _pgd_stage(ctx, st: PointState, x0, lo, hi, c, sign, a, want_agree, want_gap, targets):
    if want_agree and st.agreement == UNKNOWN:
        cands = attack_disagreement(ctx.tnet32, ctx.snet32, x0, lo, hi, c, ctx.k, a, targets)
        for cand in cands[:5]:
            if ctx.referee.disagreement(cand, lo, hi):
                st.agreement, st.cex = DISAGREE, np.clip(cand, lo, hi)
                break
    if want_gap:
        xg, _ = attack_gap(ctx.tnet32, ctx.snet32, x0, lo, hi, c, sign, a)
        st.witness_gap(ctx, xg, lo, hi, c, sign)


def _finish(
    st: PointState, preds, cls, opts, index, total: float
) -> tuple[dict, np.ndarray | None]:
    if opts.prop == "gap":
        faithful = UNKNOWN
        st.notes.append("agreement not checked (--property gap)")
    elif st.agreement == DISAGREE or st.gap_lo > opts.delta:
        faithful = UNFAITHFUL
    elif st.agreement == AGREE and (opts.prop == "agreement" or st.gap_hi <= opts.delta):
        faithful = FAITHFUL
    else:
        faithful = UNKNOWN
    tp, sp_ = preds
    fields_ = dict(
        index=index,
        cls=cls,
        teacher_pred=tp,
        student_pred=sp_,
        agreement=st.agreement,
        gap_lower=st.gap_lo,
        gap_upper=st.gap_hi,
        faithful=faithful,
        eps=opts.eps,
        delta=opts.delta,
        property=opts.prop,
        method=opts.method,
        solver=st.solver_used or (opts.solver if opts.method == "milp" else ""),
        gap_method=st.gap_method,
        time_attack_s=st.t_attack,
        time_bounds_s=st.t_bounds,
        time_milp_s=st.t_milp,
        time_total_s=total,
        unstable_ibp=st.unstable.get("ibp", -1),
        unstable_crown=st.unstable.get("crown", -1),
        unstable_alpha=st.unstable.get("alpha-crown", -1),
        note="; ".join(dict.fromkeys(st.notes)),
    )
    return fields_, st.cex


def make_result(fields_: dict, label: int, cex_path: str = "") -> Result:
    return Result(label=label, counterexample=cex_path, **fields_)


__all__ = [
    "CertifyOptions",
    "PairContext",
    "certify_batch",
    "certify_point",
    "make_result",
    "network_robustness",
]
