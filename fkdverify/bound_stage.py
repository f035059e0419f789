"""The bounds stage of DESIGN.md section 3 for a batch of points: IBP, CROWN and alpha-CROWN
through the product network, then agreement and Delta_hi from the bounds.

Order, cheap to expensive, each step only for the points still open:
1. IBP of the product (its undecided ReLUs are reported);
2. CROWN pre-activation bounds and CROWN bounds of all pairwise logit differences of both
   networks, in one backward pass through the product -> robust agreement, decoupled gap;
3. alpha-CROWN (``--method alpha-crown``) on the 4(K-1) rows that decide class c;
4. joint conditions through the product: agreement rows over pairs of candidate classes, and
   linear upper bounds of the gap p_T^c - p_S^c itself (``verdicts.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .bounds.alpha import alpha_spec_bounds_batch
from .bounds.propagate import BatchBounds, propagate, spec_bounds_batch
from .context import CertifyOptions, PairContext, PointState
from .errors import SoundnessError
from .gap_stage import gap_open
from .milp.properties import pair_index
from .results import AGREE, DISAGREE, UNKNOWN
from .verdicts import (
    candidates,
    decoupled_gap,
    joint_agreement,
    joint_agreement_rows,
    joint_gap,
    joint_gap_rows,
    margin_vector,
)


def bound_method(opts: CertifyOptions) -> str:
    if opts.method in ("ibp", "crown", "alpha-crown"):
        return opts.method
    return "ibp" if opts.milp_bounds == "ibp" else "crown"


def bound_stage(ctx: PairContext, sts: list[PointState], lo, hi, cls, opts: CertifyOptions,
                want_agree: bool, want_gap: bool, x0s) -> BatchBounds:  # fmt: skip
    """Decide what bounds can for points (lo, hi: (B, n) arrays; cls: classes; x0s: the
    points); updates ``sts`` in place; returns the product's pre-activation bounds."""
    method = bound_method(opts)
    eng = opts.engine
    P = ctx.product
    pb = propagate(P, lo, hi, replace(eng, method="ibp"))
    _count(sts, "ibp", pb)
    if method != "ibp":
        pb = propagate(P, lo, hi, replace(eng, method="crown"))
        _count(sts, "crown", pb)
    spec = replace(eng, method="crown" if method != "ibp" else "ibp")
    npair = ctx.k * (ctx.k - 1)
    # upper bounds suffice (the pairs come in both orders); rows of one network alone pass
    # through that network only, so each network's rows go in their own pass
    eye = np.eye(2 * npair)
    ub = np.concatenate([
        spec_bounds_batch(P, lo, hi, pb, eye[part], spec, upper_only=True)[1].double().cpu().numpy()
        for part in (slice(0, npair), slice(npair, 2 * npair))
    ], axis=1)  # fmt: skip
    for b, st in enumerate(sts):
        apply_pair_bounds(ctx, st, ub[b], cls[b], opts, want_agree, want_gap, b)
    still = lambda: [b for b, st in enumerate(sts) if is_open(st, opts, want_agree, want_gap)]  # noqa: E731
    if method == "alpha-crown" and still():
        _alpha_pairs(ctx, sts, lo, hi, cls, opts, want_agree, want_gap, pb, still())
    if method != "ibp" and want_agree:
        _joint_agreement(ctx, sts, lo, hi, opts, pb, method, still())
    if method != "ibp" and want_gap:
        open_gap = [b for b in still() if gap_open(sts[b], opts)]
        _joint_gap(ctx, sts, lo, hi, cls, opts, pb, method, open_gap, x0s)
    return pb


def _count(sts, name: str, pb: BatchBounds) -> None:
    for st, n in zip(sts, pb.n_unstable().tolist(), strict=True):
        st.unstable[name] = int(n)


def is_open(st: PointState, opts, want_agree, want_gap) -> bool:
    return (want_agree and st.agreement == UNKNOWN) or (want_gap and gap_open(st, opts))


def apply_pair_bounds(ctx, st: PointState, ub, c, opts, want_agree, want_gap, index=0) -> None:
    """Upper bounds of all pairwise differences (both networks) -> agreement when each network
    has a single possible argmax, the same one; the decoupled gap bound."""
    npair = ctx.k * (ctx.k - 1)
    if st.pair_ub:  # bounds only ever tighten
        ub = np.minimum(ub, np.concatenate(st.pair_ub))
    ub_t, ub_s = ub[:npair], ub[npair:]
    st.pair_ub = (ub_t, ub_s)
    cand_t = candidates(ub_t, ctx.k, -opts.tau)
    cand_s = candidates(ub_s, ctx.k, -opts.tau)
    if want_agree and len(cand_t) == 1 and cand_t == cand_s:
        _set_agree(st, index, "bounds")
    if want_gap:
        g = decoupled_gap(ub_t, ub_s, c, ctx.k, opts.gap_sign)
        if not g >= st.gap_hi:
            st.gap_hi, st.gap_method = g, f"decoupled-{bound_method(opts)}"


