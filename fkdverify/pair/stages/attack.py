"""The attack stage (DESIGN.md section 3): PGD for a strict disagreement and for the worst
confidence gap. Only points the referee re-checks on the ONNX files become findings."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ... import defaults as D
from ...words import CERTIFY_COMPLETE_METHODS, Verdict
from ..attack import attack_disagreement, attack_gap, likeliest
from ..context import PairContext
from ..options import CertifyOptions
from ..recheck import gap_witness
from ..rows import candidates
from ..state import Finding, PointState, Question, agreement_open, wants_gap

CANDIDATES = 5  # disagreement candidates re-checked per point, best first
ATTACK_ROUNDS = 4  # the full attack's rounds at most (within ATTACK_SHARE of the time)


def attack(ctx: PairContext, qs: list[Question], sts: list[PointState], opts: CertifyOptions,
           quick: bool = False) -> list[list[Finding]]:  # fmt: skip
    """Findings per point. The quick attack (before the bounds) runs a few steps from x only,
    against the likeliest classes; the full one restarts from random points too."""
    return [_one(ctx, q, st, opts, quick) for q, st in zip(qs, sts, strict=True)]


def window(st: PointState, opts: CertifyOptions, quick: bool) -> float:
    """Seconds the attack of a point may take: never past the point's time limit; the full
    attack before a complete stage gets ATTACK_SHARE of the limit, and otherwise (bounds or
    attack only: nothing follows it) what is left."""
    left = max(opts.timeout - st.spent(), 0.0)
    if quick or opts.method not in CERTIFY_COMPLETE_METHODS:
        return left
    return min(left, D.ATTACK_SHARE * opts.timeout)


def _one(ctx: PairContext, q: Question, st: PointState, opts: CertifyOptions, quick: bool):
    t0 = time.perf_counter()
    until = t0 + window(st, opts, quick)
    a, targets = opts.attack, None
    if quick:
        targets = likeliest(ctx.tnet32, ctx.snet32, q.x, q.cls, a.quick_targets)
        a = replace(a, steps=a.quick_steps, restarts=0)
    out = []
    if agreement_open(st, opts):  # half the window when the gap attack follows
        half = t0 + (until - t0) / 2 if wants_gap(opts) else until
        x = _disagreement(ctx, q, st, opts, a, targets, quick, t0, half)
        if x is not None:
            out.append(Finding(how="attack", agreement=Verdict.DISAGREE, cex=x))
    if wants_gap(opts):
        xg, _ = attack_gap(ctx.tnet32, ctx.snet32, q.x, q.lo, q.hi, q.cls, opts.gap_sign, a,
                           until)  # fmt: skip
        out.append(gap_witness(ctx.referee, q, xg, opts.gap_sign, "attack"))
    out.append(Finding(how="attack", times=(("attack", time.perf_counter() - t0),)))
    return out


def _disagreement(ctx, q, st, opts, a, targets, quick, t0, until):
    """A re-checked disagreement or None. The full attack (after the bounds) first aims at
    one network keeping c, then restarts with new seeds and at the class pairs (a, b) the
    bounds still allow: ``ATTACK_ROUNDS`` rounds at most, each started only when it can end
    by ``until`` (at the pace of the rounds so far) and within ``ATTACK_SHARE`` of the
    point's time; PGD itself stops at ``until``."""
    rounds = 0
    while True:
        pairs = None
        if rounds % 2 == 1:  # every other round: the pairs (a, b) the bounds allow (all
            ct = cs = list(range(ctx.k))  # pairs before any bounds)
            if st.pair_ub is not None:
                ub_t, ub_s = ctx.split(st.pair_ub)
                ct, cs = candidates(ub_t, ctx.k, -opts.tau), candidates(ub_s, ctx.k, -opts.tau)
            pairs = [(p, r) for p in ct for r in cs if p != r] or None
        cands = attack_disagreement(ctx.tnet32, ctx.snet32, q.x, q.lo, q.hi, q.cls, ctx.k,
                                    replace(a, seed=a.seed + rounds), targets, pairs,
                                    until)  # fmt: skip
        for cand in cands[:CANDIDATES]:
            if ctx.referee.disagreement(cand, q.clo, q.chi):
                return np.clip(cand, q.clo, q.chi)
        rounds += 1
        spent = time.perf_counter() - t0
        pace = spent * (rounds + 1) / rounds  # the attack's seconds after one more round
        if (quick or rounds >= ATTACK_ROUNDS or pace > D.ATTACK_SHARE * opts.timeout
                or t0 + pace > until):  # fmt: skip
            return None
