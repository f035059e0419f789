"""One point through the stages of DESIGN.md section 3: attack -> bounds -> exact MILP.

The MILP stages live in ``agreement.py`` and ``gap_stage.py``; shared state in
``context.py``."""

from __future__ import annotations

import time

import numpy as np

from .agreement import milp_agreement, network_robustness
from .attack import attack_disagreement, attack_gap
from .bounds import network_bounds, spec_bounds
from .context import (
    CertifyOptions,
    MilpRunner,
    PairContext,
    PointState,
    candidates,
    split_bounds,
)
from .errors import InputError, SoundnessError
from .gap_stage import decoupled_gap, gap_open, milp_gap
from .milp.properties import pair_matrix
from .milp.tighten import lp_tighten
from .results import AGREE, DISAGREE, FAITHFUL, UNFAITHFUL, UNKNOWN, Result


def certify_point(
    ctx: PairContext,
    x0: np.ndarray,
    cls: int,
    opts: CertifyOptions,
    index=0,
    box=None,
    preds: tuple[int, int] | None = None,
):
    """Decide one point. x0: flat input (n,); cls: class c; ``box`` = (lo, hi) replaces the
    ball B(x0, eps) when given (x0 must lie in it); ``preds`` = the referee's (teacher,
    student) predictions at x0 when the caller has them. Returns (Result fields, cex)."""
    t_start = time.perf_counter()
    deadline = t_start + opts.timeout
    st = PointState()
    if box is None:
        lo = np.clip(x0 - opts.eps, opts.lo, opts.hi)
        hi = np.clip(x0 + opts.eps, opts.lo, opts.hi)
    else:
        lo, hi = (np.asarray(b, np.float64).reshape(-1) for b in box)
        if not (np.all(lo <= x0) and np.all(x0 <= hi)):
            raise InputError("the point does not lie in the given box")
    want_agree = opts.prop in ("faithful", "agreement")
    want_gap = opts.prop in ("faithful", "gap")

    # 1. attack --------------------------------------------------------------------------
    t0 = time.perf_counter()
    if opts.use_attack:
        _attack(ctx, st, x0, lo, hi, cls, opts, want_agree, want_gap)
    if want_gap:  # the clean point is a witness too
        st.witness_gap(ctx, x0, lo, hi, cls, opts.gap_sign)
    st.t_attack = time.perf_counter() - t0

    # 2. bounds --------------------------------------------------------------------------
    if opts.method != "attack":
        t0 = time.perf_counter()
        ibp = opts.method == "ibp" or (opts.method == "milp" and opts.milp_bounds == "ibp")
        first = "ibp" if ibp else "crown"
        pb = network_bounds(ctx.product, lo, hi, first)
        _decide_by_bounds(ctx, st, pb, lo, hi, cls, opts, want_agree, want_gap, index)
        # the MILP's bounds: tightened only where the cheap ones left the point open
        if opts.method == "milp" and _milp_needed(st, opts, want_agree, want_gap):
            if opts.milp_bounds == "alpha-crown":
                pb = network_bounds(ctx.product, lo, hi, "alpha-crown")
            if opts.lp_tighten > 0:
                pb, _ = lp_tighten(ctx.product, pb, lo, hi, min(opts.lp_tighten, opts.timeout / 2))
            if pb.method != first:
                _decide_by_bounds(ctx, st, pb, lo, hi, cls, opts, want_agree, want_gap, index)
        bt, bs = split_bounds(pb, ctx.off)
        ub_t, ub_s = st.pair_ub
        st.t_bounds = time.perf_counter() - t0

        # 3. MILP ------------------------------------------------------------------------
        if opts.method == "milp":
            run = MilpRunner(opts.solver, deadline, st)
            if want_agree and st.agreement == UNKNOWN:
                milp_agreement(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, opts)
            if want_gap and gap_open(st, opts):
                milp_gap(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, opts)
            if run.left() <= 0.05:
                st.notes.append("time limit")

    if st.gap_lo > st.gap_hi:
        raise SoundnessError(f"point {index}: gap lower {st.gap_lo} > upper {st.gap_hi}")
    preds = preds if preds is not None else ctx.referee.predictions(x0)
    return _finish(st, preds, cls, opts, index, t_start)


def _decide_by_bounds(ctx, st: PointState, pb, lo, hi, c, opts, want_agree, want_gap, index):
    """Pairwise logit-difference bounds of both networks through the product; agreement when
    each network has a single possible argmax (the same one); the decoupled gap bound."""
    npair = len(pair_matrix(ctx.k))
    _, ub = spec_bounds(ctx.product, lo, hi, pb, np.eye(2 * npair))
    if st.pair_ub:  # bounds only ever tighten
        ub = np.minimum(ub, np.concatenate(st.pair_ub))
    ub_t, ub_s = ub[:npair], ub[npair:]
    st.pair_ub = (ub_t, ub_s)
    st.n_unstable = pb.n_unstable()
    cand_t = candidates(ub_t, ctx.k, -opts.tau)
    cand_s = candidates(ub_s, ctx.k, -opts.tau)
    if want_agree and len(cand_t) == 1 and cand_t == cand_s:
        if st.agreement == DISAGREE:
            raise SoundnessError(f"point {index}: bounds prove agreement, attack disagrees")
        st.agreement = AGREE
    if want_gap:
        g = decoupled_gap(ub_t, ub_s, c, ctx.k, opts.gap_sign)
        if not g >= st.gap_hi:
            st.gap_hi, st.gap_method = g, f"decoupled-{pb.method}"


def _milp_needed(st: PointState, opts, want_agree: bool, want_gap: bool) -> bool:
    return (want_agree and st.agreement == UNKNOWN) or (want_gap and gap_open(st, opts))


def _attack(ctx, st: PointState, x0, lo, hi, c, opts, want_agree: bool, want_gap: bool):
    """PGD for a disagreement and for the worst gap; only re-checked points are kept."""
    if want_agree:
        cands = attack_disagreement(ctx.tnet, ctx.snet, x0, lo, hi, c, ctx.k, opts.attack)
        for cand in cands[:5]:
            if ctx.referee.disagreement(cand, lo, hi):
                st.agreement, st.cex = DISAGREE, np.clip(cand, lo, hi)
                break
    if want_gap:
        xg, _ = attack_gap(ctx.tnet, ctx.snet, x0, lo, hi, c, opts.gap_sign, opts.attack)
        st.witness_gap(ctx, xg, lo, hi, c, opts.gap_sign)


def _finish(st: PointState, preds, cls, opts, index, t_start) -> tuple[dict, np.ndarray | None]:
    if opts.prop == "gap":
        faithful = UNKNOWN
        st.notes.append("agreement not checked (--property gap)")
    elif st.agreement == DISAGREE or st.gap_lo > opts.delta:
        faithful = UNFAITHFUL
    elif st.agreement == AGREE and st.gap_hi <= opts.delta:
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
        time_total_s=time.perf_counter() - t_start,
        n_unstable=st.n_unstable,
        note="; ".join(dict.fromkeys(st.notes)),
    )
    return fields_, st.cex


def make_result(fields_: dict, label: int, cex_path: str = "") -> Result:
    return Result(label=label, counterexample=cex_path, **fields_)


__all__ = ["CertifyOptions", "PairContext", "certify_point", "make_result", "network_robustness"]
