"""Tables from result CSVs (``fkdverify benchmark`` or ``certify --out``): one row per
model / method / ε. Plots are in ``report_plots.py``.

Rates are over the decided points (not skipped, not error) of a group, counted once per test
index: *empirical disagreement* = share with a re-checked counterexample (agreement =
disagree); *certified disagreement* = share not proven to agree (1 − agree); *faithful at δ* =
share proven faithful in the rows run with that δ. Clean accuracy is the student's on every
row of the group that has a label (skipped rows included).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..results import AGREE, DISAGREE, ERROR, FAITHFUL, UNKNOWN


@dataclass(frozen=True)
class Row:
    model: str
    method: str
    eps: float
    delta: float
    index: int
    label: int
    student_pred: int
    agreement: str
    faithful: str
    gap_lower: float
    gap_upper: float
    time: float
    skipped: bool


def _float(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_rows(paths: list[str]) -> list[Row]:
    """Rows of one or more result CSVs; the model is the grid's pair name, else the student
    file's stem."""
    out = []
    for p in paths:
        try:
            with open(p, newline="") as f:
                reader = csv.DictReader(f)
                need = {"index", "agreement", "faithful", "eps", "method", "gap_upper"}
                if not need <= set(reader.fieldnames or ()):
                    raise InputError(f"{p} is not a fkdverify results CSV (no {sorted(need)[0]})")
                for r in reader:
                    out.append(_row(r, p))
        except OSError as e:
            raise InputError(f"cannot read {p}: {e.strerror}") from None
        except (KeyError, ValueError) as e:
            raise InputError(f"{p}: malformed row ({e}); is it a fkdverify results CSV?") from None
    if not out:
        raise InputError("no rows in " + ", ".join(paths))
    return out


def _row(r: dict, path: str) -> Row:
    model = r.get("pair") or Path(r.get("student") or path).stem
    return Row(model=model, method=r["method"], eps=float(r["eps"]), delta=_float(r["delta"]),
               index=int(r["index"]), label=int(r.get("label", -1)),
               student_pred=int(r.get("student_pred", -1)), agreement=r["agreement"],
               faithful=r["faithful"], gap_lower=_float(r.get("gap_lower")),
               gap_upper=_float(r["gap_upper"]), time=_float(r.get("time_total_s")),
               skipped=r.get("note", "").startswith("skipped"))  # fmt: skip


def _median(a) -> float:
    a = [v for v in a if not math.isnan(v)]
    return float(np.median(a)) if a else math.nan


def _mean(a) -> float:
    a = [v for v in a if not math.isnan(v)]
    return float(np.mean(a)) if a else math.nan


def _unique(rows: list[Row]) -> list[Row]:
    """One row per index (the last one written)."""
    return list({r.index: r for r in rows}.values())


def summarise(rows: list[Row]) -> tuple[list[str], list[list]]:
    """(header, table rows) grouped by model, method, ε; one faithful column per δ."""
    deltas = sorted({r.delta for r in rows if not math.isnan(r.delta)})
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.model, r.method, r.eps), []).append(r)
    header = ["model", "method", "eps", "points", "clean_acc", "empirical_disagree",
              "certified_disagree", *[f"faithful@{d:g}" for d in deltas], "median_gap_lo",
              "mean_gap_lo", "median_gap_hi", "mean_gap_hi", "unknown", "errors",
              "median_time_s", "p95_time_s"]  # fmt: skip
    table = []
    for (model, method, eps), rs in sorted(groups.items()):
        d0 = min((r.delta for r in rs), default=math.nan)
        base = _unique([r for r in rs if r.delta == d0 or math.isnan(d0)])
        labelled = [r for r in base if r.label >= 0 and r.student_pred >= 0]
        decided = [r for r in base if not r.skipped and r.agreement != ERROR]
        n = len(decided)
        times = [r.time for r in decided if not math.isnan(r.time)]

        def rate(rows_, ok):
            return sum(map(ok, rows_)) / len(rows_) if rows_ else math.nan

        faithful = []
        for d in deltas:
            at = [r for r in _unique([r for r in rs if r.delta == d])
                  if not r.skipped and r.agreement != ERROR]  # fmt: skip
            faithful.append(rate(at, lambda r: r.faithful == FAITHFUL))
        table.append([
            model, method, eps, n,
            rate(labelled, lambda r: r.student_pred == r.label),
            rate(decided, lambda r: r.agreement == DISAGREE),
            rate(decided, lambda r: r.agreement != AGREE),
            *faithful,
            _median([r.gap_lower for r in decided]), _mean([r.gap_lower for r in decided]),
            _median([r.gap_upper for r in decided]), _mean([r.gap_upper for r in decided]),
            sum(r.faithful == UNKNOWN for r in decided),
            sum(r.agreement == ERROR for r in base),
            _median(times), float(np.percentile(times, 95)) if times else math.nan,
        ])  # fmt: skip
    return header, table


def _cell(v) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def markdown(header: list[str], table: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table]
    return "\n".join(lines)


def write_tables(header, table, out: Path) -> tuple[Path, Path]:
    """summary.csv and summary.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    c, m = out / "summary.csv", out / "summary.md"
    with open(c, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([[f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in table])
    m.write_text(markdown(header, table) + "\n")
    return c, m
