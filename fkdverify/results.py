"""Result of one point, the row every writer emits (``Result.from_point``), the faithfulness
verdict, and CSV files: safe opening, appending, resuming (defined here and nowhere else).

A results file is only ever appended to, and only when it is the writer's own: its header
must be the writer's columns. Anything else (a model, another tool's CSV, a JSON file) is
refused before a byte is written or cut. The one resume rule: rows already in the file are
finished, keyed by the writer's key columns; a last line cut short by a killed writer is
dropped first (it was never a finished row)."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from .errors import InputError
from .words import MILP_METHODS, Property, Verdict

# the verdict words, for the modules that write rows (defined once, in words.py)
AGREE, DISAGREE, UNKNOWN = Verdict.AGREE, Verdict.DISAGREE, Verdict.UNKNOWN
FAITHFUL, UNFAITHFUL = Verdict.FAITHFUL, Verdict.UNFAITHFUL
SKIPPED, ERROR = Verdict.SKIPPED, Verdict.ERROR


@dataclass(frozen=True)
class RowSetting:
    """The setting columns of a row whose options could not be built (benchmark errors)."""

    eps: float
    delta: float
    prop: str
    method: str
    solver: str = ""


def faithful_verdict(st, opts) -> str:
    """DESIGN.md section 1: faithful = agreement and Delta_hi <= delta; unfaithful = a
    re-checked disagreement or Delta_lo > delta; otherwise unknown. (``st``: a point state,
    ``opts``: its options.)"""
    if opts.prop == Property.GAP:
        return UNKNOWN
    if st.agreement == DISAGREE or st.gap_lo > opts.delta:
        return UNFAITHFUL
    if st.agreement == AGREE and (opts.prop == Property.AGREEMENT or st.gap_hi <= opts.delta):
        return FAITHFUL
    return UNKNOWN


@dataclass(frozen=True)
class Result:
    """One test point under one setting. Field order is the CSV column order.

    agreement: agree | disagree | unknown | error ; faithful: faithful | unfaithful | unknown |
    error (for ``--property agreement`` it follows agreement alone). gap_lower is g at a
    re-checked point, gap_upper a sound bound (NaN when not computed)."""

    index: int
    label: int
    cls: int
    teacher_pred: int
    student_pred: int
    teacher_pred_cex: int  # classes at the counterexample (-1: none)
    student_pred_cex: int
    teacher_pred_gap: int  # classes at the point that gave gap_lower (-1: none)
    student_pred_gap: int
    agreement: str
    gap_lower: float
    gap_upper: float
    faithful: str
    eps: float
    delta: float
    property: str
    method: str
    solver: str
    gap_method: str
    time_attack_s: float
    time_bounds_s: float
    time_milp_s: float
    time_total_s: float
    unstable_ibp: int
    unstable_crown: int
    unstable_alpha: int
    counterexample: str
    note: str

    @classmethod
    def from_point(cls, q, st, opts, total: float = 0.0, verdict: str | None = None,
                   counterexample: str = "", at_cex=(-1, -1),
                   at_gap=(-1, -1)) -> Result:  # fmt: skip
        """The row of question ``q`` (index, label, cls, preds) in state ``st`` (a point state:
        verdicts, gap interval, times, notes) under ``opts`` (eps, delta, prop, method,
        solver). ``verdict`` marks a point that was not decided (skipped: unknown; a task
        that raised: error; killed: unknown): both verdict columns take it."""
        notes = list(st.notes)
        decided = verdict is None
        if decided and opts.prop == Property.GAP:
            notes.append("agreement not checked (--property gap)")
        solver = st.solver or (opts.solver if decided and opts.method in MILP_METHODS else "")
        times = st.times
        return cls(
            index=q.index, label=q.label, cls=q.cls, teacher_pred=q.preds[0],
            student_pred=q.preds[1], teacher_pred_cex=at_cex[0], student_pred_cex=at_cex[1],
            teacher_pred_gap=at_gap[0], student_pred_gap=at_gap[1],
            agreement=st.agreement if decided else verdict,
            gap_lower=st.gap_lo, gap_upper=st.gap_hi,
            faithful=faithful_verdict(st, opts) if decided else verdict, eps=opts.eps,
            delta=opts.delta, property=opts.prop, method=opts.method, solver=solver,
            gap_method=st.gap_method, time_attack_s=times["attack"],
            time_bounds_s=times["bounds"], time_milp_s=times["milp"], time_total_s=total,
            unstable_ibp=st.unstable.get("ibp", -1), unstable_crown=st.unstable.get("crown", -1),
            unstable_alpha=st.unstable.get("alpha-crown", -1), counterexample=counterexample,
            note="; ".join(dict.fromkeys(notes)),
        )  # fmt: skip


COLUMNS = tuple(f.name for f in fields(Result))


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"
    return v


# ------------------------------------------------------------------ files: check, resume, write
HEAD_BYTES = 1 << 16  # a header longer than this is not one of ours


def check_own(path: str, columns: tuple[str, ...], what: str = "results") -> bool:
    """True when ``path`` is an existing results file with exactly ``columns``; False when it
    is absent or empty. Anything else raises InputError; the file is only read."""
    if not os.path.exists(path):
        return False
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; give a file name for the {what} CSV")
    if os.path.getsize(path) == 0:
        return False
    refuse = InputError(
        f"{path} exists and is not an fkdverify {what} CSV with these columns; nothing was "
        "written to it: choose another --out or move the file away"
    )
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
        first = head.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except (OSError, UnicodeDecodeError):
        raise refuse from None
    if b"\n" not in head or tuple(next(csv.reader([first]), [])) != tuple(columns):
        raise refuse
    return True


def repair_tail(path: str) -> None:
    """Drop a last line cut short by a killed writer (no final newline), so that appending
    starts on a fresh line and a half row is never read back as a result. Only call it on a
    file ``check_own`` accepted."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def finished(path: str, columns: tuple[str, ...], key: tuple[str, ...]) -> dict[tuple, dict]:
    """The one resume rule: {key values: row} of the rows already in an own results file
    (empty when there is none). A row cut short by a kill is dropped first."""
    if not check_own(path, columns):
        return {}
    repair_tail(path)
    with open(path, newline="") as f:
        return {tuple(r[k] for k in key): r for r in csv.DictReader(f) if None not in r.values()}


