"""The bounds stage of DESIGN.md section 3 for a batch of points: IBP, CROWN and alpha-CROWN
through the product network, then agreement and Delta_hi from the bounds.

``certify`` calls these steps in order, each for the points still open:
1. ``pair_bounds``: IBP of the product (its undecided ReLUs are reported), CROWN
   pre-activation bounds and CROWN bounds of all pairwise logit differences of both networks,
   in one backward pass through the product -> robust agreement, decoupled gap;
2. ``alpha_pairs`` (``--method alpha-crown``, and the complete methods' narrowing of wide gap
   intervals): alpha-CROWN on the 4(K-1) rows that decide c;
3. ``joint_agreement``: rows over pairs of candidate classes through the product;
4. ``joint_gap``: linear upper bounds of the gap p_T^c - p_S^c itself (``rows.py``);
and, before the MILP of one point, ``milp_bounds`` (the bounds that feed it)."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch

from ...bounds import Bounds, network_bounds, spec_bounds
from ...bounds.alpha import alpha_spec_bounds_batch
from ...bounds.diff import diff_bounds
from ...bounds.propagate import propagate, spec_bounds_batch
from ...bounds.types import PRECISIONS, BatchBounds
from ...milp.tighten import lp_tighten
from ...words import BOUND_METHODS, Method, Property, Verdict
from ..context import PairContext, split_bounds
from ..heads import pair_index, pair_matrix
from ..options import CertifyOptions
from ..rows import (
    candidates,
    differential_agreement,
    differential_gap,
    joint_agreement_rows,
    joint_gap_rows,
    pair_bound_finding,
)
from ..rows import joint_agreement as joint_agreement_holds
from ..rows import joint_gap as joint_gap_bound
from ..state import Finding, PointState, Question, agreement_open, wants_gap


def bound_method(opts: CertifyOptions) -> str:
    """The bounds of the batched stage: the method itself, or CROWN (IBP) before the MILP."""
    if opts.method in BOUND_METHODS:
        return opts.method
    return Method.IBP if opts.milp_bounds == Method.IBP else Method.CROWN


def _from_ub(ctx, q: Question, st: PointState, ub, opts: CertifyOptions, how: str,
             method: str | None = None) -> Finding:  # fmt: skip
    sign = opts.gap_sign if wants_gap(opts) else None
    return pair_bound_finding(ctx.k, q.cls, st.pair_ub, ub, opts.tau, opts.prop != Property.GAP,
                              sign, f"decoupled-{method or bound_method(opts)}", how)  # fmt: skip


def pair_bounds(ctx: PairContext, qs: list[Question], sts: list[PointState],
                opts: CertifyOptions) -> tuple[BatchBounds, list[Finding]]:  # fmt: skip
    """The product's pre-activation bounds (IBP, then CROWN) and one finding per point."""
    lo, hi = _box(qs)
    method = bound_method(opts)
    eng, P = opts.engine, ctx.product
    pb = propagate(P, lo, hi, replace(eng, method="ibp"))
    counts = [(("ibp", n),) for n in pb.n_unstable().tolist()]
    if method != Method.IBP:
        pb = propagate(P, lo, hi, replace(eng, method="crown"))
        counts = [
            c + (("crown", n),) for c, n in zip(counts, pb.n_unstable().tolist(), strict=True)
        ]
    spec = replace(eng, method="crown" if method != Method.IBP else "ibp")
    npair = ctx.npair
    # upper bounds suffice (the pairs come in both orders); rows of one network alone pass
    # through that network only, so each network's rows go in their own pass
    eye = np.eye(2 * npair)
    ub = np.concatenate([
        spec_bounds_batch(P, lo, hi, pb, eye[part], spec, upper_only=True)[1].double().cpu().numpy()
        for part in (slice(0, npair), slice(npair, 2 * npair))
    ], axis=1)  # fmt: skip
    out = []
    for b, (q, st) in enumerate(zip(qs, sts, strict=True)):
        f = _from_ub(ctx, q, st, ub[b], opts, "bounds")
        out.append(replace(f, unstable=counts[b]))
    return pb, out


