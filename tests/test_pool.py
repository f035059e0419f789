"""The one process pool: results in the parent, a hard limit kills, a dead worker is
retried then reported, and the per-process cache builds once."""

import os
import time

import pytest

from fkdverify.pool import PoolTask, cached, run_pool
from fkdverify.threads import cores, one_process_threads


def square(x):
    return x * x


def sleepy(s):
    time.sleep(s)
    return s


def die(code):
    os._exit(code)


def threads(_):
    import torch

    return torch.get_num_threads()


def test_workers_take_one_thread_and_a_lone_process_every_core():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_process_threads()
        assert torch.get_num_threads() == cores() >= 1
    finally:
        torch.set_num_threads(before)
    done = {}
    run_pool([PoolTask(0, (0,), 60)], 1, threads, lambda t, r: done.__setitem__(t.key, r),
             lambda t, f: None)  # fmt: skip
    assert done == {0: 1}


def waits_for_cores(seconds):
    """The threads at the start, and once the other worker's task is done (or ``seconds``)."""
    import torch

    from fkdverify.threads import take_granted

    take_granted()
    first, end = torch.get_num_threads(), time.monotonic() + seconds
    while torch.get_num_threads() < cores() and time.monotonic() < end:
        time.sleep(0.05)
        take_granted()
    return first, torch.get_num_threads()


def test_busy_workers_get_the_cores_left_idle_where_asked():
    n = cores()
    if n < 2:
        pytest.skip("one core: nothing to share")
    done = {}
    tasks = [PoolTask("long", (30,), 60), PoolTask("short", (1,), 60)]
    run_pool(tasks, 2, waits_for_cores, lambda t, r: done.__setitem__(t.key, r),
             lambda t, f: None, share_cores=True)  # fmt: skip
    assert done["long"] == (n // 2, n)  # shared while both ran, every core once alone
    done.clear()
    run_pool(tasks[:1], 1, threads, lambda t, r: done.__setitem__(t.key, r), lambda t, f: None,
             share_cores=True)  # fmt: skip
    assert done == {"long": n}  # a lone task: every core from its start


def test_without_sharing_workers_keep_one_thread():
    done = {}
    run_pool([PoolTask(0, (0.5,), 60), PoolTask(1, (0.1,), 60)], 2, waits_for_cores,
             lambda t, r: done.__setitem__(t.key, r), lambda t, f: None)  # fmt: skip
    assert done == {0: (1, 1), 1: (1, 1)}


def say(msg):
    import logging

    logging.getLogger("fkdverify.test").info(msg)
    return msg


def test_workers_log_as_their_parent(capfd):
    import logging

    log = logging.getLogger("fkdverify")
    h = logging.StreamHandler()
    h.setFormatter(logging.Formatter("fkdverify: %(message)s"))
    level = log.level
    log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        run_pool([PoolTask(0, ("from a worker",), 60)], 1, say, lambda t, r: None,
                 lambda t, f: None)  # fmt: skip
    finally:
        log.removeHandler(h)
        log.setLevel(level)
    assert "fkdverify: from a worker" in capfd.readouterr().err


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


UNGUARDED = """
from fkdverify.errors import WorkerError
from fkdverify.pool import PoolTask, run_pool


def square(x):
    return x * x


try:  # no `if __name__ == "__main__":`: each spawned worker re-runs this and dies
    run_pool([PoolTask(i, (i,), 60) for i in range(4)], 2, square, lambda t, r: None,
             lambda t, f: print("FAILED", t.key))
    print("NO ERROR")
except WorkerError as e:
    print("WORKER ERROR:", e)
"""


def test_workers_that_die_importing_an_unguarded_script_stop_the_pool(tmp_path):
    """The spawn-and-import failure is one clear error at once, not every task failing."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path).stdout  # fmt: skip
    assert time.monotonic() - t0 < 60
    assert "WORKER ERROR:" in out and '__name__ == "__main__"' in out
    assert "FAILED" not in out and "NO ERROR" not in out


def test_a_task_that_kills_its_worker_is_not_a_start_failure():
    """A worker that dies *running* a task (after it started) is retried per task."""
    failed, done = [], {}
    tasks = [PoolTask(0, (3,), 60), PoolTask(1, (4,), 60), PoolTask(2, (5,), 60)]
    run_pool(tasks, 2, die, lambda t, r: done.__setitem__(t.key, r),
             lambda t, f: failed.append((t.key, f.exitcode)), retries=0)  # fmt: skip
    assert sorted(failed) == [(0, 3), (1, 4), (2, 5)] and not done
