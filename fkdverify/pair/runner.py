"""Certify many test points of one teacher/student pair: selection, workers, resume, CSV rows
and counterexample files."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .. import defaults as D
from ..data import Dataset, infer_dataset, load_or_download, parse_indices
from ..errors import InputError
from ..net.normalise import load_normalised
from ..net.product import check_pair
from ..pool import GRACE_S, Failure, PoolTask, cached, run_pool
from ..results import (
    COLUMNS,
    CsvWriter,
    Result,
    check_sidecar,
    finished,
    result_of,
    write_sidecar,
)
from ..threads import cores, one_process_threads
from ..words import (
    CLASS_MODES,
    MILP_METHODS,
    POINT_MODES,
    ClassMode,
    PointMode,
    Verdict,
    check_choice,
)
from .certify import certify_batch
from .context import PairContext
from .options import CertifyOptions, resolved
from .state import PointState, Question

# the columns a resumed file must share with this run (else its rows answer another question)
SETTING_COLUMNS = (("eps", "--eps"), ("delta", "--delta"), ("property", "--property"),
                   ("method", "--method"))  # fmt: skip


@dataclass(frozen=True)
class RunConfig:
    teacher: str
    student: str
    opts: CertifyOptions
    dataset: str | None = None
    data_dir: str | None = None
    indices: tuple[int, ...] = ()
    class_mode: str = ClassMode.LABEL
    points: str = PointMode.TEACHER_CORRECT
    out: str | None = None
    workers: int = 1  # 0: one per core
    mean: str | None = None  # --mean/--std: input normalisation in front of both networks
    std: str | None = None
    batch: int = 0  # points bounded together (0: auto)
    share_cores: bool = True  # workers: the busy ones take the idle cores (threads.py)

    def __post_init__(self):
        check_choice("--class", self.class_mode, CLASS_MODES)
        check_choice("--points", self.points, POINT_MODES)
        if self.workers < 0:
            raise InputError("--workers must be >= 1 (or 0: one per core)")
        if self.batch < 0:
            raise InputError("--batch-size must be >= 0 (0: automatic)")

    @property
    def n_workers(self) -> int:
        return self.workers or cores()

    def batch_size(self, n: int | None = None) -> int:
        """Points per batch (``--batch-size``, or ``defaults.BATCH_*`` split across the
        workers): the bounds stage runs batched; the MILPs after it run point by point, each
        under its own deadline, so a batch only groups the cheap part."""
        if self.batch:
            return self.batch
        most = D.BATCH_MILP if self.opts.method in MILP_METHODS else D.BATCH_BOUNDS
        n = len(self.indices) if n is None else n
        return max(1, min(most, -(-n // self.n_workers)))


def select_indices(n_total: int, n: int | None, start: int, indices: str | None) -> tuple:
    """Indices from --indices '3,5,10-20' or from --start/--n."""
    if indices:
        try:
            out = parse_indices(indices)
        except ValueError as e:
            raise InputError(f"--indices {indices!r}: {e}") from None
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


def pair_context(cfg: RunConfig) -> tuple[PairContext, object]:
    """(context, teacher network) of the run's pair, built once per process."""

    def build():
        teacher, student, norms = load_pair(cfg)
        return PairContext(teacher, student, cfg.teacher, cfg.student, norms), teacher

    return cached(("pair", cfg.teacher, cfg.student, cfg.mean, cfg.std), build)


def _meta_dataset(net) -> str | None:
    return net.meta.get("fkd.dataset") or net.meta.get("dataset") or None


def load_data(cfg: RunConfig, teacher, student=None) -> Dataset:
    """The test set the pair is asked about: --dataset, else the files' metadata (which must
    agree with each other and with --dataset), else a guess from the input size."""
    named = [(who, _meta_dataset(n)) for who, n in (("teacher", teacher), ("student", student))
             if n is not None and _meta_dataset(n)]  # fmt: skip
    if len({d for _, d in named}) > 1:
        (a, da), (b, db) = named
        raise InputError(f"the {a} was trained on {da} but the {b} on {db} (ONNX metadata); "
                         "give a pair made for the same data")  # fmt: skip
    if cfg.dataset and named and named[0][1] != cfg.dataset:
        raise InputError(f"--dataset {cfg.dataset}, but the models' metadata says "
                         f"{named[0][1]}; drop --dataset or give models of "
                         f"{cfg.dataset}")  # fmt: skip
    name = cfg.dataset or infer_dataset(teacher.meta, teacher.input_size)
    ds = load_or_download(name, "test", cfg.data_dir)
    size = int(np.prod(ds.images.shape[1:]))
    if size != teacher.input_size:
        raise InputError(
            f"{name} images have {size} values but the networks take {teacher.input_size}; "
            "pass the right --dataset"
        )
    return ds


