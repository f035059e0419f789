"""Result of one point, verdict words, and the CSV schema (defined here and nowhere else)."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, fields

from .errors import InputError

AGREE, DISAGREE, UNKNOWN = "agree", "disagree", "unknown"
FAITHFUL, UNFAITHFUL = "faithful", "unfaithful"
SKIPPED = "skipped"
ERROR = "error"  # benchmark rows: the task raised (the reason is in note)


@dataclass(frozen=True)
class Result:
    """One test point under one setting. Field order is the CSV column order.

    agreement: agree | disagree | unknown | skipped ; faithful: faithful | unfaithful | unknown |
    skipped (for ``--property agreement`` it follows agreement alone). gap_lower is g at a
    re-checked point, gap_upper a sound bound (NaN when not computed)."""

    index: int
    label: int
    cls: int
    teacher_pred: int
    student_pred: int
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


COLUMNS = tuple(f.name for f in fields(Result))


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"
    return v


class CsvWriter:
    """Appends one row per result and flushes at once, so an interruption loses nothing."""

    def __init__(self, path: str, columns: tuple[str, ...] = COLUMNS):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not new:
            repair_tail(path)
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if tuple(header) != columns:
                raise InputError(
                    f"{path} exists with other columns; choose another --out or move it away"
                )
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

    def write_row(self, values) -> None:
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


def repair_tail(path: str) -> None:
    """Drop a last line cut short by a killed writer (no final newline), so that appending
    starts on a fresh line and a half row is never read back as a result."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


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


def write_sidecar(csv_path: str, config: dict) -> str:
    """``<csv>.json``: one entry per run that appended to the CSV (configuration, versions)."""
    path = csv_path + ".json"
    runs = []
    if os.path.exists(path):
        try:
            with open(path) as f:
                runs = json.load(f).get("runs", [])
        except (OSError, ValueError, AttributeError):
            runs = []
    runs.append({"config": config, "versions": versions()})
    with open(path, "w") as f:
        json.dump({"columns": COLUMNS, "runs": runs}, f, indent=2, default=str)
    return path
