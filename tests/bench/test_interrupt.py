"""Done-when of the benchmark issue: interrupt a running benchmark (SIGINT, SIGTERM, SIGKILL of
a worker, SIGKILL of the runner itself) at random moments, resume, and compare with an
uninterrupted run: every task exactly once, the same verdicts."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fkdverify.bench.grid import load_grid
from tests.bench.test_run import write_grid

pytestmark = pytest.mark.slow


def start(grid, out, data):
    env = {**os.environ, "FKD_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "fkdverify.cli", "benchmark", grid, "--out", str(out),
           "--workers", "2", "--quiet"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def workers_of(pid: int) -> list[int]:
    """Worker processes (multiprocessing spawn children) of ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out


def verdicts(out) -> list[tuple]:
    with open(out / "results.csv", newline="") as f:
        return [(r["task_id"], r["agreement"], r["faithful"]) for r in csv.DictReader(f)]


def test_interrupted_runs_resume_to_the_same_rows(tmp_path, data):
    grid = write_grid(
        tmp_path / "g.toml",
        'eps = [0.01, 0.02]\nmethod = ["ibp", "crown", "milp"]\ntimeout = 30\nn = 6',
    )
    ids = {t.id for t in load_grid(grid)}
    ref = tmp_path / "ref"
    p = start(grid, ref, data)
    assert p.wait(300) == 0, p.stderr.read().decode()
    expected = sorted(verdicts(ref))
    assert {v[0] for v in expected} == ids and len(expected) == len(ids)

    rng = random.Random(7)
    out = tmp_path / "interrupted"
    actions = ["sigint", "kill-worker", "kill-runner", "sigterm", "kill-worker", "sigint"]
    for action in actions:
        p = start(grid, out, data)
        time.sleep(rng.uniform(2.0, 7.0))
        if p.poll() is not None:
            break
        if action == "kill-worker":
            for _ in range(50):  # the pool may be between workers
                pids = workers_of(p.pid)
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    break
                time.sleep(0.1)
            time.sleep(rng.uniform(0.5, 3.0))
            p.send_signal(signal.SIGINT)
        else:
            sig = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM,
                   "kill-runner": signal.SIGKILL}[action]  # fmt: skip
            p.send_signal(sig)
        code = p.wait(120)
        # -15 / -2: a SIGTERM / SIGINT before the handlers are installed (a loaded machine
        # starts slowly: the signal's default action ends the process); nothing is written then
        assert code in (0, 130, -9, -15, -2), p.stderr.read().decode()
        if code == 130:
            assert "rows already written are kept" in p.stderr.read().decode()
    p = start(grid, out, data)
    assert p.wait(300) == 0, p.stderr.read().decode()
    got = verdicts(out)
    assert len(got) == len(ids), "a task was written twice or lost"
    assert sorted(got) == expected
