"""Worker side of a benchmark: run one job (tasks of one setting) and return its rows.

A worker keeps the pairs it has built and the datasets it has read (``pool.cached``), so a
process or a Ray worker that runs many jobs of the same pair builds it once.
"""

from __future__ import annotations

import traceback

import numpy as np

from ..bounds.types import BoundOptions, auto_device
from ..errors import FkdError
from ..pair.options import CertifyOptions
from ..pair.runner import RunConfig, decide, load_data, pair_context, undecided
from ..pool import cached
from ..results import COLUMNS, ERROR, UNKNOWN, Result, RowSetting
from ..words import SOLVER_METHODS
from .grid import SETTING_COLUMNS, Setting, Task

# CSV of a benchmark: the task id, the setting, then certify's columns (shared ones once)
EXTRA = tuple(c for c in SETTING_COLUMNS if c not in COLUMNS)
BENCH_COLUMNS = ("task_id", *EXTRA, *COLUMNS)


def options(s: Setting) -> CertifyOptions:
    """The certify options of a setting (raises InputError for a bad value)."""
    from ..milp.backends import resolve_solver

    solver = resolve_solver(s.solver) if s.method in SOLVER_METHODS else s.solver
    engine = BoundOptions(precision=s.precision, device=auto_device())
    return CertifyOptions(eps=s.eps, delta=s.delta, prop=s.property, method=s.method,
                          solver=solver, gap_sign=s.gap_sign, timeout=s.timeout,
                          milp_bounds=s.milp_bounds, engine=engine)  # fmt: skip


def config(s: Setting, data_dir: str | None, indices=()) -> RunConfig:
    return RunConfig(s.teacher, s.student, options(s), dataset=s.dataset or None,
                     data_dir=data_dir, indices=tuple(indices), class_mode=s.class_mode,
                     points=s.points_mode, mean=s.mean or None, std=s.std or None)  # fmt: skip


def run_job(tasks: list[Task], data_dir: str | None) -> list[tuple[list, np.ndarray | None]]:
    """Rows (values in BENCH_COLUMNS order) and counterexamples of the job's tasks, in order.
    Anything a task raises becomes an ``error`` row with a one-line reason."""
    s = tasks[0].setting
    try:
        cfg = config(s, data_dir, [t.index for t in tasks])
        ctx, teacher = pair_context(cfg)
        key = ("data", cfg.dataset, cfg.data_dir, teacher.input_size)
        ds = cached(key, lambda: load_data(cfg, teacher))
        if max(cfg.indices) >= len(ds):
            raise FkdError(f"index {max(cfg.indices)} is outside {ds.name} (0..{len(ds) - 1})")
        jobs = [(i, ds.images[i].reshape(-1).astype(np.float64), int(ds.labels[i]))
                for i in cfg.indices]  # fmt: skip
        done = decide(cfg, ctx, jobs)
    except Exception as e:  # noqa: BLE001 - a task that raises is a row, the batch goes on
        why = str(e) if isinstance(e, FkdError) else _short(e)
        return [(error_row(t, why), None) for t in tasks]
    return [(row(t, r), cex) for t, (r, cex) in zip(tasks, done, strict=True)]


def _short(e: Exception) -> str:
    """Type, message and where it came from, on one line."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}".replace("\n", " ")[:300]


def row(task: Task, result: Result) -> list:
    vals = {"task_id": task.id, **{c: getattr(task.setting, c) for c in EXTRA}}
    vals.update({c: getattr(result, c) for c in COLUMNS})
    return [vals[c] for c in BENCH_COLUMNS]


def error_row(task: Task, why: str, verdict: str = ERROR, seconds: float = 0.0) -> list:
    """A row for a task that produced no result: verdict ``error`` (raised) or ``unknown``
    (killed at its hard time limit)."""
    s = task.setting
    setting = RowSetting(s.eps, s.delta, s.property, s.method)
    return row(task, undecided(setting, task.index, -1, why, verdict, seconds))


def timeout_row(task: Task, limit: float) -> list:
    return error_row(task, f"killed at the hard time limit ({limit:.0f} s)", UNKNOWN, limit)
