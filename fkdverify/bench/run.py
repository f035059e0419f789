"""``fkdverify benchmark``: a grid file -> tasks -> rows in DIR/results.csv, resumable."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..pool import Failure, PoolTask, run_pool
from ..results import CsvWriter, check_own, check_sidecar, finished, write_sidecar
from ..threads import cores
from .execute import BENCH_COLUMNS, config, run_job
from .grid import load_grid
from .jobs import Job, failed_rows, make_jobs

RESULTS = "results.csv"


@dataclass(frozen=True)
class BenchOptions:
    grid: str
    out: str
    workers: int = 0  # 0: all cores
    ray: str | None = None  # address of an existing Ray cluster
    data_dir: str | None = None
    hard_limit: float = 0.0  # seconds per task before its worker is killed (0: 2 x timeout)
    batch: int = 32  # points per job for bound methods

    def __post_init__(self):
        if self.workers < 0:
            raise InputError("--workers must be >= 1 (or 0: all cores)")
        if self.batch < 1:
            raise InputError("--batch-size must be >= 1")
        if self.hard_limit < 0:
            raise InputError("--hard-limit must be >= 0 seconds (0: twice each task's timeout)")

    def n_workers(self) -> int:
        return self.workers or cores()


@dataclass(frozen=True)
class BenchSummary:
    total: int
    skipped_done: int  # finished in an earlier run
    ran: int
    csv: str


def finished_ids(path: str) -> set[str]:
    """Task ids already in a results CSV (the one resume rule, ``results.finished``)."""
    return {k[0] for k in finished(path, BENCH_COLUMNS, ("task_id",)) if k[0]}


def run_local(jobs: list[Job], workers: int, data_dir: str | None,
              on_rows: Callable[[Job, list], None]) -> None:  # fmt: skip
    """The jobs on the local process pool (``pool.run_pool``): ``on_rows(job, rows)`` once per
    job, with error rows when its worker died and unknown rows when it was killed."""
    by_key = {j.key: j for j in jobs}

    def failed(task: PoolTask, f: Failure) -> None:
        on_rows(by_key[task.key], failed_rows(by_key[task.key], f))

    tasks = [PoolTask(j.key, (j.tasks, data_dir), j.limit) for j in jobs]
    run_pool(tasks, workers, run_job, lambda t, rows: on_rows(by_key[t.key], rows), failed)


def benchmark(opts: BenchOptions, on_start: Callable[[int, int], None] | None = None,
              on_row: Callable[[list], None] | None = None) -> BenchSummary:  # fmt: skip
    """Run the grid's unfinished tasks; ``on_start(total, done)``, then ``on_row(values)``
    after each row is on disk."""
    tasks = load_grid(opts.grid)
    for s in {t.setting for t in tasks}:
        config(s, opts.data_dir)  # a bad option value fails here, before anything runs
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = str(out / RESULTS)
    check_own(path, BENCH_COLUMNS, "benchmark")  # refuse a foreign file before any change
    check_sidecar(path)
    done = finished_ids(path)
    writer = CsvWriter(path, BENCH_COLUMNS)
    todo = [t for t in tasks if t.id not in done]
    write_sidecar(path, {**asdict(opts), "grid_text": Path(opts.grid).read_text(),
                         "tasks": len(tasks), "already_done": len(tasks) - len(todo)})  # fmt: skip
    if on_start:
        on_start(len(tasks), len(tasks) - len(todo))
    cex_col = BENCH_COLUMNS.index("counterexample")

    def on_rows(job, rows):
        for task, (vals, cex) in zip(job.tasks, rows, strict=True):
            if cex is not None:
                (out / "cex").mkdir(exist_ok=True)
                p = out / "cex" / f"{task.id}.npy"
                np.save(p, np.asarray(cex, np.float64))
                vals[cex_col] = str(p)
            writer.write_row(vals)
            if on_row:
                on_row(vals)

    workers = 8 if opts.ray else opts.n_workers()
    jobs = make_jobs(todo, opts.batch, opts.hard_limit, workers)
    # workers (Ray's in particular) need not share this process's environment
    data_dir = opts.data_dir or os.environ.get("FKD_DATA_DIR")
    try:
        if opts.ray:
            from .ray_runner import run_ray

            run_ray(jobs, opts.ray, data_dir, on_rows)
        else:
            run_local(jobs, opts.n_workers(), data_dir, on_rows)
    finally:
        writer.close()
    return BenchSummary(len(tasks), len(tasks) - len(todo), len(todo), path)
