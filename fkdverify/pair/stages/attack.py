"""The attack stage (DESIGN.md section 3): PGD for a strict disagreement and for the worst
confidence gap. Only points the referee re-checks on the ONNX files become findings."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ...words import Verdict
from ..attack import attack_disagreement, attack_gap, likeliest
from ..context import PairContext
from ..options import CertifyOptions
from ..recheck import gap_witness
from ..state import Finding, PointState, Question, agreement_open, wants_gap

CANDIDATES = 5  # disagreement candidates re-checked per point, best first


def attack(ctx: PairContext, qs: list[Question], sts: list[PointState], opts: CertifyOptions,
           quick: bool = False) -> list[list[Finding]]:  # fmt: skip
    """Findings per point. The quick attack (before the bounds) runs a few steps from x only,
    against the likeliest classes; the full one restarts from random points too."""
    return [_one(ctx, q, st, opts, quick) for q, st in zip(qs, sts, strict=True)]


def _one(ctx: PairContext, q: Question, st: PointState, opts: CertifyOptions, quick: bool):
    t0 = time.perf_counter()
    a, targets = opts.attack, None
    if quick:
        targets = likeliest(ctx.tnet32, ctx.snet32, q.x, q.cls, a.quick_targets)
        a = replace(a, steps=a.quick_steps, restarts=0)
    out = []
    if agreement_open(st, opts):
        cands = attack_disagreement(ctx.tnet32, ctx.snet32, q.x, q.lo, q.hi, q.cls, ctx.k, a,
                                    targets)  # fmt: skip
        for cand in cands[:CANDIDATES]:
            if ctx.referee.disagreement(cand, q.clo, q.chi):
                x = np.clip(cand, q.clo, q.chi)
                out.append(Finding(how="attack", agreement=Verdict.DISAGREE, cex=x))
                break
    if wants_gap(opts):
        xg, _ = attack_gap(ctx.tnet32, ctx.snet32, q.x, q.lo, q.hi, q.cls, opts.gap_sign, a)
        out.append(gap_witness(ctx.referee, q, xg, opts.gap_sign, "attack"))
    out.append(Finding(how="attack", times=(("attack", time.perf_counter() - t0),)))
    return out
