"""The one local process pool: N worker processes, one task at a time each, a hard time limit
per task enforced by killing its worker (whatever a solver does with its own limit), and a
fresh worker when one dies. Used by ``certify --workers``, ``verify --instances --workers``
and ``benchmark``. Also the one per-process cache of what a worker builds (pairs, networks,
datasets), so that a worker running many tasks of the same files builds them once."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from .errors import WorkerError
from .threads import cores, granted, hold_grant, take_granted

GRACE_S = 30.0  # worker start-up and model build on top of a task's own limit
READY = "ready"  # a worker's first message: it got past importing the parent's main module
LOGGER = "fkdverify"  # the package's logger, set up again in each worker
START_DEATHS = 2  # workers in a row dying before READY: the pool cannot start (WorkerError)


@dataclass(frozen=True)
class PoolTask:
    key: Hashable
    args: tuple  # work(*args) runs it
    limit: float  # seconds before the worker is killed


@dataclass(frozen=True)
class Failure:
    """Why a task gave no result: its worker ``died`` on every try, or ran ``overdue``."""

    kind: str
    exitcode: int | None = None
    tries: int = 0
    limit: float = 0.0

    def reason(self) -> str:
        if self.kind == "overdue":
            return f"killed at the hard time limit ({self.limit:.0f} s)"
        return f"worker died (exit code {self.exitcode}) on each of {self.tries} tries"


def _parent_log() -> tuple[int, list[str]]:
    """The package logger's level and its stream handlers' formats, for the workers."""
    log = logging.getLogger(LOGGER)
    fmts = [h.formatter._fmt if h.formatter else "%(message)s"
            for h in log.handlers if isinstance(h, logging.StreamHandler)]  # fmt: skip
    return log.level, fmts


def _same_log(level: int, fmts: list[str]) -> None:
    """A spawned worker logs as its parent does (on the stderr they share)."""
    log = logging.getLogger(LOGGER)
    log.setLevel(level)
    for f in fmts:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(f))
        log.addHandler(h)


def _worker(conn, work, init, init_args, log_setup, grant) -> None:
    """Run tasks sent over ``conn`` until it closes, on the torch threads ``grant`` holds
    (``threads.py``). Ctrl-C belongs to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _same_log(*log_setup)
    conn.send(READY)
    hold_grant(grant)
    if init is not None:
        init(*init_args)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, args = msg
        take_granted()
        conn.send((key, work(*args)))


class _Slot:
    """One worker process and the task it runs."""

    def __init__(self, ctx, work, init, init_args, log_setup, grant):
        self.conn, child = ctx.Pipe()
        args = (child, work, init, init_args, log_setup, grant)
        self.proc = ctx.Process(target=_worker, args=args, daemon=True)
        self.proc.start()
        child.close()
        self.task: PoolTask | None = None
        self.started = 0.0
        self.ready = False

    def result(self):
        """(key, value) of the finished task, or None; notes READY on the way."""
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg == READY:
                    self.ready = True
                else:
                    return msg
        except (EOFError, OSError):
            pass
        return None

    def send(self, task: PoolTask) -> None:
        self.task, self.started = task, time.monotonic()
        self.conn.send((task.key, task.args))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_pool(tasks: list[PoolTask], workers: int, work: Callable,
             on_done: Callable[[PoolTask, Any], None],
             on_fail: Callable[[PoolTask, Failure], None], init: Callable | None = None,
             init_args: tuple = (), retries: int = 2,
             share_cores: bool = False) -> None:  # fmt: skip
    """Run ``tasks`` on ``workers`` spawned processes (``init(*init_args)`` once in each);
    ``on_done(task, result)`` or ``on_fail(task, failure)`` once per task, in this process,
    as each ends. A task whose worker dies is retried ``retries`` times on a fresh worker;
    one past its limit is killed. ``work`` and ``init`` must be module-level functions.
    Each worker runs torch on one thread; with ``share_cores``, once no task waits, the busy
    workers share the idle cores (``threads.py``: results come sooner, but a task's time then
    depends on when it ran, so benchmarks keep one thread)."""
    if not tasks:
        return
    ctx = mp.get_context("spawn")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pending, tries = deque(tasks), {}
    log_setup = _parent_log()
    grant = ctx.Value("i", 1, lock=False)  # torch threads of each busy worker (threads.py)
    n_cores = cores()

    def slot():
        return _Slot(ctx, work, init, init_args, log_setup, grant)

    slots = [slot() for _ in range(min(workers, len(tasks)))]
    start_deaths = 0
    try:
        while pending or any(s.task for s in slots):
            starting = [(s, pending.popleft()) for s in slots if s.task is None and pending]
            if share_cores:
                n_busy = sum(s.task is not None for s in slots) + len(starting)
                grant.value = granted(n_cores, n_busy, len(pending))
            for s, task in starting:  # after the grant: a task starts on its worker's threads
                s.send(task)
            busy = [s for s in slots if s.task]
            wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.5)
            for i, s in enumerate(slots):
                if s.task is None:
                    continue
                task, result = s.task, s.result()
                start_deaths = 0 if s.ready else start_deaths
                if result is not None:
                    s.task = None
                    on_done(task, result[1])
                elif not s.proc.is_alive() and not s.ready:  # died importing the main
                    start_deaths += 1  # module: its task never ran, so it costs no try
                    if start_deaths >= START_DEATHS:
                        raise WorkerError(_start_message(s.proc.exitcode))
                    pending.appendleft(task)
                    s.kill()
                    slots[i] = slot()
                elif not s.proc.is_alive():
                    tries[task.key] = tries.get(task.key, 0) + 1
                    if tries[task.key] <= retries:
                        pending.appendleft(task)
                    else:
                        on_fail(task, Failure("died", s.proc.exitcode, tries[task.key]))
                    s.kill()
                    slots[i] = slot()
                elif time.monotonic() - s.started > task.limit:
                    s.kill()
                    on_fail(task, Failure("overdue", limit=task.limit))
                    slots[i] = slot()
    finally:
        for s in slots:
            s.kill()


def _start_message(code) -> str:
    return (f"worker processes exit (code {code}) before they can run a task, while they "
            "import the calling script: with workers > 1, call fkdverify from a script only "
            'under `if __name__ == "__main__":` (workers are spawned and import it), or use '
            "workers=1")  # fmt: skip


# ------------------------------------------------------------------ the per-process cache
_CACHE: OrderedDict = OrderedDict()
KEEP = 4  # entries kept per process (a grid runs its jobs pair by pair)


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per process and key; the least recently used entries go first."""
    if key not in _CACHE:
        _CACHE[key] = build()
        while len(_CACHE) > KEEP:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