def differential(ctx: PairContext, qs, sts, pb: BatchBounds, idx: list[int],
                 opts: CertifyOptions) -> list[Finding]:  # fmt: skip
    """Same-shape pairs: bounds on the pairwise rows of z_T - kappa z_S (``bounds/diff.py``)
    -> agreement (no strict disagreement) and Delta_hi; one finding per point of ``idx``."""
    lo, hi = _box([qs[b] for b in idx])
    bt, bs = split_bounds(pb.take(idx), ctx.off)
    eng = opts.engine
    pm = pair_matrix(ctx.k)
    ubs = [(kappa, diff_bounds(ctx.teacher, ctx.student, lo, hi, bt, bs, pm, kappa,
                               PRECISIONS[eng.precision], eng.device)[1].double().cpu().numpy())
           for kappa in ctx.kappas]  # fmt: skip
    out = []
    for i, b in enumerate(idx):
        q, st = qs[b], sts[b]
        ub_t, ub_s = ctx.split(st.pair_ub)
        mine = [(kappa, ub[i]) for kappa, ub in ubs]
        verdict, notes, g = Verdict.UNKNOWN, (), float("nan")
        if opts.prop != Property.GAP and agreement_open(st, opts):
            ct, cs = candidates(ub_t, ctx.k, opts.tau), candidates(ub_s, ctx.k, opts.tau)
            if differential_agreement(mine, ct, cs, ctx.k, opts.tau):
                verdict = Verdict.AGREE
                notes = ("no strict disagreement by differential bounds",)
        if wants_gap(opts):
            g = differential_gap(mine[0][1], ub_t, ub_s, q.cls, ctx.k, opts.gap_sign)
        out.append(Finding(how="differential bounds", agreement=verdict, notes=notes, gap_hi=g,
                           gap_method="differential"))  # fmt: skip
    return out


def alpha_pairs(ctx: PairContext, qs, sts, pb: BatchBounds, idx: list[int],
                opts: CertifyOptions, deadline: float = math.inf) -> list[Finding]:  # fmt: skip
    """alpha-CROWN on the rows that matter for class c: z_j - z_c and z_c - z_j, both nets;
    one finding per point of ``idx``."""
    k, npair = ctx.k, ctx.npair
    rows = []
    for b in idx:
        c = qs[b].cls
        r = [pair_index(k, j, c) for j in range(k) if j != c]
        rows.append(r + [pair_index(k, c, j) for j in range(k) if j != c])
    rows = np.array(rows)
    ubs = []
    for off in (0, npair):  # each network's rows in their own pass
        C = np.zeros((len(idx), rows.shape[1], 2 * npair))
        np.put_along_axis(C, rows[..., None] + off, 1.0, axis=2)
        ubs.append(_spec(ctx, qs, pb, idx, C, Method.ALPHA_CROWN, opts, deadline))
    rows = np.concatenate([rows, rows + npair], axis=1)
    ub = np.concatenate(ubs, axis=1)
    out = []
    for i, b in enumerate(idx):
        full = np.full(2 * npair, np.inf)
        full[rows[i]] = ub[i]
        out.append(_from_ub(ctx, qs[b], sts[b], full, opts, "alpha-CROWN bounds",
                            Method.ALPHA_CROWN))  # fmt: skip
    return out


def joint_agreement(ctx: PairContext, qs, sts, pb: BatchBounds, idx: list[int],
                    opts: CertifyOptions, deadline: float = math.inf) -> list[Finding]:  # fmt: skip
    """Agreement from rows over the head that exclude every (a, b) pair of candidates."""
    if not idx:
        return []
    blocks = []
    for b in idx:
        ub_t, ub_s = ctx.split(sts[b].pair_ub)
        blocks.append(joint_agreement_rows(candidates(ub_t, ctx.k, -opts.tau),
                                           candidates(ub_s, ctx.k, -opts.tau), ctx.k))  # fmt: skip
    C = _pad([r.reshape(-1, r.shape[-1]) for r in blocks])
    ub = _spec(ctx, qs, pb, idx, C, bound_method(opts), opts, deadline)
    out = []
    for i in range(len(idx)):
        shape = blocks[i].shape[:2]
        agree = shape[0] and joint_agreement_holds(ub[i, : shape[0] * shape[1]].reshape(shape),
                                                   opts.tau)  # fmt: skip
        out.append(
            Finding(how="joint bounds", agreement=Verdict.AGREE if agree else Verdict.UNKNOWN)
        )
    return out