def decide(cfg: RunConfig, ctx: PairContext, jobs: list) -> list[tuple[Result, np.ndarray | None]]:
    """Certify a batch of (index, x, label) jobs: [(Result, cex)] in job order; points the
    selection (cfg.points) leaves out get a skipped row."""
    cfg = replace(cfg, opts=resolved(cfg.opts, ctx.teacher, ctx.student))
    out, todo = {}, []
    for index, x, label in jobs:
        tp, sp = ctx.referee.predictions(x)
        cls = label if cfg.class_mode == ClassMode.LABEL else tp
        skip = ""
        if cfg.points != PointMode.ALL and tp != label:
            skip = f"skipped: teacher predicts {tp}, label {label}"
        elif cfg.points == PointMode.BOTH_CORRECT and sp != label:
            skip = f"skipped: student predicts {sp}, label {label}"
        if skip:
            q = Question(index, x, x, x, cls, label, (tp, sp))
            out[index] = (Result.from_point(q, PointState(notes=(skip,)), cfg.opts,
                                            verdict=Verdict.UNKNOWN), None)  # fmt: skip
        else:
            todo.append((index, x, label, cls, (tp, sp)))
    if todo:
        idx, xs, labels, classes, preds = zip(*todo, strict=True)
        done = certify_batch(ctx, xs, classes, cfg.opts, idx, preds=preds, labels=labels)
        out.update(zip(idx, done, strict=True))
    return [out[j[0]] for j in jobs]


def undecided(opts, index: int, label: int, why: str, verdict: str,
              seconds: float = 0.0) -> Result:  # fmt: skip
    """The row of a point that produced no result (its worker died or was killed, or its
    task raised); ``opts``: CertifyOptions or a results.RowSetting."""
    q = Question(index, np.zeros(0), np.zeros(0), np.zeros(0), -1, label)
    return Result.from_point(q, PointState(notes=(why,)), opts, seconds, verdict=verdict)


def _work(cfg: RunConfig, jobs: list) -> list:
    ctx, _ = pair_context(cfg)
    return decide(cfg, ctx, jobs)


# ------------------------------------------------------------------ files
def cex_dir(out: str) -> Path:
    d = Path(out).with_suffix("")
    return d.with_name(d.name + "_cex")


def _save_cex(out: str | None, r: Result, x: np.ndarray, x0: np.ndarray, shape, img_shape,
              confidences) -> str:  # fmt: skip
    """The counterexample in float64 (exactly the re-checked point) and a labelled picture."""
    if out is None:
        return ""
    d = cex_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"point_{r.index}.npy"
    np.save(p, np.asarray(x, np.float64).reshape(shape))
    _save_png(d / f"point_{r.index}.png", x0.reshape(img_shape), x.reshape(img_shape), r,
              confidences)  # fmt: skip
    return str(p)


