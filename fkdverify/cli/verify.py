"""``fkdverify verify`` (one network, a VNN-LIB spec) and ``fkdverify info``."""

from __future__ import annotations

import click

from .. import defaults as D
from ..words import BOUND_METHODS, SOLVERS, VERIFY_METHODS
from .common import choice, cli


@cli.command()
@click.argument("files", nargs=-1, metavar="NET.onnx SPEC.vnnlib[.gz]")
@choice("--method", VERIFY_METHODS, D.VERIFY_METHOD,
        "attack: falsify only; ibp/crown/alpha-crown: bounds; milp: complete (MILP per "
        "open disjunct); bab: complete (branch and bound over ReLU splits, beta-CROWN "
        "bounds).")  # fmt: skip
@click.option("--timeout", type=float, help=f"Seconds per instance (default {D.VERIFY_TIMEOUT:g}; "
              "with --instances the file's own timeouts).")  # fmt: skip
@choice("--solver", SOLVERS, D.VERIFY_SOLVER,
        "MILP back-end (milp; bab's bound refinement: highs or gurobi, auto = gurobi when "
        "licensed, which is far stronger there).")  # fmt: skip
@choice("--milp-bounds", BOUND_METHODS, D.MILP_BOUNDS,
        "Pre-activation bounds that feed milp and bab (big-M values, stable ReLUs).")  # fmt: skip
@click.option("--refine", type=float, default=D.REFINE, show_default=True,
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
    from ..vnnlib.verify import VerifyOptions

    timeout = D.VERIFY_TIMEOUT if kw["timeout"] is None else kw["timeout"]
    opts = VerifyOptions(method=kw["method"], timeout=timeout, solver=kw["solver"],
                         milp_bounds=kw["milp_bounds"], refine=kw["refine"])  # fmt: skip
    if kw["instances"]:
        if files or not kw["out"]:
            raise click.UsageError("--instances takes no NET/SPEC arguments and needs --out")
        return _verify_batch(kw, opts)
    if len(files) != 2:
        raise click.UsageError("give NET.onnx and SPEC.vnnlib (or --instances FILE --out CSV)")
    from ..net.onnx_import import import_onnx
    from ..net.vnnlib import read_vnnlib
    from ..vnnlib.verify import SAT, cex_text, check_cex_target, write_cex
    from ..vnnlib.verify import verify as run_verify

    if kw["cex"]:
        check_cex_target(kw["cex"])
    spec = read_vnnlib(files[1])
    net = import_onnx(files[0])
    click.echo(f"{files[0]}: {net.input_size} inputs, {net.n_classes} outputs; {files[1]}: "
               f"{len(spec.disjuncts)} unsafe disjuncts")  # fmt: skip
    res = run_verify(net, files[0], spec, opts)
    click.echo(f"decided by: {res.stage or '-'}; {res.time_s:.2f} s"
               + (f"; {res.note}" if res.note else ""))  # fmt: skip
    if res.result == SAT and kw["cex"]:
        write_cex(kw["cex"], cex_text(res.x, res.y))
        click.echo(f"counterexample: {kw['cex']}")
    click.echo(res.result)


def _verify_batch(kw, opts):
    from ..vnnlib.instances import run_instances

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
@click.argument("model", metavar="MODEL.onnx")
def info(model):
    """Show how fkdverify reads an ONNX network."""
    from ..net.onnx_import import import_onnx

    net = import_onnx(model)
    click.echo(f"input shape {net.input_shape}, {net.n_classes} outputs, {net.n_relus()} ReLUs")
    for i, node in enumerate(net.nodes):
        click.echo(f"  {i + 1:3d} {type(node.layer).__name__:8s} <- {node.inputs} {node.shape}")
    for note in net.notes:
        click.echo(f"note: {note}")
    for k, v in net.meta.items():
        click.echo(f"meta {k}: {v}")
