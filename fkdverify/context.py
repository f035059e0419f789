"""What one point's stages share: options, the pair, the point's state, the MILP runner."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .attack import GAP_SIGNS, AttackOptions
from .bounds import Bounds
from .bounds.propagate import METHODS as BOUND_METHODS
from .bounds.propagate import BoundOptions
from .errors import InputError, SolverRefused
from .milp.backends import solve
from .milp.model import Solution
from .milp.properties import pair_matrix
from .net.graph import Network
from .net.product import product
from .net.torch_net import TorchNet
from .recheck import Referee
from .results import UNKNOWN

PROPERTIES = ("faithful", "agreement", "gap")
METHODS = ("attack", "ibp", "crown", "alpha-crown", "milp")


@dataclass(frozen=True)
class CertifyOptions:
    eps: float
    delta: float = 0.1
    prop: str = "faithful"
    method: str = "milp"
    solver: str = "highs"
    timeout: float = 60.0
    gap_sign: str = "teacher-minus-student"
    tol: float = 1e-3
    tau: float = 1e-4  # proof margin on logit differences (>> solver feasibility tolerance)
    strict: float = 1e-3  # margin asked of a candidate counterexample
    milp_bounds: str = "alpha-crown"  # bounds that feed the MILP (big-M, stable ReLUs, classes)
    use_attack: bool = True
    lp_tighten: float = 0.0  # seconds of LP bound tightening before the MILP (0: off)
    lo: float = 0.0  # input domain D
    hi: float = 1.0
    attack: AttackOptions = field(default_factory=AttackOptions)
    engine: BoundOptions = field(default_factory=BoundOptions)  # precision, device, memory

    def __post_init__(self):
        if not self.eps >= 0:
            raise InputError(f"--eps must be >= 0, got {self.eps}")
        if not self.delta >= 0:
            raise InputError(f"--delta must be >= 0, got {self.delta}")
        if not self.timeout > 0:
            raise InputError(f"--timeout must be > 0 seconds, got {self.timeout}")
        if self.prop not in PROPERTIES:
            raise InputError(f"--property must be one of {', '.join(PROPERTIES)}")
        if self.method not in METHODS:
            raise InputError(f"--method must be one of {', '.join(METHODS)}")
        if self.milp_bounds not in BOUND_METHODS:
            raise InputError(f"--milp-bounds must be one of {', '.join(BOUND_METHODS)}")
        if self.gap_sign not in GAP_SIGNS:
            raise InputError(f"--gap-sign must be one of {', '.join(GAP_SIGNS)}")


@dataclass
class PointState:
    """What one point has established so far (mutable only inside ``certify_point``)."""

    agreement: str = UNKNOWN
    gap_lo: float = float("nan")
    gap_hi: float = float("nan")
    gap_method: str = ""
    cex: np.ndarray | None = None
    t_attack: float = 0.0
    t_bounds: float = 0.0
    t_milp: float = 0.0
    unstable: dict = field(default_factory=dict)  # bound method -> undecided ReLUs
    gap_x: np.ndarray | None = None  # the re-checked point that gave gap_lo
    pair_ub: tuple = ()  # (teacher, student) upper bounds of all logit differences
    notes: list = field(default_factory=list)
    solver_used: str = ""

    def witness_gap(self, ctx: PairContext, x, lo, hi, c: int, sign: str) -> None:
        """Raise Delta_lo to g(x) if the referee confirms x (in the box, both paths agree)."""
        g = ctx.referee.gap(x, lo, hi, c, sign)
        if g is not None and not g <= self.gap_lo:
            self.gap_lo, self.gap_x = g, np.clip(x, lo, hi)


class PairContext:
    """The pair's networks, product, torch modules and referee: built once per worker."""

    def __init__(self, teacher: Network, student: Network, t_path: str, s_path: str,
                 norms: tuple = (None, None)):  # fmt: skip
        self.teacher, self.student = teacher, student
        self.k = teacher.n_classes
        pm = pair_matrix(self.k)
        z = np.zeros_like(pm)
        head = np.block([[pm, z], [z, pm]])  # all pairwise logit differences of both nets
        self.product, self.t_out, self.s_out = product(teacher, student, head)
        self.off = len(teacher.nodes)
        self.tnet, self.snet = TorchNet(teacher), TorchNet(student)
        # the attack searches in float32 (every candidate is re-checked in float64 and ORT)
        self.tnet32 = TorchNet(teacher, torch.float32)
        self.snet32 = TorchNet(student, torch.float32)
        self.referee = Referee(t_path, s_path, teacher, student, norms)


def split_bounds(bounds: Bounds, off: int) -> tuple[Bounds, Bounds]:
    bt = {v: b for v, b in bounds.pre.items() if v <= off}
    bs = {v - off: b for v, b in bounds.pre.items() if v > off}
    return Bounds(bt, bounds.method), Bounds(bs, bounds.method)


class MilpRunner:
    """Runs MILPs for one point under its deadline; Gurobi refusals fall back to HiGHS."""

    def __init__(self, name: str, deadline: float, st: PointState):
        self.name, self.deadline, self.st = name, deadline, st

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def __call__(self, model, share: float = 1.0, abs_gap: float = 0.0) -> Solution | None:
        """Solve with ``share`` of the time left (all of it by default)."""
        if self.left() <= 0.05:
            return None
        t0 = time.perf_counter()
        limit = self.left() * share
        try:
            sol = solve(self.name, model, limit, abs_gap=abs_gap)
        except SolverRefused as e:
            self.st.notes.append(f"{e}; fell back to HiGHS")
            self.name = "highs"
            sol = solve("highs", model, limit, abs_gap=abs_gap)
        self.st.t_milp += time.perf_counter() - t0
        self.st.solver_used = self.name
        return sol
