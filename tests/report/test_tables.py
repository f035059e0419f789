"""Report tables on hand-made result rows with known answers; plots are PNGs."""

import csv
import math

import pytest

from fkdverify.bench.execute import BENCH_COLUMNS
from fkdverify.errors import InputError
from fkdverify.report.plots import plot_all
from fkdverify.report.tables import markdown, read_rows, summarise, write_tables


def write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, BENCH_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in BENCH_COLUMNS})
    return str(path)


def r(index, agreement, faithful, lo, hi, delta=0.1, pred=None, label=3, t=1.0, note="", **kw):
    return dict(
        task_id=f"{index}-{delta}-{kw.get('method', 'milp')}",
        pair="kd",
        index=index,
        label=label,
        cls=label,
        teacher_pred=label,
        student_pred=label if pred is None else pred,
        agreement=agreement,
        faithful=faithful,
        gap_lower=lo,
        gap_upper=hi,
        eps=kw.get("eps", 0.1),
        delta=delta,
        method=kw.get("method", "milp"),
        time_total_s=t,
        note=note,
    )


@pytest.fixture
def csv_file(tmp_path):
    rows = [
        r(0, "agree", "faithful", 0.01, 0.05, t=1),
        r(1, "agree", "unfaithful", 0.2, 0.3, t=2),
        r(2, "disagree", "unfaithful", 0.5, 0.9, pred=4, t=3),
        r(3, "unknown", "unknown", 0.02, 0.8, t=4),
        r(4, "skipped", "skipped", "nan", "nan", pred=5, note="skipped: teacher predicts 5"),
        r(5, "error", "error", "nan", "nan", label=-1, pred=-1, note="boom"),
        # the same points at delta 0.5: point 1 becomes faithful
        r(0, "agree", "faithful", 0.01, 0.05, delta=0.5),
        r(1, "agree", "faithful", 0.2, 0.3, delta=0.5),
        r(2, "disagree", "unfaithful", 0.5, 0.9, delta=0.5, pred=4),
        r(3, "unknown", "unknown", 0.02, 0.8, delta=0.5),
        r(0, "agree", "faithful", 0.0, 0.01, method="crown", eps=0.05, t=0.1),
    ]
    return write(tmp_path / "res.csv", rows)


def test_summary_known_answers(csv_file):
    header, table = summarise(read_rows([csv_file]))
    row = dict(zip(header, table[1], strict=True))  # (kd, milp, 0.1)
    assert (row["model"], row["method"], row["eps"]) == ("kd", "milp", 0.1)
    assert row["n"] == 4  # skipped and error rows are not decided points
    assert row["clean_acc"] == pytest.approx(3 / 5)  # 0,1,3 right; 2 and 4 wrong
    assert row["found_disagree_rate"] == pytest.approx(1 / 4)
    assert row["proven_agree_rate"] == pytest.approx(2 / 4)
    assert row["unknown_rate"] == pytest.approx(1 / 4)
    assert row["faithful@0.1"] == pytest.approx(1 / 4)
    assert row["faithful@0.5"] == pytest.approx(2 / 4)
    assert row["median_gap_hi"] == pytest.approx(0.55)
    assert row["mean_gap_lo"] == pytest.approx((0.01 + 0.2 + 0.5 + 0.02) / 4)
    assert (row["unknown"], row["errors"]) == (1, 1)
    assert row["median_time_s"] == pytest.approx(2.5)
    assert row["p95_time_s"] == pytest.approx(3.85)
    crown = dict(zip(header, table[0], strict=True))
    assert crown["faithful@0.1"] == 1.0 and math.isnan(crown["faithful@0.5"])
    md = markdown(header, table)
    assert md.count("\n") == 3 and "| kd | milp | 0.1 | 4 |" in md


def test_tables_and_plots_are_written(csv_file, tmp_path):
    rows = read_rows([csv_file])
    out = tmp_path / "rep"
    c, m = write_tables(*summarise(rows), out)
    assert c.read_text().startswith("model,method,eps,n,clean_acc")
    assert "nan" in c.read_text()
    pngs = plot_all(rows, out)
    assert [p.name for p in pngs] == [
        "faithful_vs_eps.png",
        "gap_hi_by_model.png",
        "gap_sandwich.png",
        "time_per_point.png",
    ]
    for p in pngs:
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 10_000


def test_certify_csvs_are_read_too(tmp_path):
    from fkdverify.results import COLUMNS

    p = tmp_path / "mnist_student_kd.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerow({c: v for c, v in r(0, "agree", "faithful", 0.0, 0.01).items() if c in COLUMNS})
    (row,) = read_rows([str(p)])
    assert row.model == "mnist_student_kd"


def test_not_a_results_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a fkdverify results CSV: it has no column index"):
        read_rows([str(p)])


def _certify_csv(path, rows, student=None):
    import json

    from fkdverify.results import COLUMNS

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in COLUMNS})
    if student:
        side = {"columns": list(COLUMNS), "runs": [{"config": {"student": student}}]}
        (path.parent / (path.name + ".json")).write_text(json.dumps(side))
    return str(path)


def test_same_file_names_in_two_folders_stay_two_models(tmp_path):
    a = _certify_csv(tmp_path / "a" / "r.csv", [r(0, "agree", "faithful", 0.0, 0.01)])
    b = _certify_csv(tmp_path / "b" / "r.csv", [r(0, "disagree", "unfaithful", 0.5, 0.9)])
    rows = read_rows([a, b])
    assert len(rows) == 2 and len({x.model for x in rows}) == 2
    assert all(x.model.startswith("r [") for x in rows)
    header, table = summarise(rows)
    assert len(table) == 2  # nothing dropped


def test_models_are_named_by_the_runs_student(tmp_path):
    a = _certify_csv(tmp_path / "a" / "r.csv", [r(0, "agree", "faithful", 0.0, 0.01)],
                     student="models/mnist_student_kd.onnx")  # fmt: skip
    b = _certify_csv(tmp_path / "b" / "r.csv", [r(0, "agree", "faithful", 0.0, 0.01)],
                     student="models/mnist_student_faithful.onnx")  # fmt: skip
    assert {x.model for x in read_rows([a, b])} == {"mnist_student_kd", "mnist_student_faithful"}


def test_a_row_cut_short_is_left_out(tmp_path):
    a = _certify_csv(tmp_path / "r.csv", [r(0, "agree", "faithful", 0.0, 0.01),
                                          r(1, "agree", "faithful", 0.0, 0.01)])  # fmt: skip
    with open(a, "a") as f:
        f.write("2,3,3,3")
    assert [x.index for x in read_rows([a])] == [0, 1]
