"""Jobs: tasks of one setting run together (bound methods are batched; MILP and attack go one
point per job so that each point's limit stays its own), with a hard time limit."""

from __future__ import annotations

from dataclasses import dataclass

from ..pool import GRACE_S, Failure
from ..words import BOUND_METHODS
from .execute import error_row, timeout_row
from .grid import Task


@dataclass(frozen=True)
class Job:
    key: int
    tasks: list[Task]
    limit: float  # seconds before the worker is killed


def task_limit(task: Task, hard_limit: float) -> float:
    """``hard_limit`` when set, else twice the task's own timeout."""
    return hard_limit if hard_limit > 0 else 2.0 * task.setting.timeout


def make_jobs(
    tasks: list[Task], batch: int, hard_limit: float = 0.0, workers: int = 1
) -> list[Job]:
    """Consecutive tasks of one setting, for bound methods up to ``batch`` at a time (fewer
    when that would leave workers idle)."""
    jobs, cur = [], []
    count: dict = {}
    for t in tasks:
        count[t.setting] = count.get(t.setting, 0) + 1

    def flush():
        if cur:
            limit = GRACE_S + sum(task_limit(t, hard_limit) for t in cur)
            jobs.append(Job(len(jobs), list(cur), limit))
            cur.clear()

    for t in tasks:
        share = -(-count[t.setting] // workers)
        size = min(batch, share) if t.setting.method in BOUND_METHODS else 1
        if cur and (cur[0].setting != t.setting or len(cur) >= size):
            flush()
        cur.append(t)
    flush()
    return jobs


def failed_rows(job: Job, failure: Failure) -> list:
    """Rows of a job that gave no result: error rows (its worker died), or unknown rows at the
    hard limit (killed)."""
    if failure.kind == "overdue":
        return [(timeout_row(t, job.limit), None) for t in job.tasks]
    return [(error_row(t, failure.reason()), None) for t in job.tasks]
