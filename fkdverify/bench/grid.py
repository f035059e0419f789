"""Grid files (TOML) -> tasks: one task = one test point under one setting, with a stable id.

A grid file holds option values (a scalar, or a list to cross) and one table per pair::

    points = "0-39"            # or: n = 40, start = 0
    eps = [0.02, 0.05]
    method = ["milp", "crown"]
    timeout = 30
    [pairs.kd]
    teacher = "../models/mnist_teacher_pgd.onnx"
    student = "../models/mnist_student_kd.onnx"

Paths are relative to the grid file. A pair table may override any option (e.g. its own
``mean``/``std`` or ``eps``). The id of a task is a hash of what decides its row (pair files,
options, point), so it survives reordering the grid and adding values to an axis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .. import defaults as D
from ..data import parse_indices
from ..errors import InputError

# option -> (type, default); every option may be a list in the grid (an axis)
OPTIONS = {
    "eps": (float, None),
    "delta": (float, D.DELTA),
    "property": (str, D.PROPERTY),
    "method": (str, D.CERTIFY_METHOD),
    "solver": (str, D.SOLVER),
    "milp_bounds": (str, D.MILP_BOUNDS),
    "precision": (str, D.PRECISION),
    "gap_sign": (str, D.GAP_SIGN),
    "class_mode": (str, D.CLASS_MODE),
    "points_mode": (str, D.POINT_MODE),
    "timeout": (float, D.CERTIFY_TIMEOUT),
    "dataset": (str, ""),
    "mean": (str, ""),
    "std": (str, ""),
}
POINT_KEYS = ("points", "n", "start")
PAIR_KEYS = ("teacher", "student")


@dataclass(frozen=True)
class Setting:
    """Everything but the point: tasks with equal settings can be bounded in one batch."""

    pair: str
    teacher: str
    student: str
    eps: float
    delta: float
    property: str
    method: str
    solver: str
    milp_bounds: str
    precision: str
    gap_sign: str
    class_mode: str
    points_mode: str
    timeout: float
    dataset: str
    mean: str
    std: str


@dataclass(frozen=True)
class Task:
    id: str
    setting: Setting
    index: int


SETTING_COLUMNS = tuple(f.name for f in fields(Setting))


def task_id(setting: Setting, index: int) -> str:
    """12 hex digits of SHA-1 over the canonical JSON of (setting, index)."""
    key = json.dumps({**asdict(setting), "index": index}, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _values(key: str, v) -> list:
    kind = OPTIONS[key][0]
    items = v if isinstance(v, list) else [v]
    if not items:
        raise InputError(f"grid: {key} is an empty list; give at least one value")
    try:
        if any(isinstance(x, list | dict | bool) for x in items):
            raise TypeError
        return [kind(x) for x in items]
    except (TypeError, ValueError):
        msg = f"grid: {key} = {v!r} is not a {kind.__name__} (or a list of them)"
        raise InputError(msg) from None


def _indices(spec: dict) -> tuple[int, ...]:
    """points = "0-39,50" | n (+ start)."""
    if "points" in spec:
        try:
            return tuple(parse_indices(spec["points"]))
        except ValueError as e:
            raise InputError(f"grid: points = {spec['points']!r}: {e}") from None
    if "n" in spec:
        start, n = int(spec.get("start", 0)), int(spec["n"])
        if n < 1 or start < 0:
            raise InputError("grid: n must be >= 1 and start >= 0")
        return tuple(range(start, start + n))
    raise InputError('grid: say which test points: points = "0-39" or n = 40')


def _check_keys(table: dict, where: str, allowed) -> None:
    for k in table:
        if k not in allowed:
            raise InputError(
                f"grid: unknown key {k!r} in {where}; known: {', '.join(sorted(allowed))}"
            )


def load_grid(path: str) -> list[Task]:
    """Read a grid file and expand it to tasks, in an order that keeps settings together."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise InputError(f"cannot read grid file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"grid file {path} is not valid TOML: {e}") from None
    return expand(doc, Path(path).resolve().parent)


def expand(doc: dict, base: Path) -> list[Task]:
    """Tasks of a parsed grid; relative model paths are taken from ``base``."""
    top = {k: v for k, v in doc.items() if k != "pairs"}
    _check_keys(top, "the top level", {*OPTIONS, *POINT_KEYS, "pairs"})
    pairs = doc.get("pairs")
    if not isinstance(pairs, dict) or not pairs:
        raise InputError("grid: no [pairs.NAME] table with teacher = ... and student = ...")
    tasks, seen = [], set()
    for name, table in pairs.items():
        if not isinstance(table, dict):
            raise InputError(f"grid: pairs.{name} must be a table with teacher and student")
        _check_keys(table, f"[pairs.{name}]", {*OPTIONS, *POINT_KEYS, *PAIR_KEYS})
        for k in PAIR_KEYS:
            if k not in table:
                raise InputError(f'grid: [pairs.{name}] has no {k} = "FILE.onnx"')
        files = {k: _path(base, table[k], name) for k in PAIR_KEYS}
        own_points = any(k in table for k in POINT_KEYS)  # then the top level's are not used
        merged = {k: v for k, v in top.items() if not (own_points and k in POINT_KEYS)}
        merged.update({k: v for k, v in table.items() if k not in PAIR_KEYS})
        idx = _indices(merged)
        if merged.get("eps") is None:
            raise InputError("grid: eps is required (a number or a list)")
        axes = [_values(k, merged.get(k, OPTIONS[k][1])) for k in OPTIONS]
        for combo in itertools.product(*axes):
            s = Setting(pair=name, **files, **dict(zip(OPTIONS, combo, strict=True)))
            for i in idx:
                tid = task_id(s, i)
                if tid not in seen:
                    seen.add(tid)
                    tasks.append(Task(tid, s, i))
    return tasks


def _path(base: Path, p, pair: str) -> str:
    f = (base / str(p)).resolve()
    if not f.is_file():
        raise InputError(f"grid: [pairs.{pair}] file {p} not found (relative to the grid file)")
    return str(f)


def relabel(task: Task, **changes) -> Task:
    """A task with changed setting fields and its new id (for tests and tools)."""
    s = replace(task.setting, **changes)
    return Task(task_id(s, task.index), s, task.index)
