"""``fkdverify benchmark`` (grids to CSV), ``fkdverify report`` (tables, plots) and
``fkdverify figure`` (the gap on a slice of the ball)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import cli, log_to_stderr


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

    # SIGTERM: stop like Ctrl-C (installed before anything is written: a SIGTERM that comes
    # earlier ends the process with nothing written, which a rerun handles the same way)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from ..bench.run import BenchOptions
    from ..bench.run import benchmark as run_grid

    opts = BenchOptions(grid, kw["out"], kw["workers"], kw["ray_address"], kw["data_dir"],
                        kw["hard_limit"], kw["batch_size"])  # fmt: skip
    log_to_stderr(kw["quiet"])
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
        from ..bench.execute import BENCH_COLUMNS

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

    from ..report.tables import markdown, read_rows, summarise, write_tables

    rows = read_rows(list(csvs))
    header, table = summarise(rows)
    click.echo(markdown(header, table))
    written = list(write_tables(header, table, Path(out)))
    if not no_plots:
        from ..report.plots import plot_all

        written += plot_all(rows, Path(out))
    click.echo("wrote " + ", ".join(str(p) for p in written))


@cli.command()
@click.argument("teacher", metavar="TEACHER.onnx", type=click.Path(dir_okay=False))
@click.argument("students", metavar="STUDENT.onnx...", nargs=-1, required=True,
                type=click.Path(dir_okay=False))  # fmt: skip
@click.option("--eps", type=float, required=True, help="L-inf radius of the ball (pixel space).")
@click.option("--index", type=int, default=0, show_default=True, help="Test point.")
@click.option("--dataset", help="mnist | fashion-mnist | cifar10 (default: ONNX metadata).")
@click.option("--data-dir", help="Where the dataset lies (else $FKD_DATA_DIR, cache, ...).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--grid", type=int, default=101, show_default=True, help="Points per axis.")
def figure(teacher, students, **kw):
    """The confidence gap p_T^c - p_S^c on a 2-D slice of the eps-ball around one test image,
    one panel per student (c: the label), worst points re-checked by onnxruntime."""
    import numpy as np

    from ..errors import InputError
    from ..pair.options import CertifyOptions
    from ..pair.runner import RunConfig, load_data, pair_context
    from ..report.figure import gap_figure
    from .certify import check_eps

    check_eps(kw["eps"])
    if kw["grid"] < 3:
        raise InputError("--grid must be at least 3")
    pairs, ds = [], None
    for s in students:
        cfg = RunConfig(teacher, s, CertifyOptions(eps=kw["eps"]), dataset=kw["dataset"],
                        data_dir=kw["data_dir"])  # fmt: skip
        ctx, _ = pair_context(cfg)
        ds = ds or load_data(cfg, ctx.teacher, ctx.student)
        pairs.append(ctx)
    i = kw["index"]
    if not 0 <= i < len(ds):
        raise InputError(f"--index {i} is outside the test set (0..{len(ds) - 1})")
    x0 = ds.images[i].reshape(-1).astype(np.float64)
    names = [Path(s).stem for s in students]
    found = gap_figure(pairs, names, x0, int(ds.labels[i]), kw["eps"], kw["out"], kw["grid"])
    for f in found:
        att = "none confirmed" if f["attack_max"] is None else f"{f['attack_max']:.4f}"
        click.echo(f"{f['name']}: max gap on the slice {f['slice_max']:.4f}, PGD in the ball "
                   f"{att}")  # fmt: skip
    click.echo(f"wrote {kw['out']}")