def joint_gap(ctx: PairContext, qs, sts, pb: BatchBounds, idx: list[int],
              opts: CertifyOptions, deadline: float = math.inf,
              method: str | None = None) -> list[Finding]:  # fmt: skip
    """Delta_hi from linear upper bounds of the gap, tangent at x and at the gap witness;
    ``method``: the bounds of the rows (default: the stage's, ``bound_method``)."""
    if not idx:
        return []
    method = method or bound_method(opts)
    made = []
    for b in idx:
        q, st = qs[b], sts[b]
        tangents = [ctx.margins_at(x, q.cls) for x in (q.x, st.gap_x) if x is not None]
        made.append(joint_gap_rows(*ctx.split(st.pair_ub), q.cls, ctx.k, opts.gap_sign, tangents))
    ub = _spec(ctx, qs, pb, idx, _pad([m[0] for m in made]), method, opts, deadline)
    out = []
    for i in range(len(idx)):
        rows, consts, side = made[i]
        g = joint_gap_bound(ub[i, : len(rows)], consts, side)
        out.append(Finding(how="joint bounds", gap_hi=g, gap_method=f"joint-{method}"))
    return out


def milp_bounds(ctx: PairContext, q: Question, st: PointState, bounds: Bounds,
                opts: CertifyOptions, seconds: float) -> tuple[Bounds, list[Finding]]:  # fmt: skip
    """The bounds that feed one point's MILP: alpha-CROWN (``--milp-bounds``), then LP
    tightening for ``opts.lp_tighten`` of ``seconds``; their pair bounds as a finding."""
    out = []
    if opts.milp_bounds == Method.ALPHA_CROWN:
        until = time.perf_counter() + seconds  # the point's deadline
        bounds = network_bounds(ctx.product, q.lo, q.hi, "alpha-crown", deadline=until)
        out.append(Finding(how="alpha-CROWN bounds",
                           unstable=(("alpha-crown", bounds.n_unstable()),)))  # fmt: skip
    if opts.lp_tighten > 0:
        bounds, _ = lp_tighten(ctx.product, bounds, q.lo, q.hi, opts.lp_tighten * seconds)
    if bounds.method not in (Method.CROWN, Method.IBP):
        _, ub = spec_bounds(ctx.product, q.lo, q.hi, bounds, np.eye(2 * ctx.npair))
        out.append(_from_ub(ctx, q, st, ub, opts, "MILP bounds"))
    return bounds, out


def _box(qs: list[Question]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([q.lo for q in qs]), np.stack([q.hi for q in qs])


def _spec(ctx, qs, pb: BatchBounds, idx, C, method, opts, deadline: float = math.inf):
    """Upper bounds (len(idx), S) of rows C (len(idx), S, 2P) for the points idx; alpha-CROWN's
    iterations stop at ``deadline``."""
    lo, hi = _box([qs[b] for b in idx])
    eng = replace(opts.engine, method=method)
    args = (ctx.product, lo, hi, pb.take(idx), torch.as_tensor(C), eng)
    if method == Method.ALPHA_CROWN:
        _, ub = alpha_spec_bounds_batch(*args, upper_only=True, deadline=deadline)
    else:
        _, ub = spec_bounds_batch(*args, upper_only=True)
    return ub.double().cpu().numpy()


def _pad(blocks: list[np.ndarray]) -> np.ndarray:
    """Stack (S_i, n) row blocks into (len, max S_i, n), padding with zero rows."""
    s = max(len(r) for r in blocks)
    out = np.zeros((len(blocks), max(s, 1), blocks[0].shape[-1]))
    for i, r in enumerate(blocks):
        out[i, : len(r)] = r
    return out
