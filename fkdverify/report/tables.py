"""Tables from result CSVs (``fkdverify benchmark`` or ``certify --out``): one row per
model / method / ε. Plots are in ``report_plots.py``.

Rates are over the n decided points (not skipped, not error) of a group, counted once per
test index: ``proven_agree_rate`` = share proven to agree; ``found_disagree_rate`` = share
with a re-checked counterexample (agreement = disagree); ``unknown_rate`` = the rest
(agreement neither proven nor refuted); ``faithful@δ`` = share proven faithful in the rows run
with that δ. Clean accuracy is the student's on every row of the group that has a label
(skipped rows included). A model is named by the student of its run (the CSV's sidecar, or the
grid's pair name); two files that would give the same name are told apart by their folder.
"""

from __future__ import annotations

import csv
import json
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
    timeout: float = math.nan  # the run's time limit per point, where the CSV records it


def _float(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


NEED = ("index", "agreement", "faithful", "eps", "method", "gap_upper")


def _run_config(path: str) -> dict:
    """The configuration of the last run that wrote ``path`` (its sidecar), or {}."""
    try:
        with open(path + ".json") as f:
            return dict(json.load(f)["runs"][-1]["config"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return {}


def _run_student(path: str) -> str | None:
    student = _run_config(path).get("student")
    return Path(student).stem if isinstance(student, str) else None


def _names(paths: list[str]) -> dict[str, str]:
    """File -> model name for files without a pair column: the run's student, else the file's
    stem; names shared by different files get the file's folder in brackets."""
    base = {p: _run_student(p) or Path(p).stem for p in paths}
    clash = {n for n in base.values() if list(base.values()).count(n) > 1}
    return {p: f"{n} [{Path(p).resolve().parent}]" if n in clash else n for p, n in base.items()}


def read_rows(paths: list[str]) -> list[Row]:
    """Rows of one or more result CSVs; the model is the grid's pair name, else the run's
    student (see ``_names``). A last row cut short by a kill is not a result: it is left out.
    The same file given twice is read once."""
    out = []
    paths = list(dict.fromkeys(str(Path(p).resolve()) for p in paths))
    names = _names(paths)
    for p in paths:
        try:
            with open(p, newline="") as f:
                reader = csv.DictReader(f)
                missing = [c for c in NEED if c not in (reader.fieldnames or ())]
                if missing:
                    raise InputError(f"{p} is not a fkdverify results CSV: it has no column "
                                     f"{', '.join(missing)}")  # fmt: skip
                limit = (_run_config(p).get("opts") or {}).get("timeout", "")
                for r in reader:
                    if None in r.values() or None in r:
                        continue  # cut short (no final fields) or over-long: not a result
                    out.append(_row({"timeout": limit, **r}, names[p]))
        except OSError as e:
            raise InputError(f"cannot read {p}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"{p} is not a text CSV file") from None
        except (KeyError, ValueError, TypeError) as e:
            raise InputError(f"{p}: malformed row ({e}); is it a fkdverify results CSV?") from None
    if not out:
        raise InputError("no rows in " + ", ".join(paths))
    return out


def _row(r: dict, name: str) -> Row:
    model = r.get("pair") or name
    return Row(model=model, method=r["method"], eps=float(r["eps"]), delta=_float(r["delta"]),
               index=int(r["index"]), label=int(r.get("label", -1)),
               student_pred=int(r.get("student_pred", -1)), agreement=r["agreement"],
               faithful=r["faithful"], gap_lower=_float(r.get("gap_lower")),
               gap_upper=_float(r["gap_upper"]), time=_float(r.get("time_total_s")),
               skipped=r.get("note", "").startswith("skipped"),
               timeout=_float(r.get("timeout")))  # fmt: skip


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
    header = ["model", "method", "eps", "n", "clean_acc", "proven_agree_rate",
              "found_disagree_rate", "unknown_rate", *[f"faithful@{d:g}" for d in deltas],
              "median_gap_lo",
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
            rate(decided, lambda r: r.agreement == AGREE),
            rate(decided, lambda r: r.agreement == DISAGREE),
            rate(decided, lambda r: r.agreement not in (AGREE, DISAGREE)),
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


MD_MARK = "<!-- fkdverify report -->"


def check_ours(path: Path, header: list[str]) -> None:
    """Refuse to replace a summary file that ``report`` did not write."""
    if not path.exists():
        return
    try:
        first = path.read_text().split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        first = ""
    ours = first == MD_MARK if path.suffix == ".md" else first.startswith("model,method,eps,")
    if not ours:
        raise InputError(f"{path} exists and was not written by fkdverify report; nothing was "
                         "written: choose another --out")  # fmt: skip


def write_tables(header, table, out: Path) -> tuple[Path, Path]:
    """summary.csv and summary.md in ``out`` (files of an earlier report are replaced, any
    other file of those names is refused)."""
    c, m = out / "summary.csv", out / "summary.md"
    for p in (c, m):
        check_ours(p, header)
    out.mkdir(parents=True, exist_ok=True)
    with open(c, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([[f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in table])
    m.write_text(MD_MARK + "\n" + markdown(header, table) + "\n")
    return c, m
