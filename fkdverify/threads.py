"""Torch's intra-op threads: every core for a process without a pool; in a pool worker, the
count the pool's parent grants while the worker runs: one each while tasks wait, the idle
cores shared among the busy workers once none do (so a run's last hard point gets the
machine). Long loops call ``take_granted`` between steps."""

from __future__ import annotations

import os

_GRANT = None  # a shared multiprocessing integer in a pool worker; None elsewhere


def cores() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def one_process_threads() -> None:
    """No pool: torch's intra-op threads take every core, where each pool worker starts on one
    (a lone branch-and-bound tree on 2 cores explores about twice the domains)."""
    import torch

    torch.set_num_threads(cores())


def hold_grant(shared) -> None:
    """A pool worker: one torch thread, then the count the parent writes to ``shared``."""
    global _GRANT
    import torch

    torch.set_num_threads(1)
    _GRANT = shared


def granted(n_cores: int, busy: int, waiting: int) -> int:
    """Threads for each busy worker: one while tasks wait, else the cores shared out."""
    return 1 if waiting or busy < 1 else max(1, n_cores // busy)


def take_granted() -> None:
    """Set torch's intra-op threads to the parent's grant, where it changed (a no-op outside
    a pool worker)."""
    if _GRANT is None:
        return
    n = int(_GRANT.value)
    import torch

    if n >= 1 and n != torch.get_num_threads():
        torch.set_num_threads(n)
