import csv
import json
import math

import pytest

from fkdverify.errors import InputError
from fkdverify.results import COLUMNS, CsvWriter, Result, write_sidecar


def _result(i):
    return Result(index=i, label=1, cls=1, teacher_pred=1, student_pred=1, teacher_pred_cex=-1,
                  student_pred_cex=-1, teacher_pred_gap=1, student_pred_gap=1, agreement="agree",
                  gap_lower=0.01, gap_upper=math.nan, faithful="unknown", eps=0.1, delta=0.1,
                  property="faithful", method="milp", solver="highs", gap_method="",
                  time_attack_s=0.1, time_bounds_s=0.0, time_milp_s=0.0, time_total_s=0.1,
                  unstable_ibp=3, unstable_crown=2, unstable_alpha=-1,
                  counterexample="", note="")  # fmt: skip


def test_rows_append_and_header_once(tmp_path):
    p = str(tmp_path / "r.csv")
    for i in range(2):
        with CsvWriter(p) as w:
            w.write(_result(i))
    rows = list(csv.reader(open(p)))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3
    assert rows[1][COLUMNS.index("gap_upper")] == "nan"


def test_foreign_csv_is_refused(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an fkdverify results CSV"):
        CsvWriter(str(p))


def test_sidecar_keeps_every_run(tmp_path):
    p = str(tmp_path / "r.csv")
    write_sidecar(p, {"eps": 0.1})
    write_sidecar(p, {"eps": 0.2})
    d = json.load(open(p + ".json"))
    assert [r["config"]["eps"] for r in d["runs"]] == [0.1, 0.2]
    assert d["runs"][0]["versions"]["numpy"]


def test_read_results_round_trip_and_cut_row(tmp_path):
    from fkdverify.results import read_results

    p = str(tmp_path / "r.csv")
    with CsvWriter(p) as w:
        for i in range(3):
            w.write(_result(i))
    with open(p, "a") as f:
        f.write("3,1,1")  # a row cut short by a kill
    got = read_results(p)
    assert [r.index for r in got] == [0, 1, 2] and got[0].unstable_ibp == 3
    assert math.isnan(got[0].gap_upper) and got[1].agreement == "agree"
