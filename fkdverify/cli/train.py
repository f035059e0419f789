"""``fkdverify train teacher`` and ``fkdverify train student``."""

from __future__ import annotations

import sys

import click

from ..words import DATASETS, DEVICES, STUDENT_BOUNDS, STUDENT_METHODS, TEACHER_METHODS
from .common import cli


def _train_options(f):
    """Options shared by ``train teacher`` and ``train student``."""
    opts = [
        click.option("--dataset", type=click.Choice(list(DATASETS)),
                     required=True, help="Training data (test split for evaluation)."),
        click.option("--data-dir", help="Where the dataset lies (else $FKD_DATA_DIR, ...)."),
        click.option("--arch", required=True,
                     help="mlp:W1,W2,... (e.g. mlp:256,256), cnn-tiny, cnn-small or cnn-medium."),
        click.option("--eps", type=float, default=0.1, show_default=True,
                     help="L-inf radius for adversarial/certified terms (pixel space)."),
        click.option("--epochs", type=int, default=10, show_default=True),
        click.option("--batch-size", type=int, default=128, show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True,
                     help="Adam learning rate (cosine decay to 0)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", type=click.Choice(list(DEVICES)), default="auto",
                     show_default=True),
        click.option("--pgd-steps", type=int, default=10, show_default=True,
                     help="Steps of the inner PGD (adversarial methods)."),
        click.option("--train-limit", type=int, default=0, show_default=True,
                     help="Use only the first N training images (0: all)."),
        click.option("--eval-n", type=int, default=1000, show_default=True,
                     help="Test images for the PGD accuracy."),
        click.option("--out", required=True, type=click.Path(dir_okay=False),
                     help="ONNX file to write (a <out>.ckpt checkpoint resumes)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]  # fmt: skip
    for o in reversed(opts):
        f = o(f)
    return f


@cli.group()
def train():
    """Train teachers and (faithful) students; export ONNX with metadata."""


@train.command("teacher")
@_train_options
@click.option(
    "--method", type=click.Choice(list(TEACHER_METHODS)), default="pgd", show_default=True,
    help="standard, PGD adversarial (Madry), IBP or CROWN-IBP certified, or MTL-IBP "
    "(adversarial and IBP losses mixed by --ibp-weight).",
)  # fmt: skip
@click.option("--ramp", type=float, default=0.5, show_default=True,
              help="Certified training: fraction of the run over which eps ramps up.")  # fmt: skip
@click.option("--ibp-weight", type=float, default=0.5, show_default=True,
              help="mtl-ibp: weight of the IBP loss (1 - it: the PGD loss).")  # fmt: skip
def train_teacher(**kw):
    """Train a teacher network."""
    _run_training("teacher", kw)


@train.command("student")
@_train_options
@click.option("--teacher", "teacher", required=True, type=click.Path(dir_okay=False),
              help="Teacher ONNX file.")  # fmt: skip
@click.option(
    "--method", type=click.Choice(list(STUDENT_METHODS)),
    default="faithful", show_default=True,
    help="Distillation method (certified-kd: KD + CROWN-IBP on the student).",
)  # fmt: skip
@click.option("--ramp", type=float, default=0.5, show_default=True,
              help="certified-kd and faithful with --bound-weight: fraction of the run over "
              "which the bound term's eps ramps up.")  # fmt: skip
@click.option("--temperature", type=float, help="Softmax temperature (default: the paper's).")
@click.option("--alpha", type=float, help="Weight of the soft term (KD, ARD, faithful).")
@click.option("--delta", type=float, default=0.05, show_default=True,
              help="Faithful: the confidence gap the hinge pushes under.")  # fmt: skip
@click.option("--hinge", type=float, default=1.0, show_default=True,
              help="Faithful: weight of the gap hinge.")  # fmt: skip
@click.option("--bound-weight", type=float, default=0.0, show_default=True,
              help="Faithful: weight of the bound-based gap term (0: off).")  # fmt: skip
@click.option("--student-bound", type=click.Choice(list(STUDENT_BOUNDS)), default="crown-ibp",
              show_default=True, help="Faithful with --bound-weight: the student's bounds in "
              "the gap term (crown-ibp: annealed to IBP along the ramp).")  # fmt: skip
@click.option("--iad-beta", type=float, default=0.1, show_default=True)
def train_student(**kw):
    """Distil a student from a teacher ONNX file."""
    _run_training("student", kw)


def _run_training(role: str, kw: dict) -> None:
    from ..bounds.types import auto_device
    from ..train.trainer import TrainOptions, train

    quiet = kw.pop("quiet")
    if kw["device"] == "auto":
        kw["device"] = auto_device()
    opts = TrainOptions(role=role, command="fkdverify " + " ".join(sys.argv[1:]), **kw)

    def bar(total):
        from tqdm import tqdm

        return tqdm(total=total, desc=f"{role} {opts.method}", unit="batch", file=sys.stderr)

    res = train(opts, None if quiet else bar)
    if res.resumed_from:
        click.echo(f"resumed from epoch {res.resumed_from[0]}, batch {res.resumed_from[1]}")
    click.echo(f"{res.path}: clean accuracy {res.clean_acc:.4f}, PGD accuracy {res.pgd_acc:.4f} "
               f"(eps {opts.eps}), {res.seconds:.0f} s")  # fmt: skip
