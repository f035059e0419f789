"""``fkdverify figure``: a picture in the spirit of Figure 1 of Lamb et al. (2023): the
confidence gap g = p_T^c - p_S^c over a 2-D slice of the eps-ball around one test image, one
panel per student, with each panel's worst point on the slice (re-checked on the ONNX files by
onnxruntime) and the worst gap the attack finds anywhere in the ball.

The slice: x(a, b) = clip(x0 + eps * clamp(a d1 + b d2, -1, 1)) for a, b in [-1, 1], where d1 is
the sign of the gradient of the first student's gap at x0 (the direction PGD starts along) and
d2 a fixed random sign vector; every x(a, b) lies in the ball and in the input domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .plots import _check_ours

MARK = "fkdverify figure"


def slice_points(x0: np.ndarray, d1: np.ndarray, d2: np.ndarray, eps: float, n: int,
                 lo: float = 0.0, hi: float = 1.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(grid (n,), points (n*n, size)): x(a, b) for a (rows) and b (columns) in the grid."""
    g = np.linspace(-1.0, 1.0, n)
    a, b = np.meshgrid(g, g, indexing="ij")
    step = np.clip(a.reshape(-1, 1) * d1[None] + b.reshape(-1, 1) * d2[None], -1.0, 1.0)
    return g, np.clip(x0[None] + eps * step, lo, hi)


def _gap(tnet, snet, xs: np.ndarray, c: int) -> np.ndarray:
    with torch.no_grad():
        x = torch.as_tensor(xs, dtype=torch.float64)
        pt = torch.softmax(tnet(x), 1)[:, c]
        ps = torch.softmax(snet(x), 1)[:, c]
    return (pt - ps).numpy()


def gap_figure(pairs: list, names: list[str], x0: np.ndarray, c: int, eps: float, out: str,
               n: int = 101, seed: int = 0) -> list[dict]:  # fmt: skip
    """Draw the figure into ``out`` (PNG) for ``pairs`` (PairContext, one per student, the same
    teacher); returns per student {name, slice_max, slice_argmax (x), recheck, attack_max}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..pair.attack import AttackOptions, attack_gap
    from ..words import GapSign

    path = Path(out)
    if path.suffix.lower() != ".png":
        raise InputError(f"--out {out}: the figure is a PNG; give a file name ending in .png")
    _check_ours(path, MARK)
    x0 = np.asarray(x0, np.float64).reshape(-1)
    first = pairs[0]
    x = torch.as_tensor(x0, dtype=torch.float64)[None].requires_grad_(True)
    g0 = torch.softmax(first.tnet(x), 1)[0, c] - torch.softmax(first.snet(x), 1)[0, c]
    (grad,) = torch.autograd.grad(g0, x)
    rng = np.random.default_rng(seed)
    d1 = np.sign(grad[0].numpy())
    d1[d1 == 0] = 1.0
    d2 = rng.choice([-1.0, 1.0], size=x0.size)
    grid, xs = slice_points(x0, d1, d2, eps, n)
    found, maps = [], []
    lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
    for ctx, name in zip(pairs, names, strict=True):
        g = _gap(ctx.tnet, ctx.snet, xs, c)
        i = int(np.argmax(g))
        ref = ctx.referee.gap(xs[i], lo, hi, c, GapSign.TEACHER_MINUS_STUDENT)
        xa, ga = attack_gap(ctx.tnet32, ctx.snet32, x0, lo, hi, c, GapSign.TEACHER_MINUS_STUDENT,
                            AttackOptions())  # fmt: skip
        ra = ctx.referee.gap(xa, lo, hi, c, GapSign.TEACHER_MINUS_STUDENT)
        found.append({"name": name, "slice_max": float(g[i]), "slice_argmax": xs[i],
                      "recheck": ref, "attack_max": ra})  # fmt: skip
        maps.append((g.reshape(n, n), np.unravel_index(i, (n, n))))
    vmax = max(float(np.abs(m).max()) for m, _ in maps) or 1e-6
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.6), squeeze=False)
    for ax, (m, (ia, ib)), f in zip(axes[0], maps, found, strict=True):
        im = ax.imshow(m, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r", vmin=-vmax,
                       vmax=vmax)  # fmt: skip
        ax.plot(grid[ib], grid[ia], marker="x", color="k", ms=10, mew=2)
        ax.plot(0, 0, marker="o", color="k", ms=4)
        checked = "re-checked" if f["recheck"] is not None else "not confirmed"
        attack = "none" if f["attack_max"] is None else f"{f['attack_max']:.3f}"
        ax.set_title(f"{f['name']}\nworst on the slice {f['slice_max']:.3f} ({checked})\n"
                     f"worst found by PGD in the ball {attack}", fontsize=9)  # fmt: skip
        ax.set_xlabel("b (random sign direction)")
        ax.set_ylabel("a (gap-gradient sign direction)")
    fig.colorbar(im, ax=axes[0].tolist(), label=f"p_T^{c} - p_S^{c}", shrink=0.85)
    fig.suptitle(f"confidence gap on a 2-D slice of the eps = {eps:g} ball (o: test point, "
                 "x: worst point on the slice)", fontsize=10)  # fmt: skip
    fig.savefig(path, metadata={"Software": MARK}, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return found
