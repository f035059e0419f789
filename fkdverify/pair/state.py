"""One point's question, what a stage found about it, and what is established so far.

The flow is one-way (DESIGN.md section 3): ``certify`` hands each stage the questions and
states still open; the stage *returns* findings; ``merge`` folds a finding into a state. It is
the only function that makes a state, so it is the only place where bounds tighten and where
the soundness rules of DESIGN.md section 2 are enforced: Delta_lo <= Delta_hi, and a proof
never contradicts a re-checked counterexample (``SoundnessError`` otherwise)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import SoundnessError
from ..words import Property, Verdict

TIMES = ("attack", "bounds", "milp")  # where a finding's seconds are counted


@dataclass(frozen=True, eq=False)
class Question:
    """Is the pair faithful on the box [lo, hi] around x at class cls? (all flat float64).

    Proofs are about [lo, hi]; witnesses (counterexamples, Delta_lo points) are clipped to
    [clo, chi] (default: the same box), which for an eps-ball is the box rounded inward so
    that ``abs(x' - x) <= eps`` holds for it in float64 arithmetic, as a user checks it."""

    index: int
    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cls: int
    label: int = -1
    preds: tuple[int, int] = (-1, -1)  # the referee's (teacher, student) classes at x
    clo: np.ndarray | None = None
    chi: np.ndarray | None = None

    def __post_init__(self):
        if self.clo is None:
            object.__setattr__(self, "clo", self.lo)
        if self.chi is None:
            object.__setattr__(self, "chi", self.hi)


@dataclass(frozen=True, eq=False)
class Finding:
    """What one stage learned about one point; every field is optional.

    ``agreement``: a proof (AGREE) or a re-checked counterexample ``cex`` (DISAGREE);
    ``gap_lo`` with ``gap_x``: g at a re-checked point; ``gap_hi``: a sound bound, found by
    ``gap_method``; ``pair_ub`` (2P,): sound upper bounds of all pairwise logit differences of
    both networks (inf where unknown); ``times``: seconds per entry of ``TIMES``."""

    how: str = ""  # what produced it, for messages ("bounds", "joint bounds", "milp", ...)
    agreement: str = Verdict.UNKNOWN
    cex: np.ndarray | None = None
    gap_lo: float = float("nan")
    gap_x: np.ndarray | None = None
    gap_hi: float = float("nan")
    gap_method: str = ""
    pair_ub: np.ndarray | None = None
    unstable: tuple[tuple[str, int], ...] = ()  # (bound method, undecided ReLUs)
    notes: tuple[str, ...] = ()
    times: tuple[tuple[str, float], ...] = ()
    solver: str = ""


@dataclass(frozen=True, eq=False)
class PointState:
    """What is established about one point. Made only by ``merge``."""

    agreement: str = Verdict.UNKNOWN
    gap_lo: float = float("nan")
    gap_hi: float = float("nan")
    gap_method: str = ""
    cex: np.ndarray | None = None
    gap_x: np.ndarray | None = None  # the re-checked point that gave gap_lo
    pair_ub: np.ndarray | None = None  # (2P,) teacher rows then student rows
    unstable: dict = field(default_factory=dict)  # bound method -> undecided ReLUs
    notes: tuple[str, ...] = ()
    times: dict = field(default_factory=lambda: dict.fromkeys(TIMES, 0.0))
    solver: str = ""

    def spent(self) -> float:
        return float(sum(self.times.values()))


def merge(q: Question, st: PointState, f: Finding) -> PointState:
    """``st`` with ``f`` folded in: bounds only tighten, witnesses only rise."""
    agreement, cex = st.agreement, st.cex
    if f.agreement != Verdict.UNKNOWN and f.agreement != st.agreement:
        if st.agreement != Verdict.UNKNOWN:
            raise SoundnessError(
                f"point {q.index}: {f.how or 'a stage'} says {f.agreement} where an earlier "
                f"stage established {st.agreement}"
            )
        agreement = f.agreement
        if f.agreement == Verdict.DISAGREE:
            cex = f.cex
    gap_lo, gap_x = st.gap_lo, st.gap_x
    if not f.gap_lo <= gap_lo and not np.isnan(f.gap_lo):
        gap_lo, gap_x = f.gap_lo, f.gap_x
    gap_hi, gap_method = st.gap_hi, st.gap_method
    if not f.gap_hi >= gap_hi and not np.isnan(f.gap_hi):
        gap_hi, gap_method = f.gap_hi, f.gap_method
    if gap_lo > gap_hi:
        raise SoundnessError(f"point {q.index}: gap lower {gap_lo} > upper {gap_hi} "
                             f"({f.how or 'a stage'})")  # fmt: skip
    pair_ub = st.pair_ub
    if f.pair_ub is not None:
        pair_ub = f.pair_ub if pair_ub is None else np.minimum(pair_ub, f.pair_ub)
    times = dict(st.times)
    for k, t in f.times:
        times[k] += t
    return replace(
        st, agreement=agreement, cex=cex, gap_lo=gap_lo, gap_x=gap_x, gap_hi=gap_hi,
        gap_method=gap_method, pair_ub=pair_ub, unstable={**st.unstable, **dict(f.unstable)},
        notes=st.notes + tuple(n for n in f.notes if n not in st.notes), times=times,
        solver=f.solver or st.solver,
    )  # fmt: skip


def merge_all(q: Question, st: PointState, findings) -> PointState:
    for f in findings:
        st = merge(q, st, f)
    return st


def gap_open(st: PointState, opts) -> bool:
    """Does the gap question still need work? (--property gap: until the interval is within
    tol; faithful: until Delta is known to be on one side of delta, or a disagreement.)"""
    if opts.prop == Property.GAP:
        return not st.gap_hi - st.gap_lo <= opts.tol
    return st.agreement != Verdict.DISAGREE and not (
        st.gap_hi <= opts.delta or st.gap_lo > opts.delta
    )


def agreement_open(st: PointState, opts) -> bool:
    return opts.prop != Property.GAP and st.agreement == Verdict.UNKNOWN


def wants_gap(opts) -> bool:
    return opts.prop != Property.AGREEMENT


def is_open(st: PointState, opts) -> bool:
    """Is anything this point is asked still undecided?"""
    return agreement_open(st, opts) or (wants_gap(opts) and gap_open(st, opts))
