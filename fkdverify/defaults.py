"""Default values, defined once: the options dataclasses, the CLI and the grid reader take
them from here (DESIGN.md section 6)."""

from __future__ import annotations

from .words import ClassMode, GapSign, Method, PointMode, Precision, Property, Solver

# the teacher/student question (certify, benchmark grids, export)
DELTA = 0.1  # faithful when agreement holds and Delta_hi <= DELTA
PROPERTY = Property.FAITHFUL.value
CERTIFY_METHOD = Method.AUTO.value  # milp+bab where the exact MILP fits, else alpha-crown
AUTO_MILP_RELUS = 4000  # auto: the exact MILP (+ bab) for dense pairs up to this many ReLUs
# milp+bab: share of a point's time left that the agreement MILPs may use before branch and
# bound takes over the agreement question (the gap MILP then gets what is left)
MILP_BAB_MILP_SHARE = 0.25
SOLVER = Solver.HIGHS.value
CERTIFY_TIMEOUT = 60.0  # seconds per point
# share of a point's time that the full attack may use where the bounds leave it open: it
# restarts (new seeds, class pairs the bounds allow) until a disagreement or the share is spent
ATTACK_SHARE = 0.1
GAP_SIGN = GapSign.TEACHER_MINUS_STUDENT.value
TOL = 1e-3  # Delta_hi - Delta_lo that counts as exact
TAU = 1e-4  # proof margin on logit differences (>> solver feasibility tolerance)
STRICT = 1e-3  # margin asked of a candidate counterexample (certify)
MILP_BOUNDS = Method.ALPHA_CROWN.value  # bounds that feed the MILP (big-M, stable ReLUs)
# faithful: seconds of a point's time left that narrow [Delta_lo, Delta_hi] once the verdict is
# settled with agreement (the faithful question alone stops Delta_hi at delta)
GAP_REFINE = 0.0
CERTIFY_LP_TIGHTEN = 0.0  # share of a point's time spent on LP bound tightening (0: off)
# --batch-size 0: points bounded together. The bound methods batch many; the MILP methods a
# few, whose batched bounds stage (alpha-CROWN narrowing) costs a fraction of one point's
# while each point's MILPs still run under its own deadline (rows arrive a batch at a time)
BATCH_BOUNDS = 100
BATCH_MILP = 8
CERTIFY_WORKERS = 0  # certify's processes: 0 = one per core (a single batch runs in-process)
CLASS_MODE = ClassMode.LABEL.value
POINT_MODE = PointMode.TEACHER_CORRECT.value
PRECISION = Precision.FLOAT64.value
BOUNDS_MEMORY_MB = 2048
DOMAIN = (0.0, 1.0)  # input domain D (pixel space)

# the single-network question (verify)
VERIFY_METHOD = Method.BAB.value  # the strongest complete method (a 9x200 MLP: 3/4 vs 1/4)
VERIFY_SOLVER = Solver.AUTO.value  # Gurobi when licensed: far stronger in bab's refinement
VERIFY_TIMEOUT = 120.0  # seconds per instance
VERIFY_LP_TIGHTEN = 0.25  # share of the time left spent on LP bound tightening first
VERIFY_STRICT = 1e-4  # margin asked of a MILP witness (verify)
REFINE = 0.5  # bab: share of the time left for MILP refinement of intermediate bounds
