"""CBC back-end through PuLP. PuLP's ``status`` says "Optimal" after a time limit with an
incumbent, so the neutral status is read from ``sol_status`` instead."""

from __future__ import annotations

import time
import warnings

import numpy as np

from ...errors import SolverError
from ..model import MilpModel, Solution, Status

NAME = "cbc"


def check() -> None:
    try:
        import pulp
    except ImportError:
        raise SolverError("PuLP is not installed: pip install pulp") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ok = pulp.PULP_CBC_CMD(msg=False).available()
    if not ok:
        raise SolverError("PuLP's bundled CBC binary is not available on this machine")


def version() -> str:
    import pulp

    return f"pulp {pulp.__version__}"


def solve(m: MilpModel, time_limit: float, threads: int = 1, abs_gap: float = 0.0) -> Solution:
    with warnings.catch_warnings():  # PuLP 3.x announces its 4.0 API on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return _solve(m, time_limit, threads, abs_gap)


def _solve(m: MilpModel, time_limit: float, threads: int, abs_gap: float) -> Solution:
    import pulp

    t0 = time.perf_counter()
    prob = pulp.LpProblem("fkd", pulp.LpMaximize if m.maximize else pulp.LpMinimize)
    lb = [None if not np.isfinite(v) else float(v) for v in m.lb]
    ub = [None if not np.isfinite(v) else float(v) for v in m.ub]
    xs = [
        pulp.LpVariable(
            f"v{i}", lb[i], ub[i], pulp.LpInteger if m.integer[i] else pulp.LpContinuous
        )
        for i in range(m.n_vars)
    ]
    prob += pulp.lpSum(float(c) * xs[i] for i, c in enumerate(m.c) if c != 0) + float(m.c0)
    A = m.A.tocsr()
    for r in range(m.n_rows):
        s, e = A.indptr[r], A.indptr[r + 1]
        expr = pulp.LpAffineExpression(
            [(xs[j], float(v)) for j, v in zip(A.indices[s:e], A.data[s:e], strict=True)]
        )
        lo, hi = m.row_lo[r], m.row_hi[r]
        if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
            prob += expr == float(lo)
            continue
        if np.isfinite(lo):
            prob += expr >= float(lo)
        if np.isfinite(hi):
            prob += expr <= float(hi)
    solver = pulp.PULP_CBC_CMD(
        msg=False,
        timeLimit=max(float(time_limit), 1.0),
        threads=threads,
        gapRel=0.0,
        gapAbs=abs_gap or None,
    )
    prob.solve(solver)
    ss = prob.sol_status
    has_sol = ss in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    x = np.array([v.value() if v.value() is not None else 0.0 for v in xs]) if has_sol else None
    obj = float(m.c @ x + m.c0) if has_sol else None
    if ss == pulp.LpSolutionOptimal:
        st, bound = Status.OPTIMAL, obj
    elif ss == pulp.LpSolutionInfeasible or prob.status == pulp.LpStatusInfeasible:
        st, bound = Status.INFEASIBLE, None
    elif ss == pulp.LpSolutionIntegerFeasible:
        st, bound = Status.FEASIBLE, None  # CBC's dual bound is not exposed by PuLP
    elif ss == pulp.LpSolutionNoSolutionFound:
        st, bound = Status.NO_SOLUTION, None
    else:
        st, bound = Status.ERROR, None
    if st == Status.OPTIMAL and abs_gap > 0:
        bound = obj + abs_gap if m.maximize else obj - abs_gap  # optimal within abs_gap
    msg = f"{pulp.LpStatus[prob.status]}/{ss}"
    return Solution(st, obj, bound, x, time.perf_counter() - t0, NAME, msg)
