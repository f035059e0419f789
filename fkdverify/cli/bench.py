"""``fkdverify benchmark`` (grids to CSV) and ``fkdverify report`` (tables, plots)."""

from __future__ import annotations

import sys

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

    from ..bench.run import BenchOptions
    from ..bench.run import benchmark as run_grid

    opts = BenchOptions(grid, kw["out"], kw["workers"], kw["ray_address"], kw["data_dir"],
                        kw["hard_limit"], kw["batch_size"])  # fmt: skip
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM: stop like Ctrl-C
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
