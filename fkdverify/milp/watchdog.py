"""A call that cannot overrun its time: ``bounded`` runs it in a forked child process and kills
the child when the time is up. HiGHS checks its time limit between the phases of a MIP solve
but not inside root cut separation: the one-hot disagreement MILP of an MNIST pair (468k
nonzeros) ran 13 s at an 8 s limit, and neither its interrupt callbacks nor ``cancelSolve``
stop it sooner. What the child learns on the way (a solver's dual bound) can be kept in a
``Shared`` value that outlives it. No solver is imported here."""

from __future__ import annotations

import math
import mmap
import os
import pickle
import select
import signal
import struct
import sys


def available() -> bool:
    """Whether calls can be bounded here (a POSIX fork)."""
    return hasattr(os, "fork")


class Shared:
    """One float that a forked child writes and the parent reads, also after the child was
    killed: an anonymous shared mapping made before the fork (8 bytes, written whole)."""

    def __init__(self, value: float = math.nan):
        self._m = mmap.mmap(-1, 8)
        self.set(value)

    def set(self, value: float) -> None:
        self._m[:8] = struct.pack("d", float(value))

    def get(self) -> float:
        return struct.unpack("d", self._m[:8])[0]


def bounded(fn, args: tuple, seconds: float) -> tuple[bool, object]:
    """(True, fn(*args)) when the child returns within ``seconds``; (False, None) when it was
    killed at that time. An exception in the child is raised here. The child shares the
    parent's memory as it was at the fork (nothing is copied in) and sends back the pickled
    result."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running the parent's exit code
        os.close(r)
        try:
            _die_with(parent)
            try:
                data = pickle.dumps((True, fn(*args)))
            except BaseException as e:  # noqa: BLE001 - handed to the parent to raise
                data = pickle.dumps((False, e))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    alive = True
    try:
        ready, _, _ = select.select([r], [], [], max(seconds, 0.0))
        if not ready:
            return False, None
        chunks = []
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        alive = False
        if not chunks:  # the child died without an answer (e.g. killed from outside)
            return False, None
        ok, value = pickle.loads(b"".join(chunks))
        if not ok:
            raise value
        return True, value
    finally:
        os.close(r)
        if alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


def _die_with(parent: int) -> None:
    """Linux: the child is killed when the parent dies (a pool worker killed at its hard limit
    must not leave a solver running); elsewhere the child ends at its solver's own limit."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
