"""Local process runner: N worker processes, one job at a time each, a hard time limit per
job enforced by killing the worker (whatever a solver does with its own limit), and a
restarted worker when one dies."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait

from .jobs import Job, dead_rows, overdue_rows


def _worker(conn, data_dir) -> None:
    """Run jobs sent over ``conn`` until it closes. Ctrl-C belongs to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from .execute import run_job

    torch.set_num_threads(1)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, tasks = msg
        conn.send((key, run_job(tasks, data_dir)))


class _Slot:
    """One worker process and the job it runs."""

    def __init__(self, ctx, data_dir):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, data_dir), daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None
        self.started = 0.0

    def send(self, job: Job) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send((job.key, job.tasks))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_local(jobs: list[Job], workers: int, data_dir: str | None,
              on_rows: Callable[[Job, list], None], retries: int = 2) -> None:  # fmt: skip
    """Run ``jobs`` on ``workers`` processes; ``on_rows(job, rows)`` once per job, in the
    parent, as each finishes. A job whose worker dies is retried ``retries`` times on a fresh
    worker, then written as error rows; one past its limit is killed and written as unknown."""
    if not jobs:
        return
    ctx = mp.get_context("spawn")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pending, tries = deque(jobs), {}
    slots = [_Slot(ctx, data_dir) for _ in range(min(workers, len(jobs)))]
    try:
        while pending or any(s.job for s in slots):
            for s in slots:
                if s.job is None and pending:
                    s.send(pending.popleft())
            busy = [s for s in slots if s.job]
            wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.5)
            for i, s in enumerate(slots):
                if s.job is None:
                    continue
                job, result = s.job, None
                try:
                    if s.conn.poll():
                        result = s.conn.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None:
                    s.job = None
                    on_rows(job, result[1])
                elif not s.proc.is_alive():
                    tries[job.key] = tries.get(job.key, 0) + 1
                    if tries[job.key] <= retries:
                        pending.appendleft(job)
                    else:
                        on_rows(job, dead_rows(job, s.proc.exitcode, tries[job.key]))
                    s.kill()
                    slots[i] = _Slot(ctx, data_dir)
                elif time.monotonic() - s.started > job.limit:
                    s.kill()
                    on_rows(job, overdue_rows(job))
                    slots[i] = _Slot(ctx, data_dir)
    finally:
        for s in slots:
            s.kill()
