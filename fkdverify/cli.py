"""Command line: parse, call the API, print, exit code. No logic of its own."""

from __future__ import annotations

import sys
from statistics import median

import click

from . import __version__
from .errors import FkdError


def choice(*args):
    """choice(*flags, values, default, help): an option with fixed values, default shown."""
    *flags, values, default, text = args
    return click.option(*flags, type=click.Choice(values), default=default, show_default=True,
                        help=text)  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fkdverify")
def cli():
    """Check that a distilled student network stays faithful to its teacher around real data."""


@cli.command()
@click.argument("teacher", metavar="TEACHER.onnx")
@click.argument("student", metavar="STUDENT.onnx")
@click.option("--eps", type=float, required=True, help="L-inf radius of the ball, pixel space.")
@click.option(
    "--dataset", help="mnist | fashion-mnist | cifar10 (default: ONNX metadata or input size)."
)
@click.option(
    "--data-dir", help="Where the dataset lies (else $FKD_DATA_DIR, cache, /usr/share/datasets)."
)
@click.option("--n", "n", type=int, default=None, help="Number of test points (default: all).")
@click.option("--start", type=int, default=0, show_default=True, help="First test index.")
@click.option("--indices", help="Explicit test indices, e.g. 3,5,10-20 (overrides --n/--start).")
@choice(
    "--class",
    "class_mode",
    ["label", "teacher"],
    "label",
    "Class c: the label, or the teacher's prediction at x.",
)
@choice(
    "--points",
    ["teacher-correct", "both-correct", "all"],
    "teacher-correct",
    "Which points to decide.",
)
@choice(
    "--property",
    "prop",
    ["faithful", "agreement", "gap"],
    "faithful",
    "faithful = agreement + gap <= delta.",
)
@click.option(
    "--delta",
    type=float,
    default=0.1,
    show_default=True,
    help="Faithful when agreement holds and the gap bound is <= delta.",
)
@choice(
    "--gap-sign",
    ["teacher-minus-student", "student-minus-teacher", "abs"],
    "teacher-minus-student",
    "g = p_T^c - p_S^c, its opposite, or |.|.",
)
@choice(
    "--method",
    ["attack", "ibp", "crown", "alpha-crown", "milp"],
    "milp",
    "attack: falsify only; ibp/crown/alpha-crown: bounds (incomplete, batched); milp: exact.",
)
@click.option(
    "--mean",
    help="Per-channel mean, e.g. 0.485,0.456,0.406: the ONNX files expect "
    "(x - mean) / std; eps stays in pixel space (default: ONNX metadata, else none).",
)
@click.option("--std", help="Per-channel std for --mean, e.g. 0.225.")
@choice(
    "--precision",
    ["float64", "float32"],
    "float64",
    "Bounds arithmetic (float32: faster, widened by a stated rounding allowance).",
)
@choice(
    "--device",
    ["auto", "cpu", "cuda"],
    "auto",
    "Where bounds are computed (auto: a GPU when one is present).",
)
@click.option(
    "--bounds-memory",
    type=int,
    default=2048,
    show_default=True,
    help="MB for the backward pass's tensors; bigger batches are chunked.",
)
@click.option(
    "--batch-size", type=int, default=0, show_default=True,
    help="Points bounded together (0: up to 100 for bound methods, 1 for milp).",
)  # fmt: skip
@choice(
    "--solver",
    ["highs", "cbc", "gurobi", "auto"],
    "highs",
    "MILP back-end (auto: Gurobi when licensed).",
)
@choice(
    "--milp-bounds",
    ["ibp", "crown", "alpha-crown"],
    "alpha-crown",
    "Bounds that feed the MILP (big-M values, stable ReLUs).",
)
@click.option(
    "--lp-tighten",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds of LP bound tightening before the MILP (0: off).",
)
@click.option("--no-attack", is_flag=True, help="Skip PGD (measure the certifier alone).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per point.")
@click.option(
    "--tol",
    type=float,
    default=1e-3,
    show_default=True,
    help="Gap interval width that counts as exact.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file for the results (appended).")
