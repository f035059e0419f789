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
from dataclasses import dataclass

import numpy as np
import torch

from .. import defaults as D
from ..bounds.crown import crown_lower
from ..bounds.propagate import network_bounds
from ..bounds.types import BoundOptions, as_batch, one_point
from ..errors import InputError, MismatchError
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
from .atoms import rows_of as _rows
from .atoms import spec_bounds_open as _spec_bounds
from .attack import attack_group
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
    if opts.method == "attack":  # attack only: restarts until the time limit
        rounds = 1
        while found is None and time.perf_counter() < deadline:
            found, _ = _attack(net, spec, checker, opts, deadline, None, rounds)
            rounds += 1
        if found is not None:
            return done(SAT, "attack", found)
        return done(UNKNOWN, "", note=f"attack only: no counterexample in {rounds} rounds")
    if time.perf_counter() > deadline:
        return done(TIMEOUT, "")
    bmethod = opts.method if opts.method not in COMPLETE else opts.milp_bounds
    bounds = network_bounds(net, spec.lo, spec.hi, bmethod, deadline=deadline)
    rows, owner = _rows(spec)
    lb, open_k = _spec_bounds(net, spec, bounds, rows, owner, open_k, bmethod == "alpha-crown",
                              deadline)  # fmt: skip
    if not open_k:
        return done(UNSAT, "bounds")
    if time.perf_counter() > deadline:
        return done(TIMEOUT, "", note=f"the bounds took the time; {len(open_k)} disjuncts open")
    # The box vertices that minimise the open atoms' linear lower bounds: candidates and PGD
    # starts (counterexamples of saturated networks often sit on a vertex, off PGD's path).
    sel = np.isin(owner, open_k)
    starts = _vertices(net, spec, bounds, rows[sel, :-1])
    found, _ = _attack(net, spec, checker, opts, deadline, starts)
    # restarts (new seeds, the next group of disjuncts) until every open disjunct has had a
    # round, at least twice, within ATTACK_SHARE of the time
    rounds, most = 1, max(2, -(-len(open_k) // attack_group(opts)))
    while (found is None and rounds < most
           and time.perf_counter() - t0 < D.ATTACK_SHARE * opts.timeout):  # fmt: skip
        found, _ = _attack(net, spec, checker, opts, deadline, None, rounds)
        rounds += 1
    if found is not None:
        return done(SAT, "attack", found)
    if opts.method not in COMPLETE:
        return done(UNKNOWN, "", note=f"{opts.method} leaves {len(open_k)} disjuncts open")
    from .complete import bab_stages, milp_stages  # solvers load only when needed here

    stages = bab_stages if opts.method == "bab" else milp_stages
    return stages(net, spec, bounds, rows, owner, open_k, lb, closest, checker, opts, deadline,
                  done)  # fmt: skip


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


def cex_text(x: np.ndarray, y: np.ndarray) -> str:
    """A counterexample in VNN-COMP's format: ``((X_0 v)`` ... ``(Y_9 v))``."""
    parts = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    parts += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    return "(" + "\n".join(parts) + ")\n"


def check_cex_target(path: str) -> None:
    """Refuse (before any work) a --cex path that holds a file other than a counterexample
    (one starts with ``((X_``): it would be replaced."""
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


def write_cex(path: str, text: str) -> None:
    """Write a counterexample file (after ``check_cex_target``, checked again here)."""
    check_cex_target(path)
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise InputError(f"cannot write --cex {path}: {e.strerror}") from None
