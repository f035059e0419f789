"""``fkdverify data download`` and ``fkdverify data list``."""

from __future__ import annotations

import sys

import click

from .common import cli


@cli.group()
def data():
    """Datasets: what is where (embedded test sets, cache, --data-dir), and downloads."""


@data.command("list")
@click.option("--data-dir", help="Also look here (a dataset's folder or the folder above).")
def data_list(data_dir):
    """Each dataset and split: where fkdverify finds it, or how to get it."""
    from ..data import listing

    for r in listing(data_dir):
        where = f"{r['source']}: {r['path']}" if r["status"] == "found" else r["download"]
        click.echo(f"{r['dataset']:14s} {r['split']:5s} {r['status']:8s} {where}")


@data.command("download")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist", "cifar10"]))
@click.option("--dir", "dest", type=click.Path(file_okay=False),
              help="Folder to download into (default: ~/.cache/fkdverify/NAME, or "
              "$FKD_CACHE_DIR/NAME).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_download(name, dest, quiet):
    """Fetch the full NAME dataset (train and test) from its canonical mirrors, checking every
    file's sha256; files already there with the right checksum are kept."""
    from ..data import download

    bars: dict = {}

    def progress(file, done, total):
        if quiet:
            return
        from tqdm import tqdm

        if file not in bars:
            bars[file] = tqdm(total=total, desc=file, unit="B", unit_scale=True, file=sys.stderr,
                              leave=False)  # fmt: skip
        bars[file].update(done - bars[file].n)

    try:
        path = download(name, dest, progress)
    finally:
        for b in bars.values():
            b.close()
    click.echo(f"{name}: {path}  (pass --data-dir {path}, or leave it: the cache is searched)")