@click.option("--workers", type=int, default=1, show_default=True, help="Parallel processes.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def certify(teacher, student, **kw):
    """Attack and certify TEACHER vs STUDENT on test points; one CSV row per point."""
    from .bounds.types import BoundOptions, auto_device
    from .milp.backends import resolve_solver
    from .pair.options import CertifyOptions
    from .pair.runner import RunConfig, load_data, load_pair, run, select_indices

    solver = resolve_solver(kw["solver"]) if kw["method"] == "milp" else kw["solver"]
    device = auto_device() if kw["device"] == "auto" else kw["device"]
    engine = BoundOptions(precision=kw["precision"], device=device,
                          memory_mb=kw["bounds_memory"])  # fmt: skip
    opts = CertifyOptions(
        eps=kw["eps"], delta=kw["delta"], prop=kw["prop"], method=kw["method"], solver=solver,
        gap_sign=kw["gap_sign"], timeout=kw["timeout"], tol=kw["tol"],
        milp_bounds=kw["milp_bounds"], use_attack=not kw["no_attack"],
        lp_tighten=kw["lp_tighten"], engine=engine,
    )  # fmt: skip
    common = dict(class_mode=kw["class_mode"], points=kw["points"], out=kw["out"],
                  workers=kw["workers"], data_dir=kw["data_dir"], mean=kw["mean"],
                  std=kw["std"], batch=kw["batch_size"])  # fmt: skip
    t, _, _ = load_pair(RunConfig(teacher, student, opts, **common))
    ds = load_data(RunConfig(teacher, student, opts, dataset=kw["dataset"], **common), t)
    idx = select_indices(len(ds), kw["n"], kw["start"], kw["indices"])
    cfg = RunConfig(teacher, student, opts, dataset=ds.name, indices=idx, **common)
    quiet, out = kw["quiet"], kw["out"]
    _log_to_stderr(quiet)
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(idx), desc="certify", unit="pt", file=sys.stderr, leave=False)

    def tick(r):
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"#{r.index} {r.agreement}/{r.faithful}")

    try:
        results = run(cfg, ds, t, tick)
    finally:
        if bar:
            bar.close()
    click.echo(summary(results))
    if out:
        click.echo(f"results: {out}  (configuration: {out}.json)")