def _set_agree(st: PointState, index, how: str) -> None:
    if st.agreement == DISAGREE:
        raise SoundnessError(f"point {index}: {how} prove agreement, the attack disagrees")
    st.agreement = AGREE


def _spec(ctx, lo, hi, pb: BatchBounds, idx, C, method, opts):
    """Upper bounds (len(idx), S) of rows C (len(idx), S, 2P) for the points idx."""
    sub = pb.take(idx)
    eng = replace(opts.engine, method=method)
    C = torch.as_tensor(C)
    f = alpha_spec_bounds_batch if method == "alpha-crown" else spec_bounds_batch
    _, ub = f(ctx.product, lo[idx], hi[idx], sub, C, eng, upper_only=True)
    return ub.double().cpu().numpy()


def _alpha_pairs(ctx, sts, lo, hi, cls, opts, want_agree, want_gap, pb, idx):
    """alpha-CROWN on the rows that matter for class c: z_j - z_c and z_c - z_j, both nets."""
    k, npair = ctx.k, ctx.k * (ctx.k - 1)
    rows = []
    for b in idx:
        c = cls[b]
        r = [pair_index(k, j, c) for j in range(k) if j != c]
        rows.append(r + [pair_index(k, c, j) for j in range(k) if j != c])
    rows = np.array(rows)
    ubs = []
    for off in (0, npair):  # each network's rows in their own pass
        C = np.zeros((len(idx), rows.shape[1], 2 * npair))
        np.put_along_axis(C, rows[..., None] + off, 1.0, axis=2)
        ubs.append(_spec(ctx, lo, hi, pb, idx, C, "alpha-crown", opts))
    rows = np.concatenate([rows, rows + npair], axis=1)
    ub = np.concatenate(ubs, axis=1)
    for i, b in enumerate(idx):
        full = np.full(2 * npair, np.inf)
        full[rows[i]] = ub[i]
        apply_pair_bounds(ctx, sts[b], full, cls[b], opts, want_agree, want_gap, b)


def _joint_agreement(ctx, sts, lo, hi, opts, pb, method, idx):
    idx = [b for b in idx if sts[b].agreement == UNKNOWN]
    blocks = []
    for b in idx:
        ub_t, ub_s = sts[b].pair_ub
        blocks.append(joint_agreement_rows(candidates(ub_t, ctx.k, -opts.tau),
                                           candidates(ub_s, ctx.k, -opts.tau), ctx.k))  # fmt: skip
    if not idx:
        return
    ub = _spec(ctx, lo, hi, pb, idx, _pad([r.reshape(-1, r.shape[-1]) for r in blocks]), method,
               opts)  # fmt: skip
    for i, b in enumerate(idx):
        shape = blocks[i].shape[:2]
        if shape[0] and joint_agreement(ub[i, : shape[0] * shape[1]].reshape(shape), opts.tau):
            _set_agree(sts[b], b, "joint bounds")


def _joint_gap(ctx, sts, lo, hi, cls, opts, pb, method, idx, x0s):
    if not idx:
        return
    made = []
    for b in idx:
        st, c = sts[b], cls[b]
        tangents = []
        for x in (x0s[b], st.gap_x):
            if x is not None:
                with torch.no_grad():
                    xt = torch.as_tensor(np.asarray(x, np.float64))[None]
                    zt, zs = ctx.tnet(xt)[0].numpy(), ctx.snet(xt)[0].numpy()
                tangents.append((margin_vector(zt, c), margin_vector(zs, c)))
        made.append(joint_gap_rows(*st.pair_ub, c, ctx.k, opts.gap_sign, tangents))
    ub = _spec(ctx, lo, hi, pb, idx, _pad([m[0] for m in made]), method, opts)
    for i, b in enumerate(idx):
        rows, consts, side = made[i]
        g = joint_gap(ub[i, : len(rows)], consts, side)
        if g < sts[b].gap_hi:
            sts[b].gap_hi, sts[b].gap_method = g, f"joint-{method}"


def _pad(blocks: list[np.ndarray]) -> np.ndarray:
    """Stack (S_i, n) row blocks into (len, max S_i, n), padding with zero rows."""
    s = max(len(r) for r in blocks)
    out = np.zeros((len(blocks), max(s, 1), blocks[0].shape[-1]))
    for i, r in enumerate(blocks):
        out[i, : len(r)] = r
    return out
