"""The complete methods of ``verify`` on the disjuncts the bounds leave open: one MILP per
disjunct (``milp_stages``), or branch and bound over ReLU splits with MILP refinement of the
intermediate bounds between two trees (``bab_stages``). Imported only when a spec reaches
them, so that a spec the bounds decide never loads a solver."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..bounds.bab import bab
from ..milp.backends import resolve_solver, solve
from ..milp.model import Status
from ..milp.properties import encode
from ..milp.refine import milp_refine
from ..milp.tighten import lp_tighten
from ..words import SpecResult
from .atoms import spec_bounds_open as _spec_bounds

SAT, UNSAT = SpecResult.SAT, SpecResult.UNSAT
UNKNOWN, TIMEOUT = SpecResult.UNKNOWN, SpecResult.TIMEOUT


def milp_stages(net, spec, bounds, rows, owner, open_k, lb, closest, checker, opts, deadline,
                done):  # fmt: skip
    """One feasibility MILP per open disjunct, likeliest first (after LP tightening)."""
    opts = replace(opts, solver=resolve_solver(opts.solver))  # "auto" -> a back-end, once
    if opts.lp_tighten > 0:
        bounds, _ = lp_tighten(net, bounds, spec.lo, spec.hi,
                               opts.lp_tighten * (deadline - time.perf_counter()))  # fmt: skip
    # likeliest first: the disjuncts the attack came closest to, then by their bounds
    slack = {k: float(np.max(lb[owner == k] - rows[owner == k, -1])) for k in open_k}
    queue = sorted(open_k, key=lambda k: (closest.get(k, np.inf), slack[k]))
    # First pass: each disjunct gets an equal share of half the time left, so that a reachable
    # disjunct (found fast) is not stuck behind a hard proof; then the rest, one by one.
    first = len(queue) > 1
    while queue:
        left = deadline - time.perf_counter()
        if left <= 0.05:
            return done(TIMEOUT, "")
        limit = left / (2 * len(queue)) if first else left
        for k in list(queue):
            verdict, found = _milp_disjunct(net, spec, bounds, k, checker, opts, deadline, limit)
            if verdict == SAT:
                return done(SAT, "milp", found)
            if verdict in (UNSAT, UNKNOWN):
                queue.remove(k)
                if verdict == UNSAT:
                    open_k.remove(k)
            elif not first:
                return done(TIMEOUT, "")
        first = False
    if not open_k:
        return done(UNSAT, "milp")
    return done(UNKNOWN, "", note="a MILP witness was not confirmed by the re-check")


def bab_stages(net, spec, bounds, rows, owner, open_k, lb, closest, checker, opts, deadline,
               done):  # fmt: skip
    """(``lb`` and ``closest`` are milp_stages' ordering; the tree needs no order.)
    Branch and bound (all open disjuncts in one tree: they share its splits); if it leaves
    the spec open after ``bab_first`` of the time, MILP refinement of the intermediate bounds
    and branch and bound again from them."""
    refine, refined = opts.refine > 0, ""
    while True:
        sel = np.isin(owner, open_k)
        left = deadline - time.perf_counter()
        until = time.perf_counter() + opts.bab_first * left if refine else deadline
        res = bab(net, spec.lo, spec.hi, bounds.pre, rows[sel, :-1], rows[sel, -1],
                  np.searchsorted(open_k, owner[sel]), until, checker.confirm)  # fmt: skip
        if res.status == UNSAT:
            open_k.clear()
        note = f"branch and bound: {res.domains} domains, depth {res.depth}"
        if res.status in (SAT, UNSAT):  # bab's words are VNN-COMP's, like ours
            return done(res.status, "bab", res.found, note=note + refined)
        if not refine or res.status != TIMEOUT or time.perf_counter() >= deadline:
            return done(res.status, "", note=note + (f"; {res.note}" if res.note else "") + refined)
        refine = False
        left = deadline - time.perf_counter()
        alpha = opts.milp_bounds == "alpha-crown"
        ref = milp_refine(
            net,
            bounds,
            spec.lo,
            spec.hi,
            time.perf_counter() + opts.refine * left,
            resolve_solver(opts.solver),
            opts.refine_per_bound,
            opts.milp_bounds,
        )
        bounds = ref.bounds
        refined = f"; after MILP refinement ({ref.solved} bounds, {ref.stabilised} made stable)"
        _, open_k[:] = _spec_bounds(net, spec, bounds, rows, owner, open_k, alpha, deadline)
        if not open_k:
            return done(UNSAT, "milp-refine")


def _milp_disjunct(net, spec, bounds, k, checker, opts, deadline, limit):
    """(verdict, found) for disjunct k within ``limit`` seconds: 'unsat' (infeasible with the
    atoms relaxed by tau), 'sat' (a confirmed witness), 'unknown' (a witness the re-check
    rejects, and no strict one), or 'timeout' (undecided within the limit)."""
    A, b = spec.disjuncts[k]
    stop = min(deadline, time.perf_counter() + limit)
    for t in (opts.tau, -opts.strict):  # a proof attempt, then a strict witness
        left = stop - time.perf_counter()
        if left <= 0.05:
            return TIMEOUT, None
        mb, xid, z = encode(net, bounds, spec.lo, spec.hi)
        mb.add_rows(z.lin(A, -b, mb.n), -np.inf, np.full(len(b), t))
        sol = solve(opts.solver, mb.build(None), left)
        if sol.status == Status.INFEASIBLE:
            return (UNSAT, None) if t > 0 else (UNKNOWN, None)
        if sol.status != Status.OPTIMAL:
            return TIMEOUT, None
        found = checker.confirm(sol.x[xid])
        if found is not None:
            return SAT, found
    return UNKNOWN, None
