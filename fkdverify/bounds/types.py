"""What the bound engine takes and gives: its options, and the pre-activation bounds of a batch
of points or of one point (see ``propagate.py`` for how they are computed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..net.graph import Network
from ..words import BOUND_METHODS
from .rules import Prop

METHODS = BOUND_METHODS
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
ROUNDING = {torch.float64: (1e-11, 1e-8), torch.float32: (5e-6, 1e-7)}


@dataclass(frozen=True)
class BoundOptions:
    """How bounds are computed. ``memory_mb`` caps the backward pass's coefficient tensors;
    larger batches are split into chunks (and the log says so)."""

    method: str = "crown"
    precision: str = "float64"
    device: str = "cpu"
    memory_mb: int = 2048
    alpha_iters: int = 20
    alpha_lr: float = 0.25

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"bound method must be one of {', '.join(METHODS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.memory_mb < 16:
            raise InputError("--bounds-memory must be at least 16 MB")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is visible; use --device cpu")

    def prop(self, net: Network) -> Prop:
        return Prop(net, PRECISIONS[self.precision], self.device)


def auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True, eq=False)
class BatchBounds:
    """Pre-activation bounds of B points: ``pre[v] = (l, u)``, tensors (B, size of v)."""

    pre: dict
    method: str

    def n_unstable(self) -> torch.Tensor:
        """Undecided ReLUs per point, (B,)."""
        counts = [((l < 0) & (u > 0)).sum(1) for l, u in self.pre.values()]
        return torch.stack(counts).sum(0) if counts else torch.zeros(0, dtype=torch.long)

    def take(self, idx) -> BatchBounds:
        """The bounds of the points ``idx`` (a list of batch positions)."""
        return BatchBounds({v: (l[idx], u[idx]) for v, (l, u) in self.pre.items()}, self.method)

    def point(self, b: int) -> Bounds:
        pre = {v: (l[b].double().cpu().numpy(), u[b].double().cpu().numpy())
               for v, (l, u) in self.pre.items()}  # fmt: skip
        return Bounds(pre, self.method)


@dataclass(frozen=True, eq=False)
class Bounds:
    """One point's pre-activation bounds: ``pre[v] = (l, u)`` (numpy float64, flat)."""

    pre: dict
    method: str

    def n_unstable(self, values=None) -> int:
        vs = self.pre if values is None else values
        return int(sum(((self.pre[v][0] < 0) & (self.pre[v][1] > 0)).sum() for v in vs))


def as_batch(a, p: Prop) -> torch.Tensor:
    t = torch.as_tensor(a if torch.is_tensor(a) else np.asarray(a), dtype=p.dtype, device=p.device)
    return t.reshape(t.shape[0] if t.dim() > 1 else 1, -1)


def one_point(bounds: Bounds, method: str | None = None) -> BatchBounds:
    """A point's (numpy) bounds as a batch of one, for the batched functions."""
    pre = {v: (torch.from_numpy(l)[None], torch.from_numpy(u)[None])
           for v, (l, u) in bounds.pre.items()}  # fmt: skip
    return BatchBounds(pre, method or bounds.method)
