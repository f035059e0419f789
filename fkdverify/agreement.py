"""The agreement stage after bounds (DESIGN.md section 3): exact MILPs on the pair.

First each network's robustness at class c, one feasibility MILP per class j that the bounds
leave open (small models, no variables for stable neurons); if both are robust the pair
agrees; a robustness witness where the other network keeps c is a disagreement; otherwise
the one-hot joint MILP over the product network (Appendix A) looks for a strict
disagreement. Every proof MILP asks with a margin tau: ``z_j - z_c >= -tau`` infeasible
proves ``z_j < z_c`` beyond the solver's tolerances; a feasible point is only a candidate
until the referee confirms it on the original ONNX files.

Why agreement is proven only as robust agreement: if both networks leave c inside the ball and
still agreed everywhere, their decision boundaries would coincide there, and at those points
both tie; a proof that tolerates the solver's tolerance cannot exclude such near-ties."""

from __future__ import annotations

import time

import numpy as np

from .bounds import network_bounds, spec_bounds
from .context import CertifyOptions, MilpRunner, PairContext, PointState
from .milp.model import Status
from .milp.properties import disagreement, margin_violation, pair_index, pair_matrix
from .results import AGREE, DISAGREE
from .verdicts import candidates


def _robust(ctx, run, st, net, b, lo, hi, c, cand, opts):
    """(status, witness): 'robust' | 'not' (with a point where net's strict argmax != c) |
    'unknown'. One feasibility MILP per class j the bounds leave open, likeliest first."""
    status = "robust"
    ub = st.pair_ub[net is ctx.student]
    for j in sorted((j for j in cand if j != c), key=lambda j: -ub[pair_index(ctx.k, j, c)]):
        sol = None
        for t in (-opts.tau, opts.strict):  # a proof attempt, then a strict witness
            model, xid = margin_violation(net, b, lo, hi, c, j, t)
            sol = run(model)
            if sol is None:
                return "unknown", None
            if sol.status != Status.OPTIMAL:
                break
            x = np.clip(sol.x[xid], lo, hi)
            pick = ctx.referee.strict_pick(x, teacher=net is ctx.teacher)
            if pick is not None and pick != c:
                return "not", x
        if sol.status != Status.INFEASIBLE or t > 0:
            status = "unknown"
    return status, None


def network_robustness(ctx: PairContext, teacher: bool, lo, hi, c: int, opts: CertifyOptions):
    """Is one network of the pair robust at class c on the box? ('robust' | 'not' | 'unknown',
    witness re-checked on the ONNX file or None): CROWN, then one MILP per open class."""
    st = PointState()
    net = ctx.teacher if teacher else ctx.student
    b = network_bounds(net, lo, hi, opts.milp_bounds)
    _, ub = spec_bounds(net, lo, hi, b, pair_matrix(ctx.k))
    st.pair_ub = (ub, ub)
    cand = candidates(ub, ctx.k, -opts.tau)
    if cand == [c]:
        return "robust", None
    run = MilpRunner(opts.solver, time.perf_counter() + opts.timeout, st)
    return _robust(ctx, run, st, net, b, lo, hi, c, cand, opts)


def milp_agreement(ctx, run, st, bt, bs, lo, hi, c, ub_t, ub_s, opts):
    ref = ctx.referee
    cand_t = candidates(ub_t, ctx.k, -opts.tau)
    cand_s = candidates(ub_s, ctx.k, -opts.tau)
    # The network with fewer undecided ReLUs first: its witness is often a disagreement
    # already (the other keeps c there), which spares the other's harder proof.
    nets = sorted([(ctx.teacher, bt, cand_t), (ctx.student, bs, cand_s)],
                  key=lambda n: n[1].n_unstable())  # fmt: skip
    verdicts = []
    for net, b, cand in nets:
        r, x = _robust(ctx, run, st, net, b, lo, hi, c, cand, opts)
        if r == "not" and ref.disagreement(x, lo, hi):
            st.agreement, st.cex = DISAGREE, x
            return
        verdicts.append(r)  # on 'unknown' the other network may still give a disagreement
    if verdicts == ["robust", "robust"]:
        st.agreement = AGREE
        return
    if "unknown" in verdicts or run.left() <= 0.05:
        return
    # Both networks leave class c. If they agreed everywhere their decision boundaries would
    # coincide inside the ball, where both tie: agreement then holds only up to near-ties and
    # no tolerance-safe proof exists. The joint one-hot MILP looks for a strict disagreement.
    ct, cs = candidates(ub_t, ctx.k, opts.strict), candidates(ub_s, ctx.k, opts.strict)
    model, xid = disagreement(
        ctx.teacher, ctx.student, bt, bs, lo, hi, ct, cs, ub_t, ub_s, opts.strict
    )
    sol = run(model)
    if sol is None or sol.status not in (Status.OPTIMAL, Status.INFEASIBLE):
        return
    if sol.status == Status.INFEASIBLE:
        st.notes.append("both networks change class inside the ball; no strict disagreement")
        return
    x = np.clip(sol.x[xid], lo, hi)
    if ref.disagreement(x, lo, hi):
        st.agreement, st.cex = DISAGREE, x
