"""Thin MILP back-ends. Each module imports its own solver package and nothing else does."""

from __future__ import annotations

import importlib

from ...errors import InputError, SolverError
from ..model import MilpModel, Solution

SOLVERS = ("highs", "cbc", "gurobi")


def get_backend(name: str):
    """The module of back-end ``name`` (its ``solve(model, time_limit, ...)``)."""
    if name not in SOLVERS:
        raise InputError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return importlib.import_module(f"{__name__}.{name}")


def resolve_solver(name: str) -> str:
    """'auto' -> gurobi when it is installed and licensed, else highs; others are checked."""
    if name == "auto":
        try:
            get_backend("gurobi").check()
            return "gurobi"
        except SolverError:
            return "highs"
    get_backend(name).check()
    return name


def solve(name: str, model: MilpModel, time_limit: float, **kw) -> Solution:
    return get_backend(name).solve(model, time_limit, **kw)
