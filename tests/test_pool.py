"""The one process pool: results in the parent, a hard limit kills, a dead worker is
retried then reported, and the per-process cache builds once."""

import os
import time

from fkdverify.pool import PoolTask, cached, run_pool


def square(x):
    return x * x


def sleepy(s):
    time.sleep(s)
    return s


def die(code):
    os._exit(code)


def test_results_come_back():
    done, failed = {}, []
    tasks = [PoolTask(i, (i,), 60) for i in range(5)]
    run_pool(tasks, 2, square, lambda t, r: done.__setitem__(t.key, r),
             lambda t, f: failed.append(t))  # fmt: skip
    assert done == {i: i * i for i in range(5)} and not failed


def test_overdue_task_is_killed_and_others_go_on():
    done, failed = {}, []
    tasks = [PoolTask(0, (30,), 1.0), PoolTask(1, (0,), 60)]
    t0 = time.monotonic()
    run_pool(tasks, 1, sleepy, lambda t, r: done.__setitem__(t.key, r),
             lambda t, f: failed.append((t.key, f)))  # fmt: skip
    assert time.monotonic() - t0 < 25
    assert done == {1: 0} and failed[0][0] == 0 and failed[0][1].kind == "overdue"
    assert "hard time limit" in failed[0][1].reason()


def test_dead_worker_is_retried_then_reported():
    failed = []
    run_pool([PoolTask(0, (3,), 60)], 1, die, lambda t, r: None,
             lambda t, f: failed.append(f), retries=1)  # fmt: skip
    (f,) = failed
    assert f.kind == "died" and f.exitcode == 3 and f.tries == 2


def test_cache_builds_once():
    calls = []
    for _ in range(3):
        assert cached(("t", 1), lambda: calls.append(1) or "v") == "v"
    assert calls == [1]
