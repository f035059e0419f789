"""Solver-neutral MILP: arrays only (variable bounds, integrality, sparse rows, objective).

Back-ends (``milp/backends/``) translate a :class:`MilpModel` into their own API and map their
status to :class:`Status`; nothing else in the package imports a solver."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


class Status(enum.Enum):
    OPTIMAL = "optimal"  # proven optimum (or, with a zero objective, a feasible point)
    INFEASIBLE = "infeasible"  # proven: no point satisfies the constraints
    FEASIBLE = "feasible"  # stopped (time limit) with an incumbent; bound is the dual bound
    NO_SOLUTION = "no_solution"  # stopped (time limit) with no incumbent
    ERROR = "error"


@dataclass(frozen=True, eq=False)
class MilpModel:
    """max/min c @ v + c0  s.t.  row_lo <= A v <= row_hi,  lb <= v <= ub,  v_i integer."""

    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    c: np.ndarray
    c0: float = 0.0
    maximize: bool = True

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]

    @property
    def n_binaries(self) -> int:
        return int(self.integer.sum())


@dataclass(frozen=True, eq=False)
class Solution:
    status: Status
    objective: float | None  # incumbent's objective (c @ v + c0), None if no incumbent
    bound: float | None  # solver's proven bound on the optimum (dual bound), None if unknown
    x: np.ndarray | None  # incumbent values of all variables
    time_s: float
    solver: str
    message: str = ""


class Expr:
    """Affine expressions M @ v + k over model variables: M (rows, n_vars_at_creation)."""

    __slots__ = ("M", "k")

    def __init__(self, M: sp.csr_matrix, k: np.ndarray):
        self.M, self.k = M.tocsr(), np.asarray(k, np.float64)

    def __len__(self) -> int:
        return self.M.shape[0]

    def widen(self, n: int) -> sp.csr_matrix:
        m = self.M
        return (
            m if m.shape[1] == n else sp.csr_matrix((m.data, m.indices, m.indptr), (m.shape[0], n))
        )

    def rows(self, idx) -> Expr:
        return Expr(self.M[idx], self.k[idx])

    def lin(self, W, b=None, n: int | None = None) -> Expr:
        """W @ self + b  (W dense or sparse (r, len(self)))."""
        Wm = sp.csr_matrix(W) if not sp.issparse(W) else W
        k = Wm @ self.k + (0.0 if b is None else b)
        return Expr(Wm @ (self.M if n is None else self.widen(n)), k)


class ModelBuilder:
    """Accumulates variables and rows; ``build`` freezes them into a :class:`MilpModel`."""

    def __init__(self):
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.int: list[np.ndarray] = []
        self.n = 0
        self.blocks: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = []

    def add_vars(self, lb, ub, integer: bool = False) -> np.ndarray:
        lb, ub = (
            np.atleast_1d(np.asarray(lb, np.float64)),
            np.atleast_1d(np.asarray(ub, np.float64)),
        )
        idx = np.arange(self.n, self.n + len(lb))
        self.lb.append(lb)
        self.ub.append(ub)
        self.int.append(np.full(len(lb), integer))
        self.n += len(lb)
        return idx

    def var_expr(self, idx: np.ndarray) -> Expr:
        M = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), idx)), (len(idx), self.n))
        return Expr(M, np.zeros(len(idx)))

    def add_rows(self, e: Expr, lo, hi) -> None:
        """lo <= e <= hi, row-wise (constants of e moved to the sides)."""
        lo = np.broadcast_to(np.asarray(lo, np.float64), (len(e),)) - e.k
        hi = np.broadcast_to(np.asarray(hi, np.float64), (len(e),)) - e.k
        self.blocks.append((e.M, lo, hi))

    def build(self, objective: Expr | None = None, maximize: bool = True) -> MilpModel:
        n = self.n
        mats = [
            sp.csr_matrix((m.data, m.indices, m.indptr), (m.shape[0], n)) for m, _, _ in self.blocks
        ]
        A = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, n))
        c = np.zeros(n)
        c0 = 0.0
        if objective is not None:
            if len(objective) != 1:
                raise ValueError("objective must be a single expression")
            c = np.asarray(objective.widen(n).todense()).ravel()
            c0 = float(objective.k[0])
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
        return MilpModel(
            cat(self.lb),
            cat(self.ub),
            cat(self.int).astype(bool),
            A,
            cat([b[1] for b in self.blocks]),
            cat([b[2] for b in self.blocks]),
            c,
            c0,
            maximize,
        )
