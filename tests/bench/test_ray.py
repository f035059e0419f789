"""A Ray run on a local cluster (ray start --head on loopback) gives the process runner's rows;
``fkdverify report`` on that grid writes the table and the four plots."""

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fkdverify.cli import main
from tests.bench.test_run import write_grid

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

SAME = (
    "task_id",
    "index",
    "label",
    "cls",
    "teacher_pred",
    "student_pred",
    "agreement",
    "faithful",
    "gap_lower",
    "gap_upper",
    "method",
    "eps",
    "unstable_ibp",
    "unstable_crown",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table(out):
    with open(out / "results.csv", newline="") as f:
        return sorted(tuple(r[c] for c in SAME) for r in csv.DictReader(f))


@pytest.fixture
def cluster():
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if exe is None:
        pytest.skip("the ray command is not installed")
    port, tmp = free_port(), tempfile.mkdtemp(prefix="ray")  # short: socket paths <= 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    up = subprocess.run(
        [
            exe,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([exe, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_rows_equal_process_rows_and_report(tmp_path, data, cluster, capsys):
    grid = write_grid(
        tmp_path / "g.toml",
        'eps = [0.01, 0.02]\nmethod = ["ibp", "crown"]\nn = 4\ndelta = [0.05, 0.1]',
    )
    env = {**os.environ, "FKD_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "fkdverify.cli", "benchmark", grid, "--quiet", "--out"]

    def bench(*args):
        r = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    assert "ran 32 of 32 tasks" in bench(str(tmp_path / "ray_out"), "--ray", cluster)
    bench(str(tmp_path / "proc_out"), "--workers", "2")
    assert table(tmp_path / "ray_out") == table(tmp_path / "proc_out")
    # resume through Ray: nothing to run, nothing written twice
    assert "ran 0 of 32 tasks" in bench(str(tmp_path / "ray_out"), "--ray", cluster)
    assert len(table(tmp_path / "ray_out")) == 32

    rep = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", str(tmp_path / "ray_out" / "results.csv"), "--out", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert "| kd | crown | 0.01 |" in printed and "faithful@0.05" in printed
    for name in (
        "summary.csv",
        "summary.md",
        "faithful_vs_eps.png",
        "gap_hi_by_model.png",
        "gap_sandwich.png",
        "time_per_point.png",
    ):
        assert (rep / name).stat().st_size > 1000 or name.startswith("summary")
    assert (rep / "faithful_vs_eps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