def _log_to_stderr(quiet: bool) -> None:
    """The package's log lines (e.g. chunking of the bounds) as 'fkdverify: ...' on stderr."""
    import logging

    log = logging.getLogger("fkdverify")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("fkdverify: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def summary(results) -> str:
    """Counts per verdict and times, as a small table."""
    decided = [r for r in results if not r.note.startswith("skipped")]
    lines = [f"points: {len(results)} ({len(results) - len(decided)} skipped)"]
    for col in ("agreement", "faithful"):
        counts: dict[str, int] = {}
        for r in decided:
            counts[getattr(r, col)] = counts.get(getattr(r, col), 0) + 1
        lines.append(f"{col:10s} " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if decided:
        times = [r.time_total_s for r in decided]
        lines.append(f"time/point median {median(times):.2f} s, max {max(times):.2f} s")
    return "\n".join(lines)


def _train_options(f):
    """Options shared by ``train teacher`` and ``train student``."""
    opts = [
        click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist", "cifar10"]),
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
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
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
    "--method", type=click.Choice(["standard", "pgd", "ibp", "crown-ibp"]), default="pgd",
    show_default=True, help="standard, PGD adversarial (Madry), IBP or CROWN-IBP certified.",
)  # fmt: skip
@click.option("--ramp", type=float, default=0.5, show_default=True,
              help="Certified training: fraction of the run over which eps ramps up.")  # fmt: skip
def train_teacher(**kw):
    """Train a teacher network."""
    _run_training("teacher", kw)


@train.command("student")
@_train_options
@click.option("--teacher", "teacher", required=True, type=click.Path(dir_okay=False),
              help="Teacher ONNX file.")  # fmt: skip
@click.option(
    "--method", type=click.Choice(["kd", "ard", "rslad", "iad", "faithful"]), default="faithful",
    show_default=True, help="Distillation method.",
)  # fmt: skip
@click.option("--temperature", type=float, help="Softmax temperature (default: the paper's).")
@click.option("--alpha", type=float, help="Weight of the soft term (KD, ARD, faithful).")
@click.option("--delta", type=float, default=0.05, show_default=True,
              help="Faithful: the confidence gap the hinge pushes under.")  # fmt: skip
@click.option("--hinge", type=float, default=1.0, show_default=True,
              help="Faithful: weight of the gap hinge.")  # fmt: skip
@click.option("--bound-weight", type=float, default=0.0, show_default=True,
              help="Faithful: weight of the bound-based gap term (0: off).")  # fmt: skip
@click.option("--iad-beta", type=float, default=0.1, show_default=True)
def train_student(**kw):
    """Distil a student from a teacher ONNX file."""
    _run_training("student", kw)


def _run_training(role: str, kw: dict) -> None:
    from .bounds.types import auto_device
    from .train.trainer import TrainOptions, train

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


@cli.command()
@click.argument("grid", metavar="GRID.toml", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for results.csv (appended, resumable), its .json, cex/.")  # fmt: skip
@click.option("--workers", type=int, default=0, show_default=True,
              help="Local worker processes (0: all cores).")  # fmt: skip
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run on an existing Ray cluster (e.g. 10.0.0.1:6379) instead.")  # fmt: skip
@click.option("--hard-limit", type=float, default=0.0, show_default=True,
              help="Seconds per task before its worker is killed (0: 2x timeout).")  # fmt: skip
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Points per job for ibp/crown/alpha-crown.")  # fmt: skip
@click.option("--data-dir", help="Where the datasets lie (else $FKD_DATA_DIR, cache, ...).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark(grid, **kw):
    """Run every task of GRID.toml (pairs x options x points), one CSV row per task; run it
    again to resume (finished tasks are skipped, no row is written twice)."""
    import signal

    from .bench.run import BenchOptions
    from .bench.run import benchmark as run_grid

    opts = BenchOptions(grid, kw["out"], kw["workers"], kw["ray_address"], kw["data_dir"],
                        kw["hard_limit"], kw["batch_size"])  # fmt: skip
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM: stop like Ctrl-C
    _log_to_stderr(kw["quiet"])
    bar, counts = None, {}

    def start(total, done):
        nonlocal bar
        click.echo(f"{total} tasks, {done} already done, {total - done} to run", err=True)
        if not kw["quiet"]:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, desc="benchmark", unit="task",
                       file=sys.stderr, smoothing=0.1)  # fmt: skip

    col = None

    def tick(vals):
        nonlocal col
        from .bench.execute import BENCH_COLUMNS

        col = col or BENCH_COLUMNS.index("faithful")
        counts[vals[col]] = counts.get(vals[col], 0) + 1
        if bar:
            bar.update(1)

    try:
        res = run_grid(opts, start, tick)
    finally:
        if bar:
            bar.close()
    ran = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to run"
    click.echo(f"ran {res.ran} of {res.total} tasks ({ran})")
    click.echo(f"results: {res.csv}  (configuration: {res.csv}.json)")


@cli.command()
@click.argument("csvs", metavar="RESULTS.csv...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))  # fmt: skip
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for summary.csv, summary.md and the four PNG plots.")  # fmt: skip
@click.option("--no-plots", is_flag=True, help="Tables only.")
def report(csvs, out, no_plots):
    """Summary table per model / method / eps (printed, CSV and Markdown) and plots."""
    from pathlib import Path

    from .report.tables import markdown, read_rows, summarise, write_tables

    rows = read_rows(list(csvs))
    header, table = summarise(rows)
    click.echo(markdown(header, table))
    written = list(write_tables(header, table, Path(out)))
    if not no_plots:
        from .report.plots import plot_all

        written += plot_all(rows, Path(out))
    click.echo("wrote " + ", ".join(str(p) for p in written))


@cli.command()
@click.argument("files", nargs=-1, metavar="NET.onnx SPEC.vnnlib[.gz]")
@choice("--method", ["attack", "ibp", "crown", "alpha-crown", "milp", "bab"], "milp",
        "attack: falsify only; ibp/crown/alpha-crown: bounds; milp: complete (MILP per "
        "open disjunct); bab: complete (branch and bound over ReLU splits, beta-CROWN "
        "bounds).")  # fmt: skip
@click.option("--timeout", type=float, help="Seconds per instance (default 120; with "
              "--instances the file's own timeouts).")  # fmt: skip
@choice("--solver", ["highs", "cbc", "gurobi", "auto"], "highs",
        "MILP back-end (milp; bab's bound refinement: highs or gurobi, auto = gurobi when "
        "licensed, which is far stronger there).")  # fmt: skip
@choice("--milp-bounds", ["ibp", "crown", "alpha-crown"], "alpha-crown",
        "Pre-activation bounds that feed milp and bab (big-M values, stable ReLUs).")  # fmt: skip
@click.option("--refine", type=float, default=0.5, show_default=True,
              help="bab: share of the time left, after a first branch and bound over a tenth "
              "of it, spent on MILP refinement of the intermediate bounds (0: none).")  # fmt: skip
@click.option("--cex", type=click.Path(dir_okay=False),
              help="On sat, write the counterexample here (VNN-COMP format).")  # fmt: skip
@click.option("--instances", type=click.Path(exists=True, dir_okay=False),
              help="Batch mode: a VNN-COMP instances.csv (net,spec,timeout rows).")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False),
              help="Batch mode: CSV of results, one row per instance (resumable).")  # fmt: skip
@click.option("--workers", type=int, default=1, show_default=True,
              help="Batch mode: instances run in parallel.")  # fmt: skip
def verify(files, **kw):
    """Check NET.onnx against a VNN-LIB property; the last line of output is the result:
    unsat (holds), sat (counterexample), unknown or timeout. Exit code 0 whenever a result
    is printed, 2 for bad input. With --instances: every row of a VNN-COMP instances.csv."""
    from .vnnlib.verify import VerifyOptions

    solver = kw["solver"]
    if kw["method"] == "milp" or (kw["method"] == "bab" and kw["refine"] > 0):
        from .milp.backends import resolve_solver

        solver = resolve_solver(solver)
    opts = VerifyOptions(method=kw["method"], timeout=kw["timeout"] or 120.0, solver=solver,
                         milp_bounds=kw["milp_bounds"], refine=kw["refine"])  # fmt: skip
    if kw["instances"]:
        if files or not kw["out"]:
            raise click.UsageError("--instances takes no NET/SPEC arguments and needs --out")
        return _verify_batch(kw, opts)
    if len(files) != 2:
        raise click.UsageError("give NET.onnx and SPEC.vnnlib (or --instances FILE --out CSV)")
    from .net.onnx_import import import_onnx
    from .net.vnnlib import read_vnnlib
    from .vnnlib.verify import SAT, cex_text
    from .vnnlib.verify import verify as run_verify

    spec = read_vnnlib(files[1])
    net = import_onnx(files[0])
    click.echo(f"{files[0]}: {net.input_size} inputs, {net.n_classes} outputs; {files[1]}: "
               f"{len(spec.disjuncts)} unsafe disjuncts")  # fmt: skip
    res = run_verify(net, files[0], spec, opts)
    click.echo(f"decided by: {res.stage or '-'}; {res.time_s:.2f} s"
               + (f"; {res.note}" if res.note else ""))  # fmt: skip
    if res.result == SAT and kw["cex"]:
        with open(kw["cex"], "w") as f:
            f.write(cex_text(res.x, res.y))
        click.echo(f"counterexample: {kw['cex']}")
    click.echo(res.result)


def _verify_batch(kw, opts):
    from .vnnlib.instances import run_instances

    def line(r):
        click.echo(f"{r['result']:8s} {float(r['time_s']):7.2f} s  {r['onnx']}  {r['vnnlib']}")

    rows = run_instances(kw["instances"], kw["out"], opts, kw["workers"],
                         kw["timeout"], line)  # fmt: skip
    counts = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    click.echo(f"results: {kw['out']}")


@cli.command()
@click.argument("teacher", metavar="TEACHER.onnx")
@click.argument("student", metavar="STUDENT.onnx")
@click.option("--eps", type=float, required=True, help="L-inf radius of the ball, pixel space.")
@click.option("--index", type=int, required=True, help="Test point (index in the test set).")
@choice("--property", "prop", ["agreement", "gap", "faithful"], "agreement",
        "The property whose violation the VNN-LIB file states.")  # fmt: skip
@click.option("--delta", type=float, default=0.1, show_default=True, help="Gap threshold.")
@choice("--gap-sign", ["teacher-minus-student", "student-minus-teacher", "abs"],
        "teacher-minus-student", "g = p_T^c - p_S^c, its opposite, or |.|.")  # fmt: skip
@choice("--class", "class_mode", ["label", "teacher"], "label",
        "Class c of the gap: the label, or the teacher's prediction at x.")  # fmt: skip
@click.option("--dataset", help="mnist | fashion-mnist | cifar10 (default: ONNX metadata).")
@click.option("--data-dir", help="Where the dataset lies (else $FKD_DATA_DIR, cache, ...).")
@click.option("--mean", help="Per-channel mean in front of both networks (as for certify).")
@click.option("--std", help="Per-channel std for --mean.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for <name>.onnx and <name>.vnnlib.")  # fmt: skip
@click.option("--name", help="File stem (default: <student>_<index>_<property>).")
def export(teacher, student, **kw):
    """Write the product network (one ONNX graph) and a VNN-LIB file stating the violation of
    the property around test point INDEX, for any VNN-COMP verifier or `fkdverify verify`."""
    from pathlib import Path

    import numpy as np
    import torch

    from .pair.export import export_pair
    from .pair.options import CertifyOptions
    from .pair.runner import RunConfig, load_data, load_pair, select_indices

    cfg = RunConfig(teacher, student, CertifyOptions(eps=max(kw["eps"], 0.0)),
                    dataset=kw["dataset"], data_dir=kw["data_dir"], mean=kw["mean"],
                    std=kw["std"])  # fmt: skip
    t, s, _ = load_pair(cfg)
    ds = load_data(cfg, t)
    (i,) = select_indices(len(ds), None, 0, str(kw["index"]))
    x0 = ds.images[i].reshape(-1).astype(np.float64)
    cls = int(ds.labels[i])
    if kw["class_mode"] == "teacher":
        from .net.torch_net import TorchNet

        cls = int(TorchNet(t)(torch.as_tensor(x0)[None]).argmax())
    name = kw["name"] or f"{Path(student).stem}_{i}_{kw['prop']}"
    meta = {"fkd.teacher": teacher, "fkd.student": student, "fkd.index": i, "fkd.class": cls,
            "fkd.dataset": ds.name}  # fmt: skip
    paths = export_pair(t, s, x0, kw["eps"], cls, kw["out"], kw["prop"], kw["delta"],
                        kw["gap_sign"], name, meta)  # fmt: skip
    click.echo(f"point {i} (class {cls}), eps {kw['eps']}: wrote {paths[0]} and {paths[1]}")
    if kw["prop"] != "agreement":
        click.echo("note: the graph ends in Softmax outputs; `fkdverify verify` reads only the "
                   "agreement export (use `certify --property gap` for the gap)")  # fmt: skip


@cli.command()
@click.argument("model", metavar="MODEL.onnx")
def info(model):
    """Show how fkdverify reads an ONNX network."""
    from .net.onnx_import import import_onnx

    net = import_onnx(model)
    click.echo(f"input shape {net.input_shape}, {net.n_classes} outputs, {net.n_relus()} ReLUs")
    for i, node in enumerate(net.nodes):
        click.echo(f"  {i + 1:3d} {type(node.layer).__name__:8s} <- {node.inputs} {node.shape}")
    for note in net.notes:
        click.echo(f"note: {note}")
    for k, v in net.meta.items():
        click.echo(f"meta {k}: {v}")


def main(argv=None) -> int:
    """Entry point: FkdError and usage errors become one line on stderr and an exit code."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except FkdError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted: rows already written are kept", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted: rows already written are kept", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