def _save_png(path: Path, x0: np.ndarray, x: np.ndarray, r: Result, conf) -> None:
    """Original | perturbed | perturbation (scaled to full range), each enlarged 4x, over a
    caption: the classes and confidences of both networks at x and x', eps, the colour key."""
    from PIL import Image, ImageDraw

    def rgb(a):
        a = np.clip(a, 0, 1)
        return np.repeat(a, 3, 0) if a.shape[0] == 1 else a

    d = x - x0
    m = float(np.abs(d).max()) or 1.0
    panels = [rgb(x0), rgb(x), rgb(0.5 + d / (2 * m))]
    img = np.concatenate([p.transpose(1, 2, 0) for p in panels], axis=1)
    im = Image.fromarray((img * 255).round().astype(np.uint8))
    im = im.resize((im.width * 4, im.height * 4), Image.NEAREST)
    (pt0, ps0), (pt1, ps1) = conf
    lines = [
        f"point {r.index}, label {r.label}, eps {r.eps:g}: teacher and student disagree at x'",
        f"x : teacher {r.teacher_pred} (p={pt0:.3f})  student {r.student_pred} (p={ps0:.3f})",
        f"x': teacher {r.teacher_pred_cex} (p={pt1:.3f})  student {r.student_pred_cex} "
        f"(p={ps1:.3f})",
        f"panels: x | x' | x'-x (grey 0, white +{m:.3g}, black -{m:.3g})",
    ]
    out = Image.new("RGB", (max(im.width, 460), im.height + 14 * len(lines) + 8), "white")
    out.paste(im, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        draw.text((4, im.height + 4 + 14 * k), line, fill="black")
    out.save(path)


def _top(ctx: PairContext, x: np.ndarray) -> tuple[float, float]:
    """Each network's top-class probability at x (float64)."""
    import torch

    with torch.no_grad():
        xt = torch.as_tensor(np.asarray(x, np.float64).reshape(1, -1))
        return tuple(float(torch.softmax(n(xt), 1).max()) for n in (ctx.tnet, ctx.snet))


def _same(a: str, b) -> bool:
    try:
        fa, fb = float(a), float(b)
        return math.isclose(fa, fb, rel_tol=1e-5, abs_tol=1e-12) or (fa != fa and fb != fb)
    except (TypeError, ValueError):
        return str(a) == str(b)


def resume(cfg: RunConfig) -> dict[int, Result]:
    """The rows already in cfg.out for this run's points (the one resume rule of
    ``results.finished``); a file written under other settings is refused, naming them."""
    if not cfg.out:
        return {}
    check_sidecar(cfg.out)
    rows = finished(cfg.out, COLUMNS, ("index",))
    for r in rows.values():
        for col, flag in SETTING_COLUMNS:
            mine = getattr(cfg.opts, "prop" if col == "property" else col)
            if not _same(r[col], mine):
                raise InputError(
                    f"{cfg.out} holds results for {flag} {r[col]} (this run: {mine}); give "
                    "another --out, or the same settings to resume"
                )
    wanted = set(cfg.indices)
    return {r.index: r for r in map(result_of, rows.values()) if r.index in wanted}


def run(cfg: RunConfig, ds: Dataset, teacher, on_result: Callable[[Result], None] | None = None,
        on_start: Callable[[int, int], None] | None = None) -> list[Result]:  # fmt: skip
    """Certify cfg.indices of ds, skipping those already in cfg.out; write each row as it
    arrives; ``on_start(total, already done)``; return every selected point's Result, in
    index order (earlier rows read back)."""
    ctx, _ = pair_context(cfg)
    cfg = replace(cfg, opts=resolved(cfg.opts, ctx.teacher, ctx.student))
    done = resume(cfg)
    todo = [i for i in cfg.indices if i not in done]
    if on_start:
        on_start(len(cfg.indices), len(cfg.indices) - len(todo))
    results = dict(done)
    writer = CsvWriter(cfg.out) if cfg.out else None
    if cfg.out:
        write_sidecar(cfg.out, {**asdict(cfg), "dataset": ds.name, "data_source": ds.source,
                                "already_done": len(done)})  # fmt: skip

    def emit(r: Result, cex):
        if cex is not None and cfg.out:
            x0 = ds.images[r.index].reshape(-1).astype(np.float64)
            ctx, _ = pair_context(cfg)
            conf = (_top(ctx, x0), _top(ctx, cex))
            path = _save_cex(cfg.out, r, cex, x0, teacher.input_shape, ds.images.shape[1:], conf)
            r = replace(r, counterexample=path)
        results[r.index] = r
        if writer:
            writer.write(r)
        if on_result:
            on_result(r)

    jobs = [(i, ds.images[i].reshape(-1).astype(np.float64), int(ds.labels[i])) for i in todo]
    size = cfg.batch_size(len(jobs))
    batches = [jobs[k : k + size] for k in range(0, len(jobs), size)]
    try:
        if cfg.n_workers == 1 or len(batches) <= 1:
            one_process_threads()
            ctx, _ = pair_context(cfg)
            for batch in batches:
                for r, cex in decide(cfg, ctx, batch):
                    emit(r, cex)
        else:
            tasks = [PoolTask(k, (cfg, b), GRACE_S + 2 * cfg.opts.timeout * len(b))
                     for k, b in enumerate(batches)]  # fmt: skip

            def failed(task: PoolTask, f: Failure):
                verdict = Verdict.UNKNOWN if f.kind == "overdue" else Verdict.ERROR
                for index, _, label in task.args[1]:
                    emit(undecided(cfg.opts, index, label, f.reason(), verdict, f.limit), None)

            def done(task: PoolTask, rows):
                for r in rows:
                    emit(*r)

            run_pool(tasks, cfg.n_workers, _work, done, failed, share_cores=cfg.share_cores)
    finally:
        if writer:
            writer.close()
    return [results[i] for i in cfg.indices if i in results]
