"""Gurobi back-end (gurobipy). The pip licence refuses models over 2,000 variables or
constraints (error 10010): that raises SolverRefused so the caller can fall back to HiGHS."""

from __future__ import annotations

import time

import numpy as np

from ...errors import SolverError, SolverRefused
from ..model import MilpModel, Solution, Status

NAME = "gurobi"
_env = None


def _get_env():
    global _env
    if _env is None:
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        _env = env
    return _env


def check() -> None:
    try:
        import gurobipy  # noqa: F401
    except ImportError:
        raise SolverError(
            "Gurobi is not installed: pip install gurobipy (or use --solver highs)"
        ) from None
    try:
        _get_env()
    except Exception as e:
        raise SolverError(f"Gurobi has no usable licence ({e}); use --solver highs") from None


def version() -> str:
    import gurobipy as gp

    return ".".join(map(str, gp.gurobi.version()))


def solve(m: MilpModel, time_limit: float, threads: int = 1, abs_gap: float = 0.0,
          tol: float | None = None) -> Solution:  # fmt: skip
    """``tol``: integrality and feasibility tolerance (default: Gurobi's own)."""
    import gurobipy as gp
    from gurobipy import GRB

    t0 = time.perf_counter()
    try:
        model = gp.Model(env=_get_env())
        model.Params.TimeLimit = max(float(time_limit), 0.01)
        model.Params.Threads = int(threads)
        model.Params.Seed = 0
        if abs_gap > 0:
            model.Params.MIPGapAbs = float(abs_gap)
        if tol is not None:
            model.Params.IntFeasTol = model.Params.FeasibilityTol = float(tol)
        vtype = np.where(m.integer, GRB.INTEGER, GRB.CONTINUOUS)
        x = model.addMVar(m.n_vars, lb=m.lb, ub=m.ub, vtype=vtype)
        lo_ok, hi_ok = np.isfinite(m.row_lo), np.isfinite(m.row_hi)
        if lo_ok.any():
            model.addMConstr(m.A[lo_ok], x, GRB.GREATER_EQUAL, m.row_lo[lo_ok])
        if hi_ok.any():
            model.addMConstr(m.A[hi_ok], x, GRB.LESS_EQUAL, m.row_hi[hi_ok])
        model.setObjective(m.c @ x + m.c0, GRB.MAXIMIZE if m.maximize else GRB.MINIMIZE)
        model.optimize()
    except gp.GurobiError as e:
        if e.errno == 10010:
            raise SolverRefused(
                f"Gurobi's licence refuses this model ({m.n_vars} variables, {m.n_rows} rows; "
                "the pip licence stops at 2,000)"
            ) from None
        raise SolverError(f"Gurobi failed: {e}") from None
    st_g = model.Status
    has_sol = model.SolCount > 0
    xv = np.array(x.X) if has_sol else None
    obj = float(model.ObjVal) if has_sol else None
    bound = float(model.ObjBound) if m.integer.any() and st_g != GRB.INFEASIBLE else obj
    if st_g == GRB.OPTIMAL:
        st = Status.OPTIMAL
    elif st_g in (GRB.INFEASIBLE, GRB.INF_OR_UNBD):
        st, bound = Status.INFEASIBLE, None
    elif st_g in (GRB.TIME_LIMIT, GRB.INTERRUPTED, GRB.SOLUTION_LIMIT, GRB.NODE_LIMIT):
        st = Status.FEASIBLE if has_sol else Status.NO_SOLUTION
    else:
        st, bound = Status.ERROR, None
    if bound is not None and not np.isfinite(bound):
        bound = None
    return Solution(st, obj, bound, xv, time.perf_counter() - t0, NAME, f"gurobi status {st_g}")
