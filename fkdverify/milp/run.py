"""MILPs of one point under its deadline: each call returns the solution; the runner keeps the
notes (e.g. a licence fallback) and solver seconds for the caller to report."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace

from ..errors import SolverRefused
from .backends import solve
from .model import Solution

MIN_LEFT_S = 0.05  # below this a solve is not started


class MilpRunner:
    """Runs MILPs until ``deadline`` (perf_counter time); Gurobi refusals fall back to HiGHS."""

    def __init__(self, name: str, deadline: float):
        self.name, self.deadline = name, deadline
        self.seconds = 0.0  # solver time spent so far
        self.notes: list[str] = []
        self.used = ""  # the back-end that solved the last model

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        return self.left() <= MIN_LEFT_S

    @contextmanager
    def capped(self, share: float):
        """Within the block, the deadline is ``share`` of the time left (never later than
        the runner's own); it is restored on the way out."""
        deadline = self.deadline
        self.deadline = min(deadline, time.perf_counter() + share * self.left())
        try:
            yield self
        finally:
            self.deadline = deadline

    def __call__(self, model, share: float = 1.0, abs_gap: float = 0.0) -> Solution | None:
        """Solve with ``share`` of the time left (all of it by default); None past the
        deadline. A refusal's reason comes back as the solution's message."""
        if self.expired():
            return None
        t0 = time.perf_counter()
        limit = self.left() * share
        note = ""
        try:
            sol = solve(self.name, model, limit, abs_gap=abs_gap)
        except SolverRefused as e:
            note = f"{e}; fell back to HiGHS"
            self.notes.append(note)
            self.name = "highs"
            sol = solve("highs", model, limit, abs_gap=abs_gap)
        self.seconds += time.perf_counter() - t0
        self.used = self.name
        return replace(sol, message=note or sol.message)
