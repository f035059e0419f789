"""HiGHS back-end (highspy): the default, open-source, in-process solver."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ...errors import SolverError
from .. import watchdog
from ..model import MilpModel, Solution, Status

NAME = "highs"
FEAS_TOL = 1e-6  # mip_feasibility_tolerance we set


def check() -> None:
    try:
        import highspy  # noqa: F401
    except ImportError:
        raise SolverError("HiGHS is not installed: pip install highspy") from None


def version() -> str:
    h = _new_highs()
    return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"


_banner_done = False


def _new_highs():
    """A Highs instance; the first construction prints a banner to fd 1, which we swallow."""
    global _banner_done
    import highspy

    if _banner_done:
        return highspy.Highs()
    _banner_done = True
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _load(m: MilpModel, time_limit: float, threads: int, integer: bool = True):
    import highspy

    h = _new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(float(time_limit), 0.01))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_feasibility_tolerance", FEAS_TOL)
    h.setOptionValue("random_seed", 0)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = m.n_vars, m.n_rows
    lp.col_cost_ = m.c
    lp.offset_ = m.c0
    lp.col_lower_, lp.col_upper_ = m.lb, m.ub
    lp.row_lower_, lp.row_upper_ = m.row_lo, m.row_hi
    lp.sense_ = highspy.ObjSense.kMaximize if m.maximize else highspy.ObjSense.kMinimize
    A = m.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = m.n_vars, m.n_rows
    if integer and m.integer.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in m.integer
        ]
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the model (internal encoding error)")
    return h


# MILPs with this many nonzeros are solved in a child process that is killed just past the
# time limit (``milp/watchdog.py``): HiGHS's root cut separation does not look at the clock.
# Below it the fork (about 7 ms) would cost more than such a model's overrun.
BOUNDED_NNZ = 50_000


def overrun_grace(time_limit: float) -> float:
    """Seconds past the limit before a bounded solve is killed (HiGHS stops on its own a little
    after its limit; killing it loses its dual bound)."""
    return 0.1 + 0.02 * time_limit


def solve(m: MilpModel, time_limit: float, threads: int = 1, abs_gap: float = 0.0,
          tol: float | None = None) -> Solution:  # fmt: skip
    """``tol``: integrality and primal feasibility tolerance (default: ``FEAS_TOL``). Large
    MILPs (``BOUNDED_NNZ``) cannot run past ``time_limit`` by more than ``overrun_grace``."""
    args = (m, time_limit, threads, abs_gap, tol)
    if not (m.integer.any() and m.A.nnz >= BOUNDED_NNZ and watchdog.available()):
        return _solve(*args)
    t0 = time.perf_counter()
    dual = watchdog.Shared()  # the child's latest dual bound: a killed solve keeps it
    done, sol = watchdog.bounded(_solve, (*args, dual.set), time_limit + overrun_grace(time_limit))
    if done:
        return sol
    bound = dual.get()
    return Solution(Status.NO_SOLUTION, None, bound if np.isfinite(bound) else None, None,
                    time.perf_counter() - t0, NAME,
                    "stopped at the time limit: HiGHS ran past it")  # fmt: skip


def _solve(m: MilpModel, time_limit: float, threads: int, abs_gap: float,
           tol: float | None, report=None) -> Solution:  # fmt: skip
    """One solve; ``report(bound)`` gets each dual bound HiGHS announces on the way (its MIP
    interrupt callback; in the objective's own sense: an upper bound when maximising)."""
    import highspy

    t0 = time.perf_counter()
    h = _load(m, time_limit, threads)
    if tol is not None:
        h.setOptionValue("mip_feasibility_tolerance", float(tol))
        h.setOptionValue("primal_feasibility_tolerance", float(tol))
    if abs_gap > 0:
        h.setOptionValue("mip_abs_gap", float(abs_gap))
    if report is not None and m.integer.any() and m.c.any():

        def progress(e):
            if np.isfinite(b := e.data_out.mip_dual_bound):
                report(b)

        h.cbMipInterrupt.subscribe(progress)
    h.run()
    ms = h.getModelStatus()
    info = h.getInfo()
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.array(h.getSolution().col_value) if has_sol else None
    obj = info.objective_function_value if has_sol else None
    if m.integer.any():
        bound = info.mip_dual_bound
    else:
        bound = obj if ms == highspy.HighsModelStatus.kOptimal else None
    M = highspy.HighsModelStatus
    if ms == M.kOptimal:
        st = Status.OPTIMAL
    elif ms == M.kInfeasible:
        st, bound = Status.INFEASIBLE, None
    elif ms in (M.kTimeLimit, M.kInterrupt, M.kSolutionLimit, M.kIterationLimit):
        st = Status.FEASIBLE if has_sol else Status.NO_SOLUTION
    else:
        st = Status.ERROR
    if bound is not None and not np.isfinite(bound):
        bound = None
    return Solution(st, obj, bound, x, time.perf_counter() - t0, NAME, str(ms))


def lp_bounds(m: MilpModel, objectives, time_limit: float, threads: int = 1):
    """Bounds (lower, upper) of each row of ``objectives`` (sparse (R, n)) over the LP
    relaxation of ``m``: one warm-started simplex solve per row and sense, each turned into a
    rigorous bound through its dual vector (``milp.dual.safe_min``). Rows left unsolved when
    time runs out get -inf / +inf."""
    import highspy

    from ..dual import safe_min

    t_end = time.perf_counter() + time_limit
    h = _load(m, time_limit, threads, integer=False)
    R = objectives.shape[0]
    lower, upper = np.full(R, -np.inf), np.full(R, np.inf)
    idx = np.arange(m.n_vars, dtype=np.int32)
    zero = np.zeros(m.n_vars)
    for r in range(R):
        c = np.asarray(objectives[r].todense()).ravel()
        for sgn in (1.0, -1.0):  # minimise c x, then minimise -c x
            left = t_end - time.perf_counter()
            if left <= 0:
                return lower, upper
            h.setOptionValue("time_limit", left)
            h.changeObjectiveSense(highspy.ObjSense.kMinimize)
            h.changeColsCost(m.n_vars, idx, sgn * c)
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                continue
            y = np.array(h.getSolution().row_dual)
            b = safe_min(m.A, m.row_lo, m.row_hi, m.lb, m.ub, sgn * c, y)
            if sgn > 0:
                lower[r] = b
            else:
                upper[r] = -b
        h.changeColsCost(m.n_vars, idx, zero)
    return lower, upper
