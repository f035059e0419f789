"""Certify many test points of one teacher/student pair: selection, workers, CSV, artefacts."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .certify import CertifyOptions, PairContext, certify_batch, make_result
from .data import Dataset, infer_dataset, load_dataset, parse_indices
from .errors import InputError
from .net.normalise import load_normalised
from .net.product import check_pair
from .results import UNKNOWN, CsvWriter, Result, write_sidecar

CLASS_MODES = ("label", "teacher")
POINT_MODES = ("teacher-correct", "both-correct", "all")


@dataclass(frozen=True)
class RunConfig:
    teacher: str
    student: str
    opts: CertifyOptions
    dataset: str | None = None
    data_dir: str | None = None
    indices: tuple[int, ...] = ()
    class_mode: str = "label"
    points: str = "teacher-correct"
    out: str | None = None
    workers: int = 1
    mean: str | None = None  # --mean/--std: input normalisation in front of both networks
    std: str | None = None
    batch: int = 0  # points bounded together (0: auto)

    def __post_init__(self):
        if self.class_mode not in CLASS_MODES:
            raise InputError(f"--class must be one of {', '.join(CLASS_MODES)}")
        if self.points not in POINT_MODES:
            raise InputError(f"--points must be one of {', '.join(POINT_MODES)}")
        if self.workers < 1:
            raise InputError("--workers must be at least 1")
        if self.batch < 0:
            raise InputError("--batch-size must be >= 0 (0: automatic)")

    def batch_size(self) -> int:
        """Points per batch: bound methods batch (the engine is batched), MILP goes one by one
        so that each point's time limit stays its own."""
        if self.batch:
            return self.batch
        if self.opts.method == "milp":
            return 1
        return max(1, min(100, -(-len(self.indices) // self.workers)))


def select_indices(n_total: int, n: int | None, start: int, indices: str | None) -> tuple:
    """Indices from --indices '3,5,10-20' or from --start/--n."""
    if indices:
        try:
            out = parse_indices(indices)
        except ValueError:
            raise InputError(f"--indices {indices!r}: expected e.g. 3,5,10-20") from None
    else:
        if start < 0 or (n is not None and n < 1):
            raise InputError("--start must be >= 0 and --n >= 1")
        out = list(range(start, n_total if n is None else min(start + n, n_total)))
    bad = [i for i in out if not 0 <= i < n_total]
    if bad:
        raise InputError(f"index {bad[0]} is outside the dataset (0..{n_total - 1})")
    if not out:
        raise InputError(f"no points selected (--start {start} is past the end, {n_total})")
    return tuple(out)


def load_pair(cfg: RunConfig):
    """(teacher, student, norms): both networks reading pixel-space input; ``norms`` are the
    normalisations put in front (--mean/--std, else each file's metadata), for the referee."""
    (teacher, t_norm), (student, s_norm) = (
        load_normalised(path, cfg.mean, cfg.std) for path in (cfg.teacher, cfg.student)
    )
    check_pair(teacher, student)
    return teacher, student, (t_norm, s_norm)


def load_data(cfg: RunConfig, teacher) -> Dataset:
    name = cfg.dataset or infer_dataset(teacher.meta, teacher.input_size)
    ds = load_dataset(name, "test", cfg.data_dir)
    size = int(np.prod(ds.images.shape[1:]))
    if size != teacher.input_size:
        raise InputError(
            f"{name} images have {size} values but the networks take {teacher.input_size}; "
            "pass the right --dataset"
        )
    return ds


# ------------------------------------------------------------------ worker-side state
_CTX: dict = {}


def _init_worker(cfg: RunConfig):
    import torch

    torch.set_num_threads(1)
    teacher, student, norms = load_pair(cfg)
    _CTX["ctx"] = PairContext(teacher, student, cfg.teacher, cfg.student, norms)
    _CTX["cfg"] = cfg


def _work(jobs: list) -> list:
    return decide(_CTX["cfg"], _CTX["ctx"], jobs)


def decide(cfg: RunConfig, ctx: PairContext, jobs: list) -> list:
    """Certify a batch of (index, x, label) jobs: [(index, label, fields, cex)] in job order;
    points the selection (cfg.points) leaves out get a skipped row."""
    out, todo = {}, []
    for index, x, label in jobs:
        tp, sp = ctx.referee.predictions(x)
        cls = label if cfg.class_mode == "label" else tp
        skip = ""
        if cfg.points != "all" and tp != label:
            skip = f"skipped: teacher predicts {tp}, label {label}"
        elif cfg.points == "both-correct" and sp != label:
            skip = f"skipped: student predicts {sp}, label {label}"
        if skip:
            out[index] = (index, label, _skipped(index, cls, tp, sp, cfg.opts, skip), None)
        else:
            todo.append((index, x, label, cls, (tp, sp)))
    if todo:
        idx, xs, labels, classes, preds = zip(*todo, strict=True)
        done = certify_batch(ctx, xs, classes, cfg.opts, idx, preds=preds)
        for i, lab, (fields_, cex) in zip(idx, labels, done, strict=True):
            out[i] = (i, lab, fields_, cex)
    return [out[j[0]] for j in jobs]


def _skipped(index, cls, tp, sp, opts: CertifyOptions, why: str) -> dict:
    return no_result(index, cls, tp, sp, opts.eps, opts.delta, opts.prop, opts.method, why)


def no_result(index, cls, tp, sp, eps, delta, prop, method, why, verdict=UNKNOWN) -> dict:
    """Result fields (all but label and counterexample) of a point that was not decided:
    skipped by the selection, or (benchmarks) an error or a killed task."""
    nan = float("nan")
    return dict(
        index=index, cls=cls, teacher_pred=tp, student_pred=sp, agreement=verdict,
        gap_lower=nan, gap_upper=nan, faithful=verdict, eps=eps, delta=delta, property=prop,
        method=method, solver="", gap_method="", time_attack_s=0.0, time_bounds_s=0.0,
        time_milp_s=0.0, time_total_s=0.0, unstable_ibp=-1, unstable_crown=-1,
        unstable_alpha=-1, note=why,
    )  # fmt: skip


def _save_cex(out: str | None, index: int, x: np.ndarray, x0: np.ndarray, shape, img_shape):
    if out is None:
        return ""
    d = Path(out).with_suffix("")
    d = d.with_name(d.name + "_cex")
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"point_{index}.npy"
    np.save(p, x.reshape(shape).astype(np.float32))
    _save_png(d / f"point_{index}.png", x0.reshape(img_shape), x.reshape(img_shape))
    return str(p)


def _save_png(path: Path, x0: np.ndarray, x: np.ndarray):
    """Original | perturbed | perturbation (scaled to full range), each enlarged 4x."""
    from PIL import Image

    def rgb(a):
        a = np.clip(a, 0, 1)
        return np.repeat(a, 3, 0) if a.shape[0] == 1 else a

    d = x - x0
    m = np.abs(d).max() or 1.0
    panels = [rgb(x0), rgb(x), rgb(0.5 + d / (2 * m))]
    img = np.concatenate([p.transpose(1, 2, 0) for p in panels], axis=1)
    im = Image.fromarray((img * 255).round().astype(np.uint8))
    im.resize((im.width * 4, im.height * 4), Image.NEAREST).save(path)


def run(cfg: RunConfig, ds: Dataset, teacher, on_result: Callable[[Result], None] | None = None):
    """Certify cfg.indices of ds; write each row as it arrives; return the results."""
    results: list[Result] = []
    writer = CsvWriter(cfg.out) if cfg.out else None
    if cfg.out:
        write_sidecar(cfg.out, {**asdict(cfg), "dataset": ds.name, "data_source": ds.source})
    try:
        for index, label, fields_, cex in _iterate(cfg, ds):
            path = ""
            if cex is not None:
                x0 = ds.images[index].reshape(-1)
                path = _save_cex(cfg.out, index, cex, x0, teacher.input_shape, ds.images.shape[1:])
            r = make_result(fields_, label, path)
            results.append(r)
            if writer:
                writer.write(r)
            if on_result:
                on_result(r)
    finally:
        if writer:
            writer.close()
    return results


def _iterate(cfg: RunConfig, ds: Dataset) -> Iterator:
    jobs = [
        (i, ds.images[i].reshape(-1).astype(np.float64), int(ds.labels[i])) for i in cfg.indices
    ]
    size = cfg.batch_size()
    batches = [jobs[k : k + size] for k in range(0, len(jobs), size)]
    if cfg.workers == 1:
        _init_worker(cfg)
        for batch in batches:
            yield from _work(batch)
        return
    ctx = mp.get_context("spawn")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(cfg.workers, ctx, _init_worker, (cfg,)) as ex:
        futs = [ex.submit(_work, batch) for batch in batches]
        try:
            for f in as_completed(futs):
                yield from f.result()
        except BaseException:
            for f in futs:
                f.cancel()
            raise
