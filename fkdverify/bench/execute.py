"""Worker side of a benchmark: run one job (tasks of one setting) and return its rows.

A worker keeps the pairs it has built (one model build per worker per pair, not per point)
and the datasets it has read, so a process or a Ray worker that runs many jobs of the same
pair builds it once.
"""

from __future__ import annotations

import traceback
from collections import OrderedDict

import numpy as np

from ..bounds.propagate import BoundOptions, auto_device
from ..certify import CertifyOptions, PairContext, make_result
from ..errors import FkdError
from ..results import COLUMNS, ERROR, UNKNOWN
from ..runner import RunConfig, decide, load_data, load_pair, no_result
from .grid import SETTING_COLUMNS, Setting, Task

# CSV of a benchmark: the task id, the setting, then certify's columns (shared ones once)
EXTRA = tuple(c for c in SETTING_COLUMNS if c not in COLUMNS)
BENCH_COLUMNS = ("task_id", *EXTRA, *COLUMNS)

_PAIRS: OrderedDict = OrderedDict()  # (teacher, student, mean, std) -> (PairContext, teacher)
_DATA: dict = {}
KEEP_PAIRS = 2  # pairs kept per worker (a grid runs its jobs pair by pair)


def options(s: Setting) -> CertifyOptions:
    """The certify options of a setting (raises InputError for a bad value)."""
    from ..milp.backends import resolve_solver

    solver = resolve_solver(s.solver) if s.method == "milp" else s.solver
    engine = BoundOptions(precision=s.precision, device=auto_device())
    return CertifyOptions(eps=s.eps, delta=s.delta, prop=s.property, method=s.method,
                          solver=solver, gap_sign=s.gap_sign, timeout=s.timeout,
                          milp_bounds=s.milp_bounds, engine=engine)  # fmt: skip


def config(s: Setting, data_dir: str | None, indices=()) -> RunConfig:
    return RunConfig(s.teacher, s.student, options(s), dataset=s.dataset or None,
                     data_dir=data_dir, indices=tuple(indices), class_mode=s.class_mode,
                     points=s.points_mode, mean=s.mean or None, std=s.std or None)  # fmt: skip


def _pair(cfg: RunConfig):
    key = (cfg.teacher, cfg.student, cfg.mean, cfg.std)
    if key not in _PAIRS:
        teacher, student, norms = load_pair(cfg)
        _PAIRS[key] = (PairContext(teacher, student, cfg.teacher, cfg.student, norms), teacher)
        while len(_PAIRS) > KEEP_PAIRS:
            _PAIRS.popitem(last=False)
    _PAIRS.move_to_end(key)
    return _PAIRS[key]


def _data(cfg: RunConfig, teacher):
    key = (cfg.dataset, cfg.data_dir, teacher.input_size)
    if key not in _DATA:
        _DATA[key] = load_data(cfg, teacher)
    return _DATA[key]


def run_job(tasks: list[Task], data_dir: str | None) -> list[tuple[list, np.ndarray | None]]:
    """Rows (values in BENCH_COLUMNS order) and counterexamples of the job's tasks, in order.
    Anything a task raises becomes an ``error`` row with a one-line reason."""
    s = tasks[0].setting
    try:
        cfg = config(s, data_dir, [t.index for t in tasks])
        ctx, teacher = _pair(cfg)
        ds = _data(cfg, teacher)
        if max(cfg.indices) >= len(ds):
            raise FkdError(f"index {max(cfg.indices)} is outside {ds.name} (0..{len(ds) - 1})")
        jobs = [(i, ds.images[i].reshape(-1).astype(np.float64), int(ds.labels[i]))
                for i in cfg.indices]  # fmt: skip
        done = decide(cfg, ctx, jobs)
    except Exception as e:  # noqa: BLE001 - a task that raises is a row, the batch goes on
        why = str(e) if isinstance(e, FkdError) else _short(e)
        return [(error_row(t, why), None) for t in tasks]
    out = []
    for t, (_, label, fields_, cex) in zip(tasks, done, strict=True):
        out.append((row(t, make_result(fields_, label)), cex))
    return out


def _short(e: Exception) -> str:
    """Type, message and where it came from, on one line."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}".replace("\n", " ")[:300]


def row(task: Task, result) -> list:
    vals = {"task_id": task.id, **{c: getattr(task.setting, c) for c in EXTRA}}
    vals.update({c: getattr(result, c) for c in COLUMNS})
    return [vals[c] for c in BENCH_COLUMNS]


def error_row(task: Task, why: str, verdict: str = ERROR) -> list:
    """A row for a task that produced no result: verdict ``error`` (raised) or ``unknown``
    (killed at its hard time limit)."""
    s = task.setting
    fields_ = no_result(task.index, -1, -1, -1, s.eps, s.delta, s.property, s.method, why,
                        verdict)  # fmt: skip
    return row(task, make_result(fields_, -1))


def timeout_row(task: Task, limit: float) -> list:
    vals = error_row(task, f"killed at the hard time limit ({limit:.0f} s)", UNKNOWN)
    vals[BENCH_COLUMNS.index("time_total_s")] = limit
    return vals
