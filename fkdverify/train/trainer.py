"""The training loop: data, schedule, checkpoints (an interrupted run resumes to the same
weights), evaluation (clean and PGD accuracy) and ONNX export with metadata."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DATASETS, load_or_download
from ..errors import InputError
from ..words import STUDENT_BOUNDS, STUDENT_METHODS, TEACHER_METHODS
from .adversary import pgd
from .arch import build, parse_arch, to_network
from .steps import (
    RAMPED_STUDENTS,
    RAMPED_TEACHERS,
    Batch,
    student_step,
    teacher_confidence_bound,
    teacher_step,
)

# the usual per-channel statistics of the training sets (put inside the exported graph)
NORMALISATION = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
DEFAULT_TEMP = {"kd": 4.0, "ard": 30.0, "iad": 1.0, "faithful": 4.0}
DEFAULT_WEIGHT = {"kd": 0.9, "ard": 1.0, "faithful": 0.9}


@dataclass(frozen=True)
class TrainOptions:
    role: str  # teacher | student
    method: str
    dataset: str
    arch: str
    out: str
    teacher: str | None = None
    eps: float = 0.1
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    pgd_steps: int = 10
    temperature: float | None = None  # None: the method's paper default
    alpha: float | None = None  # KD/ARD/faithful weight of the soft term
    delta: float = 0.05  # faithful: gap the hinge pushes under
    hinge: float = 1.0
    bound_weight: float = 0.0  # faithful: weight of the bound-based gap term (0: off)
    # faithful: the student's side of that term: IBP, or CROWN-IBP annealed to IBP along the
    # ramp (beta 1 -> 0, as certified-kd and the crown-ibp teachers)
    student_bound: str = "crown-ibp"
    iad_beta: float = 0.1
    ibp_weight: float = 0.5  # mtl-ibp: weight of the IBP term against the adversarial one
    ramp: float = 0.5  # certified training: fraction of the run over which eps ramps up
    train_limit: int = 0  # use only the first N training images (0: all)
    eval_n: int = 1000  # test images for the PGD accuracy
    checkpoint_every: int = 100  # batches
    command: str = field(default="", compare=False)

    def __post_init__(self):
        methods = TEACHER_METHODS if self.role == "teacher" else STUDENT_METHODS
        if self.role not in ("teacher", "student"):
            raise InputError("role must be teacher or student")
        if self.method not in methods:
            raise InputError(f"--method for a {self.role} must be one of {', '.join(methods)}")
        if self.dataset not in DATASETS:
            raise InputError(f"--dataset must be one of {', '.join(DATASETS)}")
        parse_arch(self.arch)
        if self.role == "student" and not self.teacher:
            raise InputError("a student needs --teacher TEACHER.onnx")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not self.eps >= 0:
            raise InputError("--epochs, --batch-size, --lr must be positive and --eps >= 0")
        if not self.out.endswith(".onnx"):
            raise InputError(f"--out {self.out}: give a file name ending in .onnx")
        folder = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(folder):
            raise InputError(
                f"--out {self.out}: the folder {folder} does not exist; create it first"
            )
        if not os.access(folder, os.W_OK):
            raise InputError(f"--out {self.out}: the folder {folder} is not writable")
        if not (math.isfinite(self.eps) and self.eps <= 1):
            raise InputError(f"--eps {self.eps} is outside the pixel range [0, 1]")
        if self.train_limit < 0 or self.eval_n < 0 or self.pgd_steps < 0:
            raise InputError("--train-limit, --eval-n and --pgd-steps must be >= 0 (0: all / none)")
        if self.temperature is not None and not self.temperature > 0:
            raise InputError(f"--temperature must be > 0, got {self.temperature}")
        if self.alpha is not None and not 0 <= self.alpha <= 1:
            raise InputError(f"--alpha is a weight in [0, 1], got {self.alpha}")
        if not 0 <= self.delta <= 1 or self.hinge < 0 or self.bound_weight < 0 or self.iad_beta < 0:
            raise InputError("--delta must be in [0, 1]; --hinge, --bound-weight, --iad-beta >= 0")
        if self.student_bound not in STUDENT_BOUNDS:
            raise InputError(f"--student-bound must be one of {', '.join(STUDENT_BOUNDS)}")
        if not 0 <= self.ibp_weight <= 1:
            raise InputError(f"--ibp-weight is a weight in [0, 1], got {self.ibp_weight}")
        if not 0 <= self.ramp <= 1:
            raise InputError(f"--ramp is a fraction of the run in [0, 1], got {self.ramp}")

    def temp(self, method: str) -> float:
        return self.temperature if self.temperature is not None else DEFAULT_TEMP[method]

    def weight(self, method: str) -> float:
        return self.alpha if self.alpha is not None else DEFAULT_WEIGHT[method]

    def key(self) -> str:
        """What must match for a checkpoint to be resumed."""
        d = {k: v for k, v in asdict(self).items() if k not in ("command", "checkpoint_every")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TrainResult:
    path: str
    clean_acc: float
    pgd_acc: float
    seconds: float  # everything: data, training, evaluation, export
    resumed_from: tuple[int, int] | None
    train_seconds: float = 0.0  # the training loop alone


def lr_at(opts: TrainOptions, step: int, total: int) -> float:
    """Cosine decay from lr to 0 over the run (a pure function of the step: resumable)."""
    return opts.lr * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))


def ramp_at(opts: TrainOptions, step: int, total: int) -> float:
    """Certified training: fraction of eps reached, 0 for the first 10% of the run, then a
    linear ramp over ``ramp`` of it (Gowal et al. 2018); PGD and students use eps at once."""
    ramped = opts.method in (*RAMPED_TEACHERS, *RAMPED_STUDENTS) or (
        opts.method == "faithful" and opts.bound_weight > 0)  # fmt: skip
    if not ramped:
        return 1.0
    start, length = 0.1 * total, max(opts.ramp * total, 1)
    return float(min(max((step - start) / length, 0.0), 1.0))


def _tensors(ds, limit: int, device: str):
    n = len(ds) if not limit else min(limit, len(ds))
    x = torch.as_tensor(ds.images[:n], dtype=torch.float32, device=device)
    y = torch.as_tensor(ds.labels[:n], dtype=torch.long, device=device)
    return x, y


def _step_gen(opts: TrainOptions, epoch: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed((opts.seed * 1_000_003 + epoch * 10_007 + batch) % 2**62)


def train(opts: TrainOptions, bar=None) -> TrainResult:
    """Train, evaluate and export; resumes from ``<out>.ckpt`` when it matches ``opts``.
    ``bar``: a function (total) -> object with update(n) and set_postfix_str(s), or None."""
    t0 = time.perf_counter()
    torch.manual_seed(opts.seed)
    train_ds = load_or_download(opts.dataset, "train", opts.data_dir)
    test_ds = load_or_download(opts.dataset, "test", opts.data_dir)
    x_tr, y_tr = _tensors(train_ds, opts.train_limit, opts.device)
    in_shape = tuple(train_ds.images.shape[1:])
    model = build(opts.arch, in_shape, len(train_ds.classes), NORMALISATION.get(opts.dataset))
    model.to(opts.device)
    teacher, tbound = _teacher(opts, in_shape)
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr)
    nb = math.ceil(len(x_tr) / opts.batch_size)
    total = opts.epochs * nb
    ckpt = opts.out + ".ckpt"
    start, resumed = _resume(ckpt, opts, model, optim)
    progress = bar(total) if bar else None
    if progress:
        progress.update(start[0] * nb + start[1])
    t_loop = time.perf_counter()
    for epoch in range(start[0], opts.epochs):
        order = torch.randperm(
            len(x_tr), generator=torch.Generator().manual_seed(opts.seed + epoch)
        )
        first = start[1] if epoch == start[0] else 0
        for b in range(first, nb):
            step = epoch * nb + b
            for g in optim.param_groups:
                g["lr"] = lr_at(opts, step, total)
            idx = order[b * opts.batch_size : (b + 1) * opts.batch_size].to(opts.device)
            frac = ramp_at(opts, step, total)
            eps = opts.eps * frac if opts.role == "teacher" else opts.eps  # students: see steps
            batch = Batch(x_tr[idx], y_tr[idx], _step_gen(opts, epoch, b), eps, frac)
            if opts.role == "teacher":
                loss, z = teacher_step(opts.method, model, batch, opts)
            else:
                loss, z = student_step(opts.method, model, teacher, batch, opts, tbound)
            optim.zero_grad()
            loss.backward()
            optim.step()
            if progress:
                acc = (z.argmax(1) == batch.y).float().mean().item()
                progress.update(1)
                progress.set_postfix_str(f"epoch {epoch + 1} loss {loss.item():.4f} acc {acc:.3f}")
            if (b + 1) % opts.checkpoint_every == 0 and b + 1 < nb:
                _save(ckpt, opts, model, optim, (epoch, b + 1))
        _save(ckpt, opts, model, optim, (epoch + 1, 0))
    t_loop = time.perf_counter() - t_loop
    clean, robust = evaluate(model, test_ds, opts)
    _export(model, in_shape, opts, train_ds, clean, robust)
    os.remove(ckpt)
    return TrainResult(opts.out, clean, robust, time.perf_counter() - t0, resumed, t_loop)


def _teacher(opts: TrainOptions, in_shape):
    if opts.role != "student":
        return None, None
    from ..net.normalise import load_normalised
    from ..net.torch_net import TorchNet

    net, _ = load_normalised(opts.teacher)
    if net.input_size != int(np.prod(in_shape)):
        raise InputError(f"--teacher {opts.teacher} takes {net.input_size} inputs but "
                         f"{opts.dataset} images have {int(np.prod(in_shape))}")  # fmt: skip
    tnet = TorchNet(net, torch.float32, opts.device)
    tnet.requires_grad_(False)

    def teacher(x):
        return tnet(x.reshape(len(x), -1))

    bound = teacher_confidence_bound(net, opts.device) if opts.bound_weight > 0 else None
    return teacher, bound


def _save(path: str, opts, model, optim, where: tuple[int, int]) -> None:
    # Only tensors, dicts, lists, tuples, numbers, strings and None, so that _resume can load
    # it with torch.load(weights_only=True) (which never runs code from the file).
    tmp = path + ".tmp"
    torch.save({"key": opts.key(), "where": [int(where[0]), int(where[1])],
                "model": model.state_dict(), "optim": optim.state_dict()}, tmp)  # fmt: skip
    os.replace(tmp, path)  # atomic: a kill never leaves a torn checkpoint


def _load_checkpoint(path: str) -> dict:
    """``torch.load(weights_only=True)``: a file that would run code, or is not a checkpoint
    at all, is a one-line InputError and nothing in it is executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (torn zip), EOFError, ...
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith("Weights only load failed")]
        why = next((ln for ln in lines if "unsupported" in ln.lower()), None)
        why = (why or (lines[0] if lines else type(e).__name__)).rstrip(".")
        raise InputError(f"{path} cannot be loaded safely as a training checkpoint ({why}); "
                         "it is damaged or was not written by fkdverify train: delete it or use "
                         "another --out") from None  # fmt: skip
    ok = isinstance(state, dict) and {"key", "where", "model", "optim"} <= state.keys()
    if not ok:
        raise InputError(f"{path} is not a fkdverify training checkpoint; delete it or use "
                         "another --out")  # fmt: skip
    return state


