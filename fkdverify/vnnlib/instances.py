"""Batch mode of ``verify`` over a VNN-COMP ``instances.csv`` (rows: onnx, vnnlib, timeout),
one CSV row per instance, resumable; and the published answers to compare against."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import FkdError, InputError
from ..pool import GRACE_S, Failure, PoolTask, cached, run_pool
from ..results import CsvWriter, check_own, check_sidecar, finished, write_sidecar
from ..threads import one_process_threads
from ..words import SpecResult
from .verify import SAT, VerifyOptions, cex_text

COLUMNS = ("onnx", "vnnlib", "timeout_s", "result", "time_s", "stage", "open_disjuncts",
           "counterexample", "note")  # fmt: skip


def read_instances(path: str) -> list[tuple[str, str, float]]:
    """(onnx, vnnlib, timeout) per row; paths as written (relative to the file's folder)."""
    out = []
    try:
        with open(path, newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise InputError(f"{path}:{n}: expected onnx,vnnlib,timeout, got {row}")
                try:
                    out.append((row[0].strip(), row[1].strip(), float(row[2])))
                except ValueError:
                    raise InputError(f"{path}:{n}: timeout {row[2]!r} is not a number") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    if not out:
        raise InputError(f"{path} lists no instances")
    return out


KEY = ("onnx", "vnnlib")  # what identifies a finished row


def run_one(base: str, onnx: str, vnnlib: str, timeout: float, opts: VerifyOptions,
            cex_dir: str | None) -> dict:  # fmt: skip
    """One instance -> its row (errors become result ``error`` with the reason)."""
    from dataclasses import replace

    from ..net.onnx_import import import_onnx
    from ..net.vnnlib import read_vnnlib
    from .verify import verify

    row = dict(onnx=onnx, vnnlib=vnnlib, timeout_s=timeout, result=SpecResult.ERROR, time_s=0.0,
               stage="", open_disjuncts=-1, counterexample="", note="")  # fmt: skip
    try:
        path = str(Path(base) / onnx)
        net = cached(("onnx", path), lambda: import_onnx(path))
        spec = read_vnnlib(str(Path(base) / vnnlib))
        res = verify(net, path, spec, replace(opts, timeout=timeout))
    except FkdError as e:
        row["note"] = str(e)
        return row
    row.update(result=res.result, time_s=res.time_s, stage=res.stage,
               open_disjuncts=res.open_disjuncts, note=res.note)  # fmt: skip
    if res.result == SAT and cex_dir:
        os.makedirs(cex_dir, exist_ok=True)
        name = f"{Path(onnx).stem}_{Path(vnnlib).name.split('.vnnlib')[0]}.counterexample"
        p = Path(cex_dir) / name
        p.write_text(cex_text(res.x, res.y))
        row["counterexample"] = str(p)
    return row


def run_instances(instances: str, out: str, opts: VerifyOptions, workers: int = 1,
                  timeout: float | None = None,
                  on_row: Callable[[dict], None] | None = None,
                  share_cores: bool = True) -> list[dict]:  # fmt: skip
    """Run every instance not yet in ``out`` (the one resume rule: rows keyed by onnx and
    vnnlib); a worker past twice an instance's timeout is killed (result ``timeout``).
    ``share_cores``: busy workers take the idle cores once no instance waits (``threads.py``).
    Returns all rows of ``out``."""
    if workers < 1:
        raise InputError("--workers must be at least 1")
    todo = read_instances(instances)
    base = str(Path(instances).resolve().parent)
    check_own(out, COLUMNS, "verify --instances")
    check_sidecar(out)
    done = finished(out, COLUMNS, KEY)
    todo = [t for t in todo if (t[0], t[1]) not in done]
    cex_dir = str(Path(out).with_suffix("")) + "_cex"
    args = [(base, o, v, timeout or t, opts, cex_dir) for o, v, t in todo]
    with CsvWriter(out, COLUMNS) as w:
        write_sidecar(out, {"instances": instances, "options": opts, "workers": workers,
                            "already_done": len(done)}, COLUMNS)  # fmt: skip

        def emit(row):
            w.write_row([row[c] for c in COLUMNS])
            if on_row:
                on_row(row)

        if workers == 1:
            one_process_threads()
            for a in args:
                emit(run_one(*a))
        else:
            tasks = [PoolTask(k, a, GRACE_S + 2 * a[3]) for k, a in enumerate(args)]

            def failed(task: PoolTask, f: Failure):
                _, o, v, t, _, _ = task.args
                result = SpecResult.TIMEOUT if f.kind == "overdue" else SpecResult.ERROR
                row = dict(
                    onnx=o,
                    vnnlib=v,
                    timeout_s=t,
                    result=result,
                    time_s=f.limit,
                    stage="",
                    open_disjuncts=-1,
                    counterexample="",
                    note=f.reason(),
                )
                emit(row)

            run_pool(
                tasks, workers, run_one, lambda t, row: emit(row), failed, share_cores=share_cores
            )
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def truth(path: str) -> dict[tuple[str, str], str]:
    """(onnx, vnnlib) -> holds | violated | unknown from a ``truth_<year>.csv``."""
    with open(path, newline="") as f:
        return {(r["onnx"], r["vnnlib"]): r["truth"] for r in csv.DictReader(f)}


def wrong(result: str, truth_: str) -> bool:
    """A wrong answer: unsat where the instance is violated, sat where it holds."""
    return (result == "unsat" and truth_ == "violated") or (result == "sat" and truth_ == "holds")
