"""The project's words, defined once: verdicts, methods, properties, gap signs, solvers and the
other fixed choices of the CLI, the options and the grid files (DESIGN.md sections 1 and 3).

Each is a ``StrEnum``: its members are the strings written to CSV files and accepted on the
command line (``Verdict.AGREE == "agree"``), and the tuples below list the values an option
takes, in the order the help text shows them."""

from __future__ import annotations

from enum import StrEnum

UNKNOWN = "unknown"  # the one word both questions use for "not decided"
ERROR = "error"  # a row whose task raised (the reason is in its note)


class Verdict(StrEnum):
    """What a result row says about one point (teacher/student question)."""

    AGREE = "agree"
    DISAGREE = "disagree"
    FAITHFUL = "faithful"
    UNFAITHFUL = "unfaithful"
    UNKNOWN = UNKNOWN
    SKIPPED = "skipped"
    ERROR = ERROR


class SpecResult(StrEnum):
    """VNN-COMP's words for a single-network VNN-LIB instance."""

    SAT = "sat"  # a counterexample exists (and was re-checked)
    UNSAT = "unsat"  # the property holds
    UNKNOWN = UNKNOWN
    TIMEOUT = "timeout"
    ERROR = ERROR


class Method(StrEnum):
    ATTACK = "attack"
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    MILP = "milp"
    BAB = "bab"
    MILP_BAB = "milp+bab"  # certify: the MILPs, branch and bound where agreement stays open
    AUTO = "auto"  # certify: the strongest method that fits the pair (see pair/options.py)


class Property(StrEnum):
    FAITHFUL = "faithful"
    AGREEMENT = "agreement"
    GAP = "gap"


class GapSign(StrEnum):
    """g = p_T^c - p_S^c (student less confident), its opposite, or |.|."""

    TEACHER_MINUS_STUDENT = "teacher-minus-student"
    STUDENT_MINUS_TEACHER = "student-minus-teacher"
    ABS = "abs"


class Solver(StrEnum):
    HIGHS = "highs"
    CBC = "cbc"
    GUROBI = "gurobi"
    AUTO = "auto"  # Gurobi when a licence takes the model, else HiGHS


class ClassMode(StrEnum):
    LABEL = "label"
    TEACHER = "teacher"


class PointMode(StrEnum):
    TEACHER_CORRECT = "teacher-correct"
    BOTH_CORRECT = "both-correct"
    ALL = "all"


class Precision(StrEnum):
    FLOAT64 = "float64"
    FLOAT32 = "float32"


def values(enum) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


BOUND_METHODS = (Method.IBP.value, Method.CROWN.value, Method.ALPHA_CROWN.value)
EXPORT_FORMS = ("product", "robust")  # export: the product network, or one spec per network
CERTIFY_METHODS = (Method.AUTO.value, Method.ATTACK.value, *BOUND_METHODS, Method.MILP.value,
                   Method.BAB.value, Method.MILP_BAB.value)  # fmt: skip
VERIFY_METHODS = (Method.ATTACK.value, *BOUND_METHODS, Method.MILP.value, Method.BAB.value)
COMPLETE_METHODS = (Method.MILP.value, Method.BAB.value)
MILP_METHODS = (Method.MILP.value, Method.MILP_BAB.value)  # certify: a MILP solver runs
CERTIFY_COMPLETE_METHODS = (*MILP_METHODS, Method.BAB.value)  # certify: a complete stage runs
SOLVER_METHODS = (*MILP_METHODS, Method.AUTO.value)  # certify: --solver is resolved for these
PROPERTIES = values(Property)
GAP_SIGNS = values(GapSign)
SOLVERS = values(Solver)
CLASS_MODES = values(ClassMode)
POINT_MODES = values(PointMode)
PRECISIONS = values(Precision)
DEVICES = ("auto", "cpu", "cuda")
DATASETS = ("mnist", "fashion-mnist", "cifar10")
TEACHER_METHODS = ("standard", "pgd", "ibp", "crown-ibp", "mtl-ibp")  # train teacher --method
STUDENT_METHODS = ("kd", "ard", "rslad", "iad", "faithful", "certified-kd")  # train student
STUDENT_BOUNDS = ("crown-ibp", "ibp")  # train student --student-bound (faithful's bound term)


def check_choice(option: str, value, allowed: tuple[str, ...]) -> None:
    """One message for a value outside a fixed set (raised as InputError)."""
    from .errors import InputError

    if value not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