def _resume(path: str, opts, model, optim):
    if not os.path.exists(path):
        return (0, 0), None
    state = _load_checkpoint(path)
    if state.get("key") != opts.key():
        raise InputError(f"{path} is a checkpoint of a different training run; delete it or "
                         "use another --out")  # fmt: skip
    model.load_state_dict(state["model"])
    optim.load_state_dict(state["optim"])
    where = (int(state["where"][0]), int(state["where"][1]))
    return where, where


def evaluate(model, ds, opts: TrainOptions) -> tuple[float, float]:
    """Clean accuracy on the whole test split; PGD-20 accuracy at eps on the first eval_n."""
    x, y = _tensors(ds, 0, opts.device)
    with torch.no_grad():
        clean = float(sum((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()
                          for i in range(0, len(x), 1000)) / len(x))  # fmt: skip
    n = min(opts.eval_n, len(x))
    gen = torch.Generator().manual_seed(12345)
    ok = 0
    for i in range(0, n, 500):
        xb, yb = x[i : min(i + 500, n)], y[i : min(i + 500, n)]
        xa = pgd(lambda v, yb=yb: F.cross_entropy(model(v), yb, reduction="none"), xb, opts.eps,
                 20, gen)  # fmt: skip
        with torch.no_grad():
            ok += int((model(xa).argmax(1) == yb).sum())
    return clean, ok / max(n, 1)


def _export(model, in_shape, opts: TrainOptions, ds, clean: float, robust: float) -> None:
    from ..net.onnx_export import save_onnx

    norm = NORMALISATION.get(opts.dataset)
    meta = {
        "fkd.dataset": opts.dataset,
        "fkd.input_range": "0,1",
        "fkd.normalisation": f"inside the graph: mean {norm[0]}, std {norm[1]}" if norm else "none",
        "fkd.class_names": ",".join(ds.classes),
        "fkd.role": opts.role,
        "fkd.method": opts.method,
        "fkd.arch": opts.arch,
        "fkd.eps": opts.eps,
        "fkd.seed": opts.seed,
        "fkd.epochs": opts.epochs,
        "fkd.clean_accuracy": f"{clean:.4f}",
        "fkd.pgd_accuracy": f"{robust:.4f} (PGD-20, eps {opts.eps}, first {opts.eval_n} test)",
        "fkd.command": opts.command,
    }
    if opts.teacher:
        meta["fkd.teacher"] = os.path.basename(opts.teacher)
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
    save_onnx(to_network(model.cpu(), in_shape), opts.out, meta)