class CsvWriter:
    """Appends one row per result and flushes at once, so an interruption loses nothing. An
    existing file is appended to only when it is the writer's own (``check_own``)."""

    def __init__(self, path: str, columns: tuple[str, ...] = COLUMNS):
        self.path = path
        new = not check_own(path, columns)
        if not new:
            repair_tail(path)
        try:
            self.f = open(path, "a", newline="")
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror}") from None
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(columns)
            self.f.flush()

    def write(self, r: Result) -> None:
        self.write_row(asdict(r).values())

    def write_row(self, values: Iterable) -> None:
        """One row (values in column order), on disk before this returns."""
        self.w.writerow([_fmt(v) for v in values])
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_results(path: str) -> list[Result]:
    """The rows of a certify results CSV as Results (numbers parsed, strings kept)."""
    if not check_own(path, COLUMNS):
        return []
    with open(path, newline="") as f:
        return [result_of(r) for r in csv.DictReader(f) if None not in r.values()]


_KINDS = {f.name: f.type for f in fields(Result)}


def result_of(row: dict) -> Result:
    """A CSV row (column -> text) of certify's schema as a Result (numbers parsed)."""
    conv = {"int": int, "float": float}
    return Result(**{k: conv.get(_KINDS[k], str)(v) for k, v in row.items()})


def versions() -> dict:
    """Package and solver versions for the JSON sidecar."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("fkdverify", "torch", "numpy", "onnx", "onnxruntime", "highspy", "pulp",
                "gurobipy", "scipy", "click"):  # fmt: skip
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _sidecar_runs(path: str) -> list:
    """The runs already recorded in a sidecar; a file that is not a sidecar is refused."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    try:
        with open(path) as f:
            data = json.load(f)
        runs = data["runs"]
        if not isinstance(runs, list):
            raise TypeError
        return runs
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InputError(
            f"{path} exists and is not an fkdverify run record; nothing was written to it: "
            "choose another --out or move the file away"
        ) from None


def check_sidecar(csv_path: str) -> None:
    """Refuse (before anything is written) a ``<csv>.json`` that is not a run record."""
    _sidecar_runs(csv_path + ".json")


def write_sidecar(csv_path: str, config: dict, columns: tuple[str, ...] = COLUMNS) -> str:
    """``<csv>.json``: one entry per run that appended to the CSV (configuration, versions)."""
    path = csv_path + ".json"
    runs = _sidecar_runs(path)
    runs.append({"config": config, "versions": versions()})
    fd, tmp = tempfile.mkstemp(prefix=".fkd-", suffix=".json", dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump({"columns": columns, "runs": runs}, f, indent=2, default=str)
    os.replace(tmp, path)
    return path
