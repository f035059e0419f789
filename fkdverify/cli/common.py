"""The click group and the option helpers every command module uses."""

from __future__ import annotations

import sys

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fkdverify")
def cli():
    """Check that a distilled student network stays faithful to its teacher around real data."""


def choice(*args):
    """choice(*flags, values, default, help): an option with fixed values, default shown."""
    *flags, values, default, text = args
    return click.option(*flags, type=click.Choice(list(values)), default=default,
                        show_default=True, help=text)  # fmt: skip


def warn(msg: str) -> None:
    """A legal but suspicious value: one line on stderr, the command goes on."""
    click.echo(f"warning: {msg}", err=True)


def log_to_stderr(quiet: bool) -> None:
    """The package's log lines (e.g. chunking of the bounds) as 'fkdverify: ...' on stderr."""
    import logging

    log = logging.getLogger("fkdverify")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("fkdverify: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def progress(total: int, desc: str, quiet: bool, initial: int = 0):
    """A tqdm bar on stderr, or None when quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="pt", file=sys.stderr, leave=False)
