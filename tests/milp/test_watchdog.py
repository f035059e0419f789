"""The watchdog: a bounded call returns its value, raises its error, and is killed when its
time is up; HiGHS through it gives the in-process answer."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fkdverify.bounds import network_bounds
from fkdverify.errors import SolverError
from fkdverify.milp import watchdog
from fkdverify.milp.backends import highs
from fkdverify.milp.model import Status
from fkdverify.milp.properties import margin_extreme
from fkdverify.net.onnx_import import import_onnx
from tests.builders import random_mlp

pytestmark = pytest.mark.skipif(not watchdog.available(), reason="no fork here")


def _fail():
    raise SolverError("from the child")


def test_bounded_returns_the_childs_value():
    done, value = watchdog.bounded(lambda a, b: (a + b, os.getpid()), (2, 3), 30.0)
    assert done and value[0] == 5 and value[1] != os.getpid()


def test_bounded_raises_the_childs_error():
    with pytest.raises(SolverError, match="from the child"):
        watchdog.bounded(_fail, (), 30.0)


def test_bounded_kills_a_call_that_runs_past_its_time():
    t0 = time.perf_counter()
    done, value = watchdog.bounded(time.sleep, (60.0,), 0.3)
    assert not done and value is None
    assert time.perf_counter() - t0 < 30.0  # killed, not waited for


def test_highs_through_the_watchdog_gives_the_same_optimum(tmp_path, monkeypatch):
    net = import_onnx(random_mlp(tmp_path / "n.onnx", [2, 10, 10, 3], seed=1, scale=2.0))
    lo, hi = np.array([0.1, 0.2]), np.array([0.7, 0.9])
    b = network_bounds(net, lo, hi, "crown")
    m, xid = margin_extreme(net, b, lo, hi, 0, 1, maximize=True)
    here = highs.solve(m, 30)
    monkeypatch.setattr(highs, "BOUNDED_NNZ", 0)  # every MILP through the child
    there = highs.solve(m, 30)
    assert here.status == there.status == Status.OPTIMAL
    assert there.objective == pytest.approx(here.objective, abs=1e-9)
    np.testing.assert_allclose(there.x[xid], here.x[xid], atol=1e-9)


def test_a_killed_highs_solve_reports_no_solution(tmp_path, monkeypatch):
    net = import_onnx(random_mlp(tmp_path / "n.onnx", [2, 10, 10, 3], seed=1, scale=2.0))
    lo, hi = np.array([0.1, 0.2]), np.array([0.7, 0.9])
    m, _ = margin_extreme(net, network_bounds(net, lo, hi, "crown"), lo, hi, 0, 1, True)
    monkeypatch.setattr(highs, "BOUNDED_NNZ", 0)
    monkeypatch.setattr(watchdog, "bounded", lambda fn, args, seconds: (False, None))
    sol = highs.solve(m, 1.0)
    assert sol.status == Status.NO_SOLUTION and sol.bound is None and sol.x is None
    assert "ran past" in sol.message


def _set_and_sleep(shared, value):
    shared.set(value)
    time.sleep(60.0)


def test_a_shared_value_outlives_a_killed_child():
    shared = watchdog.Shared()
    assert np.isnan(shared.get())
    done, _ = watchdog.bounded(_set_and_sleep, (shared, 2.5), 0.5)
    assert not done and shared.get() == 2.5


def test_a_killed_highs_solve_keeps_the_dual_bound_it_reported(tmp_path, monkeypatch):
    """The child's dual bounds reach the parent as they come: a solve killed after them
    reports the last one, a sound bound (never under the optimum of the maximisation)."""
    net = import_onnx(random_mlp(tmp_path / "n.onnx", [2, 10, 10, 3], seed=1, scale=2.0))
    lo, hi = np.full(2, 0.1), np.full(2, 0.9)
    m, _ = margin_extreme(net, network_bounds(net, lo, hi, "ibp"), lo, hi, 0, 1, True)
    best = highs.solve(m, 30)
    assert best.status == Status.OPTIMAL
    monkeypatch.setattr(highs, "BOUNDED_NNZ", 0)
    # the whole solve runs (and reports), then the parent acts as if it had killed it
    monkeypatch.setattr(
        watchdog, "bounded", lambda fn, args, seconds: (fn(*args), (False, None))[1]
    )
    sol = highs.solve(m, 30)
    assert sol.status == Status.NO_SOLUTION and sol.x is None
    assert sol.bound is not None and sol.bound >= best.objective - 1e-9


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")  # a zombie is dead too
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_its_parent(tmp_path):
    """A process killed while its bounded call runs (a pool worker at its hard limit) leaves
    no child behind."""
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import os, time
        from fkdverify.milp import watchdog
        def sleeper():
            with open({str(pid_file)!r} + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
            time.sleep(120)
        watchdog.bounded(sleeper, (), 120.0)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        t0 = time.perf_counter()
        while not pid_file.exists():
            assert time.perf_counter() - t0 < 60 and parent.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert not _gone(child)
    finally:
        parent.kill()
        parent.wait()
    t0 = time.perf_counter()
    while not _gone(child) and time.perf_counter() - t0 < 30:
        time.sleep(0.05)
    assert _gone(child)
