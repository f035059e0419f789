"""Benchmark runs on the shipped MNIST pair: rows, resume, error rows, hard limits."""

import csv

import pytest

from fkdverify.bench.execute import BENCH_COLUMNS
from fkdverify.bench.grid import load_grid
from fkdverify.bench.jobs import Job
from fkdverify.bench.run import BenchOptions, benchmark, run_local
from fkdverify.cli import main
from tests.conftest import REPO

MODELS = REPO / "models"


def write_grid(path, body: str) -> str:
    path.write_text(
        body
        + f'\n[pairs.kd]\nteacher = "{MODELS}/mnist_teacher_pgd.onnx"\n'
        + f'student = "{MODELS}/mnist_student_kd.onnx"\n'
    )
    return str(path)


def rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def grid(tmp_path, data):
    return write_grid(tmp_path / "g.toml", 'eps = 0.02\nmethod = ["ibp", "crown"]\nn = 4')


def test_rows_resume_and_repair(tmp_path, grid, data):
    out = tmp_path / "out"
    opts = BenchOptions(grid, str(out), workers=1, data_dir=str(data))
    first = benchmark(opts)
    assert (first.total, first.ran) == (8, 8)
    got = rows(out)
    assert list(got[0]) == list(BENCH_COLUMNS)
    assert {r["task_id"] for r in got} == {t.id for t in load_grid(grid)}
    assert {r["method"] for r in got} == {"ibp", "crown"}
    # crown decides at least what ibp decides on each point
    by = {(r["method"], r["index"]): r["agreement"] for r in got}
    assert all(by[("crown", i)] == "agree" for (m, i), v in by.items() if v == "agree")
    again = benchmark(opts)
    assert again.ran == 0 and len(rows(out)) == 8
    # a run killed mid-row: the last rows are lost and one is cut short
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:-3]) + lines[-3][:20])
    third = benchmark(opts)
    assert third.ran == 3
    final = rows(out)
    assert sorted(r["task_id"] for r in final) == sorted(r["task_id"] for r in got)
    faithful = {r["task_id"]: r["faithful"] for r in got}
    assert {r["task_id"]: r["faithful"] for r in final} == faithful
    sidecar = (out / "results.csv.json").read_text()
    assert '"already_done": 5' in sidecar and "grid_text" in sidecar


def test_a_task_that_raises_is_an_error_row(tmp_path, data):
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    g = write_grid(tmp_path / "g.toml", 'eps = 0.02\nmethod = "ibp"\nn = 2')
    with open(g, "a") as f:
        f.write(f'[pairs.broken]\nteacher = "{MODELS}/mnist_teacher_pgd.onnx"\n')
        f.write('student = "broken.onnx"\n')
    out = tmp_path / "out"
    res = benchmark(BenchOptions(g, str(out), workers=2, data_dir=str(data)))
    assert res.ran == 4
    got = rows(out)
    bad = [r for r in got if r["pair"] == "broken"]
    assert [r["agreement"] for r in bad] == ["error", "error"]
    assert all("broken.onnx" in r["note"] for r in bad)
    assert all(r["agreement"] != "error" for r in got if r["pair"] == "kd")


def test_hard_limit_kills_the_worker(tmp_path, data):
    g = write_grid(tmp_path / "g.toml", 'eps = 0.1\nmethod = "milp"\ntimeout = 600\nn = 1')
    (task,) = load_grid(g)
    seen = []
    run_local([Job(0, [task], 1.0), Job(1, [task], 1.0)], 1, str(data),
              lambda job, rs: seen.extend(rs))  # fmt: skip
    assert len(seen) == 2
    for vals, cex in seen:
        r = dict(zip(BENCH_COLUMNS, vals, strict=True))
        assert r["agreement"] == r["faithful"] == "unknown" and cex is None
        assert "hard time limit" in r["note"] and r["time_total_s"] == 1.0


def test_cli_errors_are_one_line(tmp_path, capsys, data):
    g = tmp_path / "g.toml"
    g.write_text("eps = 0.1\n")
    assert main(["benchmark", str(g), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: grid:") and "\n" not in err
    good = write_grid(tmp_path / "g2.toml", "eps = 0.1\nn = 1")
    (tmp_path / "file").write_text("")
    assert main(["benchmark", good, "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["benchmark", good, "--out", str(tmp_path / "o"), "--workers", "-1"]) == 2
