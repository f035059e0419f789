"""``fkdverify certify`` (the main job) and ``fkdverify export``."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import click

from .. import defaults as D
from ..words import (
    BOUND_METHODS,
    CERTIFY_METHODS,
    CLASS_MODES,
    DEVICES,
    EXPORT_FORMS,
    GAP_SIGNS,
    POINT_MODES,
    PRECISIONS,
    PROPERTIES,
    SOLVER_METHODS,
    SOLVERS,
)
from .common import choice, cli, log_to_stderr, progress, warn

DEFAULT_N = 100  # points decided when neither --n nor --indices is given
SUSPICIOUS_EPS = 0.5  # in pixel space: a radius this large is rarely meant


def default_out(teacher: str, student: str, eps: float) -> str:
    return f"fkdverify-{Path(teacher).stem}-{Path(student).stem}-eps{eps:g}.csv"


def check_eps(eps: float) -> None:
    if SUSPICIOUS_EPS < eps <= 1:  # (beyond 1 the options refuse it)
        warn(f"--eps {eps:g} is more than half the pixel range [0, 1]; did you mean "
             f"{eps:g}/255 = {eps / 255:.4g}?")  # fmt: skip


@cli.command()
@click.argument("teacher", metavar="TEACHER.onnx")
@click.argument("student", metavar="STUDENT.onnx")
@click.option("--eps", type=float, required=True, help="L-inf radius of the ball, pixel space.")
@click.option(
    "--dataset", help="mnist | fashion-mnist | cifar10 (default: ONNX metadata or input size)."
)
@click.option("--data-dir", help="Where the dataset lies: its own folder or the folder above "
              "it (else $FKD_DATA_DIR, the cache, /usr/share/datasets, the embedded test "
              "sets).")  # fmt: skip
@click.option("--n", "n", type=int, default=None,
              help=f"Number of test points (default: the first {DEFAULT_N}).")  # fmt: skip
@click.option("--start", type=int, default=0, show_default=True, help="First test index.")
@click.option("--indices", help="Explicit test indices, e.g. 3,5,10-20 (overrides --n/--start).")
@choice("--class", "class_mode", CLASS_MODES, D.CLASS_MODE,
        "Class c: the label, or the teacher's prediction at x.")  # fmt: skip
@choice("--points", POINT_MODES, D.POINT_MODE, "Which points to decide.")
@choice("--property", "prop", PROPERTIES, D.PROPERTY, "faithful = agreement + gap <= delta.")
@click.option("--delta", type=float, default=D.DELTA, show_default=True,
              help="Faithful when agreement holds and the gap bound is <= delta.")  # fmt: skip
@choice("--gap-sign", GAP_SIGNS, D.GAP_SIGN, "g = p_T^c - p_S^c, its opposite, or |.|.")
@choice("--method", CERTIFY_METHODS, D.CERTIFY_METHOD,
        "auto: milp+bab where the exact MILP fits (dense pairs up to 4,000 ReLUs), else "
        "alpha-crown; attack: falsify only; ibp/crown/alpha-crown: bounds (incomplete, "
        "batched); milp: exact MILPs; bab: branch and bound over both networks' "
        "ReLUs; milp+bab: the MILPs, then branch and bound where agreement stays "
        "open.")  # fmt: skip
@click.option("--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406: the ONNX files expect "
              "(x - mean) / std; eps stays in pixel space (default: ONNX metadata, else "
              "none).")  # fmt: skip
@click.option("--std", help="Per-channel std for --mean, e.g. 0.225.")
@choice("--precision", PRECISIONS, D.PRECISION,
        "Bounds arithmetic (float32: faster, widened by a stated rounding allowance).")  # fmt: skip
@choice("--device", DEVICES, "auto", "Where bounds are computed (auto: a GPU when present).")
@click.option("--bounds-memory", type=int, default=D.BOUNDS_MEMORY_MB, show_default=True,
              help="MB for the backward pass's tensors; bigger batches are chunked.")  # fmt: skip
@click.option("--batch-size", type=int, default=0, show_default=True,
              help=f"Points bounded together (0: up to {D.BATCH_BOUNDS} for bound methods, "
              f"{D.BATCH_MILP} for milp and milp+bab).")  # fmt: skip
@choice("--solver", SOLVERS, D.SOLVER, "MILP back-end (auto: Gurobi when licensed).")
@choice("--milp-bounds", BOUND_METHODS, D.MILP_BOUNDS,
        "Bounds that feed the MILP (big-M values, stable ReLUs).")  # fmt: skip
@click.option("--lp-tighten", type=float, default=D.CERTIFY_LP_TIGHTEN, show_default=True,
              help="Share of a point's time spent on LP bound tightening before the MILP "
              "(0: off).")  # fmt: skip
@click.option("--gap-refine", type=float, default=D.GAP_REFINE, show_default=True,
              help="Seconds per point, out of its time left, that narrow the gap interval "
              "once the point is decided with agreement (faithful stops Delta_hi at "
              "delta; 0: off).")  # fmt: skip
@click.option("--no-attack", is_flag=True, help="Skip PGD (measure the certifier alone).")
@click.option("--no-differential", is_flag=True,
              help="Skip the differential bounds on z_T - z_S that pairs of the same shape "
              "get (compare with the joint bounds alone).")  # fmt: skip
@click.option("--timeout", type=float, default=D.CERTIFY_TIMEOUT, show_default=True,
              help="Seconds per point.")  # fmt: skip
@click.option("--tol", type=float, default=D.TOL, show_default=True,
              help="Gap interval width that counts as exact.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False),
              help="CSV file for the results: appended to, and resumed (finished points are "
              "skipped) when it holds this run's rows (default: "
              "fkdverify-<teacher>-<student>-eps<E>.csv).")  # fmt: skip
@click.option("--workers", type=int, default=D.CERTIFY_WORKERS, show_default=True,
              help="Parallel processes (0: one per core). Each runs torch on one thread; a "
              "run of one batch stays in this process, on every core.")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
def certify(teacher, student, **kw):
    """Attack and certify TEACHER vs STUDENT on test points; one CSV row per point."""
    from ..bounds.types import BoundOptions, auto_device
    from ..milp.backends import resolve_solver
    from ..pair.options import CertifyOptions, auto_method
    from ..pair.runner import RunConfig, load_data, load_pair, run, select_indices

    check_eps(kw["eps"])
    solver = resolve_solver(kw["solver"]) if kw["method"] in SOLVER_METHODS else kw["solver"]
    device = auto_device() if kw["device"] == "auto" else kw["device"]
    engine = BoundOptions(precision=kw["precision"], device=device,
                          memory_mb=kw["bounds_memory"])  # fmt: skip
    opts = CertifyOptions(
        eps=kw["eps"], delta=kw["delta"], prop=kw["prop"], method=kw["method"], solver=solver,
        gap_sign=kw["gap_sign"], timeout=kw["timeout"], tol=kw["tol"],
        milp_bounds=kw["milp_bounds"], use_attack=not kw["no_attack"],
        differential=not kw["no_differential"], lp_tighten=kw["lp_tighten"],
        gap_refine=kw["gap_refine"], engine=engine,
    )  # fmt: skip
    out = kw["out"] or default_out(teacher, student, kw["eps"])
    common = dict(class_mode=kw["class_mode"], points=kw["points"], out=out,
                  workers=kw["workers"], data_dir=kw["data_dir"], mean=kw["mean"],
                  std=kw["std"], batch=kw["batch_size"])  # fmt: skip
    base = RunConfig(teacher, student, opts, dataset=kw["dataset"], **common)
    t, s_net, _ = load_pair(base)
    ds = load_data(base, t, s_net)
    if kw["method"] == "auto":
        picked = auto_method(t, s_net)
        click.echo(f"note: --method auto: {picked} ({t.n_relus() + s_net.n_relus()} ReLUs in "
                   "the pair)", err=True)  # fmt: skip
    n = kw["n"]
    if n is None and not kw["indices"]:
        n = min(DEFAULT_N, len(ds) - kw["start"]) if kw["start"] < len(ds) else 1
        msg = (f"note: no --n or --indices given: deciding {n} test points from index "
               f"{kw['start']} (of {len(ds)}); pass --n or --indices for others")  # fmt: skip
        click.echo(msg, err=True)
    idx = select_indices(len(ds), n, kw["start"], kw["indices"])
    cfg = RunConfig(teacher, student, opts, dataset=ds.name, indices=idx, **common)
    log_to_stderr(kw["quiet"])
    bar = None

    def start(total, done):
        nonlocal bar
        if done:
            click.echo(f"{out}: {done} of {total} points already done; resuming", err=True)
        bar = progress(total, "certify", kw["quiet"], done)

    def tick(r):
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"#{r.index} {r.agreement}/{r.faithful}")

    try:
        results = run(cfg, ds, t, tick, start)
    finally:
        if bar:
            bar.close()
    click.echo(summary(results))
    click.echo(f"results: {out}  (configuration: {out}.json)")


def summary(results) -> str:
    """Counts per verdict, the indices that need a look, and times, as a small table."""
    decided = [r for r in results if not r.note.startswith("skipped")]
    lines = [f"points: {len(results)} ({len(results) - len(decided)} skipped)"]
    if results and not decided:
        lines.append("every point was skipped (the teacher got each one wrong): is this the "
                     "right --dataset for these models? (--points all decides them "
                     "anyway)")  # fmt: skip
    for col in ("agreement", "faithful"):
        counts: dict[str, int] = {}
        for r in decided:
            counts[getattr(r, col)] = counts.get(getattr(r, col), 0) + 1
        lines.append(f"{col:10s} " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for word, col in (("disagree", "agreement"), ("unknown", "agreement")):
        idx = [str(r.index) for r in decided if getattr(r, col) == word]
        if idx:
            shown = ",".join(idx[:30]) + (f",... ({len(idx)} in all)" if len(idx) > 30 else "")
            lines.append(f"{word:10s} at indices {shown}")
    if decided:
        times = [r.time_total_s for r in decided]
        lines.append(f"time/point median {median(times):.2f} s, max {max(times):.2f} s")
    return "\n".join(lines)


@cli.command()
@click.argument("teacher", metavar="TEACHER.onnx")
@click.argument("student", metavar="STUDENT.onnx")
@click.option("--eps", type=float, required=True, help="L-inf radius of the ball, pixel space.")
@click.option("--index", type=int, required=True, help="Test point (index in the test set).")
@choice("--property", "prop", PROPERTIES, "agreement",
        "The property whose violation the VNN-LIB file states.")  # fmt: skip
@click.option("--delta", type=float, default=D.DELTA, show_default=True, help="Gap threshold.")
@choice("--gap-sign", GAP_SIGNS, D.GAP_SIGN, "g = p_T^c - p_S^c, its opposite, or |.|.")
@choice("--class", "class_mode", CLASS_MODES, D.CLASS_MODE,
        "Class c of the gap: the label, or the teacher's prediction at x.")  # fmt: skip
@click.option("--dataset", help="mnist | fashion-mnist | cifar10 (default: ONNX metadata).")
@click.option("--data-dir", help="Where the dataset lies (else $FKD_DATA_DIR, cache, ...).")
@click.option("--mean", help="Per-channel mean in front of both networks (as for certify).")
@click.option("--std", help="Per-channel std for --mean.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for <name>.onnx and <name>.vnnlib.")  # fmt: skip
@click.option("--name", help="File stem (default: <student>_<index>_<property>).")
@choice("--form", EXPORT_FORMS, "product",
        "product: one graph of both networks and the property's violation; robust: each "
        "network alone with a standard robustness spec at class c (robust agreement when "
        "both are unsat; use --class teacher).")  # fmt: skip
def export(teacher, student, **kw):
    """Write the product network (one ONNX graph) and a VNN-LIB file stating the violation of
    the property around test point INDEX, for any VNN-COMP verifier or `fkdverify verify`."""
    import numpy as np

    from ..errors import InputError
    from ..pair.export import export_pair
    from ..pair.options import CertifyOptions
    from ..pair.runner import RunConfig, load_data, load_pair

    check_eps(kw["eps"])
    cfg = RunConfig(teacher, student, CertifyOptions(eps=kw["eps"], delta=kw["delta"]),
                    dataset=kw["dataset"], data_dir=kw["data_dir"], mean=kw["mean"],
                    std=kw["std"])  # fmt: skip
    t, s, _ = load_pair(cfg)
    ds = load_data(cfg, t, s)
    i = kw["index"]
    if not 0 <= i < len(ds):
        raise InputError(f"--index {i} is outside the test set (0..{len(ds) - 1})")
    x0 = ds.images[i].reshape(-1).astype(np.float64)
    cls = int(ds.labels[i])
    if kw["class_mode"] == "teacher":
        from ..net.torch_net import evaluate

        cls = int(evaluate(t, x0[None])[0].argmax())
    name = kw["name"] or f"{Path(student).stem}_{i}_{kw['prop']}"
    meta = {"fkd.teacher": teacher, "fkd.student": student, "fkd.index": i, "fkd.class": cls,
            "fkd.dataset": ds.name}  # fmt: skip
    paths = export_pair(t, s, x0, kw["eps"], cls, kw["out"], kw["prop"], kw["delta"],
                        kw["gap_sign"], name, meta, form=kw["form"])  # fmt: skip
    click.echo(f"point {i} (class {cls}), eps {kw['eps']}: wrote {', '.join(paths)}")
    if kw["prop"] != "agreement":
        click.echo("note: the graph ends in Softmax outputs; `fkdverify verify` reads only the "
                   "agreement export (use `certify --property gap` for the gap)")  # fmt: skip
