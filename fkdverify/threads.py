"""Torch threads of a pool worker, granted by the pool's parent while the worker runs: one
each while tasks wait, the idle cores shared among the busy workers once none do (so a run's
last hard point gets the whole machine). Long loops call ``take_granted`` between steps."""

from __future__ import annotations

_GRANT = None  # a shared multiprocessing integer in a pool worker; None elsewhere


def hold_grant(shared) -> None:
    """A pool worker: read its thread count from ``shared`` (written by the parent)."""
    global _GRANT
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
