"""``fkdverify verify``: one network against a VNN-LIB spec with certify's pipeline.

Attack (PGD toward each disjunct of the unsafe region, from the box centre and random starts)
-> bounds (every atom's lower bound over the box; a disjunct with an atom that cannot hold is
ruled out) -> the box vertices minimising the open atoms' bounds, as candidates and PGD
starts -> a complete method: ``milp`` (one feasibility model per disjunct still open, the
atoms relaxed by ``tau`` so that *infeasible* is a proof beyond the solver's tolerances) or
``bab`` (branch and bound over ReLU splits with beta-CROWN bounds, ``bounds/bab.py``, all open
disjuncts in one tree; when a first tree over a tenth of the time leaves the spec open, MILP
refinement of the intermediate bounds, ``milp/refine.py``, then a second tree). A
counterexample is
reported only after onnxruntime on the original file, and the imported network in float64,
both put the float32 input inside the box and the output inside the unsafe region exactly.

Results (VNN-COMP words): ``sat`` (counterexample), ``unsat`` (the property holds), ``unknown``
(the method is incomplete, or a candidate did not survive the re-check), ``timeout``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import defaults as D
from ..bounds.alpha import alpha_spec_bounds
from ..bounds.bab import bab
from ..bounds.crown import crown_lower
from ..bounds.propagate import network_bounds, spec_bounds
from ..bounds.types import BoundOptions, as_batch, one_point
from ..errors import InputError, MismatchError
from ..milp.backends import resolve_solver, solve
from ..milp.model import Status
from ..milp.properties import encode
from ..milp.refine import milp_refine
from ..milp.tighten import lp_tighten
from ..net.graph import Network
from ..net.vnnlib import Spec
from ..words import (
    BOUND_METHODS,
    COMPLETE_METHODS,
    SOLVERS,
    VERIFY_METHODS,
    SpecResult,
    check_choice,
)
from .attack import spec_attack as _attack
from .check import Checker

METHODS, COMPLETE = VERIFY_METHODS, COMPLETE_METHODS
SAT, UNSAT = SpecResult.SAT, SpecResult.UNSAT
UNKNOWN, TIMEOUT = SpecResult.UNKNOWN, SpecResult.TIMEOUT


@dataclass(frozen=True)
class VerifyOptions:
    method: str = D.VERIFY_METHOD
    timeout: float = D.VERIFY_TIMEOUT
    solver: str = D.VERIFY_SOLVER
    milp_bounds: str = D.MILP_BOUNDS  # bounds that feed milp/bab (big-M values, stable ReLUs)
    lp_tighten: float = D.VERIFY_LP_TIGHTEN  # share of the time left on LP bound tightening
    attack_steps: int = 100
    attack_restarts: int = 4
    tau: float = D.TAU  # proof margin on each atom (>> solver feasibility tolerance)
    strict: float = D.VERIFY_STRICT  # margin asked of a MILP witness
    seed: int = 0
    # bab: when a first branch and bound over bab_first of the time left leaves the spec
    # open, MILP refinement of the intermediate bounds (``milp/refine.py``) gets ``refine`` of
    # what is left, then branch and bound runs again on the refined bounds; 0: no refinement
    bab_first: float = 0.1
    refine: float = D.REFINE
    # seconds per MILP bound (256x4 prop_5 eps 0.05: 0.15 s refines nothing, 1 s too few
    # neurons in the time, 0.3 s closes it)
    refine_per_bound: float = 0.3

    def __post_init__(self):
        check_choice("--method", self.method, METHODS)
        check_choice("--solver", self.solver, SOLVERS)
        if not (0 < self.bab_first <= 1 and 0 <= self.refine < 1):
            raise InputError("bab_first must be in (0, 1] and --refine in [0, 1)")
        if self.method == "bab" and self.refine > 0 and self.solver == "cbc":
            raise InputError("--solver cbc cannot refine bab's bounds: use highs, gurobi or auto")
        if not self.timeout > 0:
            raise InputError(f"--timeout must be > 0 seconds, got {self.timeout}")
        check_choice("--milp-bounds", self.milp_bounds, BOUND_METHODS)
        if not 0 <= self.lp_tighten < 1:
            raise InputError(
                f"--lp-tighten is a share of the time in [0, 1), got {self.lp_tighten}"
            )


@dataclass(frozen=True)
class VerifyResult:
    result: str
    time_s: float
    stage: str  # what decided it: attack | bounds | milp | "" (undecided)
    open_disjuncts: int  # disjuncts neither ruled out nor reached
    x: np.ndarray | None = None  # counterexample input (float32 values, flat)
    y: np.ndarray | None = None  # onnxruntime output there
    note: str = ""


def check_sizes(net: Network, spec: Spec) -> None:
    if net.input_size != spec.n_in or net.n_classes != spec.n_out:
        raise MismatchError(
            f"the spec has {spec.n_in} inputs and {spec.n_out} outputs but the network takes "
            f"{net.input_size} and gives {net.n_classes}; is it the spec of this network?"
        )


def verify(net: Network, path: str, spec: Spec, opts: VerifyOptions = VerifyOptions()):
    """Decide ``spec`` on ``net`` (imported from ``path``, which the re-check runs)."""
    check_sizes(net, spec)
    t0 = time.perf_counter()
    deadline = t0 + opts.timeout
    checker = Checker(path, net, spec)
    open_k = list(range(len(spec.disjuncts)))

    def done(result, stage, found=None, note=""):
        x, y = found if found else (None, None)
        return VerifyResult(result, time.perf_counter() - t0, stage, len(open_k), x, y, note)

    found, closest = _attack(net, spec, checker, opts, deadline)  # cheap; every method profits
    if found is not None:
        return done(SAT, "attack", found)
    if opts.method == "attack":
        return done(UNKNOWN, "", note="attack only: no counterexample found")
    if time.perf_counter() > deadline:
        return done(TIMEOUT, "")
    bmethod = opts.method if opts.method not in COMPLETE else opts.milp_bounds
    bounds = network_bounds(net, spec.lo, spec.hi, bmethod)
    rows, owner = _rows(spec)
    lb, open_k = _spec_bounds(net, spec, bounds, rows, owner, open_k, bmethod == "alpha-crown")
    if not open_k:
        return done(UNSAT, "bounds")
    # The box vertices that minimise the open atoms' linear lower bounds: candidates and PGD
    # starts (counterexamples of saturated networks often sit on a vertex, off PGD's path).
    sel = np.isin(owner, open_k)
    starts = _vertices(net, spec, bounds, rows[sel, :-1])
    found, _ = _attack(net, spec, checker, opts, deadline, starts)
    if found is not None:
        return done(SAT, "attack", found)
    if opts.method not in COMPLETE:
        return done(UNKNOWN, "", note=f"{opts.method} leaves {len(open_k)} disjuncts open")
    if opts.method == "bab":
        return _bab_stages(net, spec, bounds, rows, owner, open_k, checker, opts, deadline, done)
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


def _spec_bounds(net, spec, bounds, rows, owner, open_k: list, alpha: bool):
    """The atoms' lower bounds (alpha-CROWN on the open disjuncts' atoms if ``alpha``) and the
    disjuncts they leave open."""
    lb, _ = spec_bounds(net, spec.lo, spec.hi, bounds, rows[:, :-1])
    open_k = _still_open(open_k, lb, rows, owner)
    if open_k and alpha:  # optimised slopes on the open disjuncts' atoms
        sel = np.isin(owner, open_k)
        start = (lb[sel], np.full(int(sel.sum()), np.inf))
        lb[sel], _ = alpha_spec_bounds(net, spec.lo, spec.hi, bounds, rows[sel, :-1], start=start)
        open_k = _still_open(open_k, lb, rows, owner)
    return lb, open_k


def _bab_stages(net, spec, bounds, rows, owner, open_k, checker, opts, deadline, done):
    """Branch and bound (all open disjuncts in one tree: they share its splits); if it leaves
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
        if res.status in (SAT, UNSAT):  # bab's words are VNN-COMP's, like ours
            return done(res.status, "bab", res.found)
        if not refine or res.status != TIMEOUT or time.perf_counter() >= deadline:
            note = f"branch and bound: {res.domains} domains, depth {res.depth}"
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
        _, open_k[:] = _spec_bounds(net, spec, bounds, rows, owner, open_k, alpha)
        if not open_k:
            return done(UNSAT, "milp-refine")


