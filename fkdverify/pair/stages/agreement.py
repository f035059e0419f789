"""The agreement stage after bounds (DESIGN.md section 3): exact MILPs on the pair.

First each network's robustness at class c, one feasibility MILP per class j that the bounds
leave open (small models, no variables for stable neurons); if both are robust the pair
agrees; a robustness witness where the other network keeps c is a disagreement; otherwise
the one-hot joint MILP over the product network (Appendix A) looks for a strict
disagreement. Every proof MILP asks with a margin tau: ``z_j - z_c >= -tau`` infeasible
proves ``z_j < z_c`` beyond the solver's tolerances; a feasible point is only a candidate
until the referee confirms it on the original ONNX files.

Agreement is "no strict disagreement" (DESIGN.md section 1): where both networks leave c
inside the ball, the joint MILP with margin tau decides it; infeasible proves ``agree``."""

from __future__ import annotations

import time

import numpy as np

from ...bounds import Bounds, network_bounds, spec_bounds
from ...milp.model import Status
from ...milp.properties import margin_violation
from ...milp.run import MilpRunner
from ...words import Verdict
from ..context import PairContext
from ..heads import pair_index, pair_matrix
from ..milp_models import disagreement
from ..options import CertifyOptions
from ..rows import candidates
from ..state import Finding, PointState, Question

ROBUST, NOT_ROBUST = "robust", "not"


def _robust(ctx, run: MilpRunner, ub, net, b, lo, hi, c, cand, opts, box=None):
    """(status, witness): 'robust' | 'not' (with a point where net's strict argmax != c) |
    'unknown'. One feasibility MILP per class j the bounds leave open, likeliest first;
    ``ub``: the network's pairwise upper bounds; ``box``: where witnesses are clipped to
    (default: [lo, hi])."""
    box = (lo, hi) if box is None else box
    status = ROBUST
    for j in sorted((j for j in cand if j != c), key=lambda j: -ub[pair_index(ctx.k, j, c)]):
        sol = None
        for t in (-opts.tau, opts.strict):  # a proof attempt, then a strict witness
            model, xid = margin_violation(net, b, lo, hi, c, j, t)
            sol = run(model)
            if sol is None:
                return Verdict.UNKNOWN, None
            if sol.status != Status.OPTIMAL:
                break
            x = np.clip(sol.x[xid], *box)
            pick = ctx.referee.strict_pick(x, teacher=net is ctx.teacher)
            if pick is not None and pick != c:
                return NOT_ROBUST, x
        if sol.status != Status.INFEASIBLE or t > 0:
            status = Verdict.UNKNOWN
    return status, None


def network_robustness(ctx: PairContext, teacher: bool, lo, hi, c: int, opts: CertifyOptions):
    """Is one network of the pair robust at class c on the box? ('robust' | 'not' | 'unknown',
    witness re-checked on the ONNX file or None): CROWN, then one MILP per open class."""
    net = ctx.teacher if teacher else ctx.student
    deadline = time.perf_counter() + opts.timeout  # one limit for the bounds and the MILPs
    b = network_bounds(net, lo, hi, opts.milp_bounds, deadline=deadline)
    _, ub = spec_bounds(net, lo, hi, b, pair_matrix(ctx.k))
    cand = candidates(ub, ctx.k, -opts.tau)
    if cand == [c]:
        return ROBUST, None
    run = MilpRunner(opts.solver, deadline)
    return _robust(ctx, run, ub, net, b, lo, hi, c, cand, opts)


def milp_agreement(ctx: PairContext, q: Question, st: PointState, bt: Bounds, bs: Bounds,
                   run: MilpRunner, opts: CertifyOptions) -> list[Finding]:  # fmt: skip
    """Each network's robustness at c by MILP, then the joint one-hot MILP (module text)."""
    ref, lo, hi, c = ctx.referee, q.lo, q.hi, q.cls
    ub_t, ub_s = ctx.split(st.pair_ub)
    cand_t = candidates(ub_t, ctx.k, -opts.tau)
    cand_s = candidates(ub_s, ctx.k, -opts.tau)
    # The network with fewer undecided ReLUs first: its witness is often a disagreement
    # already (the other keeps c there), which spares the other's harder proof.
    nets = sorted([(ctx.teacher, bt, cand_t, ub_t), (ctx.student, bs, cand_s, ub_s)],
                  key=lambda n: n[1].n_unstable())  # fmt: skip
    verdicts = []
    for net, b, cand, ub in nets:
        r, x = _robust(ctx, run, ub, net, b, lo, hi, c, cand, opts, (q.clo, q.chi))
        if r == NOT_ROBUST and ref.disagreement(x, q.clo, q.chi):
            return [Finding(how="milp", agreement=Verdict.DISAGREE, cex=x)]
        verdicts.append(r)  # on 'unknown' the other network may still give a disagreement
    if verdicts == [ROBUST, ROBUST]:
        return [Finding(how="milp", agreement=Verdict.AGREE)]
    if Verdict.UNKNOWN in verdicts or run.expired():
        return []
    # Both networks leave class c. Agreement is then "no strict disagreement" (DESIGN.md
    # section 1): no x where the teacher's top class beats every other by tau and the
    # student's top class b != a does too. The joint one-hot MILP over the product asks for
    # one with margin tau (infeasible: agree), then, if its witness does not survive the
    # re-check (a near-tie), for a clearer one with margin ``strict``.
    for t in (opts.tau, opts.strict):
        ct, cs = candidates(ub_t, ctx.k, t), candidates(ub_s, ctx.k, t)
        model, xid = disagreement(ctx.teacher, ctx.student, bt, bs, lo, hi, ct, cs, ub_t,
                                  ub_s, t)  # fmt: skip
        sol = run(model)
        if sol is None or sol.status not in (Status.OPTIMAL, Status.INFEASIBLE):
            return []
        if sol.status == Status.INFEASIBLE:
            if t == opts.tau:
                note = "both networks change class inside the ball, never apart"
                return [Finding(how="joint milp", agreement=Verdict.AGREE, notes=(note,))]
            return [Finding(how="joint milp", notes=("only near-tie disagreements found",))]
        x = np.clip(sol.x[xid], q.clo, q.chi)
        if ref.disagreement(x, q.clo, q.chi):
            return [Finding(how="joint milp", agreement=Verdict.DISAGREE, cex=x)]
    return []
