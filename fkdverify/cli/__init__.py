"""Command line: parse, call the API, print, exit code. No logic of its own.

One module per command family (``certify`` and ``export``; ``train``; ``benchmark`` and
``report``; ``verify`` and ``info``; ``data``), the group and shared option helpers in
``common``; ``main`` turns every FkdError into one line and an exit code."""

from __future__ import annotations

import sys

import click

from ..errors import FkdError
from .common import cli


def main(argv=None) -> int:
    """Entry point: FkdError and usage errors become one line on stderr and an exit code."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except FkdError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        if isinstance(e.__cause__, EOFError):  # click turns an EOFError into Abort
            click.echo("error: a file ended early (cut short?); check the input files", err=True)
            return 2
        click.echo("interrupted: rows already written are kept", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return e.exit_code
    return 0


from . import bench, certify, data, train, verify  # noqa: E402,F401  (registers the commands)

if __name__ == "__main__":
    sys.exit(main())
