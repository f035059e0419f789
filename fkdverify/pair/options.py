"""Options of the teacher/student question (one frozen value per run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .. import defaults as D
from ..bounds.types import BoundOptions
from ..errors import InputError
from ..words import (
    BOUND_METHODS,
    CERTIFY_METHODS,
    GAP_SIGNS,
    PROPERTIES,
    SOLVERS,
    Method,
    check_choice,
)
from .attack import AttackOptions


def auto_method(teacher, student) -> str:
    """``--method auto``: the exact MILPs where they fit — dense networks with at most
    ``AUTO_MILP_RELUS`` ReLUs together — with branch and bound taking over the agreement
    question where the MILPs leave it open (``milp+bab``), else the batched bounds
    (alpha-CROWN through the product), the only practical way at CIFAR-CNN size."""
    from ..net.graph import Conv

    convs = any(isinstance(n.layer, Conv) for net in (teacher, student) for n in net.nodes)
    if convs or teacher.n_relus() + student.n_relus() > D.AUTO_MILP_RELUS:
        return Method.ALPHA_CROWN.value
    return Method.MILP_BAB.value


def resolved(opts: CertifyOptions, teacher, student) -> CertifyOptions:
    """``opts`` with ``--method auto`` replaced by what it picks for this pair."""
    if opts.method != Method.AUTO:
        return opts
    return replace(opts, method=auto_method(teacher, student))


@dataclass(frozen=True)
class CertifyOptions:
    eps: float
    delta: float = D.DELTA
    prop: str = D.PROPERTY
    method: str = D.CERTIFY_METHOD
    solver: str = D.SOLVER
    timeout: float = D.CERTIFY_TIMEOUT
    gap_sign: str = D.GAP_SIGN
    tol: float = D.TOL
    tau: float = D.TAU
    strict: float = D.STRICT
    milp_bounds: str = D.MILP_BOUNDS
    use_attack: bool = True
    differential: bool = True  # differential bounds for same-shape pairs (bounds/diff.py)
    lp_tighten: float = D.CERTIFY_LP_TIGHTEN  # share of the point's time (0: off)
    gap_refine: float = D.GAP_REFINE  # seconds: a settled faithful point's interval tightened
    lo: float = D.DOMAIN[0]  # input domain D
    hi: float = D.DOMAIN[1]
    attack: AttackOptions = field(default_factory=AttackOptions)
    engine: BoundOptions = field(default_factory=BoundOptions)  # precision, device, memory

    def __post_init__(self):
        if not (self.eps >= 0 and math.isfinite(self.eps)):
            raise InputError(f"--eps must be a finite number >= 0, got {self.eps}")
        if self.eps > self.hi - self.lo:
            raise InputError(
                f"--eps {self.eps:g} is wider than the whole input range [{self.lo:g}, "
                f"{self.hi:g}]; did you mean {self.eps:g}/255 = {self.eps / 255:.4g}?"
            )
        if not 0 <= self.delta <= 1:
            raise InputError(f"--delta is a gap of probabilities in [0, 1], got {self.delta}")
        if not 0 < self.tol <= 1:
            raise InputError(f"--tol must be in (0, 1], got {self.tol}")
        if not (self.tau > 0 and self.strict > 0):
            raise InputError("the proof margins tau and strict must be > 0")
        if not self.timeout > 0:
            raise InputError(f"--timeout must be > 0 seconds, got {self.timeout}")
        if not 0 <= self.lp_tighten < 1:
            raise InputError(
                f"--lp-tighten is a share of the time in [0, 1), got {self.lp_tighten}"
            )
        if not (self.gap_refine >= 0 and math.isfinite(self.gap_refine)):
            raise InputError(f"--gap-refine is seconds >= 0, got {self.gap_refine}")
        check_choice("--property", self.prop, PROPERTIES)
        check_choice("--method", self.method, CERTIFY_METHODS)
        check_choice("--milp-bounds", self.milp_bounds, BOUND_METHODS)
        check_choice("--gap-sign", self.gap_sign, GAP_SIGNS)
        check_choice("--solver", self.solver, SOLVERS)
