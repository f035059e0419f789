"""The four plots of ``fkdverify report`` (PNG, matplotlib's Agg back-end, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError
from ..results import ERROR, FAITHFUL
from .tables import Row

EPS_LABEL = "ε (L∞ radius, pixel scale [0, 1])"


MARK = "fkdverify report"  # written into each PNG, so a later report knows it may replace it


def _check_ours(path: Path, mark: str = MARK) -> None:
    """Refuse to replace a PNG that ``mark`` (e.g. "fkdverify report") did not write."""
    if not path.exists():
        return
    try:
        from PIL import Image

        with Image.open(path) as im:
            ours = im.info.get("Software") == mark
    except Exception:  # noqa: BLE001 - not an image we can read: not ours
        ours = False
    if not ours:
        raise InputError(f"{path} exists and was not written by {mark}; nothing was "
                         "written: choose another --out")  # fmt: skip


def _decided(rows: list[Row]) -> list[Row]:
    return [r for r in rows if not r.skipped and r.agreement != ERROR]


def plot_all(rows: list[Row], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 120, "font.size": 10})
    rows = _decided(rows)
    paths = []
    plots = (("faithful_vs_eps.png", _faithful_vs_eps), ("gap_hi_by_model.png", _gap_hi),
             ("gap_sandwich.png", _sandwich), ("time_per_point.png", _times))  # fmt: skip
    for name, _ in plots:
        _check_ours(out / name)
    for name, draw in plots:
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        draw(ax, rows)
        fig.tight_layout()
        fig.savefig(out / name, metadata={"Software": MARK})
        plt.close(fig)
        paths.append(out / name)
    return paths


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def _faithful_vs_eps(ax, rows):
    """Certified faithful rate per (model, method) against eps, with n and a 95% interval at
    every point (so that a single eps still reads: one marker with its error bar)."""
    d0 = min((r.delta for r in rows if not math.isnan(r.delta)), default=math.nan)
    series: dict = {}
    for r in rows:
        if r.delta == d0 or math.isnan(d0):
            series.setdefault((r.model, r.method), {}).setdefault(r.eps, []).append(r)
    styles = ["-", "--", ":", "-."]
    methods = sorted({m for _, m in series})
    for (model, method), by_eps in sorted(series.items()):
        xs = sorted(by_eps)
        ks = [sum(r.faithful == FAITHFUL for r in by_eps[e]) for e in xs]
        ns = [len(by_eps[e]) for e in xs]
        ys = [k / n for k, n in zip(ks, ns, strict=True)]
        ci = [_wilson(k, n) for k, n in zip(ks, ns, strict=True)]
        err = [[y - lo for y, (lo, _) in zip(ys, ci, strict=True)],
               [hi - y for y, (_, hi) in zip(ys, ci, strict=True)]]  # fmt: skip
        ls = styles[methods.index(method) % len(styles)]  # line style per method: overlaps show
        ax.errorbar(xs, ys, yerr=err, marker="o", ls=ls, capsize=4,
                    label=f"{model} / {method} (n={min(ns)}" +
                    (f"-{max(ns)})" if max(ns) != min(ns) else ")"))  # fmt: skip
    if len({e for by in series.values() for e in by}) == 1:
        e = next(iter(next(iter(series.values()))))
        ax.set_xlim(e * 0.5, e * 1.5) if e > 0 else ax.set_xlim(-0.01, 0.01)
    ax.set_xlabel(EPS_LABEL)
    ax.set_ylabel(f"certified faithful rate (δ = {d0:g}), fraction of points")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Certified faithful rate vs ε, per model and method (bars: 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _gap_hi(ax, rows):
    groups: dict = {}
    for r in rows:
        if not math.isnan(r.gap_upper):
            groups.setdefault((r.model, r.eps), []).append(r.gap_upper)
    _boxes(ax, groups, lambda k: f"{k[0]}\nε={k[1]:g}")
    ax.set_xlabel("student (model) and ε")
    ax.set_ylabel(r"Δ_hi: sound upper bound of $p_T^c - p_S^c$ (probability)")
    ax.set_title("Distribution of the certified confidence-gap bound Δ_hi per student")


def _sandwich(ax, rows):
    by_model: dict = {}
    for r in rows:
        if not (math.isnan(r.gap_lower) or math.isnan(r.gap_upper)):
            by_model.setdefault(r.model, []).append(r)
    for model, rs in sorted(by_model.items()):
        ax.scatter([r.gap_lower for r in rs], [r.gap_upper for r in rs], s=12, alpha=0.7,
                   label=model)  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="Δ_hi = Δ_lo (exact)")
    deltas = sorted({r.delta for r in rows if not math.isnan(r.delta)})
    for d in deltas[:1]:
        ax.axhline(d, color="grey", ls=":", lw=0.8, label=f"δ = {d:g}")
    ax.set_xlabel("Δ_lo: gap at a re-checked point (probability)")
    ax.set_ylabel("Δ_hi: sound upper bound (probability)")
    ax.set_title("Confidence-gap sandwich per point: Δ_lo ≤ true max ≤ Δ_hi")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _times(ax, rows):
    groups: dict = {}
    for r in rows:
        if not math.isnan(r.time) and r.time > 0:
            groups.setdefault(r.method, []).append(r.time)
    _boxes(ax, groups, lambda k: f"{k}\n(n={len(groups[k])})")
    limits = sorted({r.timeout for r in rows if not math.isnan(r.timeout)})
    for t in limits[-1:]:
        ax.axhline(t, color="red", ls="--", lw=0.8, label=f"time limit {t:g} s")
        ax.legend(fontsize=8, loc="best")
    if groups:
        ax.set_yscale("log")
    ax.set_xlabel("method")
    ax.set_ylabel("time per point (s, log scale)")
    ax.set_title("Time per point per method (attack + bounds + MILP)")


def _boxes(ax, groups: dict, label) -> None:
    """One box per group (sorted keys), tick labels from ``label(key)``, a legend saying
    what the boxes show."""
    keys = sorted(groups)
    if keys:
        ax.boxplot([groups[k] for k in keys])
        ax.set_xticks(range(1, len(keys) + 1), [label(k) for k in keys], fontsize=8)
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.plot([], [], " ", label="box: quartiles, whiskers: 1.5 IQR")
    ax.legend(fontsize=8, loc="best")
