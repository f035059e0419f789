"""What every stage reads about the pair: the networks, their product, torch modules and the
referee. Built once per worker (a lifetime) and never changed after."""

from __future__ import annotations

import numpy as np
import torch

from ..bounds.diff import kappas
from ..net.graph import Network
from ..net.product import product
from ..net.torch_net import TorchNet
from .heads import pair_matrix
from .recheck import Referee
from .rows import margin_vector


class PairContext:
    """The pair's networks, product, torch modules and referee."""

    def __init__(self, teacher: Network, student: Network, t_path: str, s_path: str,
                 norms: tuple = (None, None)):  # fmt: skip
        self.teacher, self.student = teacher, student
        self.paths = (t_path, s_path)
        self.k = teacher.n_classes
        self.npair = self.k * (self.k - 1)
        pm = pair_matrix(self.k)
        z = np.zeros_like(pm)
        head = np.block([[pm, z], [z, pm]])  # all pairwise logit differences of both nets
        self.product, self.t_out, self.s_out = product(teacher, student, head)
        self.off = len(teacher.nodes)
        # same-shape pairs get differential bounds at these scales (bounds/diff.py)
        self.kappas = kappas(teacher, student)
        self.tnet, self.snet = TorchNet(teacher), TorchNet(student)
        # the attack searches in float32 (every candidate is re-checked in float64 and ORT)
        self.tnet32 = TorchNet(teacher, torch.float32)
        self.snet32 = TorchNet(student, torch.float32)
        self.referee = Referee(t_path, s_path, teacher, student, norms)

    def split(self, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(teacher rows, student rows) of a (2P,) vector over the product's head."""
        return ub[: self.npair], ub[self.npair :]

    def margins_at(self, x: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Float64 margin vectors z_c - z_j (j != c) of (teacher, student) at x."""
        with torch.no_grad():
            xt = torch.as_tensor(np.asarray(x, np.float64))[None]
            zt, zs = self.tnet(xt)[0].numpy(), self.snet(xt)[0].numpy()
        return margin_vector(zt, c), margin_vector(zs, c)


def split_bounds(bounds, off: int):
    """A product's pre-activation bounds (Bounds or BatchBounds) as (teacher's, student's)."""
    bt = {v: b for v, b in bounds.pre.items() if v <= off}
    bs = {v - off: b for v, b in bounds.pre.items() if v > off}
    return type(bounds)(bt, bounds.method), type(bounds)(bs, bounds.method)
