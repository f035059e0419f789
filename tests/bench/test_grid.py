"""Grid files -> tasks: expansion, stable ids, clear errors; jobs."""

import pytest

from fkdverify.bench.grid import expand, load_grid, relabel
from fkdverify.bench.jobs import make_jobs
from fkdverify.errors import InputError


@pytest.fixture
def files(tmp_path):
    for n in ("t.onnx", "s.onnx", "s2.onnx"):
        (tmp_path / n).write_bytes(b"x")
    return tmp_path


def doc(**kw):
    d = {
        "eps": [0.01, 0.02],
        "method": ["crown", "milp"],
        "points": "0-2,7",
        "pairs": {"a": {"teacher": "t.onnx", "student": "s.onnx"}},
    }
    d.update(kw)
    return d


def test_expansion_crosses_axes_and_points(files):
    tasks = expand(doc(), files)
    assert len(tasks) == 2 * 2 * 4
    assert {t.index for t in tasks} == {0, 1, 2, 7}
    assert {(t.setting.eps, t.setting.method) for t in tasks} == {
        (e, m) for e in (0.01, 0.02) for m in ("crown", "milp")
    }
    assert len({t.id for t in tasks}) == len(tasks)
    assert all(t.setting.timeout == 60.0 and t.setting.delta == 0.1 for t in tasks)
    # settings stay together (so bound methods batch)
    keys = [t.setting for t in tasks]
    assert sum(keys[i] != keys[i + 1] for i in range(len(keys) - 1)) == 3


def test_ids_are_stable_under_reordering_and_growth(files):
    a = {t.id for t in expand(doc(), files)}
    b = {t.id for t in expand(doc(eps=[0.02, 0.01], method=["milp", "crown"]), files)}
    assert a == b
    c = {t.id for t in expand(doc(eps=[0.02, 0.01, 0.03]), files)}
    assert a < c and len(c) == 24
    # a different timeout is a different task
    d = {t.id for t in expand(doc(timeout=10), files)}
    assert not a & d


def test_pair_tables_override_options(files):
    d = doc(
        pairs={
            "a": {"teacher": "t.onnx", "student": "s.onnx"},
            "b": {"teacher": "t.onnx", "student": "s2.onnx", "eps": 0.3, "n": 2},
        }
    )
    tasks = expand(d, files)
    b = [t for t in tasks if t.setting.pair == "b"]
    assert len(b) == 2 * 2 and {t.setting.eps for t in b} == {0.3}
    assert b[0].setting.student == str(files / "s2.onnx")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epsilon": 0.1}, "unknown key 'epsilon'"),
        ({"eps": []}, "eps is an empty list"),
        ({"eps": "x"}, "is not a float"),
        ({"points": "a-b"}, "is not N or N-M"),
        ({"pairs": {}}, "no [pairs.NAME]"),
        ({"pairs": {"a": {"teacher": "t.onnx"}}}, "has no student"),
        ({"pairs": {"a": {"teacher": "t.onnx", "student": "nope.onnx"}}}, "nope.onnx not found"),
    ],
)
def test_bad_grids_are_one_line_errors(files, change, message):
    with pytest.raises(InputError, match=None) as e:
        expand(doc(**change), files)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_points_and_eps(files):
    d = doc()
    del d["points"]
    with pytest.raises(InputError, match="which test points"):
        expand(d, files)
    d = doc()
    del d["eps"]
    with pytest.raises(InputError, match="eps is required"):
        expand(d, files)


def test_load_grid_reads_toml(files):
    g = files / "g.toml"
    g.write_text('eps = 0.1\nn = 3\n[pairs.p]\nteacher = "t.onnx"\nstudent = "s.onnx"\n')
    assert len(load_grid(str(g))) == 3
    g.write_text("eps = [0.1\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_grid(str(g))


def test_relabel_changes_the_id(files):
    t = expand(doc(), files)[0]
    assert relabel(t, eps=0.5).id != t.id and relabel(t).id == t.id


def test_jobs_batch_bound_methods_only(files):
    tasks = expand(doc(points="0-9"), files)
    jobs = make_jobs(tasks, batch=4, workers=1)
    for j in jobs:
        assert len({t.setting for t in j.tasks}) == 1
        assert len(j.tasks) == (1 if j.tasks[0].setting.method == "milp" else len(j.tasks))
        assert len(j.tasks) <= 4
    assert sum(len(j.tasks) for j in jobs) == len(tasks)
    # with 4 workers a setting of 10 points is split so no worker idles
    jobs4 = make_jobs(tasks, batch=32, workers=4)
    assert max(len(j.tasks) for j in jobs4) == 3
    assert jobs[0].limit == 30 + 4 * 120.0
    assert make_jobs(tasks[:1], 1, hard_limit=5.0)[0].limit == 35.0