def _still_open(open_k: list, lb: np.ndarray, rows: np.ndarray, owner: np.ndarray) -> list:
    """Disjuncts none of whose atoms a . y <= b is ruled out by a sound lower bound > b."""
    ruled = lb - rows[:, -1] > 0
    return [k for k in open_k if not ruled[owner == k].any()]


def _rows(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """All atoms as rows [a | b] (a . y <= b) and the disjunct each belongs to."""
    rows = np.vstack([np.hstack([A, b[:, None]]) for A, b in spec.disjuncts])
    owner = np.concatenate([np.full(len(b), k) for k, (_, b) in enumerate(spec.disjuncts)])
    return rows, owner


def _vertices(net: Network, spec: Spec, bounds, C: np.ndarray) -> np.ndarray:
    """(S, n_in): for each row c of C the box vertex that minimises CROWN's linear lower
    bound of c . y (each input at lo where its coefficient is positive, else at hi)."""
    p = BoundOptions(method="crown").prop(net)
    lo, hi = as_batch(spec.lo, p), as_batch(spec.hi, p)
    pre = one_point(bounds).pre
    coef: list = []
    with torch.no_grad():
        crown_lower(p, net.output, torch.as_tensor(C, dtype=p.dtype)[None], lo, hi, pre,
                    input_coef=coef)  # fmt: skip
    if coef[0] is None:
        return np.empty((0, spec.n_in))
    return np.where(coef[0][0].numpy() > 0, spec.lo, spec.hi)


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


def cex_text(x: np.ndarray, y: np.ndarray) -> str:
    """A counterexample in VNN-COMP's format: ``((X_0 v)`` ... ``(Y_9 v))``."""
    parts = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    parts += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    return "(" + "\n".join(parts) + ")\n"


def write_cex(path: str, text: str) -> None:
    """Write a counterexample file; an existing file is replaced only when it is one (it
    starts with ``((X_``), anything else is refused before a byte changes."""
    import os

    if os.path.exists(path) and os.path.getsize(path) > 0:
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        if not head.startswith(b"((X_"):
            raise InputError(f"--cex {path} exists and is not a counterexample file; nothing "
                             "was written: choose another path")  # fmt: skip
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise InputError(f"cannot write --cex {path}: {e.strerror}") from None
